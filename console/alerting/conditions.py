"""The conditions rules check: for one rule, the label sets for which its condition holds now.

One function per rule kind (``CHECKS``), each taking the rule and the cycle's :class:`Context` and
returning :class:`Candidate` objects. They only read. The context caches what several rules share
within one evaluation cycle (the newest value of a series for every entity, the nodes), so a thousand
rules over a handful of series cost a handful of queries.
"""

from __future__ import annotations

import bisect
import operator
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count

from console.alerting.choices import Comparator, RuleKind, Severity
from console.alerting.labels import COMMON_LABELS, SCOPE_LABELS
from console.telemetry import series as telemetry
from jobs.models import Instance, InstanceStateChange, Job
from models_registry.choices import CopyStatus
from models_registry.models import ModelCopy
from nodes.models import Accelerator, Node

COMPARE: dict[str, Callable[[float, float], bool]] = {
    Comparator.GT: operator.gt, Comparator.GE: operator.ge, Comparator.LT: operator.lt,
    Comparator.LE: operator.le, Comparator.EQ: operator.eq, Comparator.NE: operator.ne,
}
MIN_BASELINE_POINTS = 5  # a relative rule needs at least this many buckets of history per entity

# The labels each built-in kind gives its alerts (besides alertname and severity).
BUILTIN_LABELS: dict[str, tuple[str, ...]] = {
    RuleKind.NODE_UNREACHABLE: ("node", "node_name"),
    RuleKind.ACCELERATOR_HEALTH: ("node", "node_name", "accelerator", "index", "vendor", "health"),
    RuleKind.INSTANCE_CRASH_LOOP: ("job", "job_name", "instance", "replica", "node", "node_name"),
    RuleKind.JOB_DEGRADED: ("job", "job_name", "state"),
    RuleKind.PROBE_FAILING: ("node", "node_name"),
    RuleKind.DISK_NEARLY_FULL: ("node", "node_name", "mount"),
    RuleKind.MODEL_COPY_FAILED: ("version", "model_name", "version_name", "node", "node_name"),
}
BUILTIN_UNITS = {RuleKind.NODE_UNREACHABLE: "s", RuleKind.INSTANCE_CRASH_LOOP: "restarts",
                 RuleKind.DISK_NEARLY_FULL: "%", RuleKind.PROBE_FAILING: "errors"}


def labels_for(kind: str, series: str = "") -> tuple[str, ...]:
    """Every label the alerts of a rule of this kind (and series) carry."""
    if kind in BUILTIN_LABELS:
        return COMMON_LABELS + BUILTIN_LABELS[kind]
    definition = telemetry.SERIES.get(series)
    return COMMON_LABELS + (SCOPE_LABELS[definition.scope] if definition else ())


def unit_for(kind: str, series: str = "") -> str:
    if kind == RuleKind.RELATIVE:
        return "%"
    if kind in BUILTIN_UNITS:
        return BUILTIN_UNITS[kind]
    definition = telemetry.SERIES.get(series)
    return definition.unit if definition else ""


@dataclass
class Candidate:
    """A label set (without alertname and severity) for which the rule's condition holds now."""

    labels: dict[str, str]
    value: float | None = None
    entity: str = ""
    detail: str = ""
    severity: str | None = None  # overrides the rule's (accelerator health: the health itself)
    current: float | None = None  # relative rules: the newest value and the baseline median
    baseline: float | None = None


@dataclass
class Entry:
    """One entity's newest value of a series, with its labels as strings."""

    key: str  # the entity's id
    labels: dict[str, str]
    value: float
    entity: str


class Snapshot:
    """The newest value of one series for every entity, sorted by value so that a threshold is a bisection.

    Hot path (every rule on the series, every cycle): labels are turned into strings only for the entries
    some rule selects, once per cycle; a thousand rules over 8000 accelerators touch a few dozen."""

    def __init__(self, scope: str, rows: list, node_name: Callable[[Any], str]):
        rows.sort(key=lambda row: row[1])
        self.scope = scope
        self.rows = rows  # (labels, value) as telemetry.latest gives them
        self.values = [row[1] for row in rows]
        self._node_name = node_name
        self._entries: dict[int, Entry] = {}

    def entry(self, index: int) -> Entry:
        found = self._entries.get(index)
        if found is None:
            labels, value = self.rows[index]
            text = {k: str(v) for k, v in labels.items() if v is not None}
            if self.scope == "instance" and "node" in text:
                text["node_name"] = self._node_name(text["node"])
            found = Entry(text.get(ID_LABEL[self.scope], ""), text, value, entity_name(self.scope, text))
            self._entries[index] = found
        return found

    @property
    def entries(self) -> list[Entry]:
        return [self.entry(i) for i in range(len(self.rows))]

    def key(self, index: int) -> str:
        return str(self.rows[index][0].get(ID_LABEL[self.scope], ""))

    def select(self, comparator: str, threshold: float) -> list[Entry]:
        """The entries whose value satisfies ``value <comparator> threshold``, without a full scan."""
        values, n = self.values, len(self.values)
        if comparator == Comparator.GT:
            indices = range(bisect.bisect_right(values, threshold), n)
        elif comparator == Comparator.GE:
            indices = range(bisect.bisect_left(values, threshold), n)
        elif comparator == Comparator.LT:
            indices = range(bisect.bisect_left(values, threshold))
        elif comparator == Comparator.LE:
            indices = range(bisect.bisect_right(values, threshold))
        else:
            low, high = bisect.bisect_left(values, threshold), bisect.bisect_right(values, threshold)
            indices = range(low, high) if comparator == Comparator.EQ else [*range(low), *range(high, n)]
        return [self.entry(i) for i in indices]


def entity_name(scope: str, labels: dict[str, str]) -> str:
    if scope == "accelerator":
        return f"{labels.get('node_name', labels.get('node', '?'))}/{labels.get('vendor', '')}{labels.get('index', '')}"
    if scope == "job":
        return labels.get("job_name", labels.get("job", ""))
    if scope == "instance":
        return f"{labels.get('job_name', labels.get('job', ''))}/r{labels.get('replica', '')}"
    return labels.get("node_name", labels.get("node", ""))


ID_LABEL = {"node": "node", "accelerator": "accelerator", "job": "job", "instance": "instance"}


class Context:
    """What one evaluation cycle has read, shared by its rules. Failures are cached too, so that a
    series whose query timed out fails the other rules on it at once instead of timing out again."""

    def __init__(self, now: datetime):
        self.now = now
        self._snapshots: dict[str, Snapshot | Exception] = {}
        self._medians: dict[tuple[str, int], dict[str, float] | Exception] = {}
        self._nodes: dict[int, dict] | None = None

    # -- nodes

    @property
    def nodes(self) -> dict[int, dict]:
        """Every node by id: name, status and what the probe checks need (one query per cycle)."""
        if self._nodes is None:
            rows = Node.objects.values("pk", "name", "status", "status_changed_at", "status_detail", "probe_errors",
                                       "last_probe_at", "probe_interval_s", "created_at")
            self._nodes = {row["pk"]: row for row in rows}
        return self._nodes

    def node_name(self, node_id: Any) -> str:
        try:
            row = self.nodes.get(int(node_id))
        except (TypeError, ValueError):
            return ""
        return row["name"] if row else ""

    def maintenance_nodes(self) -> set[str]:
        return {str(pk) for pk, row in self.nodes.items() if row["status"] == "maintenance"}

    # -- series

    def snapshot(self, series: str) -> Snapshot:
        cached = self._snapshots.get(series)
        if cached is None:
            try:
                cached = self._read_snapshot(series)
            except Exception as exc:  # noqa: BLE001 - remembered and re-raised for each rule on it
                cached = exc
            self._snapshots[series] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def _read_snapshot(self, series: str) -> Snapshot:
        definition = telemetry.get_series(series)
        rows = [(labels, value) for labels, value, _time in
                telemetry.latest(series, settings.CONSOLE_ALERT_LOOKBACK_S)]
        return Snapshot(definition.scope, rows, self.node_name)

    def medians(self, series: str, window_s: int) -> dict[str, float]:
        """Per entity id, the median of the series' bucket averages over the last ``window_s``."""
        key = (series, window_s)
        cached = self._medians.get(key)
        if cached is None:
            try:
                cached = self._read_medians(series, window_s)
            except Exception as exc:  # noqa: BLE001
                cached = exc
            self._medians[key] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def _read_medians(self, series: str, window_s: int) -> dict[str, float]:
        definition = telemetry.get_series(series)
        step = max(60, window_s // 60)
        id_label = ID_LABEL[definition.scope]
        out = {}
        for labels, points in telemetry.query(series, start=self.now - timedelta(seconds=window_s), end=self.now,
                                              step=step):
            values = [v for _t, v in points]
            if len(values) >= MIN_BASELINE_POINTS:
                out[str(labels.get(id_label))] = statistics.median(values)
        return out


# ------------------------------------------------------------------------------------------- checks


def check_threshold(rule, ctx: Context) -> list[Candidate]:
    """``series <comparator> threshold`` on each entity's newest value (within CONSOLE_ALERT_LOOKBACK_S).
    (The rule's matchers are applied by the evaluator, to every kind alike.)"""
    return [Candidate(entry.labels, entry.value, entry.entity)
            for entry in ctx.snapshot(rule.series).select(rule.comparator, rule.threshold)]


def check_relative(rule, ctx: Context) -> list[Candidate]:
    """The change in percent of each entity's newest value against the median of its own history over
    ``window_seconds`` (default one hour), compared with the threshold: ``< -50`` is "down more than 50 %"."""
    compare = COMPARE[rule.comparator]
    medians = ctx.medians(rule.series, rule.window_seconds or 3600)
    snapshot = ctx.snapshot(rule.series)
    out = []
    for index, (_labels, value) in enumerate(snapshot.rows):
        baseline = medians.get(snapshot.key(index))
        if not baseline:
            continue
        change = (value - baseline) / abs(baseline) * 100
        if compare(change, rule.threshold):
            entry = snapshot.entry(index)
            out.append(Candidate(entry.labels, change, entry.entity, current=value, baseline=baseline))
    return out


def _node_labels(pk, row) -> dict[str, str]:
    return {"node": str(pk), "node_name": row["name"]}


def check_node_unreachable(rule, ctx: Context) -> list[Candidate]:
    out = []
    for pk, row in ctx.nodes.items():
        if row["status"] != "unreachable":
            continue
        since = row["status_changed_at"]
        seconds = (ctx.now - since).total_seconds() if since else None
        out.append(Candidate(_node_labels(pk, row), seconds, row["name"], detail=(row["status_detail"] or "")[:500]))
    return out


def check_accelerator_health(rule, ctx: Context) -> list[Candidate]:
    rows = (Accelerator.objects.filter(present=True, health__in=["warning", "critical"])
            .values("pk", "index", "vendor", "node_id", "node__name", "health"))
    out = []
    for row in rows:
        labels = {"node": str(row["node_id"]), "node_name": row["node__name"], "accelerator": str(row["pk"]),
                  "index": str(row["index"]), "vendor": row["vendor"], "health": row["health"]}
        severity = Severity.CRITICAL if row["health"] == "critical" else rule.severity
        out.append(Candidate(labels, 2.0 if row["health"] == "critical" else 1.0, entity_name("accelerator", labels),
                             detail=row["health"], severity=severity))
    return out


def check_instance_crash_loop(rule, ctx: Context) -> list[Candidate]:
    """Instances that went to ``restarting`` at least ``threshold`` times within ``window_seconds``."""
    window = rule.window_seconds or 600
    compare = COMPARE[rule.comparator]
    counts = dict(InstanceStateChange.objects.filter(time__gte=ctx.now - timedelta(seconds=window),
                                                     to_state="restarting")
                  .values_list("instance_id").annotate(n=Count("id")).values_list("instance_id", "n"))
    looping = [pk for pk, n in counts.items() if compare(n, rule.threshold)]
    if not looping:
        return []
    rows = (Instance.objects.filter(pk__in=looping).exclude(state="stopped")
            .values("pk", "replica", "job_id", "job__name", "node_id", "node__name", "last_exit_reason"))
    out = []
    for row in rows:
        labels = {"job": str(row["job_id"]), "job_name": row["job__name"], "instance": str(row["pk"]),
                  "replica": str(row["replica"]), "node": str(row["node_id"] or ""),
                  "node_name": row["node__name"] or ""}
        labels = {k: v for k, v in labels.items() if v != ""}
        out.append(Candidate(labels, float(counts[row["pk"]]), entity_name("instance", labels),
                             detail=(row["last_exit_reason"] or "")[:500]))
    return out


def check_job_degraded(rule, ctx: Context) -> list[Candidate]:
    rows = Job.objects.filter(desired_state="running", state__in=["degraded", "failed"]).values(
        "pk", "name", "state", "state_detail")
    out = []
    for row in rows:
        labels = {"job": str(row["pk"]), "job_name": row["name"], "state": row["state"]}
        severity = Severity.CRITICAL if row["state"] == "failed" else rule.severity
        out.append(Candidate(labels, None, row["name"], detail=(row["state_detail"] or "")[:500], severity=severity))
    return out


def check_probe_failing(rule, ctx: Context) -> list[Candidate]:
    """Nodes whose last probe reported errors (a tool failed), or whose probe has not run for three
    intervals (at least a minute): the prober itself may be down."""
    out = []
    for pk, row in ctx.nodes.items():
        if row["status"] in ("maintenance", "unreachable"):
            continue
        errors = [str(e) for e in (row["probe_errors"] or [])]
        stale_after = max(3 * (row["probe_interval_s"] or 15), 60)
        last = row["last_probe_at"] or row["created_at"]
        age = (ctx.now - last).total_seconds() if last else 0
        if errors:
            out.append(Candidate(_node_labels(pk, row), float(len(errors)), row["name"],
                                 detail="; ".join(errors)[:500]))
        elif age > stale_after:
            out.append(Candidate(_node_labels(pk, row), 0.0, row["name"],
                                 detail=f"no probe result for {int(age)} s (the prober may be down)"))
    return out


def check_disk_nearly_full(rule, ctx: Context) -> list[Candidate]:
    """Each mounted file system the probe reported (facts.disks): used percent against the threshold."""
    compare = COMPARE[rule.comparator]
    out = []
    for row in Node.objects.exclude(status="maintenance").values("pk", "name", "facts__disks"):
        disks = row["facts__disks"]
        if not isinstance(disks, list):
            continue
        for disk in disks:
            if not isinstance(disk, dict):
                continue
            total, used = disk.get("total_bytes") or 0, disk.get("used_bytes") or 0
            if not isinstance(total, int | float) or not isinstance(used, int | float) or total <= 0:
                continue
            percent = used / total * 100
            if compare(percent, rule.threshold):
                mount = str(disk.get("mount") or "?")
                labels = {"node": str(row["pk"]), "node_name": row["name"], "mount": mount}
                out.append(Candidate(labels, percent, f"{row['name']}:{mount}",
                                     detail=f"{mount} ({disk.get('filesystem', '')}): {int(used)} of {int(total)} "
                                            "bytes used"))
    return out


def check_model_copy_failed(rule, ctx: Context) -> list[Candidate]:
    """Copies of model versions that failed (transfer, verification or removal); the detail says why.
    A cancelled copy is failed too: the alert resolves when the copy is asked for again or removed."""
    rows = ModelCopy.objects.filter(status=CopyStatus.FAILED).values(
        "version_id", "version__model__name", "version__version", "node_id", "node__name", "status_detail")
    out = []
    for row in rows:
        labels = {"version": str(row["version_id"]), "model_name": row["version__model__name"],
                  "version_name": row["version__version"], "node": str(row["node_id"]), "node_name": row["node__name"]}
        entity = f"{row['version__model__name']}:{row['version__version']}@{row['node__name']}"
        out.append(Candidate(labels, 1.0, entity, detail=(row["status_detail"] or "")[:500]))
    return out


CHECKS: dict[str, Callable[[Any, Context], list[Candidate]]] = {
    RuleKind.THRESHOLD: check_threshold,
    RuleKind.RELATIVE: check_relative,
    RuleKind.NODE_UNREACHABLE: check_node_unreachable,
    RuleKind.ACCELERATOR_HEALTH: check_accelerator_health,
    RuleKind.INSTANCE_CRASH_LOOP: check_instance_crash_loop,
    RuleKind.JOB_DEGRADED: check_job_degraded,
    RuleKind.PROBE_FAILING: check_probe_failing,
    RuleKind.DISK_NEARLY_FULL: check_disk_nearly_full,
    RuleKind.MODEL_COPY_FAILED: check_model_copy_failed,
}
"""One check per rule kind. Adding a kind: a function here, its labels in BUILTIN_LABELS, a choice."""
