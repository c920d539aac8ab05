"""`make run`'s terminal: one summary (URL, admin user, data folder, each part up), then only warnings and
errors, while a simulator job serves and the collector scrapes it every second; `--verbose` shows the rest.

Before: an httpx INFO line per engine scrape, Celery's banners, the warning about running as root and
kombu's "No hostname was supplied" (2,632 lines in 20 minutes)."""

import subprocess
import sys
import threading
import time

import httpx
import pytest

from console import launcher as launcher_module
from tests.integration.procs import ROOT, answers_200, free_port, wait_until

pytestmark = pytest.mark.integration
PASSWORD = "correct-horse-battery"
SUMMARY_END = "Ctrl-C stops it."
WATCH_S = 40


class Terminal:
    """What the launcher prints, line by line, read in a thread (with the time each line came)."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process):
        for line in process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def after(self, marker: str) -> list[str]:
        texts = [line for _, line in self.lines]
        return texts[texts.index(marker) + 1:] if marker in texts else []


def start(tmp_path, *args):
    port, gateway_port = free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_GATEWAY_PORT": str(gateway_port),
           "CONSOLE_DATA_DIR": str(tmp_path / "data"), "CONSOLE_ADMIN_PASSWORD": PASSWORD, "HOME": str(tmp_path),
           "CONSOLE_SECRET_KEY": "quiet-terminal-test", "CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S": "1",
           "CONSOLE_TELEMETRY_INTERVAL_S": "1"}
    process = subprocess.Popen([sys.executable, "-m", "console.launcher", *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, Terminal(process), env, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen, terminal: Terminal) -> int:
    process.send_signal(2)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    terminal.thread.join(timeout=10)
    return code


def manage(env, *args) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout


def samples(env) -> int:
    return int(manage(env, "shell", "-c", "from jobs.models import InstanceSample; "
                                          "print(InstanceSample.objects.count())").split()[-1])


def test_the_terminal_shows_one_summary_then_stays_quiet_while_engines_are_scraped(tmp_path):
    process, terminal, env, base = start(tmp_path)
    try:
        wait_until(lambda: SUMMARY_END in terminal.text(), 150, interval=0.5, what="the summary")
        token = manage(env, "drf_create_token", "admin").split()[2]
        version = manage(env, "shell", "-c", (
            "from models_registry.models import Model, ModelVersion\n"
            "m, _ = Model.objects.get_or_create(name='Qwen2.5-0.5B-Instruct', defaults={'family': 'qwen'})\n"
            "v, _ = ModelVersion.objects.get_or_create(model=m, version='bf16', defaults={'quantization': 'bf16', "
            "'source_uri': '/models/qwen-0.5b'})\nprint(v.pk)")).split()[-1]
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Token {token}"}, timeout=10)
        created = api.post("/jobs/", json={"name": "quiet-chat", "model_version": int(version), "engine": "simulator",
                                           "replicas": 1, "accelerators_per_replica": 0, "desired_state": "running"})
        assert created.status_code == 201, created.text
        job = created.json()["id"]
        wait_until(lambda: api.get(f"/jobs/{job}/").json()["state"] == "running", 120, interval=1,
                   what="the simulator job to run")
        before = samples(env)
        time.sleep(WATCH_S)
        scraped = samples(env) - before
        assert answers_200(f"{base}/healthz")
        # Engines outlive the console on purpose: the test stops what it started.
        api.post(f"/jobs/{job}/stop/")
        wait_until(lambda: api.get(f"/jobs/{job}/").json()["state"] == "stopped", 120, interval=1,
                   what="the simulator job to stop")
    finally:
        code = stop(process, terminal)
    output = terminal.text()
    assert code == 0, output
    summary = output.split(SUMMARY_END)[0]
    for text in (f"BooM Console is running on {base}/", "admin user:   admin", f"data folder:  {tmp_path / 'data'}",
                 "web server up", "inference gateway up", "worker up", "scheduler up", "telemetry collector up",
                 "make run ARGS=--verbose"):
        assert text in summary, text
    assert scraped >= WATCH_S // 2, f"the collector scraped {scraped} times in {WATCH_S} s"
    quiet = [line for line in terminal.after(SUMMARY_END) if line.strip()]
    # After the summary: the stop message only (a warning or an error would show, but none is expected).
    assert len(quiet) <= 3, "\n".join(quiet)
    for noise in ("HTTP Request", "celery@", "-------------- ", "superuser privileges", "No hostname was supplied",
                  "INFO"):
        assert noise not in output, noise


def test_verbose_shows_the_parts_own_logs_and_celerys_banner(tmp_path):
    process, terminal, env, base = start(tmp_path, "--verbose")
    try:
        wait_until(lambda: SUMMARY_END in terminal.text() and "[queues]" in terminal.text(), 150, interval=0.5,
                   what="the summary and the worker's banner")
    finally:
        code = stop(process, terminal)
    output = terminal.text()
    assert code == 0, output
    assert "everything (--verbose)" in output and "INFO" in output


def test_the_celery_parts_get_quiet_arguments_unless_verbose(tmp_path):
    env = launcher_module._env(False)
    quiet = launcher_module.commands_for(env, bind="127.0.0.1", port="1", gateway_port="2", data_dir=tmp_path,
                                         verbose=False)
    loud = launcher_module.commands_for(launcher_module._env(True), bind="127.0.0.1", port="1", gateway_port="2",
                                        data_dir=tmp_path, verbose=True)
    assert "--quiet" in quiet["worker"] and "--quiet" in quiet["beat"] and env["CONSOLE_QUIET"] == "1"
    assert "--quiet" not in loud["worker"] and "--quiet" not in loud["beat"]
