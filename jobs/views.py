"""Job pages: list, detail (instances, log tail, timeline), create with a placement preview."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
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
from jobs.recommend import recommend
from models_registry.models import ModelVersion


@login_required
def job_list(request):
    jobs = Job.objects.select_related("model_version__model").prefetch_related("instances").order_by("name")
    return render(request, "jobs/job_list.html", {"jobs": jobs, "can_admin": has_role(request.user, ADMIN)})


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
        "live": charts.page_config(job_charts(job), [f"job:{job.pk}"],
                                   stale_after_s=max(10.0, 3.0 * settings.CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S)),
    })


@login_required
def job_create(request):
    if not has_role(request.user, ADMIN):
        raise PermissionDenied
    # The Deploy button of a version page (job_deploy) fills the form from the recommendation.
    initial = {key: request.GET[key] for key in PREFILLED if request.GET.get(key)}
    form = JobForm(request.POST or None, initial=initial or None)
    if request.method == "POST" and form.is_valid():
        serializer = JobSerializer(data=form.api_payload(), context={"request": request})
        if serializer.is_valid():
            job = serializer.save()  # services.create_job: create, audit, start
            messages.success(request, _("Job %(name)s created.") % {"name": job.name})
            return redirect("job-detail", pk=job.pk)
        for field, errors in serializer.errors.items():
            form.add_error(field if field in form.fields else None, errors)
    return render(request, "jobs/job_form.html", {"form": form})


#: Job form fields the Deploy button may fill (query parameters of the job form).
PREFILLED = ("name", "model_version", "engine", "replicas", "accelerators_per_replica", "nodes_per_replica")


@login_required
def job_deploy(request, version_pk):
    """Deploy a model version: the recommendation (jobs.recommend) fills the job form; its reasons, when
    it does not fit now, are shown above it. The form's placement preview shows where it would go."""
    if not has_role(request.user, ADMIN):
        raise PermissionDenied
    version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=version_pk)
    advice = recommend(version)
    if advice["fits"]:
        where = "; ".join(", ".join(m["name"] for m in r["members"]) for r in advice["placement"])
        text = _("Recommended: %(engine)s, %(acc)s accelerator(s) on %(nodes)s node(s) per replica, on %(where)s.")
        messages.info(request, text % {"engine": advice["engine"], "acc": advice["accelerators_per_replica"],
                                       "nodes": advice["nodes_per_replica"], "where": where})
        if advice["copies_needed"]:
            messages.info(request, _("The model's files will be copied to %(nodes)s first.")
                          % {"nodes": ", ".join(advice["copies_needed"])})
    for reason in advice["reasons"]:
        messages.warning(request, _("It does not fit now: %(reason)s") % {"reason": reason})
    query = urlencode({k: v for k, v in advice["job"].items() if v is not None})
    return redirect(f"{reverse('job-add')}?{query}")


@login_required
@require_POST
def job_action(request, pk, action):
    if not has_role(request.user, OPERATOR):
        raise PermissionDenied
    actions = {"start": services.start_job, "stop": services.stop_job, "restart": services.restart_job}
    if action not in actions:
        raise PermissionDenied
    job = get_object_or_404(Job.objects.select_related("model_version"), pk=pk)
    with conflict_message(request):
        actions[action](job, request=request)
    return redirect("job-detail", pk=pk)
