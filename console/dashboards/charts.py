"""Chart figures of the live pages, built on the server as plain dicts (STYLE.md section 7).

A page embeds :func:`page_config` with ``json_script``; ``static/js/live.js`` draws it with plotly.js,
reloads a chart from ``metrics/query/`` when the range changes, and applies the websocket's points.
Every figure starts with the points of the default range, so a page is useful without a socket.

A chart is a list of traces; a trace is one series of one entity (``series`` and the ``labels`` it
must match). ``dynamic`` charts also grow a trace for each new entity the data brings (a job that
started after the page was drawn), named from ``names`` by the label ``name_label``.

Query counts are constant (pinned by tests): one series query per (series, filter), whatever the
number of accelerators, nodes or jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from console import streams
from console.telemetry import series as telemetry

# Range selector: key -> (seconds, whether live points are appended; longer ranges reload each minute).
RANGES: dict[str, tuple[int, bool]] = {"live": (300, True), "15m": (900, True), "1h": (3600, True),
                                       "24h": (86400, False), "7d": (7 * 86400, False)}
DEFAULT_RANGE = "live"


@dataclass
class Trace:
    series: str
    labels: dict[str, Any]
    name: str


@dataclass
class Chart:
    id: str
    title: str
    unit: str
    traces: list[Trace]
    queries: list[tuple[str, dict[str, int]]]  # (series, filter) fetched to fill the traces
    dynamic: bool = False
    name_label: str = ""
    names: dict[str, str] = field(default_factory=dict)
    y_max: float | None = None

    def as_dict(self, points: dict[str, list[tuple[dict, list]]]) -> dict:
        traces = [{"series": t.series, "labels": t.labels, "name": t.name, "x": [], "y": []} for t in self.traces]
        for series_name, _filter in self.queries:
            for labels, values in points.get(_key(series_name, _filter), []):
                trace = _match(traces, series_name, labels)
                if trace is None and self.dynamic:
                    name = self.names.get(str(labels.get(self.name_label)), str(labels.get(self.name_label, "")))
                    trace = {"series": series_name, "labels": {self.name_label: labels.get(self.name_label)},
                             "name": name, "x": [], "y": []}
                    traces.append(trace)
                if trace is not None:
                    trace["x"] = [round(t * 1000) for t, _ in values]
                    trace["y"] = [v for _, v in values]
        return {"id": self.id, "title": self.title, "unit": self.unit, "traces": traces, "dynamic": self.dynamic,
                "name_label": self.name_label, "names": self.names, "y_max": self.y_max,
                "queries": [{"series": s, "filter": f} for s, f in self.queries]}


def _key(series_name: str, filters: dict) -> str:
    return series_name + "?" + "&".join(f"{k}={v}" for k, v in sorted(filters.items()))


def _match(traces: list[dict], series_name: str, labels: dict) -> dict | None:
    for trace in traces:
        if trace["series"] == series_name and all(labels.get(k) == v for k, v in trace["labels"].items()):
            return trace
    return None


def page_config(charts: list[Chart], topics: list[str], *, range_key: str = DEFAULT_RANGE, extra: dict | None = None,
                stale_after_s: float = 15.0) -> dict:
    """Everything live.js needs: figures with their first points, topics, cursor, ranges, strings.

    The cursor is read before the points, so that the socket resumes at or before what was drawn
    (points it sends again are dropped by time in the browser): no gap between page and stream.
    """
    cursor = streams.current_cursor()
    seconds, _live = RANGES[range_key]
    end = timezone.now().timestamp()
    points: dict[str, list] = {}
    for chart in charts:
        for series_name, filters in chart.queries:
            key = _key(series_name, filters)
            if key not in points:
                results = telemetry.query(series_name, start=end - seconds, end=end + 1, **filters)
                points[key] = [(labels, values) for labels, values in results]
    return {
        "cursor": cursor,
        "topics": topics,
        "charts": [chart.as_dict(points) for chart in charts],
        "range": range_key,
        "ranges": [{"key": key, "seconds": s, "live": live, "label": _range_label(key)}
                   for key, (s, live) in RANGES.items()],
        "query_url": reverse("api-metrics-query"),
        "ws_path": "/ws/stream/",
        "stale_after_s": stale_after_s,
        "strings": {
            "live": _("live"), "connecting": _("connecting…"),
            "stale": _("stream lost: data is stale, reconnecting…"),
            "no_data": _("no data in this range"), "updated": _("updated"),
            "reloading": _("reloading…"), "load_failed": _("could not load the series"),
            "unhealthy": _("unhealthy"), "utilization": _("utilisation"), "health": _("health"),
            "no_new_data": _("no new data for %(s)s s"),
        },
        **(extra or {}),
    }


def _range_label(key: str) -> str:
    return {"live": _("live"), "15m": _("15 min"), "1h": _("1 h"), "24h": _("24 h"), "7d": _("7 d")}[key]


# ------------------------------------------------------------------------------------------- pages


def node_charts(node, accelerators) -> list[Chart]:
    """The node page: its CPU and memory, and one trace per present accelerator for each accelerator
    series (``accelerators``: all of the node's, so that one that comes back is named)."""
    flt = {"node": node.pk}
    names = {str(a.pk): f"{a.get_kind_display()} {a.index}" for a in accelerators}
    charts = [Chart("node-cpu", _("CPU and memory"), "%",
                    [Trace("node.cpu_percent", flt, _("CPU")), Trace("node.memory_percent", flt, _("memory"))],
                    [("node.cpu_percent", flt), ("node.memory_percent", flt)], y_max=100)]
    for series_name, title, unit, y_max in (
            ("accelerator.utilization_percent", _("Accelerator utilisation"), "%", 100),
            ("accelerator.memory_percent", _("Accelerator memory used"), "%", 100),
            ("accelerator.temperature_c", _("Accelerator temperature"), "°C", None),
            ("accelerator.power_w", _("Accelerator power"), "W", None)):
        traces = [Trace(series_name, {"accelerator": a.pk}, names[str(a.pk)]) for a in accelerators if a.present]
        charts.append(Chart(f"acc-{series_name.split('.')[1]}", title, unit, traces, [(series_name, flt)],
                            dynamic=True, name_label="accelerator", names=names, y_max=y_max))
    return charts


def job_charts(job) -> list[Chart]:
    """The job page: tokens/s, TTFT p50 and p99, running and waiting requests, KV-cache usage."""
    flt = {"job": job.pk}

    def chart(chart_id, title, unit, pairs, y_max=None):
        return Chart(chart_id, title, unit, [Trace(s, flt, name) for s, name in pairs], [(s, flt) for s, _ in pairs],
                     y_max=y_max)

    return [
        chart("job-tokens", _("Tokens per second"), "tokens/s",
              [("job.output_tokens_per_s", _("output")), ("job.prompt_tokens_per_s", _("prompt"))]),
        chart("job-ttft", _("Time to first token"), "ms",
              [("job.ttft_p50_ms", "p50"), ("job.ttft_p99_ms", "p99")]),
        chart("job-queue", _("Requests"), _("requests"),
              [("job.requests_running", _("running")), ("job.requests_waiting", _("waiting"))]),
        chart("job-kv", _("KV-cache usage"), "%", [("job.kv_cache_usage_percent", _("KV cache"))], y_max=100),
    ]


def throughput_chart(jobs) -> Chart:
    """The overview's job throughput: one output tokens/s trace per job."""
    names = {str(j.pk): j.name for j in jobs}
    return Chart("cluster-throughput", _("Job throughput (output tokens/s)"), "tokens/s", [],
                 [("job.output_tokens_per_s", {})], dynamic=True, name_label="job", names=names)


def heatmap(window_s: float = 120.0) -> dict:
    """All accelerators: rows are nodes, columns accelerator indexes, colour the latest utilisation,
    and each cell's health. Four queries whatever the size of the cluster."""
    from nodes.choices import Health
    from nodes.models import Accelerator

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
