"""The built-in rules: present and enabled by default, evaluated from cluster state, and inhibition by
"node unreachable"."""

from datetime import timedelta

import pytest
from django.utils import timezone

from console.alerting import evaluator
from console.alerting.builtin import BUILTIN_RULES, ensure_builtin_rules
from console.alerting.models import Alert, AlertRule
from tests import factories
from tests.alerting.conftest import later, make_rule, node_sample

pytestmark = pytest.mark.django_db


def only(kind):
    AlertRule.objects.filter(builtin=True).exclude(kind=kind).update(enabled=False)
    return AlertRule.objects.get(builtin=True, kind=kind)


def test_the_seven_built_in_rules_exist_enabled_after_migrating():
    kinds = set(AlertRule.objects.filter(builtin=True, enabled=True).values_list("kind", flat=True))
    assert kinds == {"node_unreachable", "accelerator_health", "instance_crash_loop", "job_degraded",
                     "probe_failing", "disk_nearly_full", "model_copy_failed"}
    assert len(BUILTIN_RULES) == 7


def test_a_deleted_built_in_rule_comes_back_and_an_operators_rule_keeps_its_name():
    AlertRule.objects.filter(kind="disk_nearly_full").delete()
    make_rule(name="Disk nearly full")
    assert ensure_builtin_rules() == 1
    assert AlertRule.objects.get(builtin=True, kind="disk_nearly_full").name == "Disk nearly full (built-in)"
    assert ensure_builtin_rules() == 0


def test_an_unreachable_node_alerts_after_thirty_seconds_and_inhibits_its_accelerators_alerts(now):
    AlertRule.objects.filter(builtin=True).exclude(kind__in=["node_unreachable", "accelerator_health"]).update(
        enabled=False)
    node = factories.node(name="npu-03", status="unreachable", status_detail="ssh: connection timed out",
                          status_changed_at=now)
    healthy = factories.node(name="npu-04")
    factories.accelerators(node, count=2, vendor="huawei")[0].__class__.objects.filter(node=node, index=1).update(
        health="critical")
    accelerator_of_healthy = factories.accelerators(healthy, count=1)[0]
    accelerator_of_healthy.__class__.objects.filter(pk=accelerator_of_healthy.pk).update(health="warning")

    evaluator.evaluate(now=now)
    evaluator.evaluate(now=later(now, 30))
    unreachable = Alert.objects.get(rule__kind="node_unreachable")
    assert unreachable.state == "firing" and unreachable.severity == "critical"
    assert unreachable.summary == "Node npu-03 is unreachable"
    assert "connection timed out" in unreachable.description
    health = {a.labels["node_name"]: a for a in Alert.objects.filter(rule__kind="accelerator_health")}
    assert health["npu-03"].severity == "critical" and health["npu-03"].labels["health"] == "critical"
    assert health["npu-03"].suppressed == "inhibited" and health["npu-03"].inhibited_by_id == unreachable.pk
    assert health["npu-04"].severity == "warning" and health["npu-04"].suppressed == ""


def test_an_instance_restarting_three_times_in_ten_minutes_is_a_crash_loop(now):
    rule = only("instance_crash_loop")
    from jobs.models import Instance, InstanceStateChange
    from tests.jobs.factories import job

    node = factories.node(name="gpu-9")
    chat = job(name="chat", desired_state="running")
    looping = Instance.objects.create(job=chat, replica=0, node=node, state="restarting", restart_count=3,
                                      last_exit_reason="exit code 137 (OOM)")
    calm = Instance.objects.create(job=chat, replica=1, node=node, state="running", restart_count=2)
    rows = [InstanceStateChange(instance=looping, time=now - timedelta(minutes=m), from_state="running",
                                to_state="restarting") for m in (1, 4, 8)]
    rows += [InstanceStateChange(instance=looping, time=now - timedelta(minutes=30), from_state="running",
                                 to_state="restarting")]
    rows += [InstanceStateChange(instance=calm, time=now - timedelta(minutes=m), from_state="running",
                                 to_state="restarting") for m in (2, 15)]
    InstanceStateChange.objects.bulk_create(rows)
    evaluator.evaluate(now=now)
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing" and alert.value == 3
    assert alert.labels["instance"] == str(looping.pk) and alert.labels["node_name"] == "gpu-9"
    assert alert.summary == "chat/r0 restarted 3 times in 10 minutes"
    assert "OOM" in alert.description


def test_a_degraded_job_alerts_with_its_state_and_a_failed_one_is_critical(now):
    rule = only("job_degraded")
    from tests.jobs.factories import job

    degraded = job(name="chat", desired_state="running")
    failed = job(name="embed", desired_state="running")
    stopped = job(name="batch", desired_state="stopped")
    from jobs.models import Job

    Job.objects.filter(pk=degraded.pk).update(state="degraded", state_detail="1 of 2 replicas serve")
    Job.objects.filter(pk=failed.pk).update(state="failed")
    Job.objects.filter(pk=stopped.pk).update(state="failed")
    evaluator.evaluate(now=now)
    evaluator.evaluate(now=later(now, 60))
    alerts = {a.labels["job_name"]: a for a in Alert.objects.filter(rule=rule)}
    assert set(alerts) == {"chat", "embed"}
    assert alerts["chat"].severity == "warning" and alerts["chat"].state == "firing"
    assert alerts["embed"].severity == "critical" and alerts["embed"].labels["state"] == "failed"
    assert alerts["chat"].summary == "Job chat is degraded"


def test_a_probe_that_reports_errors_or_stops_running_is_probe_failing(now):
    rule = only("probe_failing")
    erring = factories.node(name="n-err", probe_errors=["nvidia-smi 550.54: exit status 9"], last_probe_at=now)
    silent = factories.node(name="n-silent", last_probe_at=now - timedelta(minutes=10), probe_interval_s=15)
    factories.node(name="n-fine", last_probe_at=now)
    factories.node(name="n-maint", status="maintenance", probe_errors=["x"], last_probe_at=now)
    evaluator.evaluate(now=now)
    alerts = {a.labels["node_name"]: a for a in Alert.objects.filter(rule=rule)}
    assert set(alerts) == {"n-err", "n-silent"}
    assert alerts["n-err"].state == "pending" and "exit status 9" in alerts["n-err"].description
    assert "no probe result for 600 s" in alerts["n-silent"].description
    assert erring.pk and silent.pk


def test_a_mount_above_ninety_percent_is_a_disk_nearly_full_alert_per_mount(now):
    rule = only("disk_nearly_full")
    gib = 1 << 30
    factories.node(name="store-1", facts={"disks": [
        {"mount": "/", "filesystem": "/dev/sda1", "total_bytes": 100 * gib, "used_bytes": 95 * gib},
        {"mount": "/data", "filesystem": "/dev/nvme0n1", "total_bytes": 1000 * gib, "used_bytes": 200 * gib},
        {"mount": "/models", "filesystem": "/dev/nvme1n1", "total_bytes": 0, "used_bytes": 0}]})
    factories.node(name="odd", facts={"disks": "not a list"})
    evaluator.evaluate(now=now)
    evaluator.evaluate(now=later(now, 300))
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing" and alert.labels["mount"] == "/"
    assert alert.summary == "/ on store-1 is 95 % full"


def test_a_built_in_rules_matchers_narrow_it(now):
    rule = only("node_unreachable")
    rule.matchers = [{"name": "node_name", "op": "!~", "value": "lab-.*"}]
    rule.save()
    factories.node(name="lab-1", status="unreachable")
    factories.node(name="prod-1", status="unreachable")
    evaluator.evaluate(now=now)
    assert list(Alert.objects.values_list("labels__node_name", flat=True)) == ["prod-1"]


def test_alerts_of_a_node_in_maintenance_are_recorded_but_marked_paused(now):
    AlertRule.objects.filter(builtin=True).update(enabled=False)
    node = factories.node(name="gpu-m", status="maintenance")
    node_sample(node, value=99)
    make_rule(for_seconds=0)
    evaluator.evaluate(now=now)
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.suppressed == "maintenance"
    from nodes.models import Node

    Node.objects.filter(pk=node.pk).update(status="online")
    evaluator.evaluate(now=later(now, 15))
    alert.refresh_from_db()
    assert alert.suppressed == ""
    assert timezone.now()


def test_a_failed_model_copy_is_an_alert_naming_the_version_and_node_and_resolves_once_it_is_gone(now):
    from models_registry.models import Model, ModelCopy, ModelVersion

    rule = only("model_copy_failed")
    node = factories.node(name="npu-b")
    version = ModelVersion.objects.create(model=Model.objects.create(name="DeepSeek-R1"), version="w8a8",
                                          source_uri="/models/r1")
    copy = ModelCopy.objects.create(version=version, node=node, path="/m/r1", status="failed",
                                    status_detail="verification failed for 1 of 3 files: a.safetensors: sha256 ...")
    ModelCopy.objects.create(version=version, node=factories.node(name="npu-c"), path="/m/r1", status="ready")
    evaluator.evaluate(now=now)
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing" and alert.labels["node_name"] == "npu-b" and alert.labels["version_name"] == "w8a8"
    assert alert.summary == "The copy of DeepSeek-R1:w8a8 on npu-b failed"
    copy.delete()
    evaluator.evaluate(now=later(now, 60))
    alert.refresh_from_db()
    assert alert.state == "resolved"
