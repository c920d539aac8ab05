"""A real Celery worker process runs the inventory's tasks: on Redis in CI, else on the filesystem broker."""

import os
import subprocess

import pytest

from console.celery import app
from nodes import tasks
from nodes.models import Node
from nodes.services import register_local_node
from tests.integration.procs import BIN, ROOT, child_database_url, child_env, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker_url(tmp_path, settings):
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        return redis_url, {}
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("TEST_REDIS_URL must be set under CI=true (scripts/test.sh sets it when Redis answers)")
    folder = tmp_path / "broker"
    (folder / "queue").mkdir(parents=True)
    (folder / "processed").mkdir()
    (folder / "control").mkdir()
    options = {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
               "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control")}
    return "filesystem://", options


def test_a_worker_process_probes_the_local_node_queued_through_the_broker(broker_url, tmp_path):
    url, options = broker_url
    node = register_local_node()
    # The worker's data dir is tmp_path, so its filesystem broker folders are the ones above.
    env = child_env(DATABASE_URL=child_database_url(), CELERY_BROKER_URL=url, CONSOLE_DATA_DIR=tmp_path)
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "console", "worker", "-Q", "telemetry", "--pool", "threads", "-c", "2",
         "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "-n", "test@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        with app.connection_for_write(url, transport_options=options) as conn:
            tasks.probe_node.apply_async((node.pk,), connection=conn, queue="telemetry")
        wait_until(lambda: Node.objects.get(pk=node.pk).last_probe_at is not None, 60,
                   what="the worker to probe the node")
        node.refresh_from_db()
        assert node.status in ("online", "degraded"), node.status_detail
        assert node.facts["cpu_cores"] >= 1 and node.facts["memory_total_bytes"] > 0
    finally:
        stop(worker)
        output = worker.stdout.read()
    assert "Traceback" not in output, output
