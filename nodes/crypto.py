"""Encryption at rest for SSH private keys (and any other small secret the console stores).

``SecretBox`` wraps Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) from
the ``cryptography`` package. The Fernet key is not the console's secret
itself: it is derived from it with HKDF-SHA256, using a fixed salt and info
string (below), so that

- any secret string works (Fernet wants exactly 32 url-safe-base64 bytes), and
- the key that encrypts private keys is not the key Django signs sessions with
  (``SECRET_KEY`` may be the same string; the derivation separates the uses).

The salt and info are part of the stored format: changing either makes every
stored blob unreadable. Bump the ``v1`` suffix only together with a migration
that re-encrypts.

Key rotation: build the box with the new secret first and the old ones in
``old_secrets``. Encryption always uses the new secret; decryption tries all
(``MultiFernet``). ``SecretBox.rotate`` re-encrypts a blob with the new secret,
so a data migration can walk the table and then drop the old secret.

Only ``default_box`` touches Django, and only when called.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["HKDF_INFO", "HKDF_SALT", "SecretBox", "SecretBoxError", "default_box"]

# Fixed, public parameters of the derivation (not secrets; see module docstring).
HKDF_SALT = b"boom-console/secretbox/salt/v1"
HKDF_INFO = b"boom-console/secretbox/fernet-key/v1"


class SecretBoxError(Exception):
    """A blob cannot be decrypted: wrong or rotated-away secret, or damaged data."""


def _fernet_for(secret: str) -> Fernet:
    if not isinstance(secret, str) or not secret:
        raise ValueError("SecretBox needs a non-empty secret string")
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=HKDF_SALT,
        info=HKDF_INFO,
    ).derive(secret.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    """Encrypts and decrypts text with a key derived from the console's secret.

    ``old_secrets`` are accepted for decryption only, so a secret can be
    rotated without losing stored data.
    """

    def __init__(self, secret: str, old_secrets: Iterable[str] = ()) -> None:
        self._fernet = MultiFernet([_fernet_for(secret), *(_fernet_for(s) for s in old_secrets)])

    def __repr__(self) -> str:
        return "<SecretBox>"  # never show key material

    def encrypt(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` with the current secret; returns an ASCII token."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a token made by ``encrypt`` with the current or an old secret.

        Raises ``SecretBoxError`` if no secret opens it.
        """
        try:
            return self._fernet.decrypt(_as_bytes(token)).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise SecretBoxError(
                "stored secret cannot be decrypted: CONSOLE_SECRET_KEY changed or the data is damaged"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the current secret (for a rotation migration)."""
        try:
            return self._fernet.rotate(_as_bytes(token)).decode("ascii")
        except InvalidToken:
            raise SecretBoxError(
                "stored secret cannot be decrypted: CONSOLE_SECRET_KEY changed or the data is damaged"
            ) from None


def _as_bytes(token: str) -> bytes:
    if isinstance(token, bytes):
        return token
    try:
        return token.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise SecretBoxError("stored secret is not a valid token") from None


def default_box() -> SecretBox:
    """The box for the running console: ``settings.CONSOLE_SECRET_KEY``.

    ``settings.CONSOLE_OLD_SECRET_KEYS`` (optional, a list) holds retired
    secrets still accepted for decryption. Read on every call so that tests
    overriding settings see their own key; the derivation costs microseconds.
    """
    from django.conf import settings

    return SecretBox(
        settings.CONSOLE_SECRET_KEY,
        old_secrets=getattr(settings, "CONSOLE_OLD_SECRET_KEYS", ()) or (),
    )
