"""Choices and state tables of the inventory."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Transport(models.TextChoices):
    LOCAL = "local", _("local")
    SSH = "ssh", _("SSH")


class NodeStatus(models.TextChoices):
    UNKNOWN = "unknown", _("unknown")          # never probed, or just left maintenance
    ONLINE = "online", _("online")            # last probe succeeded and found nothing wrong
    DEGRADED = "degraded", _("degraded")      # reachable, but a tool failed or an accelerator is unhealthy
    UNREACHABLE = "unreachable", _("unreachable")  # the last probe could not reach or log in to the node
    MAINTENANCE = "maintenance", _("maintenance")  # an operator took it out; probes do not change the status


# Allowed transitions (source -> targets). Every change goes through nodes.services.transition_node.
NODE_TRANSITIONS: dict[str, set[str]] = {
    NodeStatus.UNKNOWN: {NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.UNREACHABLE, NodeStatus.MAINTENANCE},
    NodeStatus.ONLINE: {NodeStatus.DEGRADED, NodeStatus.UNREACHABLE, NodeStatus.MAINTENANCE},
    NodeStatus.DEGRADED: {NodeStatus.ONLINE, NodeStatus.UNREACHABLE, NodeStatus.MAINTENANCE},
    NodeStatus.UNREACHABLE: {NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.MAINTENANCE},
    NodeStatus.MAINTENANCE: {NodeStatus.UNKNOWN},
}
PROBE_SETTABLE = {NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.UNREACHABLE}


class Vendor(models.TextChoices):
    NVIDIA = "nvidia", "NVIDIA"
    HUAWEI = "huawei", _("Huawei Ascend")
    OTHER = "other", _("other")


class AcceleratorKind(models.TextChoices):
    GPU = "gpu", "GPU"
    NPU = "npu", "NPU"


class Health(models.TextChoices):
    OK = "ok", _("ok")
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")
    UNKNOWN = "unknown", _("unknown")
