"""The collector against real peers: a real sshd whose node has the fake nvidia-smi and npu-smi on its
PATH (one long-lived sampling session, reconnected after the node comes back, ended with the
collector), and a real simulator process serving load (its /metrics scraped into job samples)."""

import threading
import time

import httpx
import psutil
import pytest

from console import streams
from console.core.models import StreamEntry
from console.telemetry import series
from console.telemetry.collector import Collector
from jobs import reconciler
from jobs.models import InstanceSample, Job, JobSample
from nodes.models import AcceleratorSample, Node, NodeSample
from nodes.services import probe_node, register_local_node
from nodes.transports.ssh import POOL
from tests.conftest import FAKE_BIN
from tests.integration.procs import wait_until
from tests.jobs import factories as jf
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PATH = f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin"


@pytest.fixture
def running_collector():
    started = []

    def start(**kwargs):
        collector = Collector(flush_ms=150, **kwargs)
        stop = threading.Event()
        thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))
        return collector, stop, thread

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(timeout=15)


def samplers_under(pid: int) -> list[psutil.Process]:
    """Sampling scripts running as descendants of the given sshd."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "boom-sampler" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_one_ssh_session_streams_a_nodes_samples_and_reconnects_after_the_node_comes_back(
        admin_api, running_collector):
    require_sshd()
    daemon = SshdNode(env={"PATH": PATH}).start()
    try:
        credential = admin_api.post("/api/v1/credentials/", {"name": "tel-key", "username": daemon.username,
                                                             "private_key": daemon.client_key_pem}, format="json")
        response = admin_api.post("/api/v1/nodes/", {"name": "gpu-ssh", "address": "127.0.0.1", "transport": "ssh",
                                                     "ssh_port": daemon.port, "credential": credential.json()["id"]},
                                  format="json")
        node = Node.objects.get(pk=response.json()["id"])
        probe_node(node.pk)  # pins the host key; the collector never trusts a first contact
        Node.objects.filter(pk=node.pk).update(telemetry_interval_s=1)
        node.refresh_from_db()
        assert node.status == "online" and node.accelerator_count == 16, node.status_detail
        opened_before = POOL.connections_opened
        streams.watch([f"node:{node.pk}"])  # its page is open: the collector publishes its samples
        collector, stop, thread = running_collector()

        def enough():
            return (NodeSample.objects.filter(node=node).count() >= 3
                    and AcceleratorSample.objects.filter(node=node).values("accelerator").distinct().count() == 16)

        wait_until(enough, 30, what="three seconds of samples of the node and its 16 accelerators")
        source = collector.sources[node.pk]
        assert source.sessions_started == 1 and POOL.connections_opened - opened_before <= 1
        assert len(samplers_under(daemon._proc.pid)) >= 1
        assert len(series.latest("accelerator.temperature_c", 30, node=node.pk)) == 16
        assert StreamEntry.objects.filter(topic=f"node:{node.pk}").exists()

        daemon.restart()  # the machine goes down and comes back on the same address
        wait_until(lambda: source.sessions_started >= 2 and not source.last_error, 40,
                   what="the collector to open a new sampling session")
        resumed = int(time.time() * 1000)
        wait_until(lambda: NodeSample.objects.filter(node=node, ts__gt=resumed).count() >= 2, 20,
                   what="samples after the reconnect")

        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()
        wait_until(lambda: not samplers_under(daemon._proc.pid), 10,
                   what="the remote sampling script to end with the session")
    finally:
        POOL.close_all()
        daemon.cleanup()


def test_engine_metrics_of_a_serving_simulator_become_job_and_instance_samples(admin_api, running_collector):
    import sys

    local = register_local_node()
    probe_node(local.pk)
    version = jf.version(status="registered")
    response = admin_api.post("/api/v1/jobs/", {
        "name": "tel-sim", "model_version": version.pk, "engine": "simulator", "replicas": 1,
        "accelerators_per_replica": 0, "desired_state": "running",
        "options": {"python": sys.executable, "ttft_ms": 20, "tpot_ms": 2}}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    stop_load = threading.Event()
    try:
        def serving():
            reconciler.reconcile_job(job_id)
            return Job.objects.get(pk=job_id).instances.filter(state="running").first()

        instance = wait_until(serving, 60, interval=0.3, what="the simulator to serve")
        base = instance.endpoint

        def load():
            with httpx.Client(timeout=30) as client:
                while not stop_load.is_set():
                    try:
                        client.post(f"{base}/completions", json={"model": "tel-sim", "prompt": "hello " * 20,
                                                                  "max_tokens": 64, "ignore_eos": True})
                    except httpx.HTTPError:
                        time.sleep(0.1)

        workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for worker in workers:
            worker.start()
        running_collector(scrape_interval_s=1)

        def busy_sample():
            return JobSample.objects.filter(job_id=job_id, output_tokens_per_s__gt=0,
                                            ttft_p99_ms__isnull=False).first()

        sample = wait_until(busy_sample, 30, what="a job sample with tokens/s and TTFT")
        assert sample.instances_up == 1 and sample.requests_running is not None
        assert sample.ttft_p99_ms >= sample.ttft_p50_ms > 0
        assert InstanceSample.objects.filter(instance=instance, up=1.0).exists()
        points = series.query("job.output_tokens_per_s", job=job_id, start=time.time() - 120, end=time.time() + 1)
        assert points and points[0].labels["job_name"] == "tel-sim"
        assert StreamEntry.objects.filter(topic=f"job:{job_id}").exists()
    finally:
        stop_load.set()
        Job.objects.filter(pk=job_id).update(desired_state="stopped")
        reconciler.reconcile_job(job_id)
