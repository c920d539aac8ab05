"""Fault suite (issue 12, item 3): beat, the telemetry collector and the web server of `make run` killed
with SIGKILL. Each is started again by the launcher's supervisor (console.supervisor); a job page open in
Chromium loses its websocket while the web server is down, reconnects by itself and resumes from its
stream cursor: every stream entry published for the job while the web server was down reaches the page.

The recovery times are printed (docs/benchmarks.md, "Faults")."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import require
from tests.integration.procs import (
    ROOT,
    answers_200,
    free_port,
    launch_chromium,
    sign_in,
    start_launcher,
    stop_launcher,
    wait_until,
)
from tests.integration.test_live_browser import CHROMIUM, PASSWORD, start_simulator_job

pytestmark = [pytest.mark.integration, pytest.mark.browser]
TIMEOUT_S = 120.0  # generous: the machine may be loaded (issue 12, item 7)


class Console:
    """`make run` (console.launcher) on a fresh data folder, embedded profile, 1 s telemetry."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.data = tmp_path / "data"
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {"PATH": "/usr/bin:/bin", "PORT": str(self.port), "CONSOLE_DATA_DIR": str(self.data),
                    "CONSOLE_ADMIN_PASSWORD": PASSWORD, "HOME": str(tmp_path), "CONSOLE_SECRET_KEY": "faults-test",
                    "CONSOLE_GATEWAY_PORT": str(free_port()), "CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S": "1",
                    "CONSOLE_TELEMETRY_INTERVAL_S": "1"}
        self.launcher = None

    def start(self):
        self.launcher = start_launcher(self.env)
        wait_until(lambda: answers_200(f"{self.base}/healthz"), TIMEOUT_S, what="the console to start")

    def manage(self, *args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, check=True, timeout=120).stdout

    def parts(self) -> dict | None:
        try:
            return json.loads((self.data / "run" / "supervisor.json").read_text())["parts"]
        except (OSError, ValueError, KeyError):
            return None

    def stream_entries(self, topic: str, after_id: int) -> list[tuple[int, dict]]:
        """The StreamEntry rows of ``topic`` after ``after_id``, read from the console's SQLite file."""
        with sqlite3.connect(f"file:{self.data / 'console.sqlite3'}?mode=ro", uri=True, timeout=30) as db:
            rows = db.execute("SELECT id, payload FROM console_streamentry WHERE topic = ? AND id > ? ORDER BY id",
                              (topic, after_id)).fetchall()
        return [(pk, json.loads(payload)) for pk, payload in rows]

    def last_entry_id(self) -> int:
        with sqlite3.connect(f"file:{self.data / 'console.sqlite3'}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT COALESCE(MAX(id), 0) FROM console_streamentry").fetchone()[0]


@pytest.fixture
def console(tmp_path):
    console = Console(tmp_path)
    console.start()
    try:
        yield console
    finally:
        code, output = stop_launcher(console.launcher, timeout=60)
        console.output = output
    assert code == 0, output


def kill_and_wait_back(console: Console, part: str) -> tuple[float, int]:
    """SIGKILL ``part``; the seconds until the supervisor reports it running again, and its new pid."""
    before = console.parts()[part]
    killed_at = time.monotonic()
    os.kill(before["pid"], signal.SIGKILL)
    after = wait_until(lambda: (p := console.parts()) and p[part]["restarts"] == before["restarts"] + 1
                       and p[part]["state"] == "running" and p[part], TIMEOUT_S, interval=0.1,
                       what=f"the supervisor to restart {part}")
    assert after["pid"] != before["pid"] and after["last_exit"] == "was killed by SIGKILL"
    return time.monotonic() - killed_at, after["pid"]


def test_beat_collector_and_web_server_killed_come_back_and_the_live_page_misses_no_event(console):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    base = console.base
    token = console.manage("drf_create_token", "admin").split()[2]
    job_id, endpoint = start_simulator_job(base, token, console.manage)
    topic = f"job:{job_id}"
    stop_load = threading.Event()

    def load():
        with httpx.Client(timeout=30) as client:
            while not stop_load.is_set():
                try:
                    client.post(f"{endpoint}/completions", json={"model": "live-chat", "prompt": "hi " * 10,
                                                                 "max_tokens": 32, "ignore_eos": True})
                except httpx.HTTPError:
                    time.sleep(0.2)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    figures = {}
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                sign_in(page, base, PASSWORD)
                page.goto(f"{base}/jobs/{job_id}/")
                page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)

                def points():
                    return page.evaluate("window.boomLive.points('job-tokens', 0)")

                def gains_points(what):
                    count = len(points())
                    wait_until(lambda: len(points()) >= count + 2, TIMEOUT_S, what=what)

                gains_points("the tokens/s chart to get points")

                # Beat: back, and the periodic reconcile it sends still runs (a killed engine is healed).
                figures["beat"], _ = kill_and_wait_back(console, "beat")
                # Collector: back, and the chart it feeds goes on gaining points.
                figures["collector"], _ = kill_and_wait_back(console, "collector")
                gains_points("new points from the restarted collector")

                # Web server: the page's socket drops; what is published meanwhile must reach it after.
                trace = page.evaluate("(() => { const t = window.boomLive.charts['job-tokens'].traces[0];"
                                      " return {series: t.series, labels: t.labels}; })()")
                before_kill = console.last_entry_id()
                killed_at = time.monotonic()
                os.kill(console.parts()["web"]["pid"], signal.SIGKILL)
                page.wait_for_selector('#stream-status[data-state="stale"]', timeout=30_000)
                wait_until(lambda: answers_200(f"{base}/healthz"), TIMEOUT_S, interval=0.1,
                           what="the web server to answer again")
                figures["web answers"] = time.monotonic() - killed_at
                down = console.stream_entries(topic, before_kill)  # published while it was down
                page.wait_for_selector('#stream-status[data-state="live"]', timeout=int(TIMEOUT_S * 1000))
                figures["page live again"] = time.monotonic() - killed_at
                parts = console.parts()
                assert parts["web"]["restarts"] == 1 and parts["web"]["last_exit"] == "was killed by SIGKILL"

                expected = set()
                for _pk, payload in down:
                    for item in page.evaluate("p => window.boomLive.seriesOf(p)", payload):
                        if item["series"] == trace["series"] and all(
                                item["labels"].get(k) == v for k, v in trace["labels"].items()):
                            expected.update(round(t * 1000) for t, _v in item["points"])
                assert len(down) >= 1 and expected, f"nothing was published for {topic} while the web server was down"
                wait_until(lambda: expected <= set(points()), 60, what="the missed points after the reconnect")
                gains_points("live points after the reconnect")
                assert not errors, errors
                print(f"published while the web server was down: {len(down)} entries, {len(expected)} points, "
                      f"all received after the reconnect")
            finally:
                browser.close()

        # The restarted beat still drives the reconciler: an engine killed now is healed.
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Token {token}"}, timeout=10)
        instance = api.get(f"/instances/?job={job_id}").json()["results"][0]
        os.kill(instance["pid"], signal.SIGKILL)
        wait_until(lambda: (i := api.get(f"/instances/?job={job_id}").json()["results"][0])["state"] == "running"
                   and i["pid"] != instance["pid"], TIMEOUT_S, interval=0.5, what="the engine to be healed")
    finally:
        stop_load.set()
        httpx.post(f"{base}/api/v1/jobs/{job_id}/stop/", headers={"Authorization": f"Token {token}"}, timeout=10)
        try:
            wait_until(lambda: httpx.get(f"{base}/api/v1/jobs/{job_id}/", headers={
                "Authorization": f"Token {token}"}, timeout=10).json()["state"] == "stopped", 60,
                what="the job to stop")
        except (AssertionError, httpx.HTTPError):
            pass
    print("supervised restarts (SIGKILL to running again): " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in figures.items()))
