"""Job env secrets (issue 13, finding 6): secret entries are write-only, stored encrypted and reach only the
engine's environment; plain env values are masked for viewers."""

import json

import pytest

from console.core.models import Event
from jobs.models import Instance, Job
from jobs.runtime import launch_spec
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db

TOKEN = "hf_secret_value_123"


def create(admin_api, **extra):
    body = {"name": "qwen-chat", "model_version": jf.version().pk, "engine": "vllm", "replicas": 1,
            "accelerators_per_replica": 1, "env": {"VLLM_LOGGING_LEVEL": "DEBUG"}, **extra}
    return admin_api.post("/api/v1/jobs/", body, format="json")


def test_secret_env_entries_are_never_returned_and_are_stored_encrypted(admin_api, operator_api, viewer_api):
    response = create(admin_api, secret_env={"HF_TOKEN": TOKEN})
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert TOKEN not in job.encrypted_secret_env and job.secret_env() == {"HF_TOKEN": TOKEN}
    for client in (admin_api, operator_api, viewer_api):
        for url in ("/api/v1/jobs/", f"/api/v1/jobs/{job.pk}/", "/api/v1/events/"):
            text = client.get(url).content.decode()
            assert TOKEN not in text, url
    detail = admin_api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["secret_env_names"] == ["HF_TOKEN"] and "secret_env" not in detail
    assert TOKEN not in json.dumps(list(Event.objects.values("detail")))


def test_secret_env_reaches_the_engines_environment_only(admin_api):
    create(admin_api, secret_env={"HF_TOKEN": TOKEN})
    job = Job.objects.get()
    node = factories.node(transport="local")
    instance = Instance.objects.create(job=job, replica=0, node=node, port=18001)
    spec = launch_spec(instance, factories.accelerators(node, count=1))
    assert spec.env["HF_TOKEN"] == TOKEN and spec.env["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_secret_env_is_replaced_by_a_patch_and_removed_by_an_empty_object(admin_api):
    create(admin_api, secret_env={"HF_TOKEN": TOKEN})
    job = Job.objects.get()
    response = admin_api.patch(f"/api/v1/jobs/{job.pk}/", {"secret_env": {"OTHER_TOKEN": "x"}}, format="json")
    assert response.status_code == 200 and response.json()["secret_env_names"] == ["OTHER_TOKEN"]
    assert admin_api.patch(f"/api/v1/jobs/{job.pk}/", {"replicas": 2}, format="json").json()["secret_env_names"] == [
        "OTHER_TOKEN"]
    admin_api.patch(f"/api/v1/jobs/{job.pk}/", {"secret_env": {}}, format="json")
    job.refresh_from_db()
    assert job.secret_env() == {} and job.encrypted_secret_env == ""


def test_secret_env_names_are_checked_like_env_names(admin_api):
    response = create(admin_api, secret_env={"CUDA_VISIBLE_DEVICES": "0"})
    assert response.status_code == 400 and "env" in response.json()
    response = create(admin_api, secret_env={"VLLM_LOGGING_LEVEL": "x"})
    assert response.status_code == 400 and "secret_env" in response.json()
    assert not Job.objects.exists()


def test_plain_env_values_are_masked_for_viewers_and_shown_to_operators(admin_api, operator_api, viewer_api):
    create(admin_api)
    job = Job.objects.get()
    assert viewer_api.get(f"/api/v1/jobs/{job.pk}/").json()["env"] == {"VLLM_LOGGING_LEVEL": "******"}
    assert "DEBUG" not in viewer_api.get("/api/v1/jobs/").content.decode()
    assert operator_api.get(f"/api/v1/jobs/{job.pk}/").json()["env"] == {"VLLM_LOGGING_LEVEL": "DEBUG"}
