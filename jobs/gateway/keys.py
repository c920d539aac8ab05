"""API key material: ``bk-`` + 40 URL-safe random characters. Only the SHA-256 digest is stored; the
prefix (the first 12 characters) names a key in lists and logs without revealing it."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "bk-"
PREFIX_LEN = 12


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def prefix_of(key: str) -> str:
    return key[:PREFIX_LEN]
