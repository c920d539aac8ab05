"""Rollups and retention of telemetry samples (the periodic ``rollup_and_prune`` task calls this).

* Rollup: raw samples become one row per entity per minute (averages; ``accelerator.health`` the
  worst), up to two minutes ago (late lines still count), from a per-table watermark
  (:class:`console.models.RollupWatermark`) so every raw row is read once. Upserts on
  ``(entity, minute)``: running it twice, or twice at once, writes the same rows.
* Retention: raw samples older than ``CONSOLE_TELEMETRY_RAW_RETENTION_S`` (never before they are rolled
  up), rollups older than ``CONSOLE_TELEMETRY_ROLLUP_RETENTION_S``, stream entries older than
  ``CONSOLE_STREAM_RETENTION_S`` are deleted in fixed-size batches within a time budget; the task
  re-enqueues itself while work is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Avg, ExpressionWrapper, F, Max, Min, Value
from django.db.models import BigIntegerField as BigIntegerOutput

from console.models import RollupWatermark
from console.streams import prune_entries
from console.telemetry.series import now_ms

MINUTE_MS = 60_000
LATE_MS = 2 * MINUTE_MS  # lines read up to this late still land in their minute
BATCH_MINUTES = 60  # minutes rolled up per table per turn
DELETE_BATCH = 10_000
TIME_BUDGET_S = 20.0


@dataclass(frozen=True)
class RollupSpec:
    raw: str
    minute: str
    keys: tuple[str, ...]  # grouped by
    carried: tuple[str, ...]  # taken as Max (an instance's job and node)
    columns: tuple[str, ...]  # averaged
    worst: tuple[str, ...] = ()  # taken as Max

    @property
    def name(self) -> str:
        return self.raw


_ENGINE = ("output_tokens_per_s", "prompt_tokens_per_s", "requests_per_s", "ttft_p50_ms", "ttft_p99_ms",
           "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "requests_running", "requests_waiting",
           "kv_cache_usage_percent")

ROLLUPS = (
    RollupSpec("nodes.NodeSample", "nodes.NodeSampleMinute", ("node_id",), (),
               ("cpu_percent", "memory_used_bytes", "memory_percent", "load1", "disk_used_percent",
                "network_rx_bytes_per_s", "network_tx_bytes_per_s")),
    RollupSpec("nodes.AcceleratorSample", "nodes.AcceleratorSampleMinute", ("accelerator_id",), ("node_id",),
               ("utilization_percent", "memory_used_bytes", "memory_percent", "temperature_c", "power_w"),
               ("health",)),
    RollupSpec("jobs.InstanceSample", "jobs.InstanceSampleMinute", ("instance_id",), ("job_id", "node_id"),
               _ENGINE + ("up",)),
    RollupSpec("jobs.JobSample", "jobs.JobSampleMinute", ("job_id",), (), _ENGINE + ("instances_up",)),
)

_INTEGER_COLUMNS = {"memory_used_bytes"}


def rollup(spec: RollupSpec, now: int | None = None) -> tuple[int, bool]:
    """Roll up one table's next minutes. Returns (rows written, whether more minutes are waiting)."""
    raw = apps.get_model(spec.raw)
    minute = apps.get_model(spec.minute)
    upto = ((now or now_ms()) - LATE_MS) // MINUTE_MS * MINUTE_MS
    mark, _ = RollupWatermark.objects.get_or_create(table=spec.name)
    start = mark.rolled_up_to
    if start == 0:
        oldest = raw.objects.aggregate(t=Min("ts"))["t"]
        start = upto if oldest is None else oldest // MINUTE_MS * MINUTE_MS
    end = min(upto, start + BATCH_MINUTES * MINUTE_MS)
    if end <= start:
        if mark.rolled_up_to == 0:
            RollupWatermark.objects.filter(pk=mark.pk, rolled_up_to=0).update(rolled_up_to=start)
        return 0, False
    bucket = ExpressionWrapper(F("ts") / Value(MINUTE_MS) * Value(MINUTE_MS), output_field=BigIntegerOutput())
    aggregates = {**{c: Avg(c) for c in spec.columns}, **{c: Max(c) for c in spec.worst + spec.carried}}
    grouped = (raw.objects.filter(ts__gte=start, ts__lt=end).annotate(bucket=bucket)
               .values(*spec.keys, "bucket").annotate(**{f"agg_{k}": v for k, v in aggregates.items()})
               .order_by())
    objects = []
    for row in grouped.iterator(chunk_size=5000):
        values = {name: row[f"agg_{name}"] for name in aggregates}
        for name in _INTEGER_COLUMNS & values.keys():
            values[name] = None if values[name] is None else int(values[name])
        objects.append(minute(ts=row["bucket"], **{k: row[k] for k in spec.keys}, **values))
    with transaction.atomic():
        if objects:
            minute.objects.bulk_create(objects, batch_size=1000, update_conflicts=True,
                                       unique_fields=[k.removesuffix("_id") for k in spec.keys] + ["ts"],
                                       update_fields=list(aggregates))
        RollupWatermark.objects.filter(pk=mark.pk, rolled_up_to=mark.rolled_up_to).update(rolled_up_to=end)
    return len(objects), end < upto


def prune(model_label: str, cutoff_ms: int, deadline: float) -> tuple[int, bool]:
    """Delete rows with ``ts < cutoff_ms`` in batches until done or ``deadline`` (monotonic)."""
    model = apps.get_model(model_label)
    deleted = 0
    while time.monotonic() < deadline:
        ids = list(model.objects.filter(ts__lt=cutoff_ms).order_by("ts").values_list("pk", flat=True)[:DELETE_BATCH])
        if not ids:
            return deleted, False
        deleted += model.objects.filter(pk__in=ids).delete()[0]
    return deleted, True


def rollup_and_prune(now: int | None = None, budget_s: float = TIME_BUDGET_S) -> dict:
    """One turn of the periodic task. Returns what it did and whether work is left (``more``)."""
    now = now or now_ms()
    deadline = time.monotonic() + budget_s
    report: dict = {"rolled_up": 0, "deleted": 0, "more": False}
    for spec in ROLLUPS:
        while time.monotonic() < deadline:
            written, more = rollup(spec, now)
            report["rolled_up"] += written
            if not more:
                break
        else:
            report["more"] = True
    marks = dict(RollupWatermark.objects.values_list("table", "rolled_up_to"))
    raw_cutoff = now - settings.CONSOLE_TELEMETRY_RAW_RETENTION_S * 1000
    minute_cutoff = now - settings.CONSOLE_TELEMETRY_ROLLUP_RETENTION_S * 1000
    for spec in ROLLUPS:
        # Never delete raw samples that are not rolled up yet.
        deleted, more = prune(spec.raw, min(raw_cutoff, marks.get(spec.name, 0)), deadline)
        report["deleted"] += deleted
        report["more"] |= more
        deleted, more = prune(spec.minute, minute_cutoff, deadline)
        report["deleted"] += deleted
        report["more"] |= more
    report["stream_entries_deleted"] = prune_entries()
    return report
