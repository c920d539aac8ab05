"""The production topology on private services, for the fault suite (issue 12, items 3 and 4):
tests/integration/test_production_topology.py and bench/service_faults.py.

* :class:`PrivatePostgres`: a PostgreSQL cluster of its own (``initdb`` and ``pg_ctl`` from
  /usr/lib/postgresql/<version>/bin) in a temporary folder, on its own port, run as the ``postgres``
  user when the tests run as root (CI does); it can be stopped and started again under activity
  without touching the shared server the rest of the suite uses.
* :class:`PrivateRedis`: a ``redis-server`` on its own port with its own folder, no persistence (a
  restart loses every key, as a Redis restarted without AOF does).
* :class:`Topology`: the console as docs/deployment.md runs it in production, on those two: two web
  servers (daphne), two Celery workers, beat and a telemetry collector, each kept running by
  console.supervisor (the equivalent of the systemd units' ``Restart=``), which writes the status
  ``/readyz`` reads.
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PRIVATE_ENV = ("CONSOLE_", "DJANGO_", "CELERY_", "DATABASE_URL", "REDIS_URL", "BOOM_", "TEST_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def answers_200(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def postgres_bin() -> Path | None:
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), key=lambda p: int(p.parent.name))
    found = [p for p in found if (p / "initdb").exists() and (p / "pg_ctl").exists()]
    return found[-1] if found else None


def services_available() -> str | None:
    """None when a private PostgreSQL and Redis can be started here; else what is missing."""
    if postgres_bin() is None:
        return "PostgreSQL's initdb and pg_ctl (/usr/lib/postgresql/*/bin)"
    if shutil.which("redis-server") is None:
        return "redis-server"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "a postgres user (PostgreSQL refuses to run as root)"
    return None


class PrivatePostgres:
    """See the module docstring. ``url(name)`` is a DATABASE_URL for database ``name``."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="boom-private-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.user = "postgres" if self.as_user else getpass.getuser()

    def _run(self, *argv: str, timeout: float = 120) -> None:
        result = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout}{result.stderr}"
                               f"{self.log_text()}")

    def init(self) -> PrivatePostgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync",
                  "-E", "UTF8")
        return self

    def start(self) -> None:
        # fsync off: a test cluster; the restart under test is a clean stop and start, not a power cut.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: every session is disconnected at once, as in a restart of the service."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{name}"

    def log_text(self) -> str:
        try:
            return (self.dir / "log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """See the module docstring."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="boom-private-redis-"))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--logfile", str(self.dir / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.answers, 30, interval=0.05, what="the private redis-server to answer")

    def answers(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Topology:
    """Two web servers, two workers, beat and a collector, supervised; see the module docstring."""

    def __init__(self, *, database_url: str, redis_url: str, instance_prefix: str, port_range: tuple[int, int],
                 admin_password: str, extra_env: dict | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="boom-topology-"))
        self.data = self.dir / "data"
        self.web_ports = [free_port(), free_port()]
        self.database_url, self.redis_url = database_url, redis_url
        self.instance_prefix = instance_prefix
        self.port_range = port_range
        self.admin_password = admin_password
        self.extra_env = dict(extra_env or {})
        self.supervisor = None
        self._ticker: threading.Thread | None = None
        self._stop_ticking = threading.Event()
        self.gave_up = ""

    def base(self, web: int) -> str:
        """The address of web server 1 or 2."""
        return f"http://127.0.0.1:{self.web_ports[web - 1]}"

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV)}
        env.update({"DJANGO_SETTINGS_MODULE": "console.settings", "PYTHONUNBUFFERED": "1",
                    "CONSOLE_DATA_DIR": str(self.data), "DATABASE_URL": self.database_url,
                    "REDIS_URL": self.redis_url, "CONSOLE_SECRET_KEY": "topology-test-secret",
                    "CONSOLE_ADMIN_PASSWORD": self.admin_password, "HOME": str(self.dir),
                    "CONSOLE_INSTANCE_PREFIX": self.instance_prefix,
                    "CONSOLE_INSTANCE_PORT_MIN": str(self.port_range[0]),
                    "CONSOLE_INSTANCE_PORT_MAX": str(self.port_range[1])})
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env(),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def commands(self) -> dict[str, list[str]]:
        queues = "lifecycle,telemetry,long"
        worker = [str(BIN / "celery"), "-A", "console", "worker", "-Q", queues, "--pool", "threads",
                  "--concurrency", "4", "--loglevel", "WARNING"]
        commands = {f"web{n}": [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "--proxy-headers",
                                "console.asgi:application"] for n, port in enumerate(self.web_ports, 1)}
        commands.update({f"worker{n}": [*worker, "-n", f"topology{n}@%h"] for n in (1, 2)})
        commands["beat"] = [str(BIN / "celery"), "-A", "console", "beat", "--loglevel", "WARNING",
                            "--schedule", str(self.data / "celerybeat-schedule"), "--pidfile", ""]
        commands["collector"] = [sys.executable, str(ROOT / "manage.py"), "collect", "--stats-every", "300"]
        return commands

    def start(self) -> None:
        from console.supervisor import Supervisor, status_path

        self.data.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("bootstrap")
        self.log = open(self.dir / "processes.log", "ab")  # noqa: SIM115 - open as long as the topology runs
        env = self.env()
        # Every child's output, and the supervisor's, in one log (a failing test prints its tail).
        self.supervisor = Supervisor(self.commands(), cwd=ROOT, env=env, status_file=status_path(self.data),
                                     say=lambda text: self.log.write(f"supervisor: {text}\n".encode()),
                                     output=self.log)
        self.supervisor.start()
        self._ticker = threading.Thread(target=self._tick, name="topology-supervisor", daemon=True)
        self._ticker.start()
        for web in (1, 2):
            wait_until(lambda web=web: answers_200(f"{self.base(web)}/healthz"), 120,
                       what=f"web server {web} to answer")

    def _tick(self) -> None:
        while not self._stop_ticking.wait(0.2):
            if not self.supervisor.tick():
                self.gave_up = self.supervisor.gave_up
                return

    def parts(self) -> dict:
        return json.loads((self.data / "run" / "supervisor.json").read_text())["parts"]

    def log_text(self, tail: int = 6000) -> str:
        try:
            return (self.dir / "processes.log").read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        self._stop_ticking.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self.supervisor is not None:
            self.supervisor.stop(timeout=20)
            self.log.close()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_ready(base: str, timeout: float = 120) -> float:
    """Seconds until ``/readyz`` of ``base`` answers 200."""
    began = time.monotonic()
    wait_until(lambda: answers_200(f"{base}/readyz"), timeout, interval=0.2, what=f"{base}/readyz to be ready")
    return time.monotonic() - began
