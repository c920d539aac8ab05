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
    STARTING = "starting", _("starting")  # process started; waiting for readiness
    RUNNING = "running", _("running")  # process alive and ready
    UNHEALTHY = "unhealthy", _("unhealthy")  # alive but failing health checks
    RESTARTING = "restarting", _("restarting")  # waiting for its back-off before starting again
    FAILED = "failed", _("failed")  # cannot start (e.g. node lost and no room elsewhere)
    STOPPED = "stopped", _("stopped")  # stopped on purpose


S = InstanceState
# Allowed transitions (source -> targets). Every change goes through jobs.services.transition_instance.
INSTANCE_TRANSITIONS: dict[str, set[str]] = {
    S.SCHEDULED: {S.STARTING, S.RESTARTING, S.FAILED, S.STOPPED},
    S.STARTING: {S.RUNNING, S.UNHEALTHY, S.RESTARTING, S.FAILED, S.STOPPED},
    S.RUNNING: {S.UNHEALTHY, S.RESTARTING, S.FAILED, S.STOPPED},
    S.UNHEALTHY: {S.RUNNING, S.RESTARTING, S.FAILED, S.STOPPED},
    S.RESTARTING: {S.STARTING, S.SCHEDULED, S.FAILED, S.STOPPED},
    S.FAILED: {S.SCHEDULED, S.RESTARTING, S.STOPPED},
    S.STOPPED: {S.SCHEDULED},
}
ACTIVE_STATES = {S.SCHEDULED, S.STARTING, S.RUNNING, S.UNHEALTHY, S.RESTARTING}
PROCESS_STATES = {S.STARTING, S.RUNNING, S.UNHEALTHY}  # a process should exist on the node


class PlacementStrategy(models.TextChoices):
    BINPACK = "binpack", _("binpack (fill nodes first)")
    SPREAD = "spread", _("spread (use the emptiest node)")
