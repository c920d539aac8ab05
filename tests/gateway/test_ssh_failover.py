"""Replicas on two nodes, one of them reached over SSH (a real sshd on loopback), steady load through
the gateway, and the SSH node lost: its sshd and every session killed, its engine killed with SIGKILL,
as when a machine goes down. The product's reconciler notices (the node becomes ``unreachable``), the
gateway follows, and no client request fails meanwhile: those in flight on the lost engine are retried
on the surviving one."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time

import httpx
import pytest

from jobs import reconciler
from jobs.models import Instance, Job
from nodes.models import Node
from nodes.services import probe_node, register_local_node
from nodes.transports.ssh import POOL
from tests.conftest import FAKE_BIN
from tests.gateway.test_gateway import chat
from tests.jobs import factories as jf
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration]
PATH = f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin"
SUCCESS = re.compile(r'^vllm:request_success_total\{[^}]*\}\s+([0-9.e+]+)', re.M)


def served_by(instance: Instance) -> float:
    """Requests the engine of ``instance`` answered so far (its own counter)."""
    text = httpx.get(instance.endpoint.removesuffix("/v1") + "/metrics", timeout=5).text
    return sum(float(v) for v in SUCCESS.findall(text))


def reconcile_until(job_id: int, predicate, timeout: float = 40.0, what: str = "condition"):
    """Drive the product's reconciler (as its periodic task does) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconciler.reconcile_job(job_id)
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    states = list(Instance.objects.filter(job_id=job_id).values("node__name", "state", "state_detail"))
    raise AssertionError(f"timed out waiting for {what}; instances: {states}")


@pytest.fixture
def two_nodes(admin_api, tmp_path_factory):
    """The local node and an SSH node (a real sshd on loopback, with a HOME of its own)."""
    require_sshd()
    daemon = SshdNode(env={"PATH": PATH, "HOME": str(tmp_path_factory.mktemp("node-home"))}).start()
    try:
        local = register_local_node()
        probe_node(local.pk)
        credential = admin_api.post("/api/v1/credentials/", {"name": "ssh-key", "username": daemon.username,
                                                             "private_key": daemon.client_key_pem}, format="json")
        response = admin_api.post("/api/v1/nodes/", {"name": "ssh-node", "address": "127.0.0.1", "transport": "ssh",
                                                     "ssh_port": daemon.port,
                                                     "credential": credential.json()["id"]}, format="json")
        remote = Node.objects.get(pk=response.json()["id"])
        probe_node(remote.pk)
        remote.refresh_from_db()
        assert remote.status == "online", remote.status_detail
        yield Node.objects.get(pk=local.pk), remote, daemon
    finally:
        POOL.close_all()
        daemon.cleanup()


def test_losing_the_ssh_node_under_steady_load_fails_no_request_and_moves_the_traffic(
        admin_api, two_nodes, gateway, world, settings):
    settings.CONSOLE_NODE_LOSS_GRACE_S = 60  # the replica stays put: the gateway alone must keep traffic whole
    local, remote, daemon = two_nodes
    version = jf.version(status="registered")
    response = admin_api.post("/api/v1/jobs/", {
        "name": "spread-sim", "model_version": version.pk, "engine": "simulator", "replicas": 2,
        "accelerators_per_replica": 0, "placement": "spread", "desired_state": "running",
        "options": {"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1}}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    lost_pid = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        running = reconcile_until(job_id, lambda: (r := list(Instance.objects.filter(
            job_id=job_id, state="running").select_related("node"))) and len(r) == 2 and r,
                                  what="both replicas to be ready")
        by_node = {instance.node_id: instance for instance in running}
        assert set(by_node) == {local.pk, remote.pk}, "spread placement puts one replica on each node"
        lost, survivor = by_node[remote.pk], by_node[local.pk]
        lost_pid = lost.pid
        key, _ = world.key()
        gateway.refresh()
        model = Job.objects.get(pk=job_id).options.get("served_name") or "spread-sim"
        assert {u.instance_id for u in gateway.gateway.state.snapshot.jobs[model].upstreams} == {lost.pk, survivor.pk}

        ok, failed, errors = [0], [0], []
        lock = threading.Lock()

        def client_loop():
            client = gateway.client(key)
            while not stop.is_set():
                try:
                    chat(client, model, max_tokens=4)
                    with lock:
                        ok[0] += 1
                except Exception as exc:  # counted, not raised: the test reports them all
                    with lock:
                        failed[0] += 1
                        errors.append(repr(exc))

        def served_at_least(count: int, within: float = 120) -> bool:
            """Counted, not timed: wait (generously: the machine may be loaded) for ``count`` answers."""
            deadline = time.monotonic() + within
            while ok[0] < count and failed[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            return ok[0] >= count

        threads.extend(threading.Thread(target=client_loop, daemon=True) for _ in range(8))
        for thread in threads:
            thread.start()
        assert served_at_least(40), ("no steady load before the loss", ok[0], errors[:3])
        before_loss = ok[0]
        lost_served = served_by(lost)
        assert lost_served > 0, "both replicas served requests before the loss"

        # The machine goes down: its sshd and every session, and the engine on it.
        daemon.stop()
        try:
            os.kill(lost.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it went down with its sshd's sessions already: the machine is lost either way
        POOL.close_all()
        reconcile_until(job_id, lambda: Node.objects.get(pk=remote.pk).status == "unreachable",
                        what="the reconciler to mark the SSH node unreachable")
        deadline = time.monotonic() + 30  # it follows the database within about a second; generous when loaded
        while {u.instance_id for u in gateway.gateway.state.snapshot.jobs[model].upstreams} != {survivor.pk}:
            assert time.monotonic() < deadline, "the gateway still routes to the lost node's instance"
            time.sleep(0.05)
        survivor_at_switch, ok_at_switch = served_by(survivor), ok[0]
        assert served_at_least(ok_at_switch + 40), ("no load served after the switch", ok_at_switch, ok[0])
        stop.set()
        for thread in threads:
            thread.join(30)

        assert failed[0] == 0, f"{failed[0]} failed requests: {errors[:3]}"
        assert before_loss >= 40
        # Every request answered after the switch was served by the survivor (less those whose answer was
        # on its way at the switch: counted by the engine before it, by the client after: one per client).
        assert served_by(survivor) - survivor_at_switch >= ok[0] - ok_at_switch - len(threads)
    finally:
        stop.set()  # never leave client threads running after a failed assertion (pytest would wait on them)
        for thread in threads:
            thread.join(30)
        if lost_pid:
            try:
                os.kill(lost_pid, signal.SIGKILL)  # the 'lost' node is this machine: never leave the engine
            except ProcessLookupError:
                pass
        Job.objects.filter(pk=job_id).update(desired_state="stopped")
        reconciler.reconcile_job(job_id)
