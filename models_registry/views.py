"""Registry pages: models with their versions, version detail (files, checksums, evaluations with
parent deltas, lineage, aliases, jobs), register/import forms, verify with live progress. Thin: reads
for display, writes through the API serializers and models_registry.services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.core import audit
from console.core.models import Event
from console.core.pages import conflict_message
from console.core.permissions import ADMIN, OPERATOR, has_role
from models_registry import services
from models_registry.api.serializers import (
    EvaluationSerializer,
    ModelSerializer,
    ModelVersionSerializer,
    known_quantizations,
)
from models_registry.choices import CopyStatus, VersionStatus
from models_registry.forms import ImportForm, ModelCreateForm, PromoteForm, VersionCreateForm
from models_registry.models import Alias, Model, ModelCopy, ModelVersion
from nodes.models import Node

#: Files listed on a version page; the API's files/ pages through all of them.
FILES_SHOWN = 500


def _require(request, role):
    if not has_role(request.user, role):
        raise PermissionDenied


def _copy_errors(form, errors) -> None:
    for field, problems in errors.items():
        form.add_error(field if field in form.fields else None, problems)


@login_required
def model_list(request):
    versions = ModelVersion.objects.prefetch_related("aliases", "evaluations").order_by("version")
    models = Model.objects.prefetch_related(Prefetch("versions", queryset=versions)).order_by("name")
    family = request.GET.get("family")
    if family:
        models = models.filter(family__iexact=family)
    families = Model.objects.exclude(family="").values_list("family", flat=True).distinct().order_by("family")
    return render(request, "models_registry/model_list.html", {
        "models": models, "families": families, "family": family, "can_admin": has_role(request.user, ADMIN),
    })


@login_required
def model_create(request):
    _require(request, ADMIN)
    form = ModelCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        serializer = ModelSerializer(data=form.api_payload())
        if serializer.is_valid():
            with transaction.atomic():
                model = serializer.save()
                audit.record("create", model, request=request)
            messages.success(request, _("Model %(name)s added.") % {"name": model.name})
            return redirect("model-list")
        _copy_errors(form, serializer.errors)
    return render(request, "models_registry/model_form.html", {"form": form})


@login_required
def version_create(request):
    _require(request, ADMIN)
    initial = {"model": request.GET.get("model")} if request.GET.get("model") else None
    form = VersionCreateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        serializer = ModelVersionSerializer(data=form.api_payload(), context={"request": request})
        if serializer.is_valid():
            with transaction.atomic():
                version = serializer.save()
                audit.record("create", version, request=request)
            messages.success(request, _("Version %(name)s registered.") % {"name": version})
            return redirect("model-version-detail", pk=version.pk)
        _copy_errors(form, serializer.errors)
    return render(request, "models_registry/version_form.html", {
        "form": form, "quantizations": known_quantizations()})


@login_required
def version_detail(request, pk):
    version = get_object_or_404(
        ModelVersion.objects.select_related("model", "node", "parent__model")
        .prefetch_related("evaluations", "parent__evaluations").annotate(file_count=Count("files")),
        pk=pk)
    files = list(version.files.order_by("path")[:FILES_SHOWN])
    scores = EvaluationSerializer()  # the API's comparison with the parent, on the prefetched rows
    evaluations = [{"row": e, "parent_score": scores.get_parent_score(e), "delta": scores.get_delta(e)}
                   for e in version.evaluations.all()]
    family_tree = services.lineage(version)
    model_aliases = Alias.objects.filter(model=version.model).select_related("version").order_by("name")
    return render(request, "models_registry/version_detail.html", {
        "version": version,
        "files": files,
        "files_hidden": max(0, version.file_count - len(files)),
        "verified_files": sum(1 for f in files if f.sha256),
        "evaluations": evaluations,
        "ancestors": family_tree["ancestors"],
        "children": family_tree["children"],
        "aliases": [a for a in model_aliases if a.version_id == version.pk],
        "model_aliases": model_aliases,
        "jobs": version.jobs.order_by("name"),
        "history": version.status_history.all()[:20],
        "events": Event.objects.filter(object_type="modelversion", object_id=str(version.pk)).order_by("-time")[:30],
        "can_operate": has_role(request.user, OPERATOR),
        "can_admin": has_role(request.user, ADMIN),
        "import_form": ImportForm(initial={"node": version.node_id or Node.objects.filter(name="local").first(),
                                           "source_uri": services.directory_of(version) or ""}),
        "promote_form": PromoteForm(),
        "live": version.status == "verifying" or version.import_pending,
        **_copies_context(version),
        "i18n_live": {"verifying": _("Computing checksums on the node…"),
                      "importing": _("Inspecting the directory on the node…"),
                      "done": _("Finished; reloading…"), "lost": _("Lost contact with the console; retrying…"),
                      "statuses": {code: str(label) for code, label in VersionStatus.choices}},
    })


def _copies_context(version) -> dict:
    copies = list(version.copies.select_related("node").order_by("-origin", "node__name"))
    taken = {c.node_id for c in copies}
    return {
        "copies": copies,
        "copy_nodes": [n for n in Node.objects.order_by("name") if n.pk not in taken],
        "copies_i18n": {"statuses": {code: str(label) for code, label in CopyStatus.choices}},
    }


@login_required
@require_POST
def copy_add(request, pk):
    """Ask for a copy of the version on a node (or resume a failed one): the API's rules and messages."""
    _require(request, OPERATOR)

    def work(version):
        node = Node.objects.filter(pk=request.POST.get("node") or 0).first()
        if node is None:
            raise services.InvalidInput({"node": [_("Choose a node.")]})
        path = (request.POST.get("path") or "").strip()
        services.copies.request_copy(version, node, path=services.copies.check_path(path) if path else None,
                                     request=request)
        messages.info(request, _("Copying %(name)s to node %(node)s.") % {"name": version, "node": node.name})

    _run(request, pk, work)
    return redirect(reverse("model-version-detail", kwargs={"pk": pk}) + "#copies-title")


@login_required
@require_POST
def copy_action(request, pk, copy_id, action):
    """Cancel, verify again or remove one copy."""
    _require(request, OPERATOR)
    actions = {"cancel": services.copies.cancel_copy, "verify": services.copies.request_verify_copy,
               "remove": services.copies.request_remove}
    if action not in actions:
        raise Http404
    copy = get_object_or_404(ModelCopy.objects.select_related("node", "version__model"), pk=copy_id, version_id=pk)
    with conflict_message(request):
        actions[action](copy, request=request)
        if action == "verify":
            audit.record("verify_copy", copy.version, request=request, detail={"node": copy.node.name,
                                                                               "path": copy.path})
    return redirect(reverse("model-version-detail", kwargs={"pk": pk}) + "#copies-title")


def _run(request, pk, work) -> None:
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        with conflict_message(request):
            work(version)
    except services.InvalidInput as exc:
        for problems in exc.errors.values():
            for problem in problems:
                messages.error(request, problem)


@login_required
@require_POST
def version_verify(request, pk):
    _require(request, OPERATOR)

    def work(version):
        services.request_verify(version, request=request)
        audit.record("verify", version, request=request)
        messages.info(request, _("Verification of %(name)s started.") % {"name": version})

    _run(request, pk, work)
    return redirect("model-version-detail", pk=pk)


@login_required
@require_POST
def version_promote(request, pk):
    _require(request, ADMIN)

    def work(version):
        alias = request.POST.get("alias", "").strip()
        services.promote(version, alias, request=request)
        messages.success(request, _("%(alias)s now points at %(name)s.") % {"alias": alias, "name": version})

    _run(request, pk, work)
    return redirect("model-version-detail", pk=pk)


@login_required
@require_POST
def version_import(request, pk):
    _require(request, ADMIN)
    form = ImportForm(request.POST)

    def work(version):
        if not form.is_valid():
            raise services.InvalidInput({k: [str(e) for e in v] for k, v in form.errors.items()})
        node = form.cleaned_data["node"] or Node.objects.filter(name="local").first()
        services.request_import(version, source_uri=form.cleaned_data["source_uri"], node=node, request=request)
        messages.info(request, _("Inspecting the directory of %(name)s.") % {"name": version})

    _run(request, pk, work)
    return redirect("model-version-detail", pk=pk)


@login_required
@require_POST
def version_deprecate(request, pk):
    _require(request, ADMIN)
    _run(request, pk, lambda version: services.deprecate(version, request.POST.get("reason", ""), request=request))
    return redirect("model-version-detail", pk=pk)
