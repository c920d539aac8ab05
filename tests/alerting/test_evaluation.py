"""The evaluator: threshold and relative rules over telemetry series, the pending -> firing -> resolved
lifecycle, fingerprints, transitions, flapping, and rules that fail or hang."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from console.alerting import evaluator
from console.alerting.labels import fingerprint
from console.alerting.models import Alert, AlertRule, AlertTransition
from console.core.models import Event
from nodes.models import AcceleratorSample, NodeSample
from tests import factories
from tests.alerting.conftest import later, make_rule, node_sample
from tests.timing import scaled

pytestmark = pytest.mark.django_db


def test_a_threshold_rule_goes_pending_then_fires_after_its_for_duration(quiet_builtins, now):
    node = factories.node(name="gpu-01")
    rule = make_rule(for_seconds=60)
    node_sample(node, value=97.5)

    report = evaluator.evaluate(now=now)
    alert = Alert.objects.get(rule=rule)
    assert report.created == 1 and alert.state == "pending" and alert.fired_at is None
    assert alert.labels == {"alertname": "CPU hot", "severity": "warning", "node": str(node.pk), "node_name": "gpu-01"}
    assert alert.fingerprint == fingerprint(alert.labels)

    evaluator.evaluate(now=later(now, 30))
    assert Alert.objects.get(pk=alert.pk).state == "pending"

    report = evaluator.evaluate(now=later(now, 60))
    alert.refresh_from_db()
    assert report.fired == 1 and alert.state == "firing" and alert.fired_at == later(now, 60)
    assert list(alert.transitions.order_by("time").values_list("from_state", "to_state")) == [
        ("", "pending"), ("pending", "firing")]


def test_the_alert_resolves_when_the_condition_clears_and_a_new_occurrence_is_a_new_alert(quiet_builtins, now):
    node = factories.node()
    rule = make_rule(for_seconds=0)
    node_sample(node, value=95)
    evaluator.evaluate(now=now)
    first = Alert.objects.get(rule=rule)
    assert first.state == "firing"

    NodeSample.objects.all().delete()
    node_sample(node, value=20)
    evaluator.evaluate(now=later(now, 15))
    first.refresh_from_db()
    assert first.state == "resolved" and first.ended_at == later(now, 15)

    node_sample(node, value=99, at=timezone.now() + timedelta(milliseconds=5))
    evaluator.evaluate(now=later(now, 30))
    second = Alert.objects.exclude(pk=first.pk).get(rule=rule)
    assert second.state == "firing" and second.fingerprint == first.fingerprint
    assert AlertTransition.objects.filter(fingerprint=first.fingerprint).count() == 3


def test_a_pending_alert_whose_condition_clears_is_resolved_without_ever_firing(quiet_builtins, now):
    node = factories.node()
    make_rule(for_seconds=120)
    node_sample(node, value=95)
    evaluator.evaluate(now=now)
    NodeSample.objects.all().delete()
    evaluator.evaluate(now=later(now, 15))  # no sample in the look-back window: no value, not true
    alert = Alert.objects.get()
    assert alert.state == "resolved" and alert.fired_at is None
    assert alert.transitions.get(to_state="resolved").reason == "condition cleared before the for-duration"


def test_one_alert_per_label_set_and_each_rule_sees_only_matching_labels(quiet_builtins, now):
    gpu = [factories.node(name=f"gpu-{i}") for i in range(3)]
    npu = factories.node(name="npu-0")
    for node in gpu + [npu]:
        node_sample(node, value=96)
    rule = make_rule(for_seconds=0, matchers=[{"name": "node_name", "op": "=~", "value": "gpu-[01]"}])
    evaluator.evaluate(now=now)
    evaluator.evaluate(now=later(now, 15))
    names = sorted(Alert.objects.filter(rule=rule).values_list("labels__node_name", flat=True))
    assert names == ["gpu-0", "gpu-1"]
    assert Alert.objects.filter(rule=rule).values("fingerprint").distinct().count() == 2


def test_every_comparator_selects_the_right_entities(quiet_builtins, now):
    nodes = [factories.node(name=f"n{i}") for i in range(5)]
    for node, value in zip(nodes, [10, 20, 30, 40, 50], strict=True):
        node_sample(node, value=value)
    expected = {">": {"n3", "n4"}, ">=": {"n2", "n3", "n4"}, "<": {"n0", "n1"}, "<=": {"n0", "n1", "n2"},
                "==": {"n2"}, "!=": {"n0", "n1", "n3", "n4"}}
    for index, (comparator, names) in enumerate(expected.items()):
        rule = make_rule(name=f"r{index}", comparator=comparator, threshold=30, for_seconds=0)
        evaluator.evaluate(now=now, rule_ids=[rule.pk])
        assert set(Alert.objects.filter(rule=rule).values_list("labels__node_name", flat=True)) == names, comparator


def test_accelerator_rules_label_each_accelerator_and_render_the_summary_template(quiet_builtins, now):
    node = factories.node(name="npu-07")
    accelerators = factories.accelerators(node, count=2, vendor="huawei")
    ts = int(now.timestamp() * 1000)
    AcceleratorSample.objects.bulk_create([
        AcceleratorSample(accelerator=accelerators[0], node=node, ts=ts, temperature_c=91.25),
        AcceleratorSample(accelerator=accelerators[1], node=node, ts=ts, temperature_c=60)])
    make_rule(name="Accelerator too hot", series="accelerator.temperature_c", threshold=85, for_seconds=0,
              severity="critical",
              summary_template="{{ labels.vendor }}{{ labels.index }} on {{ labels.node_name }} at {{ value }} "
                               "{{ unit }}",
              description_template="Above {{ threshold }} for {{ rule }}")
    evaluator.evaluate(now=now)
    alert = Alert.objects.get()
    assert alert.labels["accelerator"] == str(accelerators[0].pk) and alert.labels["index"] == "0"
    assert alert.summary == "huawei0 on npu-07 at 91.25 °C"
    assert alert.description == "Above 85 for Accelerator too hot"
    assert alert.severity == "critical" and alert.severity_rank == 3


def test_a_relative_rule_fires_when_tokens_per_second_drop_more_than_half_against_the_hour_median(
        quiet_builtins, now):
    from jobs.models import JobSample
    from tests.jobs.factories import job

    chat = job(name="chat")
    steady = job(name="steady")
    ts_now = int(now.timestamp() * 1000)
    rows = []
    for minute in range(60, 2, -1):
        ts = ts_now - minute * 60_000
        rows += [JobSample(job=chat, ts=ts, output_tokens_per_s=1000 + minute),
                 JobSample(job=steady, ts=ts, output_tokens_per_s=800)]
    rows += [JobSample(job=chat, ts=ts_now - 1000, output_tokens_per_s=400),
             JobSample(job=steady, ts=ts_now - 1000, output_tokens_per_s=780)]
    JobSample.objects.bulk_create(rows)
    rule = make_rule(name="Throughput collapsed", kind="relative", series="job.output_tokens_per_s", comparator="<",
                     threshold=-50, window_seconds=3600, for_seconds=0)
    report = evaluator.evaluate(now=now)
    assert not report.errors
    alert = Alert.objects.get(rule=rule)
    assert alert.labels["job_name"] == "chat"
    assert alert.value == pytest.approx(-61, abs=1)  # 400 against a median of about 1031
    assert "changed -61" in alert.summary and "400 now" in alert.summary


def test_stale_samples_older_than_the_look_back_are_no_value(quiet_builtins, now, settings):
    settings.CONSOLE_ALERT_LOOKBACK_S = 60
    node = factories.node()
    node_sample(node, value=99, at=now - timedelta(seconds=300))
    make_rule(for_seconds=0)
    evaluator.evaluate(now=now)
    assert not Alert.objects.exists()


def test_an_alert_that_keeps_firing_and_resolving_is_marked_flapping_and_recorded(quiet_builtins, now, settings):
    settings.CONSOLE_ALERT_FLAP_THRESHOLD = 3
    node = factories.node()
    rule = make_rule(for_seconds=0)
    moment = now
    for cycle in range(3):
        node_sample(node, value=99, at=timezone.now())
        evaluator.evaluate(now=moment)
        NodeSample.objects.all().delete()
        moment = later(moment, 15)
        if cycle < 2:
            evaluator.evaluate(now=moment)
            moment = later(moment, 15)
    alert = Alert.objects.filter(rule=rule, state="firing").get()
    assert alert.flapping and alert.flap_count == 3
    assert Alert.objects.filter(rule=rule, flapping=False).count() == 2
    assert Event.objects.filter(verb="flapping", object_type="alert", object_id=str(alert.pk)).exists()


def test_a_rule_that_errors_keeps_its_alerts_and_records_the_error_while_other_rules_run(quiet_builtins, now,
                                                                                           monkeypatch):
    node = factories.node()
    node_sample(node, value=99, load1=50)
    broken = make_rule(name="broken", for_seconds=0)
    healthy = make_rule(name="healthy", series="node.load1", threshold=10, for_seconds=0)
    evaluator.evaluate(now=now)
    assert Alert.objects.filter(rule=broken, state="firing").exists()

    from console.alerting import conditions

    def explode(rule, ctx):
        if rule.name == "broken":
            raise RuntimeError("boom")
        return conditions.check_threshold(rule, ctx)

    monkeypatch.setitem(conditions.CHECKS, "threshold", explode)
    NodeSample.objects.all().delete()  # the healthy rule's condition clears...
    report = evaluator.evaluate(now=later(now, 15))
    assert report.errors == {broken.pk: "RuntimeError: boom"}
    broken.refresh_from_db()
    assert broken.last_error == "RuntimeError: boom" and broken.last_error_at == later(now, 15)
    assert Alert.objects.get(rule=broken).state == "firing"  # ...but a failed check is not "resolved"
    assert Alert.objects.get(rule=healthy).state == "resolved"


HANGING_QUERY = {
    # A query that would run for minutes on each backend.
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
              "SELECT count(*) FROM (SELECT x FROM c LIMIT 2000000000)",
    "postgresql": "SELECT pg_sleep(120)",
}


def test_a_rule_whose_query_hangs_is_stopped_by_its_deadline_and_the_cycle_goes_on(quiet_builtins, now,
                                                                                     monkeypatch, settings):
    settings.CONSOLE_ALERT_RULE_TIMEOUT_S = 1
    node = factories.node()
    node_sample(node, value=99)
    hanging = make_rule(name="hanging", for_seconds=0)
    other = make_rule(name="other", series="node.cpu_percent", threshold=50, for_seconds=0)
    from console.alerting import conditions

    def hang(rule, ctx):
        if rule.name == "hanging":
            with connection.cursor() as cursor:
                cursor.execute(HANGING_QUERY[connection.vendor])
        return conditions.check_threshold(rule, ctx)

    monkeypatch.setitem(conditions.CHECKS, "threshold", hang)
    started = timezone.now()
    report = evaluator.evaluate(now=now)
    elapsed = (timezone.now() - started).total_seconds()
    assert elapsed < scaled(5, below=120)  # the hanging query would run for minutes
    assert report.errors[hanging.pk] == "evaluation timed out after 1 s"
    assert Alert.objects.filter(rule=other, state="firing").exists()


def test_disabling_a_rule_resolves_its_alerts_at_the_next_cycle_even_behind_the_apis_back(quiet_builtins, now):
    node = factories.node()
    node_sample(node, value=99)
    rule = make_rule(for_seconds=0)
    evaluator.evaluate(now=now)
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    evaluator.evaluate(now=later(now, 15))
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "resolved"
    assert alert.transitions.get(to_state="resolved").reason == "rule disabled or deleted"


def test_two_evaluations_of_the_same_moment_change_nothing_the_second_time(quiet_builtins, now):
    node = factories.node()
    node_sample(node, value=99)
    make_rule(for_seconds=0)
    first = evaluator.evaluate(now=now)
    second = evaluator.evaluate(now=now)
    assert first.created == 1 and second.transitions == 0
    assert Alert.objects.count() == 1 and AlertTransition.objects.count() == 1


def test_a_pending_alert_asks_for_a_targeted_evaluation_when_it_becomes_due(quiet_builtins, now, settings):
    settings.CONSOLE_ALERT_EVAL_INTERVAL_S = 15
    node = factories.node()
    node_sample(node, value=99)
    rule = make_rule(for_seconds=20)
    evaluator.evaluate(now=now)
    report = evaluator.evaluate(now=later(now, 10))
    assert report.followups == {rule.pk: later(now, 20)}
    report = evaluator.evaluate(now=later(now, 20), rule_ids=[rule.pk])
    assert report.fired == 1
