"""The overview's charts: job throughput, the accelerator heatmap, the stale threshold (the plumbing is
console.core.charts; node and job pages have theirs in nodes.charts and jobs.charts)."""

from __future__ import annotations

from django.db.models import Max
from django.utils.translation import gettext as _

from console.core.charts import Chart, page_config  # noqa: F401  (page_config: the overview view uses it from here)
from console.telemetry import series as telemetry
from nodes.choices import Health, Vendor
from nodes.models import Accelerator


def throughput_chart(jobs) -> Chart:
    """The overview's job throughput: one output tokens/s trace per job."""
    names = {str(j.pk): j.name for j in jobs}
    return Chart("cluster-throughput", _("Job throughput (output tokens/s)"), "tokens/s", [],
                 [("job.output_tokens_per_s", {})], dynamic=True, name_label="job", names=names)


def heatmap(window_s: float = 120.0) -> dict:
    """All accelerators: one row per node and vendor (a node with GPUs and NPUs has two rows, so its
    GPU 0 and NPU 0 do not land on one cell), columns accelerator indexes, colour the latest
    utilisation, and each cell's health. Cells are keyed ``"<node id>/<vendor>/<index>"``; ``ids`` maps
    an accelerator's id (what the stream sends) to its cell. Four queries whatever the size of the cluster."""
    rows = list(Accelerator.objects.filter(present=True).order_by("node__name", "node_id", "vendor", "index")
                .values("pk", "index", "vendor", "kind", "health", "utilization_percent", "node_id", "node__name"))
    latest_util = {v.labels["accelerator"]: v.value
                   for v in telemetry.latest("accelerator.utilization_percent", window_s)}
    latest_health = {v.labels["accelerator"]: int(v.value) for v in telemetry.latest("accelerator.health", window_s)}
    vendors_of: dict[int, set[str]] = {}
    for row in rows:
        vendors_of.setdefault(row["node_id"], set()).add(row["vendor"])
    groups: dict[tuple[int, str], dict] = {}
    for row in rows:
        key = (row["node_id"], row["vendor"])
        if key not in groups:
            label = Vendor(row["vendor"]).label if row["vendor"] in Vendor.values else row["vendor"]
            name = row["node__name"] if len(vendors_of[row["node_id"]]) == 1 else f"{row['node__name']} · {label}"
            groups[key] = {"id": row["node_id"], "vendor": row["vendor"], "name": name, "node_name": row["node__name"]}
    order = {key: i for i, key in enumerate(groups)}
    columns = max((row["index"] for row in rows), default=-1) + 1
    cells, ids = {}, {}
    for row in rows:
        health = latest_health.get(row["pk"], telemetry.HEALTH_CODES.get(row["health"]))
        util = latest_util.get(row["pk"], row["utilization_percent"])
        key = f"{row['node_id']}/{row['vendor']}/{row['index']}"
        cells[key] = [order[(row["node_id"], row["vendor"])], row["index"], util, health,
                      f"{str(row['kind']).upper()} {row['index']}", row["pk"]]
        ids[str(row["pk"])] = key
    return {"nodes": [{"id": g["id"], "vendor": g["vendor"], "name": g["name"]} for g in groups.values()],
            "columns": columns, "cells": cells, "ids": ids,
            "health_names": {str(code): str(Health(name).label) for code, name in telemetry.HEALTH_NAMES.items()}}


def latest_throughput(window_s: float = 120.0) -> dict:
    """The current output tokens/s: each job's newest raw sample within ``window_s`` (whatever range
    the charts show), as ``{"total": sum, "jobs": {job id: [time ms, value]}}``; one query."""
    values = telemetry.latest("job.output_tokens_per_s", window_s)
    return {"total": round(sum(v.value for v in values), 1),
            "jobs": {str(v.labels["job"]): [int(v.time.timestamp() * 1000), v.value] for v in values}}


def stale_after_s(nodes) -> float:
    """How long without a new point before a page says its data is stale: three sampling intervals
    of the slowest node among ``nodes`` (a queryset), and at least 10 s."""
    interval = nodes.aggregate(m=Max("telemetry_interval_s"))["m"] or 5
    return max(10.0, 3.0 * interval)
