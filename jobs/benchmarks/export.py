"""A benchmark run as CSV rows (one per concurrency level, cells spreadsheet-safe) or as one JSON document. Pure."""

from __future__ import annotations

import csv
import io
from typing import Any

from console.core.security import csv_safe
from jobs.models import BenchmarkRun

# Columns of the CSV export, in order: the seed's layout (concurrency, then throughput) first.
COLUMNS = [
    "concurrency", "output_tokens_per_s", "total_tokens_per_s", "requests_per_s",
    "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p50_ms", "itl_p99_ms",
    "e2e_p50_ms", "e2e_p99_ms", "requests", "completed", "errors", "errors_by_kind", "duration_s",
    "output_tokens", "prompt_tokens", "engine_output_tokens_per_s", "engine_requests_per_s", "engine_ttft_p50_ms",
    "engine_ttft_p99_ms", "engine_itl_p50_ms", "engine_itl_p99_ms", "run", "label", "target", "status",
]
ENGINE_FIELDS = ["output_tokens_per_s", "requests_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms"]


def rows(run: BenchmarkRun) -> list[dict[str, Any]]:
    """One flat dict per finished level, keys of :data:`COLUMNS`."""
    out = []
    for level in run.results or []:
        row = {key: level.get(key) for key in COLUMNS if key in level}
        row["errors_by_kind"] = ";".join(f"{k}={v}" for k, v in (level.get("errors_by_kind") or {}).items())
        engine = level.get("engine") or {}
        for name in ENGINE_FIELDS:
            row[f"engine_{name}"] = engine.get(name)
        row.update(run=run.pk, label=run.label, target=run.target, status=run.status)
        out.append(row)
    return out


def to_csv(table: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in table:
        # Labels and targets are user text: a cell starting with = + - @ is not run as a formula.
        writer.writerow({k: "" if v is None else csv_safe(v) for k, v in row.items()})
    return buffer.getvalue()


def as_json(run: BenchmarkRun) -> dict[str, Any]:
    """The run's settings, status and per-level results."""
    return {
        "id": run.pk, "label": run.label, "target": run.target, "job": run.job_id, "job_name": run.job_name,
        "model_version": run.model_version_name, "engine": run.engine, "endpoints": run.endpoints,
        "model": run.model, "api": run.api, "concurrency": run.concurrency,
        "requests_per_level": run.requests_per_level, "duration_s": run.duration_s,
        "prompt_source": run.prompt_source, "input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
        "dataset_path": run.dataset_path, "status": run.status, "status_detail": run.status_detail,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "results": run.results,
    }
