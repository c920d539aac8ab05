"""Notifier payloads, against a real HTTP receiver on loopback: the Alertmanager version 4 payload checked
field by field against real captures, and the incoming-webhook shapes of Slack, DingTalk, WeCom and
Feishu with their signatures and error codes."""

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from console.alerting import evaluator
from console.alerting.dispatch import alert_message, build_message
from console.alerting.labels import fingerprint, format_label_set
from console.alerting.models import Alert
from console.alerting.notifiers import NotifyError, get_notifier
from tests import factories
from tests.alerting.conftest import make_channel, make_rule
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db

CAPTURES = sorted((FIXTURES / "alertmanager").glob("*.json"))
MODERN = FIXTURES / "alertmanager" / "webhook-v4_firing_single-alert_truncatedAlerts_readme-capture.json"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def message(quiet_builtins, now, fast_delivery):
    """A real message: two firing accelerator alerts of one node, made by the evaluator."""
    from nodes.models import AcceleratorSample

    node = factories.node(name="npu-01")
    accelerators = factories.accelerators(node, count=2, vendor="huawei")
    ts = int(now.timestamp() * 1000)
    AcceleratorSample.objects.bulk_create([AcceleratorSample(accelerator=a, node=node, ts=ts, temperature_c=90 + i)
                                           for i, a in enumerate(accelerators)])
    make_rule(name="NPU hot", series="accelerator.temperature_c", threshold=85, for_seconds=0, severity="critical",
              summary_template="{{ entity }} at {{ value }} °C", description_template="Check the cooling of "
              "{{ labels.node_name }}.", group_by=["alertname", "node"])
    evaluator.evaluate(now=now)
    alerts = list(Alert.objects.order_by("pk"))
    from console.alerting.labels import group_key

    key, labels = group_key(alerts[0].labels, ["alertname", "node"])
    return build_message(key, labels, [alert_message(a) for a in alerts])


def test_the_fingerprint_is_alertmanagers_for_the_labels_of_a_real_capture():
    capture = json.loads(MODERN.read_text())
    alert = capture["alerts"][0]
    assert fingerprint(alert["labels"]) == alert["fingerprint"] == "948c667b1fc76492"


def test_the_group_key_is_printed_as_alertmanager_prints_it():
    capture = json.loads((FIXTURES / "alertmanager" /
                          "webhook-v4_legacy-no-truncatedAlerts_prometheus-msteams-testdata.json").read_text())
    assert "{}:" + format_label_set(capture["groupLabels"]) == capture["groupKey"]


def test_the_alertmanager_payload_has_the_fields_order_and_types_of_the_captures(message, receiver):
    channel = make_channel("alertmanager", receiver.url, name="am-bridge")
    get_notifier(channel).send(message)
    body = receiver.wait_for(1)[0]["body"]
    modern = json.loads(MODERN.read_text())
    assert list(body) == list(modern)  # receiver, status, alerts, groupLabels, ..., groupKey, truncatedAlerts
    for capture_path in CAPTURES:
        capture = json.loads(capture_path.read_text())
        assert set(capture) <= set(body), capture_path.name
        for key, value in capture.items():
            assert type(body[key]) is type(value), (capture_path.name, key)
        for capture_alert in capture["alerts"]:
            assert set(capture_alert) <= set(body["alerts"][0]), capture_path.name
    assert body["version"] == "4" and body["receiver"] == "am-bridge" and body["status"] == "firing"
    assert body["truncatedAlerts"] == 0
    assert body["externalURL"] == "http://console.example:8000"
    assert body["groupKey"].startswith("{}:{") and body["groupKey"].endswith("}")
    assert body["groupLabels"] == {"alertname": "NPU hot", "node": body["alerts"][0]["labels"]["node"]}
    assert body["commonLabels"]["node_name"] == "npu-01" and "accelerator" not in body["commonLabels"]
    assert body["commonAnnotations"] == {"description": "Check the cooling of npu-01."}
    for alert in body["alerts"]:
        assert list(alert) == list(modern["alerts"][0])
        assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert RFC3339.match(alert["startsAt"]) and datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
        assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
        assert alert["fingerprint"] == fingerprint(alert["labels"])
        assert alert["generatorURL"].startswith("http://console.example:8000/alerts/")
        assert all(isinstance(v, str) for v in alert["labels"].values())
        assert all(isinstance(v, str) for v in alert["annotations"].values())


def test_a_resolved_alertmanager_alert_carries_its_end_time(message, receiver, now):
    alert = Alert.objects.order_by("pk").first()
    Alert.objects.filter(pk=alert.pk).update(state="resolved", ended_at=now)
    alert.refresh_from_db()
    resolved = build_message(message["group_key"], message["group_labels"], [alert_message(alert)])
    get_notifier(make_channel("alertmanager", receiver.url)).send(resolved)
    body = receiver.wait_for(1)[0]["body"]
    assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
    assert datetime.fromisoformat(body["alerts"][0]["endsAt"].replace("Z", "+00:00")) == now.replace(
        microsecond=now.microsecond // 1000 * 1000)


def test_max_alerts_truncates_and_counts_the_rest_as_alertmanager_does(message, receiver):
    get_notifier(make_channel("alertmanager", receiver.url, max_alerts=1)).send(message)
    body = receiver.wait_for(1)[0]["body"]
    assert len(body["alerts"]) == 1 and body["truncatedAlerts"] == 1


def test_the_generic_webhook_is_signed_with_the_channels_secret(message, receiver):
    get_notifier(make_channel("webhook", receiver.url, secret="s3cret")).send(message)
    request = receiver.wait_for(1)[0]
    expected = hmac.new(b"s3cret", request["raw"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Boom-Signature"] == f"sha256={expected}"
    body = request["body"]
    assert body["source"] == "boom-console" and body["status"] == "firing" and len(body["alerts"]) == 2
    assert body["alerts"][0]["annotations"]["summary"] == "npu-01/huawei0 at 90 °C"
    assert body["group_labels"] == {"alertname": "NPU hot", "node": body["alerts"][0]["labels"]["node"]}


def test_slack_gets_text_and_a_coloured_attachment_and_a_404_is_permanent(message, receiver):
    channel = make_channel("slack", receiver.url)
    get_notifier(channel).send(message)
    body = receiver.wait_for(1)[0]["body"]
    assert body["text"].startswith("[FIRING:2] NPU hot (npu-01)")
    attachment = body["attachments"][0]
    assert attachment["color"] == "#d0342c" and attachment["mrkdwn_in"] == ["text"]
    assert "npu-01/huawei0 at 90 °C" in attachment["text"] and "|open>" in attachment["text"]
    receiver.script((404, "no_service", 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert error.value.permanent and error.value.status_code == 404 and error.value.response == ""
    receiver.script((429, "rate_limited", 0, {"Retry-After": "30"}))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert not error.value.permanent and error.value.retry_after == 30


def test_dingtalk_gets_markdown_with_a_signed_url_and_its_errcodes_are_classified(message, receiver):
    channel = make_channel("dingtalk", receiver.url + "?access_token=abc", secret="SECtest")
    receiver.script((200, '{"errcode":0,"errmsg":"ok"}', 0))
    get_notifier(channel).send(message)
    request = receiver.wait_for(1)[0]
    query = parse_qs(urlsplit(request["path"]).query)
    assert query["access_token"] == ["abc"]
    timestamp = query["timestamp"][0]
    digest = hmac.new(b"SECtest", f"{timestamp}\nSECtest".encode(), hashlib.sha256).digest()
    assert unquote_plus(urlsplit(request["path"]).query.split("sign=")[1]) == base64.b64encode(digest).decode()
    body = request["body"]
    assert body["msgtype"] == "markdown" and body["markdown"]["title"].startswith("[FIRING:2] NPU hot")
    assert body["markdown"]["text"].startswith("#### [FIRING:2]")
    receiver.script((200, '{"errcode":310000,"errmsg":"keywords not in content"}', 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert error.value.permanent and "310000" in error.value.message
    receiver.script((200, '{"errcode":130101,"errmsg":"send too fast"}', 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert not error.value.permanent


def test_wecom_gets_markdown_content_within_its_byte_limit(message, receiver):
    channel = make_channel("wecom", receiver.url + "?key=k")
    many = dict(message, alerts=message["alerts"] * 200)
    receiver.script((200, '{"errcode":0,"errmsg":"ok"}', 0))
    get_notifier(channel).send(many)
    body = receiver.wait_for(1)[0]["body"]
    assert body["msgtype"] == "markdown"
    assert len(body["markdown"]["content"].encode()) <= 4096
    assert body["markdown"]["content"].startswith('## <font color="warning">[FIRING:400]')
    receiver.script((200, '{"errcode":93000,"errmsg":"invalid webhook url"}', 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert error.value.permanent
    receiver.script((200, '{"errcode":45009,"errmsg":"api freq out of limit"}', 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert not error.value.permanent


def test_feishu_gets_a_red_card_signed_in_the_body_and_old_and_new_answers_are_understood(message, receiver):
    channel = make_channel("feishu", receiver.url, secret="fs-secret")
    receiver.script((200, '{"code":0,"msg":"success","data":{}}', 0),
                    (200, '{"StatusCode":0,"StatusMessage":"success"}', 0))
    get_notifier(channel).send(message)
    get_notifier(channel).send(message)
    body = receiver.wait_for(2)[0]["body"]
    assert body["msg_type"] == "interactive"
    assert body["card"]["header"]["template"] == "red"
    assert body["card"]["header"]["title"]["content"].startswith("[FIRING:2] NPU hot")
    assert body["card"]["elements"][0]["text"]["tag"] == "lark_md"
    key = f"{body['timestamp']}\nfs-secret".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    receiver.script((200, '{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}', 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert error.value.permanent and "19021" in error.value.message
    receiver.script((200, '{"code":11232,"msg":"frequency limited"}', 0))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert not error.value.permanent


def test_a_receiver_that_answers_500_or_not_at_all_is_a_transient_error(message, receiver, settings):
    channel = make_channel("webhook", receiver.url)
    receiver.script(500, (200, "late", 1.5))
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert not error.value.permanent and error.value.status_code == 500
    with pytest.raises(NotifyError) as error:
        get_notifier(channel).send(message)
    assert not error.value.permanent and "no answer within 1 s" in error.value.message
    closed = make_channel("webhook", "http://127.0.0.1:9/nothing-listens")
    with pytest.raises(NotifyError) as error:
        get_notifier(closed).send(message)
    assert not error.value.permanent and "connection failed" in error.value.message
