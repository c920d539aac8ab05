"""The console app's models: the foundation's (console.core.models) and the telemetry rollup watermark."""

from django.db import models

from console.core.models import ApiToken, Event, StreamEntry

__all__ = ["ApiToken", "Event", "StreamEntry", "RollupWatermark"]


class RollupWatermark(models.Model):
    """How far (epoch ms, exclusive) the raw samples of one table have been rolled up per minute."""

    table = models.CharField(max_length=64, unique=True)
    rolled_up_to = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.table} < {self.rolled_up_to}"
