"""One JSON input policy (issue 13, finding 1 and 2): text that the database or the pages cannot hold is a 400
naming the field, deep nesting is a 400, numbers outside the database's range are a 400 or a 404, never a 500."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from console.alerting.models import Silence
from jobs.models import Job
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def silence_body(value):
    start = timezone.now()
    return {"matchers": [{"name": "node_name", "op": "=", "value": value}], "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(), "comment": "fan"}


def raw(client, url, text):
    return client.post(url, data=text.encode("utf-8", "surrogatepass"), content_type="application/json")


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "nul\x00here"])
def test_a_lone_surrogate_or_nul_in_a_silence_matcher_is_a_400_naming_the_field(operator_api, value):
    response = raw(operator_api, "/api/v1/silences/", json.dumps(silence_body(value)))
    assert response.status_code == 400, response.content
    assert "matchers" in json.dumps(response.json())
    assert not Silence.objects.exists()
    assert operator_api.get("/api/v1/silences/").status_code == 200
    assert operator_api.get("/api/v1/events/").status_code == 200


def test_an_escaped_lone_surrogate_in_job_env_is_a_400_naming_the_field(admin_api):
    version = str(jf.version().pk)
    text = '{"name": "j", "model_version": ' + version + ', "engine": "vllm", "env": {"HF_TOKEN": "\\ud800"}}'
    response = raw(admin_api, "/api/v1/jobs/", text)
    assert response.status_code == 400, response.content
    assert "env" in json.dumps(response.json())
    assert not Job.objects.exists()


def test_a_lone_surrogate_in_a_query_string_is_a_400(viewer_api):
    response = viewer_api.get("/api/v1/events/?object_id=%ED%A0%80")
    assert response.status_code in (200, 400), response.content
    response = viewer_api.get("/api/v1/events/?object_id=a%00b")
    assert response.status_code == 400, response.content
    assert "object_id" in response.json()


def test_a_body_nested_deeper_than_the_limit_is_a_400_not_a_500(admin_api):
    deep = "[" * 40000 + "]" * 40000
    response = raw(admin_api, "/api/v1/jobs/", '{"name": "j", "env": ' + deep + "}")
    assert response.status_code == 400 and "nested deeper than 64" in response.content.decode(), response.content
    shallow = "[" * 10 + "]" * 10
    response = raw(admin_api, "/api/v1/jobs/", '{"name": "j", "extra_args": ' + shallow + "}")
    assert response.status_code == 400 and "Nested" not in response.content.decode()


@pytest.mark.parametrize("url", [
    "/api/v1/benchmarks/?job=1.5e35",
    "/api/v1/instances/?node=1e16&job=2e48",
    "/api/v1/model-versions/?node=-1.8e308&parent=1e400",
    "/api/v1/model-versions/?model=99999999999999999999",
    "/api/v1/jobs/?model_version=99999999999999999999",
    "/api/v1/alerts/?rule=1e30",
    "/api/v1/instances/?job=1.5",
])
def test_numbers_outside_the_databases_range_in_filters_are_a_400(viewer_api, url):
    response = viewer_api.get(url)
    assert response.status_code == 400, (url, response.status_code, response.content[:300])


@pytest.mark.parametrize("url", [
    "/api/v1/model-versions/99999999999999999999/files/",
    "/api/v1/model-versions/99999999999999999999/",
    "/api/v1/jobs/-99999999999999999999/",
    "/api/v1/nodes/1e30/",
])
def test_ids_outside_the_databases_range_in_paths_are_a_404(viewer_api, url):
    response = viewer_api.get(url)
    assert response.status_code == 404, (url, response.status_code, response.content[:300])


def test_a_dot_dot_static_path_is_a_404_not_a_500():
    from asgiref.testing import ApplicationCommunicator

    from console.asgi import http_app

    async def get(path):
        scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"host", b"127.0.0.1")], "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}
        app = ApplicationCommunicator(http_app, scope)
        await app.send_input({"type": "http.request", "body": b""})
        start = await app.receive_output(5)
        return start["status"]

    assert async_to_sync(get)("/static/../console/settings.py") == 404


def test_stored_rows_with_lone_surrogates_or_nul_are_repaired_by_the_data_migration(operator_api):
    import importlib

    from django.apps import apps
    from django.db import connection

    from console.core.inputs import repaired_fields

    bad = Silence(matchers=[{"name": "node_name", "op": "=", "value": "a\ud800"}], comment="x\x00y")
    assert repaired_fields(bad, ["matchers", "comment"]) == {
        "matchers": [{"name": "node_name", "op": "=", "value": "a\ufffd"}], "comment": "x\ufffdy"}
    assert repaired_fields(Silence(matchers=[], comment="ok"), ["matchers", "comment"]) == {}
    migration = importlib.import_module("console.alerting.migrations.0004_repair_bad_text")
    operator_api.post("/api/v1/silences/", silence_body("gpu-01"), format="json")
    if connection.vendor == "sqlite":  # PostgreSQL never stored such text
        Silence.objects.update(matchers=bad.matchers, comment=bad.comment)
    migration.repair(apps, connection.schema_editor())
    assert operator_api.get("/api/v1/silences/").status_code == 200
    assert not any("\ud800" in str(s.matchers) or "\x00" in s.comment for s in Silence.objects.all())
