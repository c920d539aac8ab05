"""``make run`` starts the gateway beside the web server, and Ctrl-C stops it with the rest."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.integration.procs import answers_200, free_port, start_launcher, stop_launcher, wait_until


@pytest.mark.integration
def test_the_launcher_starts_the_gateway_on_its_port_and_ctrl_c_stops_it(tmp_path):
    port, gateway_port = free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_GATEWAY_PORT": str(gateway_port),
           "CONSOLE_DATA_DIR": str(tmp_path / "data"), "CONSOLE_ADMIN_PASSWORD": "correct-horse-battery",
           "HOME": str(tmp_path), "CONSOLE_COLLECTOR": "false"}
    launcher = start_launcher(env)
    gateway = f"http://127.0.0.1:{gateway_port}"
    try:
        wait_until(lambda: answers_200(f"{gateway}/health"), 90, what="the gateway")
        refused = httpx.get(f"{gateway}/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key"
    finally:
        code, output = stop_launcher(launcher)
    assert code == 0, output
    assert f"gateway on http://127.0.0.1:{gateway_port}/v1" in output
    children = subprocess.run(["pgrep", "-f", f"gateway --host 127.0.0.1 --port {gateway_port}"],
                              capture_output=True, text=True).stdout
    assert not children.strip(), "the gateway outlived the launcher"
