"""The guided deploy: ``POST model-versions/{id}/recommend/`` answers the engine, the accelerators and nodes
a replica needs, whether it fits now, and every reason it does not."""

from __future__ import annotations

import pytest

from models_registry.models import Model, ModelCopy, ModelVersion
from nodes.models import Accelerator
from tests import factories

pytestmark = pytest.mark.django_db

GIB = 1 << 30


def url(version):
    return f"/api/v1/model-versions/{version.pk}/recommend/"


def ascend_node(name, *, cann="8.2.RC1", free=8):
    node = factories.node(name=name, status="online", facts={"cann_version": cann})
    accelerators = factories.accelerators(node, count=8, vendor="huawei")
    Accelerator.objects.filter(node=node).update(memory_total_bytes=64 * GIB)
    return node, accelerators


def r1_w8a8(node=None, status="verified"):
    model = Model.objects.create(name="DeepSeek-R1", parameters=671_000_000_000)
    version = ModelVersion.objects.create(model=model, version="w8a8", format="safetensors", quantization="w8a8",
                                          source_uri="/data/models/DeepSeek-R1-W8A8", node=node,
                                          memory_required_bytes=760 * GIB, sha256="a" * 64)
    ModelVersion.objects.filter(pk=version.pk).update(status=status)
    version.refresh_from_db()
    if node is not None:
        ModelCopy.objects.create(version=version, node=node, path=version.source_uri, origin=True,
                                 status="ready" if status == "verified" else "pending")
    return version


def test_deepseek_r1_w8a8_on_ascend_needs_two_nodes_of_eight_910b_and_fits_on_two_free_atlas(operator_api):
    a, _ = ascend_node("atlas-a")
    ascend_node("atlas-b")
    version = r1_w8a8(node=a)
    body = operator_api.post(url(version), {"vendor": "huawei"}, format="json").json()
    assert body["engine"] == "vllm-ascend"
    assert body["accelerators_per_replica"] == 8 and body["nodes_per_replica"] == 2
    assert body["accelerator_memory_bytes"] == 64 * GIB
    assert body["fits"] is True and body["reasons"] == []
    members = body["placement"][0]["members"]
    assert [m["name"] for m in members] == ["atlas-a", "atlas-b"] and members[0]["has_copy"] is True
    assert body["copies_needed"] == ["atlas-b"]
    assert body["job"] == {"name": "deepseek-r1-w8a8", "model_version": version.pk, "engine": "vllm-ascend",
                           "replicas": 1, "accelerators_per_replica": 8, "nodes_per_replica": 2}


def test_every_reason_it_does_not_fit_is_given(operator_api):
    a, accelerators = ascend_node("atlas-a", cann="7.0.0")
    version = r1_w8a8(node=a, status="registered")
    body = operator_api.post(url(version), {"vendor": "huawei", "replicas": 1}, format="json").json()
    assert body["fits"] is False
    text = " | ".join(body["reasons"])
    assert "need 2 node(s) with 8 free huawei accelerator(s) each; 1 node(s) have them now" in text
    assert "node atlas-a has CANN 7.0.0; vLLM-Ascend needs 8.1 or newer" in text


def test_weights_that_cannot_be_copied_are_a_reason(operator_api):
    a, _ = ascend_node("atlas-a")
    ascend_node("atlas-b")
    version = r1_w8a8(node=a, status="registered")
    body = operator_api.post(url(version), {"vendor": "huawei"}, format="json").json()
    assert body["fits"] is False
    assert any("cannot be copied there: verify the version first" in r for r in body["reasons"])


def test_a_quantization_no_engine_serves_on_the_vendor_is_a_reason(operator_api):
    ascend_node("atlas-a")
    model = Model.objects.create(name="Llama")
    version = ModelVersion.objects.create(model=model, version="awq", format="safetensors", quantization="awq",
                                          source_uri="hf://org/llama-awq", memory_required_bytes=10 * GIB)
    body = operator_api.post(url(version), {"vendor": "huawei"}, format="json").json()
    assert body["fits"] is False
    assert any("cannot serve the awq quantization on huawei accelerators" in r for r in body["reasons"])


def test_gguf_goes_to_llama_cpp_and_safetensors_on_nvidia_to_vllm(operator_api):
    node = factories.node(name="gpu-1", status="online", facts={"cuda_version": "12.4"})
    factories.accelerators(node, count=2, vendor="nvidia")
    model = Model.objects.create(name="Qwen")
    gguf = ModelVersion.objects.create(model=model, version="q4", format="gguf", quantization="q4_k_m",
                                       source_uri="hf://org/qwen-gguf", memory_required_bytes=5 * GIB)
    assert operator_api.post(url(gguf), {"vendor": "cpu"}, format="json").json()["engine"] == "llamacpp"
    st = ModelVersion.objects.create(model=model, version="bf16", format="safetensors", quantization="bf16",
                                     source_uri="hf://org/qwen", memory_required_bytes=100 * GIB)
    body = operator_api.post(url(st), {}, format="json").json()
    assert body["engine"] == "vllm" and body["vendor"] == "nvidia" and body["accelerators_per_replica"] == 2
    assert body["fits"] is True


def test_a_driver_older_than_the_engine_needs_is_a_reason_and_a_newer_one_or_a_release_candidate_is_not(
        operator_api):
    old_gpu = factories.node(name="gpu-old", status="online",
                             facts={"cuda_version": "12.4", "nvidia_driver_version": "470.82.01"})
    factories.accelerators(old_gpu, count=2, vendor="nvidia")
    model = Model.objects.create(name="Qwen")
    st = ModelVersion.objects.create(model=model, version="bf16", format="safetensors", quantization="bf16",
                                     source_uri="hf://org/qwen", memory_required_bytes=100 * GIB)
    body = operator_api.post(url(st), {"vendor": "nvidia"}, format="json").json()
    assert body["fits"] is False
    assert "node gpu-old has driver 470.82.01; vLLM needs driver 525.60 or newer" in body["reasons"]

    a, _ = ascend_node("atlas-a")
    b, _ = ascend_node("atlas-b")
    version = r1_w8a8(node=a)
    a.facts = {**a.facts, "ascend_driver_version": "23.0.3"}
    a.save(update_fields=["facts"])
    b.facts = {**b.facts, "ascend_driver_version": "24.1.rc3"}
    b.save(update_fields=["facts"])
    body = operator_api.post(url(version), {"vendor": "huawei"}, format="json").json()
    assert body["reasons"] == ["node atlas-a has driver 23.0.3; vLLM-Ascend needs driver 24.1 or newer"]


def test_recommend_needs_an_operator_and_checks_its_input(viewer_api, operator_api):
    version = r1_w8a8()
    assert viewer_api.post(url(version), {}, format="json").status_code == 403
    bad = operator_api.post(url(version), {"vendor": "amd", "replicas": 0}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"vendor", "replicas"}
    assert operator_api.post("/api/v1/model-versions/999999/recommend/", {}, format="json").status_code == 404


def test_cpu_serving_is_recommended_where_free_cores_and_memory_hold_the_weights(operator_api):
    """vLLM on CPU (issue 15): the recommendation places it as placement does, by free cores and free memory."""
    small = factories.node(name="cpu-small", status="online",
                           facts={"cpu_cores": 4, "memory_total_bytes": 16 * GIB, "memory_available_bytes": 2 * GIB})
    big = factories.node(name="cpu-big", status="online",
                         facts={"cpu_cores": 8, "memory_total_bytes": 64 * GIB, "memory_available_bytes": 32 * GIB})
    model = Model.objects.create(name="TinyLlama")
    version = ModelVersion.objects.create(model=model, version="bf16", format="safetensors", quantization="bf16",
                                          source_uri="hf://org/tiny", memory_required_bytes=4 * GIB)
    body = operator_api.post(url(version), {"vendor": "cpu"}, format="json").json()
    assert body["engine"] == "vllm" and body["accelerators_per_replica"] == 0 and body["vendor"] is None
    assert body["fits"] is True, body["reasons"]
    assert [m["name"] for m in body["placement"][0]["members"]] == [big.name]
    # Two replicas want all the cores of a node each: the small node lacks the memory, so one does not fit.
    body = operator_api.post(url(version), {"vendor": "cpu", "replicas": 2}, format="json").json()
    assert body["fits"] is False and any("CPU" in reason for reason in body["reasons"]), body["reasons"]
    assert small.name not in [m["name"] for p in body["placement"] for m in p["members"]]
