"""SSH private-key validation, normalisation and fingerprints.

Users paste private keys in whatever format their tools wrote: OpenSSH
(``-----BEGIN OPENSSH PRIVATE KEY-----``), traditional PEM (``RSA``/``EC``) or
PKCS#8 (``PRIVATE KEY`` / ``ENCRYPTED PRIVATE KEY``), with or without a
passphrase. This module turns that text into a paramiko key, or into one
canonical form (unencrypted OpenSSH) that the console encrypts at rest with
``nodes.crypto``, so the passphrase is asked for once and never stored.

Every exception raised here carries a message meant for the user who pasted the
key. No message ever quotes key material or the passphrase.

Django-free: the SSH transport and the services both use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import struct

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = [
    "InvalidHostKey",
    "InvalidPrivateKey",
    "KeyProblem",
    "PassphraseRequired",
    "WrongPassphrase",
    "fingerprint",
    "generate_ed25519",
    "host_key_fingerprint",
    "load_private_key",
    "normalise_private_key",
    "openssh_private_key",
    "public_key_line",
    "split_key_line",
]

# OpenSSH refuses RSA keys shorter than this since 9.1 (RequiredRSASize); a
# shorter key would be accepted here and then fail on every node.
MIN_RSA_BITS = 1024

_SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


class KeyProblem(ValueError):
    """Base class: the text cannot be used as an SSH private key. ``str()`` is user-facing."""


class InvalidPrivateKey(KeyProblem):
    """Not a private key, a damaged one, or a key type the console does not support."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"not a private key this console understands: {detail}")


class PassphraseRequired(KeyProblem):
    """The key is encrypted and no passphrase was given."""

    def __init__(self) -> None:
        super().__init__("the key is encrypted: send its passphrase")


class WrongPassphrase(KeyProblem):
    """The key is encrypted and the passphrase given does not open it."""

    def __init__(self) -> None:
        super().__init__("the passphrase does not decrypt this key")


class InvalidHostKey(ValueError):
    """A host-key line is not ``"<type> <base64>"`` with a matching key blob."""


# --------------------------------------------------------------------------- private keys


def _parse(text: str, passphrase: str | None):
    """Parse ``text`` into a ``cryptography`` private-key object, or raise a KeyProblem."""
    if not isinstance(text, str):
        raise InvalidPrivateKey("expected the key as text")
    # Keys pasted from Windows or a web form arrive with CRLF and stray indentation.
    cleaned = "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"
    match = _BEGIN.search(cleaned)
    if match is None:
        raise InvalidPrivateKey(_no_pem_block_hint(cleaned))
    label = match.group(1)
    if label == "OPENSSH PRIVATE KEY":
        loader = serialization.load_ssh_private_key
    elif label in ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"):
        loader = serialization.load_pem_private_key
    elif label == "DSA PRIVATE KEY":
        raise InvalidPrivateKey("DSA keys are not supported (OpenSSH disabled them); use ed25519")
    elif "PUBLIC KEY" in label:
        raise InvalidPrivateKey("this is a public key; send the private key")
    else:
        raise InvalidPrivateKey(f"a '{label}' block is not a private key")
    data = cleaned[match.start() :].encode("ascii", errors="replace")
    secret = passphrase.encode("utf-8") if passphrase else None

    # Try without a passphrase first: cryptography refuses a passphrase for an
    # unencrypted key, and users often send one "just in case".
    try:
        return _check_supported(loader(data, password=None))
    except TypeError:
        pass  # encrypted
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidPrivateKey(_describe_parse_error(exc, label)) from None
    if secret is None:
        raise PassphraseRequired()
    try:
        return _check_supported(loader(data, password=secret))
    except (ValueError, TypeError):
        # cryptography reports a wrong passphrase as a ValueError ("Incorrect
        # password" for PEM, "broken checksum" for OpenSSH's bcrypt format).
        raise WrongPassphrase() from None
    except UnsupportedAlgorithm as exc:
        raise InvalidPrivateKey(_describe_parse_error(exc, label)) from None


def _no_pem_block_hint(text: str) -> str:
    if text.startswith("PuTTY-User-Key-File"):
        return "a PuTTY .ppk key; export it in OpenSSH format with puttygen"
    if text.startswith(("ssh-", "ecdsa-", "sk-")) or text.startswith("---- BEGIN SSH2 PUBLIC KEY"):
        return "this is a public key; send the private key"
    return "no '-----BEGIN ... PRIVATE KEY-----' block found"


def _describe_parse_error(exc: Exception, label: str) -> str:
    # cryptography's messages describe the structure ("Not OpenSSH private key
    # format", "Unsupported key type"), never the key bytes, so they are safe
    # to show; keep them short anyway.
    reason = str(exc).split("\n", 1)[0][:120] or type(exc).__name__
    return f"the '{label}' block cannot be read ({reason})"


def _check_supported(key):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidPrivateKey(
                f"this RSA key has {key.key_size} bits; OpenSSH requires at least {MIN_RSA_BITS}"
                " (use ed25519, or RSA with 3072 bits)"
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, _SUPPORTED_CURVES):
            return key
        raise InvalidPrivateKey(f"ECDSA curve {key.curve.name} is not usable with SSH")
    raise InvalidPrivateKey(
        f"{type(key).__name__.removeprefix('_')} keys are not supported; use ed25519, RSA or ECDSA"
    )


def normalise_private_key(text: str, passphrase: str | None) -> str:
    """Return the key re-serialised as an unencrypted OpenSSH private key.

    The console stores this form (encrypted at rest by ``nodes.crypto``), so it
    never needs the passphrase again. Raises a ``KeyProblem`` subclass when the
    key cannot be used.
    """
    key = _parse(text, passphrase)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """Parse an ed25519, RSA or ECDSA private key (OpenSSH, PEM or PKCS#8) into a paramiko key.

    Raises ``InvalidPrivateKey``, ``PassphraseRequired`` or ``WrongPassphrase``
    (all ``KeyProblem``, a ``ValueError``) with a user-facing message.
    """
    key = _parse(text, passphrase)
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        cls = paramiko.Ed25519Key
    elif isinstance(key, rsa.RSAPrivateKey):
        cls = paramiko.RSAKey
    else:
        cls = paramiko.ECDSAKey
    try:
        return cls.from_private_key(io.StringIO(openssh))
    except paramiko.SSHException as exc:  # pragma: no cover - cryptography accepted it already
        raise InvalidPrivateKey(f"paramiko cannot use this key ({type(exc).__name__})") from None


def openssh_private_key(text: str, passphrase: str | None) -> str:
    """The key as unencrypted OpenSSH text, for the ``ssh`` client of bulk pipes (kept in memory only)."""
    return _parse(text, passphrase).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")


# --------------------------------------------------------------------------- public keys


def _sha256_fingerprint(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def fingerprint(pkey: paramiko.PKey) -> str:
    """The key's fingerprint as ``ssh-keygen -lf`` prints it: ``SHA256:<base64, unpadded>``."""
    return _sha256_fingerprint(pkey.asbytes())


def generate_ed25519() -> str:
    """A new Ed25519 private key in unencrypted OpenSSH format (the form the console encrypts at rest).

    The caller stores it through ``nodes.services.create_credential`` and never shows, logs or returns it.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode("ascii")


def public_key_line(pkey: paramiko.PKey) -> str:
    """The public half as an ``authorized_keys`` line without comment: ``"ssh-ed25519 AAAA..."``."""
    return f"{_blob_type(pkey.asbytes())} {pkey.get_base64()}"


def split_key_line(line: str) -> tuple[str, str]:
    """Split ``"<type> <base64> [comment]"`` into ``(type, base64)`` after checking the blob.

    Raises ``InvalidHostKey`` when the base64 does not decode or the type named
    inside the blob differs from the declared one.
    """
    parts = (line or "").split()
    if len(parts) < 2:
        raise InvalidHostKey("a public key line must look like '<type> <base64>'")
    key_type, b64 = parts[0], parts[1]
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidHostKey("the key's base64 part does not decode") from None
    if _blob_type(blob) != key_type:
        raise InvalidHostKey(f"the key blob does not hold a {key_type!r} key")
    return key_type, b64


def host_key_fingerprint(line: str) -> str:
    """Fingerprint (``SHA256:...``) of a host key given as ``"<type> <base64>"``."""
    _, b64 = split_key_line(line)
    return _sha256_fingerprint(base64.b64decode(b64))


def _blob_type(blob: bytes) -> str:
    """The algorithm name at the start of an SSH public-key blob (an SSH ``string``)."""
    if len(blob) < 4:
        return ""
    (length,) = struct.unpack(">I", blob[:4])
    if length > len(blob) - 4:
        return ""
    return blob[4 : 4 + length].decode("ascii", errors="replace")
