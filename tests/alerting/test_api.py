"""The alerting REST contract of shared/API.md: alert-rules/, alerts/, silences/, notification-channels/,
roles, bad input (always a 400 with field messages), conflicts (409), and pinned query counts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.alerting import evaluator
from console.alerting.models import Alert, AlertRule, NotificationChannel, Silence
from console.core.models import Event
from tests import factories
from tests.alerting.conftest import make_channel, make_rule, node_sample

pytestmark = pytest.mark.django_db

RULE = {"name": "HBM almost full", "series": "accelerator.memory_percent", "comparator": ">", "threshold": 95,
        "for_seconds": 120, "severity": "critical", "matchers": [{"name": "vendor", "op": "=", "value": "huawei"}]}


# ------------------------------------------------------------------------------------------- rules


def test_an_admin_creates_a_rule_with_the_contract_fields(admin_api):
    response = admin_api.post("/api/v1/alert-rules/", RULE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["builtin"] is False and body["kind"] == "threshold" and body["enabled"] is True
    assert body["matchers"] == [{"name": "vendor", "op": "=", "value": "huawei"}]
    assert body["group_by"] == ["alertname", "node"] and body["unit"] == "%"
    assert Event.objects.filter(verb="create", object_type="alertrule").exists()


def test_matchers_may_be_written_as_strings_or_in_alertmanagers_form(admin_api):
    body = dict(RULE, matchers=['node_name=~"npu-0[1-4]"', {"name": "vendor", "value": "huawei", "isRegex": False,
                                                              "isEqual": False}])
    response = admin_api.post("/api/v1/alert-rules/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["matchers"] == [{"name": "node_name", "op": "=~", "value": "npu-0[1-4]"},
                                           {"name": "vendor", "op": "!=", "value": "huawei"}]


def test_a_relative_rule_takes_the_hour_median_by_default(admin_api):
    response = admin_api.post("/api/v1/alert-rules/", {
        "name": "Throughput down", "kind": "relative", "series": "job.output_tokens_per_s", "comparator": "<",
        "threshold": -50, "for_seconds": 300, "severity": "warning"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["window_seconds"] == 3600 and response.json()["unit"] == "%"


@pytest.mark.parametrize("change, field, words", [
    ({"series": "node.nonsense"}, "series", "Unknown series"),
    ({"series": ""}, "series", "required"),
    ({"comparator": "=>"}, "comparator", ""),
    ({"threshold": "hot"}, "threshold", ""),
    ({"severity": "disaster"}, "severity", ""),
    ({"for_seconds": -5}, "for_seconds", ""),
    ({"matchers": [{"name": "node_name", "op": "=~", "value": "gpu-(["}]}, "matchers", "not a valid regular"),
    ({"matchers": [{"name": "job_name", "op": "=", "value": "x"}]}, "matchers", "no label 'job_name'"),
    ({"matchers": [{"name": "9bad", "value": "x"}]}, "matchers", "not a label name"),
    ({"matchers": [{"name": "vendor", "op": "~=", "value": "x"}]}, "matchers", "operator"),
    ({"matchers": "vendor"}, "matchers", "not name=value"),
    ({"summary_template": "{{ labels.node_name } is hot"}, "summary_template", "unclosed"),
    ({"summary_template": "{{ value }} }}"}, "summary_template", "without an opening"),
    ({"summary_template": "{{ labels.job_name }}"}, "summary_template", "no label 'job_name'"),
    ({"description_template": "{{ os.system }}"}, "description_template", "unknown variable"),
    ({"kind": "node_unreachable"}, "kind", "Only threshold, relative"),
    ({"kind": "relative", "window_seconds": 120}, "window_seconds", "at least 300"),
    ({"group_by": ["node", "not-a-label"]}, "group_by", "not a label name"),
    ({"runbook_url": "javascript:alert(1)"}, "runbook_url", "http"),
    ({"name": ""}, "name", ""),
])
def test_bad_rule_input_is_a_400_naming_the_field(admin_api, change, field, words):
    response = admin_api.post("/api/v1/alert-rules/", dict(RULE, **change), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert words in " ".join(str(m) for m in response.json()[field])
    assert not AlertRule.objects.filter(builtin=False).exists()


def test_built_in_rules_are_listed_can_be_disabled_and_tuned_but_not_deleted(admin_api):
    listed = admin_api.get("/api/v1/alert-rules/?builtin=true").json()
    assert listed["count"] == 7 and all(r["builtin"] for r in listed["results"])
    disk = AlertRule.objects.get(kind="disk_nearly_full")
    response = admin_api.patch(f"/api/v1/alert-rules/{disk.pk}/", {"enabled": False, "threshold": 85}, format="json")
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert admin_api.patch(f"/api/v1/alert-rules/{disk.pk}/", {"kind": "threshold"}, format="json").status_code == 400
    response = admin_api.delete(f"/api/v1/alert-rules/{disk.pk}/")
    assert response.status_code == 409 and "disable" in response.json()["detail"]
    assert AlertRule.objects.filter(pk=disk.pk).exists()


def test_deleting_a_rule_resolves_its_alerts_and_keeps_them(admin_api, quiet_builtins):
    node_sample(factories.node(), value=99)
    rule = make_rule(for_seconds=0)
    evaluator.evaluate()
    assert admin_api.delete(f"/api/v1/alert-rules/{rule.pk}/").status_code == 204
    alert = Alert.objects.get()
    assert alert.state == "resolved" and alert.rule is None and alert.rule_name == "CPU hot"


def test_disabling_a_rule_through_the_api_resolves_its_alerts_at_once(admin_api, quiet_builtins):
    node_sample(factories.node(), value=99)
    rule = make_rule(for_seconds=0)
    evaluator.evaluate()
    admin_api.patch(f"/api/v1/alert-rules/{rule.pk}/", {"enabled": False}, format="json")
    assert Alert.objects.get().state == "resolved"


def test_operators_and_viewers_may_not_manage_rules(operator_api, viewer_api, client):
    assert viewer_api.get("/api/v1/alert-rules/").status_code == 200
    assert operator_api.post("/api/v1/alert-rules/", RULE, format="json").status_code == 403
    assert client.get("/api/v1/alert-rules/").status_code == 401


def test_the_rule_list_costs_the_same_queries_for_5_and_50_rules(admin_api):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_api.get("/api/v1/alert-rules/?limit=100").status_code == 200
        return len(ctx)

    for i in range(5):
        make_rule(name=f"r{i}")
    few = count()
    for i in range(5, 50):
        make_rule(name=f"r{i}")
    assert count() == few <= 4


# ------------------------------------------------------------------------------------------ alerts


@pytest.fixture
def firing(quiet_builtins):
    node = factories.node(name="gpu-01")
    node_sample(node, value=99)
    make_rule(for_seconds=0)
    evaluator.evaluate()
    return Alert.objects.get()


def test_alerts_carry_the_contract_fields(viewer_api, firing):
    body = viewer_api.get("/api/v1/alerts/").json()["results"][0]
    for field in ("id", "rule", "state", "severity", "labels", "summary", "started_at", "ended_at",
                  "acknowledged_by"):
        assert field in body
    assert body["state"] == "firing" and body["acknowledged_by"] is None and body["ended_at"] is None
    assert body["labels"]["node_name"] == "gpu-01"


def test_an_operator_acknowledges_an_alert_and_a_viewer_may_not(operator_api, viewer_api, firing):
    assert viewer_api.post(f"/api/v1/alerts/{firing.pk}/ack/").status_code == 403
    response = operator_api.post(f"/api/v1/alerts/{firing.pk}/ack/", {"comment": "rebooting"}, format="json")
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "operator-user" and response.json()["ack_comment"] == "rebooting"
    assert Event.objects.filter(verb="acknowledge", object_id=str(firing.pk)).exists()
    response = operator_api.post(f"/api/v1/alerts/{firing.pk}/unack/")
    assert response.json()["acknowledged_by"] is None


def test_acknowledging_a_resolved_alert_is_a_409(operator_api, firing):
    Alert.objects.filter(pk=firing.pk).update(state="resolved", ended_at=timezone.now())
    response = operator_api.post(f"/api/v1/alerts/{firing.pk}/ack/")
    assert response.status_code == 409 and "resolved" in response.json()["detail"]


def test_alerts_filter_by_state_severity_node_and_acknowledgement(viewer_api, firing):
    assert viewer_api.get("/api/v1/alerts/?state=firing").json()["count"] == 1
    assert viewer_api.get("/api/v1/alerts/?state=resolved").json()["count"] == 0
    assert viewer_api.get("/api/v1/alerts/?severity=critical").json()["count"] == 0
    assert viewer_api.get("/api/v1/alerts/?node_name=gpu-01").json()["count"] == 1
    assert viewer_api.get("/api/v1/alerts/?label=node_name=gpu-02").json()["count"] == 0
    assert viewer_api.get("/api/v1/alerts/?acknowledged=false").json()["count"] == 1
    assert viewer_api.get("/api/v1/alerts/?state=exploded").status_code == 400


def test_an_alerts_history_lists_its_transitions(viewer_api, firing):
    body = viewer_api.get(f"/api/v1/alerts/{firing.pk}/history/").json()
    assert [(t["from_state"], t["to_state"]) for t in body["results"]] == [("", "firing")]


def test_the_summary_counts_firing_alerts_and_names_the_worst_severity(viewer_api, firing):
    body = viewer_api.get("/api/v1/alerts/summary/").json()
    assert body == {"firing": 1, "acknowledged": 0, "pending": 0, "suppressed": 0, "worst_severity": "warning",
                    "by_severity": {"critical": 0, "warning": 1, "info": 0}}


def test_the_alert_list_costs_the_same_queries_for_3_and_30_alerts(viewer_api, quiet_builtins):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert viewer_api.get("/api/v1/alerts/?limit=100").status_code == 200
        return len(ctx)

    make_rule(for_seconds=0, group_wait_s=0)
    for _ in range(3):
        node_sample(factories.node(), value=99)
    evaluator.evaluate()
    from console.alerting import dispatch

    dispatch.process_transitions()  # alerts get their groups (the list shows the group key)
    few = count()
    for _ in range(27):
        node_sample(factories.node(), value=99)
    evaluator.evaluate()
    dispatch.process_transitions()
    assert Alert.objects.count() == 30
    assert count() == few <= 5


# ----------------------------------------------------------------------------------------- silences


def test_an_operator_creates_a_silence_with_the_contract_fields(operator_api):
    start = timezone.now()
    response = operator_api.post("/api/v1/silences/", {
        "matchers": [{"name": "node_name", "op": "=", "value": "gpu-01"}], "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(), "comment": "replacing a fan"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created_by"] == "operator-user" and body["state"] == "active"
    silence = Silence.objects.get()
    assert silence.created_by_name == "operator-user"


@pytest.mark.parametrize("change, field, words", [
    ({"ends_at": "START-1h"}, "ends_at", "after starts_at"),
    ({"ends_at": "START"}, "ends_at", "after starts_at"),
    ({"starts_at": "START-3h", "ends_at": "START-2h"}, "ends_at", "future"),
    ({"matchers": []}, "matchers", "At least one"),
    ({"matchers": [{"name": "node_name", "op": "=~", "value": ".*"}]}, "matchers", "every alert"),
    ({"matchers": [{"name": "node_name", "op": "=~", "value": "(unclosed"}]}, "matchers", "regular expression"),
    ({"comment": "  "}, "comment", "blank"),
    ({"ends_at": "tomorrow-ish"}, "ends_at", ""),
])
def test_bad_silences_are_a_400(operator_api, change, field, words):
    start = timezone.now()

    def when(text):
        if not isinstance(text, str) or not text.startswith("START"):
            return text
        offset = text[5:]
        return (start + (timedelta(hours=int(offset[:-1])) if offset else timedelta())).isoformat()

    body = {"matchers": [{"name": "node_name", "value": "gpu-01"}], "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(), "comment": "maintenance"}
    body.update({k: when(v) for k, v in change.items()})
    response = operator_api.post("/api/v1/silences/", body, format="json")
    assert response.status_code == 400, response.content
    assert words in " ".join(str(m) for m in response.json()[field])


def test_expiring_a_silence_ends_it_and_expiring_it_again_is_a_409(operator_api):
    silence = Silence.objects.create(matchers=[{"name": "node", "op": "=", "value": "1"}],
                                     ends_at=timezone.now() + timedelta(hours=1), comment="x")
    response = operator_api.post(f"/api/v1/silences/{silence.pk}/expire/")
    assert response.status_code == 200 and response.json()["state"] == "expired"
    assert operator_api.post(f"/api/v1/silences/{silence.pk}/expire/").status_code == 409


def test_a_viewer_may_not_silence(viewer_api):
    response = viewer_api.post("/api/v1/silences/", {"matchers": [{"name": "node", "value": "1"}],
                                                     "ends_at": timezone.now().isoformat(), "comment": "x"},
                               format="json")
    assert response.status_code == 403


# ----------------------------------------------------------------------------------------- channels


@pytest.mark.parametrize("kind", ["webhook", "alertmanager", "slack", "dingtalk", "wecom", "feishu"])
def test_an_admin_creates_each_url_channel_kind_from_name_kind_and_url(admin_api, kind):
    response = admin_api.post("/api/v1/notification-channels/",
                              {"name": f"c-{kind}", "kind": kind, "url": "https://hooks.example.com/x?token=t"},
                              format="json")
    assert response.status_code == 201, response.content
    assert response.json()["enabled"] is True and response.json()["url"].startswith("https://hooks.example.com")


def test_an_email_channel_takes_an_address(admin_api):
    response = admin_api.post("/api/v1/notification-channels/",
                              {"name": "oncall", "kind": "email", "address": "oncall@example.com"}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("body, field", [
    ({"kind": "webhook", "url": "ftp://example.com/hook"}, "url"),
    ({"kind": "slack", "url": "file:///etc/passwd"}, "url"),
    ({"kind": "webhook", "url": "hooks.example.com/x"}, "url"),
    ({"kind": "webhook", "url": ""}, "url"),
    ({"kind": "webhook"}, "url"),
    ({"kind": "email", "address": "not-an-address"}, "address"),
    ({"kind": "email"}, "address"),
    ({"kind": "pager", "url": "https://x.example"}, "kind"),
    ({"kind": "webhook", "url": "https://x.example", "matchers": ["a=~\"(\""]}, "matchers"),
])
def test_bad_channel_input_is_a_400(admin_api, body, field):
    response = admin_api.post("/api/v1/notification-channels/", dict(body, name="bad"), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_the_secret_is_write_only_and_the_url_is_masked_for_non_admins(admin_api, viewer_api):
    response = admin_api.post("/api/v1/notification-channels/", {
        "name": "ding", "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=SECRET1",
        "secret": "SEC123"}, format="json")
    body = response.json()
    assert "secret" not in body and body["has_secret"] is True
    channel = NotificationChannel.objects.get()
    assert channel.secret() == "SEC123" and "SEC123" not in channel.encrypted_secret
    viewed = viewer_api.get(f"/api/v1/notification-channels/{channel.pk}/").json()
    assert "SECRET1" not in viewed["url"] and viewed["url"] == "https://oapi.dingtalk.com/…"
    assert "SEC123" not in str(Event.objects.filter(object_type="notificationchannel").values_list("detail"))


def test_the_test_action_delivers_to_a_real_receiver_and_reports_the_attempt(operator_api, receiver, fast_delivery):
    channel = make_channel("alertmanager", receiver.url)
    response = operator_api.post(f"/api/v1/notification-channels/{channel.pk}/test/")
    assert response.status_code == 200
    assert response.json()["delivered"] is True and response.json()["attempt"]["status_code"] == 200
    body = receiver.wait_for(1)[0]["body"]
    assert body["version"] == "4" and body["alerts"][0]["labels"]["alertname"] == "BooM Console test notification"


def test_a_failing_test_says_why_and_does_not_disable_the_channel(operator_api, receiver, fast_delivery):
    channel = make_channel("webhook", receiver.url)
    receiver.script((404, "gone", 0))
    response = operator_api.post(f"/api/v1/notification-channels/{channel.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["delivered"] is False and body["attempt"]["permanent"] is True
    assert "HTTP 404" in body["attempt"]["error"]
    channel.refresh_from_db()
    assert channel.enabled


def test_an_auto_disabled_channel_is_shown_and_patching_enabled_clears_it(admin_api, fast_delivery):
    channel = make_channel("webhook", "https://x.example/hook", enabled=False, disabled_reason="HTTP 404")
    body = admin_api.get(f"/api/v1/notification-channels/{channel.pk}/").json()
    assert body["auto_disabled"] is True and body["disabled_reason"] == "HTTP 404"
    body = admin_api.patch(f"/api/v1/notification-channels/{channel.pk}/", {"enabled": True}, format="json").json()
    assert body["enabled"] is True and body["auto_disabled"] is False and body["disabled_reason"] == ""


def test_the_channel_list_and_the_outbox_cost_the_same_queries_for_2_and_20_rows(admin_api):
    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert admin_api.get(url).status_code == 200
        return len(ctx)

    for i in range(2):
        make_channel("webhook", f"https://x.example/{i}")
    few = count("/api/v1/notification-channels/"), count("/api/v1/notifications/")
    for i in range(2, 20):
        make_channel("webhook", f"https://x.example/{i}")
    assert (count("/api/v1/notification-channels/"), count("/api/v1/notifications/")) == few
    assert max(few) <= 4


def test_an_admin_switching_a_channel_off_stops_queueing_for_it(admin_api):
    channel = make_channel("webhook", "https://x.example/hook", enabled=False, disabled_reason="HTTP 404")
    body = admin_api.patch(f"/api/v1/notification-channels/{channel.pk}/", {"enabled": False}, format="json").json()
    assert body["enabled"] is False and body["auto_disabled"] is False
    from console.alerting.dispatch import receiving_channels

    assert not receiving_channels().filter(pk=channel.pk).exists()
    body = admin_api.post(f"/api/v1/notification-channels/{channel.pk}/enable/").json()
    assert body["enabled"] is True
    assert receiving_channels().filter(pk=channel.pk).exists()
