"""Chart figures of the live pages, built on the server as plain dicts (STYLE.md section 7).

A page embeds :func:`page_config` with ``json_script``; ``static/js/live.js`` draws it with plotly.js,
reloads a chart from ``metrics/query/`` when the range changes, and applies the websocket's points.
Every figure starts with the points of the default range, so a page is useful without a socket.

A chart is a list of traces; a trace is one series of one entity (``series`` and the ``labels`` it
must match). ``dynamic`` charts also grow a trace for each new entity the data brings (a job that
started after the page was drawn), named from ``names`` by the label ``name_label``.

Query counts are constant (pinned by tests): one series query per (series, filter), whatever the
number of accelerators, nodes or jobs.

This is the plumbing; each app owns its builders (nodes.charts, jobs.charts, console.dashboards.charts
for the overview). The points come from the series store, which registers its reader at start-up
(console.apps: ``set_series_reader(console.telemetry.series.query)``): the foundation does not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from console.core import timefmt
from console.core.broadcast import current_cursor

# Range selector: key -> (seconds, whether live points are appended; longer ranges reload each minute).
RANGES: dict[str, tuple[int, bool]] = {"live": (300, True), "15m": (900, True), "1h": (3600, True),
                                       "24h": (86400, False), "7d": (7 * 86400, False)}
DEFAULT_RANGE = "live"

# query(series, start=, end=, **label filters) -> [(labels, [(t, v), ...]), ...]
SeriesReader = Callable[..., Any]
_reader: list[SeriesReader] = []


def set_series_reader(reader: SeriesReader) -> None:
    """Where :func:`page_config` reads points from (the telemetry store, set once at start-up)."""
    _reader[:] = [reader]


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


def region_refresh(request) -> bool:
    """True when static/js/live_regions.js re-reads the page for its live regions (it draws no chart
    from the answer, so the view may skip the points: ``page_config(..., points=False)``)."""
    return request.headers.get("X-Live-Regions") == "1"


def stream_config(topics: list[str]) -> dict:
    """The live config of a page without charts (a list): the stream, its live regions, "updated"."""
    return page_config([], topics, points=False)


def page_config(charts: list[Chart], topics: list[str], *, range_key: str = DEFAULT_RANGE, extra: dict | None = None,
                stale_after_s: float = 15.0, points: bool = True) -> dict:
    """Everything live.js needs: figures with their first points, topics, cursor, ranges, strings.

    The cursor is the newest stream entry written over SETTLE_S seconds ago (broadcast.current_cursor), so the
    socket resumes before anything committed while the view read its objects and drew its points (what it
    sends again is harmless: points are dropped by time in the browser, a change stamp re-reads the live
    regions): no gap between page and stream.
    ``points=False``: the figures without points (a re-read of the page's live regions).
    """
    cursor = current_cursor()
    seconds, _live = RANGES[range_key]
    end = timezone.now().timestamp()
    fetched: dict[str, list] = {}
    for chart in charts if points else ():
        for series_name, filters in chart.queries:
            key = _key(series_name, filters)
            if key not in fetched:
                results = _reader[0](series_name, start=end - seconds, end=end + 1, **filters)
                fetched[key] = [(labels, values) for labels, values in results]
    return {
        "cursor": cursor,
        "topics": topics,
        "charts": [chart.as_dict(fetched) for chart in charts],
        "zone_label": timefmt.zone_label(),
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
            "periodic": _("updated every minute"), "lagging": _("data lags %(s)s s behind"),
        },
        **(extra or {}),
    }


def _range_label(key: str) -> str:
    return {"live": _("live"), "15m": _("15 min"), "1h": _("1 h"), "24h": _("24 h"), "7d": _("7 d")}[key]
