"""Placement: vendor by engine, node selector, free memory against the estimate, binpack and spread."""

from types import SimpleNamespace

import pytest

from jobs.models import Allocation, Instance
from jobs.placement import NoRoom, plan_replica
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db

VLLM = SimpleNamespace(name="vllm", vendors=frozenset({"nvidia"}))
ASCEND = SimpleNamespace(name="vllm-ascend", vendors=frozenset({"huawei"}))
ANY = SimpleNamespace(name="simulator", vendors=frozenset({"nvidia", "huawei", "cpu"}))


def test_an_nvidia_engine_is_placed_on_gpus_and_an_ascend_engine_on_npus():
    gpu_node, npu_node = factories.node(name="gpu"), factories.node(name="npu")
    factories.accelerators(gpu_node, 8, "nvidia")
    factories.accelerators(npu_node, 8, "huawei")
    job = jf.job(accelerators_per_replica=2)
    assert plan_replica(job, VLLM)[0].node == gpu_node
    assert plan_replica(job, ASCEND)[0].node == npu_node
    assert [a.vendor for a in plan_replica(job, ASCEND)[0].accelerators] == ["huawei", "huawei"]


def test_no_room_says_why_and_names_the_memory_shortfall():
    node = factories.node(name="gpu")
    factories.accelerators(node, 8, "nvidia")  # 80 GiB each, 1 GiB used
    job = jf.job(accelerators_per_replica=2, model_version=jf.version(memory=400 << 30))
    with pytest.raises(NoRoom) as excinfo:
        plan_replica(job, VLLM)
    assert "200.0 GiB" in str(excinfo.value) and "nvidia" in str(excinfo.value)


def test_the_node_selector_limits_the_candidates():
    a, b = factories.node(name="a", labels={"rack": "r1"}), factories.node(name="b", labels={"rack": "r2"})
    factories.accelerators(a, 8)
    factories.accelerators(b, 8)
    job = jf.job(node_selector={"rack": "r2"})
    assert plan_replica(job, VLLM)[0].node == b


def test_binpack_fills_the_fuller_node_and_spread_uses_the_emptier():
    a, b = factories.node(name="a"), factories.node(name="b")
    acc_a = factories.accelerators(a, 8)
    factories.accelerators(b, 8)
    other = jf.job(name="other")
    holder = Instance.objects.create(job=other, replica=0, node=a, port=1)
    Allocation.objects.bulk_create([Allocation(accelerator=x, instance=holder) for x in acc_a[:4]])
    assert plan_replica(jf.job(name="binpack", placement="binpack"), VLLM)[0].node == a
    assert plan_replica(jf.job(name="spread", placement="spread"), VLLM)[0].node == b


def test_allocated_unhealthy_missing_and_offline_accelerators_are_not_offered():
    node = factories.node(name="gpu")
    acc = factories.accelerators(node, 4)
    acc[0].health = "critical"
    acc[0].save()
    acc[1].present = False
    acc[1].save()
    holder = Instance.objects.create(job=jf.job(name="other"), replica=0, node=node, port=1)
    Allocation.objects.create(accelerator=acc[2], instance=holder)
    plan = plan_replica(jf.job(accelerators_per_replica=1), VLLM)
    assert [a.pk for a in plan[0].accelerators] == [acc[3].pk]
    factories.node(name="down", status="unreachable")
    with pytest.raises(NoRoom):
        plan_replica(jf.job(name="two", accelerators_per_replica=2), VLLM)


def test_a_cpu_replica_goes_anywhere_and_a_multi_node_replica_needs_that_many_nodes():
    factories.node(name="cpu-1")
    factories.node(name="cpu-2")
    assert plan_replica(jf.job(engine="simulator", accelerators_per_replica=0), ANY)[0].node.name in ("cpu-1", "cpu-2")
    a, b = factories.node(name="npu-a"), factories.node(name="npu-b")
    factories.accelerators(a, 8, "huawei")
    factories.accelerators(b, 8, "huawei")
    plan = plan_replica(jf.job(name="r1", engine="vllm-ascend", accelerators_per_replica=8, nodes_per_replica=2),
                        ASCEND)
    assert {m.node.name for m in plan} == {"npu-a", "npu-b"} and all(len(m.accelerators) == 8 for m in plan)
    with pytest.raises(NoRoom):
        plan_replica(jf.job(name="r2", engine="vllm-ascend", accelerators_per_replica=8, nodes_per_replica=3),
                     ASCEND)
