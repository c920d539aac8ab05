"""The executor: start an engine process detached on a node, watch it, stop it, read its log.

Engines know *what* to run (argv, env); the executor knows *how* (STYLE.md section 5), and the
node's transport (``nodes.transports``) knows *where*. Every operation is one run of the same shell
script (``launcher.LAUNCHER_SH``) through the transport, on the console's own machine and over SSH
alike, so one code path serves, and is tested on, both.

Django-free. Every call is bounded in time. Transport failures (``NodeCommandError``: the node did
not answer, or not in time; over SSH its subclasses ``Unreachable``, ``CommandTimeout``...) propagate
unchanged so that the caller can tell an unreachable node from a refused launch; everything else is
an ``ExecutorError``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from nodes.transports.base import CommandResult, Transport

from . import launcher

__all__ = [
    "AlreadyRunning",
    "Executor",
    "ExecutorError",
    "InvalidSpec",
    "ProcessHandle",
    "ProcessSpec",
    "ProcessStatus",
    "StillRunning",
    "validate_file_name",
    "validate_instance_key",
]

# A leading letter or digit: "." and ".." (and hidden names) can never name an instance directory.
INSTANCE_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Files an engine may have written into its instance directory: plain names, none of the launcher's own.
FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
LAUNCHER_FILES = frozenset({"lock", "pid", "supervisor_pid", "generation", "started_at", "spec", "log", "log.1",
                            "exit_status", "supervise.sh"})
RESERVED_ENV = frozenset({"BOOM_INSTANCE", "BOOM_GENERATION"})
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}

DEFAULT_SETTLE_S = 0.15  # how long start() waits to catch a command that fails at once
DEFAULT_TIMEOUT_S = 20.0  # every call but stop; stop gets grace_s on top
TAIL_MAX_BYTES = 256 * 1024
MAX_TAIL_LINES = 100_000


# --------------------------------------------------------------------------- errors


class ExecutorError(Exception):
    """The node ran our script but it could not do what was asked. ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidSpec(ExecutorError, ValueError):
    """The spec, key or argument is malformed; nothing was sent to the node."""


class AlreadyRunning(ExecutorError):
    """``start`` found this instance's process still running; ``handle`` describes it (adopt it)."""

    def __init__(self, reason: str, handle: ProcessHandle) -> None:
        super().__init__(reason)
        self.handle = handle


class StillRunning(ExecutorError):
    """``cleanup`` refused: a process of the instance still runs."""


# --------------------------------------------------------------------------- data


def validate_instance_key(key: str) -> str:
    if not isinstance(key, str) or not INSTANCE_KEY_RE.fullmatch(key):
        raise InvalidSpec(
            f"invalid instance key {key!r}: 1-80 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit"
        )
    return key


def validate_file_name(name: str) -> str:
    if (not isinstance(name, str) or not FILE_NAME_RE.fullmatch(name) or name in LAUNCHER_FILES
            or name.endswith(".tmp")):
        raise InvalidSpec(f"invalid file name {name!r}: a plain name of A-Z a-z 0-9 _ . -, not one of the "
                          "launcher's own files")
    return name


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSpec(f"{what} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise InvalidSpec(f"{what} cannot contain NUL bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSpec(f"{what} is not valid Unicode text") from None
    return value


@dataclass
class ProcessSpec:
    """One engine process. ``argv`` reaches ``execve`` word for word; ``env`` is added to the node's."""

    instance_key: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None  # None: the instance directory

    def __post_init__(self) -> None:
        validate_instance_key(self.instance_key)
        if isinstance(self.argv, str) or not isinstance(self.argv, list | tuple) or not self.argv:
            raise InvalidSpec("argv must be a non-empty list of strings")
        self.argv = [_check_text("an argument", arg) for arg in self.argv]
        if not self.argv[0]:
            raise InvalidSpec("the program name (argv[0]) is empty")
        if not isinstance(self.env, dict):
            raise InvalidSpec("env must be a dict of names to strings")
        for name, value in self.env.items():
            if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
                raise InvalidSpec(f"invalid environment variable name {name!r}")
            if name in RESERVED_ENV:
                raise InvalidSpec(f"{name} is reserved for the executor's marker")
            _check_text(f"the value of {name}", value)
        if self.cwd is not None:
            _check_text("cwd", self.cwd)
            if not self.cwd:
                raise InvalidSpec("cwd is empty")


@dataclass
class ProcessHandle:
    instance_key: str
    pid: int
    workdir: str  # the instance directory on the node, absolute
    started_at: float  # epoch seconds, node clock
    generation: int  # run counter of this instance key on this node


@dataclass
class ProcessStatus:
    """What the node says about an instance.

    ``alive`` is the liveness answer: the recorded pid runs (not a zombie) AND it is ours. ``ours``:
    it carries this run's ``BOOM_INSTANCE``/``BOOM_GENERATION`` marker. ``pid_alive`` is the raw
    fact that some process has that pid (True with ``ours`` False: the pid was recycled).
    ``exit_code`` is bash's ``wait`` status: 128+N after signal N (so ``signal`` is a best guess
    when a program exits with such a code by itself). ``oom_killed``: True when it died of SIGKILL
    while the kernel's OOM-kill counter (its cgroup's, or the global one) went up; None when the
    counters could not be read; a hint, not proof.
    """

    alive: bool
    ours: bool
    exit_code: int | None = None
    signal: int | None = None
    oom_killed: bool | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_alive: bool = False
    generation: int | None = None
    started_at: float | None = None
    exists: bool = True  # the instance directory exists on the node

    @property
    def running(self) -> bool:
        return self.alive

    def exit_reason(self) -> str | None:
        """A short English cause for ``last_exit_reason``, or None while running or never started."""
        if self.alive or self.exit_code is None:
            return None
        if self.oom_killed:
            return f"killed by the OOM killer (exit code {self.exit_code})"
        if self.signal:
            name = SIGNAL_NAMES.get(self.signal, f"signal {self.signal}")
            return f"killed by {name} (exit code {self.exit_code})"
        if self.exit_code == 127:
            return "command not found (exit code 127)"
        return f"exited with code {self.exit_code}"


# --------------------------------------------------------------------------- parsing the launcher's answers


def _key_of(handle_or_key: ProcessHandle | str) -> str:
    if isinstance(handle_or_key, ProcessHandle):
        return validate_instance_key(handle_or_key.instance_key)
    return validate_instance_key(handle_or_key)


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _after_marker(stdout: str) -> str | None:
    marker = launcher.OUTPUT_MARKER + "\n"
    at = stdout.find(marker)
    return None if at < 0 else stdout[at + len(marker) :]


def _fields(stdout: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (_after_marker(stdout) or "").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name] = value
    return out


def _status_from(fields: dict[str, str]) -> ProcessStatus:
    pid_alive = fields.get("pid_alive") == "1"
    ours = pid_alive and fields.get("ours") == "1"
    exit_code = _int(fields.get("exit_code", ""))
    signal = exit_code - 128 if exit_code is not None and 128 < exit_code < 128 + 65 else None
    oom = {"1": True, "0": False}.get(fields.get("oom", ""))
    if exit_code is None:
        oom = None
    return ProcessStatus(
        alive=ours,
        ours=ours,
        exit_code=None if ours else exit_code,
        signal=None if ours else signal,
        oom_killed=None if ours else oom,
        ended_at=None if ours else _float(fields.get("ended_at", "")),
        pid=_int(fields.get("pid", "")),
        pid_alive=pid_alive,
        generation=_int(fields.get("generation", "")),
        started_at=_float(fields.get("started_at", "")),
        exists=fields.get("exists", "1") == "1",
    )


def _handle_from(key: str, fields: dict[str, str]) -> ProcessHandle | None:
    pid = _int(fields.get("pid", ""))
    generation = _int(fields.get("generation", ""))
    if pid is None or generation is None:
        return None
    return ProcessHandle(
        instance_key=key,
        pid=pid,
        workdir=fields.get("workdir", ""),
        started_at=_float(fields.get("started_at", "")) or 0.0,
        generation=generation,
    )


def _stderr_reason(result: CommandResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("boom: ")]
    if lines:
        return lines[-1][len("boom: ") :]
    tail = result.stderr.strip().splitlines()[-1:] or [""]
    return f"the launcher failed with exit code {result.exit_code}" + (f": {tail[0][:300]}" if tail[0] else "")


# --------------------------------------------------------------------------- the executor


class Executor:
    """Engine processes on the node that ``transport`` reaches, in instance directories under its
    ``instance_dir`` (absolute, or ``~/...`` for the login's home on the node).

    Built for a node by ``jobs.runtime.executor_for`` (through the transport registry); tests build
    one on a transport of their own.
    """

    # --norc: a login shell already read the user's rc files; a second read costs time (pyenv init).
    COMMAND = "bash --norc --noprofile -s"

    def __init__(
        self, transport: Transport, *, settle_s: float = DEFAULT_SETTLE_S, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        base_dir = _check_text("the instance directory", str(transport.instance_dir))
        if not (base_dir.startswith("/") or base_dir == "~" or base_dir.startswith("~/")) or "\n" in base_dir:
            raise InvalidSpec("the instance directory must be absolute or start with ~/")
        self.transport = transport
        self.base_dir = base_dir
        self.settle_s = settle_s
        self.timeout_s = timeout_s

    # -- plumbing

    def _run_script(self, script: str, timeout: float) -> CommandResult:
        """Run ``script`` with ``bash -s`` on the node and return its output."""
        return self.transport.run(self.COMMAND, stdin=script, timeout=timeout)

    def _call(self, op: str, args: list[str], *, timeout: float | None = None) -> CommandResult:
        payload = b"".join(_check_text("an argument", a).encode("utf-8") + b"\0" for a in [op, *args])
        encoded = base64.encodebytes(payload).decode("ascii")  # 76-character lines, final newline
        delim = launcher.PAYLOAD_DELIMITER
        script = f"{launcher.LAUNCHER_SH}\nboom_main <<'{delim}'\n{encoded}{delim}\nexit $?\n"
        return self._run_script(script, timeout if timeout is not None else self.timeout_s)

    def _checked(self, result: CommandResult) -> CommandResult:
        if result.exit_code == launcher.EXIT_INVALID:
            raise InvalidSpec(_stderr_reason(result))
        if result.exit_code == launcher.EXIT_STILL_RUNNING:
            raise StillRunning(_stderr_reason(result))
        if result.exit_code != 0 or _after_marker(result.stdout) is None:
            raise ExecutorError(_stderr_reason(result))
        return result

    # -- operations

    def workdir(self, instance_key: str) -> str:
        """The absolute instance directory of ``instance_key`` on the node (where :meth:`write_files` writes).

        Asks the node for the login's home once when the base is ``~/...`` (see ``Transport.home``).
        """
        key = validate_instance_key(instance_key)
        return f"{self.transport.expand(self.base_dir).rstrip('/')}/{key}"

    def write_files(self, instance_key: str, files: dict[str, str]) -> str:
        """Write ``files`` (plain name -> text) into the instance directory, creating it; one round trip.

        For what an engine reads at start (MindIE's ``config.json``). Each file is replaced whole
        (mode 0600). Returns the instance directory.
        """
        key = validate_instance_key(instance_key)
        args = [self.base_dir, key]
        for name, content in files.items():
            args += [validate_file_name(name), _check_text(f"the content of {name}", content)]
        fields = _fields(self._checked(self._call("write", args)).stdout)
        return fields.get("workdir", "")

    def list_instances(self) -> list[str]:
        """The instance keys that have a directory on the node (running or not)."""
        out = _after_marker(self._checked(self._call("list", [self.base_dir])).stdout) or ""
        return [key for key in out.split() if INSTANCE_KEY_RE.fullmatch(key)]

    def start(self, spec: ProcessSpec) -> ProcessHandle:
        """Start detached and return at once (after a short settle that catches instant failures).

        Raises ``AlreadyRunning`` when this key's process still runs (``.handle`` names it).
        """
        spec.__post_init__()  # re-validate: the fields may have been changed since construction
        env = [f"{name}={value}" for name, value in spec.env.items()]
        args = [
            self.base_dir,
            spec.instance_key,
            spec.cwd or "",
            str(max(0, int(self.settle_s * 1000))),
            str(len(env)),
            *env,
            *spec.argv,
        ]
        result = self._call("start", args, timeout=self.timeout_s + self.settle_s + 10)
        if result.exit_code == launcher.EXIT_ALREADY_RUNNING:
            handle = _handle_from(spec.instance_key, _fields(result.stdout))
            if handle is not None:
                raise AlreadyRunning(f"instance {spec.instance_key} is already running (pid {handle.pid})", handle)
        fields = _fields(self._checked(result).stdout)
        handle = _handle_from(spec.instance_key, fields)
        if handle is None:
            raise ExecutorError("the launcher did not report a pid")
        return handle

    def status(self, handle_or_key: ProcessHandle | str) -> ProcessStatus:
        """What the node says about the instance: alive and ours, or how it ended."""
        key = _key_of(handle_or_key)
        return _status_from(_fields(self._checked(self._call("status", [self.base_dir, key])).stdout))

    def stop(self, handle_or_key: ProcessHandle | str, grace_s: float = 10.0) -> ProcessStatus:
        """SIGTERM the process group (and any process carrying the marker), SIGKILL after ``grace_s``."""
        key = _key_of(handle_or_key)
        grace_ms = max(0, int(grace_s * 1000))
        result = self._call("stop", [self.base_dir, key, str(grace_ms)], timeout=self.timeout_s + grace_s + 6)
        return _status_from(_fields(self._checked(result).stdout))

    def tail(self, handle_or_key: ProcessHandle | str, lines: int = 200, previous: bool = False) -> str:
        """The last ``lines`` lines of the log (at most 256 KiB); ``previous``: the run before."""
        key = _key_of(handle_or_key)
        lines = max(1, min(int(lines), MAX_TAIL_LINES))
        args = [self.base_dir, key, str(lines), "1" if previous else "0", str(TAIL_MAX_BYTES)]
        return _after_marker(self._checked(self._call("tail", args)).stdout) or ""

    def find(self, instance_key: str) -> ProcessHandle | None:
        """Re-adopt: the handle of this key's process if it still runs and is ours, else None."""
        key = validate_instance_key(instance_key)
        fields = _fields(self._checked(self._call("status", [self.base_dir, key])).stdout)
        if not _status_from(fields).alive:
            return None
        return _handle_from(key, fields)

    def cleanup(self, instance_key: str) -> None:
        """Delete the instance directory; raises ``StillRunning`` unless it was stopped."""
        key = validate_instance_key(instance_key)
        self._checked(self._call("cleanup", [self.base_dir, key]))

    def ports_in_use(self, ports: Iterable[int]) -> set[int]:
        """Which of ``ports`` a TCP socket listens on, IPv4 or IPv6 (one round trip)."""
        wanted = []
        for port in ports:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidSpec(f"invalid port {port!r}")
            wanted.append(str(port))
        if not wanted:
            return set()
        out = _after_marker(self._checked(self._call("ports", wanted)).stdout) or ""
        return {int(line) for line in out.split() if line.isdigit()}

    def port_in_use(self, port: int) -> bool:
        return port in self.ports_in_use([port])
