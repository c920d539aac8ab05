"""Find the cached ``llama-server`` binary and run it for a test.

``scripts/build-llama-server.sh`` builds the binary once per machine into
``${BOOM_CACHE_DIR:-~/.cache/boom-console}/llama-server/<version>/llama-server``;
``BOOM_LLAMA_SERVER`` names another one. Tests call :func:`require_llama_server`, which skips when
there is none (and fails under ``CI=true``, where nothing may skip), then start a server with
:func:`tiny_llama_server` (the tiny model, console defaults) or :func:`run_llama_server` (any argv,
such as the one an engine adapter builds). Only the standard library talks HTTP here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.engines_support.tiny_gguf import write_tiny_llama

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaServer",
    "free_port",
    "llama_server_binary",
    "require_llama_server",
    "run_llama_server",
    "tiny_llama_server",
]

#: The llama-cpp-python sdist whose vendored llama.cpp the build script compiles (keep in step
#: with ``scripts/build-llama-server.sh``).
LLAMA_CPP_PYTHON_VERSION = os.environ.get("LLAMA_CPP_PYTHON_VERSION", "0.3.36")
BUILD_HINT = "build it with `scripts/build-llama-server.sh` or set BOOM_LLAMA_SERVER to a llama-server binary"


def cache_dir() -> Path:
    """The console's cache directory: ``$BOOM_CACHE_DIR`` or ``~/.cache/boom-console``."""
    return Path(os.environ.get("BOOM_CACHE_DIR") or Path.home() / ".cache" / "boom-console")


def _runs(binary: Path) -> bool:
    """Whether ``binary --version`` exits 0 (llama-server prints its build and exits at once)."""
    try:
        result = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def llama_server_binary() -> Path | None:
    """The ``llama-server`` to test with, or ``None``.

    ``$BOOM_LLAMA_SERVER`` when set (``None`` if it is not an executable file); otherwise the binary
    the build script cached for :data:`LLAMA_CPP_PYTHON_VERSION`. Only files are checked here;
    :func:`require_llama_server` also runs ``--version``.
    """
    named = os.environ.get("BOOM_LLAMA_SERVER")
    candidate = Path(named) if named else cache_dir() / "llama-server" / LLAMA_CPP_PYTHON_VERSION / "llama-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate.resolve()
    return None


def require_llama_server() -> Path:
    """The binary from :func:`llama_server_binary`, checked to run.

    Without one the test is skipped, or fails under ``CI=true`` (where CI builds it first).
    """
    binary = llama_server_binary()
    problem = None
    if binary is None:
        named = os.environ.get("BOOM_LLAMA_SERVER")
        problem = f"BOOM_LLAMA_SERVER={named} is not an executable file" if named else "no cached llama-server"
    elif not _runs(binary):
        problem = f"{binary} --version fails"
    if problem is None:
        return binary
    message = f"{problem}; {BUILD_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"llama-server is required under CI=true: {message}")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    """A running llama-server: its process, where it listens and where its output goes."""

    process: subprocess.Popen
    host: str
    port: int
    log_path: Path
    argv: list[str]

    @property
    def base_url(self) -> str:
        """``http://host:port`` (a wildcard bind address is reached on 127.0.0.1)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's combined stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def get(self, path: str, timeout: float = 30) -> tuple[int, str]:
        """``GET path``: status and body text (an HTTP error status is returned, not raised)."""
        request = urllib.request.Request(self.base_url + path)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", errors="replace")

    def get_json(self, path: str, timeout: float = 30) -> Any:
        """``GET path`` that must answer 200 with JSON."""
        status, body = self.get(path, timeout)
        assert status == 200, f"GET {path}: HTTP {status}: {body[:500]}"
        return json.loads(body)

    def post_json(self, path: str, payload: Mapping[str, Any], timeout: float = 60) -> Any:
        """``POST path`` with a JSON body; must answer 200 with JSON."""
        with urllib.request.urlopen(self._post(path, payload), timeout=timeout) as response:
            assert response.status == 200, f"POST {path}: HTTP {response.status}"
            return json.loads(response.read().decode("utf-8"))

    def post_sse(self, path: str, payload: Mapping[str, Any], timeout: float = 60) -> list[Any]:
        """``POST path`` and read a server-sent event stream: each ``data:`` payload, decoded
        from JSON, and the closing ``[DONE]`` as the string ``"[DONE]"``."""
        events: list[Any] = []
        with urllib.request.urlopen(self._post(path, payload), timeout=timeout) as response:
            assert response.status == 200, f"POST {path}: HTTP {response.status}"
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                events.append(data if data == "[DONE]" else json.loads(data))
        return events

    def _post(self, path: str, payload: Mapping[str, Any]) -> urllib.request.Request:
        return urllib.request.Request(
            self.base_url + path,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )

    def wait_healthy(self, timeout: float = 60, path: str = "/health") -> None:
        """Wait until ``path`` answers 200 (llama-server answers 503 while it loads the model).

        Raises ``AssertionError`` with the log tail when the process exits or time runs out.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"llama-server exited with status {self.process.returncode} before it was healthy\n"
                    f"argv: {self.argv}\n--- log tail ---\n{self.log_tail()}"
                )
            try:
                status, body = self.get(path, timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200]}"
            except (OSError, urllib.error.URLError) as error:
                last = str(error)
            time.sleep(0.1)
        raise AssertionError(
            f"llama-server was not healthy after {timeout}s ({last})\nargv: {self.argv}\n"
            f"--- log tail ---\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15) -> int:
        """Terminate the process (SIGTERM, then SIGKILL) and return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def run_llama_server(
    argv: Sequence[str],
    *,
    host: str,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    health_path: str = "/health",
) -> Iterator[LlamaServer]:
    """Start ``argv`` exactly as given (it must listen on ``host:port``), wait for ``health_path``,
    yield the :class:`LlamaServer`, and stop it on exit. ``env`` replaces the environment."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
        )
    server = LlamaServer(process=process, host=host, port=port, log_path=log_path, argv=list(argv))
    try:
        server.wait_healthy(timeout=timeout, path=health_path)
        yield server
    finally:
        server.stop()


@contextmanager
def tiny_llama_server(
    workdir: Path,
    *,
    binary: Path | None = None,
    alias: str = "boom-tiny",
    extra_args: Sequence[str] = (),
    timeout: float = 60,
) -> Iterator[LlamaServer]:
    """Serve the tiny model (written into ``workdir``) on a free 127.0.0.1 port.

    The command is the one ENVIRONMENT.md documents: ``-c 2048 -np 4 -t 2 --metrics``, with the
    model served under ``alias``. ``binary`` defaults to :func:`require_llama_server`.
    """
    workdir = Path(workdir)
    binary = binary or require_llama_server()
    model = write_tiny_llama(workdir / "tiny-llama.gguf")
    port = free_port()
    argv = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-a",
        alias,
        "--metrics",
        "-c",
        "2048",
        "-t",
        "2",
        "-np",
        "4",
        *extra_args,
    ]
    log_path = workdir / "llama-server.log"
    with run_llama_server(argv, host="127.0.0.1", port=port, log_path=log_path, timeout=timeout) as server:
        yield server
