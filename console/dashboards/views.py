"""Pages that span domains: the overview and the event log."""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from console.core import event_text
from console.core.audit import SYSTEM
from console.core.charts import region_refresh, stream_config
from console.core.models import Event
from console.core.permissions import ADMIN, has_role
from console.dashboards import charts
from jobs.models import Job
from models_registry.models import ModelVersion
from nodes.models import Accelerator, Node


@login_required
def dashboard(request):
    """Cluster overview: live tiles, the accelerator heatmap, job throughput, nodes needing attention."""
    node_counts = dict(Node.objects.values_list("status").annotate(n=Count("id")).order_by())
    accelerators = Accelerator.objects.filter(present=True)
    by_vendor = list(accelerators.values("vendor", "kind").annotate(
        n=Count("id"), memory=Sum("memory_total_bytes"), used=Sum("memory_used_bytes"),
        unhealthy=Count("id", filter=Q(health__in=["warning", "critical"])),
    ).order_by("vendor"))
    attention = Node.objects.exclude(status="online").order_by("name")[:20]
    throughput = charts.latest_throughput()
    node_total = sum(node_counts.values())
    return render(request, "console/dashboard.html", {
        "guide": first_run_guide(node_total > 0), "can_admin": has_role(request.user, ADMIN),
        "node_total": node_total,
        "node_counts": node_counts,
        "by_vendor": by_vendor,
        "accelerator_total": sum(row["n"] for row in by_vendor),
        "unhealthy_total": sum(row["unhealthy"] for row in by_vendor),
        "attention": attention,
        "recent_events": Event.objects.all()[:15],
        "live": charts.page_config(
            [charts.throughput_chart(Job.objects.only("pk", "name"))], ["cluster"],
            extra={"heatmap": charts.heatmap(), "throughput": throughput["total"],
                   "throughput_jobs": throughput["jobs"]},
            stale_after_s=charts.stale_after_s(Node.objects.all()), points=not region_refresh(request)),
    })


def first_run_guide(has_node: bool) -> dict | None:
    """The overview's first steps, each done or not: add a node, register a model version (or load the
    starter catalog), deploy a job. None once all three are done (two queries at most)."""
    steps = {"node": has_node, "model": ModelVersion.objects.exists(), "job": Job.objects.exists()}
    return None if all(steps.values()) else steps


#: The time ranges the event log offers (seconds back from now).
EVENT_RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


@login_required
def events(request):
    """The audit and event log, newest first, filterable by verb, object type, object, actor and time range
    (an unknown value filters nothing rather than failing)."""
    queryset = Event.objects.all()
    filters = {key: request.GET.get(key, "").strip()[:150] for key in
               ("verb", "object_type", "object_id", "actor", "range")}
    if filters["actor"] == gettext("system"):
        filters["actor"] = SYSTEM  # the word as the page shows it
    for key in ("object_type", "object_id", "actor", "verb"):
        if filters[key]:
            queryset = queryset.filter(**{key: filters[key]})
    if filters["range"] in EVENT_RANGES:
        queryset = queryset.filter(time__gte=timezone.now() - timedelta(seconds=EVENT_RANGES[filters["range"]]))
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    known = Event.objects.order_by()
    verbs = sorted(known.values_list("verb", flat=True).distinct())
    types = sorted(known.values_list("object_type", flat=True).distinct())
    query = urlencode({k: v for k, v in filters.items() if v})
    # Only the first page follows the stream: newer events would shift an older page under the reader.
    live = stream_config(["cluster"] if page.number == 1 else [])
    return render(request, "console/events.html", {
        "page": page, "filters": filters, "query": query, "live": live,
        "verbs": [(v, event_text.verb_label(v)) for v in verbs],
        "object_types": [(t, event_text.object_type_label(t)) for t in types if t],
        "ranges": [("1h", _("last hour")), ("24h", _("last 24 hours")), ("7d", _("last 7 days")),
                   ("30d", _("last 30 days"))],
    })
