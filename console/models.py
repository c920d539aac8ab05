"""The console app's models: the foundation's (console.core.models) and the telemetry rollup watermark."""

from django.db import models

from console.core.models import ApiToken, Event, StreamEntry

__all__ = ["ApiToken", "Event", "StreamEntry", "RollupWatermark", "UserPreference"]


class RollupWatermark(models.Model):
    """How far (epoch ms, exclusive) the raw samples of one table have been rolled up per minute."""

    table = models.CharField(max_length=64, unique=True)
    rolled_up_to = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.table} < {self.rolled_up_to}"


class UserPreference(models.Model):
    """What a user chose for their pages: the time zone every timestamp and chart is shown in
    (console.timezones; empty: the browser's)."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="console_preference")
    time_zone = models.CharField(max_length=64, blank=True, default="",
                                 help_text="IANA time zone name; empty: the browser's zone")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.user_id}: {self.time_zone or 'browser'}"
