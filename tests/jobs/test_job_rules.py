"""One rule, two doors: what the API refuses, the pages refuse with the same words.

The engine validates a job at create (``Engine.validate`` through the serializer); ``start_job``
refuses a failed or deprecated version from the API and from the job page alike.
"""

import pytest
from django.contrib.messages import get_messages

from console.core.models import Event
from jobs.models import Job
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def body(version, **extra):
    return {"name": "qwen-chat", "model_version": version.pk, "engine": "vllm", "replicas": 1,
            "accelerators_per_replica": 1, **extra}


def page_form(version, **extra):
    return {"name": "qwen-chat", "model_version": version.pk, "engine": "vllm", "replicas": 1,
            "accelerators_per_replica": 1, "nodes_per_replica": 1, "placement": "binpack", **extra}


@pytest.fixture
def page_as(client, make_user):
    def login(role):
        client.force_login(make_user(role, f"{role}-at-the-page"))
        return client

    return login


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# -- the engine's checks run at create -----------------------------------------------------------


def test_a_llama_cpp_job_on_a_version_that_is_not_a_gguf_file_is_a_400_on_model_version(admin_api):
    directory = jf.version(version="q4", quantization="q4_k_m")  # source_uri /models/...-q4, a directory
    response = admin_api.post("/api/v1/jobs/", body(directory, engine="llamacpp", accelerators_per_replica=0),
                              format="json")
    assert response.status_code == 400, response.content
    assert any("GGUF file" in message for message in response.json()["model_version"])
    assert not Job.objects.exists()


def test_a_llama_cpp_job_on_a_gguf_file_is_created(admin_api):
    gguf = jf.version(version="q4", quantization="q4_k_m")
    gguf.source_uri = "file:///models/qwen2.5-7b-instruct-q4_k_m.gguf"
    gguf.save(update_fields=["source_uri"])
    response = admin_api.post("/api/v1/jobs/", body(gguf, engine="llamacpp", accelerators_per_replica=0),
                              format="json")
    assert response.status_code == 201, response.content


def test_the_create_page_shows_the_engines_message_on_the_field_and_creates_nothing(page_as):
    directory = jf.version(version="q4", quantization="q4_k_m")
    response = page_as("admin").post("/jobs/add/", page_form(directory, engine="llamacpp",
                                                             accelerators_per_replica=0))
    assert response.status_code == 200
    assert any("GGUF file" in error for error in response.context["form"].errors["model_version"])
    assert not Job.objects.exists()


def test_a_multi_node_mindie_job_needs_its_rank_table_setting(admin_api):
    version = jf.version(version="w8a8", quantization="w8a8")
    spread = body(version, engine="mindie", accelerators_per_replica=8, nodes_per_replica=2)
    response = admin_api.post("/api/v1/jobs/", spread, format="json")
    assert response.status_code == 400, response.content
    assert any("RANKTABLEFILE" in message for message in response.json()["env"])
    spread["env"] = {"RANKTABLEFILE": "/etc/hccl/rank_table.json"}
    assert admin_api.post("/api/v1/jobs/", spread, format="json").status_code == 201


def test_an_option_the_engine_does_not_read_is_a_400_and_a_simulator_option_out_of_range_too(admin_api):
    response = admin_api.post("/api/v1/jobs/", body(jf.version(), options={"ttft_ms": 5}), format="json")
    assert response.status_code == 400 and "ttft_ms" in response.json()["options"][0]
    response = admin_api.post("/api/v1/jobs/", body(jf.version(), engine="simulator", accelerators_per_replica=0,
                                                    options={"ttft_ms": -1}), format="json")
    assert response.status_code == 400 and "ttft_ms" in response.json()["options"][0]


def test_the_executors_markers_cannot_be_set_in_env(admin_api):
    response = admin_api.post("/api/v1/jobs/", body(jf.version(), env={"BOOM_INSTANCE": "x"}), format="json")
    assert response.status_code == 400 and "BOOM_INSTANCE" in response.json()["env"][0]


# -- start refuses a failed or deprecated version, from the API and from the page ----------------


@pytest.fixture
def room():
    factories.accelerators(factories.node(name="gpu-1"), 8)


@pytest.mark.parametrize("status, reason", [("failed", "failed verification"), ("deprecated", "deprecated")])
def test_starting_a_job_on_a_failed_or_deprecated_version_is_a_409_with_detail(operator_api, room, status, reason):
    job = jf.job(model_version=jf.version(version="bad", status=status))
    response = operator_api.post(f"/api/v1/jobs/{job.pk}/start/")
    assert response.status_code == 409
    assert reason in response.json()["detail"]
    assert Job.objects.get().desired_state == "stopped"
    assert not Event.objects.filter(verb="start").exists()


@pytest.mark.parametrize("status", ["failed", "deprecated"])
def test_starting_a_job_on_a_failed_or_deprecated_version_from_the_page_is_refused_with_the_apis_message(
        page_as, operator_api, room, status):
    job = jf.job(model_version=jf.version(version="bad", status=status))
    api_detail = operator_api.post(f"/api/v1/jobs/{job.pk}/start/").json()["detail"]
    response = page_as("operator").post(f"/jobs/{job.pk}/start/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert messages_of(response) == [api_detail]
    assert Job.objects.get().desired_state == "stopped"
    assert not Event.objects.filter(verb="start").exists()


def test_the_simulator_starts_on_any_version_because_it_loads_no_weights(operator_api):
    factories.node(name="cpu-1")
    job = jf.job(engine="simulator", accelerators_per_replica=0, model_version=jf.version(status="failed"))
    assert operator_api.post(f"/api/v1/jobs/{job.pk}/start/").status_code == 202


def test_the_create_page_creates_audits_and_starts_through_the_same_service_as_the_api(page_as):
    factories.accelerators(factories.node(), 1)  # room for it: an unplaceable job is asked about first
    response = page_as("admin").post("/jobs/add/", page_form(jf.version(), start="on"))
    job = Job.objects.get()
    assert response.status_code == 302 and job.desired_state == "running" and job.created_by is not None
    assert {"create", "start"} <= set(Event.objects.filter(object_type="job").values_list("verb", flat=True))


# -- every conflict is a 409 with detail in the API and an error message on a page ---------------


def test_restarting_a_stopped_job_is_a_409_with_detail_and_an_error_on_the_page(operator_api, page_as):
    job = jf.job()
    response = operator_api.post(f"/api/v1/jobs/{job.pk}/restart/")
    assert response.status_code == 409 and response.json() == {"detail": "the job is stopped: start it instead"}
    page = page_as("operator").post(f"/jobs/{job.pk}/restart/")
    assert page.status_code == 302 and messages_of(page) == ["the job is stopped: start it instead"]
    assert Job.objects.get().generation == job.generation
