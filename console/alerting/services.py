"""Operator actions on alerting: acknowledge, silence, enable and disable rules and channels, test a
channel. Views and the API call these; each opens its own transaction and records an audit event."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.alerting import enqueue
from console.alerting.choices import (
    ACTIVE_STATES,
    NotificationKind,
    NotificationStatus,
)
from console.alerting.dispatch import build_message, record_outcome, rfc3339, send_now
from console.alerting.evaluator import resolve_alerts
from console.alerting.labels import fingerprint
from console.alerting.models import (
    Alert,
    AlertRule,
    DeliveryAttempt,
    Notification,
    NotificationChannel,
    Silence,
)
from console.alerting.summary import publish_summary
from console.core import audit
from console.core.errors import Conflict

log = logging.getLogger(__name__)


def _actor(request) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else audit.SYSTEM


# ------------------------------------------------------------------------------------ acknowledgement


def acknowledge(alert: Alert, *, user, comment: str = "", request=None) -> Alert:
    """An operator takes the alert: repeats stop until it resolves. Acknowledging twice keeps the first."""
    if alert.state not in ACTIVE_STATES:
        raise Conflict("The alert is resolved; there is nothing to acknowledge.")
    now = timezone.now()
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk, state__in=ACTIVE_STATES, acknowledged_at__isnull=True).update(
            acknowledged_by=user, acknowledged_by_name=user.get_username(), acknowledged_at=now,
            ack_comment=comment[:2000], updated_at=now)
        if changed:
            audit.record("acknowledge", alert, request=request, detail={"comment": comment[:500]})
            publish_summary()
    alert.refresh_from_db()
    if alert.state not in ACTIVE_STATES:
        raise Conflict("The alert resolved meanwhile; there is nothing to acknowledge.")
    return alert


def unacknowledge(alert: Alert, *, request=None) -> Alert:
    """Undo an acknowledgement: repeats start again."""
    if alert.acknowledged_at is None:
        return alert
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(acknowledged_by=None, acknowledged_by_name="", acknowledged_at=None,
                                                 ack_comment="", updated_at=timezone.now())
        audit.record("unacknowledge", alert, request=request)
        publish_summary()
    alert.refresh_from_db()
    return alert


# ------------------------------------------------------------------------------------------ silences


def create_silence(*, matchers: list, starts_at: datetime, ends_at: datetime, comment: str, user=None,
                   request=None) -> Silence:
    silence = Silence.objects.create(matchers=matchers, starts_at=starts_at, ends_at=ends_at, comment=comment,
                                     created_by=user if user is not None and user.is_authenticated else None,
                                     created_by_name=user.get_username() if user is not None else "")
    audit.record("create", silence, request=request, detail={"matchers": matchers, "ends_at": rfc3339(ends_at)})
    refresh_soon()
    return silence


def expire_silence(silence: Silence, *, request=None) -> Silence:
    now = timezone.now()
    if silence.ends_at <= now:
        raise Conflict("The silence has already ended.")
    Silence.objects.filter(pk=silence.pk).update(ends_at=now, starts_at=min(silence.starts_at, now))
    silence.refresh_from_db()
    audit.record("expire", silence, request=request)
    refresh_soon()
    return silence


def silence_matchers_for(alert: Alert) -> list[dict]:
    """Equality matchers on an alert's labels (without severity), to prefill "silence this alert"."""
    return [{"name": k, "op": "=", "value": v} for k, v in sorted(alert.labels.items()) if k != "severity"]


def refresh_soon() -> None:
    """Re-evaluate after the commit, so that a silence takes effect now rather than at the next tick."""
    enqueue.evaluate()


# ------------------------------------------------------------------------------------------- rules


def rule_saved(rule: AlertRule, *, was_enabled: bool | None, request=None) -> None:
    """After a rule is created or changed: a disabled rule's alerts resolve now; enabled rules are
    evaluated right after the commit."""
    if not rule.enabled and was_enabled is not False:
        resolve_alerts(Alert.objects.filter(rule=rule), "rule disabled")
        publish_summary()
    elif rule.enabled:
        refresh_soon()


def delete_rule(rule: AlertRule, *, request=None) -> None:
    if rule.builtin:
        raise Conflict("Built-in rules cannot be deleted; disable them instead (PATCH enabled=false).")
    with transaction.atomic():
        resolve_alerts(Alert.objects.filter(rule=rule), "rule deleted")
        pk, name = rule.pk, rule.name
        rule.delete()
        audit.record("delete", None, request=request, object_type="alertrule", object_id=pk, detail={"name": name})
        publish_summary()


# ----------------------------------------------------------------------------------------- channels


def enable_channel(channel: NotificationChannel, *, request=None) -> NotificationChannel:
    """Enable a channel (after fixing it): notifications it held go out at the next dispatch."""
    now = timezone.now()
    with transaction.atomic():
        NotificationChannel.objects.filter(pk=channel.pk).update(enabled=True, disabled_reason="", disabled_at=None,
                                                                 consecutive_failures=0)
        Notification.objects.filter(channel=channel, status=NotificationStatus.PENDING).update(next_attempt_at=now)
        audit.record("enable", channel, request=request)
    channel.refresh_from_db()
    enqueue.dispatch()
    return channel


def disable_channel(channel: NotificationChannel, *, request=None) -> NotificationChannel:
    """An operator switches the channel off: nothing is queued for it until it is enabled."""
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=False, disabled_reason="",
                                                             disabled_at=timezone.now())
    audit.record("disable", channel, request=request)
    channel.refresh_from_db()
    return channel


def test_message(channel: NotificationChannel, *, actor: str) -> dict:
    """A one-alert message that looks like the real thing, clearly marked as a test."""
    now = timezone.now()
    labels = {"alertname": "BooM Console test notification", "severity": "info", "channel": channel.name}
    alert = {
        "id": 0, "status": "firing", "rule": labels["alertname"], "severity": "info", "labels": labels,
        "annotations": {"summary": f"Test notification from BooM Console, sent by {actor}",
                        "description": "If you can read this, the channel works."},
        "value": None, "starts_at": rfc3339(now), "ends_at": None, "fingerprint": fingerprint(labels),
        "url": f"{settings.CONSOLE_EXTERNAL_URL.rstrip('/')}/alerts/channels/", "acknowledged_by": None,
        "flapping": False, "flap_count": 0,
    }
    return build_message('{}:{alertname="BooM Console test notification"}',
                         {"alertname": labels["alertname"]}, [alert])


def send_test(channel: NotificationChannel, *, request=None) -> DeliveryAttempt:
    """Send a test message now (synchronously, bounded by CONSOLE_NOTIFY_TIMEOUT_S) and record the
    attempt. A failed test never disables the channel and is not retried."""
    now = timezone.now()
    actor = _actor(request)
    notification = Notification.objects.create(
        channel=channel, kind=NotificationKind.TEST, status=NotificationStatus.SENDING,
        payload=test_message(channel, actor=actor), alert_count=1, created_at=now, next_attempt_at=now,
        claimed_until=now + timedelta(seconds=settings.CONSOLE_NOTIFY_TIMEOUT_S + 60), expires_at=now)
    notification.channel = channel
    outcome = send_now(channel, notification.payload)
    record_outcome(notification, outcome, timezone.now())
    attempt = notification.attempt_log.order_by("-number").first()
    # What each receiver answered (alertmanager-api: status and the start of its body), for the operator who
    # asked only: it is returned, never stored (attempts are readable by viewers).
    attempt.answers = outcome.answers or []
    audit.record("test", channel, request=request, detail={"ok": outcome.ok, "error": outcome.error[:300]})
    return attempt

