"""Serving jobs (what the operator wants) and instances (what runs), with accelerator allocations."""

import json

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.core.models import TransitionRecord
from console.core.security import validate_web_url
from jobs.choices import (
    ACTIVE_STATES,
    BenchmarkApi,
    BenchmarkStatus,
    DesiredState,
    InstanceState,
    JobState,
    PlacementStrategy,
    PromptSource,
)
from nodes.crypto import default_box


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
    # Secret environment entries (HF_TOKEN...): a JSON object encrypted like SSH keys (nodes.crypto), write-only in
    # the API and pages (their names are shown), passed to the engine only (docs/jobs.md, docs/security.md).
    encrypted_secret_env = models.TextField(blank=True, editable=False)
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

    def secret_env(self) -> dict[str, str]:
        """The secret environment entries, decrypted (for the launch spec only)."""
        if not self.encrypted_secret_env:
            return {}
        return json.loads(default_box().decrypt(self.encrypted_secret_env))

    def set_secret_env(self, values: dict[str, str]) -> None:
        self.encrypted_secret_env = default_box().encrypt(json.dumps(values)) if values else ""

    @property
    def secret_env_names(self) -> list[str]:
        return sorted(self.secret_env())


class InstanceQuerySet(models.QuerySet):
    def active(self):
        """Instances that hold or will hold a process and accelerators (not stopped, failed or lost).
        Reached from other apps through relations (``node.instances.active()``), without importing jobs."""
        return self.filter(state__in=ACTIVE_STATES)


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
    # The node's own run counter of this instance key (the launcher's), saved with the pid of each start:
    # a check that finds the node still at this run knows the start after it never happened.
    node_run = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # CPU serving: the node's CPU ids this instance is bound to (disjoint from the node's other live ones).
    cpu_cores = models.JSONField(default=list, blank=True, editable=False)
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

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["job_id", "replica", "member"]
        constraints = [
            models.UniqueConstraint(fields=["job", "replica", "member"], name="one_instance_per_job_replica_member"),
        ]

    def __str__(self):
        return f"{self.job.name}/r{self.replica}" + (f"m{self.member}" if self.member else "")

    @property
    def key(self) -> str:
        """The executor's instance key: stable across restarts of this replica member on its node (a member
        moved to another node gets another key, so the two processes can never be mistaken for each other)."""
        prefix = settings.CONSOLE_INSTANCE_PREFIX
        return f"{prefix}-job{self.job_id}-r{self.replica}-m{self.member}-n{self.node_id or 0}"

    @property
    def endpoint(self) -> str:
        if self.node_id is None or not self.port or self.member:
            return ""
        from nodes.transports import transport_for  # lazy: keeps paramiko out of start-up (models load first)

        return f"http://{transport_for(self.node).connect_host}:{self.port}/v1"


class Allocation(models.Model):
    """An accelerator given to an instance. One row per accelerator: the unique constraint is what
    makes two concurrent placements unable to hand out the same device."""

    accelerator = models.OneToOneField("nodes.Accelerator", on_delete=models.CASCADE, related_name="allocation")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="allocations")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.accelerator_id}->{self.instance_id}"


class InstanceStateChange(TransitionRecord):
    """Append-only history of an instance's state."""

    subject, field = "instance", "state"
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="state_history")
    from_state = models.CharField(max_length=10, choices=InstanceState.choices)
    to_state = models.CharField(max_length=10, choices=InstanceState.choices)

    class Meta(TransitionRecord.Meta):
        # The crash-loop rule counts recent transitions to "restarting".
        indexes = [models.Index(fields=["to_state", "time"])]


# --- telemetry samples ----------------------------------------------------------------------------
# Written by the collector from the engines' /metrics (jobs.engines.metrics.compute_rates), raw and
# rolled up per minute; see the note on nodes.models.NodeMetrics about ``ts`` and the foreign keys.


class EngineMetrics(models.Model):
    """The normalized engine series of one scrape interval; null where the engine gave no value."""

    ts = models.BigIntegerField(help_text="Scrape time, milliseconds since the epoch (UTC).")
    output_tokens_per_s = models.FloatField(null=True)
    prompt_tokens_per_s = models.FloatField(null=True)
    requests_per_s = models.FloatField(null=True)
    ttft_p50_ms = models.FloatField(null=True)
    ttft_p99_ms = models.FloatField(null=True)
    itl_p50_ms = models.FloatField(null=True)
    itl_p99_ms = models.FloatField(null=True)
    e2e_p50_ms = models.FloatField(null=True)
    e2e_p99_ms = models.FloatField(null=True)
    requests_running = models.FloatField(null=True)
    requests_waiting = models.FloatField(null=True)
    kv_cache_usage_percent = models.FloatField(null=True)

    class Meta:
        abstract = True


class InstanceMetrics(EngineMetrics):
    instance = models.ForeignKey(Instance, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                                 related_name="+")
    job = models.ForeignKey(Job, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                            related_name="+")
    node = models.ForeignKey("nodes.Node", null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                             db_index=False, related_name="+")
    up = models.FloatField(null=True, help_text="1 when the scrape answered, 0 when it failed.")

    class Meta:
        abstract = True


class InstanceSample(InstanceMetrics):
    """A raw per-instance engine sample."""

    class Meta:
        indexes = [models.Index(fields=["instance", "ts"], name="instsample_inst_ts"),
                   models.Index(fields=["job", "ts"], name="instsample_job_ts"),
                   models.Index(fields=["ts"], name="instsample_ts")]

    def __str__(self):
        return f"{self.instance_id}@{self.ts}"


class InstanceSampleMinute(InstanceMetrics):
    """One minute of an instance's engine samples, averaged."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instance", "ts"], name="instsampleminute_inst_ts")]
        indexes = [models.Index(fields=["job", "ts"], name="instsampleminute_job_ts"),
                   models.Index(fields=["ts"], name="instsampleminute_ts")]

    def __str__(self):
        return f"{self.instance_id}@{self.ts}"


class JobMetrics(EngineMetrics):
    """A job's series: rates and queues summed over its instances, latency quantiles and KV-cache usage
    of the worst instance (quantiles of different instances cannot be combined exactly)."""

    job = models.ForeignKey(Job, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                            related_name="+")
    instances_up = models.FloatField(null=True)

    class Meta:
        abstract = True


class JobSample(JobMetrics):
    """A raw job sample: one per scrape round of the job's running instances."""

    class Meta:
        indexes = [models.Index(fields=["job", "ts"], name="jobsample_job_ts"),
                   models.Index(fields=["ts"], name="jobsample_ts")]

    def __str__(self):
        return f"{self.job_id}@{self.ts}"


class JobSampleMinute(JobMetrics):
    """One minute of a job's samples, averaged."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "ts"], name="jobsampleminute_job_ts")]
        indexes = [models.Index(fields=["ts"], name="jobsampleminute_ts")]

    def __str__(self):
        return f"{self.job_id}@{self.ts}"


# --- serving benchmarks ---------------------------------------------------------------------------
# Run by jobs.benchmarks (a Celery task on the ``long`` queue); see docs/benchmarks-serving.md.

DEFAULT_BENCHMARK_CONCURRENCY = [1, 8, 32, 64, 128, 192]


def default_benchmark_concurrency() -> list[int]:
    return list(DEFAULT_BENCHMARK_CONCURRENCY)


class BenchmarkRun(models.Model):
    """A concurrency sweep against a job's running instances or an OpenAI-compatible endpoint.

    ``results`` holds one object per finished level, in the order run (jobs.benchmarks.generator
    ``LevelResult.as_dict`` plus ``engine``, the engine's own metrics over the level's window).
    ``status`` changes only through jobs.benchmarks.services.transition_benchmark.
    """

    label = models.CharField(_("label"), max_length=120, blank=True,
                             help_text=_("How the run is named in comparisons, e.g. \"Qwen2.5-7B w8a8 on vLLM\"."))
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="benchmarks",
                            verbose_name=_("job"))
    # Kept when the job is deleted, so old runs stay readable and comparable.
    job_name = models.CharField(max_length=63, blank=True, editable=False)
    model_version_name = models.CharField(max_length=200, blank=True, editable=False)
    engine = models.CharField(max_length=16, blank=True, editable=False)
    endpoint_url = models.CharField(_("endpoint URL"), max_length=500, blank=True, validators=[validate_web_url])
    endpoints = models.JSONField(default=list, editable=False,
                                 help_text="The /v1 base URLs the generator sends to, round-robin.")
    model = models.CharField(_("served model name"), max_length=200, blank=True,
                             help_text=_("Empty: the first model the endpoint lists at /v1/models."))
    api = models.CharField(_("API"), max_length=12, choices=BenchmarkApi.choices, default=BenchmarkApi.CHAT)
    concurrency = models.JSONField(_("concurrency levels"), default=default_benchmark_concurrency)
    requests_per_level = models.PositiveIntegerField(_("requests per level"), null=True, blank=True)
    duration_s = models.FloatField(_("seconds per level"), null=True, blank=True)
    prompt_source = models.CharField(_("prompt source"), max_length=10, choices=PromptSource.choices,
                                     default=PromptSource.SYNTHETIC)
    input_tokens = models.PositiveIntegerField(_("input tokens"), default=256)
    output_tokens = models.PositiveIntegerField(_("output tokens"), default=128)
    dataset_path = models.CharField(_("dataset file"), max_length=500, blank=True)
    request_timeout_s = models.FloatField(_("request timeout (s)"), default=120.0)
    status = models.CharField(_("status"), max_length=10, choices=BenchmarkStatus.choices,
                              default=BenchmarkStatus.QUEUED, editable=False, db_index=True)
    status_detail = models.TextField(blank=True, editable=False)
    progress = models.FloatField(default=0.0, editable=False)
    current_concurrency = models.PositiveIntegerField(null=True, blank=True, editable=False)
    results = models.JSONField(default=list, editable=False)
    cancel_requested = models.BooleanField(default=False, editable=False)
    # Written with progress; a running run whose heartbeat is old lost its worker (see services.cancel).
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("benchmark run")

    def __str__(self):
        return self.label or f"benchmark {self.pk}"

    @property
    def target(self) -> str:
        """The job's name or the endpoint URL, for tables."""
        return self.job_name or self.endpoint_url


class BenchmarkTransition(TransitionRecord):
    """Append-only history of a benchmark run's status (oldest first: the run page reads it as a story)."""

    subject = "run"
    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=10, choices=BenchmarkStatus.choices)
    to_status = models.CharField(max_length=10, choices=BenchmarkStatus.choices)

    class Meta(TransitionRecord.Meta):
        ordering = ["time", "id"]


# The gateway's tables live with its code (jobs/gateway/models.py); imported here so that Django sees them.
from jobs.gateway.models import ApiKey, Route, RouteTarget, UsageMinute  # noqa: E402, F401
