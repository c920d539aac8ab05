"""The gateway's tables, in the jobs app (imported by jobs/models.py).

The gateway process reads keys, routes, jobs, instances and aliases through caches that follow
``updated_at`` (changes are seen within a second) and writes usage, one row per (gateway process,
minute, key, job, route, model): each process owns its rows, so increments need no cross-process
coordination and the usage API sums them.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiKey(models.Model):
    """A key an application sends as ``Authorization: Bearer bk-...``. The key itself is shown once at
    creation; only its SHA-256 ``digest`` and its ``prefix`` are stored."""

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    rpm = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True,
                                      validators=[MinValueValidator(1), MaxValueValidator(10_000_000)])
    tpm = models.PositiveBigIntegerField(_("tokens per minute"), null=True, blank=True,
                                         validators=[MinValueValidator(1), MaxValueValidator(10**12)])
    max_concurrency = models.PositiveIntegerField(_("concurrent requests"), null=True, blank=True,
                                                  validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys",
                              verbose_name=_("owner"))
    revoked = models.BooleanField(_("revoked"), default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Gateway model names (routes, served names, ``model@alias``) the key may use; empty: all.
    # Last: the field's name shadows the ``models`` module in the rest of the class body.
    models = models.JSONField(_("models"), default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class Route(models.Model):
    """A gateway model name that spreads requests over jobs by weight (canary, blue/green), with a
    fallback job used when no target has a ready instance."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    fallback = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 verbose_name=_("fallback job"))
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("route")
        verbose_name_plural = _("routes")

    def __str__(self):
        return self.name


class RouteTarget(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="route_targets",
                            verbose_name=_("job"))
    weight = models.PositiveIntegerField(_("weight"), default=1, validators=[MaxValueValidator(1_000_000)])

    class Meta:
        ordering = ["route_id", "id"]
        constraints = [models.UniqueConstraint(fields=["route", "job"], name="route_target_unique_job")]

    def __str__(self):
        return f"{self.route_id}->{self.job_id} x{self.weight}"


class UsageMinute(models.Model):
    """What one gateway process served in one minute for one (key, job, route, requested model)."""

    source = models.CharField(max_length=64)  # the gateway process (host:pid), owner of the row
    minute = models.DateTimeField(db_index=True)  # start of the minute, UTC
    key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage")
    route = models.ForeignKey(Route, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage")
    model = models.CharField(max_length=200, blank=True)  # the name the client asked for
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    errors_by_kind = models.JSONField(default=dict)  # {"http_429": 3, "upstream": 1, "client_gone": 2}
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0.0)
    ttft_ms_sum = models.FloatField(default=0.0)
    ttft_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["minute", "id"]
        indexes = [models.Index(fields=["key", "minute"]), models.Index(fields=["job", "minute"])]

    def __str__(self):
        return f"{self.minute:%Y-%m-%d %H:%M} {self.model} {self.requests}"
