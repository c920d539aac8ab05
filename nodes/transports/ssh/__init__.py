"""The SSH transport: run commands on nodes over pooled, host-key-pinned paramiko connections.

Guarantees callers rely on:

- **Host keys are pinned.** With ``pinned_host_key=None`` (first contact) the key the server shows
  is accepted and reported in ``CommandResult.host_key`` for the caller to pin. With a pin, a
  different key raises ``HostKeyMismatch`` right after the key exchange, before we authenticate or
  send any command.
- **Everything is bounded in time.** TCP connect, banner, key exchange and authentication each use
  ``SSHTarget.connect_timeout``; the command, from the moment its channel is requested, uses
  ``run(timeout=...)``. DNS resolution is the system resolver's and not bounded here.
- **Failures are typed.** ``Unreachable`` (cannot talk SSH to it), ``AuthFailed`` (the key is
  refused or unusable), ``HostKeyMismatch``, ``CommandTimeout``; all are ``SSHError``, itself a
  ``NodeCommandError``, with a ``reason`` fit for a node's ``status_detail``. No reason or log line
  contains key material, passphrases, or command text (commands may carry secrets).
- **List commands are quoted** with ``quote_argv`` (``shlex.join``); nothing is interpolated into a
  shell string.

Modules: :mod:`.connect` (one connection: target, errors, pinning), :mod:`.pool` (the pool, its
channels and line streams) and :mod:`.transport` (:class:`SSHTransport`, a node's transport).
"""

from nodes.transports.base import CommandResult, quote_argv
from nodes.transports.ssh.connect import (
    AuthFailed,
    CommandTimeout,
    HostKeyMismatch,
    SSHError,
    SSHTarget,
    StreamEnded,
    Unreachable,
)
from nodes.transports.ssh.pool import BULK_POOL, POOL, LineStream, SSHPool
from nodes.transports.ssh.transport import DEFAULT_REMOTE_BASE, SSHTransport, ssh_target

__all__ = [
    "BULK_POOL",
    "DEFAULT_REMOTE_BASE",
    "POOL",
    "AuthFailed",
    "CommandResult",
    "CommandTimeout",
    "HostKeyMismatch",
    "LineStream",
    "SSHError",
    "SSHPool",
    "SSHTarget",
    "SSHTransport",
    "StreamEnded",
    "Unreachable",
    "quote_argv",
    "ssh_target",
]
