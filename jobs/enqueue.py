"""The jobs app's tasks, queued by name (services do not import the tasks modules that import them)."""

from console.core.queue import after_commit


def reconcile_job(job_id: int) -> None:
    """Reconcile one job soon, after the current transaction commits."""
    after_commit("jobs.tasks.reconcile_job", job_id, periodic=True)


def run_benchmark(run_id: int) -> None:
    """Run a queued benchmark on the long queue, after the current transaction commits."""
    after_commit("jobs.benchmarks.tasks.run_benchmark", run_id)
