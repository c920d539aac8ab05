"""The overview's charts: job throughput, the accelerator heatmap, the stale threshold (the plumbing is
console.core.charts; node and job pages have theirs in nodes.charts and jobs.charts)."""

from __future__ import annotations

from django.db.models import Max
from django.utils.translation import gettext as _

from console.core.charts import Chart, page_config  # noqa: F401  (page_config: the overview view uses it from here)
from console.telemetry import series as telemetry
from nodes.choices import Health
from nodes.models import Accelerator


def throughput_chart(jobs) -> Chart:
    """The overview's job throughput: one output tokens/s trace per job."""
    names = {str(j.pk): j.name for j in jobs}
    return Chart("cluster-throughput", _("Job throughput (output tokens/s)"), "tokens/s", [],
                 [("job.output_tokens_per_s", {})], dynamic=True, name_label="job", names=names)


def heatmap(window_s: float = 120.0) -> dict:
    """All accelerators: rows are nodes, columns accelerator indexes, colour the latest utilisation,
    and each cell's health. Four queries whatever the size of the cluster."""
    rows = list(Accelerator.objects.filter(present=True).order_by("node__name", "index")
                .values("pk", "index", "vendor", "health", "utilization_percent", "node_id", "node__name"))
    latest_util = {v.labels["accelerator"]: v.value
                   for v in telemetry.latest("accelerator.utilization_percent", window_s)}
    latest_health = {v.labels["accelerator"]: int(v.value) for v in telemetry.latest("accelerator.health", window_s)}
    nodes: dict[int, str] = {}
    for row in rows:
        nodes.setdefault(row["node_id"], row["node__name"])
    order = {node_id: i for i, node_id in enumerate(nodes)}
    columns = max((row["index"] for row in rows), default=-1) + 1
    cells = {}
    for row in rows:
        health = latest_health.get(row["pk"], telemetry.HEALTH_CODES.get(row["health"]))
        util = latest_util.get(row["pk"], row["utilization_percent"])
        cells[str(row["pk"])] = [order[row["node_id"]], row["index"], util, health, f"{row['vendor']} {row['index']}"]
    return {"nodes": [{"id": pk, "name": name} for pk, name in nodes.items()], "columns": columns, "cells": cells,
            "health_names": {str(code): str(Health(name).label) for code, name in telemetry.HEALTH_NAMES.items()}}


def latest_throughput(window_s: float = 120.0) -> float:
    """Output tokens/s summed over jobs, from each job's newest sample."""
    return round(sum(v.value for v in telemetry.latest("job.output_tokens_per_s", window_s)), 1)


def stale_after_s(nodes) -> float:
    """How long without a new point before a page says its data is stale: three sampling intervals
    of the slowest node among ``nodes`` (a queryset), and at least 10 s."""
    interval = nodes.aggregate(m=Max("telemetry_interval_s"))["m"] or 5
    return max(10.0, 3.0 * interval)
