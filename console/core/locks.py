"""Named locks across workers, that die with their holder.

``with locks.hold("reconcile-job", job_id) as got:`` -- ``got`` says whether this caller holds the lock
(``blocking=False``, the default, never waits). On PostgreSQL it is a session advisory lock on the
thread's database connection: the server drops it the moment that connection dies (a worker killed at
any point holds nothing), and it is released on leaving the block. The embedded profile (SQLite) runs
one worker process: an in-process lock is enough there.

A lock is not re-entrant: a second ``hold`` of the same name in the same thread is refused, as it is
from any other holder (PostgreSQL would grant it to the same session; we do not).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_local = threading.local()  # names held by this thread (refuse re-entry, as another holder would be)
_process_locks: dict[str, threading.Lock] = {}
_process_guard = threading.Lock()


def key(name: str, *parts) -> tuple[str, int]:
    """The lock's name (``name:part:...``) and its 64-bit advisory key."""
    full = ":".join([name, *(str(p) for p in parts)])
    return full, int.from_bytes(hashlib.blake2b(full.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def hold(name: str, *parts, blocking: bool = False) -> Iterator[bool]:
    """Hold the lock ``name:parts`` for the block; yields whether it was acquired (always True when
    ``blocking``)."""
    full, advisory = key(name, *parts)
    held: set[str] = _local.__dict__.setdefault("held", set())
    if full in held:
        yield False
        return
    got = _acquire(full, advisory, blocking)
    if got:
        held.add(full)
    try:
        yield got
    finally:
        if got:
            held.discard(full)
            _release(full, advisory)


def _acquire(full: str, advisory: int, blocking: bool) -> bool:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if blocking:
                cursor.execute("SELECT pg_advisory_lock(%s)", [advisory])
                return True
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory])
            return bool(cursor.fetchone()[0])
    with _process_guard:
        lock = _process_locks.setdefault(full, threading.Lock())
    return lock.acquire(blocking=blocking)


def _release(full: str, advisory: int) -> None:
    if connection.vendor == "postgresql":
        if connection.connection is None:
            return  # the connection went away: the server dropped the lock with it
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [advisory])
        except Exception:  # a broken connection: the server drops the lock when the session ends
            connection.close()
        return
    _process_locks[full].release()
