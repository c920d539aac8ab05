"""Alert and notification statuses go through console.core.statemachine: their tables are read."""

from datetime import timedelta

import pytest

from console.alerting import dispatch, evaluator
from console.alerting.choices import AlertState, NotificationStatus
from console.alerting.models import Alert, AlertTransition, Notification
from console.core.models import Event
from console.core.statemachine import TransitionNotAllowed
from tests import factories
from tests.alerting.conftest import make_channel, make_rule, node_sample

pytestmark = pytest.mark.django_db


def firing_alert(now) -> Alert:
    node_sample(factories.node(), value=99)
    make_rule(for_seconds=0)
    evaluator.evaluate(now=now)
    return Alert.objects.get(state=AlertState.FIRING)


def row_of(alert: Alert) -> dict:
    return Alert.objects.filter(pk=alert.pk).values("pk", "rule_id", "fingerprint", "state").get()


def test_an_alert_transition_collects_one_history_row_and_records_no_event(quiet_builtins, now):
    alert = firing_alert(now)
    events = Event.objects.count()
    collected = []
    assert evaluator._transition(row_of(alert), AlertState.RESOLVED, "cleared", now, collected, ended_at=now)
    assert [(t.alert_id, t.from_state, t.to_state, t.reason, t.actor) for t in collected] == [
        (alert.pk, "firing", "resolved", "cleared", "system")]
    assert Alert.objects.get(pk=alert.pk).state == AlertState.RESOLVED
    assert Event.objects.count() == events


def test_a_resolved_alert_cannot_fire_again_because_the_table_says_so(quiet_builtins, now):
    alert = firing_alert(now)
    evaluator.resolve_alerts(Alert.objects.filter(pk=alert.pk), "rule disabled", now)
    with pytest.raises(TransitionNotAllowed, match="an alert cannot go from resolved to firing"):
        evaluator._transition(row_of(alert), AlertState.FIRING, "again", now, [])
    assert AlertTransition.objects.filter(alert=alert).count() == 2  # new -> firing, firing -> resolved


def test_an_alert_moved_by_another_evaluator_is_left_alone(quiet_builtins, now):
    alert = firing_alert(now)
    stale = row_of(alert)
    assert evaluator.resolve_alerts(Alert.objects.filter(pk=alert.pk), "rule deleted", now) == 1
    collected = []
    stale["state"] = AlertState.PENDING
    assert not evaluator._transition(stale, AlertState.FIRING, "late", now, collected)
    assert collected == []


def test_a_notification_status_the_table_forbids_is_refused(now):
    notification = Notification.objects.create(channel=make_channel(), status=NotificationStatus.DELIVERED,
                                               expires_at=now + timedelta(hours=1))
    with pytest.raises(TransitionNotAllowed, match="a notification cannot go from delivered to pending"):
        dispatch._move(notification, NotificationStatus.PENDING)
    assert Notification.objects.get(pk=notification.pk).status == NotificationStatus.DELIVERED


def test_the_reaper_and_the_expiry_move_notifications_through_the_table(settings, now):
    channel = make_channel(enabled=False)
    stuck = Notification.objects.create(channel=channel, status=NotificationStatus.SENDING,
                                        claimed_until=now - timedelta(seconds=1), expires_at=now + timedelta(hours=1))
    old = Notification.objects.create(channel=channel, expires_at=now - timedelta(seconds=1))
    report = dispatch.deliver_due(now=now)
    assert (report.reaped, report.expired) == (1, 1)
    stuck.refresh_from_db()
    old.refresh_from_db()
    assert stuck.status == NotificationStatus.PENDING and stuck.claimed_until is None
    assert old.status == NotificationStatus.FAILED and "gave up" in old.last_error
