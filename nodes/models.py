"""Inventory: SSH credentials, nodes, their status history, and accelerators."""


from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.core.models import TransitionRecord
from nodes.choices import AcceleratorKind, Health, NodeStatus, Transport, Vendor
from nodes.crypto import default_box


def default_probe_interval():
    return settings.CONSOLE_PROBE_INTERVAL_S


def default_telemetry_interval():
    return settings.CONSOLE_TELEMETRY_INTERVAL_S


class Credential(models.Model):
    """An SSH identity. The private key is stored encrypted (nodes.crypto) and never returned."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    username = models.CharField(_("username"), max_length=64)
    encrypted_private_key = models.TextField(editable=False)
    key_type = models.CharField(_("key type"), max_length=32, editable=False)
    fingerprint = models.CharField(_("fingerprint"), max_length=80, editable=False)
    public_key = models.TextField(_("public key"), editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("SSH credential")

    def __str__(self):
        return self.name

    def private_key(self) -> str:
        """The decrypted key, for the SSH transport only. Never log or return it."""
        return default_box().decrypt(self.encrypted_private_key)


class Node(models.Model):
    """A machine of the cluster, reached locally or over SSH."""

    name = models.CharField(_("name"), max_length=63, unique=True)
    address = models.CharField(_("address"), max_length=253)
    transport = models.CharField(_("transport"), max_length=8, choices=Transport.choices, default=Transport.SSH)
    ssh_port = models.PositiveIntegerField(
        _("SSH port"), default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_user = models.CharField(_("SSH user"), max_length=64, blank=True,
                                help_text=_("Defaults to the credential's username."))
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="nodes", verbose_name=_("credential"))
    labels = models.JSONField(_("labels"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=NodeStatus.choices,
                              default=NodeStatus.UNKNOWN, editable=False)
    status_detail = models.TextField(_("status detail"), blank=True, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True, editable=False)
    facts = models.JSONField(_("facts"), default=dict, blank=True, editable=False)
    probe_errors = models.JSONField(default=list, blank=True, editable=False)
    probe_interval_s = models.PositiveIntegerField(
        _("probe interval (s)"), default=default_probe_interval,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
    )
    telemetry_interval_s = models.PositiveIntegerField(
        _("telemetry interval (s)"), default=default_telemetry_interval,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text=_("How often the collector samples the node and its accelerators (1 s is supported)."),
    )
    last_probe_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_probe_duration_ms = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # When the next periodic probe is due; a probe round claims nodes by moving it forward.
    next_probe_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    host_key = models.TextField(_("pinned host key"), blank=True, editable=False)
    host_key_fingerprint = models.CharField(_("host key fingerprint"), max_length=80, blank=True, editable=False)
    accelerator_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("node")

    def __str__(self):
        return self.name

    @property
    def effective_ssh_user(self) -> str:
        return self.ssh_user or (self.credential.username if self.credential_id else "")


class NodeStatusChange(TransitionRecord):
    """Append-only history of a node's status."""

    subject = "node"
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="status_history")
    from_status = models.CharField(max_length=16, choices=NodeStatus.choices)
    to_status = models.CharField(max_length=16, choices=NodeStatus.choices)

    class Meta(TransitionRecord.Meta):
        indexes = [models.Index(fields=["node", "-time"])]


class Accelerator(models.Model):
    """One addressable device (a GPU, or one chip of an Ascend card), as the last probe saw it."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="accelerators")
    index = models.PositiveIntegerField(_("index"), help_text=_("The id CUDA_VISIBLE_DEVICES or "
                                                                "ASCEND_RT_VISIBLE_DEVICES takes."))
    vendor = models.CharField(_("vendor"), max_length=16, choices=Vendor.choices)
    kind = models.CharField(_("kind"), max_length=8, choices=AcceleratorKind.choices)
    model = models.CharField(_("model"), max_length=128, blank=True)
    uuid = models.CharField(_("UUID"), max_length=128)
    bus_id = models.CharField(_("bus id"), max_length=64, blank=True)
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    memory_used_bytes = models.BigIntegerField(null=True, blank=True)
    utilization_percent = models.FloatField(null=True, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    power_w = models.FloatField(null=True, blank=True)
    health = models.CharField(_("health"), max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    present = models.BooleanField(_("present"), default=True,
                                  help_text=_("False when the last probe no longer saw it."))
    missing_since = models.DateTimeField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["node_id", "vendor", "index"]
        constraints = [models.UniqueConstraint(fields=["node", "uuid"], name="accelerator_unique_uuid_per_node")]
        verbose_name = _("accelerator")

    def __str__(self):
        return f"{self.node.name}/{self.vendor}{self.index}"


# --- telemetry samples ----------------------------------------------------------------------------
#
# Wide tables, one row per entity per sample, raw (kept CONSOLE_TELEMETRY_RAW_RETENTION_S) and rolled
# up to one row per entity per minute (kept CONSOLE_TELEMETRY_ROLLUP_RETENTION_S). ``ts`` is epoch
# milliseconds: integer arithmetic buckets it portably on SQLite and PostgreSQL (console.telemetry.series).
# The foreign keys have no database constraint and do nothing on delete: deleting a node must not
# make Django collect millions of sample rows; the retention task removes what is left behind.
# Read them through console.telemetry.series, never directly from views.


class NodeMetrics(models.Model):
    """The node series of one sample (or of one minute's averages)."""

    node = models.ForeignKey(Node, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                             related_name="+")
    ts = models.BigIntegerField(help_text="Sample time, milliseconds since the epoch (UTC).")
    cpu_percent = models.FloatField(null=True)
    memory_used_bytes = models.BigIntegerField(null=True)
    memory_percent = models.FloatField(null=True)
    load1 = models.FloatField(null=True)
    disk_used_percent = models.FloatField(null=True)
    network_rx_bytes_per_s = models.FloatField(null=True)
    network_tx_bytes_per_s = models.FloatField(null=True)

    class Meta:
        abstract = True


class NodeSample(NodeMetrics):
    """A raw node sample, as the collector read it."""

    class Meta:
        indexes = [models.Index(fields=["node", "ts"], name="nodesample_node_ts"),
                   models.Index(fields=["ts"], name="nodesample_ts")]

    def __str__(self):
        return f"{self.node_id}@{self.ts}"


class NodeSampleMinute(NodeMetrics):
    """One minute of a node's samples, averaged (``ts`` is the minute's start)."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "ts"], name="nodesampleminute_node_ts")]
        indexes = [models.Index(fields=["ts"], name="nodesampleminute_ts")]

    def __str__(self):
        return f"{self.node_id}@{self.ts}"


class AcceleratorMetrics(models.Model):
    """The accelerator series of one sample. ``health``: 0 ok, 1 warning, 2 critical, null unknown."""

    accelerator = models.ForeignKey(Accelerator, on_delete=models.DO_NOTHING, db_constraint=False,
                                    db_index=False, related_name="+")
    # Denormalised so that a node page reads its accelerators' series by one index range.
    node = models.ForeignKey(Node, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                             related_name="+")
    ts = models.BigIntegerField(help_text="Sample time, milliseconds since the epoch (UTC).")
    utilization_percent = models.FloatField(null=True)
    memory_used_bytes = models.BigIntegerField(null=True)
    memory_percent = models.FloatField(null=True)
    temperature_c = models.FloatField(null=True)
    power_w = models.FloatField(null=True)
    health = models.SmallIntegerField(null=True)

    class Meta:
        abstract = True


class AcceleratorSample(AcceleratorMetrics):
    """A raw accelerator sample."""

    class Meta:
        indexes = [models.Index(fields=["accelerator", "ts"], name="accsample_acc_ts"),
                   models.Index(fields=["node", "ts"], name="accsample_node_ts"),
                   models.Index(fields=["ts"], name="accsample_ts")]

    def __str__(self):
        return f"{self.accelerator_id}@{self.ts}"


class AcceleratorSampleMinute(AcceleratorMetrics):
    """One minute of an accelerator's samples: averages, and the worst health seen."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["accelerator", "ts"], name="accsampleminute_acc_ts")]
        indexes = [models.Index(fields=["node", "ts"], name="accsampleminute_node_ts"),
                   models.Index(fields=["ts"], name="accsampleminute_ts")]

    def __str__(self):
        return f"{self.accelerator_id}@{self.ts}"
