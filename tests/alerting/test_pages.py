"""The alerting pages: alerts (tabs, filters, acknowledge, silence from an alert), rules, silences,
channels; the live alert count in the header of every page; pinned query counts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.alerting import evaluator
from console.alerting.models import Alert, AlertRule, NotificationChannel, Silence
from tests import factories
from tests.alerting.conftest import make_channel, make_rule, node_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(make_user):
    users = {}

    def login(role):
        if role not in users:
            users[role] = make_user(role)
        client = Client()
        client.force_login(users[role])
        return client

    return login


@pytest.fixture
def alerts(quiet_builtins):
    for name in ("gpu-01", "gpu-02"):
        node_sample(factories.node(name=name), value=99)
    make_rule(for_seconds=0, summary_template="{{ labels.node_name }} is hot")
    evaluator.evaluate()
    return list(Alert.objects.order_by("pk"))


def test_every_page_has_the_alerts_link_and_the_live_count_placeholder(browser):
    page = browser("viewer").get("/nodes/").content.decode()
    assert 'href="/alerts/"' in page
    assert 'id="alert-count"' in page and 'data-summary-url="/api/v1/alerts/summary/"' in page
    assert "js/alerts_header.js" in page


def test_the_alerts_page_lists_firing_alerts_with_their_labels_and_actions(browser, alerts):
    page = browser("operator").get("/alerts/").content.decode()
    assert "gpu-01 is hot" in page and "gpu-02 is hot" in page
    assert "node_name=gpu-01" in page
    assert f"/alerts/{alerts[0].pk}/ack/" in page and f"/alerts/silences/?alert={alerts[0].pk}" in page
    assert "Firing (2)" in page


def test_a_viewer_sees_alerts_but_no_actions(browser, alerts):
    page = browser("viewer").get("/alerts/").content.decode()
    assert "gpu-01 is hot" in page and "/ack/" not in page


def test_the_tabs_and_filters_narrow_the_list(browser, alerts):
    client = browser("viewer")
    assert "gpu-01 is hot" not in client.get("/alerts/?state=resolved").content.decode()
    page = client.get("/alerts/?state=all&node_name=gpu-02").content.decode()
    assert "gpu-02 is hot" in page and "gpu-01 is hot" not in page
    assert "gpu-01 is hot" not in client.get("/alerts/?severity=critical").content.decode()
    assert client.get("/alerts/?state=nonsense&rule=abc&page=999").status_code == 200


def test_acknowledging_from_the_page_records_who(browser, alerts):
    client = browser("operator")
    response = client.post(f"/alerts/{alerts[0].pk}/ack/", {"comment": "looking", "next": "/alerts/"})
    assert response.status_code == 302 and response["Location"] == "/alerts/"
    alerts[0].refresh_from_db()
    assert alerts[0].acknowledged_by_name == "operator-user" and alerts[0].ack_comment == "looking"
    response = client.post(f"/alerts/{alerts[1].pk}/ack/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/alerts/{alerts[1].pk}/"  # no open redirect
    assert browser("viewer").post(f"/alerts/{alerts[1].pk}/ack/").status_code == 403


def test_silencing_from_an_alert_prefills_its_labels_and_creates_the_silence(browser, alerts):
    client = browser("operator")
    page = client.get(f"/alerts/silences/?alert={alerts[0].pk}").content.decode()
    assert 'node_name=&quot;gpu-01&quot;' in page and "alertname=&quot;CPU hot&quot;" in page
    response = client.post("/alerts/silences/", {
        "matchers": 'alertname="CPU hot"\nnode_name="gpu-01"', "duration": "7200", "comment": "fan swap"})
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert silence.created_by_name == "operator-user"
    assert silence.ends_at - silence.starts_at == timedelta(hours=2)


def test_a_silence_form_with_a_bad_regex_shows_the_error(browser):
    page = browser("operator").post("/alerts/silences/", {
        "matchers": 'node_name=~"("', "duration": "3600", "comment": "x"}).content.decode()
    assert "not a valid regular expression" in page and not Silence.objects.exists()


def test_the_alert_page_shows_transitions_and_the_groups_notifications(browser, alerts):
    page = browser("viewer").get(f"/alerts/{alerts[0].pk}/").content.decode()
    assert "gpu-01 is hot" in page and alerts[0].fingerprint in page and "condition true" in page


def test_the_rules_page_lists_built_in_and_own_rules_and_admins_edit_them(browser, alerts):
    page = browser("admin").get("/alerts/rules/").content.decode()
    assert "Node unreachable" in page and "built-in" in page and "CPU hot" in page
    assert "node.cpu_percent &gt; 90" in page
    client = browser("admin")
    response = client.post("/alerts/rules/add/", {
        "name": "Load high", "kind": "threshold", "series": "node.load1", "comparator": ">", "threshold": "64",
        "for_seconds": "120", "severity": "warning", "matchers": 'node_name=~"gpu-.*"', "group_by": "alertname, node",
        "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = AlertRule.objects.get(name="Load high")
    assert rule.matchers == [{"name": "node_name", "op": "=~", "value": "gpu-.*"}]
    page = client.post("/alerts/rules/add/", {
        "name": "Broken", "kind": "threshold", "series": "node.load1", "comparator": ">", "threshold": "1",
        "for_seconds": "0", "severity": "warning", "summary_template": "{{ nope }}"}).content.decode()
    assert "unknown variable" in page
    assert browser("operator").get("/alerts/rules/add/").status_code == 403


def test_a_built_in_rule_cannot_be_deleted_from_the_page(browser):
    rule = AlertRule.objects.get(kind="node_unreachable")
    client = browser("admin")
    client.post(f"/alerts/rules/{rule.pk}/delete/")
    assert AlertRule.objects.filter(pk=rule.pk).exists()
    client.post(f"/alerts/rules/{rule.pk}/toggle/")
    rule.refresh_from_db()
    assert rule.enabled is False


def test_the_channels_page_shows_a_channel_disabled_after_a_permanent_error(browser):
    make_channel("slack", "https://hooks.slack.com/services/T/B/X", name="team-slack", enabled=False,
                 disabled_reason="the receiver answered HTTP 404", disabled_at=timezone.now())
    page = browser("viewer").get("/alerts/channels/").content.decode()
    assert "team-slack" in page and "disabled after a permanent error" in page and "HTTP 404" in page
    channel = NotificationChannel.objects.get()
    detail = browser("viewer").get(f"/alerts/channels/{channel.pk}/").content.decode()
    assert "hooks.slack.com/services/T/B/X" not in detail  # the webhook URL is a credential


def test_an_admin_adds_a_channel_and_a_bad_url_is_refused(browser):
    client = browser("admin")
    page = client.post("/alerts/channels/add/", {"name": "x", "kind": "webhook", "url": "ftp://x", "min_severity":
                                                 "info", "max_alerts": "0", "enabled": "on"}).content.decode()
    assert "http:// or https://" in page and not NotificationChannel.objects.exists()
    response = client.post("/alerts/channels/add/", {"name": "wecom", "kind": "wecom", "url":
                                                     "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                                                     "min_severity": "warning", "max_alerts": "0", "enabled": "on",
                                                     "send_resolved": "on"})
    assert response.status_code == 302
    assert NotificationChannel.objects.get().min_severity == "warning"


def test_the_test_button_reports_the_result(browser, receiver, fast_delivery):
    channel = make_channel("webhook", receiver.url)
    response = browser("operator").post(f"/alerts/channels/{channel.pk}/test/", follow=True)
    assert "Test notification delivered" in response.content.decode()
    assert receiver.wait_for(1)


def test_the_alerts_page_costs_the_same_queries_for_2_and_20_alerts(browser, quiet_builtins):
    client = browser("viewer")
    make_rule(for_seconds=0)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/alerts/?state=all").status_code == 200
        return len(ctx)

    for _ in range(2):
        node_sample(factories.node(), value=99)
    evaluator.evaluate()
    few = count()
    for _ in range(18):
        node_sample(factories.node(), value=99)
    evaluator.evaluate()
    assert Alert.objects.count() == 20
    assert count() == few


def test_the_rules_and_channels_pages_cost_the_same_queries_for_few_and_many(browser):
    client = browser("admin")

    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    make_channel("webhook", "https://x.example/0")
    few = count("/alerts/rules/"), count("/alerts/channels/"), count("/alerts/silences/")
    for i in range(10):
        make_rule(name=f"r{i}")
        make_channel("webhook", f"https://x.example/{i + 1}")
        Silence.objects.create(matchers=[{"name": "node", "op": "=", "value": str(i)}], comment="c",
                               ends_at=timezone.now() + timedelta(hours=1))
    assert (count("/alerts/rules/"), count("/alerts/channels/"), count("/alerts/silences/")) == few
