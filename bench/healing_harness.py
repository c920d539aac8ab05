"""The harness of bench/healing.py: the console under test (``python -m console.launcher`` in a fresh
data directory, driven through its REST API), a /health watcher, process helpers and statistics."""

import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT  # noqa: E402
from tests.sshd import SshdNode, free_port  # noqa: E402

POLL_S = 0.05
PASSWORD = "bench-healing-password"
NODE_PATH = "/usr/local/bin:/usr/bin:/bin"  # CPU-only nodes: no nvidia-smi or npu-smi
OPTIONS = {"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1}
# The console's own settings and services stay out of its environment: the embedded default is measured.
PRIVATE_ENV = ("CONSOLE_", "DJANGO_", "CELERY_", "DATABASE_URL", "REDIS_URL", "BOOM_")


# --------------------------------------------------------------------------- statistics


def stats(values):
    """(median, p90, max) of ``values``; NaNs when empty."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return float("nan"), float("nan"), float("nan")
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return statistics.median(values), p90, values[-1]


def fmt(values) -> str:
    """One table cell: median / p90 / max."""
    med, p90, top = stats(values)
    return f"{med:.2f} / {p90:.2f} / {top:.2f} s"


def med(values) -> float:
    return stats(values)[0]


# --------------------------------------------------------------------------- processes


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(int(entry)) == pid:
            out.append(int(entry))
    return out


def process_started_at(pid: int) -> float | None:
    """Epoch seconds at which ``pid`` started (10 ms resolution), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])
    boot = time.time() - uptime
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def kill_instance_processes(base: Path) -> int:
    """SIGKILL the engines (and their supervisors) recorded under an executor base dir, if still ours."""
    killed = 0
    for pid_file in base.glob("*/pid"):
        key = pid_file.parent.name
        for name in ("pid", "supervisor_pid"):
            try:
                pid = int((pid_file.parent / name).read_text().strip())
                environ = Path(f"/proc/{pid}/environ").read_bytes() if name == "pid" else b""
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if f"BOOM_INSTANCE={key}".encode() in environ or (name == "supervisor_pid" and
                                                                 str(pid_file.parent).encode() in cmdline):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


def node_home(with_rc_files: bool) -> Path:
    """A HOME for one SSH node, so that each node has its own ``~/.boom-console`` as a real machine has.

    ``with_rc_files``: its ``.bashrc`` sources the current user's own, with HOME pointing at the real home
    meanwhile (tools such as pyenv keep their real paths), so every SSH command pays the same start-up as
    on this machine's account.
    """
    home = Path(tempfile.mkdtemp(prefix="boom-bench-home-"))
    real = Path.home()
    if with_rc_files and (real / ".bashrc").exists():
        (home / ".bashrc").write_text(f"_node_home=$HOME\nHOME={real}\n. {real}/.bashrc\nHOME=$_node_home\n")
    return home


def simulator_cold_start() -> float:
    """The baseline: spawn the simulator and poll /health until it answers (same polling as the bench)."""
    port = free_port()
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "jobs.simulator", "--host", "127.0.0.1", "--port", str(port),
                             "--model", "m"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.time() - started < 30:
            if health(f"http://127.0.0.1:{port}/health"):
                return time.time() - started
            time.sleep(POLL_S)
        raise RuntimeError("the simulator did not answer /health within 30 s")
    finally:
        proc.kill()
        proc.wait()


def health(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(predicate, timeout: float, what: str, interval: float = POLL_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- the console


class Console:
    """``python -m console.launcher`` in a fresh data directory, driven through its REST API."""

    def __init__(self, interval_ms: int, extra_env: dict | None = None):
        self.interval_ms = interval_ms
        self.data_dir = Path(tempfile.mkdtemp(prefix="boom-bench-healing-"))
        self.port = free_port()
        ports = random.randrange(20_000, 32_000, 500)  # below Linux's ephemeral ports
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV)}
        env.update({"PORT": str(self.port), "CONSOLE_DATA_DIR": str(self.data_dir),
                    "CONSOLE_ADMIN_PASSWORD": PASSWORD, "CONSOLE_RECONCILE_INTERVAL_MS": str(interval_ms),
                    "PYTHONUNBUFFERED": "1",
                    # engines of other consoles on this machine (tests, other benchmarks) take 18000 and up:
                    # a range of our own keeps port clashes out of the healing figures
                    "CONSOLE_INSTANCE_PORT_MIN": str(ports), "CONSOLE_INSTANCE_PORT_MAX": str(ports + 499),
                    # beat's "Sending due task" and the worker's "received" lines time the broker
                    "CONSOLE_WORKER_LOG_LEVEL": "INFO"})
        env.update(extra_env or {})
        env.update(json.loads(os.environ.get("BENCH_CONSOLE_ENV", "{}")))  # diagnostics, e.g. a log level
        self.env = env
        self.log_path = self.data_dir / "console.log"
        self.process: subprocess.Popen | None = None
        self.children: list[int] = []
        self.api: httpx.Client | None = None
        self.token = ""

    def start(self) -> "Console":
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(lambda: self.process.poll() is not None or health(f"{self.base}/healthz"), 120,
                 "the console's web server", interval=0.2)
        if self.process.poll() is not None:
            raise RuntimeError(f"the console exited: {self.log_path.read_text()[-3000:]}")
        self.children = children(self.process.pid)
        out = subprocess.run([sys.executable, "manage.py", "drf_create_token", "admin"], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, check=True).stdout
        self.token = re.search(r"([0-9a-f]{40})", out).group(1)
        self.api = self.client()
        return self

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Token {self.token}"}, timeout=30)

    def manage_shell(self, code: str) -> str:
        return subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=True).stdout

    # -- REST helpers

    def get(self, path, **params):
        response = self.api.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path, body=None, expect=(200, 201, 202)):
        response = self.api.post(path, json=body)
        if response.status_code not in expect:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}

    def patch(self, path, body):
        response = self.api.patch(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"PATCH {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def model_version(self) -> tuple[int, str]:
        """A model version for the jobs: through the registry API when it exists, else through the ORM."""
        model = self.api.post("/api/v1/models/", json={"name": "bench-simulated"})
        if model.status_code == 201:
            version = self.api.post("/api/v1/model-versions/", json={
                "model": model.json()["id"], "version": "v1", "format": "safetensors", "quantization": "bf16",
                "source_uri": "/models/bench-simulated"})
            if version.status_code == 201:
                return version.json()["id"], "the registry API"
        out = self.manage_shell(
            "from models_registry.models import Model, ModelVersion\n"
            "m, _ = Model.objects.get_or_create(name='bench-simulated-orm')\n"
            "v, _ = ModelVersion.objects.get_or_create(model=m, version='v1', "
            "defaults={'source_uri': '/models/bench-simulated', 'quantization': 'bf16'})\n"
            "print('VERSION', v.pk)\n")
        return int(re.search(r"VERSION (\d+)", out).group(1)), "the ORM (no registry API yet)"

    def add_ssh_node(self, name: str, daemon: SshdNode, labels: dict) -> dict:
        credential = self.post("/api/v1/credentials/", {"name": f"{name}-key", "username": daemon.username,
                                                        "private_key": daemon.client_key_pem})
        node = self.post("/api/v1/nodes/", {"name": name, "address": "127.0.0.1", "transport": "ssh",
                                            "ssh_port": daemon.port, "credential": credential["id"],
                                            "labels": labels})
        return self.wait_node_online(node["id"])

    def wait_node_online(self, node_id: int, timeout: float = 60) -> dict:
        return wait_for(lambda: (n := self.get(f"/api/v1/nodes/{node_id}/"))["status"] in ("online", "degraded")
                        and n, timeout, f"node {node_id} online", interval=0.2)

    def instances(self, job_id: int) -> list[dict]:
        return self.get("/api/v1/instances/", job=job_id)["results"]

    def instance_events(self, instance_id: int, since: float) -> list[tuple[float, str, str]]:
        """(time, from, to) of the instance's state changes since ``since`` (epoch), oldest first."""
        iso = datetime.fromtimestamp(since - 1).astimezone().isoformat()
        rows = self.get("/api/v1/events/", object_type="instance", object_id=str(instance_id), since=iso,
                        limit=200)["results"]
        out = [(parse_time(r["time"]), r["detail"].get("from"), r["detail"].get("to")) for r in rows
               if r["verb"] == "status"]
        return sorted(e for e in out if e[0] >= since)

    def create_job(self, name: str, version: int, selector: dict) -> int:
        return self.post("/api/v1/jobs/", {"name": name, "model_version": version, "engine": "simulator",
                                           "replicas": 1, "accelerators_per_replica": 0, "node_selector": selector,
                                           "options": OPTIONS, "desired_state": "stopped"})["id"]

    def running_instance(self, job_id: int, timeout: float = 60) -> dict:
        def ready():
            rows = [i for i in self.instances(job_id) if i["state"] == "running"]
            return rows and health(rows[0]["endpoint"].removesuffix("/v1") + "/health") and rows[0]
        return wait_for(ready, timeout, f"job {job_id} running")

    def stop_job(self, job_id: int, timeout: float = 60) -> None:
        self.post(f"/api/v1/jobs/{job_id}/stop/")
        wait_for(lambda: all(i["state"] in ("stopped", "failed") for i in self.instances(job_id)), timeout,
                 f"job {job_id} to stop", interval=0.2)

    # -- the log

    def celery_latencies(self) -> tuple[list[float], list[float]]:
        """From the log: beat's 'Sending due task reconcile-jobs' to the worker's 'received', and the
        durations of reconcile_all passes that looked at one job or more."""
        stamp = r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/\w+\]"
        sent, received, runs = [], [], []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = re.match(stamp, line)
            if not match:
                continue
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if "Sending due task reconcile-jobs" in line:
                sent.append(at)
            elif "jobs.tasks.reconcile_all[" in line and line.rstrip().endswith("received"):
                received.append(at)
            elif "jobs.tasks.reconcile_all[" in line and (m := re.search(r"succeeded in ([\d.]+)s: (\d+)", line)):
                if int(m.group(2)):  # 0: skipped (another pass held the lock) or nothing to do
                    runs.append(float(m.group(1)))
        lag, pending = [], list(sent)
        for at in received:  # the queue is FIFO: each receive takes the oldest message sent before it
            while pending and pending[0] <= at + 0.002:
                sent_at = pending.pop(0)
                if at - sent_at < 5:  # older: expired and dropped unseen
                    lag.append(at - sent_at)
                    break
        return lag, runs

    # -- stopping

    def stop(self) -> None:
        if self.api is not None:
            with contextlib.suppress(Exception):
                for job in self.get("/api/v1/jobs/", limit=500)["results"]:
                    if job["desired_state"] == "running":
                        self.api.post(f"/api/v1/jobs/{job['id']}/stop/")
                wait_for(lambda: not self.get("/api/v1/instances/", limit=500, state="running")["results"], 30,
                         "every instance to stop", interval=0.3)
            self.api.close()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in self.children:  # each child of the launcher leads its own session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        kill_instance_processes(self.data_dir / "instances")


# --------------------------------------------------------------------------- pollers


class HealthWatch(threading.Thread):
    """Polls ``/health`` every 50 ms; records the first 200 that follows a failure (the replacement).

    A 200 counts only when ``/v1/models`` of the same server serves ``model`` (the job's name): another
    process that took the port meanwhile is not the replacement.
    """

    def __init__(self, url: str, model: str):
        super().__init__(daemon=True)
        self.url = url
        self.model = model
        self.failed_at = None
        self.back_at = None
        self.done = threading.Event()

    def ours(self) -> bool:
        try:
            listed = httpx.get(self.url.removesuffix("/health") + "/v1/models", timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return False
        return any(m.get("id") == self.model for m in listed.get("data", []))

    def run(self):
        while not self.done.is_set():
            asked = time.time()
            ok = health(self.url)
            answered = time.time()
            if not ok and self.failed_at is None:
                self.failed_at = asked
            elif ok and self.failed_at is not None and self.ours():
                self.back_at = answered
                return
            time.sleep(POLL_S)
