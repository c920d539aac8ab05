"""``make run``: the whole console in the foreground on one machine.

Migrates, bootstraps (groups, admin user, node ``local``), then starts the ASGI web server
(daphne), the inference gateway (``manage.py gateway`` on CONSOLE_GATEWAY_PORT, docs/gateway.md),
a Celery worker for every queue, Celery beat and the telemetry collector, keeps them running (a
child that exits is restarted with back-off: console.supervisor), and stops them all on Ctrl-C.
Honours PORT, BIND, CONSOLE_GATEWAY_PORT, CONSOLE_DATA_DIR, CONSOLE_ADMIN_PASSWORD (shared/API.md).

The terminal gets one summary once every part is up (the URL, the admin user, the data folder, each part)
and then only warnings and errors: the children log at WARNING, Celery without its banners, without the
warning about running as root and without kombu's "No hostname was supplied" (the embedded broker has
none), and engine scrapes (httpx) only at DEBUG. ``--verbose`` (``make run ARGS=--verbose``) shows
everything: the children's INFO logs and Celery's banners and warnings.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from console.supervisor import Supervisor, status_path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: How long the launcher waits for every part to be up before it prints the summary anyway.
READY_TIMEOUT_S = 120
#: Names of the parts as the summary lists them.
PART_NAMES = {"web": "web server", "gateway": "inference gateway", "worker": "worker", "beat": "scheduler",
              "collector": "telemetry collector"}


def _env(verbose: bool = False) -> dict:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    env.setdefault("CONSOLE_DATA_DIR", str(ROOT / "var"))
    env["PYTHONUNBUFFERED"] = "1"
    if verbose:
        env.setdefault("CONSOLE_LOG_LEVEL", "INFO")
        env.setdefault("CONSOLE_WORKER_LOG_LEVEL", "INFO")
    else:
        # console.settings and console.celery read this: warnings and errors only, no banners.
        env["CONSOLE_QUIET"] = "1"
        env.setdefault("CONSOLE_LOG_LEVEL", "WARNING")
        env.setdefault("CONSOLE_WORKER_LOG_LEVEL", "WARNING")
    return env


def _manage(*args: str, env: dict, capture: bool = False) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, check=True,
                         stdout=subprocess.PIPE if capture else None, text=True)
    return run.stdout or ""


def commands_for(env: dict, *, bind: str, port: str, gateway_port: str, data_dir: Path,
                 verbose: bool) -> dict[str, list[str]]:
    """The argv of every part."""
    queues = "lifecycle,telemetry,long"
    log_level = env.get("CONSOLE_WORKER_LOG_LEVEL", "WARNING")
    celery = [str(BIN / "celery"), "-A", "console"] + ([] if verbose else ["--quiet"])
    commands = {
        # Quiet: no access log line per request (-v 0).
        "web": [str(BIN / "daphne"), "-b", bind, "-p", port, *([] if verbose else ["-v", "0"]),
                "console.asgi:application"],
        # Applications' front door: its own asyncio process, not Django's request path.
        "gateway": [sys.executable, str(ROOT / "manage.py"), "gateway", "--host", bind, "--port", gateway_port]
                   + ([] if verbose else ["-v", "0"]),
        "worker": [*celery, "worker", "-Q", queues, "--pool", "threads",
                   "--concurrency", env.get("CONSOLE_WORKER_CONCURRENCY", "8"), "-n", "embedded@%h",
                   "--loglevel", log_level],
        "beat": [*celery, "beat", "--loglevel", log_level,
                 "--schedule", str(data_dir / "celerybeat-schedule"), "--pidfile", ""],
    }
    if env.get("CONSOLE_COLLECTOR", "true").lower() not in ("0", "false", "no", "off"):
        # Long-lived telemetry streams live in their own process, not in Celery (docs/telemetry.md).
        commands["collector"] = [sys.executable, str(ROOT / "manage.py"), "collect", "--stats-every", "300"]
    return commands


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
            return response.status == 200
    except OSError:
        return False


def wait_until_up(supervisor: Supervisor, *, web: str, gateway: str, stopping, timeout: float) -> dict[str, bool]:
    """Tick the supervisor until the web server and the gateway answer (or ``timeout``); then which parts
    are up: the two that answer, and every other part still running."""
    deadline = time.monotonic() + timeout
    answered = {"web": False, "gateway": False}
    while time.monotonic() < deadline and not stopping() and not all(answered.values()):
        if not supervisor.tick():
            break
        answered["web"] = answered["web"] or _answers(f"{web}/healthz")
        answered["gateway"] = answered["gateway"] or _answers(f"{gateway}/health")
        if not all(answered.values()):
            time.sleep(0.5)
    up = {}
    for name, child in supervisor.children.items():
        running = child.process is not None and child.process.poll() is None
        up[name] = answered.get(name, True) and running
    return up


def summary(*, url: str, gateway: str, data_dir: Path, admin: str, bootstrap: str, up: dict[str, bool],
            verbose: bool) -> str:
    """What the terminal shows once the console is up."""
    admin_lines = [line for line in bootstrap.splitlines() if "password" in line or "It is shown once" in line]
    parts = ", ".join(f"{PART_NAMES.get(name, name)} {'up' if ok else 'NOT UP'}" for name, ok in up.items())
    lines = [
        "",
        f"BooM Console is running on {url}",
        f"  admin user:   {admin}" + (f" ({admin_lines[0].strip()})" if len(admin_lines) == 1 else ""),
        *[f"                {line.strip()}" for line in (admin_lines if len(admin_lines) > 1 else [])],
        f"  data folder:  {data_dir}",
        f"  inference gateway on {gateway}/v1",
        f"  parts:        {parts}",
        ("  logging:      everything (--verbose)" if verbose else
         "  logging:      warnings and errors only (make run ARGS=--verbose shows everything)"),
        "Ctrl-C stops it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description="Run the whole console in the foreground.")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show every part's INFO logs and Celery's banners (default: warnings and errors)")
    args = parser.parse_args(argv)
    env = _env(args.verbose)
    port = env.get("PORT", "8000")
    bind = env.get("BIND", "127.0.0.1")
    data_dir = Path(env["CONSOLE_DATA_DIR"]).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _manage("migrate", "--noinput", "-v", "0", env=env)
    bootstrap = _manage("bootstrap", env=env, capture=not args.verbose)
    gateway_port = env.get("CONSOLE_GATEWAY_PORT", "8001")
    commands = commands_for(env, bind=bind, port=port, gateway_port=gateway_port, data_dir=data_dir,
                            verbose=args.verbose)
    supervisor = Supervisor(commands, cwd=ROOT, env=env, status_file=status_path(data_dir))
    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor.start()
    local = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    # One line at once (the parts take seconds to answer), then the summary once they do.
    print(f"BooM Console is starting on http://{bind}:{port}/ (data in {data_dir}); inference gateway on "
          f"http://{bind}:{gateway_port}/v1 ...", flush=True)
    up = wait_until_up(supervisor, web=f"http://{local}:{port}", gateway=f"http://{local}:{gateway_port}",
                       stopping=lambda: stopping, timeout=READY_TIMEOUT_S)
    if not stopping:
        print(summary(url=f"http://{bind}:{port}/", gateway=f"http://{bind}:{gateway_port}", data_dir=data_dir,
                      admin=env.get("CONSOLE_ADMIN_USER", "admin"), bootstrap=bootstrap, up=up,
                      verbose=args.verbose), flush=True)
    exit_code = 0
    while not stopping:
        if supervisor.gave_up or not supervisor.tick():
            print(f"{supervisor.gave_up}: stopping the console.", flush=True)
            exit_code = 1
            break
        time.sleep(0.2)
    print("Stopping web server, gateway, worker, scheduler and collector...", flush=True)
    supervisor.stop()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
