"""The SSH connection pool: one connection per target identity, a channel per command.

One process-wide ``POOL`` keeps one SSH connection per (host, port, user, credential, pinned host
key) and opens a new channel on it for every command, so a probe every few seconds pays for the key
exchange once, not every time. Connecting, host-key pinning and the errors are in :mod:`.connect`.

Everything is bounded in time: connecting uses ``SSHTarget.connect_timeout``; the command, from the
moment its channel is requested, uses ``run(timeout=...)``. DNS resolution is the system
resolver's and not bounded here.

Concurrency: any number of threads may call ``run``. A global lock guards only the pool's
dictionary; each pool key has its own lock held while connecting, so a slow or dead host never
blocks commands to other hosts. Commands to the same host share the connection and run in parallel
on separate channels, at most ``max_sessions`` at a time (OpenSSH's ``MaxSessions`` defaults to 10).

Django-free.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

from nodes.transports.base import CommandResult, Pipe, command_text
from nodes.transports.ssh.connect import (
    CommandTimeout,
    SSHError,
    SSHTarget,
    StreamEnded,
    Unreachable,
    _cause,
    _close_quietly,
    _connect,
    _Connection,
    _where,
)

__all__ = ["BULK_POOL", "KEEPALIVE_S", "MAX_SESSIONS", "POOL", "ChannelPipe", "LineStream", "SSHPool"]

log = logging.getLogger("nodes.transports.ssh")

KEEPALIVE_S = 30  # SSH-level keep-alive on idle pooled transports
MAX_SESSIONS = 8  # channels per connection; below OpenSSH's default MaxSessions of 10
_READ_CHUNK = 1 << 16
# While stdin is still being sent we poll for send window at this interval
# (paramiko's send window is not select()-able); otherwise we sleep in select().
_STDIN_POLL_S = 0.02
# Bulk pipes (model copies): a large receive window and packet keep a fast link busy (paramiko's
# defaults, 2 MiB and 32 KiB, stall a loopback transfer on window adjustments).
PIPE_WINDOW = 8 << 20
PIPE_MAX_PACKET = 1 << 17


# --------------------------------------------------------------------------- the watchdog


class _Watchdog:
    """One thread that calls functions at their deadlines, for every command of the process: a
    ``threading.Timer`` per command started (and ended) a thread for each probe, at a cost comparable to
    the probe's SSH exchange. ``arm`` returns a handle; ``disarm(handle)`` stops the call if it has not
    run yet (and lets go of the function at once). The thread starts with the first ``arm`` (again in a
    forked child)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int]] = []  # (deadline, handle); a handle gone from _calls is disarmed
        self._calls: dict[int, Callable[[], None]] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None

    def arm(self, timeout: float, fn: Callable[[], None]) -> int:
        with self._cond:
            self._seq += 1
            self._calls[self._seq] = fn
            heapq.heappush(self._heap, (time.monotonic() + timeout, self._seq))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ssh-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == self._seq:
                self._cond.notify()  # the new deadline is the nearest: the thread waits less
            return self._seq

    def disarm(self, handle: int) -> None:
        with self._cond:
            self._calls.pop(handle, None)
            while self._heap and self._heap[0][1] not in self._calls:
                heapq.heappop(self._heap)

    def pending(self) -> int:
        """Calls still to come (tests)."""
        with self._cond:
            return len(self._calls)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][1] not in self._calls:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait(60.0)
                        continue
                    deadline, handle = self._heap[0]
                    delay = deadline - time.monotonic()
                    if delay <= 0:
                        heapq.heappop(self._heap)
                        fn = self._calls.pop(handle)
                        break
                    self._cond.wait(delay)
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing a channel must not stop the watchdog
                log.debug("ssh: watchdog call failed", exc_info=True)

    def _after_fork(self) -> None:
        self.__init__()


_WATCHDOG = _Watchdog()


# --------------------------------------------------------------------------- the pool


class _Slot:
    """Per pool-key state. ``connect_lock`` is held only while (re)connecting."""

    def __init__(self, key: tuple, max_sessions: int) -> None:
        self.key = key
        self.connect_lock = threading.Lock()
        self.sessions = threading.BoundedSemaphore(max_sessions)
        self.conn: _Connection | None = None
        self.in_flight = 0  # guarded by the pool's lock
        self.last_used = time.monotonic()


_POOLS: weakref.WeakSet[SSHPool] = weakref.WeakSet()


class SSHPool:
    """Thread-safe pool of SSH connections, one per target identity.

    ``max_idle_s``: connections unused for longer are closed on the next call
    to ``run`` (or ``reap_idle``); there is no background thread.
    """

    def __init__(
        self, max_idle_s: float = 300, *, max_sessions: int = MAX_SESSIONS, keepalive_s: int = KEEPALIVE_S
    ) -> None:
        self.max_idle_s = max_idle_s
        self.max_sessions = max_sessions
        self.keepalive_s = keepalive_s
        self._lock = threading.Lock()
        self._slots: dict[tuple, _Slot] = {}
        self._connections_opened = 0
        self._last_reap = 0.0
        _POOLS.add(self)

    # -- introspection (tests, admin pages)

    @property
    def connections_opened(self) -> int:
        """How many SSH connections this pool has opened since it was created."""
        return self._connections_opened

    def open_connections(self) -> int:
        """How many pooled connections are currently open."""
        with self._lock:
            return sum(1 for s in self._slots.values() if s.conn and s.conn.transport.is_active())

    # -- running commands

    def run(
        self,
        target: SSHTarget,
        command: str | Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float = 30.0,
    ) -> CommandResult:
        """Run ``command`` on ``target`` and return its output and exit code.

        ``command`` is a shell string, or an argv list quoted with ``quote_argv``.
        ``stdin`` is sent and then closed (e.g. a script for ``bash -s``); without
        it the remote stdin is closed at once. ``timeout`` bounds the command
        from the channel request to the exit status; connecting is bounded
        separately by ``target.connect_timeout``.

        Raises ``HostKeyMismatch``, ``Unreachable``, ``AuthFailed`` or
        ``CommandTimeout`` (all ``SSHError``). A non-zero exit code is not an error.
        """
        return self._call(target, command, stdin=stdin, timeout=timeout, on_stdout_line=None)

    def stream(
        self,
        target: SSHTarget,
        command: str | Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float,
        on_stdout_line: Callable[[str], None],
    ) -> CommandResult:
        """Like ``run``, but hand each line of standard output to ``on_stdout_line`` as it arrives.

        Lines are decoded as UTF-8 (invalid bytes replaced) and passed without their trailing
        newline; a last line without one is passed when the command ends. The returned
        ``CommandResult.stdout`` is empty (the lines went to the callback); stderr is collected as
        usual. An exception raised by the callback stops the command (its channel is closed and the
        remote process asked to terminate) and propagates. Same errors and time bound as ``run``.
        """
        return self._call(target, command, stdin=stdin, timeout=timeout, on_stdout_line=on_stdout_line)

    def _call(self, target, command, *, stdin, timeout, on_stdout_line) -> CommandResult:
        """``run`` and ``stream``: one pooled session slot, one channel, one command."""
        text = command_text(command)
        self._reap_due()
        key = _pool_key(target)
        slot = self._checkout(key)
        try:
            self._acquire_session(slot, target, timeout)
            try:
                chan, conn = self._open_channel(slot, target, timeout)
                try:
                    return self._execute(chan, conn, slot, target, text, stdin, timeout,
                                         on_stdout_line=on_stdout_line)
                except BaseException:
                    if on_stdout_line is not None:  # the callback stopped the command: end it on the node
                        _signal_remote(chan, "TERM")
                    raise
                finally:
                    chan.close()
            finally:
                slot.sessions.release()
        finally:
            self._checkin(slot)

    def open_stream(self, target: SSHTarget, command: str | Sequence[str], *, timeout: float = 30.0) -> LineStream:
        """Start a long-lived ``command`` on ``target`` and return a :class:`LineStream` of its stdout.

        For sampling sessions (``nvidia-smi ... -lms 1000``, a shell loop) that print lines for as long
        as they run. The command shares the pooled connection and holds one of its ``max_sessions``
        session slots until the stream is closed. Its stdin stays open: a command can use
        ``read -t`` on it as a sleep that ends when we close the stream (EOF), so it never outlives us.
        ``timeout`` bounds getting a session slot and starting the command, not the stream's life.

        Raises ``HostKeyMismatch``, ``Unreachable``, ``AuthFailed``, ``CommandTimeout`` or ``SSHError``.
        """
        slot, chan, conn = self._start(target, command_text(command), timeout, self._open_channel)
        chan.settimeout(None)
        return LineStream(self, slot, chan, conn, target)

    def open_pipe(self, target: SSHTarget, command: str | Sequence[str], *, timeout: float = 60.0) -> ChannelPipe:
        """Start ``command`` on ``target`` and return its binary stdin/stdout as a :class:`ChannelPipe`.

        Holds one of the connection's session slots until the pipe is closed. ``timeout`` bounds getting
        a slot and starting the command, and then each wait for data (``read``) or window (``write``).
        """
        slot, chan, conn = self._start(target, command_text(command), timeout, self._open_pipe_channel)
        return ChannelPipe(self, slot, chan, conn, target, timeout)

    def _acquire_session(self, slot: _Slot, target: SSHTarget, timeout: float) -> None:
        if not slot.sessions.acquire(timeout=timeout):
            raise CommandTimeout(
                f"no free SSH session to {_where(target)} within {timeout:g} s "
                f"({self.max_sessions} commands already running there)"
            )

    def _start(self, target: SSHTarget, text: str, timeout: float, open_channel) -> tuple:
        """A session slot, a channel from ``open_channel`` and ``text`` started on it, for a command that
        outlives this call (streams, pipes): on any failure the slot and channel are given back."""
        self._reap_due()
        slot = self._checkout(_pool_key(target))
        acquired = False
        chan = None
        try:
            self._acquire_session(slot, target, timeout)
            acquired = True
            chan, conn = open_channel(slot, target, timeout)
            chan.settimeout(timeout)
            self._exec(chan, conn, slot, target, text, timeout)
            return slot, chan, conn
        except BaseException:
            if chan is not None:
                chan.close()
            if acquired:
                slot.sessions.release()
            self._checkin(slot)
            raise

    def _open_pipe_channel(self, slot: _Slot, target: SSHTarget,
                           timeout: float) -> tuple[paramiko.Channel, _Connection]:
        """A session channel with the large window bulk copies need."""
        return self._open_channel(slot, target, timeout, window_size=PIPE_WINDOW, max_packet_size=PIPE_MAX_PACKET)

    def close(self, target: SSHTarget | None = None) -> None:
        """Close the pooled connection for ``target`` (all connections when None)."""
        if target is None:
            self.close_all()
            return
        with self._lock:
            slot = self._slots.pop(_pool_key(target), None)
        if slot is not None and slot.conn is not None:
            _close_quietly(slot.conn.transport)

    def close_all(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            if slot.conn is not None:
                _close_quietly(slot.conn.transport)

    def _reap_due(self) -> None:
        """``reap_idle`` from a command, at most once a second (or every ``max_idle_s``, if shorter): it looks
        at every pooled connection, a thousand on a console of a thousand nodes, and a round that probes
        each of them made that a thousand times a thousand looks."""
        if time.monotonic() - self._last_reap >= min(1.0, self.max_idle_s):
            self.reap_idle()

    def reap_idle(self) -> None:
        """Close connections idle for longer than ``max_idle_s``, and forget dead ones."""
        now = time.monotonic()
        self._last_reap = now
        doomed = []
        with self._lock:
            for key, slot in list(self._slots.items()):
                if slot.in_flight:
                    continue
                dead = slot.conn is None or not slot.conn.transport.is_active()
                if dead or now - slot.last_used > self.max_idle_s:
                    del self._slots[key]
                    if slot.conn is not None:
                        doomed.append(slot.conn.transport)
        for transport in doomed:
            _close_quietly(transport)

    # -- internals

    def _checkout(self, key: tuple) -> _Slot:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(key, self.max_sessions)
            slot.in_flight += 1
            slot.last_used = time.monotonic()
            return slot

    def _checkin(self, slot: _Slot) -> None:
        with self._lock:
            slot.in_flight -= 1
            slot.last_used = time.monotonic()
            # close()/close_all() removed this slot while we used it (perhaps
            # while we were connecting): nobody else will close its connection.
            orphan = slot.in_flight == 0 and self._slots.get(slot.key) is not slot
            conn = slot.conn if orphan else None
        if conn is not None:
            _close_quietly(conn.transport)

    def _connection(self, slot: _Slot, target: SSHTarget) -> tuple[_Connection, bool]:
        """The slot's live connection, connecting first if needed. Returns (conn, freshly_opened)."""
        conn = slot.conn
        if conn is not None and conn.transport.is_active():
            return conn, False
        # Only threads wanting this very target wait here; others proceed.
        with slot.connect_lock:
            conn = slot.conn
            if conn is not None and conn.transport.is_active():
                return conn, False  # another thread connected while we waited
            if conn is not None:
                _close_quietly(conn.transport)
                slot.conn = None
            conn = _connect(target, self.keepalive_s)
            slot.conn = conn
            with self._lock:
                self._connections_opened += 1
            return conn, True

    def _exec(self, chan, conn: _Connection, slot: _Slot, target: SSHTarget, command: str, timeout: float,
              *, deadline: float | None = None) -> None:
        """Start ``command`` on ``chan``. exec_command waits for the server's answer without a timeout
        of its own: a watchdog closes the channel after ``timeout``, which wakes it. A failure past
        ``deadline`` is a CommandTimeout; on a dead connection Unreachable (and the connection is
        dropped from the pool); otherwise SSHError."""
        watchdog = _WATCHDOG.arm(timeout, chan.close)
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timed_out(chan, target, timeout, conn) from None
            if not conn.transport.is_active():
                self._drop(slot, conn)
                raise Unreachable(
                    f"connection to {_where(target)} was lost: {_cause(exc)}", host_key=conn.host_key
                ) from None
            raise SSHError(
                f"{_where(target)} refused to run the command: {_cause(exc)}", host_key=conn.host_key
            ) from None
        finally:
            _WATCHDOG.disarm(watchdog)

    def _drop(self, slot: _Slot, conn: _Connection) -> None:
        with slot.connect_lock:
            if slot.conn is conn:
                slot.conn = None
        _close_quietly(conn.transport)

    def _open_channel(
        self, slot: _Slot, target: SSHTarget, timeout: float, **window
    ) -> tuple[paramiko.Channel, _Connection]:
        """A new session channel (``window``: paramiko's ``window_size`` / ``max_packet_size``). A reused
        connection that turns out dead is replaced once."""
        while True:
            conn, fresh = self._connection(slot, target)
            try:
                # A silently dead TCP peer (NAT timeout, rebooted host) makes
                # this wait; bound it like a connect.
                chan = conn.transport.open_session(timeout=min(timeout, target.connect_timeout), **window)
                return chan, conn
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._drop(slot, conn)
                if fresh:
                    raise Unreachable(
                        f"{_where(target)} accepted the connection but refused a session: {_cause(exc)}",
                        host_key=conn.host_key,
                    ) from None
                log.info(
                    "ssh: pooled connection to %s was dead (%s); reconnecting", _where(target), _cause(exc)
                )

    def _execute(
        self,
        chan: paramiko.Channel,
        conn: _Connection,
        slot: _Slot,
        target: SSHTarget,
        command: str,
        stdin: str | None,
        timeout: float,
        on_stdout_line: Callable[[str], None] | None = None,
    ) -> CommandResult:
        started = time.monotonic()
        deadline = started + timeout
        chan.settimeout(timeout)
        self._exec(chan, conn, slot, target, command, timeout, deadline=deadline)

        pending = memoryview(stdin.encode("utf-8")) if stdin else None
        if pending is None:
            chan.shutdown_write()  # like `ssh -n`: a command reading stdin gets EOF, not a hang
        # With a line callback, stdout goes to a splitter instead of being kept (stream()).
        out: list[bytes] | _LineSplitter = [] if on_stdout_line is None else _LineSplitter(on_stdout_line)
        err: list[bytes] = []
        wakeup = chan.fileno()  # readable when stdout/stderr has data, or at EOF/close
        while True:
            if pending is not None and chan.send_ready():
                try:
                    sent = chan.send(pending[:_READ_CHUNK])
                except (OSError, EOFError, paramiko.SSHException):
                    sent = len(pending)  # remote stopped reading stdin: drop the rest
                pending = pending[sent:] if sent < len(pending) else None
                if pending is None:
                    chan.shutdown_write()
            _drain(chan, out, err)
            if chan.eof_received or chan.closed:
                break
            if not conn.transport.is_active():
                self._drop(slot, conn)
                raise Unreachable(
                    f"connection to {_where(target)} was lost while the command ran", host_key=conn.host_key
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(chan, target, timeout, conn)
            select.select([wakeup], [], [], min(remaining, _STDIN_POLL_S if pending is not None else 1.0))

        # OpenSSH sends exit-status after EOF and before close.
        if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise self._timed_out(chan, target, timeout, conn)
        _drain(chan, out, err)
        if not chan.eof_received and chan.exit_status == -1:
            # Closed without EOF or exit status: the connection died under the
            # command (paramiko closes the channels before it marks the
            # transport inactive, so is_active() may not tell yet).
            self._drop(slot, conn)
            raise Unreachable(
                f"connection to {_where(target)} was lost while the command ran", host_key=conn.host_key
            )
        if isinstance(out, _LineSplitter):
            out.flush()
            stdout = ""
        else:
            stdout = b"".join(out).decode("utf-8", errors="replace")
        result = CommandResult(
            stdout=stdout,
            stderr=b"".join(err).decode("utf-8", errors="replace"),
            exit_code=chan.exit_status,
            host_key=conn.host_key,
        )
        log.debug(
            "ssh: command on %s exited %d in %.2f s",
            _where(target),
            result.exit_code,
            time.monotonic() - started,
        )
        return result

    def _timed_out(
        self, chan: paramiko.Channel, target: SSHTarget, timeout: float, conn: _Connection
    ) -> CommandTimeout:
        _signal_remote(chan, "TERM")
        chan.close()
        return CommandTimeout(
            f"the command did not finish within {timeout:g} s on {_where(target)}", host_key=conn.host_key
        )

    def _after_fork(self) -> None:
        # The child shares the parent's sockets but none of paramiko's threads.
        # Forget the connections without closing them: a close would send a
        # disconnect on the parent's connection.
        self._lock = threading.Lock()
        self._slots = {}


class LineStream:
    """The stdout of a long-lived remote command, line by line (see :meth:`SSHPool.open_stream`).

    ``readline(timeout)`` returns the next line without its newline, ``None`` when none came within
    ``timeout`` seconds, and raises ``Unreachable`` when the connection died or ``StreamEnded`` when
    the command exited. stderr is kept (the last 4 KiB) for error messages. Not thread-safe: one
    reader per stream. ``close()`` is idempotent and frees the session slot.
    """

    def __init__(self, pool: SSHPool, slot: _Slot, chan: paramiko.Channel, conn: _Connection,
                 target: SSHTarget) -> None:
        self._pool, self._slot, self._chan, self._conn, self._target = pool, slot, chan, conn, target
        self._buffer = b""
        self._lines: list[str] = []
        self._stderr = b""
        self._closed = False
        self.host_key = conn.host_key

    @property
    def stderr(self) -> str:
        return self._stderr.decode("utf-8", errors="replace")

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while not self._lines:
            if self._closed:
                raise StreamEnded("the stream was closed")
            chan = self._chan
            got = False
            while chan.recv_ready():
                self._buffer += chan.recv(_READ_CHUNK)
                got = True
            while chan.recv_stderr_ready():
                self._stderr = (self._stderr + chan.recv_stderr(_READ_CHUNK))[-4096:]
            if got:
                *complete, self._buffer = self._buffer.split(b"\n")
                self._lines.extend(line.decode("utf-8", errors="replace").rstrip("\r") for line in complete)
                if len(self._buffer) > 1 << 20:  # a "line" of a megabyte is not a sample: drop it
                    self._buffer = b""
                continue
            if chan.eof_received or chan.closed:
                if not self._conn.transport.is_active():
                    self._pool._drop(self._slot, self._conn)
                    raise Unreachable(f"connection to {_where(self._target)} was lost",
                                      host_key=self._conn.host_key)
                status = chan.exit_status if chan.exit_status_ready() else -1
                raise StreamEnded(f"the command on {_where(self._target)} ended (status {status})"
                                  + (f": {self.stderr.strip().splitlines()[-1]}" if self.stderr.strip() else ""))
            if not self._conn.transport.is_active():
                self._pool._drop(self._slot, self._conn)
                raise Unreachable(f"connection to {_where(self._target)} was lost", host_key=self._conn.host_key)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            select.select([chan.fileno()], [], [], min(remaining, 1.0))
        return self._lines.pop(0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._chan.close()  # the remote command's stdin ends: a `read -t` loop exits
        finally:
            self._slot.sessions.release()
            self._pool._checkin(self._slot)


class ChannelPipe(Pipe):
    """A remote command's binary stdin and stdout over one SSH channel (see :meth:`SSHPool.open_pipe`)."""

    def __init__(self, pool: SSHPool, slot: _Slot, chan: paramiko.Channel, conn: _Connection,
                 target: SSHTarget, timeout: float) -> None:
        self._pool, self._slot, self._chan, self._conn, self._target = pool, slot, chan, conn, target
        self._timeout = timeout
        self._closed = False

    def _lost(self, what: str) -> SSHError:
        if not self._conn.transport.is_active():
            self._pool._drop(self._slot, self._conn)
            return Unreachable(f"connection to {_where(self._target)} was lost while {what}",
                               host_key=self._conn.host_key)
        return CommandTimeout(f"{what} on {_where(self._target)} made no progress for {self._timeout:g} s",
                              host_key=self._conn.host_key)

    def read(self, size: int) -> bytes:
        try:
            return self._chan.recv(size)
        except TimeoutError:
            raise self._lost("reading") from None
        except (OSError, EOFError, paramiko.SSHException):
            raise self._lost("reading") from None

    def write(self, data: bytes) -> None:
        try:
            self._chan.sendall(data)
        except TimeoutError:
            raise self._lost("writing") from None
        except (OSError, EOFError, paramiko.SSHException):
            if not self._conn.transport.is_active():
                raise self._lost("writing") from None
            raise SSHError(f"the command on {_where(self._target)} stopped reading its input",
                           host_key=self._conn.host_key) from None

    def close_write(self) -> None:
        try:
            self._chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def wait(self, timeout: float) -> CommandResult:
        if not self._chan.status_event.wait(timeout):
            raise CommandTimeout(f"the command did not finish within {timeout:g} s on {_where(self._target)}",
                                 host_key=self._conn.host_key)
        err = []
        while self._chan.recv_stderr_ready():
            err.append(self._chan.recv_stderr(_READ_CHUNK))
        return CommandResult("", b"".join(err).decode("utf-8", errors="replace")[-4096:], self._chan.exit_status,
                             host_key=self._conn.host_key)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._chan.status_event.is_set():
                _signal_remote(self._chan, "TERM")
            self._chan.close()
        finally:
            self._slot.sessions.release()
            self._pool._checkin(self._slot)


def _after_fork_in_child() -> None:
    _WATCHDOG._after_fork()
    for pool in list(_POOLS):
        pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _signal_remote(chan: paramiko.Channel, name: str) -> None:
    """Best effort: ask sshd to signal the command's process group (RFC 4254 6.9).

    OpenSSH (7.9+) honours this for sessions of non-root users, so a timed-out
    command does not linger on the node; for root logins sshd refuses it
    ("session signalling requires privilege separation") and the process runs
    on until it exits or writes to its closed output. paramiko has no public
    call for this request, hence the private ``_send_user_message``.
    """
    try:
        if chan.closed or not chan.active:
            return
        msg = Message()
        msg.add_byte(cMSG_CHANNEL_REQUEST)
        msg.add_int(chan.remote_chanid)
        msg.add_string("signal")
        msg.add_boolean(False)
        msg.add_string(name)
        chan.transport._send_user_message(msg)
    except Exception:  # noqa: BLE001 - best effort, see docstring
        log.debug("ssh: could not send signal %s to the remote command", name)


# --------------------------------------------------------------------------- helpers


def _pool_key(target: SSHTarget) -> tuple:
    # The key material is folded in as a digest too, so a changed key opens a
    # new connection even if the caller forgot to change key_id. (A SHA-256 of
    # a private key reveals nothing usable about it.)
    secret = hashlib.sha256(
        target.private_key.encode("utf-8") + b"\0" + (target.passphrase or "").encode("utf-8")
    ).hexdigest()
    pin = None
    if target.pinned_host_key:
        pin = " ".join(target.pinned_host_key.split()[:2])
    return (target.host, int(target.port), target.username, target.key_id, pin, secret)


class _LineSplitter:
    """Collects stdout chunks like a list would (``append``) but hands out complete lines at once."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        self.callback = callback
        self.pending = b""

    def append(self, chunk: bytes) -> None:
        if b"\n" not in chunk:
            self.pending += chunk
            return
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        for line in lines:
            self.callback(line.decode("utf-8", errors="replace"))

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, b""
            self.callback(line.decode("utf-8", errors="replace"))


def _drain(chan: paramiko.Channel, out: list[bytes] | _LineSplitter, err: list[bytes]) -> None:
    while chan.recv_ready():
        out.append(chan.recv(_READ_CHUNK))
    while chan.recv_stderr_ready():
        err.append(chan.recv_stderr(_READ_CHUNK))


POOL = SSHPool()
"""The process-wide pool every probe and executor uses."""

BULK_POOL = SSHPool(max_idle_s=60)
"""A second pool, for bulk pipes (model copies): their own connections, so that streams holding session
slots for minutes never make a probe or an executor call wait for one."""
