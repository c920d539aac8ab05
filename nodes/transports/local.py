"""The console's own machine: commands run as ``bash -c`` subprocesses of the console.

Each command runs in a session of its own (as an SSH session's shell does on a node), so a command
that does not finish in time is killed with everything it started in its process group. Its
environment is the console's minus the console's private settings (:func:`engine_base_env`): the
secret key, database URL and broker credentials never reach a program run on node ``local``, be it
an engine, the probe or a model inspection.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from nodes.transports.base import CommandResult, NodeCommandError, Pipe, Transport, command_text

__all__ = ["LocalTransport", "ProcessPipe", "engine_base_env"]

# The console's own settings and credentials never reach a program started on node `local`.
_PRIVATE_ENV_PREFIXES = ("CONSOLE_", "DJANGO_", "CELERY_", "BOOM_INSTANCE", "BOOM_GENERATION", "DATABASE_URL",
                         "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL", "PGPASSWORD", "EMAIL_", "AWS_SECRET")
#: How much of a streamed command's standard error is kept for the result.
_STDERR_KEEP = 64 * 1024


def engine_base_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The console's environment minus its private settings: what local commands and engines start from."""
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}


class LocalTransport(Transport):
    """Runs commands on this machine. ``env``: the environment commands get (default: the console's,
    read at each command, minus its private settings)."""

    kind = "local"
    is_local = True
    bind_host = "127.0.0.1"
    python = sys.executable

    def __init__(self, *, instance_dir: Path | str, command_timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(connect_host="127.0.0.1", instance_dir=str(Path(instance_dir).expanduser().absolute()),
                         command_timeout=command_timeout)
        self._env = None if env is None else engine_base_env(env)

    @classmethod
    def for_node(cls, node) -> LocalTransport:
        from django.conf import settings

        return cls(instance_dir=settings.DATA_DIR / "instances",
                   command_timeout=float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S))

    @property
    def env(self) -> dict[str, str]:
        return self._env if self._env is not None else engine_base_env()

    def home(self) -> str:
        return self.env.get("HOME") or str(Path.home())

    def run(self, command: str | Sequence[str], *, stdin: str | None = None,
            timeout: float | None = None) -> CommandResult:
        timeout = timeout or self.command_timeout
        proc = self._spawn(command_text(command), stdin, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(None if stdin is None else stdin.encode("utf-8"), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a process that left the group still holds the pipes
                proc.stdout.close()
                proc.stderr.close()
                proc.wait()
            raise NodeCommandError(f"the command did not finish within {timeout:g} s") from None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        return CommandResult(out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace"),
                             proc.returncode)

    def stream(self, command: str | Sequence[str], on_line: Callable[[str], None], *,
               stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        timeout = timeout or self.command_timeout
        with tempfile.TemporaryFile() as errors:
            proc = self._spawn(command_text(command), stdin, stderr=errors)
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                _kill_group(proc)

            watchdog = threading.Timer(timeout, expire)
            watchdog.daemon = True
            watchdog.start()
            if stdin is not None:
                # A thread, so that a command that prints before reading all of its input cannot deadlock.
                def feed() -> None:
                    try:
                        proc.stdin.write(stdin.encode("utf-8"))
                        proc.stdin.close()
                    except OSError:
                        pass

                threading.Thread(target=feed, daemon=True).start()
            try:
                for raw in proc.stdout:
                    on_line(raw.rstrip(b"\n").decode("utf-8", errors="replace"))
                code = proc.wait()
            except BaseException:
                _kill_group(proc)
                proc.wait()
                raise
            finally:
                watchdog.cancel()
                proc.stdout.close()
            if expired.is_set():
                raise NodeCommandError(f"the command did not finish within {timeout:g} s")
            errors.seek(0)
            stderr = errors.read(_STDERR_KEEP).decode("utf-8", errors="replace")
        return CommandResult("", stderr, code)

    def open_pipe(self, command: str | Sequence[str], *, timeout: float = 60.0, size: int | None = None) -> Pipe:
        errors = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(  # noqa: S603 - bash -c with a fixed or quoted command
                ["bash", "-c", command_text(command)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=errors, env=self.env, start_new_session=True, bufsize=0,
            )
        except OSError as exc:
            errors.close()
            raise NodeCommandError(f"the command could not run: {exc}") from None
        return ProcessPipe(proc, errors, timeout)

    def _spawn(self, text: str, stdin: str | None, *, stderr) -> subprocess.Popen:
        try:
            return subprocess.Popen(  # noqa: S603 - bash -c with a fixed or quoted command
                ["bash", "-c", text], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=stderr, env=self.env, start_new_session=True,
            )
        except OSError as exc:
            raise NodeCommandError(f"the command could not run: {exc}") from None


class ProcessPipe(Pipe):
    """A subprocess's pipes (a local command, or an ``ssh`` client's). ``timeout`` bounds each wait for output."""

    def __init__(self, proc: subprocess.Popen, errors, timeout: float) -> None:
        self._proc, self._errors, self._timeout, self._closed = proc, errors, timeout, False

    def read(self, size: int) -> bytes:
        return os.read(self._readable(), size)

    def _readable(self) -> int:
        import select

        fd = self._proc.stdout.fileno()
        if not select.select([fd], [], [], self._timeout)[0]:
            raise NodeCommandError(f"the command sent nothing for {self._timeout:g} s")
        return fd

    def write(self, data: bytes) -> None:
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            self._input_refused()

    def _input_refused(self):
        raise NodeCommandError("the command stopped reading its input") from None

    def splices_to(self, writer: Pipe) -> bool:
        # Both ends are OS pipes, unbuffered on our side (bufsize=0): nothing waits in a Python buffer.
        return (hasattr(os, "splice") and isinstance(writer, ProcessPipe) and not writer._closed
                and writer._proc.stdin is not None and not self._closed)

    def splice_to(self, writer: Pipe, size: int) -> int:
        """splice(2) from this command's stdout pipe into ``writer``'s stdin pipe: the bytes never enter the
        console's memory (a model copy's shards through two ``ssh`` clients: the console's CPU per GiB)."""
        fd = self._readable()
        try:
            return os.splice(fd, writer._proc.stdin.fileno(), size)
        except (BrokenPipeError, ValueError):
            writer._input_refused()

    def close_write(self) -> None:
        try:
            self._proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float) -> CommandResult:
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise NodeCommandError(f"the command did not finish within {timeout:g} s") from None
        self._errors.seek(0)
        return CommandResult("", self._errors.read(_STDERR_KEEP).decode("utf-8", errors="replace"), code)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            _kill_group(self._proc)
        for stream in (self._proc.stdin, self._proc.stdout, self._errors):
            try:
                stream.close()
            except OSError:
                pass
        self._proc.wait()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group: bash may have started children that hold stdout open."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
