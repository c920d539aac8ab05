"""Celery tasks of alerting: thin wrappers around the evaluator and the dispatcher.

``evaluate`` runs on the ``telemetry`` queue (short, periodic reads), ``dispatch`` and ``cleanup`` on
``lifecycle`` (console/settings.py CELERY_TASK_ROUTES). All are idempotent: running one twice, or two
at once, changes nothing more than running it once (conditional writes; see evaluator and dispatch).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from console.alerting import dispatch as dispatcher
from console.alerting import evaluator
from console.alerting.models import Alert, Notification
from console.core import locks

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True, expires=60)
def evaluate(rule_ids: list[int] | None = None) -> dict:
    """One evaluation cycle (every CONSOLE_ALERT_EVAL_INTERVAL_S), or of ``rule_ids`` only (scheduled for
    the moment a pending alert's for-duration ends). Hands what changed to the dispatcher at once."""
    with locks.hold("alerting-evaluate") as mine:
        if not mine:
            if rule_ids:  # a targeted run must not be lost behind a full cycle: try again in a moment
                evaluate.apply_async(kwargs={"rule_ids": rule_ids}, countdown=1)
            return {"skipped": True}
        report = evaluator.evaluate(rule_ids=rule_ids)
    if report.transitions:
        dispatch.delay()
    _schedule_followups(report.followups)
    if report.errors:
        log.warning("alert evaluation: %d rule(s) failed", len(report.errors))
    return {"rules": report.rules, "errors": len(report.errors), "created": report.created, "fired": report.fired,
            "resolved": report.resolved, "duration_ms": round(report.duration_ms, 1)}


def _schedule_followups(followups: dict) -> None:
    """One targeted evaluation per second in which pending alerts become due (a handful per cycle)."""
    now = timezone.now()
    by_second: dict = defaultdict(list)
    for rule_id, due in followups.items():
        by_second[due.replace(microsecond=0) + timedelta(seconds=1) if due.microsecond else due].append(rule_id)
    for due, rule_ids in sorted(by_second.items())[:30]:
        if due <= now:
            continue  # already due: the next full cycle is close enough, and a loop must not form
        evaluate.apply_async(kwargs={"rule_ids": sorted(rule_ids)}, eta=due,
                             expires=due + timedelta(seconds=settings.CONSOLE_ALERT_EVAL_INTERVAL_S))


@shared_task(acks_late=True, ignore_result=True, expires=60)
def dispatch() -> dict:
    """Group transitions, queue notifications and deliver what is due (every
    CONSOLE_ALERT_DISPATCH_INTERVAL_S, and right after an evaluation that changed something)."""
    report = dispatcher.dispatch()
    due = dispatcher.next_due()
    # Sooner than the next periodic tick? Then come back exactly then (group wait ends, a retry is due).
    if due is not None:
        wait = (due - timezone.now()).total_seconds()
        if 0 < wait < settings.CONSOLE_ALERT_DISPATCH_INTERVAL_S:
            dispatch.apply_async(countdown=wait, expires=due + timedelta(seconds=60))
    return report


@shared_task(acks_late=True, ignore_result=True, expires=3600)
def cleanup() -> dict:
    """Delete resolved alerts, delivered or failed notifications and old attempts past
    CONSOLE_ALERT_RETENTION_DAYS, in batches; re-enqueues itself while there is more."""
    cutoff = timezone.now() - timedelta(days=settings.CONSOLE_ALERT_RETENTION_DAYS)
    deleted = 0
    for model, filters in ((Alert, {"state": "resolved", "ended_at__lt": cutoff}),
                           (Notification, {"status__in": ["delivered", "failed"], "created_at__lt": cutoff})):
        ids = list(model.objects.filter(**filters).order_by("pk").values_list("pk", flat=True)[:2000])
        if ids:  # count the rows themselves, not their cascaded transitions and attempts
            deleted += model.objects.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)
    if deleted >= 2000:
        cleanup.apply_async(countdown=1)
    return {"deleted": deleted}
