"""End to end: the simulator engine launched through both executors (local, and SSH to a real sshd),
ready, killed with SIGKILL, restarted by the reconciler with the cause recorded; extra arguments with
shell metacharacters stay literal; a lost node's replica comes back on another node."""

import os
import signal
import sys
import time
import uuid

import httpx
import pytest

from jobs import reconciler
from jobs.models import Instance, Job
from nodes.models import Node
from nodes.services import probe_node, register_local_node
from nodes.transports.ssh import POOL
from tests.conftest import FAKE_BIN
from tests.jobs import factories as jf
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PATH = f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin"


def reconcile_until(job_id, predicate, timeout=30.0, what="condition"):
    """Drive the product's reconciler (as its periodic task does) until ``predicate(job)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconciler.reconcile_job(job_id)
        job = Job.objects.get(pk=job_id)
        value = predicate(job)
        if value:
            return value
        time.sleep(0.2)
    instances = list(Instance.objects.filter(job_id=job_id).values("state", "state_detail", "last_exit_reason"))
    raise AssertionError(f"timed out waiting for {what}; instances: {instances}")


def running_instance(job):
    return job.instances.filter(state="running").select_related("node").first()


def health(instance) -> int:
    return httpx.get(instance.endpoint.removesuffix("/v1") + "/health", timeout=2).status_code


def node_env(tmp_path_factory):
    """Each simulated node gets a HOME of its own, so its ~/.boom-console is its own, as on a real machine."""
    return {"PATH": PATH, "HOME": str(tmp_path_factory.mktemp("node-home"))}


@pytest.fixture
def ssh_node(admin_api, tmp_path_factory):
    require_sshd()
    daemon = SshdNode(env=node_env(tmp_path_factory))
    daemon.start()
    nodes = []

    def make(name="ssh-1", daemon=daemon):
        credential = admin_api.post("/api/v1/credentials/", {"name": f"{name}-key", "username": daemon.username,
                                                             "private_key": daemon.client_key_pem}, format="json")
        response = admin_api.post("/api/v1/nodes/", {"name": name, "address": "127.0.0.1", "transport": "ssh",
                                                     "ssh_port": daemon.port,
                                                     "credential": credential.json()["id"]}, format="json")
        node = Node.objects.get(pk=response.json()["id"])
        probe_node(node.pk)
        node.refresh_from_db()
        assert node.status == "online", node.status_detail
        nodes.append(node)
        return node

    make.daemon = daemon
    yield make
    POOL.close_all()
    daemon.cleanup()


@pytest.fixture
def local_node():
    node = register_local_node()
    probe_node(node.pk)
    return Node.objects.get(pk=node.pk)


def create_job(admin_api, name, node_selector=None, **extra):
    version = jf.version(status="registered")
    body = {"name": name, "model_version": version.pk, "engine": "simulator", "replicas": 1,
            "accelerators_per_replica": 0, "options": {"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1},
            **extra}
    if node_selector:
        body["node_selector"] = node_selector
    response = admin_api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def cleanup_job(job_id):
    Job.objects.filter(pk=job_id).update(desired_state="stopped")
    reconciler.reconcile_job(job_id)


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_the_simulator_runs_and_a_kill_9_is_healed_with_its_cause_recorded(
        admin_api, operator_api, transport, request):
    if transport == "ssh":
        node = request.getfixturevalue("ssh_node")()
        Node.objects.exclude(pk=node.pk).delete()
    else:
        node = request.getfixturevalue("local_node")
    job_id = create_job(admin_api, f"sim-{transport}")
    try:
        assert operator_api.post(f"/api/v1/jobs/{job_id}/start/").status_code == 202
        instance = reconcile_until(job_id, running_instance, what="the simulator to be ready")
        assert instance.node_id == node.pk and health(instance) == 200
        job = admin_api.get(f"/api/v1/jobs/{job_id}/").json()
        assert job["state"] == "running" and job["endpoints"] == [instance.endpoint]
        os.kill(instance.pid, signal.SIGKILL)
        restarted = reconcile_until(job_id, lambda j: (i := running_instance(j)) and i.restart_count == 1 and i,
                                    what="the restart after kill -9")
        assert "SIGKILL" in restarted.last_exit_reason
        assert restarted.pid != instance.pid and health(restarted) == 200
        listed = admin_api.get(f"/api/v1/instances/?job={job_id}").json()["results"][0]
        assert listed["restart_count"] == 1 and "SIGKILL" in listed["last_exit_reason"]
        logs = admin_api.get(f"/api/v1/instances/{restarted.pk}/logs/?tail=50").json()
        assert "text" in logs and not logs.get("error")
        assert operator_api.post(f"/api/v1/jobs/{job_id}/stop/").status_code == 202
        reconcile_until(job_id, lambda j: j.state == "stopped" and not j.instances.exclude(state="stopped").exists(),
                        what="the job to stop")
        with pytest.raises(httpx.HTTPError):
            httpx.get(restarted.endpoint.removesuffix("/v1") + "/health", timeout=1)
    finally:
        cleanup_job(job_id)


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_extra_arguments_with_shell_metacharacters_are_passed_literally(admin_api, transport, request):
    if transport == "ssh":
        node = request.getfixturevalue("ssh_node")()
        Node.objects.exclude(pk=node.pk).delete()
    else:
        request.getfixturevalue("local_node")
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    job_id = create_job(admin_api, f"inject-{transport}", desired_state="running",
                        extra_args=[f"; touch {marker}", f"$(touch {marker}-2)", f"`touch {marker}-3`"])
    try:
        reconcile_until(job_id, lambda j: j.instances.filter(restart_count__gte=1).exists() or
                        j.instances.filter(state="restarting").exists(), what="the simulator to refuse the args")
        instance = Instance.objects.get(job_id=job_id)
        assert instance.last_exit_reason
        for suffix in ("", "-2", "-3"):
            assert not os.path.exists(marker + suffix)
    finally:
        cleanup_job(job_id)


def test_a_lost_nodes_replica_comes_back_on_another_node_and_a_short_blip_moves_nothing(admin_api, ssh_node,
                                                                                        settings, tmp_path_factory):
    settings.CONSOLE_NODE_LOSS_GRACE_S = 3
    first = ssh_node("ssh-a")
    other = SshdNode(env=node_env(tmp_path_factory)).start()
    try:
        second = ssh_node("ssh-b", daemon=other)
        job_id = create_job(admin_api, "sim-failover", desired_state="running", placement="spread")
        instance = reconcile_until(job_id, running_instance, what="the first placement")
        lost_daemon = ssh_node.daemon if instance.node_id == first.pk else other
        survivor = second if instance.node_id == first.pk else first
        old_pid = instance.pid
        try:
            lost_daemon.stop()
            POOL.close_all()
            moved = reconcile_until(job_id, lambda j: (i := running_instance(j)) and i.node_id == survivor.pk and i,
                                    timeout=40, what="the replica to move to the other node")
            assert "unreachable" in moved.last_exit_reason
            assert Node.objects.get(pk=instance.node_id).status == "unreachable"
            # The lost node comes back: the orphaned process there is stopped, the replica stays where it is.
            lost_daemon.restart()
            lost_node = Node.objects.get(pk=instance.node_id)
            probe_node(lost_node.pk)
            assert reconciler.reap_orphans(Node.objects.get(pk=lost_node.pk)) == [instance.key]
            with pytest.raises(ProcessLookupError):
                os.kill(old_pid, 0)
            assert running_instance(Job.objects.get(pk=job_id)).node_id == survivor.pk
        finally:
            try:
                os.kill(old_pid, signal.SIGKILL)  # the 'lost' node is this machine: never leave the orphan
            except ProcessLookupError:
                pass
        cleanup_job(job_id)
    finally:
        other.cleanup()


def test_a_real_llama_cpp_server_is_launched_killed_and_healed_by_the_reconciler(admin_api, local_node, tmp_path):
    from models_registry.models import Model, ModelVersion
    from tests.engines_support.llama_server import require_llama_server
    from tests.engines_support.tiny_gguf import write_tiny_llama

    binary = require_llama_server()
    model_file = write_tiny_llama(tmp_path / "tiny-llama.gguf")
    model = Model.objects.create(name="tiny-llama", family="llama")
    version = ModelVersion.objects.create(model=model, version="q8-test", format="gguf", quantization="f32",
                                          source_uri=str(model_file))
    response = admin_api.post("/api/v1/jobs/", {
        "name": "tiny-llama-cpu", "model_version": version.pk, "engine": "llamacpp", "replicas": 1,
        "accelerators_per_replica": 0, "env": {"BOOM_LLAMA_SERVER": str(binary)}, "desired_state": "running",
        "extra_args": ["-c", "512", "-t", "2", "; touch /tmp/boom-llama-pwned"],
    }, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    try:
        # The literal extra token makes llama-server refuse to start: the cause is recorded, nothing is created.
        reconcile_until(job_id, lambda j: j.instances.filter(state="restarting").exists(), what="the refusal")
        assert not os.path.exists("/tmp/boom-llama-pwned")
        Job.objects.filter(pk=job_id).update(extra_args=["-c", "512", "-t", "2"])
        Instance.objects.filter(job_id=job_id).update(next_attempt_at=None)
        instance = reconcile_until(job_id, running_instance, timeout=60, what="llama-server to be ready")
        assert health(instance) == 200
        reply = httpx.post(instance.endpoint + "/chat/completions", timeout=30, json={
            "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "ignore_eos": True})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 8
        os.kill(instance.pid, signal.SIGKILL)
        Instance.objects.filter(job_id=job_id).update(backoff_s=0)
        healed = reconcile_until(job_id, lambda j: (i := running_instance(j)) and i.pid != instance.pid and i,
                                 timeout=60, what="llama-server to be restarted")
        assert "SIGKILL" in healed.last_exit_reason and health(healed) == 200
    finally:
        cleanup_job(job_id)


def test_two_reconcilers_at_once_start_one_process_and_a_lost_transition_re_adopts_it(admin_api, local_node,
                                                                                       monkeypatch):
    import threading

    from django.db import close_old_connections

    from jobs.runtime import executor_for

    job_id = create_job(admin_api, "sim-race", desired_state="running")
    try:
        # Two workers with no shared lock (as two hosts whose cache is down): both run a full pass at once.
        monkeypatch.setattr(reconciler.cache, "add", lambda *args, **kwargs: True)
        errors = []

        def one_pass():
            try:
                reconciler.reconcile_job(job_id)
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                close_old_connections()

        threads = [threading.Thread(target=one_pass) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        instance = reconcile_until(job_id, running_instance, what="the simulator to be ready")
        assert Instance.objects.filter(job_id=job_id).count() == 1
        executor = executor_for(instance.node)
        assert executor.status(instance.key).pid == instance.pid
        # A worker died after starting the process but before recording it: the next pass adopts it.
        Instance.objects.filter(pk=instance.pk).update(state="scheduled", pid=None)
        adopted = reconcile_until(job_id, running_instance, what="the process to be re-adopted")
        assert adopted.pid == instance.pid and adopted.restart_count == 0
    finally:
        cleanup_job(job_id)
