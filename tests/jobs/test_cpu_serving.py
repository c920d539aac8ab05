"""CPU serving with vLLM: placement by free cores and free memory, disjoint cores for the replicas on one
node (passed to vLLM as its thread binding), the preview, and the API accepting 0 accelerators for vLLM
while engines that cannot serve on CPUs still refuse it."""

import pytest

from jobs import reconciler
from jobs.engines.registry import get_engine
from jobs.models import Instance, InstanceStateChange
from jobs.placement import NoRoom, plan_replica
from jobs.runtime import launch_spec
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db

VLLM = get_engine("vllm")
GIB = 1 << 30


def cpu_node(name, cores=8, free_gib=16, **fields):
    return factories.node(name=name, facts={"cpu_cores": cores, "memory_total_bytes": 64 * GIB,
                                            "memory_available_bytes": free_gib * GIB}, **fields)


def cpu_job(name="tiny-cpu", cores=2, kv_cache_gib=1, memory_gib=None, **fields):
    options = {key: value for key, value in (("cpu_cores", cores), ("kv_cache_gib", kv_cache_gib))
               if value is not None}
    version = jf.version(name=f"{name}-model", memory=memory_gib * GIB if memory_gib else None)
    return jf.job(name=name, engine="vllm", accelerators_per_replica=0, options=options, model_version=version,
                  **fields)


def place_replicas(job, count):
    """Plan ``count`` replicas in one pass as the reconciler does, and save each as a live instance."""
    from jobs.placement import reserve

    reserved, cores, memory, plans = set(), {}, {}, []
    for _replica in range(count):
        plan = plan_replica(job, VLLM, reserved=reserved, reserved_cores=cores, reserved_memory=memory)
        reserve(plan, reserved, cores, memory)
        plans.append(plan)
    return plans


def test_replicas_on_one_node_get_disjoint_cores_and_the_next_one_waits_for_room():
    cpu_node("cpu-1", cores=4)
    job = cpu_job(cores=2)
    first, second = (plan[0] for plan in place_replicas(job, 2))
    assert (first.node.name, first.cpu_cores, second.cpu_cores) == ("cpu-1", [0, 1], [2, 3])
    for replica, member in enumerate((first, second)):
        Instance.objects.create(job=job, replica=replica, node=member.node, port=8000 + replica, state="running",
                                cpu_cores=member.cpu_cores)
    with pytest.raises(NoRoom, match="needs 2 free CPU core"):
        plan_replica(job, VLLM)
    # A stopped instance gives its cores back.
    Instance.objects.filter(job=job, replica=0).update(state="stopped")
    assert plan_replica(job, VLLM)[0].cpu_cores == [0, 1]


def test_the_memory_estimate_plus_the_kv_cache_must_fit_the_nodes_free_memory():
    cpu_node("small", cores=4, free_gib=6)
    cpu_node("large", cores=8, free_gib=20)
    assert plan_replica(cpu_job(name="fits-large", memory_gib=8, kv_cache_gib=4), VLLM)[0].node.name == "large"
    with pytest.raises(NoRoom) as refused:
        plan_replica(cpu_job(name="too-big", memory_gib=16, kv_cache_gib=8), VLLM)
    assert "2 node(s) lack the 24.0 GiB of free memory it needs" in str(refused.value)
    # Replicas planned in one pass share a node's free memory: binpack fills the node with fewer free cores
    # first, and the second 5 GiB replica no longer fits the 6 GiB there although two cores are still free.
    plans = place_replicas(cpu_job(name="two", cores=1, memory_gib=4, kv_cache_gib=1), 2)
    assert [plan[0].node.name for plan in plans] == ["small", "large"]
    assert [plan[0].cpu_cores for plan in plans] == [[0], [0]]


def test_without_cpu_cores_a_replica_takes_every_free_core_of_its_node():
    cpu_node("whole", cores=6)
    plan = plan_replica(cpu_job(cores=None), VLLM)
    assert plan[0].cpu_cores == [0, 1, 2, 3, 4, 5]


def test_a_node_whose_cores_are_unknown_is_not_used_for_cpu_serving():
    factories.node(name="never-probed")
    with pytest.raises(NoRoom, match="nodes with enough: 0"):
        plan_replica(cpu_job(), VLLM)


def test_the_reconciler_records_the_cores_and_the_launch_binds_vllm_to_them(settings):
    node = cpu_node("cpu-1", cores=4)
    job = cpu_job(cores=2, replicas=2, desired_state="running")
    reconciler._plan(job, VLLM)
    instances = list(Instance.objects.filter(job=job).order_by("replica"))
    assert [i.cpu_cores for i in instances] == [[0, 1], [2, 3]]
    assert InstanceStateChange.objects.filter(instance=instances[1], reason="placed on cpu-1 on CPU cores 2-3").exists()
    spec = launch_spec(instances[1], [])
    assert spec.vendor is None and spec.cpu_cores == [2, 3] and VLLM.validate(spec) == {}
    env = VLLM.build_env(spec)
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "2-3" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert node.pk == instances[0].node_id


def test_the_instances_api_shows_the_cores_of_a_cpu_serving_instance(admin_api):
    node = cpu_node("cpu-1", cores=4)
    job = cpu_job(cores=2)
    Instance.objects.create(job=job, replica=0, node=node, port=8000, state="running", cpu_cores=[2, 3])
    listed = admin_api.get(f"/api/v1/instances/?job={job.pk}").json()["results"]
    assert [row["cpu_cores"] for row in listed] == [[2, 3]]


def test_the_api_accepts_vllm_with_no_accelerators_and_previews_cores_and_memory(admin_api):
    cpu_node("cpu-1", cores=4, free_gib=8)
    version = jf.version(name="tiny", memory=1 * GIB)
    body = {"name": "tiny-cpu", "model_version": version.pk, "engine": "vllm", "replicas": 3,
            "accelerators_per_replica": 0, "options": {"cpu_cores": 2, "kv_cache_gib": 2}}
    preview = admin_api.post("/api/v1/jobs/preview-placement/", body, format="json")
    assert preview.status_code == 200, preview.content
    data = preview.json()
    assert data["cpu_serving"] is True and data["memory_per_replica_bytes"] == 3 * GIB
    assert data["placeable_replicas"] == 2
    assert [r[0]["cpu_cores"] for r in data["replicas"]] == [[0, 1], [2, 3]]
    assert "needs 2 free CPU core(s)" in data["reason"]
    created = admin_api.post("/api/v1/jobs/", body, format="json")
    assert created.status_code == 201, created.content


@pytest.mark.parametrize("engine", ["sglang", "vllm-ascend", "mindie"])
def test_engines_that_cannot_serve_on_cpus_still_refuse_zero_accelerators(admin_api, engine):
    body = {"name": f"{engine}-cpu", "model_version": jf.version().pk, "engine": engine, "replicas": 1,
            "accelerators_per_replica": 0}
    response = admin_api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 400
    assert any("cannot run on a CPU-only placement" in m for m in response.json()["accelerators_per_replica"])


def test_cpu_options_on_a_gpu_job_and_unknown_vllm_options_are_400s_on_options(admin_api):
    version = jf.version()
    base = {"name": "gpu", "model_version": version.pk, "engine": "vllm", "replicas": 1,
            "accelerators_per_replica": 1}
    response = admin_api.post("/api/v1/jobs/", {**base, "options": {"cpu_cores": 4}}, format="json")
    assert response.status_code == 400
    assert response.json()["options"] == ["cpu_cores is a CPU serving option: set accelerators_per_replica to 0 to "
                                          "use it"]
    response = admin_api.post("/api/v1/jobs/", {**base, "accelerators_per_replica": 0,
                                                "options": {"kv_cache_gib": "4"}}, format="json")
    assert response.status_code == 400 and response.json()["options"] == ["kv_cache_gib must be an integer, not '4'"]
