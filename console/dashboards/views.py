"""Pages that span domains: the overview and the event log."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.shortcuts import render

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


@login_required
def events(request):
    """The audit and event log, newest first, filterable by object."""
    queryset = Event.objects.all()
    for key in ("object_type", "object_id", "actor", "verb"):
        if request.GET.get(key):
            queryset = queryset.filter(**{key: request.GET[key]})
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    # Only the first page follows the stream: newer events would shift an older page under the reader.
    live = stream_config(["cluster"] if page.number == 1 else [])
    return render(request, "console/events.html", {"page": page, "live": live})
