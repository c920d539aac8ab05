"""From transitions to delivered notifications: grouping, the outbox, and delivery with retries.

Three steps, each safe to run in two workers at once (console.alerting.tasks.dispatch runs them):

1. ``process_transitions``: the evaluator's transition rows are the outbox. Each unprocessed row is
   marked processed with a conditional update (only the worker that flips it acts on it); acting means
   putting the alert in its group and scheduling the group's next look (``next_flush_at``).
2. ``flush_due_groups``: a due group decides what to say (new firing alerts, resolved ones, or a repeat
   after the repeat interval for alerts nobody acknowledged), and writes one Notification per channel
   that wants it, in the same transaction as the group's conditional update: a group is flushed once.
3. ``deliver_due``: due notifications are claimed (pending -> sending, conditional), sent in parallel
   threads (one sequence per channel, in order), and every attempt is recorded. A transient error
   retries with exponential back-off; a permanent one disables the channel and holds its notifications
   until an operator enables it again; a notification still undelivered after CONSOLE_NOTIFY_MAX_AGE_S
   fails, visibly. A claim outliving ``claimed_until`` (a dead worker) is returned to pending.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from console.alerting.choices import (
    ACTIVE_STATES,
    NOTIFICATION_TRANSITIONS,
    SEVERITY_RANK,
    AlertState,
    ChannelKind,
    NotificationKind,
    NotificationStatus,
)
from console.alerting.labels import compiled, group_key, matches_all
from console.alerting.models import (
    Alert,
    AlertGroup,
    AlertTransition,
    DeliveryAttempt,
    Notification,
    NotificationChannel,
)
from console.alerting.notifiers import NotifyError, SendResult, get_notifier
from console.core import audit, broadcast, statemachine

log = logging.getLogger(__name__)

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def external_url() -> str:
    return settings.CONSOLE_EXTERNAL_URL.rstrip("/")


def alert_message(alert: Alert) -> dict:
    """One alert as notifications carry it (a snapshot: retries send what was true when it was queued)."""
    status = "firing" if alert.state == AlertState.FIRING else "resolved"
    return {
        "id": alert.pk, "status": status, "rule": alert.rule_name, "severity": alert.severity,
        "labels": alert.labels, "annotations": alert.annotations, "value": alert.value,
        "starts_at": rfc3339(alert.fired_at or alert.active_since), "ends_at": rfc3339(alert.ended_at),
        "fingerprint": alert.fingerprint, "url": f"{external_url()}/alerts/{alert.pk}/",
        "acknowledged_by": alert.acknowledged_by_name or None, "flapping": alert.flapping,
        "flap_count": alert.flap_count,
    }


def _common(dicts: list[dict]) -> dict:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def build_message(group_key_text: str, group_labels: dict, alerts: list[dict], *, repeat: bool = False) -> dict:
    """The channel-agnostic message a Notification stores; notifiers render it in their format."""
    firing = [a for a in alerts if a["status"] == "firing"]
    return {
        "status": "firing" if firing else "resolved",
        "group_key": group_key_text,
        "group_labels": group_labels,
        "common_labels": _common([a["labels"] for a in alerts]),
        "common_annotations": _common([a["annotations"] for a in alerts]),
        "external_url": external_url(),
        "repeat": repeat,
        "alerts": alerts,
    }


# ----------------------------------------------------------------------------------- 1. transitions


def process_transitions(now: datetime | None = None, limit: int = 1000) -> int:
    """Consume unprocessed transition rows (oldest first). Returns how many this worker processed."""
    now = now or timezone.now()
    rows = list(AlertTransition.objects.filter(processed_at__isnull=True)
                .select_related("alert__rule", "alert__group").order_by("id")[:limit])
    done = 0
    for start in range(0, len(rows), 200):
        with transaction.atomic():
            for row in rows[start:start + 200]:
                # The conditional update is the claim: zero rows means another dispatcher has it.
                if not AlertTransition.objects.filter(pk=row.pk, processed_at__isnull=True).update(processed_at=now):
                    continue
                _schedule(row, now)
                done += 1
    return done


def _schedule(row: AlertTransition, now: datetime) -> None:
    alert = row.alert
    if row.to_state in ACTIVE_STATES:
        group = alert.group or _assign_group(alert, now)
        if row.to_state == AlertState.FIRING:
            if group.last_flush_at is None:  # a new group: wait for its companions, counted from its start
                due = max(group.created_at + timedelta(seconds=group.group_wait_s), now)
            else:
                due = group.last_flush_at + timedelta(seconds=group.group_interval_s)
            _pull_forward(group, due)
    elif row.to_state == AlertState.RESOLVED and alert.group_id and alert.last_notified_state == AlertState.FIRING:
        group = alert.group
        due = group.last_flush_at + timedelta(seconds=group.group_interval_s) if group.last_flush_at else now
        _pull_forward(group, due)


def _pull_forward(group: AlertGroup, due: datetime) -> None:
    if group.next_flush_at is None or due < group.next_flush_at:
        AlertGroup.objects.filter(pk=group.pk).update(next_flush_at=due)
        group.next_flush_at = due


def _assign_group(alert: Alert, now: datetime) -> AlertGroup:
    rule = alert.rule
    group_by = (rule.group_by if rule else None) or ["alertname"]
    key, labels = group_key(alert.labels, group_by)
    timings = {"group_wait_s": rule.group_wait if rule else settings.CONSOLE_ALERT_GROUP_WAIT_S,
               "group_interval_s": rule.group_interval if rule else settings.CONSOLE_ALERT_GROUP_INTERVAL_S,
               "repeat_interval_s": rule.repeat_interval if rule else settings.CONSOLE_ALERT_REPEAT_INTERVAL_S}
    group, created = AlertGroup.objects.get_or_create(key=key, defaults={"labels": labels, "created_at":
                                                                         alert.active_since, **timings})
    if not created and group.next_flush_at is None and not group.alerts.filter(
            state__in=ACTIVE_STATES).exclude(pk=alert.pk).exists():
        # An idle group coming back: it starts afresh (group wait again, the rule's current timings).
        AlertGroup.objects.filter(pk=group.pk).update(created_at=alert.active_since, last_flush_at=None,
                                                      last_sent_at=None, **timings)
        group.created_at, group.last_flush_at, group.last_sent_at = alert.active_since, None, None
        for key_name, value in timings.items():
            setattr(group, key_name, value)
    Alert.objects.filter(pk=alert.pk, group__isnull=True).update(group=group)
    alert.group = group
    return group


# ----------------------------------------------------------------------------------------- 2. groups


def _wants(channel: NotificationChannel, alert: Alert) -> bool:
    if SEVERITY_RANK.get(alert.severity, 0) < SEVERITY_RANK.get(channel.min_severity, 0):
        return False
    if alert.state == AlertState.RESOLVED and not channel.send_resolved:
        return False
    matchers = compiled(channel.matchers)
    return not matchers or matches_all(matchers, alert.labels)


def receiving_channels():
    """Channels that get notifications: enabled ones, and those the console disabled after a permanent
    error (their notifications wait for them); not those an operator switched off."""
    return NotificationChannel.objects.filter(Q(enabled=True) | ~Q(disabled_reason=""))


def flush_due_groups(now: datetime | None = None, limit: int = 200) -> int:
    """Flush the groups whose ``next_flush_at`` has come. Returns the number of notifications queued."""
    now = now or timezone.now()
    groups = list(AlertGroup.objects.filter(next_flush_at__lte=now).order_by("next_flush_at")[:limit])
    if not groups:
        return 0
    channels = list(receiving_channels())
    queued = 0
    for group in groups:
        with transaction.atomic():
            queued += _flush(group, channels, now)
    return queued


def _flush(group: AlertGroup, channels: list[NotificationChannel], now: datetime) -> int:
    alerts = list(group.alerts.filter(Q(state__in=ACTIVE_STATES) |
                                      Q(state=AlertState.RESOLVED, last_notified_state=AlertState.FIRING))
                  .order_by("active_since", "pk"))
    firing = [a for a in alerts if a.state == AlertState.FIRING and not a.suppressed]
    resolved = [a for a in alerts if a.state == AlertState.RESOLVED]
    news = [a for a in firing if a.last_notified_state != AlertState.FIRING] + resolved
    unacknowledged = [a for a in firing if a.acknowledged_at is None]
    repeat = False
    send: list[Alert] = []
    if news:
        send = firing + resolved
    elif unacknowledged and group.last_sent_at and now >= group.last_sent_at + timedelta(
            seconds=group.repeat_interval_s):
        send, repeat = unacknowledged, True
    still_active = any(a.state in ACTIVE_STATES for a in alerts)
    next_flush = now + timedelta(seconds=group.group_interval_s) if still_active else None
    claimed = AlertGroup.objects.filter(pk=group.pk, next_flush_at=group.next_flush_at).update(
        next_flush_at=next_flush, last_flush_at=now, last_sent_at=now if send else group.last_sent_at)
    if not claimed or not send:
        return 0
    notifications = []
    for channel in channels:
        chosen = [a for a in send if _wants(channel, a)]
        if not chosen:
            continue
        message = build_message(group.key, group.labels, [alert_message(a) for a in chosen], repeat=repeat)
        notifier = get_notifier(channel)
        if notifier.is_noop(message):
            continue
        notifications.append(Notification(
            channel=channel, group=group, kind=NotificationKind.ALERTS, payload=message, alert_count=len(chosen),
            created_at=now, next_attempt_at=now,
            expires_at=now + timedelta(seconds=settings.CONSOLE_NOTIFY_MAX_AGE_S)))
    supersede_resends([n.channel_id for n in notifications], now)
    Notification.objects.bulk_create(notifications)
    if notifications:
        broadcast.changed("notification", "alerts")
    firing_ids = [a.pk for a in send if a.state == AlertState.FIRING]
    resolved_ids = [a.pk for a in send if a.state == AlertState.RESOLVED] + [a.pk for a in resolved]
    Alert.objects.filter(pk__in=firing_ids).update(last_notified_state=AlertState.FIRING)
    Alert.objects.filter(pk__in=resolved_ids).update(last_notified_state=AlertState.RESOLVED)
    return len(notifications)


# ------------------------------------------------------------------------ 2b. alertmanager-api re-sends


def resend_kinds() -> tuple[str, ...]:
    return (ChannelKind.ALERTMANAGER_API,)


def supersede_resends(channel_ids: list[int], now: datetime) -> int:
    """A newer message to an alertmanager-api channel makes its undelivered re-sends pointless (and a stale
    re-send sent after a resolution would make the alert fire again there): they fail as superseded. Only
    pending ones; their attempts stay recorded."""
    if not channel_ids:
        return 0
    return statemachine.transition_all(
        Notification.objects.filter(channel_id__in=channel_ids, channel__kind__in=resend_kinds(),
                                    kind=NotificationKind.RESEND),
        NotificationStatus.PENDING, NotificationStatus.FAILED, table=NOTIFICATION_TRANSITIONS, what="a notification",
        last_error="superseded by a newer message to the channel", claimed_until=None)


def resend_due(now: datetime | None = None) -> int:
    """Re-post the still-firing alerts to each alertmanager-api channel every CONSOLE_ALERTMANAGER_RESEND_S, as
    Prometheus does: Alertmanager resolves an alert whose endsAt (now + 4 intervals) passes without news.

    Per channel, the turn is claimed with a conditional update of ``next_resend_at`` (two dispatchers queue one
    re-send). It carries the firing alerts the channel wants (its severity and matchers) that were already
    notified (so the group wait still applies to the first post) and are not suppressed in the console
    (silenced, inhibited, in maintenance: those are not notified; in Alertmanager they resolve at endsAt).
    Acknowledged alerts are re-sent: they still fire. Returns the number of re-sends queued."""
    now = now or timezone.now()
    interval = timedelta(seconds=settings.CONSOLE_ALERTMANAGER_RESEND_S)
    channels = list(NotificationChannel.objects.filter(kind__in=resend_kinds(), enabled=True).filter(
        Q(next_resend_at__isnull=True) | Q(next_resend_at__lte=now)))
    if not channels:
        return 0
    alerts = list(Alert.objects.filter(state=AlertState.FIRING, suppressed="", last_notified_state=AlertState.FIRING)
                  .order_by("active_since", "pk"))
    queued = 0
    for channel in channels:
        turn = NotificationChannel.objects.filter(pk=channel.pk)
        turn = turn.filter(next_resend_at__isnull=True) if channel.next_resend_at is None else turn.filter(
            next_resend_at=channel.next_resend_at)
        if not turn.update(next_resend_at=now + interval):
            continue  # another dispatcher has this turn
        if channel.next_resend_at is None:
            continue  # a new channel: its first turn only starts the clock (the group flushes post what fires)
        chosen = [a for a in alerts if _wants(channel, a)]
        if not chosen:
            continue
        with transaction.atomic():
            supersede_resends([channel.pk], now)
            message = build_message("{}:{resend}", {}, [alert_message(a) for a in chosen], repeat=True)
            Notification.objects.create(
                channel=channel, kind=NotificationKind.RESEND, payload=message, alert_count=len(chosen),
                created_at=now, next_attempt_at=now,
                expires_at=now + timedelta(seconds=settings.CONSOLE_NOTIFY_MAX_AGE_S))
        queued += 1
    return queued


# --------------------------------------------------------------------------------------- 3. delivery


@dataclass
class Outcome:
    ok: bool
    duration_ms: int
    status_code: int | None = None
    error: str = ""
    permanent: bool = False
    response: str = ""
    retry_after: float | None = None
    deferred: bool = False  # not attempted: an earlier message to the same channel failed just now
    answers: list | None = None  # per-receiver answers (alertmanager-api), for the operator's test; never stored


def backoff_s(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the next try after ``attempt`` failed: exponential from
    CONSOLE_NOTIFY_RETRY_FIRST_S, capped at CONSOLE_NOTIFY_RETRY_MAX_S, with up to 10 % jitter so that
    retries of many notifications spread out; a receiver's Retry-After wins when it is longer."""
    base = settings.CONSOLE_NOTIFY_RETRY_FIRST_S * (2 ** max(attempt - 1, 0))
    delay = min(base, settings.CONSOLE_NOTIFY_RETRY_MAX_S) * (1 + random.random() * 0.1)
    if retry_after:
        delay = max(delay, min(retry_after, settings.CONSOLE_NOTIFY_RETRY_MAX_S))
    return delay


def send_now(channel: NotificationChannel, message: dict) -> Outcome:
    """One attempt, never raising: the notifier's error says whether retrying can help."""
    started = time.monotonic()
    try:
        result: SendResult = get_notifier(channel).send(message)
    except NotifyError as exc:
        return Outcome(False, int((time.monotonic() - started) * 1000), exc.status_code, exc.message, exc.permanent,
                       exc.response, exc.retry_after, answers=exc.answers)
    except Exception as exc:  # noqa: BLE001 - a bug in a notifier must not lose the notification
        log.exception("notifier %s failed unexpectedly", channel.kind)
        return Outcome(False, int((time.monotonic() - started) * 1000), None, f"{type(exc).__name__}: {exc}"[:1000])
    return Outcome(True, int((time.monotonic() - started) * 1000), result.status_code, result.error, False,
                   result.response, answers=result.answers)


def _send_sequence(items: list[Notification]) -> list[tuple[Notification, Outcome]]:
    """One channel's notifications in order; after a failure the rest wait for the next round."""
    out: list[tuple[Notification, Outcome]] = []
    failed = False
    for notification in items:
        if failed:
            out.append((notification, Outcome(False, 0, deferred=True)))
            continue
        outcome = send_now(notification.channel, notification.payload)
        failed = not outcome.ok
        out.append((notification, outcome))
    return out


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    reaped: int = 0
    expired: int = 0


def deliver_due(now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Claim and send the notifications that are due. See the module docstring."""
    now = now or timezone.now()
    report = DeliveryReport()
    # Reaper: a worker that died mid-send left its claim; the notification goes out again (at least once).
    report.reaped = statemachine.transition_all(
        Notification.objects.filter(claimed_until__lt=now), NotificationStatus.SENDING, NotificationStatus.PENDING,
        table=NOTIFICATION_TRANSITIONS, what="a notification", claimed_until=None)
    report.expired = statemachine.transition_all(
        Notification.objects.filter(expires_at__lt=now), NotificationStatus.PENDING, NotificationStatus.FAILED,
        table=NOTIFICATION_TRANSITIONS, what="a notification",
        last_error=f"not delivered within {settings.CONSOLE_NOTIFY_MAX_AGE_S} s; gave up")
    due = list(Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now,
                                           channel__enabled=True)
               .select_related("channel").order_by("next_attempt_at", "id")[:limit])
    by_channel: dict[int, list[Notification]] = defaultdict(list)
    for notification in due:
        by_channel[notification.channel_id].append(notification)
    claimed: list[list[Notification]] = []
    for items in by_channel.values():
        timeout = items[0].channel.timeout_s or settings.CONSOLE_NOTIFY_TIMEOUT_S
        hold = timedelta(seconds=timeout * len(items) + 60)
        mine = [n for n in items if _move(n, NotificationStatus.SENDING, claimed_until=now + hold)]
        if mine:
            claimed.append(mine)
    if not claimed:
        return report
    workers = min(len(claimed), settings.CONSOLE_NOTIFY_CONCURRENCY)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify") as pool:
        sequences = list(pool.map(_send_sequence, claimed))
    finished = timezone.now()
    for sequence in sequences:
        for notification, outcome in sequence:
            state = record_outcome(notification, outcome, finished)
            if state == NotificationStatus.DELIVERED:
                report.delivered += 1
            elif state == NotificationStatus.FAILED:
                report.failed += 1
            else:
                report.retrying += 1
    return report


def record_outcome(notification: Notification, outcome: Outcome, now: datetime) -> str:
    """Write the attempt and move the notification and its channel on. Returns the new status."""
    channel = notification.channel
    if outcome.deferred:
        _move(notification, NotificationStatus.PENDING, claimed_until=None)
        return NotificationStatus.PENDING
    number = notification.attempts + 1
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            notification=notification, channel=channel, number=number,
            started_at=now - timedelta(milliseconds=outcome.duration_ms), duration_ms=outcome.duration_ms,
            ok=outcome.ok, permanent=outcome.permanent, status_code=outcome.status_code, error=outcome.error[:2000],
            response=outcome.response[:1000])
        if outcome.ok:
            _move(notification, NotificationStatus.DELIVERED, delivered_at=now, attempts=number, last_error="",
                  claimed_until=None)
            NotificationChannel.objects.filter(pk=channel.pk).update(last_delivery_at=now, consecutive_failures=0)
            return NotificationStatus.DELIVERED
        NotificationChannel.objects.filter(pk=channel.pk).update(
            last_error=outcome.error[:2000], last_error_at=now, consecutive_failures=F("consecutive_failures") + 1)
        if notification.kind == NotificationKind.TEST:
            _move(notification, NotificationStatus.FAILED, attempts=number, last_error=outcome.error[:2000],
                  claimed_until=None)
            return NotificationStatus.FAILED
        if outcome.permanent:
            # Retrying cannot help until someone fixes the channel: disable it (shown on the channels page)
            # and keep this notification pending; it goes out once the channel is enabled again.
            disabled = NotificationChannel.objects.filter(pk=channel.pk, enabled=True).update(
                enabled=False, disabled_reason=outcome.error[:2000] or "permanent error", disabled_at=now)
            if disabled:
                audit.record("disable", channel, detail={"reason": outcome.error[:500],
                                                         "status_code": outcome.status_code})
            _move(notification, NotificationStatus.PENDING, attempts=number, last_error=outcome.error[:2000],
                  next_attempt_at=now, claimed_until=None)
            return NotificationStatus.PENDING
        _move(notification, NotificationStatus.PENDING, attempts=number, last_error=outcome.error[:2000],
              next_attempt_at=now + timedelta(seconds=backoff_s(number, outcome.retry_after)), claimed_until=None)
        return NotificationStatus.PENDING


def _move(notification: Notification, to: str, **fields) -> bool:
    """The notification state machine (NOTIFICATION_TRANSITIONS): a conditional write on the status read,
    no history (its DeliveryAttempt rows are its log) and no event."""
    # An alert's page shows its group's notifications: it re-reads them on the "alerts" topic.
    return statemachine.transition(notification, to, table=NOTIFICATION_TRANSITIONS, what="a notification",
                                   verb=None, topics=("alerts",) if notification.group_id else (), **fields)


def dispatch(now: datetime | None = None, *, deliver: bool = True) -> dict:
    """All three steps once (the periodic task, and right after an evaluation that changed something)."""
    now = now or timezone.now()
    processed = process_transitions(now)
    queued = flush_due_groups(now)
    queued += resend_due(now)
    report = deliver_due(now) if deliver else DeliveryReport()
    return {"transitions": processed, "queued": queued, "delivered": report.delivered, "failed": report.failed,
            "retrying": report.retrying, "reaped": report.reaped, "expired": report.expired}


def next_due(now: datetime | None = None) -> datetime | None:
    """The earliest time the dispatcher has work (a group to flush or a notification to retry)."""
    group = AlertGroup.objects.filter(next_flush_at__isnull=False).order_by("next_flush_at").values_list(
        "next_flush_at", flat=True).first()
    notification = Notification.objects.filter(status=NotificationStatus.PENDING, channel__enabled=True).order_by(
        "next_attempt_at").values_list("next_attempt_at", flat=True).first()
    candidates = [t for t in (group, notification) if t is not None]
    return min(candidates) if candidates else None
