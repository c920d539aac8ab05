"""Shared fixtures: users in each role, API clients with tokens, fake tool paths."""

import os
import signal
import time
import warnings
from pathlib import Path

import psutil
import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from console.core.models import ApiToken

TESTS_DIR = Path(__file__).resolve().parent
FIXTURES = TESTS_DIR / "fixtures"
FAKE_BIN = TESTS_DIR / "fakes" / "bin"
IN_CI = os.environ.get("CI", "").lower() == "true"

def _is_engine(argv: list[str], name: str) -> bool:
    """A serving engine the console launched (the simulator, llama.cpp's server, vLLM's API server and its
    workers, which name themselves ``VLLM::...``), or the supervisor wrapped around one: judged by the
    program and its arguments, not by any mention of them (a shellcheck of supervise.sh is no engine)."""
    if name.startswith("VLLM::") or (argv and argv[0].startswith("VLLM::")):
        return True
    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program == "llama-server":
        return True
    if program.startswith("python") and len(argv) > 2 and argv[1] == "-m":
        return argv[2] == "jobs.simulator" or argv[2].startswith("vllm.entrypoints")
    return (program in ("bash", "sh") and len(argv) >= 2 and argv[-2].endswith("/supervise.sh")
            and "/instances/" in argv[-2])


def _engine_processes(since: float = 0.0) -> dict[int, str]:
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "name", "create_time"]):
        try:
            argv, name = proc.info["cmdline"] or [], proc.info["name"] or ""
            if proc.info["pid"] == os.getpid() or proc.info["create_time"] < since or not _is_engine(argv, name):
                continue
        except (psutil.Error, TypeError):
            continue
        found[proc.info["pid"]] = " ".join(argv) or name
    return found


@pytest.fixture(autouse=True, scope="module")
def engines_are_stopped_after_each_module():
    """Engines outlive the console on purpose, so a test that starts one through the console must stop it.
    One that a module leaves behind (a failed assertion before its stop, a forgotten job) would hold its port
    and memory for the rest of the suite and make later tests wait on busy ports: it is killed here, and
    named in a warning so that the leak is seen and fixed."""
    started = time.time() - 1
    before = set(_engine_processes())
    yield
    leaked = {pid: line for pid, line in _engine_processes(since=started).items() if pid not in before}
    if not leaked:
        return
    for pid in sorted(leaked, key=lambda p: "supervise" not in leaked[p]):  # supervisors first
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    warnings.warn(f"engines left running by this module were killed: {sorted(leaked.values())}", stacklevel=1)


#: pyenv's lock for rehashing its shims. On this project's test machines root's ~/.bashrc runs `pyenv init`
#: (which rehashes) in the shell of every SSH command a loopback test node runs, unless the node is given a
#: HOME of its own; a shell killed mid-rehash (a test that ends a command as soon as it started) leaves the
#: lock behind, and every later SSH command then waits 60 s for it. A rehash takes well under a second, so a
#: lock older than STALE_LOCK_S is a dead shell's.
PYENV_LOCK = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))) / "shims" / ".pyenv-shim"
STALE_LOCK_S = 15.0


def remove_stale_pyenv_lock(now: float | None = None) -> bool:
    try:
        if (now or time.time()) - PYENV_LOCK.stat().st_mtime > STALE_LOCK_S:
            PYENV_LOCK.unlink()
            return True
    except OSError:
        pass
    return False


@pytest.fixture(autouse=True, scope="session")
def no_stale_pyenv_lock():
    """While the suite runs, a dead shell's pyenv lock is removed within a second of turning stale."""
    import threading

    stop = threading.Event()
    removed = []

    def watch() -> None:
        while not stop.wait(1.0):
            if remove_stale_pyenv_lock():
                removed.append(time.time())

    remove_stale_pyenv_lock()
    thread = threading.Thread(target=watch, name="pyenv-lock-watch", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)
    if removed:
        warnings.warn(f"stale pyenv locks removed during the run: {len(removed)}", stacklevel=1)


def require(condition: bool, what: str) -> None:
    """Skip when a real component is missing locally; fail under CI, where nothing may skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not available here")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing a password with the production hasher costs 0.7 s; tests do not need that strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_api_throttles(settings):
    """The suite makes many API calls per user; tests/console/test_web_security.py sets a rate to test one."""
    settings.CONSOLE_API_THROTTLE_ANON = None
    settings.CONSOLE_API_THROTTLE_USER = None


@pytest.fixture
def make_user(db):
    def make(role: str | None, username: str | None = None) -> User:
        username = username or f"{role or 'nobody'}-user"
        user = User.objects.create_user(username, password="pw-" + username)
        if role:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
        return user

    return make


@pytest.fixture
def client_for(make_user):
    """``client_for("operator")`` is an APIClient authenticated with that role's token."""

    def make(role: str | None) -> APIClient:
        user = make_user(role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=user).key}")
        client.user = user
        return client

    return make


@pytest.fixture
def admin_api(client_for):
    return client_for("admin")


@pytest.fixture
def viewer_api(client_for):
    return client_for("viewer")


@pytest.fixture
def operator_api(client_for):
    return client_for("operator")


@pytest.fixture
def fake_tools_path(monkeypatch):
    """Put the fake nvidia-smi and npu-smi first on this process's PATH (the local node sees them)."""
    monkeypatch.setenv("PATH", f"{FAKE_BIN}:{os.environ['PATH']}")
    return FAKE_BIN
