"""Weights follow the job, without a remote node: placement prefers nodes with a ready copy and leaves out
nodes whose copy failed; a replica on the origin node starts at once; a copy that cannot start is kept
as a failed copy, so the reconciler does not ask for it again on every pass."""

from __future__ import annotations

import pytest

from jobs import weights
from jobs.engines.registry import get_engine
from jobs.placement import NoRoom, plan_replica
from models_registry.models import ModelCopy
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    a = factories.node(name="cpu-a", status="online")
    b = factories.node(name="cpu-b", status="online")
    version = jf.version(name="tiny", version="q8", status="registered")
    version.node, version.format = a, "gguf"
    version.save(update_fields=["node", "format"])
    ModelCopy.objects.create(version=version, node=a, path=version.source_uri, origin=True, status="pending")
    job = jf.job(name="tiny", engine="llamacpp", model_version=version, accelerators_per_replica=0)
    return job, a, b


def test_placement_puts_a_node_with_a_ready_copy_first(cluster):
    job, a, b = cluster
    assert weights.copies_weights(job)
    ModelCopy.objects.create(version=job.model_version, node=b, path="/m/tiny", status="ready")
    for strategy in ("binpack", "spread"):
        job.placement = strategy
        assert [m.node.name for m in plan_replica(job, get_engine("llamacpp"))] == ["cpu-b"]


def test_a_replica_on_the_origin_node_needs_no_copy_even_unverified(cluster):
    job, a, _b = cluster
    assert weights.prepare(job, a).outcome == "ready"


def test_a_copy_that_cannot_start_fails_once_and_its_node_is_left_out(cluster):
    job, a, b = cluster
    outcome = weights.prepare(job, b)  # the version is not verified: nothing can be copied
    assert outcome.outcome == "failed" and "verify it first" in outcome.reason
    copy = ModelCopy.objects.get(version=job.model_version, node=b)
    assert copy.status == "failed" and copy.status_history.count() == 1
    assert weights.prepare(job, b).outcome == "failed"
    assert copy.status_history.count() == 1  # not asked again
    job.node_selector = {"site": "b"}
    b.labels = {"site": "b"}
    b.save(update_fields=["labels"])
    with pytest.raises(NoRoom, match="the copy of the model failed on every node that matches \\(cpu-b\\)"):
        plan_replica(job, get_engine("llamacpp"))


def test_copy_weights_false_or_a_hub_source_or_the_simulator_copies_nothing(cluster):
    job, _a, _b = cluster
    job.options = {"copy_weights": False}
    assert not weights.copies_weights(job)
    job.options = {}
    job.engine = "simulator"
    assert not weights.copies_weights(job)
    job.engine = "llamacpp"
    job.model_version.source_uri = "hf://org/tiny"
    assert not weights.copies_weights(job)


def test_the_copy_weights_option_must_be_a_boolean(admin_api, cluster):
    job, _a, _b = cluster
    response = admin_api.post("/api/v1/jobs/", {"name": "x", "model_version": job.model_version_id,
                                                "engine": "llamacpp", "accelerators_per_replica": 0,
                                                "options": {"copy_weights": "yes"}}, format="json")
    assert response.status_code == 400 and "copy_weights must be true or false." in str(response.json())


def test_a_replica_spanning_two_nodes_starts_its_leader_only_once_every_members_node_has_the_files(monkeypatch):
    from jobs import reconciler
    from jobs import services as job_services
    from models_registry import services as registry

    a, b = factories.node(name="npu-a", status="online"), factories.node(name="npu-b", status="online")
    factories.accelerators(a, 8, "huawei")
    factories.accelerators(b, 8, "huawei")
    version = jf.version(name="DeepSeek-R1", version="w8a8", quantization="w8a8")
    version.node = a
    version.save(update_fields=["node"])
    ModelCopy.objects.create(version=version, node=a, path=version.source_uri, origin=True, status="ready")

    def request_copy(version, node, **_kwargs):  # the copy service asks the node over SSH: not here
        return ModelCopy.objects.create(version=version, node=node, path="/models/DeepSeek-R1/w8a8", status="pending")

    monkeypatch.setattr(registry.copies, "request_copy", request_copy)
    started = []

    def start(job, engine, instance, members):  # the launch itself goes over SSH: record who started, and when
        started.append((instance.member, instance.node.name))
        job_services.transition_instance(instance, "starting", "", pid=100 + instance.member)

    monkeypatch.setattr(reconciler, "_start", start)
    monkeypatch.setattr(reconciler, "_check", lambda *args: None)
    job = jf.job(name="r1", engine="vllm-ascend", model_version=version, accelerators_per_replica=8,
                 nodes_per_replica=2, desired_state="running")
    for _ in range(2):
        reconciler.reconcile_job(job.pk)
    states = {i.node.name: i.state for i in job.instances.select_related("node")}
    assert states == {"npu-a": "scheduled", "npu-b": "preparing"}, states
    assert started == []  # the head would wait for a worker that cannot start yet
    ModelCopy.objects.filter(version=version, node=b).update(status="ready")
    reconciler.reconcile_job(job.pk)
    reconciler.reconcile_job(job.pk)
    assert started == [(0, "npu-a"), (1, "npu-b")]
