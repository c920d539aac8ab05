"""``make run`` starts the gateway beside the web server, and Ctrl-C stops it with the rest."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from tests.integration.procs import ROOT, free_port, wait_until


def _health(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.integration
def test_the_launcher_starts_the_gateway_on_its_port_and_ctrl_c_stops_it(tmp_path):
    port, gateway_port = free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_GATEWAY_PORT": str(gateway_port),
           "CONSOLE_DATA_DIR": str(tmp_path / "data"), "CONSOLE_ADMIN_PASSWORD": "correct-horse-battery",
           "HOME": str(tmp_path), "CONSOLE_COLLECTOR": "false"}
    launcher = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    gateway = f"http://127.0.0.1:{gateway_port}"
    try:
        wait_until(lambda: _health(f"{gateway}/health"), 90, what="the gateway")
        refused = httpx.get(f"{gateway}/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key"
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            code = launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            raise
        output = launcher.stdout.read()
    assert code == 0, output
    assert f"gateway on http://127.0.0.1:{gateway_port}/v1" in output
    children = subprocess.run(["pgrep", "-f", f"gateway --host 127.0.0.1 --port {gateway_port}"],
                              capture_output=True, text=True).stdout
    assert not children.strip(), "the gateway outlived the launcher"
