"""Queueing Celery tasks by name, after the caller's transaction commits.

Services never import their app's ``tasks`` module (which imports the services): each app has one
small ``enqueue.py`` that names its tasks and calls :func:`after_commit`. A signature by name still
runs eagerly under ``CELERY_TASK_ALWAYS_EAGER`` once the task is registered (the worker and Django
autodiscover every app's tasks).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app, signature
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

log = logging.getLogger(__name__)


def now(task_name: str, *args: Any, **options: Any) -> None:
    """Queue ``task_name(*args)`` at once; ``options`` are apply_async's (countdown, expires, ...).

    Eager mode (tests, ``CELERY_TASK_ALWAYS_EAGER``) runs a task only when this process knows it:
    a worker registers every app's tasks at start, any other process may not have imported the
    module yet, so the tasks modules are imported first (once)."""
    app = current_app
    if app.conf.task_always_eager and task_name not in app.tasks:
        app.loader.import_default_modules()
    signature(task_name, args=args, app=app).apply_async(**options)


def after_commit(task_name: str, *args: Any, periodic: bool = False, **options: Any) -> None:
    """Queue ``task_name(*args)`` once the current transaction commits (at once outside one), so that
    the worker reads what the caller wrote.

    ``periodic``: a periodic task does the same work anyway (the reconcile pass, the probe round, alert
    evaluation and delivery), so the message only makes it sooner. When the broker cannot be reached (Redis
    restarting) it is then dropped with a warning: the caller's change is committed and will be acted on by
    the next periodic pass once the broker is back, and the operator who made it gets their answer, not a
    503. Work that nothing else would pick up (a benchmark, a verification) still fails loudly."""

    def send() -> None:
        try:
            now(task_name, *args, **options)
        except BrokerUnreachable as exc:
            if not periodic:
                raise
            log.warning("%s%r not queued (%s); the next periodic pass does it once the broker answers",
                        task_name, args, exc)

    transaction.on_commit(send)
