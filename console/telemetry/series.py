"""The telemetry series: their registry, and the two reads everything else uses.

Stable interface (the REST API, the pages, the Prometheus exposition and alerting build on it):

``SERIES: dict[str, SeriesDef]``
    Every series by name, ``<scope>.<metric>`` with scope ``node``, ``accelerator``, ``job`` or
    ``instance`` (``accelerator.temperature_c``, ``node.cpu_percent``, ``job.output_tokens_per_s``,
    ``job.ttft_p99_ms``). A :class:`SeriesDef` carries ``name``, ``scope``, ``unit``, ``description``.

``query(series, *, node=None, accelerator=None, job=None, instance=None, start, end, step=None)``
    ``-> list[SeriesPoints]``; each item is a ``(labels, points)`` named tuple, one per entity (one
    accelerator, one job...), ``points`` a list of ``(t, value)`` with ``t`` in epoch seconds (float),
    ascending. ``start``/``end`` are aware datetimes or epoch seconds; ``step`` (seconds) averages the
    samples into buckets of that width (``t`` is the bucket's start; ``accelerator.health`` takes the
    worst, not the mean). Without ``step`` one is chosen so that a chart gets at most about
    :data:`AUTO_POINTS` points per entity; short recent ranges come back as sampled (no bucketing).
    Ranges within the raw retention (default 24 h) and at most ``CONSOLE_TELEMETRY_RAW_QUERY_MAX_S``
    long (default 6 h) read the raw samples; others read the one-minute rollups (a step of at least
    60 s) up to the rollup watermark, joined with the raw samples after it, averaged per minute (the
    rollups lag a few minutes: without the join a 24 h chart would end minutes ago).
    ``query_with_plan()`` returns the :class:`QueryPlan` (step, resolution) as well.
    Filters that do not apply to the series' scope, inverted or too long ranges, too many points and
    unknown series raise :class:`SeriesError`, whose ``errors`` is ``{field: [message]}`` (a 400).

``latest(series, window_s, *, node=None, accelerator=None, job=None, instance=None)``
    ``-> list[LatestValue]``; each a ``(labels, value, time)`` named tuple: the newest sample of every
    entity that has one within the last ``window_s`` seconds (``time`` an aware datetime). One query,
    two correlated index lookups per entity on ``(entity, ts)``: cheap for 1000 nodes' series, which
    is what alert evaluation needs.

Gateway series (``gateway.requests_per_min``, ``gateway.errors_per_min``, ``gateway.tokens_per_min``)
have scope ``job`` (labels and the ``job`` filter as job series) but are read from the gateway's usage
rows (``jobs.UsageMinute``, one per gateway process, minute, key and model), summed per job and minute:
always at a step of whole minutes, a rate per minute within each bucket; ``latest`` gives the newest
complete minute.

``get_series(name)`` returns the :class:`SeriesDef` or raises SeriesError; ``series_list(scope)``
lists definitions; ``HEALTH_CODES`` maps ``ok``/``warning``/``critical`` to 0/1/2.

Labels: ``node`` scope ``{"node": id, "node_name"}``; ``accelerator`` ``{"node", "node_name",
"accelerator": id, "index", "vendor"}``; ``job`` ``{"job": id, "job_name"}``; ``instance`` ``{"job",
"job_name", "instance": id, "replica", "node"}``. Ids are integers, names strings.

Samples are written by the collector (console.telemetry.collector) in batches, rolled up and pruned
by console.telemetry.retention; nothing else writes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.apps import apps
from django.conf import settings
from django.db.models import Avg, Count, ExpressionWrapper, F, Max, OuterRef, Subquery, Sum, Value
from django.db.models import BigIntegerField as BigIntegerOutput
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["AUTO_POINTS", "HEALTH_CODES", "HEALTH_NAMES", "MAX_POINTS_PER_SERIES", "MAX_TOTAL_POINTS", "SCOPES",
           "SERIES", "LatestValue", "QueryPlan", "SeriesDef", "SeriesError", "SeriesPoints", "get_series", "latest",
           "plan_query", "query", "query_with_plan", "series_list"]

SCOPES = ("node", "accelerator", "job", "instance")
AUTO_POINTS = 1200  # points per entity a chart gets when the caller names no step
MAX_POINTS_PER_SERIES = 11_000  # (end - start) / step, as Prometheus' query_range limit
MAX_TOTAL_POINTS = 500_000  # over all entities of one answer
ROLLUP_STEP_S = 60
RAW_NATIVE_S = 1  # the finest sampling interval: what an unbucketed raw answer is estimated at


@dataclass(frozen=True)
class _Scope:
    entity_model: str  # "app.Model" of the entity
    entity_field: str  # the sample table's column naming the entity
    raw: dict[str, str]  # "raw"/"minute" -> "app.Model" of the sample tables
    filters: dict[str, str]  # query keyword -> sample column
    label_fields: dict[str, str]  # label -> entity model lookup


_SCOPES: dict[str, _Scope] = {
    "node": _Scope("nodes.Node", "node_id", {"raw": "nodes.NodeSample", "minute": "nodes.NodeSampleMinute"},
                   {"node": "node_id"}, {"node": "pk", "node_name": "name"}),
    "accelerator": _Scope(
        "nodes.Accelerator", "accelerator_id",
        {"raw": "nodes.AcceleratorSample", "minute": "nodes.AcceleratorSampleMinute"},
        {"node": "node_id", "accelerator": "accelerator_id"},
        {"node": "node_id", "node_name": "node__name", "accelerator": "pk", "index": "index", "vendor": "vendor"}),
    "job": _Scope("jobs.Job", "job_id", {"raw": "jobs.JobSample", "minute": "jobs.JobSampleMinute"},
                  {"job": "job_id"}, {"job": "pk", "job_name": "name"}),
    "instance": _Scope(
        "jobs.Instance", "instance_id", {"raw": "jobs.InstanceSample", "minute": "jobs.InstanceSampleMinute"},
        {"job": "job_id", "instance": "instance_id", "node": "node_id"},
        {"job": "job_id", "job_name": "job__name", "instance": "pk", "replica": "replica", "node": "node_id"}),
}


@dataclass(frozen=True)
class SeriesDef:
    """One telemetry series: where it is stored and what it means."""

    name: str
    scope: str
    unit: str
    description: str
    column: str
    aggregate: str = "avg"  # how samples combine into a bucket: "avg" or "max"
    source: str = "samples"  # "samples": the scope's sample tables; "usage": the gateway's UsageMinute

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "scope": self.scope, "unit": self.unit, "description": str(self.description)}


def _defs(scope: str, rows: list[tuple]) -> dict[str, SeriesDef]:
    out = {}
    for row in rows:
        column, unit, description, *rest = row
        name = f"{scope}.{column}"
        out[name] = SeriesDef(name, scope, unit, description, column, *rest)
    return out


_ENGINE_ROWS = [
    ("output_tokens_per_s", "tokens/s", _("Generated (output) tokens per second")),
    ("prompt_tokens_per_s", "tokens/s", _("Prompt (input) tokens processed per second")),
    ("requests_per_s", "requests/s", _("Requests finished per second")),
    ("ttft_p50_ms", "ms", _("Time to first token, median over the scrape interval")),
    ("ttft_p99_ms", "ms", _("Time to first token, 99th percentile over the scrape interval")),
    ("itl_p50_ms", "ms", _("Inter-token latency, median")),
    ("itl_p99_ms", "ms", _("Inter-token latency, 99th percentile")),
    ("e2e_p50_ms", "ms", _("End-to-end request latency, median")),
    ("e2e_p99_ms", "ms", _("End-to-end request latency, 99th percentile")),
    ("requests_running", "requests", _("Requests being processed")),
    ("requests_waiting", "requests", _("Requests waiting in the engine's queue")),
    ("kv_cache_usage_percent", "%", _("KV-cache usage")),
]

SERIES: dict[str, SeriesDef] = {
    **_defs("node", [
        ("cpu_percent", "%", _("CPU busy, all cores")),
        ("memory_used_bytes", "bytes", _("Memory in use (total minus available)")),
        ("memory_percent", "%", _("Memory in use")),
        ("load1", "", _("Load average over one minute")),
        ("disk_used_percent", "%", _("Root file system used")),
        ("network_rx_bytes_per_s", "bytes/s", _("Network received, all interfaces but loopback")),
        ("network_tx_bytes_per_s", "bytes/s", _("Network sent, all interfaces but loopback")),
    ]),
    **_defs("accelerator", [
        ("utilization_percent", "%", _("Accelerator (AI core) utilisation")),
        ("memory_used_bytes", "bytes", _("Accelerator memory in use")),
        ("memory_percent", "%", _("Accelerator memory in use")),
        ("temperature_c", "°C", _("Accelerator temperature")),
        ("power_w", "W", _("Accelerator power draw")),
        ("health", "", _("Health: 0 ok, 1 warning, 2 critical (worst of a bucket)"), "max"),
    ]),
    **_defs("job", _ENGINE_ROWS + [
        ("instances_up", "instances", _("Instances whose metrics answered")),
    ]),
    **_defs("instance", _ENGINE_ROWS + [
        ("up", "", _("1 when the instance's metrics answered, 0 when the scrape failed")),
    ]),
    # The gateway's counters, per job, from its usage rows (jobs.gateway.models.UsageMinute): the sum over
    # gateway processes, keys, routes and model names of one minute, divided by the bucket's minutes.
    # Requests that reached no job (unknown model, 401...) are not in them; the usage API has those.
    **{f"gateway.{column}": SeriesDef(f"gateway.{column}", "job", unit, description, column, "sum", "usage")
       for column, unit, description in [
           ("requests_per_min", "requests/min", _("Requests through the gateway per minute")),
           ("errors_per_min", "errors/min", _("Requests through the gateway that failed, per minute")),
           ("tokens_per_min", "tokens/min", _("Prompt and completion tokens through the gateway per minute")),
       ]},
}
"""Every series by name. Alert rules name series from here; the API lists them."""

# The UsageMinute sums behind each gateway series.
_USAGE_SUMS = {"requests_per_min": ("requests",), "errors_per_min": ("errors",),
               "tokens_per_min": ("prompt_tokens", "completion_tokens")}

HEALTH_CODES = {"ok": 0, "warning": 1, "critical": 2}
HEALTH_NAMES = {code: name for name, code in HEALTH_CODES.items()}


class SeriesError(ValueError):
    """Bad query input; ``errors`` is ``{field: [message, ...]}`` (the API answers 400 with it)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class SeriesPoints(NamedTuple):
    labels: dict[str, Any]
    points: list[tuple[float, float]]


class LatestValue(NamedTuple):
    labels: dict[str, Any]
    value: float
    time: datetime


@dataclass(frozen=True)
class QueryPlan:
    """What a query reads: the table resolution, the bucket width, the time range (epoch ms)."""

    series: SeriesDef
    start_ms: int
    end_ms: int
    step_s: float | None  # None: raw samples as taken
    resolution: str  # "raw" or "1m"


def series_list(scope: str | None = None) -> list[SeriesDef]:
    """The series definitions, optionally of one scope, in registry order."""
    return [s for s in SERIES.values() if scope is None or s.scope == scope]


def get_series(name: Any) -> SeriesDef:
    if not isinstance(name, str) or name not in SERIES:
        raise SeriesError({"series": [f"unknown series {name!r}; GET metrics/series/ lists them"]})
    return SERIES[name]


# --------------------------------------------------------------------------------------------- time


def to_ms(value: Any, field: str) -> int:
    """Epoch milliseconds from an aware datetime, or epoch seconds (int/float/numeric string), or an
    ISO 8601 string (naive means UTC)."""
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise SeriesError({field: ["must be a finite number"]})
        return int(value * 1000)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return to_ms(float(text), field)
        except ValueError:
            pass
        try:
            return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")), field)
        except ValueError:
            pass
    raise SeriesError({field: ["must be an ISO 8601 time or epoch seconds"]})


def now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# --------------------------------------------------------------------------------------------- query


def _model(label: str):
    return apps.get_model(label)


def _filters(series: SeriesDef, given: dict[str, Any]) -> dict[str, int]:
    scope = _SCOPES[series.scope]
    errors: dict[str, list[str]] = {}
    out = {}
    for key, value in given.items():
        if value is None or value == "":
            continue
        if key not in scope.filters:
            allowed = ", ".join(scope.filters) or "none"
            errors[key] = [f"does not apply to {series.scope} series (filters: {allowed})"]
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            errors[key] = ["must be an integer id"]
            continue
        if number < 1 or number > 2**62:
            errors[key] = ["must be a positive integer id"]
            continue
        out[scope.filters[key]] = number
    if errors:
        raise SeriesError(errors)
    return out


def _nice_step(seconds: float, minimum: int) -> int:
    """The smallest 'round' step (1 2 5 10 15 30 s, whole minutes...) of at least ``seconds``."""
    for candidate in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if candidate >= max(seconds, minimum):
            return candidate
    return int(math.ceil(seconds / 86400) * 86400)


def plan_query(series: str | SeriesDef, *, start: Any, end: Any, step: Any = None,
               now: int | None = None, entity_count: int = 1) -> QueryPlan:
    """Validate a query's range and step, and choose its table and bucket width. Raises SeriesError."""
    definition = series if isinstance(series, SeriesDef) else get_series(series)
    now = now if now is not None else now_ms()
    errors: dict[str, list[str]] = {}
    try:
        end_ms = to_ms(end, "end") if end not in (None, "") else now
    except SeriesError as exc:
        errors.update(exc.errors)
        end_ms = now
    try:
        start_ms = to_ms(start, "start") if start not in (None, "") else end_ms - 3600_000
    except SeriesError as exc:
        errors.update(exc.errors)
        start_ms = end_ms - 3600_000
    step_s: float | None = None
    if step not in (None, ""):
        try:
            step_s = float(step)
        except (TypeError, ValueError):
            errors["step"] = ["must be a number of seconds"]
        else:
            if not math.isfinite(step_s) or step_s < 1:
                errors["step"] = ["must be at least 1 second"]
    if errors:
        raise SeriesError(errors)
    max_range_ms = (settings.CONSOLE_TELEMETRY_ROLLUP_RETENTION_S + 86400) * 1000
    if end_ms <= start_ms:
        raise SeriesError({"end": ["must be after start"]})
    if end_ms - start_ms > max_range_ms:
        raise SeriesError({"start": [f"the range may be at most {max_range_ms // 86_400_000} days long"]})
    if end_ms > now + 86_400_000:
        raise SeriesError({"end": ["is more than a day in the future"]})
    range_s = (end_ms - start_ms) / 1000
    raw_ok = (start_ms >= now - settings.CONSOLE_TELEMETRY_RAW_RETENTION_S * 1000
              and range_s <= settings.CONSOLE_TELEMETRY_RAW_QUERY_MAX_S)
    resolution = "raw" if raw_ok else "1m"
    if step_s is None:
        wanted = range_s / AUTO_POINTS
        if resolution == "raw" and wanted <= RAW_NATIVE_S:
            chosen: float | None = None
        else:
            chosen = _nice_step(wanted, ROLLUP_STEP_S if resolution == "1m" else 1)
    else:
        # Judged on the step asked for, as Prometheus does, before a rollup rounds it up.
        if range_s / step_s > MAX_POINTS_PER_SERIES:
            raise SeriesError({"step": [f"too many points: (end - start) / step may be at most "
                                        f"{MAX_POINTS_PER_SERIES}; raise step or shorten the range"]})
        chosen = step_s
        if resolution == "1m":
            chosen = max(ROLLUP_STEP_S, math.ceil(step_s / ROLLUP_STEP_S) * ROLLUP_STEP_S)
    per_entity = range_s / (chosen or RAW_NATIVE_S)
    if per_entity * max(entity_count, 1) > MAX_TOTAL_POINTS:
        raise SeriesError({"step": [f"too many points ({int(per_entity * entity_count)} for {entity_count} "
                                    f"entities; at most {MAX_TOTAL_POINTS}): filter by node, accelerator, job "
                                    "or instance, raise step or shorten the range"]})
    return QueryPlan(definition, start_ms, end_ms, chosen, resolution)


def query_with_plan(series: str, *, node: Any = None, accelerator: Any = None, job: Any = None,
                    instance: Any = None, start: Any, end: Any, step: Any = None,
                    now: int | None = None) -> tuple[QueryPlan, list[SeriesPoints]]:
    """:func:`query`, returning the plan (step and resolution used) with the points."""
    definition = get_series(series)
    scope = _SCOPES[definition.scope]
    filters = _filters(definition, {"node": node, "accelerator": accelerator, "job": job, "instance": instance})
    if definition.source == "usage":
        return _usage_query(definition, filters, start=start, end=end, step=step, now=now)
    entities = _model(scope.entity_model).objects.all()
    for column, value in filters.items():
        lookup = "pk" if column == scope.entity_field else column
        entities = entities.filter(**{lookup: value})
    plan = plan_query(definition, start=start, end=end, step=step, now=now, entity_count=entities.count())
    if plan.resolution == "1m":
        by_entity = _joined_rollup_query(definition, plan, filters)
        labels = _labels(definition.scope, list(by_entity))
        return plan, [SeriesPoints(labels.get(pk, _orphan_labels(definition.scope, pk)), points)
                      for pk, points in by_entity.items()]
    table = _model(scope.raw["raw"])
    column = definition.column
    rows = table.objects.filter(ts__gte=plan.start_ms, ts__lt=plan.end_ms, **filters,
                                **{f"{column}__isnull": False})
    entity = scope.entity_field
    if plan.step_s is None:
        values = rows.order_by(entity, "ts").values_list(entity, "ts", column)
    else:
        step_ms = int(plan.step_s * 1000)
        # Integer division on both SQLite and PostgreSQL (ts and step are integers): the bucket start.
        bucket = ExpressionWrapper(F("ts") / Value(step_ms) * Value(step_ms), output_field=BigIntegerOutput())
        aggregate = Max(column) if definition.aggregate == "max" else Avg(column)
        values = (rows.annotate(bucket=bucket).values(entity, "bucket").annotate(v=aggregate)
                  .order_by(entity, "bucket").values_list(entity, "bucket", "v"))
    by_entity: dict[int, list[tuple[float, float]]] = {}
    for entity_id, ts, value in values.iterator(chunk_size=5000):
        by_entity.setdefault(entity_id, []).append((int(ts) / 1000, float(value)))
    labels = _labels(definition.scope, list(by_entity))
    return plan, [SeriesPoints(labels.get(pk, _orphan_labels(definition.scope, pk)), points)
                  for pk, points in by_entity.items()]


def _rolled_up_to(raw_table: str) -> int:
    """How far (epoch ms, exclusive) ``raw_table`` is rolled up; 0 when it never was."""
    mark = (_model("console.RollupWatermark").objects.filter(table=raw_table)
            .values_list("rolled_up_to", flat=True).first())
    return int(mark or 0)


def _joined_rollup_query(definition: SeriesDef, plan: QueryPlan, filters: dict[str, int]
                         ) -> dict[int, list[tuple[float, float]]]:
    """A long range: the one-minute rollups up to the rollup watermark, then the raw samples after it
    (the rollups run minutes behind; without the raw tail a 24 h chart ends minutes ago and its newest
    value reads 0). Both are bucketed at the plan's step; the raw tail is first averaged per minute, so
    a bucket that straddles the watermark weighs each minute once, as the rollups do."""
    scope = _SCOPES[definition.scope]
    column, entity = definition.column, scope.entity_field
    step_ms = int((plan.step_s or ROLLUP_STEP_S) * 1000)
    is_max = definition.aggregate == "max"
    aggregate = Max if is_max else Avg
    # Raw samples are read only where they are kept and not yet rolled up.
    raw_kept_from = now_ms() - settings.CONSOLE_TELEMETRY_RAW_RETENTION_S * 1000
    raw_from = min(max(plan.start_ms, _rolled_up_to(scope.raw["raw"]), raw_kept_from), plan.end_ms)
    # bucket -> [sum of minute values (or the max), number of minutes]
    buckets: dict[int, dict[int, list[float]]] = {}

    def add(entity_id: int, bucket: int, value: float, minutes: int) -> None:
        slot = buckets.setdefault(entity_id, {}).setdefault(bucket, [0.0, 0])
        if is_max:
            slot[0] = value if slot[1] == 0 else max(slot[0], value)
        else:
            slot[0] += value * minutes
        slot[1] += minutes

    def bucketed(table: str, start_ms: int, end_ms: int, width_ms: int):
        rows = _model(table).objects.filter(ts__gte=start_ms, ts__lt=end_ms, **filters,
                                            **{f"{column}__isnull": False})
        bucket = ExpressionWrapper(F("ts") / Value(width_ms) * Value(width_ms), output_field=BigIntegerOutput())
        return (rows.annotate(bucket=bucket).values(entity, "bucket")
                .annotate(v=aggregate(column), n=Count("pk")).order_by(entity, "bucket")
                .values_list(entity, "bucket", "v", "n"))

    if raw_from > plan.start_ms:
        for entity_id, bucket, value, minutes in bucketed(scope.raw["minute"], plan.start_ms, raw_from, step_ms):
            add(entity_id, int(bucket), float(value), int(minutes))
    if raw_from < plan.end_ms:
        minute_ms = ROLLUP_STEP_S * 1000
        for entity_id, minute, value, _n in bucketed(scope.raw["raw"], raw_from, plan.end_ms, minute_ms):
            add(entity_id, int(minute) // step_ms * step_ms, float(value), 1)
    out: dict[int, list[tuple[float, float]]] = {}
    for entity_id, by_bucket in buckets.items():
        out[entity_id] = [(ts / 1000, total if is_max else total / minutes)
                          for ts, (total, minutes) in sorted(by_bucket.items())]
    return out


def query(series: str, *, node: Any = None, accelerator: Any = None, job: Any = None, instance: Any = None,
          start: Any, end: Any, step: Any = None) -> list[SeriesPoints]:
    """The points of ``series`` between ``start`` and ``end``, one ``(labels, points)`` per entity.

    See the module docstring; raises :class:`SeriesError` for bad input.
    """
    return query_with_plan(series, node=node, accelerator=accelerator, job=job, instance=instance,
                           start=start, end=end, step=step)[1]


def latest(series: str, window_s: float, *, node: Any = None, accelerator: Any = None, job: Any = None,
           instance: Any = None) -> list[LatestValue]:
    """The newest value of ``series`` of every entity sampled in the last ``window_s`` seconds."""
    definition = get_series(series)
    scope = _SCOPES[definition.scope]
    filters = _filters(definition, {"node": node, "accelerator": accelerator, "job": job, "instance": instance})
    try:
        window_ms = int(float(window_s) * 1000)
    except (TypeError, ValueError):
        raise SeriesError({"window_s": ["must be a number of seconds"]}) from None
    if window_ms <= 0:
        raise SeriesError({"window_s": ["must be positive"]})
    if definition.source == "usage":
        return _usage_latest(definition, filters, window_ms)
    cutoff = now_ms() - window_ms
    table = _model(scope.raw["raw"])
    column = definition.column
    # Two correlated lookups per entity, each one seek on the (entity, ts) index: the newest sample
    # with a value. Do not turn this into a scan of the window: 1000 nodes at 1 s is 480k rows a minute.
    newest = table.objects.filter(**{scope.entity_field: OuterRef("pk")}, ts__gte=cutoff,
                                  **{f"{column}__isnull": False}).order_by("-ts")
    entities = _model(scope.entity_model).objects.all()
    for sample_column, value in filters.items():
        lookup = "pk" if sample_column == scope.entity_field else sample_column
        entities = entities.filter(**{lookup: value})
    rows = (entities.annotate(_ts=Subquery(newest.values("ts")[:1]), _value=Subquery(newest.values(column)[:1]))
            .filter(_ts__isnull=False).order_by("pk").values("_ts", "_value", *scope.label_fields.values()))
    out = []
    for row in rows:
        labels = {label: row[lookup] for label, lookup in scope.label_fields.items()}
        out.append(LatestValue(labels, float(row["_value"]), ms_to_datetime(row["_ts"])))
    return out


# ------------------------------------------------------------------------------------ gateway usage


def _usage_sums(definition: SeriesDef, filters: dict[str, int], start_ms: int, end_ms: int):
    """``(job_id, minute, value)`` summed over the gateway's usage rows of each job and minute."""
    columns = _USAGE_SUMS[definition.column]
    total = sum((F(c) for c in columns[1:]), F(columns[0]))
    return (_model("jobs.UsageMinute").objects
            .filter(minute__gte=ms_to_datetime(start_ms), minute__lt=ms_to_datetime(end_ms), job__isnull=False,
                    **filters)
            .values("job_id", "minute").annotate(v=Sum(total)).order_by("job_id", "minute")
            .values_list("job_id", "minute", "v"))


def _usage_query(definition: SeriesDef, filters: dict[str, int], *, start: Any, end: Any, step: Any,
                 now: int | None) -> tuple[QueryPlan, list[SeriesPoints]]:
    """A gateway series: per-minute counts, summed into buckets of whole minutes and divided by the
    bucket's minutes (a rate per minute); buckets with no usage are left out."""
    plan = plan_query(definition, start=start, end=end, step=step, now=now)
    step_s = max(ROLLUP_STEP_S, math.ceil((plan.step_s or ROLLUP_STEP_S) / ROLLUP_STEP_S) * ROLLUP_STEP_S)
    plan = QueryPlan(definition, plan.start_ms, plan.end_ms, step_s, "1m")
    step_ms = step_s * 1000
    by_entity: dict[int, dict[int, float]] = {}
    for job_id, minute, value in _usage_sums(definition, filters, plan.start_ms, plan.end_ms):
        bucket = int(minute.timestamp() * 1000) // step_ms * step_ms
        buckets = by_entity.setdefault(job_id, {})
        buckets[bucket] = buckets.get(bucket, 0.0) + float(value or 0)
    minutes = step_s / ROLLUP_STEP_S
    labels = _labels(definition.scope, list(by_entity))
    return plan, [SeriesPoints(labels.get(pk, _orphan_labels(definition.scope, pk)),
                               [(ts / 1000, v / minutes) for ts, v in sorted(buckets.items())])
                  for pk, buckets in by_entity.items()]


def _usage_latest(definition: SeriesDef, filters: dict[str, int], window_ms: int) -> list[LatestValue]:
    """The newest complete minute of each job within the window (the current minute is still being
    counted, so it is left out; the window reaches one minute further back for that)."""
    now = now_ms()
    current_minute = now // 60_000 * 60_000
    newest: dict[int, tuple[datetime, float]] = {}
    for job_id, minute, value in _usage_sums(definition, filters, now - window_ms - 60_000, current_minute):
        newest[job_id] = (minute, float(value or 0))  # ascending by minute: the last one wins
    labels = _labels(definition.scope, list(newest))
    return [LatestValue(labels.get(pk, _orphan_labels(definition.scope, pk)), value, minute)
            for pk, (minute, value) in sorted(newest.items())]


def _labels(scope_name: str, pks: list[int]) -> dict[int, dict[str, Any]]:
    if not pks:
        return {}
    scope = _SCOPES[scope_name]
    fields = list(scope.label_fields.values())
    rows = _model(scope.entity_model).objects.filter(pk__in=pks).values(*fields)
    return {row["pk"]: {label: row[lookup] for label, lookup in scope.label_fields.items()} for row in rows}


def _orphan_labels(scope_name: str, pk: int) -> dict[str, Any]:
    """Labels of samples whose entity was deleted since (kept until retention removes them)."""
    return {scope_name: pk}
