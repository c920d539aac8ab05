"""console.core.locks: one named lock across workers, dropped with its holder."""

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection, connections

from console.core import locks
from jobs import reconciler
from tests.jobs import factories as job_factories


class Holder(threading.Thread):
    """Holds ``name:parts`` on its own database connection until told to let go (or killed)."""

    def __init__(self, name, *parts):
        super().__init__(daemon=True)
        self.key = (name, *parts)
        self.got = None
        self.backend_pid = None
        self.holding = threading.Event()
        self.release = threading.Event()

    def run(self):
        try:
            with locks.hold(*self.key) as got:
                self.got = got
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_backend_pid()")
                        self.backend_pid = cursor.fetchone()[0]
                self.holding.set()
                self.release.wait(10)
        except Exception:  # the connection was killed under us: that is the point of one test
            self.holding.set()
        finally:
            connections.close_all()

    def __enter__(self):
        self.start()
        assert self.holding.wait(10)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.join(10)


def can_take(name, *parts) -> bool:
    with locks.hold(name, *parts) as got:
        return got


@pytest.mark.django_db(transaction=True)
def test_a_held_lock_refuses_a_second_holder_and_is_free_once_released():
    with Holder("test-lock", 1) as holder:
        assert holder.got
        assert not can_take("test-lock", 1)
        assert can_take("test-lock", 2)  # another name is another lock
    assert can_take("test-lock", 1)


@pytest.mark.django_db(transaction=True)
def test_a_lock_is_not_reentrant_in_the_same_thread():
    with locks.hold("test-lock", 3) as first:
        assert first and not can_take("test-lock", 3)
    assert can_take("test-lock", 3)


@pytest.mark.django_db(transaction=True)
def test_a_lock_whose_holders_connection_dies_is_free_again_at_once():
    if connection.vendor != "postgresql":
        pytest.skip("session advisory locks are PostgreSQL's")
    with Holder("test-lock", 4) as holder:
        assert holder.got and not can_take("test-lock", 4)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [holder.backend_pid])
            # pg_terminate_backend only signals: wait for the session to be gone (not for a lease).
            for _ in range(500):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [holder.backend_pid])
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.02)
        # No lease to wait out: the server dropped the lock with the session.
        assert can_take("test-lock", 4)


@pytest.mark.django_db(transaction=True)
def test_the_embedded_profile_uses_an_in_process_lock(monkeypatch):
    monkeypatch.setattr(type(connections["default"]), "vendor", "sqlite")  # every thread's connection
    assert connection.vendor == "sqlite"
    with Holder("test-lock", 5) as holder:
        assert holder.got and not can_take("test-lock", 5)
    assert can_take("test-lock", 5)


@pytest.mark.django_db(transaction=True)
def test_the_reconciler_skips_a_job_whose_lock_another_worker_holds_and_no_cache_lock_is_left():
    job = job_factories.job()
    with Holder("jobs-reconcile", job.pk):
        assert reconciler.reconcile_job(job.pk) is None
    assert reconciler.reconcile_job(job.pk) is not None
    assert cache.get(f"jobs:reconcile:{job.pk}") is None
