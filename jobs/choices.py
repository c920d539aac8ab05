"""Choices and state tables of serving jobs and their instances."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class DesiredState(models.TextChoices):
    RUNNING = "running", _("running")
    STOPPED = "stopped", _("stopped")


class JobState(models.TextChoices):
    """Derived from the instances (jobs.services.derive_job_state); stored for filtering."""

    PENDING = "pending", _("pending")  # wants to run; no replica placed yet (see state_detail)
    STARTING = "starting", _("starting")  # replicas placed, none serving yet
    RUNNING = "running", _("running")  # every replica serves
    DEGRADED = "degraded", _("degraded")  # some replicas serve, some do not
    FAILED = "failed", _("failed")  # wants to run; no replica serves and they keep failing
    STOPPED = "stopped", _("stopped")  # desired stopped and nothing runs


class InstanceState(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")  # placed on a node with accelerators; not started
    PREPARING = "preparing", _("preparing")  # placed; waiting for the model's files to be copied to its node
    STARTING = "starting", _("starting")  # process started; waiting for readiness
    RUNNING = "running", _("running")  # process alive and ready
    UNHEALTHY = "unhealthy", _("unhealthy")  # alive but failing health checks
    RESTARTING = "restarting", _("restarting")  # waiting for its back-off before starting again
    FAILED = "failed", _("failed")  # cannot start (e.g. node lost and no room elsewhere)
    STOPPED = "stopped", _("stopped")  # stopped on purpose


S = InstanceState
# Allowed transitions (source -> targets). Every change goes through jobs.services.transition_instance.
INSTANCE_TRANSITIONS: dict[str, set[str]] = {
    S.SCHEDULED: {S.PREPARING, S.STARTING, S.RESTARTING, S.FAILED, S.STOPPED},
    S.PREPARING: {S.SCHEDULED, S.STARTING, S.RESTARTING, S.FAILED, S.STOPPED},
    S.STARTING: {S.RUNNING, S.UNHEALTHY, S.RESTARTING, S.FAILED, S.STOPPED},
    S.RUNNING: {S.UNHEALTHY, S.RESTARTING, S.FAILED, S.STOPPED},
    S.UNHEALTHY: {S.RUNNING, S.RESTARTING, S.FAILED, S.STOPPED},
    S.RESTARTING: {S.STARTING, S.SCHEDULED, S.FAILED, S.STOPPED},
    S.FAILED: {S.SCHEDULED, S.RESTARTING, S.STOPPED},
    S.STOPPED: {S.SCHEDULED},
}
ACTIVE_STATES = {S.SCHEDULED, S.PREPARING, S.STARTING, S.RUNNING, S.UNHEALTHY, S.RESTARTING}
PROCESS_STATES = {S.STARTING, S.RUNNING, S.UNHEALTHY}  # a process should exist on the node


class PlacementStrategy(models.TextChoices):
    BINPACK = "binpack", _("binpack (fill nodes first)")
    SPREAD = "spread", _("spread (use the emptiest node)")


class BenchmarkStatus(models.TextChoices):
    """A serving benchmark's lifecycle (jobs.benchmarks.services.transition_benchmark)."""

    QUEUED = "queued", _("queued")  # created; the task on the ``long`` queue has not started it yet
    RUNNING = "running", _("running")  # the load generator is sending requests
    SUCCEEDED = "succeeded", _("succeeded")  # every level ran (some requests may have failed: see errors)
    FAILED = "failed", _("failed")  # stopped early: unreachable or not OpenAI-compatible endpoint, a level
    #                                 where every request failed, or a worker that died (status_detail says)
    CANCELLED = "cancelled", _("cancelled")  # an operator cancelled it; finished levels are kept


B = BenchmarkStatus
# Allowed transitions (source -> targets). Every change goes through transition_benchmark.
BENCHMARK_TRANSITIONS: dict[str, set[str]] = {
    B.QUEUED: {B.RUNNING, B.FAILED, B.CANCELLED},
    B.RUNNING: {B.SUCCEEDED, B.FAILED, B.CANCELLED},
    B.SUCCEEDED: set(),
    B.FAILED: set(),
    B.CANCELLED: set(),
}
BENCHMARK_ACTIVE = {B.QUEUED, B.RUNNING}
BENCHMARK_TERMINAL = {B.SUCCEEDED, B.FAILED, B.CANCELLED}


class PromptSource(models.TextChoices):
    SYNTHETIC = "synthetic", _("synthetic (input and output token lengths)")
    DATASET = "dataset", _("dataset file (JSONL)")


class BenchmarkApi(models.TextChoices):
    CHAT = "chat", _("chat completions (/v1/chat/completions)")
    COMPLETIONS = "completions", _("completions (/v1/completions)")
