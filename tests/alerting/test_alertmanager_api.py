"""The alertmanager-api channel: the console posts its alerts into Alertmanagers operators run.

The real parts start Debian's Alertmanager (tests/alertmanager.py) whose only receiver is a webhook on
loopback (the Receiver of tests/alerting/conftest.py): an alert that fires in the console shows in
Alertmanager's GET /api/v2/alerts with its labels, reaches the webhook through Alertmanager's own routing,
is muted by a silence made in Alertmanager, and resolves there when it resolves here; with a pair of which
one is stopped, the other gets every alert and the attempts say which member failed. The rest checks the
API, credentials and the re-send against the plain Receiver.

Alertmanager works on the wall clock, so the real parts pass real times; waits are bounded polls.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from console.alerting import dispatch, evaluator, services
from console.alerting.models import Alert, DeliveryAttempt, Notification, NotificationChannel
from nodes.models import NodeSample
from tests import factories
from tests.alerting.conftest import later, make_channel, make_rule, node_sample
from tests.alertmanager import Alertmanager, alertmanager_pair, require_alertmanager

pytestmark = pytest.mark.django_db

CONSOLE = "boom-test-console"


def wait_until(check, timeout: float = 60.0, what: str = "condition", interval: float = 0.25):
    """Poll ``check`` until it returns something truthy (returned) or the time is up (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def am_settings(settings, fast_delivery):
    settings.CONSOLE_NAME = CONSOLE
    settings.CONSOLE_NOTIFY_TIMEOUT_S = 5
    return settings


def am_channel(urls, **fields) -> NotificationChannel:
    return make_channel("alertmanager-api", "", urls=list(urls), **fields)


def fire_now(name="CPU hot", node_names=("gpu-01",), **rule_fields):
    """Hot nodes and a rule that fires for them at once (real time: Alertmanager reads the wall clock)."""
    nodes = []
    for node_name in node_names:
        node = factories.node(name=node_name)
        node_sample(node, value=97)
        nodes.append(node)
    values = {"name": name, "for_seconds": 0, "group_wait_s": 0, "group_interval_s": 1, "repeat_interval_s": 3600,
              "runbook_url": "https://runbooks.example/cpu"}
    values.update(rule_fields)
    rule = make_rule(**values)
    evaluator.evaluate(now=timezone.now())
    return rule, nodes


def dispatch_until(check, timeout: float = 60.0, what: str = "delivery"):
    """Run the dispatcher (real time) until ``check()`` holds."""
    def step():
        dispatch.dispatch(now=timezone.now())
        return check()
    return wait_until(step, timeout=timeout, what=what, interval=0.5)


def am_alert(am: Alertmanager, alertname: str, **labels):
    for alert in am.alerts():
        got = alert["labels"]
        if got.get("alertname") == alertname and all(got.get(k) == v for k, v in labels.items()):
            return alert
    return None


def webhook_alerts(receiver, alertname: str, status: str | None = None) -> list[dict]:
    out = []
    for request in list(receiver.requests):
        body = request["body"] or {}
        for alert in body.get("alerts", []):
            if alert["labels"].get("alertname") == alertname and (status is None or alert["status"] == status):
                out.append(alert)
    return out


# ------------------------------------------------------------------------------------------- real parts


def test_an_alert_fires_in_alertmanager_is_routed_to_its_receiver_re_sent_and_resolved(
        quiet_builtins, receiver, am_settings):
    require_alertmanager()
    with Alertmanager(receiver.url) as am:
        channel = am_channel([am.url])
        rule, _ = fire_now()
        alert = Alert.objects.get(rule=rule)
        assert alert.state == "firing"
        report = dispatch.dispatch(now=timezone.now())
        assert report["delivered"] == 1

        seen = wait_until(lambda: am_alert(am, "CPU hot", console=CONSOLE), what="the alert in Alertmanager")
        labels = seen["labels"]
        assert labels["severity"] == "warning" and labels["node_name"] == "gpu-01"
        assert labels["node"] == str(alert.labels["node"]) and labels["console"] == CONSOLE
        assert seen["annotations"]["runbook_url"] == "https://runbooks.example/cpu"
        assert seen["generatorURL"] == f"http://console.example:8000/alerts/{alert.pk}/"
        assert seen["status"]["state"] == "active"
        first_end = parse(seen["endsAt"])
        assert timedelta(minutes=3) < first_end - datetime.now(UTC) <= timedelta(minutes=4, seconds=5)

        # Alertmanager's own routing takes it to its webhook receiver (group_wait 1 s).
        receiver.wait_for(1, timeout=60)
        routed = wait_until(lambda: webhook_alerts(receiver, "CPU hot", "firing"), what="the routed alert")
        assert routed[0]["labels"]["console"] == CONSOLE

        # Re-sent while it fires: the next turn (a minute later on the dispatcher's clock) pushes endsAt on.
        turn = timezone.now() + timedelta(seconds=61)
        assert dispatch.resend_due(turn) == 1
        assert dispatch.deliver_due(turn).delivered == 1
        assert Notification.objects.filter(channel=channel, kind="resend", status="delivered").count() == 1
        wait_until(lambda: parse(am_alert(am, "CPU hot")["endsAt"]) > first_end, what="a later endsAt")

        # Resolved in the console: resolved in Alertmanager, and its receiver hears so.
        NodeSample.objects.all().delete()
        node_sample(_node("gpu-01"), value=10)
        evaluator.evaluate(now=timezone.now())
        assert Alert.objects.get(pk=alert.pk).state == "resolved"
        dispatch_until(lambda: Notification.objects.filter(channel=channel, kind="alerts",
                                                           status="delivered").count() == 2,
                       what="the resolution delivered")
        wait_until(lambda: am_alert(am, "CPU hot") is None, what="the alert resolved in Alertmanager")
        wait_until(lambda: webhook_alerts(receiver, "CPU hot", "resolved"), what="the routed resolution")
        assert not DeliveryAttempt.objects.filter(channel=channel, ok=False).exists()


def _node(name):
    from nodes.models import Node

    return Node.objects.get(name=name)


def test_a_silence_made_in_alertmanager_mutes_the_consoles_alert(quiet_builtins, receiver, am_settings):
    require_alertmanager()
    with Alertmanager(receiver.url) as am:
        am_channel([am.url])
        silence_id = am.silence({"alertname": "Disk hot", "console": CONSOLE})
        fire_now("Disk hot", node_names=("gpu-07",))
        fire_now("CPU hot", node_names=())  # the same hot node, a second rule
        dispatch_until(lambda: Notification.objects.filter(status="delivered").count() == 2, what="both delivered")

        muted = wait_until(lambda: (a := am_alert(am, "Disk hot")) and a["status"]["state"] == "suppressed" and a,
                           what="the silenced alert")
        assert muted["status"]["silencedBy"] == [silence_id] and muted["labels"]["node_name"] == "gpu-07"
        assert len([a for a in am.alerts() if a["labels"]["console"] == CONSOLE]) == 2
        # The other alert of the same moment is routed; by then the silenced one would have been too.
        wait_until(lambda: webhook_alerts(receiver, "CPU hot", "firing"), what="the unsilenced alert routed")
        assert am_alert(am, "CPU hot")["status"]["state"] == "active"
        assert webhook_alerts(receiver, "Disk hot") == []


def test_with_one_of_a_pair_stopped_the_other_gets_every_alert_and_the_attempts_say_so(
        quiet_builtins, receiver, am_settings):
    require_alertmanager()
    pair = alertmanager_pair(receiver.url)
    try:
        up, down = pair
        channel = am_channel([down.url, up.url])
        down.stop()
        fire_now("CPU hot", node_names=("gpu-01", "gpu-02", "gpu-03"), group_by=["alertname", "node"])
        dispatch_until(lambda: Notification.objects.filter(channel=channel, status="delivered").count() == 3,
                       what="three notifications delivered")
        attempts = list(DeliveryAttempt.objects.filter(channel=channel))
        assert len(attempts) == 3 and all(a.ok for a in attempts)
        down_name = down.url.removeprefix("http://")
        assert all(a.error.startswith("1 of 2 Alertmanagers failed") and down_name in a.error for a in attempts)
        assert all(f"{up.url.removeprefix('http://')}: accepted (HTTP 200)" in a.response for a in attempts)
        # The stopped member answered at once (connection refused): it held nothing up.
        assert all(a.duration_ms < 5000 for a in attempts)
        names = wait_until(lambda: (found := {a["labels"]["node_name"] for a in up.alerts()
                                              if a["labels"].get("alertname") == "CPU hot"}) == {
            "gpu-01", "gpu-02", "gpu-03"} and found, what="every alert in the running member")
        assert len(names) == 3
        wait_until(lambda: {a["labels"]["node_name"] for a in webhook_alerts(receiver, "CPU hot", "firing")} == {
            "gpu-01", "gpu-02", "gpu-03"}, what="every alert routed by the running member")
        channel.refresh_from_db()
        assert channel.enabled and channel.consecutive_failures == 0
    finally:
        for member in pair:
            member.close()


def test_the_channel_test_posts_a_short_lived_alert_and_returns_what_alertmanager_answered(
        quiet_builtins, receiver, am_settings, operator_api):
    require_alertmanager()
    with Alertmanager(receiver.url) as am:
        channel = am_channel([am.url])
        response = operator_api.post(f"/api/v1/notification-channels/{channel.pk}/test/")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["delivered"] is True
        assert [a["status_code"] for a in body["answers"]] == [200]
        assert body["answers"][0]["member"] == am.url.removeprefix("http://")
        test_alert = wait_until(lambda: am_alert(am, "BooM Console test notification"), what="the test alert")
        assert test_alert["labels"]["console"] == CONSOLE
        assert parse(test_alert["endsAt"]) - datetime.now(UTC) < timedelta(minutes=5)
        # Not stored: the attempt keeps the status code, not the answer.
        attempt = DeliveryAttempt.objects.get(channel=channel)
        assert attempt.ok and attempt.status_code == 200


# ------------------------------------------------------------------------------ against the plain receiver


def test_basic_auth_and_bearer_token_go_in_the_authorization_header(quiet_builtins, receiver, am_settings):
    basic = am_channel([receiver.url], name="basic", auth_username="boom", secret="s3cret")
    bearer = am_channel([receiver.url + "/"], name="bearer", secret="tok-123")
    for channel in (basic, bearer):
        assert services.send_test(channel).ok
    requests = receiver.wait_for(2)
    assert [r["path"] for r in requests] == ["/hook/api/v2/alerts", "/hook/api/v2/alerts"]
    assert requests[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"boom:s3cret").decode()
    assert requests[1]["headers"]["Authorization"] == "Bearer tok-123"
    posted = requests[0]["body"]
    assert isinstance(posted, list) and posted[0]["labels"]["console"] == CONSOLE
    assert set(posted[0]) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def test_all_members_refusing_permanently_disables_the_channel_and_a_mix_retries(quiet_builtins, receiver,
                                                                                  am_settings, now):
    permanent = am_channel([receiver.url, receiver.url + "/b"], name="permanent")
    receiver.script(401, 403)
    outcome = dispatch.send_now(permanent, services.test_message(permanent, actor="t"))
    assert not outcome.ok and outcome.permanent and "no Alertmanager accepted" in outcome.error
    receiver.script(401, 503)
    outcome = dispatch.send_now(permanent, services.test_message(permanent, actor="t"))
    assert not outcome.ok and not outcome.permanent


def test_the_re_send_is_claimed_once_per_interval_and_leaves_out_suppressed_alerts(quiet_builtins, receiver,
                                                                                  am_settings, now):
    channel = am_channel([receiver.url])
    make_channel("webhook", receiver.url + "/other")
    hot = factories.node(name="gpu-01")
    node_sample(hot, value=97)
    cool = factories.node(name="gpu-02")
    node_sample(cool, value=98)
    make_rule(for_seconds=0, group_wait_s=0)
    evaluator.evaluate(now=now)
    dispatch.dispatch(now=now, deliver=False)
    Alert.objects.filter(labels__node_name="gpu-02").update(suppressed="silenced")
    assert NotificationChannel.objects.get(pk=channel.pk).next_resend_at == later(now, 60)  # the clock started
    assert dispatch.resend_due(later(now, 61)) == 1
    assert dispatch.resend_due(later(now, 61)) == 0  # the turn is taken
    assert dispatch.resend_due(later(now, 90)) == 0  # not yet the next one
    resend = Notification.objects.get(kind="resend")
    assert resend.channel == channel and [a["labels"]["node_name"] for a in resend.payload["alerts"]] == ["gpu-01"]
    # The next turn supersedes an undelivered re-send rather than piling them up.
    assert dispatch.resend_due(later(now, 122)) == 1
    resend.refresh_from_db()
    assert resend.status == "failed" and "superseded" in resend.last_error
    assert Notification.objects.filter(kind="resend", status="pending").count() == 1


def test_the_api_validates_urls_and_credentials_and_masks_urls_for_viewers(db, admin_api, viewer_api, settings):
    url = "/api/v1/notification-channels/"
    ok = admin_api.post(url, {"name": "am", "kind": "alertmanager-api", "urls": [
        "http://am-1.example:9093/", "http://am-2.example:9093/api/v2/alerts"], "auth_username": "boom",
        "password": "am-password-7Fq2", "timeout_s": 3}, format="json")
    assert ok.status_code == 201, ok.content
    data = ok.json()
    assert data["urls"] == ["http://am-1.example:9093", "http://am-2.example:9093"]
    assert data["auth"] == "basic" and data["has_secret"] and "password" not in data and data["timeout_s"] == 3
    channel = NotificationChannel.objects.get(name="am")
    # A password long enough that random ciphertext cannot contain it by chance ("pw" did, now and then).
    assert channel.secret() == "am-password-7Fq2" and "am-password-7Fq2" not in channel.encrypted_secret
    shown = viewer_api.get(f"{url}{channel.pk}/").json()
    assert shown["urls"] == ["http://am-1.example:9093/…", "http://am-2.example:9093/…"]

    switched = admin_api.patch(f"{url}{channel.pk}/", {"bearer_token": "tok"}, format="json")
    assert switched.status_code == 200 and switched.json()["auth"] == "bearer"
    channel.refresh_from_db()
    assert channel.auth_username == "" and channel.secret() == "tok"

    for body, field in [
        ({"urls": []}, "urls"),
        ({"urls": ["ftp://am:9093"]}, "urls"),
        ({"urls": ["http://user:pw@am:9093"]}, "urls"),
        ({"urls": ["http://169.254.169.254:9093"]}, "urls"),
        ({"urls": ["http://am:9093"], "password": "pw"}, "auth_username"),
        ({"urls": ["http://am:9093"], "auth_username": "u", "password": "p", "bearer_token": "t"}, "bearer_token"),
        ({"urls": ["http://am:9093"], "url": "http://am:9093"}, "url"),
        ({"urls": ["http://am:9093"], "timeout_s": 0}, "timeout_s"),
    ]:
        response = admin_api.post(url, {"name": "bad", "kind": "alertmanager-api", **body}, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    other = admin_api.post(url, {"name": "hook", "kind": "webhook", "url": "http://hook.example/x",
                                 "urls": ["http://am:9093"]}, format="json")
    assert other.status_code == 400 and "urls" in other.json()
