"""Helpers for integration tests that start real processes (workers, the console, engines)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_database_url() -> str:
    """A DATABASE_URL that points a child process at the database the tests are using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "console.settings", "PYTHONUNBUFFERED": "1",
                "CONSOLE_SECRET_KEY": settings.CONSOLE_SECRET_KEY})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process: subprocess.Popen, timeout: float = 15) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def answers_200(url: str) -> bool:
    """True when ``url`` answers 200 now (False on any connection error)."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_launcher(env: dict) -> subprocess.Popen:
    """``make run``'s launcher (console.launcher) with exactly ``env``, its output captured."""
    return subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_launcher(launcher: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    """Ctrl-C (SIGINT) the launcher as a user would; its exit code and everything it printed."""
    launcher.send_signal(signal.SIGINT)
    try:
        code = launcher.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        launcher.kill()
        raise
    return code, launcher.stdout.read()


#: Debian's Chromium (Playwright cannot download its own browser here) and the switches every test uses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def launch_chromium(playwright):
    """A headless Chromium for a browser test (close it in the test's ``finally``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def sign_in(page, base: str, password: str, username: str = "admin") -> None:
    """Log ``page`` in through the login form and wait for the overview."""
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
