"""Benchmark pages: list (pick runs to compare), run form, result page with live progress, compare,
export. Thin: validation is the API serializer's, the work is jobs.benchmarks.services'."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.core.charts import stream_config
from console.core.pages import conflict_message
from console.core.permissions import OPERATOR, has_role
from jobs.benchmarks import charts, export, services
from jobs.benchmarks.api import BenchmarkRunSerializer
from jobs.benchmarks.forms import BenchmarkForm
from jobs.choices import BENCHMARK_ACTIVE
from jobs.models import BenchmarkRun

MAX_COMPARED = 8


def _messages(errors) -> list[str]:
    """DRF errors (lists, or dicts by list index) as flat strings."""
    if isinstance(errors, dict):
        return [f"{key}: {m}" if isinstance(key, str) else m for key, v in errors.items() for m in _messages(v)]
    if isinstance(errors, list | tuple):
        return [m for item in errors for m in _messages(item)]
    return [str(errors)]


@login_required
def benchmark_list(request):
    runs = BenchmarkRun.objects.select_related("created_by").order_by("-created_at", "-id")
    job = request.GET.get("job")
    if job and job.isdigit():
        runs = runs.filter(job_id=int(job))
    return render(request, "jobs/benchmark_list.html", {
        "runs": runs[:200], "can_operate": has_role(request.user, OPERATOR), "max_compared": MAX_COMPARED,
        "live": stream_config(["cluster"])})


@login_required
def benchmark_create(request):
    if not has_role(request.user, OPERATOR):
        raise PermissionDenied
    initial = {}
    if request.GET.get("from", "").isdigit():  # "Run again": the earlier run's settings
        initial = BenchmarkForm.initial_from(get_object_or_404(BenchmarkRun, pk=int(request.GET["from"])))
    elif request.GET.get("job", "").isdigit():
        initial = {"job": int(request.GET["job"]), "target": "job"}
    form = BenchmarkForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        serializer = BenchmarkRunSerializer(data=form.api_payload(), context={"request": request})
        if serializer.is_valid():
            with conflict_message(request, form=form) as outcome:
                run = services.create_benchmark(serializer.validated_data, request=request)
            if not outcome.refused:
                messages.success(request, _("Benchmark queued."))
                return redirect("benchmark-detail", pk=run.pk)
        else:
            for field, errors in serializer.errors.items():
                form.add_error(field if field in form.fields else None, _messages(errors))
    return render(request, "jobs/benchmark_form.html", {"form": form})


@login_required
def benchmark_detail(request, pk):
    run = get_object_or_404(BenchmarkRun.objects.select_related("created_by", "job"), pk=pk)
    return render(request, "jobs/benchmark_detail.html", {
        "run": run, "active": run.status in BENCHMARK_ACTIVE, "can_operate": has_role(request.user, OPERATOR),
        "figures": charts.run_figures(run), "transitions": run.transitions.all(),
        "progress_percent": round(run.progress * 100), "live": stream_config([f"benchmark:{run.pk}"])})


@login_required
@require_POST
def benchmark_cancel(request, pk):
    if not has_role(request.user, OPERATOR):
        raise PermissionDenied
    run = get_object_or_404(BenchmarkRun, pk=pk)
    with conflict_message(request):
        services.cancel_benchmark(run, request=request)
        messages.success(request, _("Cancelling the benchmark."))
    return redirect("benchmark-detail", pk=pk)


@login_required
def benchmark_compare(request):
    ids = [int(v) for v in request.GET.getlist("runs") if v.isdigit()][:MAX_COMPARED]
    by_id = {run.pk: run for run in BenchmarkRun.objects.filter(pk__in=ids)}
    runs = [by_id[i] for i in ids if i in by_id]
    levels = sorted({level["concurrency"] for run in runs for level in run.results or []})
    table = [{"concurrency": c, "cells": [next((lv for lv in run.results or [] if lv["concurrency"] == c), None)
                                          for run in runs]} for c in levels]
    return render(request, "jobs/benchmark_compare.html", {
        "runs": runs, "table": table, "figures": charts.compare_figures(runs),
        "shape_warnings": services.prompt_shape_warnings(runs)})


@login_required
def benchmark_export(request, pk, fmt):
    run = get_object_or_404(BenchmarkRun, pk=pk)
    if fmt == "csv":
        response = HttpResponse(export.to_csv(export.rows(run)), content_type="text/csv; charset=utf-8")
    elif fmt == "json":
        response = JsonResponse(export.as_json(run), json_dumps_params={"indent": 2})
    else:
        raise Http404
    response["Content-Disposition"] = f'attachment; filename="benchmark-{run.pk}.{fmt}"'
    return response
