"""Alerting models: rules, alerts and their transitions, groups, silences, channels, the outbox."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.alerting.choices import (
    ACTIVE_STATES,
    AlertState,
    ChannelKind,
    Comparator,
    NotificationKind,
    NotificationStatus,
    RuleKind,
    Severity,
    Suppression,
)
from console.core.models import TransitionRecord
from console.core.security import validate_web_url
from nodes.crypto import default_box


def default_group_by() -> list[str]:
    return ["alertname", "node"]


class AlertRule(models.Model):
    """What to alert on: a threshold on a telemetry series, a change against the series' own median,
    or one of the built-in checks of cluster state (``builtin``: one rule per built-in kind, created
    by a migration; it can be disabled and tuned, not deleted).

    Grouping timings left empty take CONSOLE_ALERT_GROUP_WAIT_S / _GROUP_INTERVAL_S / _REPEAT_INTERVAL_S.
    """

    name = models.CharField(_("name"), max_length=120, unique=True)
    kind = models.CharField(_("kind"), max_length=24, choices=RuleKind.choices, default=RuleKind.THRESHOLD)
    builtin = models.BooleanField(_("built-in"), default=False, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    series = models.CharField(_("series"), max_length=64, blank=True)
    comparator = models.CharField(_("comparator"), max_length=2, choices=Comparator.choices, default=Comparator.GT)
    threshold = models.FloatField(_("threshold"), default=0)
    for_seconds = models.PositiveIntegerField(_("for (seconds)"), default=0)
    # relative: the baseline window (median over it); crash loop: the window restarts are counted in.
    window_seconds = models.PositiveIntegerField(_("window (seconds)"), null=True, blank=True)
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices, default=Severity.WARNING)
    matchers = models.JSONField(_("label matchers"), default=list, blank=True)
    summary_template = models.TextField(_("summary template"), blank=True)
    description_template = models.TextField(_("description template"), blank=True)
    runbook_url = models.CharField(_("runbook URL"), max_length=500, blank=True, validators=[validate_web_url])
    group_by = models.JSONField(_("group by"), default=default_group_by, blank=True)
    group_wait_s = models.PositiveIntegerField(_("group wait (s)"), null=True, blank=True)
    group_interval_s = models.PositiveIntegerField(_("group interval (s)"), null=True, blank=True)
    repeat_interval_s = models.PositiveIntegerField(_("repeat interval (s)"), null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("alert rule")
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=Q(builtin=True), name="alertrule_one_builtin_per_kind"),
        ]

    def __str__(self):
        return self.name

    @property
    def group_wait(self) -> int:
        return settings.CONSOLE_ALERT_GROUP_WAIT_S if self.group_wait_s is None else self.group_wait_s

    @property
    def group_interval(self) -> int:
        return settings.CONSOLE_ALERT_GROUP_INTERVAL_S if self.group_interval_s is None else self.group_interval_s

    @property
    def repeat_interval(self) -> int:
        return settings.CONSOLE_ALERT_REPEAT_INTERVAL_S if self.repeat_interval_s is None else self.repeat_interval_s


class AlertGroup(models.Model):
    """Alerts that are notified together: same values of the rule's ``group_by`` labels.

    ``created_at`` is when the group's first alert became active (pending): the group wait counts from
    there, so a rule whose for-duration is at least the group wait notifies as soon as it fires.
    ``next_flush_at`` is the dispatcher's work queue (indexed): the group is looked at then.
    """

    key = models.CharField(max_length=1000, unique=True)
    labels = models.JSONField(default=dict)
    group_wait_s = models.PositiveIntegerField()
    group_interval_s = models.PositiveIntegerField()
    repeat_interval_s = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    next_flush_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_flush_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("alert group")

    def __str__(self):
        return self.key


class Silence(models.Model):
    """Mutes the notifications of alerts whose labels match every matcher, between two times.
    Alerts keep being evaluated and shown (as silenced)."""

    matchers = models.JSONField(_("matchers"), default=list)
    starts_at = models.DateTimeField(_("starts at"), default=timezone.now)
    ends_at = models.DateTimeField(_("ends at"), db_index=True)
    comment = models.TextField(_("comment"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_by_name = models.CharField(_("author"), max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        verbose_name = _("silence")

    def __str__(self):
        return f"silence {self.pk}"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.ends_at <= now:
            return "expired"
        return "pending" if self.starts_at > now else "active"


class Alert(models.Model):
    """One occurrence of a rule's condition for one label set (``fingerprint``): pending, firing,
    then resolved. A later occurrence of the same label set is a new row; at most one row per rule and
    fingerprint is active (a partial unique index)."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    rule_name = models.CharField(max_length=120)
    fingerprint = models.CharField(max_length=16)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.PENDING)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    severity_rank = models.PositiveSmallIntegerField(default=0)  # for "worst first" and the header's worst
    value = models.FloatField(null=True, blank=True)
    active_since = models.DateTimeField()  # when the condition was first seen true (API: started_at)
    fire_at = models.DateTimeField()  # active_since + for-duration
    fired_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    acknowledged_by_name = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    ack_comment = models.TextField(blank=True)
    suppressed = models.CharField(max_length=12, choices=Suppression.choices, default=Suppression.NONE, blank=True)
    silenced_by = models.ForeignKey(Silence, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    inhibited_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    flapping = models.BooleanField(default=False)
    flap_count = models.PositiveIntegerField(default=0)  # times it fired within CONSOLE_ALERT_FLAP_WINDOW_S
    group = models.ForeignKey(AlertGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    last_notified_state = models.CharField(max_length=8, blank=True)  # "", "firing" or "resolved"
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-active_since", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "fingerprint"], condition=Q(state__in=ACTIVE_STATES),
                                    name="alert_one_active_per_rule_fingerprint"),
        ]
        indexes = [
            models.Index(fields=["state", "-active_since"], name="alert_state_since"),
            models.Index(fields=["rule", "state"], name="alert_rule_state"),
            models.Index(fields=["group", "state"], name="alert_group_state"),
        ]
        verbose_name = _("alert")

    def __str__(self):
        return f"{self.rule_name} {self.fingerprint} ({self.state})"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class AlertTransition(TransitionRecord):
    """Append-only history of an alert's state, and the dispatcher's outbox: rows with no
    ``processed_at`` are picked up (and marked with a conditional update) to schedule the alert's group.
    ``rule`` and ``fingerprint`` are copied so that flapping is one index range."""

    subject, field = "alert", "state"
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="transitions")
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    fingerprint = models.CharField(max_length=16)
    from_state = models.CharField(max_length=8, blank=True)  # "" (NEW) for an alert's first transition
    to_state = models.CharField(max_length=8, choices=AlertState.choices)
    value = models.FloatField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TransitionRecord.Meta):
        indexes = [
            models.Index(fields=["rule", "fingerprint", "time"], name="alerttransition_flaps"),
            models.Index(fields=["id"], condition=Q(processed_at__isnull=True), name="alerttransition_unprocessed"),
        ]



class NotificationChannel(models.Model):
    """Where notifications go. ``enabled`` false with a ``disabled_reason`` means the console disabled
    it after a permanent error: its notifications are kept (pending) and go out once it is enabled
    again. ``enabled`` false without a reason is an operator's choice: nothing is queued for it."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=24, choices=ChannelKind.choices)
    url = models.CharField(_("URL"), max_length=2000, blank=True, validators=[validate_web_url])
    # alertmanager-api: the base URLs of an Alertmanager cluster's members; each gets every alert.
    urls = models.JSONField(_("URLs"), default=list, blank=True)
    # alertmanager-api: with a user name the secret is the basic-auth password, without one a bearer token.
    auth_username = models.CharField(_("basic auth user"), max_length=200, blank=True)
    timeout_s = models.PositiveIntegerField(_("time-out (s)"), null=True, blank=True,
                                            help_text=_("Empty: CONSOLE_NOTIFY_TIMEOUT_S."))
    # alertmanager-api: when still-firing alerts are next re-posted (claimed with a conditional update).
    next_resend_at = models.DateTimeField(null=True, blank=True, editable=False)
    address = models.CharField(_("email addresses"), max_length=1000, blank=True)
    # DingTalk/Feishu signing, webhook HMAC, alertmanager-api basic-auth password or bearer token
    encrypted_secret = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    disabled_reason = models.TextField(_("disabled because"), blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    send_resolved = models.BooleanField(_("send resolved"), default=True)
    min_severity = models.CharField(_("minimum severity"), max_length=8, choices=Severity.choices,
                                    default=Severity.INFO)
    matchers = models.JSONField(_("label matchers"), default=list, blank=True)
    max_alerts = models.PositiveIntegerField(_("max alerts per message"), default=0,
                                             help_text=_("0: no limit. Others are counted in truncatedAlerts."))
    last_delivery_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("notification channel")

    def __str__(self):
        return self.name

    @property
    def auto_disabled(self) -> bool:
        return not self.enabled and bool(self.disabled_reason)

    def secret(self) -> str:
        """The decrypted signing secret, for the notifier only."""
        if not self.encrypted_secret:
            return ""

        return default_box().decrypt(self.encrypted_secret)

    def set_secret(self, value: str) -> None:
        self.encrypted_secret = default_box().encrypt(value) if value else ""

    def addresses(self) -> list[str]:
        return [a.strip() for a in self.address.replace(";", ",").split(",") if a.strip()]


class Notification(models.Model):
    """The outbox: one message for one channel (the alerts it carries are a snapshot in ``payload``).
    Claimed by a conditional update (pending -> sending) so that two dispatchers never send it twice;
    a claim that outlives ``claimed_until`` is returned to pending by the reaper."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    group = models.ForeignKey(AlertGroup, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="notifications")
    kind = models.CharField(max_length=8, choices=NotificationKind.choices, default=NotificationKind.ALERTS)
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    payload = models.JSONField(default=dict)
    alert_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]

    def __str__(self):
        return f"notification {self.pk} to {self.channel_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One try at delivering a notification: what came back, how long it took, whether it was final."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempt_log")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=False)
    permanent = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["channel", "-started_at"], name="deliveryattempt_channel")]

    def __str__(self):
        return f"attempt {self.number} of {self.notification_id}: {'ok' if self.ok else 'failed'}"
