"""Job pages: list, detail (instances, log tail, timeline), create with a placement preview."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.core import charts
from console.core.models import Event
from console.core.pages import conflict_message
from console.core.permissions import ADMIN, OPERATOR, has_role
from jobs import services
from jobs.api.serializers import JobSerializer
from jobs.charts import job_charts
from jobs.forms import JobForm
from jobs.gateway.views import job_snippet
from jobs.models import Job


@login_required
def job_list(request):
    jobs = Job.objects.select_related("model_version__model").prefetch_related("instances").order_by("name")
    return render(request, "jobs/job_list.html", {"jobs": jobs, "can_admin": has_role(request.user, ADMIN),
                                                  "live": charts.stream_config(["cluster"])})


@login_required
def job_detail(request, pk):
    job = get_object_or_404(Job.objects.select_related("model_version__model"), pk=pk)
    instances = list(job.instances.select_related("node").prefetch_related("allocations__accelerator")
                     .order_by("replica", "member"))
    instance_ids = [str(i.pk) for i in instances]
    timeline = Event.objects.filter(object_type="job", object_id=str(job.pk)) | Event.objects.filter(
        object_type="instance", object_id__in=instance_ids)
    return render(request, "jobs/job_detail.html", {
        "job": job, "instances": instances, "timeline": timeline.order_by("-time")[:50],
        "can_operate": has_role(request.user, OPERATOR), "serialized": JobSerializer(job).data,
        "gateway": job_snippet(job),
        "rolling": services.rolling_restart_progress(job, instances),
        "live": charts.page_config(job_charts(job), [f"job:{job.pk}"],
                                   stale_after_s=max(10.0, 3.0 * settings.CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S),
                                   points=not charts.region_refresh(request)),
    })


@login_required
def job_create(request):
    if not has_role(request.user, ADMIN):
        raise PermissionDenied
    form = JobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        serializer = JobSerializer(data=form.api_payload(), context={"request": request})
        if serializer.is_valid():
            job = serializer.save()  # services.create_job: create, audit, start
            messages.success(request, _("Job %(name)s created.") % {"name": job.name})
            return redirect("job-detail", pk=job.pk)
        for field, errors in serializer.errors.items():
            form.add_error(field if field in form.fields else None, errors)
    return render(request, "jobs/job_form.html", {"form": form})


@login_required
@require_POST
def job_action(request, pk, action):
    if not has_role(request.user, OPERATOR):
        raise PermissionDenied
    actions = {"start": services.start_job, "stop": services.stop_job, "restart": services.restart_job}
    if action not in actions:
        raise PermissionDenied
    job = get_object_or_404(Job.objects.select_related("model_version"), pk=pk)
    with conflict_message(request) as outcome:
        job = actions[action](job, request=request)
    if not outcome.refused:
        messages.success(request, ACTION_MESSAGES[action]() % {"name": job.name, "generation": job.generation})
    return redirect("job-detail", pk=pk)


# What each action set in motion; the page's live regions show it happen (static/js/live_regions.js).
ACTION_MESSAGES = {
    "start": lambda: _("Starting %(name)s: its instances are placed and started; their states below follow it."),
    "stop": lambda: _("Stopping %(name)s: its instances stop; their states below follow it."),
    "restart": lambda: _("Rolling restart of %(name)s to generation %(generation)s: one replica at a time, so "
                         "the job keeps serving; the progress below follows it."),
}
