"""An alert is identified by the ids in its labels and shown by the names: renaming a node keeps its alert
(same row, same start, no resolve and no new alert) and the labels follow the new name; pages show
``node=gpu-a1`` rather than ``node=2``."""

import pytest
from django.urls import reverse

from console.alerting import evaluator
from console.alerting.labels import fingerprint, identity_fingerprint
from console.alerting.models import Alert, AlertRule, AlertTransition
from nodes.models import Node
from tests import factories
from tests.alerting.conftest import later

pytestmark = pytest.mark.django_db


def test_renaming_a_node_keeps_its_firing_alert_and_the_labels_follow_the_new_name(now):
    AlertRule.objects.filter(builtin=True).exclude(kind="node_unreachable").update(enabled=False)
    node = factories.node(name="gpu-a1", status="unreachable", status_detail="connection refused",
                          status_changed_at=now)
    evaluator.evaluate(now=now)
    evaluator.evaluate(now=later(now, 30))
    alert = Alert.objects.get(rule__kind="node_unreachable")
    assert alert.state == "firing" and alert.labels["node_name"] == "gpu-a1"

    Node.objects.filter(pk=node.pk).update(name="gpu-b7")
    report = evaluator.evaluate(now=later(now, 45))

    assert report.created == 0 and report.resolved == 0
    assert list(Alert.objects.values_list("pk", "state")) == [(alert.pk, "firing")]
    renamed = Alert.objects.get(pk=alert.pk)
    assert renamed.active_since == alert.active_since and renamed.fired_at == alert.fired_at
    assert renamed.labels == {**alert.labels, "node_name": "gpu-b7"}
    assert renamed.fingerprint == fingerprint(renamed.labels)  # what receivers compute from the labels
    assert renamed.summary == "Node gpu-b7 is unreachable"
    assert AlertTransition.objects.filter(to_state="resolved").count() == 0


def test_an_alert_in_the_pending_state_keeps_its_for_duration_across_a_rename(now):
    AlertRule.objects.filter(builtin=True).exclude(kind="node_unreachable").update(enabled=False)
    node = factories.node(name="gpu-a1", status="unreachable", status_changed_at=now)
    evaluator.evaluate(now=now)
    pending = Alert.objects.get()
    Node.objects.filter(pk=node.pk).update(name="gpu-b7")
    evaluator.evaluate(now=later(now, 31))
    fired = Alert.objects.get()
    assert fired.pk == pending.pk and fired.state == "firing" and fired.labels["node_name"] == "gpu-b7"
    assert fired.fingerprint == fingerprint(fired.labels)


def test_the_identity_leaves_out_a_name_label_only_beside_its_id():
    with_id = {"alertname": "x", "node": "2", "node_name": "a"}
    assert identity_fingerprint(with_id) == identity_fingerprint({**with_id, "node_name": "b"})
    assert identity_fingerprint({"node_name": "a"}) != identity_fingerprint({"node_name": "b"})


def test_the_alert_pages_show_the_node_by_name_with_the_id_in_the_title(client, make_user, now):
    client.force_login(make_user("admin"))
    AlertRule.objects.filter(builtin=True).exclude(kind="node_unreachable").update(enabled=False)
    node = factories.node(name="gpu-a1", status="unreachable", status_changed_at=now)
    evaluator.evaluate(now=now)
    alert = Alert.objects.get()
    for url in (reverse("alerting-alerts") + "?state=all", reverse("alerting-alert", args=[alert.pk])):
        page = client.get(url).content.decode()
        assert ">node=gpu-a1</span>" in page, url
        assert f">node={node.pk}<" not in page and ">node_name=" not in page
        assert f'title="node={node.pk} (node_name=gpu-a1)"' in page
