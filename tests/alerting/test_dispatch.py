"""From firing alerts to delivered notifications, against a real HTTP receiver and a real SMTP server on
loopback: group wait, group interval, repeats, acknowledgements, silences, inhibition, routing, and a
delivery that survives slow and failing receivers without losing a notification."""

from datetime import timedelta

import pytest

from console.alerting import dispatch, evaluator, services
from console.alerting.models import Alert, AlertGroup, DeliveryAttempt, Notification, NotificationChannel, Silence
from console.core.models import Event
from nodes.models import NodeSample
from tests import factories
from tests.alerting.conftest import later, make_channel, make_rule, node_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def hot_node(quiet_builtins):
    node = factories.node(name="gpu-01")
    node_sample(node, value=97)
    return node


def fire(now, **rule_fields):
    """A rule that fires at once for every hot node."""
    values = {"for_seconds": 0, "group_wait_s": 30, "group_interval_s": 300, "repeat_interval_s": 3600}
    values.update(rule_fields)
    rule = make_rule(**values)
    evaluator.evaluate(now=now)
    return rule


def bodies(receiver):
    return [r["body"] for r in receiver.requests]


def test_a_firing_alert_is_delivered_once_after_the_group_wait_and_its_resolution_follows(
        hot_node, receiver, fast_delivery, now):
    make_channel("webhook", receiver.url)
    fire(now)
    dispatch.dispatch(now=later(now, 29))
    assert receiver.requests == []
    report = dispatch.dispatch(now=later(now, 30))
    assert report["delivered"] == 1
    first = receiver.wait_for(1)[0]["body"]
    assert first["status"] == "firing" and [a["labels"]["node_name"] for a in first["alerts"]] == ["gpu-01"]
    dispatch.dispatch(now=later(now, 60))
    assert len(receiver.requests) == 1  # nothing changed: nothing sent

    NodeSample.objects.all().delete()
    node_sample(hot_node, value=10)
    evaluator.evaluate(now=later(now, 90))
    dispatch.dispatch(now=later(now, 100))
    assert len(receiver.requests) == 1  # the resolution waits for the group interval
    dispatch.dispatch(now=later(now, 330))
    resolved = receiver.wait_for(2)[1]["body"]
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["status"] == "resolved"
    assert AlertGroup.objects.get().next_flush_at is None  # idle until its next alert


def test_a_rule_whose_for_duration_covers_the_group_wait_notifies_as_soon_as_it_fires(hot_node, receiver,
                                                                                        fast_delivery, now):
    make_channel("webhook", receiver.url)
    rule = make_rule(for_seconds=60, group_wait_s=30)
    evaluator.evaluate(now=now)
    evaluator.evaluate(now=later(now, 60))
    assert Alert.objects.get(rule=rule).state == "firing"
    dispatch.dispatch(now=later(now, 60))
    assert len(receiver.wait_for(1)) == 1


def test_alerts_that_start_within_the_group_wait_go_out_together(quiet_builtins, receiver, fast_delivery, now):
    make_channel("webhook", receiver.url)
    node = factories.node(name="gpu-01")
    node_sample(node, value=97)
    fire(now, group_by=["alertname"])
    other = factories.node(name="gpu-02")
    node_sample(other, value=98)
    evaluator.evaluate(now=later(now, 10))
    dispatch.dispatch(now=later(now, 30))
    body = receiver.wait_for(1)[0]["body"]
    assert sorted(a["labels"]["node_name"] for a in body["alerts"]) == ["gpu-01", "gpu-02"]
    assert body["group_labels"] == {"alertname": "CPU hot"}


def test_by_default_each_rule_and_node_is_its_own_group(quiet_builtins, receiver, fast_delivery, now):
    make_channel("webhook", receiver.url)
    for name in ("gpu-01", "gpu-02"):
        node_sample(factories.node(name=name), value=97)
    make_rule(for_seconds=0, group_wait_s=0)
    evaluator.evaluate(now=now)
    dispatch.dispatch(now=now)
    assert len(receiver.wait_for(2)) == 2
    assert {tuple(sorted(b["group_labels"])) for b in bodies(receiver)} == {("alertname", "node")}


def test_a_new_alert_in_a_notified_group_waits_for_the_group_interval(quiet_builtins, receiver, fast_delivery, now):
    make_channel("webhook", receiver.url)
    node_sample(factories.node(name="gpu-01"), value=97)
    fire(now, group_by=["alertname"])
    dispatch.dispatch(now=later(now, 30))
    receiver.wait_for(1)
    node_sample(factories.node(name="gpu-02"), value=97)
    evaluator.evaluate(now=later(now, 45))
    dispatch.dispatch(now=later(now, 100))
    assert len(receiver.requests) == 1
    dispatch.dispatch(now=later(now, 330))
    second = receiver.wait_for(2)[1]["body"]
    assert sorted(a["labels"]["node_name"] for a in second["alerts"]) == ["gpu-01", "gpu-02"]


def test_a_firing_alert_is_repeated_after_the_repeat_interval_until_someone_acknowledges_it(
        hot_node, receiver, fast_delivery, now, make_user):
    make_channel("webhook", receiver.url)
    fire(now, repeat_interval_s=600)
    dispatch.dispatch(now=later(now, 30))
    dispatch.dispatch(now=later(now, 330))
    assert len(receiver.wait_for(1)) == 1
    dispatch.dispatch(now=later(now, 630))
    repeat = receiver.wait_for(2)[1]["body"]
    assert repeat["repeat"] is True and repeat["status"] == "firing"

    services.acknowledge(Alert.objects.get(), user=make_user("operator"), comment="on it")
    for minutes in range(15, 200, 5):
        dispatch.dispatch(now=later(now, minutes * 60))
    assert len(receiver.requests) == 2  # acknowledged: no more repeats

    NodeSample.objects.all().delete()
    evaluator.evaluate(now=later(now, 200 * 60))
    dispatch.dispatch(now=later(now, 206 * 60))
    resolved = receiver.wait_for(3)[2]["body"]
    assert resolved["status"] == "resolved"  # ...but its resolution is still told
    assert resolved["alerts"][0]["acknowledged_by"] == "operator-user"


def test_a_silenced_alert_is_evaluated_and_shown_but_not_sent_and_goes_out_when_the_silence_ends(
        hot_node, receiver, fast_delivery, now, make_user):
    make_channel("webhook", receiver.url)
    silence = Silence.objects.create(matchers=[{"name": "node_name", "op": "=", "value": "gpu-01"}],
                                     starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(minutes=10),
                                     comment="reboot", created_by_name="ops")
    fire(now)
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.suppressed == "silenced" and alert.silenced_by_id == silence.pk
    dispatch.dispatch(now=later(now, 30))
    assert receiver.requests == [] and Notification.objects.count() == 0
    Silence.objects.filter(pk=silence.pk).update(ends_at=later(now, 60))
    evaluator.evaluate(now=later(now, 61))
    assert Alert.objects.get().suppressed == ""
    dispatch.dispatch(now=later(now, 330))
    assert receiver.wait_for(1)[0]["body"]["alerts"][0]["labels"]["node_name"] == "gpu-01"


def test_an_unreachable_nodes_own_alert_goes_out_and_its_accelerators_alerts_do_not(receiver, fast_delivery, now):
    from console.alerting.models import AlertRule
    from nodes.models import Accelerator

    AlertRule.objects.filter(builtin=True).exclude(kind__in=["node_unreachable", "accelerator_health"]).update(
        enabled=False)
    AlertRule.objects.filter(builtin=True).update(for_seconds=0, group_wait_s=0)
    node = factories.node(name="npu-05", status="unreachable")
    Accelerator.objects.filter(pk=factories.accelerators(node, count=1)[0].pk).update(health="critical")
    make_channel("webhook", receiver.url)
    evaluator.evaluate(now=now)
    dispatch.dispatch(now=now)
    sent = [a["rule"] for b in bodies(receiver) for a in b["alerts"]]
    assert sent == ["Node unreachable"]
    assert Alert.objects.get(rule__kind="accelerator_health").suppressed == "inhibited"


def test_channels_receive_only_what_their_severity_and_matchers_ask_for(quiet_builtins, receiver, fast_delivery,
                                                                       now):
    make_channel("webhook", receiver.url + "/all", name="all")
    make_channel("webhook", receiver.url + "/critical", name="critical", min_severity="critical")
    make_channel("webhook", receiver.url + "/npu", name="npu",
                 matchers=[{"name": "node_name", "op": "=~", "value": "npu-.*"}], send_resolved=False)
    make_channel("webhook", receiver.url + "/off", name="off", enabled=False)
    node_sample(factories.node(name="gpu-01"), value=97)
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now)
    assert [r["path"] for r in receiver.wait_for(1)] == ["/hook/all"]


def test_a_receiver_that_answers_500_gets_the_notification_again_with_every_attempt_recorded(
        hot_node, receiver, fast_delivery, now):
    channel = make_channel("webhook", receiver.url)
    receiver.script(500, 503)
    fire(now, group_wait_s=0)
    report = dispatch.dispatch(now=now)
    assert report["retrying"] == 1
    notification = Notification.objects.get()
    assert notification.status == "pending" and notification.attempts == 1
    assert notification.next_attempt_at > now
    dispatch.dispatch(now=now + timedelta(seconds=0.5))  # not due yet
    assert len(receiver.requests) == 1
    dispatch.dispatch(now=later(now, 10))
    dispatch.dispatch(now=later(now, 20))
    notification.refresh_from_db()
    assert notification.status == "delivered" and notification.attempts == 3
    attempts = list(DeliveryAttempt.objects.order_by("number").values_list("ok", "status_code", "permanent"))
    assert attempts == [(False, 500, False), (False, 503, False), (True, 200, False)]
    channel.refresh_from_db()
    assert channel.enabled and channel.consecutive_failures == 0 and channel.last_delivery_at
    assert [r["body"]["group_key"] for r in receiver.requests].count(notification.payload["group_key"]) == 3


def test_a_slow_receiver_times_out_is_retried_and_the_dispatcher_is_never_stuck(hot_node, receiver, fast_delivery,
                                                                              now):
    make_channel("webhook", receiver.url)
    receiver.script((200, "late", 2.5))
    fire(now, group_wait_s=0)
    import time

    started = time.monotonic()
    dispatch.dispatch(now=now)
    assert time.monotonic() - started < 2.5  # one second per attempt, not the receiver's pace
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.ok and "no answer within 1 s" in attempt.error
    dispatch.dispatch(now=later(now, 30))
    assert Notification.objects.get().status == "delivered"


def test_a_permanent_error_disables_the_channel_holds_its_notifications_and_enabling_it_sends_them(
        hot_node, receiver, fast_delivery, now):
    channel = make_channel("webhook", receiver.url)
    receiver.script((404, "no such hook", 0))
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now)
    channel.refresh_from_db()
    assert not channel.enabled and channel.auto_disabled and "HTTP 404" in channel.disabled_reason
    assert Event.objects.filter(verb="disable", object_type="notificationchannel").exists()
    held = Notification.objects.get()
    assert held.status == "pending" and held.attempts == 1
    node_sample(factories.node(name="gpu-02"), value=99)
    evaluator.evaluate(now=later(now, 15))
    dispatch.dispatch(now=later(now, 15))
    assert Notification.objects.filter(status="pending").count() == 2  # still queued for the channel
    assert len(receiver.requests) == 1

    services.enable_channel(channel)
    dispatch.dispatch(now=later(now, 16))
    assert Notification.objects.filter(status="delivered").count() == 2
    assert len(receiver.wait_for(3)) == 3


def test_a_notification_left_in_sending_by_a_dead_worker_is_sent_again(hot_node, receiver, fast_delivery, now):
    make_channel("webhook", receiver.url)
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now, deliver=False)
    Notification.objects.update(status="sending", claimed_until=later(now, 5))
    dispatch.dispatch(now=later(now, 1))
    assert Notification.objects.get().status == "sending"  # still claimed
    dispatch.dispatch(now=later(now, 6))
    assert Notification.objects.get().status == "delivered"
    assert len(receiver.wait_for(1)) == 1


def test_a_notification_undeliverable_for_the_maximum_age_fails_visibly(hot_node, fast_delivery, now, settings):
    settings.CONSOLE_NOTIFY_MAX_AGE_S = 60
    make_channel("webhook", "http://127.0.0.1:9/nothing")
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now)
    dispatch.dispatch(now=later(now, 61))
    notification = Notification.objects.get()
    assert notification.status == "failed" and "gave up" in notification.last_error


def test_two_dispatchers_flushing_the_same_group_send_it_once(hot_node, receiver, fast_delivery, now):
    make_channel("webhook", receiver.url)
    fire(now, group_wait_s=0)
    dispatch.process_transitions(now)
    stale = AlertGroup.objects.get()
    channels = list(dispatch.receiving_channels())
    assert dispatch._flush(AlertGroup.objects.get(), channels, now) == 1
    assert dispatch._flush(stale, channels, now) == 0  # the other worker's conditional update wins
    assert Notification.objects.count() == 1


def test_email_is_delivered_to_a_real_smtp_server(hot_node, smtp_server, fast_delivery, now):
    make_channel("email", url="", address="oncall@example.com, lead@example.com")
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now)
    assert Notification.objects.get().status == "delivered"
    assert len(smtp_server.messages) == 1
    envelope = smtp_server.messages[0]
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    text = envelope.content.decode()
    assert "Subject: [FIRING:1] CPU hot (gpu-01)" in text
    assert "http://console.example:8000/alerts/" in text


def test_an_email_address_the_server_refuses_disables_the_channel(hot_node, smtp_server, fast_delivery, now):
    channel = make_channel("email", url="", address="nobody@example.com")
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now)
    channel.refresh_from_db()
    assert channel.auto_disabled and "refused" in channel.disabled_reason
    attempt = DeliveryAttempt.objects.get()
    assert attempt.permanent and not attempt.ok


def test_an_unreachable_smtp_server_is_retried(hot_node, fast_delivery, now, settings):
    from tests.alerting.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    make_channel("email", url="", address="oncall@example.com")
    fire(now, group_wait_s=0)
    dispatch.dispatch(now=now)
    notification = Notification.objects.get()
    assert notification.status == "pending" and notification.attempts == 1
    assert NotificationChannel.objects.get().enabled
