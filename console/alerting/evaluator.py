"""One evaluation cycle: check every enabled rule, move alerts through pending -> firing -> resolved,
record each transition (the dispatcher's outbox), and recompute what is silenced, inhibited or paused.

Runs every CONSOLE_ALERT_EVAL_INTERVAL_S (console.alerting.tasks.evaluate), plus a targeted run at the
moment a pending alert's for-duration ends, so an alert fires on time rather than at the next tick.

Safety:
- each rule runs under a database deadline (CONSOLE_ALERT_RULE_TIMEOUT_S, deadline.py); a rule that
  fails or times out keeps its alerts as they are (no data is not "resolved") and records its error;
- every state change goes through console.core.statemachine (ALERT_TRANSITIONS checked, a conditional
  write ``UPDATE ... WHERE state = <expected>``, the AlertTransition row), and at most one
  alert per rule and fingerprint is active (a partial unique index): two evaluators running at once
  cannot double a transition, the loser's write changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from console.alerting import templating
from console.alerting.builtin import ensure_builtin_rules
from console.alerting.choices import (
    ACTIVE_STATES,
    ALERT_TRANSITIONS,
    NEW,
    SEVERITY_RANK,
    AlertState,
    RuleKind,
    Suppression,
)
from console.alerting.conditions import CHECKS, Candidate, Context, unit_for
from console.alerting.deadline import is_timeout, query_deadline
from console.alerting.labels import compiled, fingerprint, identity_fingerprint, matches_all
from console.alerting.models import Alert, AlertRule, AlertTransition, Silence
from console.alerting.summary import publish_summary
from console.core import audit, statemachine

log = logging.getLogger(__name__)

DEFAULT_SUMMARY = {
    RuleKind.THRESHOLD: "{{ rule }}: {{ series }} is {{ value }} {{ unit }} on {{ entity }} "
                        "(threshold {{ comparator }} {{ threshold }})",
    RuleKind.RELATIVE: "{{ rule }}: {{ series }} on {{ entity }} changed {{ value }} % against its median "
                       "({{ current }} now, {{ baseline }} usual)",
}
FALLBACK_SUMMARY = "{{ rule }} on {{ entity }}"


@dataclass
class CycleReport:
    """What one cycle did (the task logs it; the benchmark reads it)."""

    rules: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    created: int = 0
    fired: int = 0
    resolved: int = 0
    suppression_changes: int = 0
    duration_ms: float = 0.0
    followups: dict[int, datetime] = field(default_factory=dict)  # rule id -> when a pending alert is due

    @property
    def transitions(self) -> int:
        return self.created + self.fired + self.resolved

    @property
    def changed(self) -> bool:
        return bool(self.transitions or self.suppression_changes)


def rule_variables(rule: AlertRule, candidate: Candidate, severity: str) -> dict:
    return {"value": candidate.value, "threshold": rule.threshold, "comparator": rule.comparator,
            "unit": unit_for(rule.kind, rule.series), "series": rule.series, "rule": rule.name,
            "severity": severity, "entity": candidate.entity, "detail": candidate.detail,
            "current": candidate.current, "baseline": candidate.baseline}


def render_annotations(rule: AlertRule, candidate: Candidate, labels: dict[str, str], severity: str) -> dict:
    """The alert's summary, description and runbook link. Templates were validated on save; a template
    that still fails (it cannot, short of a database edit) falls back rather than losing the alert."""
    variables = rule_variables(rule, candidate, severity)
    summary_template = rule.summary_template or DEFAULT_SUMMARY.get(rule.kind, FALLBACK_SUMMARY)
    out = {}
    try:
        out["summary"] = templating.render(summary_template, labels, variables)
        description = templating.render(rule.description_template, labels, variables)
    except templating.TemplateError:
        out["summary"] = templating.render(FALLBACK_SUMMARY, labels, variables)
        description = ""
    if description:
        out["description"] = description
    if rule.runbook_url:
        out["runbook_url"] = rule.runbook_url
    return out


def _run_checks(rules: list[AlertRule], ctx: Context, report: CycleReport) -> dict[int, list[Candidate]]:
    results: dict[int, list[Candidate]] = {}
    limit = settings.CONSOLE_ALERT_RULE_TIMEOUT_S
    for rule in rules:
        check = CHECKS.get(rule.kind)
        if check is None:
            report.errors[rule.pk] = f"unknown rule kind {rule.kind!r}"
            continue
        started = time.monotonic()
        try:
            with query_deadline(limit):
                results[rule.pk] = check(rule, ctx)
        except Exception as exc:  # noqa: BLE001 - one bad rule never stops the cycle
            if is_timeout(exc):
                report.errors[rule.pk] = f"evaluation timed out after {limit:g} s"
            else:
                report.errors[rule.pk] = f"{type(exc).__name__}: {exc}"[:1000]
            log.warning("alert rule %s (%s) failed: %s", rule.pk, rule.name, report.errors[rule.pk])
            continue
        elapsed = time.monotonic() - started
        if elapsed > limit:  # Python-side work is not interruptible; say so rather than hide it
            report.errors[rule.pk] = f"evaluation took {elapsed:.1f} s (limit {limit:g} s)"
    return results


def evaluate(*, rule_ids: list[int] | None = None, now: datetime | None = None) -> CycleReport:
    """Evaluate the enabled rules (or only ``rule_ids``) once. See the module docstring."""
    started = time.perf_counter()
    now = now or timezone.now()
    report = CycleReport()
    if rule_ids is None:
        ensure_builtin_rules()
    rules_qs = AlertRule.objects.filter(enabled=True)
    if rule_ids is not None:
        rules_qs = rules_qs.filter(pk__in=rule_ids)
    rules = list(rules_qs)
    report.rules = len(rules)
    ctx = Context(now)
    results = _run_checks(rules, ctx, report)

    active_qs = Alert.objects.filter(state__in=ACTIVE_STATES)
    if rule_ids is not None:
        active_qs = active_qs.filter(rule_id__in=[r.pk for r in rules])
    # Keyed by identity (the labels without name labels): an alert about node 2 stays the same alert when
    # node 2 is renamed; its labels and fingerprint follow the new name (labels.identity_fingerprint).
    active: dict[int, dict[str, dict]] = defaultdict(dict)
    for row in active_qs.values("pk", "rule_id", "fingerprint", "state", "fire_at", "labels"):
        active[row["rule_id"]][identity_fingerprint(row["labels"])] = row

    try:
        with transaction.atomic():
            _apply(rules, results, active, now, report)
            if rule_ids is None:
                _resolve_orphans(now, report)
            _record_rule_outcomes(rules, report, now)
            if rule_ids is None or report.transitions:
                report.suppression_changes = refresh_suppression(ctx, now)
            if report.changed:
                publish_summary()
    except IntegrityError:
        # Another evaluator created the same alert first (the partial unique index): its cycle wins,
        # ours changed nothing (the transaction rolled back); the next tick sees the new state.
        log.info("alert evaluation raced another evaluator; leaving this cycle to it")
        report.created = report.fired = report.resolved = 0
    report.followups = _followups(rules, now)
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


def _apply(rules: list[AlertRule], results: dict[int, list[Candidate]], active: dict[int, dict[str, dict]],
           now: datetime, report: CycleReport) -> None:
    new_alerts: list[Alert] = []
    firing: list[tuple[dict, Alert]] = []  # (existing row, values to write)
    resolving: list[tuple[dict, str]] = []
    relabelled: list[Alert] = []  # active alerts whose name labels changed (a node renamed)
    for rule in rules:
        if rule.pk not in results:
            continue  # failed: its alerts stay as they are
        existing = active.get(rule.pk, {})
        seen: set[str] = set()
        matchers = compiled(rule.matchers)
        for candidate in results[rule.pk]:
            severity = candidate.severity or rule.severity
            labels = {**candidate.labels, "alertname": rule.name, "severity": severity}
            if matchers and not matches_all(matchers, labels):
                continue
            key = identity_fingerprint(labels)
            if key in seen:
                continue
            seen.add(key)
            fp = fingerprint(labels)
            row = existing.get(key)
            if row is None:
                state = AlertState.FIRING if rule.for_seconds == 0 else AlertState.PENDING
                new_alerts.append(Alert(
                    rule=rule, rule_name=rule.name, fingerprint=fp, labels=labels,
                    annotations=render_annotations(rule, candidate, labels, severity), state=state, severity=severity,
                    severity_rank=SEVERITY_RANK.get(severity, 0), value=candidate.value, active_since=now,
                    fire_at=now + timedelta(seconds=rule.for_seconds),
                    fired_at=now if state == AlertState.FIRING else None))
            elif row["state"] == AlertState.PENDING and row["fire_at"] <= now:
                firing.append(({**row, "fingerprint": fp}, Alert(
                    annotations=render_annotations(rule, candidate, labels, severity), value=candidate.value,
                    rule=rule, labels=labels)))
            elif row["labels"] != labels:
                relabelled.append(Alert(pk=row["pk"], labels=labels, fingerprint=fp, updated_at=now,
                                        annotations=render_annotations(rule, candidate, labels, severity)))
        for key, row in existing.items():
            if key not in seen:
                reason = ("condition cleared before the for-duration" if row["state"] == AlertState.PENDING
                          else "condition cleared")
                resolving.append((row, reason))

    fired_keys = [(a.rule_id, a.fingerprint) for a in new_alerts if a.state == AlertState.FIRING]
    fired_keys += [(row["rule_id"], row["fingerprint"]) for row, _ in firing]
    flaps = _flap_counts(fired_keys, now)
    threshold = settings.CONSOLE_ALERT_FLAP_THRESHOLD
    became_flapping: list[Alert] = []

    for alert in new_alerts:
        if alert.state == AlertState.FIRING:
            alert.flap_count = flaps.get((alert.rule_id, alert.fingerprint), 0) + 1
            alert.flapping = alert.flap_count >= threshold
    for alert in new_alerts:
        statemachine.check(ALERT_TRANSITIONS, NEW, alert.state, what="an alert")
    created = Alert.objects.bulk_create(new_alerts, batch_size=500)
    transitions = [AlertTransition(alert=a, rule_id=a.rule_id, fingerprint=a.fingerprint, time=now, from_state=NEW,
                                   to_state=a.state, value=a.value, reason="condition true") for a in created]
    became_flapping += [a for a in created if a.flapping]
    report.created = len(created)

    for row, values in firing:
        count = flaps.get((row["rule_id"], row["fingerprint"]), 0) + 1
        flapping = count >= threshold
        if not _transition(row, AlertState.FIRING, "condition held for the for-duration", now, transitions,
                           recorded_value=values.value, value=values.value, fired_at=now,
                           annotations=values.annotations, labels=values.labels, fingerprint=row["fingerprint"],
                           flap_count=count, flapping=flapping):
            continue  # someone else moved it first
        report.fired += 1
        if flapping:
            became_flapping.append(Alert(pk=row["pk"], rule_name=values.rule.name, fingerprint=row["fingerprint"],
                                         flap_count=count))

    if relabelled:
        Alert.objects.bulk_update(relabelled, ["labels", "fingerprint", "annotations", "updated_at"], batch_size=500)
    for row, reason in resolving:
        transitions += _resolve_row(row, reason, now)
    report.resolved += sum(1 for t in transitions if t.to_state == AlertState.RESOLVED)
    AlertTransition.objects.bulk_create(transitions, batch_size=500)
    for alert in became_flapping:
        if alert.flap_count == threshold:  # once per flapping episode, not at every later firing
            audit.record("flapping", None, object_type="alert", object_id=alert.pk,
                         detail={"rule": alert.rule_name, "fingerprint": alert.fingerprint,
                                 "firings": alert.flap_count, "window_s": settings.CONSOLE_ALERT_FLAP_WINDOW_S})


def _transition(row: dict, to: str, reason: str, now: datetime, collect: list[AlertTransition],
                recorded_value: float | None = None, **fields) -> bool:
    """Move the alert of ``row`` (pk, rule_id, fingerprint, state) to ``to`` through the state machine: a
    conditional write on the state read; its AlertTransition row (the dispatcher's outbox) goes to
    ``collect``, which the caller bulk-creates in the same transaction. No audit event: the transition
    rows are the alerts' log."""
    alert = Alert(pk=row["pk"], state=row["state"], rule_id=row["rule_id"], fingerprint=row["fingerprint"])
    return statemachine.transition(
        alert, to, reason, table=ALERT_TRANSITIONS, field="state", what="an alert", history=AlertTransition,
        history_fields={"rule_id": row["rule_id"], "fingerprint": row["fingerprint"], "value": recorded_value},
        collect=collect, verb=None, now=now, updated_at=now, **fields)


def _resolve_row(row: dict, reason: str, now: datetime) -> list[AlertTransition]:
    transitions: list[AlertTransition] = []
    _transition(row, AlertState.RESOLVED, reason, now, transitions, ended_at=now)
    return transitions


def resolve_alerts(queryset, reason: str, now: datetime | None = None) -> int:
    """Resolve the active alerts of ``queryset`` (a rule disabled or deleted), recording transitions."""
    now = now or timezone.now()
    transitions = []
    for row in queryset.filter(state__in=ACTIVE_STATES).values("pk", "rule_id", "fingerprint", "state"):
        transitions += _resolve_row(row, reason, now)
    AlertTransition.objects.bulk_create(transitions)
    return len(transitions)


def _resolve_orphans(now: datetime, report: CycleReport) -> None:
    """Active alerts whose rule was disabled or deleted behind the API's back."""
    orphans = Alert.objects.filter(Q(rule__isnull=True) | Q(rule__enabled=False))
    report.resolved += resolve_alerts(orphans, "rule disabled or deleted", now)


def _flap_counts(keys: list[tuple[int, str]], now: datetime) -> dict[tuple[int, str], int]:
    """How often each (rule, fingerprint) fired within the flap window, before now."""
    if not keys:
        return {}
    since = now - timedelta(seconds=settings.CONSOLE_ALERT_FLAP_WINDOW_S)
    rule_ids = {k[0] for k in keys}
    fps = {k[1] for k in keys}
    rows = (AlertTransition.objects.filter(rule_id__in=rule_ids, fingerprint__in=fps, to_state=AlertState.FIRING,
                                           time__gte=since)
            .values("rule_id", "fingerprint").annotate(n=Count("id")))
    return {(r["rule_id"], r["fingerprint"]): r["n"] for r in rows}


def _record_rule_outcomes(rules: list[AlertRule], report: CycleReport, now: datetime) -> None:
    ok = [r.pk for r in rules if r.pk not in report.errors]
    if ok:
        AlertRule.objects.filter(pk__in=ok).update(last_evaluated_at=now, last_error="")
    for pk, error in report.errors.items():
        AlertRule.objects.filter(pk=pk).update(last_evaluated_at=now, last_error=error, last_error_at=now)


def _followups(rules: list[AlertRule], now: datetime) -> dict[int, datetime]:
    """Pending alerts that become due before the next regular cycle: rule id -> the earliest due time."""
    horizon = now + timedelta(seconds=settings.CONSOLE_ALERT_EVAL_INTERVAL_S)
    rows = (Alert.objects.filter(state=AlertState.PENDING, rule_id__in=[r.pk for r in rules], fire_at__lt=horizon)
            .values_list("rule_id", "fire_at"))
    out: dict[int, datetime] = {}
    for rule_id, fire_at in rows:
        out[rule_id] = min(fire_at, out.get(rule_id, fire_at))
    return out


def refresh_suppression(ctx: Context, now: datetime) -> int:
    """Set each active alert's suppression: its node in maintenance (an explicit pause: recorded, never
    notified), a matching active silence, or inhibition by its node's firing "node unreachable" alert.
    Returns how many alerts changed."""
    silences = [(s.pk, compiled(s.matchers)) for s in Silence.objects.filter(starts_at__lte=now, ends_at__gt=now)]
    maintenance = ctx.maintenance_nodes()
    unreachable = {labels.get("node"): pk for pk, labels in Alert.objects.filter(
        state=AlertState.FIRING, rule__kind=RuleKind.NODE_UNREACHABLE).values_list("pk", "labels")}
    active = Alert.objects.filter(state__in=ACTIVE_STATES)
    if not silences and not maintenance and not unreachable:
        return active.exclude(suppressed=Suppression.NONE).update(
            suppressed=Suppression.NONE, silenced_by=None, inhibited_by=None, updated_at=now)
    changes: dict[tuple, list[int]] = defaultdict(list)
    for row in active.values("pk", "labels", "suppressed", "silenced_by_id", "inhibited_by_id"):
        labels = row["labels"]
        node = labels.get("node")
        wanted: tuple = (Suppression.NONE, None, None)
        if node is not None and node in maintenance:
            wanted = (Suppression.MAINTENANCE, None, None)
        else:
            silence = next((pk for pk, matchers in silences if matches_all(matchers, labels)), None)
            if silence is not None:
                wanted = (Suppression.SILENCED, silence, None)
            elif node is not None and node in unreachable and unreachable[node] != row["pk"]:
                wanted = (Suppression.INHIBITED, None, unreachable[node])
        if (row["suppressed"], row["silenced_by_id"], row["inhibited_by_id"]) != wanted:
            changes[wanted].append(row["pk"])
    total = 0
    for (reason, silence, inhibitor), pks in changes.items():
        for start in range(0, len(pks), 500):
            total += Alert.objects.filter(pk__in=pks[start:start + 500]).update(
                suppressed=reason, silenced_by_id=silence, inhibited_by_id=inhibitor, updated_at=now)
    return total
