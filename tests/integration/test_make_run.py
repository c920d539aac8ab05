"""`make run`'s launcher on a fresh data directory: migrates, creates the admin, registers node
`local`, serves pages and the API, probes the local node through its own worker and beat, and
stops every process it started on Ctrl-C (SIGINT)."""

import json
import os
import signal
import subprocess

import httpx
import pytest

from tests.integration.procs import answers_200, free_port, start_launcher, stop_launcher, wait_until

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
           "CONSOLE_ADMIN_PASSWORD": "correct-horse-battery", "HOME": str(tmp_path),
           "CONSOLE_GATEWAY_PORT": str(free_port())}
    launcher = start_launcher(env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_200(f"{base}/healthz"), 90, what="the web server")
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
        code, output = stop_launcher(launcher)
    assert code == 0, output
    children = subprocess.run(["pgrep", "-f", f"-p {port} "], capture_output=True, text=True).stdout
    assert not children.strip(), "the web server outlived the launcher"


def test_a_child_killed_with_sigkill_is_restarted_and_the_web_server_stays_up(tmp_path):
    """Before supervision, `kill -9` of the worker stopped the whole console, web server included."""
    port = free_port()
    data = tmp_path / "data"
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_DATA_DIR": str(data),
           "CONSOLE_ADMIN_PASSWORD": "correct-horse-battery", "HOME": str(tmp_path), "CONSOLE_COLLECTOR": "false",
           "CONSOLE_GATEWAY_PORT": str(free_port())}
    launcher = start_launcher(env)
    base = f"http://127.0.0.1:{port}"
    status_file = data / "run" / "supervisor.json"

    def parts():
        try:
            return json.loads(status_file.read_text())["parts"]
        except (OSError, ValueError, KeyError):
            return None

    try:
        wait_until(lambda: answers_200(f"{base}/healthz"), 90, what="the web server")
        web_pid = parts()["web"]["pid"]
        worker_pid = parts()["worker"]["pid"]
        os.kill(worker_pid, signal.SIGKILL)
        restarted = wait_until(lambda: (p := parts()) and p["worker"]["restarts"] == 1
                               and p["worker"]["state"] == "running" and p, 60, interval=0.2,
                               what="the worker to be restarted")
        assert restarted["worker"]["pid"] != worker_pid
        assert restarted["worker"]["last_exit"] == "was killed by SIGKILL"
        assert restarted["web"]["pid"] == web_pid and restarted["web"]["restarts"] == 0
        assert answers_200(f"{base}/healthz")
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, what="readyz after the restart")
    finally:
        code, output = stop_launcher(launcher)
    assert code == 0, output
    assert "worker exited: was killed by SIGKILL; restarting in 1 s" in output
    assert "worker restarted: pid" in output
