"""The production topology as a test (issue 12, items 3 and 4), on a PostgreSQL and a Redis of its own
(tests/integration/topology.py): two web servers, two Celery workers, beat and a collector.

* A browser on web server 2 sees, live, what an API call on web server 1 caused; the job loop (create,
  heal after kill -9 of the engine, fail over when its node is lost, stop) works through it, with never
  two processes for one instance and no orphan left at the end.
* Redis restarted, then PostgreSQL restarted, with the console running: while one is down, pages and the
  API answer 503 naming the part (never 500) and /readyz names it; once it answers again, new work (a job
  started through the API and the workers) runs without anyone doing anything, and the live page's
  websocket resumes.

The recovery times are printed; docs/benchmarks.md, "Faults", has them beside the goals (new work within
10 s of the service answering again)."""

import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict

import httpx
import pytest
from django.conf import settings

from bench.faults import marked_processes
from bench.topology import PrivatePostgres, PrivateRedis, Topology, services_available, wait_ready
from tests.conftest import FAKE_BIN, require
from tests.integration.procs import launch_chromium, sign_in, wait_until
from tests.integration.test_live_browser import CHROMIUM
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PASSWORD = "correct-horse-battery"
TIMEOUT_S = 120.0  # generous: the machine may be loaded (issue 12, item 7); the times are printed
GOAL_S = 10.0  # new work runs within 10 s of a restarted service answering again (issue 12)
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def topology():
    missing = services_available()
    require(missing is None, missing or "")
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    topology = None
    try:
        postgres.init()
        postgres.start()
        redis_server.start()
        prefix = "topo" + uuid.uuid4().hex[:8]
        topology = Topology(database_url=postgres.create_database("boom_topology"), redis_url=redis_server.url(3),
                            instance_prefix=prefix, port_range=settings.CONSOLE_INSTANCE_PORT_RANGE,
                            admin_password=PASSWORD,
                            extra_env={"CONSOLE_NODE_LOSS_GRACE_S": 3, "CONSOLE_PROBE_INTERVAL_S": 2,
                                       "CONSOLE_TELEMETRY_INTERVAL_S": 1, "CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S": 1,
                                       # Node "local" shows 8 GPUs (a real capture): the overview streams them.
                                       "PATH": f"{FAKE_BIN}:{os.environ['PATH']}"})
        topology.postgres, topology.redis = postgres, redis_server
        topology.start()
        topology.token = topology.manage("drf_create_token", "admin").split()[2]
        yield topology
    finally:
        if topology is not None:
            topology.cleanup()
        redis_server.cleanup()
        postgres.cleanup()
        for pid in marked_processes(topology.instance_prefix if topology else "-"):
            os.kill(pid, signal.SIGKILL)
        if FIGURES:
            print("\nproduction topology figures: " + ", ".join(f"{k} {v:.2f} s" for k, v in FIGURES.items()))


def api(topology, web: int) -> httpx.Client:
    return httpx.Client(base_url=f"{topology.base(web)}/api/v1", timeout=30,
                        headers={"Authorization": f"Token {topology.token}"})


def model_version(topology) -> int:
    return int(topology.manage("shell", "-c", (
        "from models_registry.models import Model, ModelVersion\n"
        "m, _ = Model.objects.get_or_create(name='Qwen2.5-0.5B-Instruct', defaults={'family': 'qwen'})\n"
        "v, _ = ModelVersion.objects.get_or_create(model=m, version='bf16', defaults={'quantization': 'bf16', "
        "'source_uri': '/models/qwen-0.5b'})\n"
        "print(v.pk)")).strip().splitlines()[-1])


def create_job(client: httpx.Client, version: int, name: str, **extra) -> int:
    response = client.post("/jobs/", json={
        "name": name, "model_version": version, "engine": "simulator", "replicas": 1,
        "accelerators_per_replica": 0, "desired_state": "running",
        "options": {"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1}, **extra})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def running_instance(client: httpx.Client, job_id: int) -> dict | None:
    try:
        response = client.get("/instances/", params={"job": job_id})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    running = [i for i in response.json()["results"] if i["state"] == "running" and i["pid"]]
    return running[0] if running else None


class DuplicateWatch(threading.Thread):
    """Samples the engine processes of ``prefix`` every 0.1 s: two live processes with one instance key
    (one replica, on one node, at one run) would be a duplicate."""

    def __init__(self, prefix: str):
        super().__init__(daemon=True)
        self.prefix, self.stopping, self.duplicates, self.samples = prefix, threading.Event(), [], 0

    def run(self):
        while not self.stopping.wait(0.1):
            by_key = defaultdict(list)
            for pid, key in marked_processes(self.prefix).items():
                by_key[key].append(pid)
            self.samples += 1
            self.duplicates += [(key, pids) for key, pids in by_key.items() if len(pids) > 1]


def browser_page(playwright, base: str):
    browser = launch_chromium(playwright)
    page = browser.new_page()
    sign_in(page, base, PASSWORD)
    return browser, page


def tile(page, name: str) -> str:
    return page.inner_text(f'[data-total="{name}"]').strip()


def sync_playwright_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    return sync_playwright


def test_a_browser_on_web_server_2_sees_live_what_web_server_1_did_and_the_job_loop_works_through_it(
        topology, tmp_path_factory):
    require_sshd()
    sync_playwright = sync_playwright_or_skip()
    web1, web2 = api(topology, 1), api(topology, 2)
    daemons = [SshdNode(env={"PATH": f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin",
                             "HOME": str(tmp_path_factory.mktemp("node-home"))}) for _ in range(2)]
    watch = DuplicateWatch(topology.instance_prefix)
    job_id = None
    try:
        for daemon in daemons:
            daemon.start()
        with sync_playwright() as playwright:
            browser, page = browser_page(playwright, topology.base(2))
            try:
                page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
                # Node "local" (bootstrap registers it): the collector samples it every second.
                wait_until(lambda: tile(page, "nodes.online") == "1", TIMEOUT_S, what="node local online")
                assert tile(page, "nodes") == "1"
                page.evaluate("window.drawnOnce = 'the same page'")
                # Two nodes registered through web server 1; the overview on web server 2 counts them live.
                registered_at = time.monotonic()
                nodes = {}
                for number, daemon in enumerate(daemons, 1):
                    credential = web1.post("/credentials/", json={"name": f"topo-key-{number}",
                                                                  "username": daemon.username,
                                                                  "private_key": daemon.client_key_pem})
                    assert credential.status_code == 201, credential.text
                    node = web1.post("/nodes/", json={"name": f"topo-{number}", "address": "127.0.0.1",
                                                      "transport": "ssh", "ssh_port": daemon.port,
                                                      "credential": credential.json()["id"],
                                                      "labels": {"pool": "topology"}})
                    assert node.status_code == 201, node.text
                    nodes[node.json()["id"]] = daemon
                wait_until(lambda: tile(page, "nodes") == "3", TIMEOUT_S, interval=0.1,
                           what="the overview on web server 2 to count the nodes")
                FIGURES["API call on web 1 seen live on web 2"] = time.monotonic() - registered_at
                wait_until(lambda: tile(page, "nodes.online") == "3", TIMEOUT_S, interval=0.2,
                           what="the overview on web server 2 to show the nodes online")
                assert page.evaluate("window.drawnOnce") == "the same page"  # no reload: the stream did it
            finally:
                browser.close()

        watch.start()
        job_id = create_job(web1, model_version(topology), "topology-loop", node_selector={"pool": "topology"})
        first = wait_until(lambda: running_instance(web2, job_id), TIMEOUT_S, interval=0.3,
                           what="the job to run")
        assert first["node"] in nodes

        # Heal: the engine killed with SIGKILL is restarted by a worker.
        killed_at = time.monotonic()
        os.kill(first["pid"], signal.SIGKILL)
        healed = wait_until(lambda: (i := running_instance(web1, job_id)) and i["pid"] != first["pid"] and i,
                            TIMEOUT_S, interval=0.2, what="the engine to be healed")
        FIGURES["engine kill -9 healed"] = time.monotonic() - killed_at
        assert healed["node"] == first["node"] and healed["restart_count"] == first["restart_count"] + 1

        # Fail over: the node is lost (its sshd and every session go); the replica comes back on the other.
        lost = nodes[healed["node"]]
        lost_at = time.monotonic()
        lost.stop()
        moved = wait_until(lambda: (i := running_instance(web2, job_id)) and i["node"] != healed["node"] and i,
                           TIMEOUT_S, interval=0.3, what="the replica to move to the other node")
        FIGURES["node lost to replica running elsewhere (grace 3 s)"] = time.monotonic() - lost_at
        # The lost node comes back: the engine left there is an orphan, and the orphan sweep stops it.
        lost.restart()
        back_at = time.monotonic()
        wait_until(lambda: set(marked_processes(topology.instance_prefix)) == {moved["pid"]}, TIMEOUT_S,
                   interval=0.5, what="the orphan on the node that came back to be stopped")
        FIGURES["orphan stopped after its node came back"] = time.monotonic() - back_at

        # Stop, through web server 2 this time.
        assert web2.post(f"/jobs/{job_id}/stop/").status_code == 202
        wait_until(lambda: web1.get(f"/jobs/{job_id}/").json()["state"] == "stopped"
                   and not marked_processes(topology.instance_prefix), TIMEOUT_S, interval=0.3,
                   what="the job to stop and leave no engine process")
        job_id = None
        watch.stopping.set()
        watch.join()
        assert watch.samples > 10 and not watch.duplicates, watch.duplicates
        assert all(p["state"] == "running" and p["restarts"] == 0 for p in topology.parts().values()), \
            topology.parts()
    except BaseException:
        print(topology.log_text())
        raise
    finally:
        watch.stopping.set()
        if job_id is not None:
            try:
                web1.post(f"/jobs/{job_id}/stop/")
            except httpx.HTTPError:
                pass
        for daemon in daemons:
            daemon.cleanup()


def outage_answers(topology, session: httpx.Client) -> dict[str, list[tuple[int, str | None]]]:
    """What a page, an API list and /readyz answer now, on both web servers: (status, part named)."""
    answers = defaultdict(list)
    for web in (1, 2):
        base = topology.base(web)
        for what, url in (("page", f"{base}/jobs/"), ("api", f"{base}/api/v1/jobs/"), ("readyz", f"{base}/readyz")):
            try:
                response = session.get(url, headers={"Authorization": f"Token {topology.token}"}
                                       if what == "api" else {}, timeout=30)
            except httpx.HTTPError as exc:
                answers[what].append((0, type(exc).__name__))
                continue
            part = None
            if response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
                part = body.get("part") or ",".join(body.get("parts", [])) or None
            else:
                found = re.search(r'data-part="([a-z]+)"', response.text)
                part = found and found.group(1)
            answers[what].append((response.status_code, part))
    return answers


def logged_in_session(topology) -> httpx.Client:
    session = httpx.Client(follow_redirects=False, timeout=30)
    base = topology.base(1)
    session.get(f"{base}/login/")
    response = session.post(f"{base}/login/", data={"username": "admin", "password": PASSWORD,
                                                    "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                            headers={"Referer": f"{base}/login/"})
    assert response.status_code == 302, response.text
    return session


@pytest.mark.parametrize("service", ["redis", "postgres"])
def test_a_restarted_service_gives_503_naming_it_while_down_and_new_work_runs_soon_after_without_help(
        topology, service):
    sync_playwright = sync_playwright_or_skip()
    version = model_version(topology)
    session = logged_in_session(topology)
    web1 = api(topology, 1)
    part = "database" if service == "postgres" else None  # Redis is the broker, the cache and the channel layer
    job_id = waiting = None
    try:
        with sync_playwright() as playwright:
            browser, page = browser_page(playwright, topology.base(2))
            try:
                page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
                wait_until(lambda: page.evaluate("window.boomLive.state.messages") >= 2, TIMEOUT_S,
                           what="the overview to receive stream messages")

                # A stopped job, started from its page while the service is down (below).
                waiting = web1.post("/jobs/", json={
                    "name": f"started-during-{service}", "model_version": version, "engine": "simulator",
                    "replicas": 1, "accelerators_per_replica": 0, "desired_state": "stopped",
                    "options": {"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1}}).json()["id"]
                down_at = time.monotonic()
                if service == "redis":
                    topology.redis.stop()
                else:
                    topology.postgres.stop()
                seen = defaultdict(list)
                for _ in range(3):
                    for what, answers in outage_answers(topology, session).items():
                        seen[what] += answers
                    time.sleep(0.5)
                print(f"while {service} was down: {dict(seen)}")
                statuses = [status for answers in seen.values() for status, _part in answers]
                assert 500 not in statuses and 0 not in statuses, seen
                # /readyz names the part; every other answer is a 503 naming it, or a page served without it.
                assert all(status == 503 for status, _ in seen["readyz"]), seen
                wanted = {"database"} if service == "postgres" else {"broker"}
                assert all(wanted <= set((p or "").split(",")) for _, p in seen["readyz"]), seen
                for status, named in seen["api"] + seen["page"]:
                    assert status in (200, 302, 503), seen
                    if status == 503:
                        assert named in ((part,) if part else ("redis", "broker")), seen
                if service == "postgres":
                    assert {s for s, _ in seen["api"] + seen["page"]} == {503}, seen
                else:
                    assert any(s == 503 for s, _ in seen["api"]), seen

                base = topology.base(1)
                started = session.post(f"{base}/jobs/{waiting}/start/", headers={"Referer": f"{base}/jobs/"},
                                       data={"csrfmiddlewaretoken": session.cookies["csrftoken"]})
                if service == "redis":
                    # The desired state is saved (the database is up); the reconcile pass acts on it once the
                    # broker is back. Before, the failed enqueue made this answer 503 after the change was made.
                    assert started.status_code == 302, started.text
                else:
                    assert started.status_code == 503 and 'data-part="database"' in started.text

                if service == "redis":
                    topology.redis.start()
                else:
                    topology.postgres.start()
                back_at = time.monotonic()
                FIGURES[f"{service} down"] = back_at - down_at
                messages_then = page.evaluate("window.boomLive.state.messages")

                # New work: a job created through the API, started by a worker, running.
                def created():
                    nonlocal job_id
                    try:
                        response = web1.post("/jobs/", json={
                            "name": f"after-{service}", "model_version": version, "engine": "simulator",
                            "replicas": 1, "accelerators_per_replica": 0, "desired_state": "running",
                            "options": {"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1}})
                    except httpx.HTTPError:
                        return False
                    assert response.status_code in (201, 503), response.text
                    if response.status_code == 201:
                        job_id = response.json()["id"]
                    return response.status_code == 201

                wait_until(created, TIMEOUT_S, interval=0.2, what=f"the API to accept a job after {service} came back")
                FIGURES[f"{service} back to API answering"] = time.monotonic() - back_at
                wait_until(lambda: running_instance(web1, job_id), TIMEOUT_S, interval=0.2,
                           what=f"new work to run after {service} came back")
                FIGURES[f"{service} back to new work running"] = time.monotonic() - back_at
                if service == "redis":
                    wait_until(lambda: running_instance(web1, waiting), TIMEOUT_S, interval=0.2,
                               what="the job started from its page while Redis was down to run")
                    FIGURES["redis back to the job started while it was down running"] = time.monotonic() - back_at
                wait_ready(topology.base(1))
                FIGURES[f"{service} back to /readyz 200"] = time.monotonic() - back_at
                # The live page: its websocket resumes (it reconnects if it was dropped) and data flows again.
                wait_until(lambda: page.evaluate("window.boomLive.state.messages") >= messages_then + 2, TIMEOUT_S,
                           what="the overview's stream to resume")
                page.wait_for_selector('#stream-status[data-state="live"]', timeout=int(TIMEOUT_S * 1000))
                FIGURES[f"{service} back to the page streaming again"] = time.monotonic() - back_at
            finally:
                browser.close()
    except BaseException:
        print(topology.log_text())
        raise
    finally:
        for job in (job_id, waiting):
            if job is not None:
                try:
                    web1.post(f"/jobs/{job}/stop/")
                except httpx.HTTPError:
                    pass
        if job_id is not None:
            try:
                wait_until(lambda: not marked_processes(topology.instance_prefix), TIMEOUT_S, interval=0.3,
                           what="the job to stop")
            except (httpx.HTTPError, AssertionError):
                pass
