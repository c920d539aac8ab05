"""The registry REST API (shared/API.md: models/, model-versions/): create with a background import,
bad input, roles, verify/promote/import actions, evaluations with parent deltas, lineage, filters,
deletion conflicts and constant list query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.core.models import Event
from models_registry import services
from models_registry.models import Alias, Model, ModelVersion, Quantization
from tests.jobs import factories as job_factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/model-versions/"


@pytest.fixture
def eager():
    """Run Celery tasks in-process, as a worker would, when their on_commit callbacks fire."""
    from console.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def create(api, model, **fields):
    body = {"model": model.pk, "version": "bf16", "source_uri": "hf://org/tiny", "quantization": "bf16"} | fields
    return api.post(URL, body, format="json")


def hub_version(model, version="bf16", **extra):
    extra.setdefault("quantization", "bf16")
    return services.register_version(model=model, version=version, source_uri=f"hf://org/{version}", **extra)


# --- create and import -------------------------------------------------------------------------


def test_creating_a_version_from_a_local_directory_imports_it_in_the_background(
        admin_api, model, local_node, safetensors_dir, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(URL, {"model": model.pk, "version": "bf16", "source_uri": str(safetensors_dir),
                                        "evaluations": [{"benchmark": "CEval", "score": 61.5, "date": "2025-03-01"}]},
                                  format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["importing"] is True and body["node"] == local_node.pk and body["node_name"] == "local"
    assert body["evaluations"][0]["benchmark"] == "CEval" and body["evaluations"][0]["score"] == 61.5
    version = admin_api.get(f"{URL}{body['id']}/").json()
    assert version["importing"] is False and version["status"] == "registered", version["status_detail"]
    assert version["format"] == "safetensors" and version["quantization"] == "bf16"
    assert version["file_count"] == 4 and version["size_bytes"] > 0 and version["memory_required_bytes"] > 0
    assert version["parameters"] == 128 * 64 * 2 + 64
    files = admin_api.get(f"{URL}{body['id']}/files/").json()
    assert files["count"] == 4 and all(f["verified"] is False for f in files["results"])
    assert Event.objects.filter(verb="create", object_type="modelversion", object_id=str(body["id"])).exists()


def test_an_operator_verifies_a_version_and_progress_reaches_one(
        admin_api, operator_api, model, local_node, safetensors_dir, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        version_id = admin_api.post(URL, {"model": model.pk, "version": "bf16", "source_uri": str(safetensors_dir)},
                                    format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator_api.post(f"{URL}{version_id}/verify/")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "verifying" and response.json()["progress"] == 0
    assert operator_api.post(f"{URL}{version_id}/verify/").status_code == 409  # already verifying
    for callback in callbacks:
        callback()
    version = operator_api.get(f"{URL}{version_id}/").json()
    assert version["status"] == "verified" and version["progress"] == 1 and len(version["sha256"]) == 64
    history = operator_api.get(f"{URL}{version_id}/history/").json()["results"]
    assert [h["to_status"] for h in history] == ["verified", "verifying"]
    assert history[1]["actor"] == operator_api.user.username


@pytest.mark.parametrize(("fields", "field", "says"), [
    ({"source_uri": "models/qwen"}, "source_uri", "neither an absolute path nor a URI"),
    ({"source_uri": "hf://deepseek-ai"}, "source_uri", "hf://org/name"),
    ({"source_uri": "s3://Bad_Bucket/x"}, "source_uri", "bucket"),
    ({"source_uri": "ftp://host/x"}, "source_uri", "unsupported scheme"),
    ({"quantization": "int3-magic"}, "quantization", "unknown quantization 'int3-magic'"),
    ({"quantization": ""}, "quantization", "Required for a hf:// source"),
    ({"version": "bad name/with slash"}, "version", "Letters, digits"),
    ({"format": "tensorflow"}, "format", "not a valid choice"),
    ({"parent_relation": "quantized"}, "parent_relation", "needs a parent"),
    ({"evaluations": [{"benchmark": "CEval", "score": "high"}]}, "evaluations", "valid number"),
    ({"evaluations": [{"benchmark": "CEval", "score": 1}, {"benchmark": "ceval", "score": 2}]}, "evaluations",
     "appears twice"),
    ({"architecture": [1, 2]}, "architecture", "An object"),
])
def test_bad_input_is_a_400_naming_the_field(admin_api, model, fields, field, says):
    response = create(admin_api, model, **fields)
    assert response.status_code == 400, response.content
    assert says in str(response.json()[field])
    assert not ModelVersion.objects.exists()


def test_a_directory_source_needs_a_node_when_there_is_no_local_one(admin_api, model):
    response = create(admin_api, model, source_uri="/data/models/qwen")
    assert response.status_code == 400 and "no node named local" in str(response.json()["node"])


def test_a_hub_source_lies_on_no_node(admin_api, model, local_node):
    response = create(admin_api, model, node=local_node.pk)
    assert response.status_code == 400 and "Only a directory path lies on a node" in str(response.json()["node"])


def test_a_duplicate_version_of_a_model_is_a_400(admin_api, model):
    assert create(admin_api, model).status_code == 201
    response = create(admin_api, model, source_uri="hf://org/other")
    assert response.status_code == 400
    assert response.json()["version"] == ["Tiny-Llama already has a version named 'bf16'."]
    assert ModelVersion.objects.count() == 1


def test_quantizations_are_normalised_and_admins_may_add_their_own(admin_api, model):
    response = create(admin_api, model, quantization="W4A16")
    assert response.status_code == 201 and response.json()["quantization"] == "w4a16"
    assert create(admin_api, model, version="mx", quantization="mxfp4").status_code == 400
    added = admin_api.post("/api/v1/quantizations/", {"name": "MXFP4", "bits_per_param": 4.25}, format="json")
    assert added.status_code == 201 and added.json()["name"] == "mxfp4"
    response = create(admin_api, model, version="mx", quantization="mxfp4")
    assert response.status_code == 201, response.content
    assert response.json()["memory_required_bytes"] is None  # the model has no parameter count
    known = {q["name"]: q for q in admin_api.get("/api/v1/quantizations/known/").json()}
    assert known["mxfp4"]["builtin"] is False and known["w8a8"]["builtin"] is True
    builtin = admin_api.post("/api/v1/quantizations/", {"name": "bf16", "bits_per_param": 16}, format="json")
    assert builtin.status_code == 400 and "built in" in str(builtin.json()["name"])


def test_a_hub_version_gets_a_memory_estimate_from_the_model_parameters(admin_api):
    model = Model.objects.create(name="Qwen2.5-7B-Instruct", parameters=7_615_616_512)
    response = admin_api.post(URL, {
        "model": model.pk, "version": "bf16", "source_uri": "hf://Qwen/Qwen2.5-7B-Instruct", "quantization": "bf16",
        "architecture": {"num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                         "hidden_size": 3584}}, format="json")
    assert response.status_code == 201, response.content
    estimate = response.json()["memory_estimate"]
    assert estimate["weights_bytes"] == 15_231_233_024 and estimate["kv_bytes_per_token"] == 57_344
    assert estimate["context_length"] == 4096 and estimate["concurrency"] == 1
    assert response.json()["memory_required_bytes"] == estimate["total_bytes"]


# --- roles -------------------------------------------------------------------------------------


def test_a_viewer_reads_but_may_not_create_verify_or_promote(viewer_api, model):
    version = hub_version(model)
    assert viewer_api.get(URL).status_code == 200
    assert create(viewer_api, model, version="x").status_code == 403
    assert viewer_api.post(f"{URL}{version.pk}/verify/").status_code == 403
    assert viewer_api.post(f"{URL}{version.pk}/promote/", {"alias": "production"}).status_code == 403
    assert viewer_api.post("/api/v1/models/", {"name": "X"}).status_code == 403


def test_an_operator_may_verify_but_not_promote_or_create(operator_api, model):
    version = hub_version(model)
    assert operator_api.post(f"{URL}{version.pk}/promote/", {"alias": "production"}).status_code == 403
    assert create(operator_api, model, version="x").status_code == 403
    # Allowed, but a hub version has nothing to verify on a node.
    response = operator_api.post(f"{URL}{version.pk}/verify/")
    assert response.status_code == 409 and "import it first" in response.json()["detail"]


def test_no_token_is_a_401(client, model):
    assert client.get(URL).status_code in (401, 403)


# --- promote, deprecate, delete ----------------------------------------------------------------


def test_promote_moves_an_alias_atomically_and_records_it(admin_api, model):
    first, second = hub_version(model, "v1"), hub_version(model, "v2")
    assert admin_api.post(f"{URL}{first.pk}/promote/", {"alias": "production"}).json()["aliases"] == ["production"]
    response = admin_api.post(f"{URL}{second.pk}/promote/", {"alias": "production"}, format="json")
    assert response.status_code == 200 and response.json()["aliases"] == ["production"]
    assert admin_api.get(f"{URL}{first.pk}/").json()["aliases"] == []
    assert Alias.objects.filter(model=model, name="production").count() == 1
    assert admin_api.get(f"/api/v1/models/{model.pk}/").json()["aliases"] == {"production": second.pk}
    event = Event.objects.filter(verb="promote").order_by("-id").first()
    assert event.detail == {"alias": "production", "from_version": first.pk, "to_version": second.pk}
    assert admin_api.get(f"{URL}?alias=production").json()["results"][0]["id"] == second.pk


@pytest.mark.parametrize("alias", ["", "Production", "prod uction", "1st", "x" * 40, "../x"])
def test_a_bad_alias_name_is_a_400(admin_api, model, alias):
    version = hub_version(model)
    response = admin_api.post(f"{URL}{version.pk}/promote/", {"alias": alias}, format="json")
    assert response.status_code == 400 and "alias" in response.json()
    assert not Alias.objects.exists()


def test_failed_and_deprecated_versions_cannot_be_promoted(admin_api, model):
    version = hub_version(model)
    assert admin_api.post(f"{URL}{version.pk}/deprecate/", {"reason": "superseded"}).status_code == 200
    response = admin_api.post(f"{URL}{version.pk}/promote/", {"alias": "canary"})
    assert response.status_code == 409 and "deprecated" in response.json()["detail"]
    assert admin_api.post(f"{URL}{version.pk}/reinstate/").json()["status"] == "registered"


def test_deleting_a_version_that_a_job_uses_is_a_409_naming_the_job(admin_api, model):
    version = hub_version(model)
    job_factories.job(name="qwen-chat", model_version=version)
    response = admin_api.delete(f"{URL}{version.pk}/")
    assert response.status_code == 409 and "qwen-chat" in response.json()["detail"]
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_deleting_a_version_that_holds_an_alias_is_a_409_and_a_free_one_is_deleted(admin_api, model):
    version = hub_version(model)
    services.promote(version, "production")
    response = admin_api.delete(f"{URL}{version.pk}/")
    assert response.status_code == 409 and "production" in response.json()["detail"]
    other = hub_version(model, "spare")
    assert admin_api.delete(f"{URL}{other.pk}/").status_code == 204
    assert Event.objects.filter(verb="delete", object_type="modelversion", object_id=str(other.pk)).exists()


def test_deleting_a_model_with_versions_is_a_409(admin_api, model):
    hub_version(model)
    response = admin_api.delete(f"/api/v1/models/{model.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": f"model {model.name} still has 1 version(s): delete them first"}


def test_deleting_a_quantization_that_versions_use_is_a_409_and_an_unused_one_goes(admin_api, model):
    used = Quantization.objects.create(name="house-q4", bits_per_param=4.5)
    unused = Quantization.objects.create(name="house-q8", bits_per_param=8.5)
    hub_version(model, quantization="house-q4")
    response = admin_api.delete(f"/api/v1/quantizations/{used.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": "1 model version(s) use house-q4"}
    assert admin_api.delete(f"/api/v1/quantizations/{unused.pk}/").status_code == 204


def test_a_verified_version_cannot_be_pointed_at_other_files(admin_api, model, local_node, safetensors_dir):
    version = services.register_version(model=model, version="v", source_uri=str(safetensors_dir), node=local_node)
    services.import_version(version.pk)
    version.refresh_from_db()
    services.request_verify(version)
    services.verify_version(version.pk)
    response = admin_api.post(f"{URL}{version.pk}/import/", {"source_uri": "/elsewhere"}, format="json")
    assert response.status_code == 409 and "immutable" in response.json()["detail"]
    patch = admin_api.patch(f"{URL}{version.pk}/", {"source_uri": "/elsewhere"}, format="json")
    assert patch.status_code == 400 and "cannot change" in str(patch.json()["source_uri"])


def test_a_catalog_entry_is_imported_through_the_import_action(
        admin_api, model, local_node, safetensors_dir, eager, django_capture_on_commit_callbacks):
    entry = services.register_version(model=model, version="bf16", source_uri="hf://org/tiny", quantization="bf16",
                                      catalog=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(f"{URL}{entry.pk}/import/", {"source_uri": f"file://{safetensors_dir}"},
                                  format="json")
    assert response.status_code == 202, response.content
    version = admin_api.get(f"{URL}{entry.pk}/").json()
    assert version["catalog"] is False and version["file_count"] == 4 and version["node_name"] == "local"
    assert version["source_uri"] == f"file://{safetensors_dir}"


# --- evaluations and lineage ---------------------------------------------------------------------


def test_evaluations_are_written_with_the_version_or_by_patch_and_show_the_delta_to_the_parent(admin_api):
    model = Model.objects.create(name="DeepSeek-R1")
    bf16 = create(admin_api, model, version="bf16",
                  evaluations=[{"benchmark": "CEval", "score": 91.8, "notes": "seed"}]).json()
    w8a8 = create(admin_api, model, version="w8a8", quantization="w8a8", parent=bf16["id"],
                  parent_relation="quantized").json()
    response = admin_api.patch(f"{URL}{w8a8['id']}/", {"evaluations": [
        {"benchmark": "CEval", "score": 89.52, "date": "2025-02-20"}, {"benchmark": "MMLU", "score": 88.0}]},
        format="json")
    assert response.status_code == 200, response.content
    scores = {e["benchmark"]: e for e in response.json()["evaluations"]}
    assert scores["CEval"]["score"] == 89.52 and scores["CEval"]["parent_score"] == 91.8
    assert scores["CEval"]["delta"] == pytest.approx(-2.28)
    assert scores["MMLU"]["parent_score"] is None and scores["MMLU"]["delta"] is None
    # A PATCH of the list replaces it.
    again = admin_api.patch(f"{URL}{w8a8['id']}/", {"evaluations": [{"benchmark": "CEval", "score": 89.6}]},
                            format="json").json()
    assert [(e["benchmark"], e["score"]) for e in again["evaluations"]] == [("CEval", 89.6)]


def test_lineage_lists_ancestors_nearest_first_and_children(admin_api, model):
    fp8 = hub_version(model, "fp8", quantization="fp8")
    bf16 = hub_version(model, "bf16", parent=fp8, parent_relation="converted")
    w8a8 = hub_version(model, "w8a8", quantization="w8a8", parent=bf16, parent_relation="quantized")
    w4a16 = hub_version(model, "w4a16", quantization="w4a16", parent=bf16, parent_relation="quantized")
    lineage = admin_api.get(f"{URL}{bf16.pk}/lineage/").json()
    assert [a["id"] for a in lineage["ancestors"]] == [fp8.pk]
    assert sorted(c["id"] for c in lineage["children"]) == sorted([w8a8.pk, w4a16.pk])
    assert [a["version"] for a in admin_api.get(f"{URL}{w8a8.pk}/lineage/").json()["ancestors"]] == ["bf16", "fp8"]


def test_a_parent_that_would_make_a_loop_is_a_400(admin_api, model):
    a = hub_version(model, "a")
    b = hub_version(model, "b", parent=a)
    response = admin_api.patch(f"{URL}{a.pk}/", {"parent": b.pk}, format="json")
    assert response.status_code == 400 and "descend from itself" in str(response.json()["parent"])
    assert admin_api.patch(f"{URL}{a.pk}/", {"parent": a.pk}, format="json").status_code == 400


# --- lists ---------------------------------------------------------------------------------------


def test_versions_are_filtered_by_model_quantization_and_status(admin_api):
    r1, v3 = Model.objects.create(name="DeepSeek-R1"), Model.objects.create(name="DeepSeek-V3")
    bf16, w8a8 = hub_version(r1, "bf16"), hub_version(r1, "w8a8", quantization="w8a8")
    hub_version(v3, "w4a16", quantization="w4a16")
    ModelVersion.objects.filter(pk=w8a8.pk).update(status="verified")

    def ids(query):
        return sorted(v["id"] for v in admin_api.get(f"{URL}?{query}").json()["results"])

    assert ids(f"model={r1.pk}") == sorted([bf16.pk, w8a8.pk])
    assert ids("quantization=W8A8") == [w8a8.pk]
    assert ids("status=verified") == [w8a8.pk]
    assert ids(f"model={r1.pk}&status=registered") == [bf16.pk]
    assert ids("model_name=deepseek-v3") and len(ids("model_name=deepseek-v3")) == 1


def _queries(api, url):
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    return len(ctx)


def test_the_version_and_model_lists_take_a_constant_number_of_queries(viewer_api):
    def grow(n):
        for i in range(n):
            model = Model.objects.create(name=f"M{Model.objects.count()}-{i}")
            parent = hub_version(model, "bf16", evaluations=[services.EvaluationInput("CEval", 80.0)])
            child = hub_version(model, "w8a8", quantization="w8a8", parent=parent, parent_relation="quantized",
                                evaluations=[services.EvaluationInput("CEval", 79.0)])
            services.promote(child, "production")

    grow(2)
    few_versions, few_models = _queries(viewer_api, URL), _queries(viewer_api, "/api/v1/models/")
    grow(10)
    assert _queries(viewer_api, URL) == few_versions
    assert _queries(viewer_api, "/api/v1/models/") == few_models
    assert few_versions <= 8 and few_models <= 6
