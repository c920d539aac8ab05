"""Celery tasks of serving jobs: thin wrappers around jobs.reconciler (queue ``lifecycle``)."""

from celery import shared_task

from jobs import reconciler


@shared_task(acks_late=True, ignore_result=True, expires=30)
def reconcile_job(job_id: int) -> None:
    """Reconcile one job now (triggered by an operator's action)."""
    reconciler.reconcile_job(job_id)


@shared_task(acks_late=True, ignore_result=True, expires=60)
def reap_orphans() -> None:
    """Stop processes of instances that no longer live on their node (each node every 30 s, and as soon as it
    comes back; beat sends this every 5 s, outside the reconcile pass)."""
    reconciler.reap_orphans_due()


@shared_task(acks_late=True, ignore_result=True, expires=5)
def reconcile_all() -> int:
    """The periodic pass over every job (every CONSOLE_RECONCILE_INTERVAL_MS)."""
    return reconciler.reconcile_all()


# Benchmark tasks live in jobs.benchmarks.tasks (queue ``long``); imported here so the worker's
# autodiscovery of ``jobs.tasks`` registers them.
from jobs.benchmarks import tasks as benchmark_tasks  # noqa: E402, F401
