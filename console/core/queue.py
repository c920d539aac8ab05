"""Queueing Celery tasks by name, after the caller's transaction commits.

Services never import their app's ``tasks`` module (which imports the services): each app has one
small ``enqueue.py`` that names its tasks and calls :func:`after_commit`. A signature by name still
runs eagerly under ``CELERY_TASK_ALWAYS_EAGER`` once the task is registered (the worker and Django
autodiscover every app's tasks).
"""

from __future__ import annotations

from typing import Any

from celery import current_app, signature
from django.db import transaction


def now(task_name: str, *args: Any, **options: Any) -> None:
    """Queue ``task_name(*args)`` at once; ``options`` are apply_async's (countdown, expires, ...).

    Eager mode (tests, ``CELERY_TASK_ALWAYS_EAGER``) runs a task only when this process knows it:
    a worker registers every app's tasks at start, any other process may not have imported the
    module yet, so the tasks modules are imported first (once)."""
    app = current_app
    if app.conf.task_always_eager and task_name not in app.tasks:
        app.loader.import_default_modules()
    signature(task_name, args=args, app=app).apply_async(**options)


def after_commit(task_name: str, *args: Any, **options: Any) -> None:
    """Queue ``task_name(*args)`` once the current transaction commits (at once outside one), so that
    the worker reads what the caller wrote."""
    transaction.on_commit(lambda: now(task_name, *args, **options))
