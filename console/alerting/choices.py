"""Choices and state tables of alerting."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AlertState(models.TextChoices):
    PENDING = "pending", _("pending")  # the condition holds, for less than the rule's for-duration
    FIRING = "firing", _("firing")  # the condition has held for the for-duration: notified
    RESOLVED = "resolved", _("resolved")  # the condition no longer holds (or the rule went away)


A = AlertState
NEW = ""  # the "from" state of an alert's first transition
ACTIVE_STATES = (A.PENDING, A.FIRING)
# Allowed transitions (source -> targets), read by console.core.statemachine: every change goes through
# it (evaluator._transition; a new alert is checked from NEW); a resolved alert is final: the next
# occurrence is a new row.
ALERT_TRANSITIONS: dict[str, set[str]] = {
    NEW: {A.PENDING, A.FIRING},
    A.PENDING: {A.FIRING, A.RESOLVED},
    A.FIRING: {A.RESOLVED},
    A.RESOLVED: set(),
}


class Severity(models.TextChoices):
    INFO = "info", _("info")
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")


SEVERITY_RANK = {Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}
RANK_SEVERITY = {rank: name for name, rank in SEVERITY_RANK.items()}


class Comparator(models.TextChoices):
    GT = ">", ">"
    GE = ">=", "≥"
    LT = "<", "<"
    LE = "<=", "≤"
    EQ = "==", "="
    NE = "!=", "≠"


class RuleKind(models.TextChoices):
    THRESHOLD = "threshold", _("threshold on a series")
    RELATIVE = "relative", _("change against the series' own median")
    # Built-in kinds: read cluster state rather than a series; one rule of each exists (builtin.py).
    NODE_UNREACHABLE = "node_unreachable", _("node unreachable")
    ACCELERATOR_HEALTH = "accelerator_health", _("accelerator health warning or critical")
    INSTANCE_CRASH_LOOP = "instance_crash_loop", _("instance crash loop")
    JOB_DEGRADED = "job_degraded", _("job degraded or failed")
    PROBE_FAILING = "probe_failing", _("probe failing")
    DISK_NEARLY_FULL = "disk_nearly_full", _("disk nearly full")
    MODEL_COPY_FAILED = "model_copy_failed", _("model copy failed")


SERIES_KINDS = (RuleKind.THRESHOLD, RuleKind.RELATIVE)  # the kinds a user creates
BUILTIN_KINDS = tuple(k for k in RuleKind.values if k not in SERIES_KINDS)


class Suppression(models.TextChoices):
    NONE = "", _("not suppressed")
    MAINTENANCE = "maintenance", _("node in maintenance")  # an explicit pause: recorded, never sent
    SILENCED = "silenced", _("silenced")
    INHIBITED = "inhibited", _("inhibited by node unreachable")


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", _("webhook (BooM Console JSON)")
    ALERTMANAGER = "alertmanager", _("Alertmanager-compatible webhook (version 4)")
    EMAIL = "email", _("email")
    SLACK = "slack", "Slack"
    DINGTALK = "dingtalk", _("DingTalk")
    WECOM = "wecom", _("WeCom")
    FEISHU = "feishu", _("Feishu / Lark")
    ALERTMANAGER_API = "alertmanager-api", _("Alertmanager API v2 (post alerts into an Alertmanager cluster)")


URL_KINDS = tuple(k for k in ChannelKind.values if k not in (ChannelKind.EMAIL, ChannelKind.ALERTMANAGER_API))
URLS_KINDS = (ChannelKind.ALERTMANAGER_API,)  # a list of URLs (an HA cluster) rather than one


class NotificationStatus(models.TextChoices):
    PENDING = "pending", _("pending")  # waiting for its (next) attempt
    SENDING = "sending", _("sending")  # claimed by a dispatcher; back to pending if it dies (claimed_until)
    DELIVERED = "delivered", _("delivered")
    FAILED = "failed", _("failed")  # a permanent error, or still undelivered when it expired


N = NotificationStatus
# Read by console.core.statemachine: the dispatcher claims, reaps, expires and records every outcome
# through it (dispatch.py).
NOTIFICATION_TRANSITIONS: dict[str, set[str]] = {
    N.PENDING: {N.SENDING, N.FAILED},
    N.SENDING: {N.DELIVERED, N.PENDING, N.FAILED},
    N.DELIVERED: set(),
    N.FAILED: set(),
}


class NotificationKind(models.TextChoices):
    ALERTS = "alerts", _("alerts")
    TEST = "test", _("test")
    # alertmanager-api channels: the periodic re-post of still-firing alerts (CONSOLE_ALERTMANAGER_RESEND_S)
    RESEND = "resend", _("re-send")
