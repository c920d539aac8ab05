"""Alerting on the console that `make run` starts (daphne, worker, beat, collector): a rule on the local
node's CPU series fires, a real HTTP receiver on loopback gets the Alertmanager-format notification, and
Chromium (Playwright) shows the firing count in the header of an open page without a reload, through the
``alerts`` topic of the websocket stream."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import require
from tests.integration.procs import CHROMIUM, ROOT, free_port, launch_chromium, sign_in, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PASSWORD = "correct-horse-battery"


@pytest.fixture
def receiver():
    bodies = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/am", bodies
    server.shutdown()


@pytest.fixture
def console(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_DATA_DIR": str(tmp_path / "data"),
           "CONSOLE_ADMIN_PASSWORD": PASSWORD, "HOME": str(tmp_path), "CONSOLE_SECRET_KEY": "alerting-live-test",
           "CONSOLE_TELEMETRY_INTERVAL_S": "1", "CONSOLE_ALERT_EVAL_INTERVAL_S": "3"}
    launcher = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{base}/healthz"), 90, what="the console to start")
        token = subprocess.run([sys.executable, "manage.py", "drf_create_token", "admin"], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True, timeout=60).stdout.split()[2]
        yield base, httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Token {token}"},
                                 timeout=15)
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


def _ok(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_firing_rule_reaches_the_receiver_and_the_header_of_an_open_page_live(console, receiver):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    base, api = console
    url, bodies = receiver
    wait_until(lambda: api.get("/metrics/query/", params={"series": "node.cpu_percent"}).json()["results"], 60,
               interval=1, what="the collector to sample the local node")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, base, PASSWORD)
        page.goto(f"{base}/nodes/")
        badge = page.locator("#alert-count")
        wait_until(lambda: badge.is_visible() and badge.get_attribute("data-severity") == "none", 20,
                   what="the header to say no alerts")
        wait_until(lambda: page.evaluate("window.boomAlertCount.live()"), 20, what="the header to follow the stream")

        assert api.post("/notification-channels/", json={"name": "am", "kind": "alertmanager", "url": url}
                        ).status_code == 201
        started = time.monotonic()
        response = api.post("/alert-rules/", json={
            "name": "Local CPU busy", "series": "node.cpu_percent", "comparator": ">=", "threshold": 0,
            "for_seconds": 0, "severity": "critical", "matchers": [{"name": "node_name", "op": "=", "value": "local"}],
            "group_wait_s": 0})
        assert response.status_code == 201, response.text
        wait_until(lambda: badge.get_attribute("data-severity") == "critical", 30, interval=0.2,
                   what="the header to show the critical alert without a reload")
        shown_after = time.monotonic() - started
        assert re.match(r"^1 firing", badge.inner_text())
        wait_until(lambda: bodies, 30, interval=0.2, what="the webhook to be received")
        body = bodies[0]
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["alerts"][0]["labels"]["alertname"] == "Local CPU busy"
        assert body["alerts"][0]["labels"]["node_name"] == "local"
        alert = api.get("/alerts/", params={"state": "firing"}).json()["results"][0]
        assert api.post(f"/alerts/{alert['id']}/ack/").status_code == 200
        wait_until(lambda: page.evaluate("window.boomAlertCount.summary().acknowledged") == 1, 20, interval=0.2,
                   what="the acknowledgement to reach the header")
        assert shown_after < 20
        assert not errors, errors
        browser.close()
