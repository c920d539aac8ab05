"""What a transport is: how the console reaches a node to run a command there.

A transport runs a command on its node, bounded in time, with optional text on the command's
standard input, and either returns what it printed (:meth:`Transport.run`) or hands its standard
output over line by line as it comes (:meth:`Transport.stream`). A command is an argv list, quoted
for the node's shell with :func:`quote_argv`, or a fixed shell string: user text never reaches a
shell unquoted. A non-zero exit code is data, returned; a node that cannot be reached, or a command
that cannot run or does not finish in time, raises :class:`NodeCommandError` (the SSH transport's
errors are subclasses of it, so a caller can tell a changed host key from a refused connection).

A transport also answers the questions that differ between the console's own machine and a
remote node: where engines bind (:attr:`~Transport.bind_host`), at which address the console
reaches them (:attr:`~Transport.connect_host`), which Python runs them when a job names none
(:attr:`~Transport.python`), where instance directories live (:attr:`~Transport.instance_dir`) and
what the login's home directory is (:meth:`~Transport.home`). Callers ask these; nobody compares
``node.transport`` with a string.

Django-free: ``for_node`` of each transport reads the settings, the rest takes arguments.
"""

from __future__ import annotations

import shlex
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["CommandResult", "NodeCommandError", "Pipe", "Transport", "command_text", "quote_argv"]


@dataclass
class CommandResult:
    """What a command produced. ``exit_code`` is -1 when the node sent none (killed by a signal)."""

    stdout: str
    stderr: str
    exit_code: int
    host_key: str = ""  # SSH: the host key seen on the connection, "type base64"; empty locally


class NodeCommandError(Exception):
    """The node could not be reached, or the command could not run (or finish) there.

    ``reason`` is human-readable and safe to show: it never holds key material, passphrases or the
    command's text (commands may carry secrets). ``host_key``: the SSH host key seen before the
    failure, when the key exchange got that far.
    """

    def __init__(self, reason: str, *, host_key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host_key = host_key


class Pipe(ABC):
    """A running command's binary standard input and output (see :meth:`Transport.open_pipe`).

    Not thread-safe: one thread reads and writes a pipe. ``close()`` is idempotent and ends the command
    if it still runs (its input closed, then the channel or process killed).
    """

    @abstractmethod
    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of standard output, as soon as some are there; ``b""`` at its end.
        Raises :class:`NodeCommandError` when nothing came for the pipe's idle timeout or the link died."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send all of ``data`` to the command's standard input (blocks while the command is slow)."""

    @abstractmethod
    def close_write(self) -> None:
        """End the command's standard input (it reads end of file)."""

    @abstractmethod
    def wait(self, timeout: float) -> CommandResult:
        """Wait for the command to exit; its exit code and standard error (stdout is not kept)."""

    @abstractmethod
    def close(self) -> None:
        """Free the pipe, ending the command if it still runs."""

    def splices_to(self, writer: Pipe) -> bool:
        """Whether :meth:`splice_to` can move this pipe's output into ``writer`` (two OS pipes)."""
        return False

    def splice_to(self, writer: Pipe, size: int) -> int:
        """Move up to ``size`` bytes of output straight into ``writer``'s input, in the kernel, as soon as some
        are there; the number moved, 0 at the end of the output. Same errors as ``read`` and ``write``."""
        raise NotImplementedError

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def quote_argv(argv: Sequence[str]) -> str:
    """Quote an argument vector for the node's shell (``shlex.join``).

    List commands always go through here: an argument such as ``"; touch /tmp/x"`` reaches the
    program as one literal argument.
    """
    if isinstance(argv, str) or not argv:
        raise ValueError("quote_argv needs a non-empty list of strings")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"command arguments must be str, not {type(arg).__name__}")
        if "\0" in arg:
            raise ValueError("command arguments cannot contain NUL bytes")
    return shlex.join(argv)


def command_text(command: str | Sequence[str]) -> str:
    """The shell text of a command: a string as it is, an argv list quoted with :func:`quote_argv`."""
    return command if isinstance(command, str) else quote_argv(list(command))


# The login's home directory on each node, asked once: keyed by Transport.login (where and as whom we
# log in), so a node whose address or user is edited is asked again.
_HOMES: dict[tuple, str] = {}
_HOMES_LOCK = threading.Lock()


class Transport(ABC):
    """One way to reach a node. Subclasses: one module each, registered in ``nodes.transports.TRANSPORTS``."""

    #: The ``Node.transport`` value this class serves.
    kind: ClassVar[str] = ""
    #: True for the console's own machine (its engines listen on loopback; its Python is the console's).
    is_local: ClassVar[bool] = False
    #: The address engines started on the node listen on.
    bind_host: ClassVar[str] = "0.0.0.0"
    #: The Python that runs engines on the node when a job names none.
    python: ClassVar[str] = "python3"

    def __init__(self, *, connect_host: str, instance_dir: str, command_timeout: float = 60.0) -> None:
        #: The address at which the console reaches services (engines) on the node.
        self.connect_host = connect_host
        #: Where the executor keeps instance directories on the node: absolute, or ``~/...``.
        self.instance_dir = str(instance_dir)
        #: The time bound of a command when the caller gives none.
        self.command_timeout = float(command_timeout)

    @classmethod
    @abstractmethod
    def for_node(cls, node) -> Transport:
        """The transport that reaches ``node`` (a ``nodes.models.Node``), configured from the settings.

        Cheap: nothing is decrypted or opened before the first command.
        """

    @abstractmethod
    def run(self, command: str | Sequence[str], *, stdin: str | None = None,
            timeout: float | None = None) -> CommandResult:
        """Run ``command`` and return its output and exit code.

        ``stdin`` is sent and then closed (e.g. a script for ``bash -s``); without it the command's
        stdin is closed at once. ``timeout`` (default :attr:`command_timeout`) bounds the command.
        Raises :class:`NodeCommandError`; a non-zero exit code is returned, not raised.
        """

    @abstractmethod
    def stream(self, command: str | Sequence[str], on_line: Callable[[str], None], *,
               stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        """Like :meth:`run`, but hand each line of standard output to ``on_line`` as it arrives.

        Lines are passed without their newline; the result's ``stdout`` is empty. An exception
        raised by ``on_line`` stops the command and propagates.
        """

    @property
    def login(self) -> tuple:
        """Where and as whom commands run: what the node's home directory depends on."""
        return (self.kind,)

    def session_identity(self, node) -> tuple | None:
        """What a long-lived session to ``node`` (the collector's sampling stream) depends on: a
        changed value means a new session. None: the node may not be streamed from (yet)."""
        return None

    def open_stream(self, command: str | Sequence[str], *, timeout: float = 30.0):
        """Start a long-lived ``command`` and return its stdout as a stream with ``readline(wait)``
        (None when nothing came within ``wait`` seconds) and ``close()``. Transports that return a
        :meth:`session_identity` implement it."""
        raise NotImplementedError(f"the {self.kind} transport does not stream long-lived commands")

    def open_pipe(self, command: str | Sequence[str], *, timeout: float = 60.0, size: int | None = None) -> Pipe:
        """Start ``command`` and return its binary stdin and stdout as a :class:`Pipe`, for streaming
        bulk data (a model copy reads files with ``cat`` on one node and writes them on another).
        ``timeout``: starting the command, and the longest wait for data in ``read`` or room in ``write``.
        ``size``: the bytes the pipe will carry, when known (a transport may pick a faster way for large ones)."""
        raise NotImplementedError(f"the {self.kind} transport does not open pipes")

    def home(self) -> str:
        """The login's home directory on the node (``$HOME``), asked once per :attr:`login`."""
        with _HOMES_LOCK:
            known = _HOMES.get(self.login)
        if known:
            return known
        result = self.run('printf %s "$HOME"', timeout=min(self.command_timeout, 10.0))
        home = result.stdout.strip()
        if result.exit_code != 0 or not home.startswith("/"):
            raise NodeCommandError("the node did not say where the login's home directory ($HOME) is")
        with _HOMES_LOCK:
            _HOMES[self.login] = home
        return home

    def expand(self, path: str) -> str:
        """``path`` with a leading ``~`` or ``~/`` replaced by :meth:`home`."""
        if path == "~" or path.startswith("~/"):
            return self.home() + path[1:]
        return path
