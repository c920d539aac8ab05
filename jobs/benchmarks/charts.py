"""Plotly figures of benchmark runs as plain dicts (drawn by static/js/benchmarks.js). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext as _

from jobs.models import BenchmarkRun

PALETTE = ["#2b5fd9", "#d0342c", "#1f9d55", "#d99a00", "#7a5cd6", "#0f8b8d", "#c2185b", "#5d4037"]


def _axis(title: str, log: bool = False) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": title}, "zeroline": False}
    if log:
        axis["type"] = "log"
    return axis


def _layout(title: str, y_title: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {**_axis(_("Concurrency"), log=True), "tickmode": "array"},
        "yaxis": _axis(y_title),
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "legend": {"orientation": "h", "y": -0.25},
        "height": 340,
    }


def _series(run: BenchmarkRun, key: str, engine: bool = False) -> tuple[list[int], list[Any]]:
    xs, ys = [], []
    for level in run.results or []:
        value = (level.get("engine") or {}).get(key) if engine else level.get(key)
        xs.append(level["concurrency"])
        ys.append(value)
    return xs, ys


def _trace(x, y, name: str, color: str, dash: str = "solid", mode: str = "lines+markers") -> dict[str, Any]:
    return {"type": "scatter", "mode": mode, "name": name, "x": x, "y": y,
            "line": {"color": color, "dash": dash}, "marker": {"size": 7}}


def _ticks(layout: dict[str, Any], runs: Sequence[BenchmarkRun]) -> dict[str, Any]:
    levels = sorted({level["concurrency"] for run in runs for level in run.results or []})
    layout["xaxis"]["tickvals"] = levels
    layout["xaxis"]["ticktext"] = [str(v) for v in levels]
    return layout


def run_figures(run: BenchmarkRun) -> list[dict[str, Any]]:
    """One run: throughput (client and engine) and latency against concurrency."""
    throughput = [
        _trace(*_series(run, "output_tokens_per_s"), _("output tokens/s"), PALETTE[0]),
        _trace(*_series(run, "total_tokens_per_s"), _("total tokens/s"), PALETTE[2]),
        _trace(*_series(run, "output_tokens_per_s", engine=True), _("engine: output tokens/s"), PALETTE[0], "dot"),
    ]
    latency = [
        _trace(*_series(run, "ttft_p50_ms"), _("TTFT p50"), PALETTE[1]),
        _trace(*_series(run, "ttft_p99_ms"), _("TTFT p99"), PALETTE[1], "dash"),
        _trace(*_series(run, "tpot_p50_ms"), _("TPOT p50"), PALETTE[4]),
        _trace(*_series(run, "tpot_p99_ms"), _("TPOT p99"), PALETTE[4], "dash"),
        _trace(*_series(run, "e2e_p50_ms"), _("end-to-end p50"), PALETTE[3]),
    ]
    latency_layout = _layout(_("Latency"), "ms")
    latency_layout["yaxis"]["type"] = "log"
    return [
        {"id": "throughput", "data": throughput,
         "layout": _ticks(_layout(_("Throughput"), _("tokens/s")), [run])},
        {"id": "latency", "data": latency, "layout": _ticks(latency_layout, [run])},
    ]


def compare_figures(runs: Sequence[BenchmarkRun]) -> list[dict[str, Any]]:
    """Several runs on one chart each: output tokens/s, TTFT p99 and TPOT p50 against concurrency."""
    figures = []
    for key, title, unit in (("output_tokens_per_s", _("Output tokens/s"), _("tokens/s")),
                             ("ttft_p99_ms", _("TTFT p99"), "ms"),
                             ("tpot_p50_ms", _("TPOT p50"), "ms")):
        data = [_trace(*_series(run, key), str(run), PALETTE[i % len(PALETTE)]) for i, run in enumerate(runs)]
        figures.append({"id": key, "data": data, "layout": _ticks(_layout(title, unit), runs)})
    return figures
