"""The Celery tasks are thin and idempotent: running one twice changes nothing more than running it once;
evaluation hands its changes to the dispatcher, schedules pending alerts' due moments and publishes the
header summary to the ``alerts`` stream."""

from datetime import timedelta

import pytest
from django.utils import timezone

from console.alerting import tasks
from console.alerting.models import Alert, AlertTransition, Notification
from console.core.models import StreamEntry
from tests import factories
from tests.alerting.conftest import make_channel, make_rule, node_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.dispatch, "delay", lambda *a, **k: calls.append(("dispatch", a, k)))
    monkeypatch.setattr(tasks.dispatch, "apply_async", lambda *a, **k: calls.append(("dispatch-later", a, k)))
    monkeypatch.setattr(tasks.evaluate, "apply_async", lambda *a, **k: calls.append(("evaluate-later", a, k)))
    return calls


def test_running_the_evaluation_task_twice_makes_one_alert_and_hands_it_to_the_dispatcher_once(
        quiet_builtins, enqueued):
    node_sample(factories.node(), value=99)
    make_rule(for_seconds=0)
    first = tasks.evaluate.apply().get()
    second = tasks.evaluate.apply().get()
    assert first["created"] == 1 and second["created"] == 0
    assert Alert.objects.count() == 1 and AlertTransition.objects.count() == 1
    assert [c[0] for c in enqueued] == ["dispatch"]


def test_a_pending_alert_schedules_a_targeted_evaluation_at_its_due_second(quiet_builtins, enqueued, settings):
    settings.CONSOLE_ALERT_EVAL_INTERVAL_S = 15
    node_sample(factories.node(), value=99)
    rule = make_rule(for_seconds=10)
    tasks.evaluate.apply()
    (name, _args, kwargs), *_ = [c for c in enqueued if c[0] == "evaluate-later"]
    alert = Alert.objects.get()
    assert kwargs["kwargs"] == {"rule_ids": [rule.pk]}
    assert alert.fire_at <= kwargs["eta"] < alert.fire_at + timedelta(seconds=1)


def test_an_evaluation_that_changes_alerts_publishes_the_summary_on_the_alerts_stream(quiet_builtins, enqueued):
    node_sample(factories.node(), value=99)
    make_rule(for_seconds=0, severity="critical")
    tasks.evaluate.apply()
    entry = StreamEntry.objects.filter(topic="alerts").latest("pk")
    assert entry.payload["state"]["summary"]["firing"] == 1
    assert entry.payload["state"]["summary"]["worst_severity"] == "critical"
    count = StreamEntry.objects.filter(topic="alerts").count()
    tasks.evaluate.apply()
    assert StreamEntry.objects.filter(topic="alerts").count() == count  # nothing changed: nothing published


def test_running_the_dispatch_task_twice_delivers_once(quiet_builtins, enqueued, receiver, fast_delivery):
    make_channel("webhook", receiver.url)
    node_sample(factories.node(), value=99)
    make_rule(for_seconds=0, group_wait_s=0)
    tasks.evaluate.apply()
    tasks.dispatch.apply()
    tasks.dispatch.apply()
    assert len(receiver.wait_for(1)) == 1
    assert Notification.objects.get().status == "delivered"


def test_cleanup_deletes_only_what_is_past_retention(quiet_builtins, enqueued, settings):
    settings.CONSOLE_ALERT_RETENTION_DAYS = 30
    node_sample(factories.node(), value=99)
    make_rule(for_seconds=0)
    tasks.evaluate.apply()
    alert = Alert.objects.get()
    Alert.objects.filter(pk=alert.pk).update(state="resolved", ended_at=timezone.now() - timedelta(days=31))
    assert tasks.cleanup.apply().get() == {"deleted": 1}
    assert not Alert.objects.filter(pk=alert.pk).exists()
