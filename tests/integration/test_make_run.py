"""`make run`'s launcher on a fresh data directory: migrates, creates the admin, registers node
`local`, serves pages and the API, probes the local node through its own worker and beat, and
stops every process it started on Ctrl-C (SIGINT)."""

import signal
import subprocess
import sys

import httpx
import pytest

from tests.integration.procs import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def login(client: httpx.Client, base: str, password: str) -> None:
    client.get(f"{base}/login/")
    token = client.cookies["csrftoken"]
    response = client.post(f"{base}/login/", data={"username": "admin", "password": password,
                                                   "csrfmiddlewaretoken": token, "next": "/"},
                           headers={"Referer": f"{base}/login/"})
    assert response.status_code in (200, 302)


def test_the_launcher_starts_the_console_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_DATA_DIR": str(tmp_path / "data"),
           "CONSOLE_ADMIN_PASSWORD": "correct-horse-battery", "HOME": str(tmp_path)}
    launcher = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{base}/healthz"), 90, what="the web server")
        assert httpx.get(f"{base}/readyz").status_code == 200
        with httpx.Client(follow_redirects=True, timeout=10) as client:
            login(client, base, "correct-horse-battery")

            def local_probed():
                nodes = client.get(f"{base}/api/v1/nodes/").json()["results"]
                local = [n for n in nodes if n["name"] == "local"]
                return local and local[0]["status"] in ("online", "degraded") and local[0]

            local = wait_until(local_probed, 60, interval=1, what="node local to be probed by beat and worker")
            assert local["transport"] == "local" and local["facts"]["hostname"]
            page = client.get(f"{base}/nodes/")
            assert page.status_code == 200 and "local" in page.text
            assert client.get(f"{base}/static/css/console.css").status_code == 200
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            code = launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            raise
        output = launcher.stdout.read()
    assert code == 0, output
    children = subprocess.run(["pgrep", "-f", f"-p {port} "], capture_output=True, text=True).stdout
    assert not children.strip(), "the web server outlived the launcher"


def _ok(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
