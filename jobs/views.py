"""Job pages: list, detail (instances, log tail, timeline), create with a placement preview, and the
day-2 actions: edit, scale, stop and delete (confirmed, with a reason), an instance's log and its
previous run's. Thin: validation is the API serializer's, work is jobs.services'."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from console.core import audit, charts
from console.core.confirm import ReasonForm, confirm_page
from console.core.messages import render_text
from console.core.models import Event
from console.core.pages import conflict_message, copy_api_errors
from console.core.permissions import ADMIN, OPERATOR, VIEWER, has_role
from jobs import services
from jobs.api.serializers import JobSerializer
from jobs.charts import job_charts
from jobs.forms import JobEditForm, JobForm, ScaleForm
from jobs.gateway.views import job_snippet
from jobs.models import Instance, Job
from jobs.preview import preview_placement
from jobs.recommend import recommend
from models_registry.models import ModelVersion

#: Lines of an instance's log shown on its log page (the API's ``tail`` bounds: 1..5000).
LOG_LINES, LOG_LINES_MAX = 300, 5000


def _require(request, role):
    if not has_role(request.user, role):
        raise PermissionDenied


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
        "can_operate": has_role(request.user, OPERATOR), "can_admin": has_role(request.user, ADMIN),
        "serialized": JobSerializer(job).data,
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
    # The first-run guide (the simulator chosen) and the Deploy button of a version page (job_deploy, from
    # the recommendation) fill the form; other fields keep their defaults.
    initial = {key: request.GET[key] for key in PREFILLED if request.GET.get(key)}
    form = JobForm(request.POST or None, initial=initial or None)
    unplaceable = None
    if request.method == "POST" and form.is_valid():
        serializer = JobSerializer(data=form.api_payload(), context={"request": request})
        if serializer.is_valid():
            # A job to start now that its own preview cannot place is created only when the user says so.
            preview = preview_placement(serializer.validated_data) if form.cleaned_data["start"] else None
            if preview is not None and not preview["placeable"] and not form.cleaned_data["confirm_unplaceable"]:
                unplaceable = preview
            else:
                job = serializer.save()  # services.create_job: create, audit, start
                messages.success(request, _("Job %(name)s created.") % {"name": job.name})
                return redirect("job-detail", pk=job.pk)
        else:
            copy_api_errors(form, serializer.errors)
    return render(request, "jobs/job_form.html", {"form": form, "unplaceable": unplaceable})



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
        messages.warning(request, _("It does not fit now: %(reason)s") % {"reason": render_text(reason)})
    query = urlencode({k: v for k, v in advice["job"].items() if v is not None})
    return redirect(f"{reverse('job-add')}?{query}")


@login_required
def job_edit(request, pk):
    """Edit a job (admins): what ``PATCH jobs/{id}/`` accepts, validated by the same serializer.
    Running instances keep their settings until a rolling restart replaces them."""
    _require(request, ADMIN)
    job = get_object_or_404(Job.objects.select_related("model_version__model"), pk=pk)
    form = JobEditForm(request.POST or None, job=job)
    if request.method == "POST" and form.is_valid():
        serializer = JobSerializer(job, data=form.api_payload(), partial=True, context={"request": request})
        if serializer.is_valid():
            with transaction.atomic():
                job = serializer.save()
                audit.record("update", job, request=request, detail={"fields": sorted(form.changed_data)})
            messages.success(request, _("Job %(name)s saved.") % {"name": job.name})
            if job.desired_state == "running" and form.changed_data:
                messages.info(request, _("Running instances keep their settings until a rolling restart "
                                         "replaces them."))
            return redirect("job-detail", pk=job.pk)
        copy_api_errors(form, serializer.errors)
    return render(request, "jobs/job_form.html", {"form": form, "job": job})


@login_required
def job_scale(request, pk):
    """Set the replica count (operators), as ``POST jobs/{id}/scale/``; a form with its errors when the
    count is out of bounds."""
    _require(request, OPERATOR)
    job = get_object_or_404(Job.objects.select_related("model_version"), pk=pk)
    form = ScaleForm(request.POST or None, initial={"replicas": job.replicas})
    if request.method == "POST" and form.is_valid():
        old, new = job.replicas, form.cleaned_data["replicas"]
        with conflict_message(request):
            services.scale_job(job, new, request=request, reason=form.cleaned_data["reason"].strip())
            messages.success(request, _("Job %(name)s scaled from %(old)d to %(new)d replicas.")
                             % {"name": job.name, "old": old, "new": new})
        return redirect("job-detail", pk=job.pk)
    return render(request, "jobs/job_scale.html", {"form": form, "job": job})


@login_required
@require_http_methods(["GET", "POST"])
def job_action(request, pk, action):
    """Start and rolling restart (a POST); stop asks first (GET: the confirmation, POST: stop with the
    optional reason)."""
    _require(request, OPERATOR)
    if action not in ("start", "stop", "restart"):
        raise Http404
    job = get_object_or_404(Job.objects.select_related("model_version"), pk=pk)
    if action == "stop":
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with conflict_message(request):
                job = services.stop_job(job, request=request, reason=form.cleaned_data["reason"])
                messages.success(request, ACTION_MESSAGES["stop"]() % {"name": job.name, "generation": job.generation})
            return redirect("job-detail", pk=pk)
        return confirm_page(
            request, form, title=_("Stop %(name)s?") % {"name": job.name},
            question=_("Every instance of %(name)s is stopped and the job stops serving requests. Start it again "
                       "at any time.") % {"name": job.name},
            consequences=[_("%(n)d instance(s) running now.") % {"n": job.instances.active().count()}],
            button=_("Stop the job"), cancel_url=reverse("job-detail", args=[pk]))
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    actions = {"start": services.start_job, "restart": services.restart_job}
    with conflict_message(request) as outcome:
        job = actions[action](job, request=request)
    if not outcome.refused:
        messages.success(request, ACTION_MESSAGES[action]() % {"name": job.name, "generation": job.generation})
    return redirect("job-detail", pk=pk)


@login_required
def job_delete(request, pk):
    """Delete a job (admins) after a confirmation; while it has live instances the refusal is shown
    (the API's 409) and nothing is deleted."""
    _require(request, ADMIN)
    job = get_object_or_404(Job, pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with conflict_message(request) as outcome:
            services.delete_job(job, request=request, reason=form.cleaned_data["reason"])
            messages.success(request, _("Job %(name)s deleted.") % {"name": job.name})
        return redirect("job-detail", pk=pk) if outcome.refused else redirect("job-list")
    live = job.instances.active().count()
    return confirm_page(
        request, form, title=_("Delete %(name)s?") % {"name": job.name},
        question=_("The job, its instances' records and its settings are deleted; its events stay in the log."),
        consequences=[_("It still has %(n)d live instance(s): stop it first.") % {"n": live}] if live else [],
        button=_("Delete the job"), cancel_url=reverse("job-detail", args=[pk]))


@login_required
def instance_log(request, pk):
    """An instance's log tail, or its previous run's (``?previous=1``), as ``GET instances/{id}/logs/``."""
    _require(request, VIEWER)
    instance = get_object_or_404(Instance.objects.select_related("job", "node"), pk=pk)
    try:
        lines = min(max(int(request.GET.get("tail", LOG_LINES)), 1), LOG_LINES_MAX)
    except ValueError:
        lines = LOG_LINES
    previous = request.GET.get("previous") in ("1", "true", "yes")
    return render(request, "jobs/instance_log.html", {
        "instance": instance, "job": instance.job, "previous": previous, "lines": lines,
        "log": services.instance_logs(instance, lines, previous),
    })


# What each action set in motion; the page's live regions show it happen (static/js/live_regions.js).
ACTION_MESSAGES = {
    "start": lambda: _("Starting %(name)s: its instances are placed and started; their states below follow it."),
    "stop": lambda: _("Stopping %(name)s: its instances stop; their states below follow it."),
    "restart": lambda: _("Rolling restart of %(name)s to generation %(generation)s: one replica at a time, so "
                         "the job keeps serving; the progress below follows it."),
}
