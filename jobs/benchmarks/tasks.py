"""Celery task of serving benchmarks (queue ``long``, see CELERY_TASK_ROUTES): a thin wrapper."""

from celery import shared_task

from jobs.benchmarks import services


@shared_task(ignore_result=True)
def run_benchmark(run_id: int) -> None:
    """Run one benchmark to its end. Not ``acks_late``: a sweep may last longer than the broker's
    visibility timeout, and a redelivery would only find the run running and leave it alone."""
    services.run_benchmark(run_id)
