"""Bulk pipes through the OpenSSH client: a remote command's stdin and stdout as an ``ssh`` process.

A model copy streams hundreds of gigabytes through the console (``models_registry.services.transfer``).
Over paramiko every byte is decrypted and encrypted again in Python, packet by packet, and the copy
waits on the console's interpreter. Here each pipe is an OpenSSH ``ssh`` process: the ciphers run in
C, in processes of their own, and the console only moves buffers between two OS pipes (so progress,
the bandwidth limit and cancelling stay the console's, as with paramiko).

The guarantees of the SSH transport hold (see :mod:`nodes.transports.ssh`):

- **The key never touches a disk.** It is written, unencrypted, to an anonymous in-memory file
  (``memfd_create``, mode 0600) that the console holds open while the pipe lives, and ``ssh`` opens as
  ``/proc/<console pid>/fd/N`` (``ssh`` closes every inherited descriptor at start, so ``/dev/fd/N`` of its
  own would be gone); no agent, no file. ``IdentitiesOnly`` and ``IdentityAgent=none``: nothing else is
  offered.
- **The host key is pinned.** The node's pinned key is the only line of a known-hosts file (also in
  memory) under a fixed alias, with ``StrictHostKeyChecking=yes``: another key fails the connection
  before authentication. A node with no pin is never contacted this way.
- **Bounded in time.** ``ConnectTimeout``, and ``ServerAliveInterval`` × ``ServerAliveCountMax`` ends a
  dead connection, so a blocked write cannot hang for ever; reads have the pipe's idle timeout.
- **No user configuration** (``-F /dev/null``), no forwarding, no terminal, batch mode.

Used for the pipes of large files when ``CONSOLE_COPY_SSH_CLIENT`` is ``auto`` (the default, when an
``ssh`` program is installed) or ``openssh``; ``paramiko`` keeps every pipe on the pooled connections.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

from nodes.keys import KeyProblem, openssh_private_key
from nodes.transports.base import CommandResult, NodeCommandError, command_text
from nodes.transports.local import ProcessPipe
from nodes.transports.ssh.connect import (
    AuthFailed,
    CommandTimeout,
    HostKeyMismatch,
    SSHError,
    SSHTarget,
    Unreachable,
    _where,
)

__all__ = ["OpenSSHPipe", "available", "open_pipe"]

#: The alias the pinned key is filed under in the in-memory known-hosts file.
HOST_ALIAS = "boom-node"
#: Seconds between keep-alives, and how many may go unanswered before ``ssh`` gives up.
ALIVE_INTERVAL_S, ALIVE_COUNT = 15, 4
#: The OS pipe between the console and ``ssh``: larger than Linux's 64 KiB default, fewer wake-ups.
PIPE_BYTES = 1 << 20


#: Ciphers offered first when this machine's CPU has AES instructions (x86 ``aes``, ARMv8 ``aes``): AES-GCM is
#: then several times cheaper than OpenSSH's first choice, ChaCha20-Poly1305 (measured: 4 streams through the
#: console 315 MiB/s with AES-GCM against 242 MiB/s, docs/benchmarks.md "Model copies between nodes").
AES_FIRST = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"


@functools.cache
def _cpu_has_aes() -> bool:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(line.split(":", 1)[0].strip() in ("flags", "Features") and " aes" in f" {line.split(':', 1)[1]} "
               for line in text.splitlines() if ":" in line)


def ciphers(setting: str = "auto") -> str | None:
    """The ``Ciphers`` option for bulk pipes: ``auto``: AES-GCM first on a CPU with AES instructions, else
    OpenSSH's own order (None); any other value is passed to ``ssh`` as it is."""
    if setting != "auto":
        return setting or None
    return AES_FIRST if _cpu_has_aes() else None


def available(program: str = "ssh") -> str | None:
    """The path of the OpenSSH client, or None."""
    return shutil.which(program)


def _memory_file(name: str, text: str) -> int:
    """An anonymous in-memory file holding ``text``, mode 0600; its descriptor (close-on-exec)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.fchmod(fd, 0o600)
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
        return fd
    except BaseException:
        os.close(fd)
        raise


def _held(fd: int) -> str:
    """A path by which another process of this user opens this process's descriptor ``fd``."""
    return f"/proc/{os.getpid()}/fd/{fd}"


def argv_for(target: SSHTarget, command: str, key_fd: int, hosts_fd: int, program: str = "ssh",
             cipher_list: str | None = None) -> list[str]:
    """The ``ssh`` command line (no secret in it: the key is behind this process's ``key_fd``). Each pipe is a
    connection of its own, so a copy pays one handshake per large file; a shared connection (``ControlMaster``)
    would save that but put every stream to a node through one ``ssh`` process (one core's worth of cipher)."""
    options = {
        "BatchMode": "yes", "IdentitiesOnly": "yes", "IdentityAgent": "none", "IdentityFile": _held(key_fd),
        "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no", "GSSAPIAuthentication": "no",
        "HostKeyAlias": HOST_ALIAS, "UserKnownHostsFile": _held(hosts_fd), "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes", "UpdateHostKeys": "no", "CheckHostIP": "no",
        "ConnectTimeout": str(max(1, round(target.connect_timeout))),
        "ServerAliveInterval": str(ALIVE_INTERVAL_S), "ServerAliveCountMax": str(ALIVE_COUNT),
        "ControlMaster": "no", "ControlPath": "none", "ForwardAgent": "no", "ForwardX11": "no",
        "ClearAllForwardings": "yes", "RequestTTY": "no", "LogLevel": "ERROR",
    }
    if cipher_list:
        options["Ciphers"] = cipher_list
    argv = [program, "-F", "/dev/null", "-T", "-p", str(target.port), "-l", target.username]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return [*argv, "--", target.host, command]


def open_pipe(target: SSHTarget, command: str | Sequence[str], *, timeout: float = 60.0,
              program: str = "ssh", cipher_list: str | None = None) -> OpenSSHPipe:
    """Start ``command`` on the target through an ``ssh`` process; its binary stdin/stdout as a Pipe."""
    if not target.pinned_host_key:
        raise SSHError(f"no pinned host key for {_where(target)}: bulk pipes never trust a first contact")
    try:
        key_text = openssh_private_key(target.private_key, target.passphrase)
    except KeyProblem as exc:
        raise AuthFailed(f"the SSH key for {_where(target)} cannot be used: {exc}") from None
    held: list[int] = []
    errors = None
    try:
        held.append(_memory_file("boom-ssh-key", key_text))
        held.append(_memory_file("boom-known-hosts", f"{HOST_ALIAS} {target.pinned_host_key.strip()}\n"))
        errors = tempfile.TemporaryFile()
        proc = subprocess.Popen(  # noqa: S603 - a fixed program; the command is one argument
            argv_for(target, command_text(command), held[0], held[1], program, cipher_list),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, start_new_session=True, bufsize=0,
            pipesize=PIPE_BYTES, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
        )
    except OSError as exc:
        for fd in held:
            os.close(fd)
        if errors is not None:
            errors.close()
        raise Unreachable(f"the ssh program could not run: {exc}") from None
    # ssh reads both files when it connects and authenticates: they stay open until the pipe is closed.
    return OpenSSHPipe(proc, errors, timeout, target, held)


class OpenSSHPipe(ProcessPipe):
    """An ``ssh`` process's pipes, with its failures typed as the SSH transport's errors."""

    def __init__(self, proc: subprocess.Popen, errors, timeout: float, target: SSHTarget, held: list[int]) -> None:
        super().__init__(proc, errors, timeout)
        self._target = target
        self._held = held

    def close(self) -> None:
        try:
            super().close()
        finally:
            held, self._held = self._held, []
            for fd in held:
                os.close(fd)

    def _readable(self) -> int:
        try:
            return super()._readable()
        except NodeCommandError:
            raise CommandTimeout(f"reading on {_where(self._target)} made no progress for {self._timeout:g} s",
                                 host_key=self._target.pinned_host_key or "") from None

    def _input_refused(self):
        if self._proc.poll() is not None:
            raise self._failure(self._proc.returncode, self._stderr()) from None
        raise SSHError(f"the command on {_where(self._target)} stopped reading its input",
                       host_key=self._target.pinned_host_key or "") from None

    def wait(self, timeout: float) -> CommandResult:
        try:
            result = super().wait(timeout)
        except NodeCommandError:
            raise CommandTimeout(f"the command did not finish within {timeout:g} s on {_where(self._target)}",
                                 host_key=self._target.pinned_host_key or "") from None
        if result.exit_code == 255 and _is_ssh_failure(result.stderr):
            raise self._failure(255, result.stderr)
        result.host_key = self._target.pinned_host_key or ""
        return result

    def _stderr(self) -> str:
        self._errors.seek(0)
        return self._errors.read(4096).decode("utf-8", errors="replace")

    def _failure(self, code: int, stderr: str) -> SSHError:
        """``ssh`` exits with 255 when the connection failed: name how."""
        where, pin = _where(self._target), self._target.pinned_host_key or ""
        text = stderr.strip()
        if "host key verification failed" in text.lower() or "remote host identification has changed" in text.lower():
            return HostKeyMismatch(f"host key of {where} differs from the pinned one; not connecting",
                                   expected=pin, seen="")
        if "permission denied" in text.lower():
            return AuthFailed(f"{where} refused the key for user {self._target.username!r}", host_key=pin)
        if code == 255:
            return Unreachable(f"connection to {where} failed: {_last_line(text) or 'ssh exited with 255'}",
                               host_key=pin)
        return SSHError(f"the command on {where} exited with {code}: {_last_line(text)}", host_key=pin)


def _is_ssh_failure(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(s in lowered for s in ("ssh:", "host key verification failed", "permission denied",
                                      "connection closed by", "connection reset", "broken pipe",
                                      "timeout, server", "could not resolve", "identification has changed"))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""
