"""Debian's Chromium, driven by Playwright, against the console that `make run` starts
(``python -m console.launcher``: daphne, worker, beat and the telemetry collector): a job page's
tokens/s chart gains points while the simulator serves load; the websocket is lost, the page says
its data is stale, and once it reconnects it has every point the series API has for the outage."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import require
from tests.integration.procs import CHROMIUM, ROOT, free_port, launch_chromium, sign_in, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PASSWORD = "correct-horse-battery"


def _ok(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def console(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_DATA_DIR": str(tmp_path / "data"),
           "CONSOLE_ADMIN_PASSWORD": PASSWORD, "HOME": str(tmp_path), "CONSOLE_SECRET_KEY": "browser-test",
           "CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S": "1", "CONSOLE_TELEMETRY_INTERVAL_S": "1"}
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        env.pop(key, None)
    launcher = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{base}/healthz"), 90, what="the console to start")

        def manage(*args):
            return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                                  text=True, check=True, timeout=60).stdout

        token = manage("drf_create_token", "admin").split()[2]
        yield base, token, manage
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


def start_simulator_job(base, token, manage) -> tuple[int, str]:
    version_id = manage("shell", "-c", (
        "from models_registry.models import Model, ModelVersion\n"
        "m, _ = Model.objects.get_or_create(name='Qwen2.5-0.5B-Instruct', defaults={'family': 'qwen'})\n"
        "v, _ = ModelVersion.objects.get_or_create(model=m, version='bf16', defaults={'quantization': 'bf16', "
        "'source_uri': '/models/qwen-0.5b'})\n"
        "print(v.pk)")).strip().splitlines()[-1]
    api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Token {token}"}, timeout=10)
    response = api.post("/jobs/", json={"name": "live-chat", "model_version": int(version_id), "engine": "simulator",
                                        "replicas": 1, "accelerators_per_replica": 0, "desired_state": "running",
                                        "options": {"ttft_ms": 20, "tpot_ms": 3}})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]

    def serving():
        job = api.get(f"/jobs/{job_id}/").json()
        return job["state"] == "running" and job["endpoints"] and job["endpoints"][0]

    endpoint = wait_until(serving, 90, interval=0.5, what="the simulator job to serve")
    return job_id, endpoint


def test_the_job_page_streams_tokens_per_second_and_resumes_without_missing_points(console):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    require(shutil.which("bash") is not None, "bash")
    base, token, manage = console
    job_id, endpoint = start_simulator_job(base, token, manage)
    stop_load = threading.Event()

    def load():
        with httpx.Client(timeout=30) as client:
            while not stop_load.is_set():
                try:
                    client.post(f"{endpoint}/completions", json={"model": "live-chat", "prompt": "hi " * 30,
                                                                 "max_tokens": 48, "ignore_eos": True})
                except httpx.HTTPError:
                    time.sleep(0.2)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # The pages pass the Content-Security-Policy: a refused script, style or connection is an error.
            page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
            sign_in(page, base, PASSWORD)
            page.goto(f"{base}/jobs/{job_id}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=20_000)

            def output_points():
                return page.evaluate("window.boomLive.points('job-tokens', 0)")

            first = wait_until(lambda: len(output_points()) >= 3 and output_points(), 30,
                               what="the tokens/s chart to get points")
            grown = wait_until(lambda: len(output_points()) >= len(first) + 3 and output_points(), 20,
                               what="the chart to gain points live, without a reload")
            assert grown[-1] > first[-1]
            values = page.evaluate("window.boomLive.charts['job-tokens'].traces[0].y")
            assert max(values) > 0

            # Lose the websocket for six seconds while samples keep coming.
            dropped_at = page.evaluate("Date.now()")
            page.evaluate("window.boomLive.setReconnectDelay(6000); window.boomLive.state.socket.close()")
            page.wait_for_selector('#stream-status[data-state="stale"]', timeout=5_000)
            assert page.evaluate("document.body.classList.contains('stream-down')")
            time.sleep(3)
            during = output_points()
            assert max(during) < dropped_at + 1500, "points arrived while the socket was closed?"
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=20_000)
            back_at = page.evaluate("Date.now()")
            wait_until(lambda: output_points()[-1] > back_at + 2000, 20, what="live points after the reconnect")

            after = output_points()
            window = [x for x in after if dropped_at - 3000 <= x <= back_at + 1000]
            gaps = [b - a for a, b in zip(window, window[1:], strict=False)]
            # Samples come every second; the outage lasted over six. (Loose: a busy machine scrapes late.)
            assert window and max(gaps) <= 4500, f"a hole in the chart after the reconnect: {gaps}"
            api = httpx.get(f"{base}/api/v1/metrics/query/", headers={"Authorization": f"Token {token}"}, params={
                "series": "job.output_tokens_per_s", "job": job_id, "start": (dropped_at - 3000) / 1000,
                "end": (back_at + 1000) / 1000}).json()
            expected = {round(t * 1000) for t, _ in api["results"][0]["points"]}
            assert expected and expected <= set(after), sorted(expected - set(after))
            assert not errors, errors
            browser.close()
    finally:
        stop_load.set()
        httpx.patch(f"{base}/api/v1/jobs/{job_id}/", headers={"Authorization": f"Token {token}"},
                    json={"desired_state": "stopped"}, timeout=10)
        httpx.post(f"{base}/api/v1/jobs/{job_id}/stop/", headers={"Authorization": f"Token {token}"}, timeout=10)
        time.sleep(3)  # the reconciler stops the simulator before the console goes down


def test_the_overview_tile_shows_the_current_rate_on_the_24h_range_and_the_badge_stops_claiming_live(console):
    """Issue 17, item 5: on the 24 h range the chart reads the rollups (minutes behind), so the tile used
    to read 0.0 while the simulator served; it is now the newest raw rate of each job, the 24 h chart
    ends with the raw samples after the rollups, and the badge says the range is refreshed each minute.
    The job form's preview then speaks in words (one replica, no "0.0 GiB")."""
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    base, token, manage = console
    job_id, endpoint = start_simulator_job(base, token, manage)
    stop_load = threading.Event()

    def load():
        with httpx.Client(timeout=30) as client:
            while not stop_load.is_set():
                try:
                    client.post(f"{endpoint}/completions", json={"model": "live-chat", "prompt": "hi " * 30,
                                                                 "max_tokens": 48, "ignore_eos": True})
                except httpx.HTTPError:
                    time.sleep(0.2)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, base, PASSWORD)

            def tile():
                return float(page.text_content('[data-total="throughput"]') or 0)

            page.wait_for_selector('#stream-status[data-state="live"]', timeout=20_000)
            wait_until(lambda: tile() > 0, 30, what="the tile to show the rate on the live range")
            page.click('[data-range="24h"]')
            page.wait_for_selector('#stream-status[data-state="periodic"]', timeout=20_000)
            # The tile does not hang on the chart's points: with the chart emptied (as a chart whose rollups
            # lag far behind would be), it stays at the current rate through the next stream messages.
            page.evaluate("window.boomLive.charts['cluster-throughput'].traces"
                          ".forEach(function (t) { t.x = []; t.y = []; })")
            messages = page.evaluate("window.boomLive.state.messages")
            wait_until(lambda: page.evaluate("window.boomLive.state.messages") >= messages + 3, 30,
                       what="three more stream messages")
            assert tile() > 0, "the tile dropped to 0 on the 24 h range"
            page.click('[data-range="24h"]')  # reload the chart from the series API
            wait_until(lambda: page.evaluate("window.boomLive.charts['cluster-throughput'].traces"
                                             ".some(function (t) { return t.x.length > 0; })"), 30,
                       what="the 24 h chart to reload")
            newest = page.evaluate("Math.max.apply(null, window.boomLive.charts['cluster-throughput'].traces"
                                   ".map(function (t) { return t.x.length ? t.x[t.x.length - 1] : 0; }))")
            now = page.evaluate("Date.now()")
            # Buckets of 2 minutes: the newest starts at most 2 minutes (and a reload) ago, not at the rollups' lag.
            assert now - newest <= 185_000, f"the 24 h chart ends {(now - newest) / 1000:.0f} s ago"

            page.goto(f"{base}/jobs/add/")
            page.select_option("#id_model_version", index=1)
            page.select_option("#id_engine", "simulator")
            page.fill("#id_accelerators_per_replica", "0")
            page.dispatch_event("#id_accelerators_per_replica", "change")
            text = wait_until(lambda: "replica" in (page.text_content("#preview-body") or "")
                              and page.text_content("#preview-body"), 20, what="the placement preview")
            assert "1 of 1 replica can be placed now." in text and "GiB" not in text, text
            assert not errors, errors
            browser.close()
    finally:
        stop_load.set()
        httpx.post(f"{base}/api/v1/jobs/{job_id}/stop/", headers={"Authorization": f"Token {token}"}, timeout=10)
        time.sleep(3)  # the reconciler stops the simulator before the console goes down
