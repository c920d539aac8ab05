"""The alert page follows its alert and its group's notifications without a reload: queueing and every
delivery step of a notification tell the pages on the ``alerts`` topic (kind ``notification``), and the
alert page's live region re-reads on those as on the alert summary."""

import re

import pytest
from django.test import Client

from console.alerting import dispatch, evaluator
from console.alerting.models import Alert, Notification
from console.core.models import StreamEntry
from tests import factories
from tests.alerting.conftest import later, make_channel, make_rule, node_sample

pytestmark = pytest.mark.django_db


def notification_notices() -> int:
    return sum(1 for e in StreamEntry.objects.filter(topic="alerts")
               if "notification" in e.payload.get("state", {}).get("changed", {}))


def test_queueing_and_delivering_a_notification_tell_the_alert_pages(quiet_builtins, receiver, fast_delivery, now,
                                                                       make_user):
    node_sample(factories.node(name="gpu-01"), value=97)
    make_rule(for_seconds=0, group_wait_s=0, summary_template="{{ labels.node_name }} is hot")
    make_channel("webhook", receiver.url)
    evaluator.evaluate(now=now)
    alert = Alert.objects.get()
    client = Client()
    client.force_login(make_user("viewer"))
    page = client.get(f"/alerts/{alert.pk}/").content.decode()
    assert re.search(r'id="alert-body" data-live-region data-live-on="summary notification"', page)
    assert "Nothing sent yet." in page

    dispatch.dispatch(now=later(now, 1), deliver=False)
    queued = notification_notices()
    assert queued == 1, "queueing the group's notification told no page"
    regions = client.get(f"/alerts/{alert.pk}/", headers={"X-Live-Regions": "1"}).content.decode()
    assert "notif-pending" in regions

    report = dispatch.dispatch(now=later(now, 2))
    assert report["delivered"] == 1
    receiver.wait_for(1)
    assert Notification.objects.get().status == "delivered"
    assert notification_notices() >= queued + 2, "claiming and delivering told no page"
    regions = client.get(f"/alerts/{alert.pk}/", headers={"X-Live-Regions": "1"}).content.decode()
    assert "notif-delivered" in regions and "Nothing sent yet." not in regions


def test_a_test_message_to_a_channel_tells_no_alert_page(receiver, fast_delivery, make_user):
    from console.alerting import services

    channel = make_channel("webhook", receiver.url)
    before = notification_notices()
    attempt = services.send_test(channel)
    assert attempt.ok and receiver.wait_for(1)
    assert notification_notices() == before
