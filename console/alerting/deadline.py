"""Per-rule time limits for the evaluator, enforced by the database so a stuck query cannot stall it.

SQLite: a progress handler that aborts the running statement once the deadline has passed.
PostgreSQL: ``SET LOCAL statement_timeout`` inside a transaction of the rule's own. Either way the
query raises an OperationalError, the evaluator records the rule's error and moves on to the next rule.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def query_deadline(seconds: float):
    """Abort any query of the block still running ``seconds`` after the block started."""
    seconds = max(float(seconds), 0.001)
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        raw = connection.connection
        deadline = time.monotonic() + seconds
        # Called every N SQLite VM instructions; a non-zero return interrupts the statement.
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 20_000)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
    elif connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [max(int(seconds * 1000), 1)])
            yield
    else:  # pragma: no cover - other backends: no limit, the evaluator still records slow rules
        yield


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is the database aborting a statement at our deadline."""
    text = str(exc).lower()
    return "interrupted" in text or "statement timeout" in text or "canceling statement" in text
