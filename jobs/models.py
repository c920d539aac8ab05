"""Serving jobs (what the operator wants) and instances (what runs), with accelerator allocations."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from jobs.choices import DesiredState, InstanceState, JobState, PlacementStrategy


class Job(models.Model):
    """The desired state of a deployment: a model version served by an engine on N replicas."""

    name = models.CharField(_("name"), max_length=63, unique=True)
    model_version = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, related_name="jobs", verbose_name=_("model version")
    )
    engine = models.CharField(_("engine"), max_length=16)
    replicas = models.PositiveIntegerField(_("replicas"), default=1, validators=[MaxValueValidator(64)])
    accelerators_per_replica = models.PositiveIntegerField(
        _("accelerators per replica"), default=1, validators=[MaxValueValidator(128)]
    )
    nodes_per_replica = models.PositiveIntegerField(
        _("nodes per replica"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(16)],
        help_text=_("More than one for a replica that spans nodes (e.g. DeepSeek R1 on two Atlas 800I A2)."),
    )
    node_selector = models.JSONField(_("node selector"), default=dict, blank=True)
    placement = models.CharField(
        _("placement"), max_length=8, choices=PlacementStrategy.choices, default=PlacementStrategy.BINPACK
    )
    extra_args = models.JSONField(_("extra arguments"), default=list, blank=True)
    env = models.JSONField(_("environment"), default=dict, blank=True)
    max_model_len = models.PositiveIntegerField(_("max model length"), null=True, blank=True)
    options = models.JSONField(_("engine options"), default=dict, blank=True)
    desired_state = models.CharField(
        _("desired state"), max_length=8, choices=DesiredState.choices, default=DesiredState.STOPPED
    )
    state = models.CharField(
        _("state"), max_length=10, choices=JobState.choices, default=JobState.STOPPED, editable=False
    )
    state_detail = models.TextField(blank=True, editable=False)
    # Bumped by a restart: instances of an older generation are replaced one replica at a time.
    generation = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("job")

    def __str__(self):
        return self.name


class Instance(models.Model):
    """One process of a replica on one node. A replica spanning k nodes has k members (rank 0..k-1)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="instances")
    replica = models.PositiveIntegerField()
    member = models.PositiveIntegerField(default=0)
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="instances")
    port = models.PositiveIntegerField(null=True, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(
        max_length=10, choices=InstanceState.choices, default=InstanceState.SCHEDULED, editable=False
    )
    state_detail = models.TextField(blank=True, editable=False)
    generation = models.PositiveIntegerField(default=1)
    run = models.PositiveIntegerField(default=0, help_text="How many times a process was started.")
    restart_count = models.PositiveIntegerField(default=0)
    last_exit_reason = models.TextField(blank=True)
    previous_log = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    healthy_since = models.DateTimeField(null=True, blank=True)
    last_check_at = models.DateTimeField(null=True, blank=True)
    health_failures = models.PositiveIntegerField(default=0)
    backoff_s = models.FloatField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_id", "replica", "member"]
        constraints = [
            models.UniqueConstraint(fields=["job", "replica", "member"], name="one_instance_per_job_replica_member"),
        ]

    def __str__(self):
        return f"{self.job.name}/r{self.replica}" + (f"m{self.member}" if self.member else "")

    @property
    def key(self) -> str:
        """The executor's instance key: stable across restarts of this replica member."""
        return f"job{self.job_id}-r{self.replica}-m{self.member}"

    @property
    def endpoint(self) -> str:
        if self.node_id is None or not self.port or self.member:
            return ""
        host = "127.0.0.1" if self.node.transport == "local" else self.node.address
        return f"http://{host}:{self.port}/v1"


class Allocation(models.Model):
    """An accelerator given to an instance. One row per accelerator: the unique constraint is what
    makes two concurrent placements unable to hand out the same device."""

    accelerator = models.OneToOneField("nodes.Accelerator", on_delete=models.CASCADE, related_name="allocation")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="allocations")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.accelerator_id}->{self.instance_id}"


class InstanceStateChange(models.Model):
    """Append-only history of an instance's state."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="state_history")
    time = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=10, choices=InstanceState.choices)
    to_state = models.CharField(max_length=10, choices=InstanceState.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self):
        return f"{self.instance_id}: {self.from_state} -> {self.to_state}"
