"""The SSH transport of a node: its commands over the pooled, host-key-pinned connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nodes.crypto import SecretBoxError
from nodes.transports.base import CommandResult, NodeCommandError, Pipe, Transport
from nodes.transports.ssh import openssh
from nodes.transports.ssh.connect import SSHTarget
from nodes.transports.ssh.pool import BULK_POOL, POOL, LineStream, SSHPool

__all__ = ["DEFAULT_REMOTE_BASE", "SSHTransport", "ssh_target"]

DEFAULT_REMOTE_BASE = "~/.boom-console/instances"


def ssh_target(node) -> SSHTarget:
    """The SSHTarget for a node (decrypts its credential's key in memory only; ``SecretBoxError`` when
    the console's secret changed since the key was stored)."""
    from django.conf import settings

    credential = node.credential
    return SSHTarget(
        host=node.address,
        port=node.ssh_port,
        username=node.effective_ssh_user,
        private_key=credential.private_key() if credential else "",
        passphrase=None,
        pinned_host_key=node.host_key or None,
        connect_timeout=float(settings.CONSOLE_SSH_CONNECT_TIMEOUT_S),
        key_id=f"{credential.pk}:{credential.updated_at.timestamp()}" if credential else "",
    )


class SSHTransport(Transport):
    """Commands on a node over SSH, through ``pool`` (the process-wide ``POOL`` by default).

    ``target``: the :class:`SSHTarget`, or a function that builds it at the first command (so that a
    transport made only to ask :attr:`connect_host` decrypts no key). Its errors are ``SSHError``
    subclasses (``Unreachable``, ``AuthFailed``, ``HostKeyMismatch``, ``CommandTimeout``), all of
    them :class:`NodeCommandError`.
    """

    kind = "ssh"

    def __init__(self, target: SSHTarget | Callable[[], SSHTarget], *, connect_host: str | None = None,
                 instance_dir: str = DEFAULT_REMOTE_BASE, command_timeout: float = 60.0,
                 pool: SSHPool | None = None, login: tuple | None = None, bulk_pool: SSHPool | None = None) -> None:
        if isinstance(target, SSHTarget):
            self._target, self._make_target = target, None
            connect_host = connect_host or target.host
            login = login or (target.host, target.port, target.username)
        else:
            self._target, self._make_target = None, target
        if not connect_host or login is None:
            raise ValueError("an SSH transport built from a function needs connect_host and login")
        super().__init__(connect_host=connect_host, instance_dir=instance_dir, command_timeout=command_timeout)
        self._login = login
        self.pool = pool if pool is not None else POOL
        #: Where bulk pipes go (their own connections; see BULK_POOL); the command pool when one was given.
        self.bulk_pool = bulk_pool if bulk_pool is not None else (pool if pool is not None else BULK_POOL)

    @classmethod
    def for_node(cls, node) -> SSHTransport:
        from django.conf import settings

        def target() -> SSHTarget:
            if node.credential_id is None:
                raise NodeCommandError("no SSH credential is set for this node")
            try:
                return ssh_target(node)
            except SecretBoxError:
                raise NodeCommandError(
                    "the SSH key of this node's credential cannot be decrypted: the console's secret changed "
                    "(set CONSOLE_OLD_SECRET_KEYS, or store the key again)"
                ) from None

        return cls(target, connect_host=node.address, login=(node.address, node.ssh_port, node.effective_ssh_user),
                   instance_dir=settings.CONSOLE_REMOTE_INSTANCE_DIR,
                   command_timeout=float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S))

    @property
    def login(self) -> tuple:
        return (self.kind, *self._login)

    def target(self) -> SSHTarget:
        """The connection target (built, and the key decrypted, on first use)."""
        if self._target is None:
            self._target = self._make_target()
        return self._target

    def run(self, command: str | Sequence[str], *, stdin: str | None = None,
            timeout: float | None = None) -> CommandResult:
        return self.pool.run(self.target(), command, stdin=stdin, timeout=timeout or self.command_timeout)

    def stream(self, command: str | Sequence[str], on_line: Callable[[str], None], *,
               stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        return self.pool.stream(self.target(), command, stdin=stdin, timeout=timeout or self.command_timeout,
                                on_stdout_line=on_line)

    def open_pipe(self, command: str | Sequence[str], *, timeout: float = 60.0, size: int | None = None) -> Pipe:
        """The command's binary stdin/stdout: for ``size`` bytes or more of a model copy, an OpenSSH ``ssh``
        process (see :mod:`.openssh`, ``CONSOLE_COPY_SSH_CLIENT``); else one channel of the bulk pool's
        connection to the node."""
        from django.conf import settings

        target = self.target()
        client = settings.CONSOLE_COPY_SSH_CLIENT
        if (size is not None and client != "paramiko" and size >= settings.CONSOLE_COPY_OPENSSH_MIN_BYTES
                and target.pinned_host_key and (client == "openssh" or openssh.available() is not None)):
            return openssh.open_pipe(target, command, timeout=timeout,
                                     cipher_list=openssh.ciphers(settings.CONSOLE_COPY_SSH_CIPHERS))
        return self.bulk_pool.open_pipe(target, command, timeout=timeout)

    def session_identity(self, node) -> tuple | None:
        """Only nodes whose host key a probe pinned: a stream never trusts a first contact. A new key,
        address, port, user or credential (or an edited one) means a new session."""
        if not (node.credential_id and node.host_key):
            return None
        return (*self.login, node.credential_id, node.credential.updated_at, node.host_key)

    def open_stream(self, command: str | Sequence[str], *, timeout: float = 30.0) -> LineStream:
        """A long-lived command's stdout, line by line (see :meth:`SSHPool.open_stream`)."""
        return self.pool.open_stream(self.target(), command, timeout=timeout)
