"""Opening one SSH connection: TCP, host-key pinning, key authentication, each bounded in time.

``SSHTarget`` says where and as whom; ``_connect`` returns an authenticated paramiko transport or
raises one of the typed errors below (all :class:`SSHError`, itself a
:class:`~nodes.transports.base.NodeCommandError`). With a pin, a different host key raises
``HostKeyMismatch`` right after the key exchange, before we authenticate or send anything. The pool
(:mod:`.pool`) keeps the connections this module opens.

Django-free.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

import paramiko

from nodes.keys import (
    InvalidHostKey,
    KeyProblem,
    fingerprint,
    host_key_fingerprint,
    load_private_key,
    split_key_line,
)
from nodes.transports.base import NodeCommandError

__all__ = [
    "AuthFailed",
    "CommandTimeout",
    "HostKeyMismatch",
    "SSHError",
    "SSHTarget",
    "StreamEnded",
    "Unreachable",
]

log = logging.getLogger("nodes.transports.ssh")


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SSHTarget:
    """Where and as whom to run a command. Holds the decrypted key: never log it.

    ``private_key`` and ``passphrase`` are left out of ``repr`` so that a
    target in a traceback or log line does not leak them.
    """

    host: str
    port: int
    username: str
    private_key: str = field(repr=False)
    passphrase: str | None = field(repr=False)
    pinned_host_key: str | None
    connect_timeout: float = 10.0
    key_id: str = ""  # opaque; part of the pool key so a credential change opens a new connection


class SSHError(NodeCommandError):
    """Base class of SSH transport failures. ``reason`` is human-readable and safe to show;
    ``host_key`` is the host key seen before the failure, when the key exchange got that far."""


class HostKeyMismatch(SSHError):
    """The server's host key differs from the pinned one; nothing was sent to it."""

    def __init__(self, reason: str, *, expected: str, seen: str) -> None:
        super().__init__(reason, host_key=seen)
        self.expected = expected
        self.seen = seen


class Unreachable(SSHError):
    """No SSH conversation possible: DNS, refused, timed out, handshake failed, or connection lost."""


class AuthFailed(SSHError):
    """The server refused the key, or the stored key cannot be used at all."""


class CommandTimeout(SSHError):
    """The command did not finish in time; its channel was closed (the connection is kept)."""


class StreamEnded(SSHError):
    """A streamed remote command exited (or the stream was closed)."""


@dataclass
class _Connection:
    transport: paramiko.Transport
    host_key: str  # "type base64"


# --------------------------------------------------------------------------- connecting


#: Re-key after this many bytes or packets each way. paramiko's default, 2**29 (512 MiB), makes a model
#: copy re-key every half gigabyte; a re-key under load that outlasts ``CLEAR_TO_SEND_S`` kills the
#: connection and every stream on it. OpenSSH's own default for AES is far higher (2**32 blocks).
REKEY_BYTES = 1 << 36
REKEY_PACKETS = 1 << 31
#: How long a sender waits for a re-key to finish (paramiko: 30 s).
CLEAR_TO_SEND_S = 180.0


def _bulk_friendly(transport: paramiko.Transport) -> None:
    packetizer = transport.packetizer
    packetizer.REKEY_BYTES = packetizer.REKEY_BYTES_OVERFLOW_MAX = REKEY_BYTES
    packetizer.REKEY_PACKETS = packetizer.REKEY_PACKETS_OVERFLOW_MAX = REKEY_PACKETS
    transport.clear_to_send_timeout = CLEAR_TO_SEND_S


def _connect(target: SSHTarget, keepalive_s: int) -> _Connection:
    """Open, verify and authenticate one connection, or raise a typed SSHError."""
    where = _where(target)
    pinned = None
    if target.pinned_host_key:
        try:
            pinned = split_key_line(target.pinned_host_key)
        except InvalidHostKey as exc:
            raise SSHError(f"the pinned host key for {where} is not valid: {exc}") from None

    try:
        pkey = load_private_key(target.private_key, target.passphrase)
    except KeyProblem as exc:
        raise AuthFailed(f"the SSH key for {where} cannot be used: {exc}") from None

    sock = _open_socket(target)
    transport = None
    try:
        transport = paramiko.Transport(sock)
        transport.banner_timeout = target.connect_timeout
        transport.handshake_timeout = target.connect_timeout
        transport.auth_timeout = target.connect_timeout
        if pinned is not None:
            _prefer_host_key_type(transport, pinned[0])
        _prefer_aead_ciphers(transport)
        try:
            transport.start_client(timeout=target.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(f"SSH handshake with {where} failed: {_cause(exc)}") from None
        try:
            server_key = transport.get_remote_server_key()
        except paramiko.SSHException:
            # start_client returns quietly when its timeout passes mid-negotiation.
            raise Unreachable(
                f"SSH handshake with {where} did not finish within {target.connect_timeout:g} s"
            ) from None
        seen = (server_key.get_name(), server_key.get_base64())
        seen_line = f"{seen[0]} {seen[1]}"
        if pinned is not None and pinned != seen:
            # Refuse before authenticating: a spoofing server learns nothing,
            # not even which user or key we would have offered.
            expected_line = f"{pinned[0]} {pinned[1]}"
            raise HostKeyMismatch(
                f"host key of {where} changed: expected {pinned[0]} {host_key_fingerprint(expected_line)}, "
                f"seen {seen[0]} {host_key_fingerprint(seen_line)}; not connecting",
                expected=expected_line,
                seen=seen_line,
            )

        try:
            remaining = transport.auth_publickey(target.username, pkey)
        except paramiko.BadAuthenticationType as exc:
            raise AuthFailed(
                f"{where} does not accept key authentication for {target.username!r} "
                f"(it allows: {', '.join(exc.allowed_types) or 'nothing'})",
                host_key=seen_line,
            ) from None
        except paramiko.AuthenticationException:
            raise AuthFailed(
                f"{where} refused the key {fingerprint(pkey)} for user {target.username!r}",
                host_key=seen_line,
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(
                f"connection to {where} failed during authentication: {_cause(exc)}", host_key=seen_line
            ) from None
        if remaining or not transport.is_authenticated():
            raise AuthFailed(
                f"{where} wants more than a key for {target.username!r} (next: {', '.join(remaining)})",
                host_key=seen_line,
            )
        transport.set_keepalive(keepalive_s)
        _bulk_friendly(transport)
        log.info(
            "ssh: connected to %s@%s (host key %s)", target.username, where, host_key_fingerprint(seen_line)
        )
        return _Connection(transport=transport, host_key=seen_line)
    except BaseException:
        if transport is not None:
            _close_quietly(transport)
        else:
            sock.close()
        raise


def _open_socket(target: SSHTarget) -> socket.socket:
    where = _where(target)
    try:
        sock = socket.create_connection((target.host, target.port), timeout=target.connect_timeout)
    except socket.gaierror as exc:
        raise Unreachable(f"cannot resolve {target.host!r}: {exc.strerror or exc}") from None
    except ConnectionRefusedError:
        raise Unreachable(f"connection to {where} refused (is sshd running on that port?)") from None
    except TimeoutError:
        raise Unreachable(f"connection to {where} timed out after {target.connect_timeout:g} s") from None
    except OSError as exc:
        raise Unreachable(f"cannot connect to {where}: {exc.strerror or exc}") from None
    # TCP keep-alive as well: it notices a dead peer on an idle pooled connection.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def _prefer_host_key_type(transport: paramiko.Transport, key_type: str) -> None:
    """Ask only for the pinned key's type, as OpenSSH does with known_hosts.

    Without this, a server with several host keys would show its ed25519 key
    to a client that pinned its RSA key, and the pin would look violated.
    """
    wanted = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa") if key_type == "ssh-rsa" else (key_type,)
    options = transport.get_security_options()
    preferred = [name for name in options.key_types if name in wanted]
    if preferred:
        options.key_types = preferred


AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _prefer_aead_ciphers(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first (OpenSSH has had it since 6.2; older servers pick a later cipher).

    With paramiko's default, AES-CTR and an HMAC, every packet's MAC was checked in Python, a byte at a time
    (``util.constant_time_bytes_eq``): at a probe a node, a third of the console's SSH work. GCM authenticates
    in the cipher itself, in OpenSSL's C, one call a packet.
    """
    options = transport.get_security_options()
    options.ciphers = (*[name for name in AEAD_CIPHERS if name in options.ciphers],
                       *[name for name in options.ciphers if name not in AEAD_CIPHERS])


# --------------------------------------------------------------------------- helpers


def _where(target: SSHTarget) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _cause(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(transport: paramiko.Transport) -> None:
    try:
        transport.close()
    except Exception:  # noqa: BLE001 - closing a broken transport may raise anything
        pass

