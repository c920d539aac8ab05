"""The jobs API contract: create with validation, actions and their roles, 409s, instances."""

import pytest

from console.core.models import Event
from jobs.models import Instance, Job
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def body(version, **extra):
    return {"name": "qwen-chat", "model_version": version.pk, "engine": "vllm", "replicas": 1,
            "accelerators_per_replica": 1, **extra}


def test_a_job_is_created_stopped_with_the_contract_fields(admin_api):
    response = admin_api.post("/api/v1/jobs/", body(jf.version()), format="json")
    assert response.status_code == 201, response.content
    job = response.json()
    for field in ("id", "name", "model_version", "engine", "replicas", "accelerators_per_replica", "node_selector",
                  "extra_args", "env", "desired_state", "state", "endpoints"):
        assert field in job
    assert job["desired_state"] == "stopped" and job["state"] == "stopped" and job["endpoints"] == []
    assert Event.objects.filter(verb="create", object_type="job").exists()


@pytest.mark.parametrize("field, value", [
    ("engine", "tensorrt"),
    ("replicas", -1),
    ("accelerators_per_replica", -2),
    ("extra_args", "--foo bar"),
    ("extra_args", [1, 2]),
    ("extra_args", ["--port", "9999"]),
    ("env", {"BAD NAME": "x"}),
    ("env", {"CUDA_VISIBLE_DEVICES": "0"}),
    ("node_selector", {"rack": "a b"}),
    ("name", "has space"),
])
def test_bad_job_input_is_a_400_naming_the_field_and_nothing_is_saved(admin_api, field, value):
    response = admin_api.post("/api/v1/jobs/", body(jf.version(), **{field: value}), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Job.objects.exists()


def test_shell_metacharacters_in_extra_args_are_accepted_as_literal_tokens(admin_api):
    response = admin_api.post("/api/v1/jobs/", body(jf.version(), extra_args=["; touch /tmp/pwned", "$(id)"]),
                              format="json")
    assert response.status_code == 201
    assert Job.objects.get().extra_args == ["; touch /tmp/pwned", "$(id)"]


def test_a_failed_or_deprecated_version_is_refused_and_a_registered_one_warns(admin_api):
    failed = jf.version(version="broken", status="failed")
    response = admin_api.post("/api/v1/jobs/", body(failed), format="json")
    assert response.status_code == 400 and "model_version" in response.json()
    registered = jf.version(version="new", status="registered")
    created = admin_api.post("/api/v1/jobs/", body(registered), format="json").json()
    assert created["warnings"] and "not verified" in created["warnings"][0]


def test_an_engine_that_cannot_serve_the_quantization_is_refused(admin_api):
    gguf = jf.version(version="q4", quantization="q4_k_m")
    response = admin_api.post("/api/v1/jobs/", body(gguf, engine="vllm-ascend"), format="json")
    assert response.status_code == 400 and "engine" in response.json()


def test_starting_a_job_with_no_room_is_a_409_that_says_why(admin_api, operator_api):
    job = jf.job()
    response = operator_api.post(f"/api/v1/jobs/{job.pk}/start/")
    assert response.status_code == 409
    assert "no room" in response.json()["detail"]
    assert Job.objects.get().desired_state == "stopped"


def test_an_operator_starts_scales_and_stops_a_placeable_job(operator_api, django_capture_on_commit_callbacks):
    node = factories.node(name="gpu-1")
    factories.accelerators(node, 8)
    job = jf.job()
    with django_capture_on_commit_callbacks(execute=False):
        started = operator_api.post(f"/api/v1/jobs/{job.pk}/start/")
        assert started.status_code == 202 and started.json()["desired_state"] == "running"
        assert operator_api.post(f"/api/v1/jobs/{job.pk}/scale/", {"replicas": 3}, format="json").status_code == 202
        assert operator_api.post(f"/api/v1/jobs/{job.pk}/scale/", {"replicas": -1},
                                 format="json").status_code == 400
        assert operator_api.post(f"/api/v1/jobs/{job.pk}/stop/").status_code == 202
    assert Job.objects.get().replicas == 3
    verbs = list(Event.objects.filter(object_type="job").values_list("verb", flat=True))
    assert {"start", "scale", "stop"} <= set(verbs)


def test_restarting_a_stopped_job_is_a_409(operator_api):
    assert operator_api.post(f"/api/v1/jobs/{jf.job().pk}/restart/").status_code == 409


def test_a_viewer_may_not_start_and_an_operator_may_not_create(viewer_api, operator_api):
    job = jf.job()
    assert viewer_api.post(f"/api/v1/jobs/{job.pk}/start/").status_code == 403
    assert operator_api.post("/api/v1/jobs/", body(jf.version(), name="x"), format="json").status_code == 403


def test_deleting_a_job_with_live_instances_is_a_409_and_a_version_in_use_is_protected(admin_api):
    job = jf.job()
    Instance.objects.create(job=job, replica=0, state="running")
    response = admin_api.delete(f"/api/v1/jobs/{job.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": "the job still has live instances: stop it first"}
    assert Job.objects.filter(pk=job.pk).exists()
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        job.model_version.delete()


def test_the_placement_preview_shows_where_replicas_would_go(admin_api):
    node = factories.node(name="npu-1")
    factories.accelerators(node, 8, "huawei")
    version = jf.version(quantization="w8a8")
    response = admin_api.post("/api/v1/jobs/preview-placement/",
                              body(version, engine="vllm-ascend", replicas=3, accelerators_per_replica=4),
                              format="json")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["placeable_replicas"] == 2 and "no room" in result["reason"]
    assert result["replicas"][0][0]["node_name"] == "npu-1"


def test_the_instances_list_is_filtered_by_job_with_constant_queries(viewer_api, django_assert_max_num_queries):
    a, b = jf.job(name="a"), jf.job(name="b")
    for replica in range(5):
        Instance.objects.create(job=a, replica=replica)
    Instance.objects.create(job=b, replica=0)
    assert viewer_api.get(f"/api/v1/instances/?job={a.pk}").json()["count"] == 5
    with django_assert_max_num_queries(6):
        viewer_api.get("/api/v1/instances/")
    with django_assert_max_num_queries(8):
        viewer_api.get("/api/v1/jobs/")


def test_the_first_restart_is_issued_in_the_same_pass_that_sees_the_death(monkeypatch):
    """A crashed instance is restarted by the pass that finds it dead, not one tick later."""
    from types import SimpleNamespace

    from jobs import reconciler

    node = factories.node(name="gpu-1")
    job = jf.job(engine="simulator", accelerators_per_replica=0, desired_state="running")
    instance = Instance.objects.create(job=job, replica=0, node=node, port=20001, state="running")
    calls = []

    def fake_check(job, engine, inst):
        reconciler._failed(inst, "exited with code 1", "")

    monkeypatch.setattr(reconciler, "_check", fake_check)
    monkeypatch.setattr(reconciler, "_start", lambda *args: calls.append(args[2].state))
    reconciler._act(job, SimpleNamespace(), Instance.objects.select_related("node").get(pk=instance.pk), [])
    assert calls == ["restarting"]
