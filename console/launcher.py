"""``make run``: the whole console in the foreground on one machine.

Migrates, bootstraps (groups, admin user, node ``local``), then starts the ASGI web server
(daphne), the inference gateway (``manage.py gateway`` on CONSOLE_GATEWAY_PORT, docs/gateway.md),
a Celery worker for every queue, Celery beat and the telemetry collector, keeps them running (a
child that exits is restarted with back-off: console.supervisor), and stops them all on Ctrl-C.
Honours PORT, BIND, CONSOLE_GATEWAY_PORT, CONSOLE_DATA_DIR, CONSOLE_ADMIN_PASSWORD (shared/API.md).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from console.supervisor import Supervisor, status_path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    env.setdefault("CONSOLE_DATA_DIR", str(ROOT / "var"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    env = _env()
    port = env.get("PORT", "8000")
    bind = env.get("BIND", "127.0.0.1")
    data_dir = Path(env["CONSOLE_DATA_DIR"]).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _manage("migrate", "--noinput", "-v", "0", env=env)
    _manage("bootstrap", env=env)

    gateway_port = env.get("CONSOLE_GATEWAY_PORT", "8001")
    queues = "lifecycle,telemetry,long"
    log_level = env.get("CONSOLE_WORKER_LOG_LEVEL", "WARNING")
    commands = {
        "web": [str(BIN / "daphne"), "-b", bind, "-p", port, "console.asgi:application"],
        # Applications' front door: its own asyncio process, not Django's request path.
        "gateway": [sys.executable, str(ROOT / "manage.py"), "gateway", "--host", bind, "--port", gateway_port],
        "worker": [str(BIN / "celery"), "-A", "console", "worker", "-Q", queues, "--pool", "threads",
                   "--concurrency", env.get("CONSOLE_WORKER_CONCURRENCY", "8"), "-n", "embedded@%h",
                   "--loglevel", log_level],
        "beat": [str(BIN / "celery"), "-A", "console", "beat",
                 "--loglevel", log_level,
                 "--schedule", str(data_dir / "celerybeat-schedule"), "--pidfile", ""],
    }
    if env.get("CONSOLE_COLLECTOR", "true").lower() not in ("0", "false", "no", "off"):
        # Long-lived telemetry streams live in their own process, not in Celery (docs/telemetry.md).
        commands["collector"] = [sys.executable, str(ROOT / "manage.py"), "collect", "--stats-every", "300"]
    supervisor = Supervisor(commands, cwd=ROOT, env=env, status_file=status_path(data_dir))
    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor.start()
    print(f"BooM Console is starting on http://{bind}:{port}/ (data in {data_dir}); inference gateway on "
          f"http://{bind}:{gateway_port}/v1. Ctrl-C stops it.", flush=True)
    exit_code = 0
    while not stopping:
        if not supervisor.tick():
            print(f"{supervisor.gave_up}: stopping the console.", flush=True)
            exit_code = 1
            break
        time.sleep(0.2)
    print("Stopping web server, gateway, worker, scheduler and collector...", flush=True)
    supervisor.stop()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
