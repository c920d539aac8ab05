"""Serving benchmarks: create, run, cancel; every status change goes through transition_benchmark."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from console.core import audit, broadcast, statemachine
from console.core.errors import Conflict
from jobs import enqueue
from jobs.benchmarks import runner
from jobs.choices import BENCHMARK_ACTIVE, BENCHMARK_TRANSITIONS, BenchmarkStatus, InstanceState, JobState
from jobs.models import BenchmarkRun, BenchmarkTransition, Job

S = BenchmarkStatus
# A running run whose heartbeat (written every runner.PROGRESS_WRITE_S) is older than this lost its
# worker: cancelling it ends it at once, and a redelivered task fails it instead of waiting forever.
STALE_HEARTBEAT = timedelta(seconds=60)


def prompt_shape(run: BenchmarkRun) -> str:
    """What a run sent, in words: the dataset file, or the synthetic input and output lengths; and the API."""
    if run.prompt_source == "dataset":
        shape = gettext("dataset %(path)s") % {"path": run.dataset_path}
    else:
        shape = gettext("%(input)d input / %(output)d output tokens") % {
            "input": run.input_tokens, "output": run.output_tokens}
    return f"{shape}, {run.get_api_display()}"


def prompt_shape_warnings(runs: list[BenchmarkRun]) -> list[str]:
    """One line per run when the compared runs sent prompts of different shapes (lengths, dataset or
    API): tokens/s of 2048-token prompts and of 128-token ones do not compare. Empty when they agree."""
    shapes = [prompt_shape(run) for run in runs]
    if len(set(shapes)) <= 1:
        return []
    return [gettext("#%(pk)d %(label)s: %(shape)s") % {"pk": run.pk, "label": run.label or run.job_name,
                                                        "shape": shape}
            for run, shape in zip(runs, shapes, strict=True)]


def transition_benchmark(run: BenchmarkRun, to_status: str, reason: str = "", *, actor: str = "",
                         request=None, **fields: Any) -> bool:
    """Move ``run`` to ``to_status`` through console.core.statemachine.transition (table check, conditional
    write, a BenchmarkTransition row and an event), stamping the start and end times. False when someone
    else got there first."""
    now = timezone.now()
    stamps: dict[str, Any] = {}
    if to_status == S.RUNNING:
        stamps.update(started_at=now, heartbeat_at=now)
    if to_status in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        stamps["finished_at"] = now
    if to_status == S.SUCCEEDED:
        stamps["progress"] = 1.0
    return statemachine.transition(run, to_status, reason, table=BENCHMARK_TRANSITIONS, what="a benchmark",
                                   history=BenchmarkTransition, actor=actor, request=request, now=now,
                                   on_change={k: v for k, v in stamps.items() if k not in fields},
                                   topics=[f"benchmark:{run.pk}", "cluster"], **fields)


def job_endpoints(job: Job) -> list[str]:
    """The ``/v1`` URLs of the job's running instances (rank 0 of each replica)."""
    instances = job.instances.select_related("node").filter(state=InstanceState.RUNNING).order_by("replica", "member")
    return [i.endpoint for i in instances if i.endpoint]


def create_benchmark(data: dict[str, Any], *, request=None) -> BenchmarkRun:
    """Create a queued run from validated API data and enqueue it on the ``long`` queue.

    Raises Conflict when the target job is not serving (no running instance with an endpoint).
    """
    job: Job | None = data.get("job")
    fields = dict(data)
    if job is not None:
        endpoints = job_endpoints(job)
        if job.state not in (JobState.RUNNING, JobState.DEGRADED) or not endpoints:
            raise Conflict(f"job {job.name} is not running (state {job.state}): start it before benchmarking it")
        version = job.model_version
        fields.update(job_name=job.name, engine=job.engine, endpoints=endpoints,
                      model_version_name=f"{version.model.name} {version.version}"
                      + (f" ({version.quantization})" if version.quantization else ""))
        if not fields.get("model"):
            fields["model"] = (job.options or {}).get("served_name", "")
        if not fields.get("label"):
            fields["label"] = f"{job.name} · {fields['model_version_name']} · {job.engine}"
    else:
        fields["endpoints"] = [data["endpoint_url"]]
        if not fields.get("label"):
            fields["label"] = data["endpoint_url"]
    user = getattr(request, "user", None)
    with transaction.atomic():
        run = BenchmarkRun.objects.create(
            created_by=user if user is not None and user.is_authenticated else None, **fields)
        audit.record("create", run, request=request, detail={"target": run.target, "concurrency": run.concurrency})
        enqueue.run_benchmark(run.pk)
    return run


def cancel_benchmark(run: BenchmarkRun, *, request=None) -> BenchmarkRun:
    """Cancel a queued run at once; ask a running one to stop (the runner ends it within a second
    or two, keeping the finished levels). A running run whose worker is gone is cancelled at once.

    Raises Conflict when the run already ended.
    """
    run.refresh_from_db()
    if run.status == S.QUEUED and transition_benchmark(run, S.CANCELLED, "cancelled before it started",
                                                        request=request):
        return run
    if run.status == S.RUNNING:
        BenchmarkRun.objects.filter(pk=run.pk, status=S.RUNNING).update(cancel_requested=True)
        run.refresh_from_db()
        stale = run.heartbeat_at is None or timezone.now() - run.heartbeat_at > STALE_HEARTBEAT
        if run.status == S.RUNNING and stale:
            transition_benchmark(run, S.CANCELLED, "cancelled; its worker had stopped reporting", request=request)
        audit.record("cancel", run, request=request)
        return run
    if run.status in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        raise Conflict(f"the benchmark already ended ({run.status})")
    return run


def refuse_delete_while_active(run: BenchmarkRun) -> None:
    """Conflict while ``run`` is still queued or running (cancel it first, then delete it)."""
    if run.status in BENCHMARK_ACTIVE:
        raise Conflict("the benchmark is still queued or running: cancel it first")


def run_benchmark(run_id: int) -> BenchmarkRun | None:
    """The task's body: run a queued benchmark to its end. Idempotent: a run that is not queued is
    left alone, except a running one whose worker died (stale heartbeat), which is failed."""
    run = BenchmarkRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    if run.status == S.RUNNING and (run.heartbeat_at is None or timezone.now() - run.heartbeat_at > STALE_HEARTBEAT):
        transition_benchmark(run, S.FAILED, "the worker running it stopped before it ended")
        return run
    if run.status != S.QUEUED or not transition_benchmark(run, S.RUNNING, ""):
        return run

    def still_wanted() -> bool:
        return not BenchmarkRun.objects.filter(pk=run.pk, cancel_requested=True).exists()

    def save_progress(progress: float, concurrency: int | None, results: list[dict[str, Any]]) -> None:
        BenchmarkRun.objects.filter(pk=run.pk, status=S.RUNNING).update(
            progress=progress, current_concurrency=concurrency, results=results, heartbeat_at=timezone.now())
        broadcast.changed("benchmarkrun", f"benchmark:{run.pk}")

    outcome = runner.execute(run, still_wanted=still_wanted, save_progress=save_progress)
    run.refresh_from_db()
    fields: dict[str, Any] = {"results": outcome.results, "current_concurrency": None}
    if outcome.model and not run.model:
        fields["model"] = outcome.model
    if outcome.status != S.SUCCEEDED:
        fields["progress"] = run.progress
    if run.status == S.RUNNING:
        transition_benchmark(run, outcome.status, outcome.detail, **fields)
    else:  # cancelled meanwhile (a stale-heartbeat cancel): keep what was measured
        BenchmarkRun.objects.filter(pk=run.pk).update(results=outcome.results, current_concurrency=None)
        run.refresh_from_db()
    return run
