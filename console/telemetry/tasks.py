"""Celery tasks of telemetry (queue ``telemetry``): thin wrappers around console.telemetry.retention."""

from celery import shared_task

from console.telemetry import retention


@shared_task(acks_late=True, ignore_result=True, expires=60)
def rollup_and_prune() -> dict:
    """Roll raw samples up per minute and delete what is past retention; re-enqueues itself while a
    backlog is left (each turn is bounded in time, so a worker is never held for long)."""
    report = retention.rollup_and_prune()
    if report["more"]:
        rollup_and_prune.apply_async(countdown=1)
    return report
