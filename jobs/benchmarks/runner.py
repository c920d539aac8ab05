"""Drive the load generator for one BenchmarkRun from a Celery worker.

The generator runs its own event loop in a helper thread; this (the worker's) thread keeps the
Django connection and does every database write: progress and a heartbeat every half second, each
level's figures as soon as the level ends, and the cancel flag, which it passes on to the generator
through a :class:`threading.Event` (the generator then cancels the requests in flight within about
0.1 s). Keeping the ORM in one thread avoids Django's async-safety checks and, in tests, lets the
run see the test's transaction.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.benchmarks import generator
from jobs.choices import BenchmarkStatus, PromptSource
from jobs.models import BenchmarkRun

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often the worker thread looks at the cancel flag and the generator
PROGRESS_WRITE_S = 0.5  # how often progress and the heartbeat are written


def default_requests(concurrency: int) -> int:
    """Requests of a level when the run names neither a count nor a duration: enough for every
    slot to run a few requests, so the level is not all ramp-up and tail."""
    return max(4 * concurrency, 16)


def requests_for(run: BenchmarkRun) -> Callable[[int], int] | None:
    if run.duration_s:
        return None
    if run.requests_per_level:
        fixed = run.requests_per_level
        return lambda concurrency: fixed
    return default_requests


def prompt_source(run: BenchmarkRun) -> Callable[[int], generator.Prompt]:
    """The function that gives request ``i`` its prompt."""
    if run.prompt_source == PromptSource.DATASET:
        lines = Path(run.dataset_path).read_text(encoding="utf-8").splitlines()
        prompts = generator.dataset_prompts(lines, run.output_tokens)
        return lambda index: prompts[index % len(prompts)]
    return lambda index: generator.synthetic_prompt(index, run.input_tokens, run.output_tokens, seed=run.pk or 0)


def load_spec(run: BenchmarkRun) -> generator.LoadSpec:
    return generator.LoadSpec(endpoints=tuple(run.endpoints), model=run.model, api=run.api,
                              request_timeout_s=run.request_timeout_s)


@dataclass
class Outcome:
    """How the sweep ended: the status to move to and why."""

    status: str
    detail: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""


def progress_of(run: BenchmarkRun, state: generator.SweepState, finished_levels: int) -> float:
    """0..1: finished levels plus the running level's fraction (by requests, or by time)."""
    levels = len(run.concurrency) or 1
    fraction = 0.0
    if state.level_started and finished_levels == state.level_index:
        if run.duration_s:
            fraction = (time.perf_counter() - state.level_started) / run.duration_s
        else:
            planned = requests_for(run)(state.concurrency) if state.concurrency else 1  # type: ignore[misc]
            fraction = state.level_done / max(planned, 1)
    return round(min(0.999, (finished_levels + min(max(fraction, 0.0), 0.99)) / levels), 4)


def execute(run: BenchmarkRun, *, still_wanted: Callable[[], bool],
            save_progress: Callable[[float, int | None, list[dict[str, Any]]], None]) -> Outcome:
    """Run the sweep for ``run`` (status running) and return how it ended.

    ``still_wanted()`` is asked every :data:`POLL_S` (False: cancel); ``save_progress`` writes the
    progress, the running level and the finished levels' figures.
    """
    stop = threading.Event()
    state = generator.SweepState()
    finished: queue.Queue[generator.LevelResult] = queue.Queue()
    box: dict[str, Any] = {}
    try:
        prompt_for = prompt_source(run)
    except (OSError, ValueError) as exc:
        return Outcome(BenchmarkStatus.FAILED, f"cannot read the dataset {run.dataset_path}: {exc}")

    def work() -> None:
        try:
            box["levels"] = asyncio.run(generator.run_sweep(
                load_spec(run), list(run.concurrency), prompt_for, requests_per_level=requests_for(run),
                duration_s=run.duration_s, stop=stop, state=state, on_level=finished.put))
        except generator.ProbeError as exc:
            box["probe"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure, never a hung worker
            log.exception("benchmark %s: the load generator failed", run.pk)
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=work, name=f"benchmark-{run.pk}", daemon=True)
    thread.start()
    results: list[dict[str, Any]] = list(run.results or [])
    last_write = 0.0
    while True:
        thread.join(POLL_S)
        alive = thread.is_alive()
        new = False
        while not finished.empty():
            results.append(finished.get_nowait().as_dict())
            new = True
        if not alive:
            break
        if not stop.is_set() and not still_wanted():
            stop.set()
        now = time.monotonic()
        if new or now - last_write >= PROGRESS_WRITE_S:
            save_progress(progress_of(run, state, len(results)), state.concurrency or None, results)
            last_write = now
    if "probe" in box:
        return Outcome(BenchmarkStatus.FAILED, box["probe"], results, state.model)
    if "error" in box:
        return Outcome(BenchmarkStatus.FAILED, f"the load generator failed: {box['error']}", results, state.model)
    if stop.is_set():
        return Outcome(BenchmarkStatus.CANCELLED, "cancelled by an operator", results, state.model)
    for level in results:
        if level["aborted"]:
            return Outcome(BenchmarkStatus.FAILED,
                           f"concurrency {level['concurrency']}: gave up: {level['aborted']}", results, state.model)
        if level["completed"] == 0:
            return Outcome(BenchmarkStatus.FAILED,
                           f"concurrency {level['concurrency']}: every request failed ({level['error_sample']})",
                           results, state.model)
    total_errors = sum(level["errors"] for level in results)
    detail = f"{total_errors} request(s) failed; see errors by kind" if total_errors else ""
    return Outcome(BenchmarkStatus.SUCCEEDED, detail, results, state.model)
