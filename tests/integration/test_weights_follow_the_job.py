"""Weights follow the job, for real: a GGUF version imported and verified on node A (a real sshd), a job
pinned to node B (another sshd, its own model root) by a label. The replica waits ``preparing`` while the
console copies the files to B; a failed copy leaves it failed with the reason and is not retried in a loop;
asked for again, the copy becomes ready and the real ``llama-server`` starts on B's copy."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from jobs import reconciler
from jobs.models import Instance, Job
from models_registry.models import CopyStatusChange, Model, ModelCopy
from models_registry.services import transfer
from nodes.models import Node
from nodes.tasks import probe_node
from nodes.transports.ssh import BULK_POOL, POOL
from tests.engines_support.llama_server import require_llama_server
from tests.engines_support.tiny_gguf import write_tiny_llama
from tests.models_registry import verified_version
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def reconcile_until(job_id, predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconciler.reconcile_job(job_id)
        value = predicate(Job.objects.get(pk=job_id))
        if value:
            return value
        time.sleep(0.2)
    rows = list(Instance.objects.filter(job_id=job_id).values("state", "state_detail", "last_exit_reason"))
    raise AssertionError(f"timed out waiting for {what}; instances: {rows}")


@pytest.fixture
def nodes(admin_api, tmp_path_factory):
    require_sshd()
    daemons = []
    made = []

    def make(name, labels):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp(f"{name}-home"))}
        daemon = SshdNode(env=env).start()
        daemons.append(daemon)
        credential = admin_api.post("/api/v1/credentials/", {"name": f"{name}-key", "username": daemon.username,
                                                             "private_key": daemon.client_key_pem}, format="json")
        response = admin_api.post("/api/v1/nodes/", {"name": name, "address": "127.0.0.1", "transport": "ssh",
                                                     "ssh_port": daemon.port, "labels": labels,
                                                     "credential": credential.json()["id"]}, format="json")
        assert response.status_code == 201, response.content
        node = Node.objects.get(pk=response.json()["id"])
        probe_node(node.pk)
        node.refresh_from_db()
        assert node.status == "online", node.status_detail
        made.append(node)
        return node

    try:
        yield make
    finally:
        POOL.close_all()
        BULK_POOL.close_all()
        for daemon in daemons:
            daemon.cleanup()


def test_a_job_pinned_to_b_waits_for_the_copy_and_starts_llama_server_on_bs_copy(
        admin_api, operator_api, nodes, tmp_path, settings):
    binary = require_llama_server()
    node_a = nodes("node-a", {"site": "a"})
    node_b = nodes("node-b", {"site": "b"})
    root_b = tmp_path / "root-b"
    settings.CONSOLE_MODEL_ROOT = str(root_b)
    source = tmp_path / "root-a" / "tiny-llama"
    source.mkdir(parents=True)
    write_tiny_llama(source / "tiny-llama.gguf")
    version = verified_version(Model.objects.create(name="tiny-llama", family="llama"), node_a, source, "f32")
    assert version.status == "verified" and version.format == "gguf", version.status_detail

    response = admin_api.post("/api/v1/jobs/", {
        "name": "tiny-on-b", "model_version": version.pk, "engine": "llamacpp", "replicas": 1,
        "accelerators_per_replica": 0, "node_selector": {"site": "b"}, "desired_state": "running",
        "env": {"BOOM_LLAMA_SERVER": str(binary)}, "extra_args": ["-c", "512", "-t", "2"]}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    try:
        instance = reconcile_until(job_id, lambda j: j.instances.filter(state="preparing").first(),
                                   what="the replica to wait for its copy")
        assert instance.node_id == node_b.pk and "node-b" in instance.state_detail
        copy = ModelCopy.objects.get(version=version, node=node_b)
        assert copy.status == "pending" and copy.path == f"{root_b}/tiny-llama/f32"

        # The transfer dies half-way: the copy fails, and so does the replica, with the reason.
        def die(path, sent):
            raise OSError("the worker died")

        transfer.run_copy(copy.pk, on_chunk=die)
        copy.refresh_from_db()
        assert copy.status == "failed"
        failed = reconcile_until(job_id, lambda j: j.instances.filter(state="failed").first(),
                                 what="the replica to fail with the copy")
        assert "the copy of the model to node node-b failed" in failed.last_exit_reason
        transitions = CopyStatusChange.objects.filter(copy=copy).count()
        for _ in range(3):  # no retry loop: the failed node is left out, nothing asks for a copy again
            reconciler.reconcile_job(job_id)
        assert CopyStatusChange.objects.filter(copy=copy).count() == transitions
        job = Job.objects.get(pk=job_id)
        assert job.instances.get().state == "failed"
        assert "the copy of the model to node node-b failed" in job.state_detail

        # The operator asks for the copy again: it resumes, becomes ready, and the replica starts on it.
        assert operator_api.post(f"/api/v1/model-versions/{version.pk}/copies/", {"node": node_b.pk},
                                 format="json").status_code == 202
        transfer.run_copy(copy.pk)
        copy.refresh_from_db()
        assert copy.status == "ready", copy.status_detail
        running = reconcile_until(job_id, lambda j: j.instances.filter(state="running").first(), timeout=90,
                                  what="llama-server to be ready on node-b")
        assert running.node_id == node_b.pk
        argv = Path(f"/proc/{running.pid}/cmdline").read_bytes().split(b"\0")
        assert f"{root_b}/tiny-llama/f32/tiny-llama.gguf".encode() in argv
        reply = httpx.post(running.endpoint + "/chat/completions", timeout=30, json={
            "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "ignore_eos": True})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 4
    finally:
        Job.objects.filter(pk=job_id).update(desired_state="stopped")
        reconciler.reconcile_job(job_id)


def test_a_replica_spanning_two_nodes_gets_the_files_copied_to_both_before_its_leader_starts(
        nodes, tmp_path, settings, monkeypatch):
    """Three real sshd nodes: the version on A, a two-node vLLM replica pinned to B and C. Both copies are
    asked for and made for real; nothing starts until both are ready; then the leader and the worker start,
    each with its own node's copy. (The launch itself is recorded, not run: there is no vLLM on these nodes.)"""
    from jobs import services as job_services
    from jobs.runtime import launch_spec
    from tests.jobs import factories as jf

    node_a = nodes("node-a", {"site": "a"})
    node_b = nodes("node-b", {"site": "bc"})
    node_c = nodes("node-c", {"site": "bc"})
    settings.CONSOLE_MODEL_ROOT = str(tmp_path / "models")
    source = tmp_path / "root-a" / "tiny-llama"
    source.mkdir(parents=True)
    write_tiny_llama(source / "tiny-llama.gguf")
    version = verified_version(Model.objects.create(name="tiny-llama", family="llama"), node_a, source, "f32")
    assert version.status == "verified", version.status_detail
    started = []

    def start(job, engine, instance, members):
        spec = launch_spec(instance, [], members, workdir="/tmp")
        started.append((instance.member, instance.node.name, spec.model_path))
        job_services.transition_instance(instance, "starting", "", pid=1)

    monkeypatch.setattr(reconciler, "_start", start)
    monkeypatch.setattr(reconciler, "_check", lambda *args: None)
    job = jf.job(name="tiny-on-b-and-c", engine="vllm", model_version=version, accelerators_per_replica=0,
                 nodes_per_replica=2, node_selector={"site": "bc"}, desired_state="running")
    try:
        reconcile_until(job.pk, lambda j: j.instances.filter(state="preparing").count() == 2,
                        what="both members to wait for their copies")
        copies = {c.node_id: c for c in ModelCopy.objects.filter(version=version, origin=False)}
        assert set(copies) == {node_b.pk, node_c.pk}
        transfer.run_copy(copies[node_b.pk].pk)
        reconciler.reconcile_job(job.pk)
        assert started == []  # one member's files are there, the other's not yet
        transfer.run_copy(copies[node_c.pk].pk)
        assert set(ModelCopy.objects.filter(version=version).values_list("status", flat=True)) == {"ready"}
        reconcile_until(job.pk, lambda j: len(started) == 2, what="the leader, then the worker, to start")
        paths = {c.node.name: c.path for c in ModelCopy.objects.select_related("node").filter(version=version)}
        assert [(member, node) for member, node, _path in started] == [
            (0, started[0][1]), (1, "node-c" if started[0][1] == "node-b" else "node-b")]
        assert all(path.startswith(paths[node]) for _member, node, path in started), (started, paths)
        for node in ("node-b", "node-c"):
            assert Path(paths[node], "tiny-llama.gguf").read_bytes() == (source / "tiny-llama.gguf").read_bytes()
    finally:
        Job.objects.filter(pk=job.pk).update(desired_state="stopped")
