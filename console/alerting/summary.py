"""The alert summary the header of every page shows, and its live-stream publication."""

from __future__ import annotations

import logging

from django.db.models import Count, Max, Q

from console.alerting.choices import ACTIVE_STATES, RANK_SEVERITY, AlertState, Suppression
from console.alerting.models import Alert
from console.core import broadcast

log = logging.getLogger(__name__)


def alert_summary() -> dict:
    """What the header of every page shows: firing alerts (not silenced, inhibited or paused), how many
    of them are acknowledged, pending ones, and the worst severity firing. One query."""
    firing = Q(state=AlertState.FIRING, suppressed=Suppression.NONE)
    # Aggregate names must not shadow field names (a later filter on "suppressed" would read the count).
    row = Alert.objects.filter(state__in=ACTIVE_STATES).aggregate(
        n_firing=Count("pk", filter=firing),
        n_acknowledged=Count("pk", filter=firing & Q(acknowledged_at__isnull=False)),
        n_pending=Count("pk", filter=Q(state=AlertState.PENDING)),
        n_suppressed=Count("pk", filter=Q(state=AlertState.FIRING) & ~Q(suppressed=Suppression.NONE)),
        n_critical=Count("pk", filter=firing & Q(severity="critical")),
        n_warning=Count("pk", filter=firing & Q(severity="warning")),
        n_info=Count("pk", filter=firing & Q(severity="info")),
        worst=Max("severity_rank", filter=firing),
    )
    return {
        "firing": row["n_firing"], "acknowledged": row["n_acknowledged"], "pending": row["n_pending"],
        "suppressed": row["n_suppressed"],
        "worst_severity": RANK_SEVERITY.get(row["worst"]) if row["worst"] else None,
        "by_severity": {"critical": row["n_critical"], "warning": row["n_warning"], "info": row["n_info"]},
    }


def publish_summary() -> None:
    """Push the header summary to the ``alerts`` live-stream topic (console.core.broadcast)."""
    try:
        broadcast.publish("alerts", {"state": {"summary": alert_summary()}})
    except Exception:  # noqa: BLE001 - a stream hiccup must not fail an alerting action
        log.warning("could not publish the alert summary", exc_info=True)
