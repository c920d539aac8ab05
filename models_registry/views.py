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
from console.core.charts import stream_config
from console.core.confirm import ReasonForm, confirm_page
from console.core.models import Event
from console.core.pages import conflict_message, copy_api_errors
from console.core.permissions import ADMIN, OPERATOR, has_role
from models_registry import services
from models_registry.api.serializers import (
    EvaluationSerializer,
    ModelSerializer,
    ModelVersionSerializer,
    known_quantizations,
)
from models_registry.choices import CopyStatus, VersionStatus
from models_registry.forms import (
    EvaluationFormSet,
    ImportForm,
    ModelCreateForm,
    PromoteForm,
    VersionCreateForm,
    VersionEditForm,
)
from models_registry.models import Alias, Model, ModelCopy, ModelVersion
from nodes.models import Node

#: Files listed on a version page; the API's files/ pages through all of them.
FILES_SHOWN = 500


def _require(request, role):
    if not has_role(request.user, role):
        raise PermissionDenied



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
@require_POST
def catalog_load(request):
    """The starter catalog into the registry (the empty model list and the first-run guide offer it)."""
    _require(request, ADMIN)
    done = services.load_catalog(request=request)
    messages.success(request, _("Starter catalog loaded: %(models)d model(s) and %(versions)d version(s) added, "
                                "%(already)d version(s) were there already.")
                     % {"models": done.models, "versions": done.versions, "already": done.already})
    return redirect("model-list")


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
            if request.GET.get("then") == "version":  # back to the version form, the new model chosen
                return redirect(f"{reverse('model-version-add')}?model={model.pk}")
            return redirect("model-list")
        copy_api_errors(form, serializer.errors)
    return render(request, "models_registry/model_form.html", {"form": form})


@login_required
def version_create(request):
    _require(request, ADMIN)
    initial = {"model": request.GET.get("model")} if request.GET.get("model") else None
    form = VersionCreateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        version = _register_version(request, form)
        if version is not None:
            messages.success(request, _("Version %(name)s registered.") % {"name": version})
            return redirect("model-version-detail", pk=version.pk)
    return render(request, "models_registry/version_form.html", {
        "form": form, "quantizations": known_quantizations(), "no_models": not Model.objects.exists()})


def _register_version(request, form):
    """The version of a valid form, with its new model when the form names one (both or neither:
    a refused version leaves no model behind). None with the errors on the form."""
    with transaction.atomic():
        model = None
        name = (form.cleaned_data.get("new_model") or "").strip()
        if name:
            model_serializer = ModelSerializer(data={"name": name})
            if not model_serializer.is_valid():
                errors = model_serializer.errors
                copy_api_errors(form, {"new_model" if k == "name" else k: v for k, v in errors.items()})
                return None
            model = model_serializer.save()
            audit.record("create", model, request=request)
        serializer = ModelVersionSerializer(data=form.api_payload(model), context={"request": request})
        if not serializer.is_valid():
            transaction.set_rollback(True)
            copy_api_errors(form, serializer.errors)
            return None
        version = serializer.save()
        audit.record("create", version, request=request)
        return version


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
        # The page follows the version on its topic: transitions and an import's files re-read the live
        # regions, a verification's progress moves the bar (static/js/model_version.js), a copy's moves its own.
        "working": version.status == VersionStatus.VERIFYING or version.import_pending,
        "live": stream_config([services.version_topic(version.pk)]),
        **_copies_context(version),
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
def version_deprecate(request, pk):
    """Deprecate after a confirmation (GET shows it); the reason is the status change's."""
    _require(request, ADMIN)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _run(request, pk, lambda version: services.deprecate(version, form.cleaned_data["reason"], request=request))
        return redirect("model-version-detail", pk=pk)
    version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
    return confirm_page(
        request, form, title=_("Deprecate %(name)s?") % {"name": version},
        question=_("The version stays in the registry for history, but new jobs refuse it and its aliases are "
                   "removed. Jobs that run it now keep running."),
        consequences=[_("Aliases removed: %(aliases)s") % {"aliases": ", ".join(a.name for a in version.aliases.all())}]
        if version.aliases.exists() else [],
        button=_("Deprecate"), cancel_url=reverse("model-version-detail", args=[pk]))


@login_required
@require_POST
def version_reinstate(request, pk):
    """Bring a deprecated version back to registered, as ``POST model-versions/{id}/reinstate/``."""
    _require(request, ADMIN)

    def work(version):
        services.reinstate(version, request=request)
        messages.success(request, _("%(name)s is registered again; verify it to trust its files.") % {"name": version})

    _run(request, pk, work)
    return redirect("model-version-detail", pk=pk)


@login_required
def version_edit(request, pk):
    """Edit a version (admins): what ``PATCH model-versions/{id}/`` accepts, through its serializer."""
    _require(request, ADMIN)
    version = get_object_or_404(ModelVersion.objects.select_related("model", "parent"), pk=pk)
    form = VersionEditForm(request.POST or None, initial=VersionEditForm.initial_of(version))
    form.fields["parent"].queryset = form.fields["parent"].queryset.exclude(pk=version.pk)
    if request.method == "POST" and form.is_valid():
        serializer = ModelVersionSerializer(version, data=form.api_payload(), partial=True,
                                            context={"request": request})
        if serializer.is_valid():
            with transaction.atomic():
                version = serializer.save()
                audit.record("update", version, request=request, detail={"fields": sorted(form.changed_data)})
            messages.success(request, _("Version %(name)s saved.") % {"name": version})
            return redirect("model-version-detail", pk=version.pk)
        copy_api_errors(form, serializer.errors)
    return render(request, "models_registry/version_edit.html", {
        "form": form, "version": version, "quantizations": known_quantizations()})


@login_required
def version_evaluations(request, pk):
    """Add, change and remove a version's evaluations (admins): the list replaces the stored one, as a
    ``PATCH`` of ``evaluations`` does, validated by the same serializer."""
    _require(request, ADMIN)
    version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
    initial = [{"benchmark": e.benchmark, "score": e.score, "date": e.date, "notes": e.notes}
               for e in version.evaluations.order_by("benchmark", "-date")]
    formset = EvaluationFormSet(request.POST or None, initial=initial, prefix="evaluations")
    if request.method == "POST" and formset.is_valid():
        rows = [(form, form.item()) for form in formset.forms]
        rows = [(form, item) for form, item in rows if item is not None]
        serializer = ModelVersionSerializer(version, data={"evaluations": [item for _form, item in rows]},
                                            partial=True, context={"request": request})
        if serializer.is_valid():
            with transaction.atomic():
                serializer.save()
                audit.record("update", version, request=request,
                             detail={"fields": ["evaluations"], "evaluations": len(rows)})
            messages.success(request, _("Evaluations of %(name)s saved.") % {"name": version})
            return redirect("model-version-detail", pk=version.pk)
        problems = serializer.errors.get("evaluations", [])
        for index, problem in enumerate(problems):
            if isinstance(problem, dict) and index < len(rows):
                for field, messages_ in problem.items():
                    rows[index][0].add_error(field if field in rows[index][0].fields else None, messages_)
            elif isinstance(problem, str):
                formset.forms[0].add_error(None, problem)
        for field, messages_ in serializer.errors.items():
            if field != "evaluations":
                formset.forms[0].add_error(None, messages_)
    return render(request, "models_registry/version_evaluations.html", {"formset": formset, "version": version})


@login_required
def version_delete(request, pk):
    """Delete a version (admins) after a confirmation; refused (the API's 409) while a job uses it or an
    alias points at it."""
    _require(request, ADMIN)
    version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = str(version)
        with conflict_message(request) as outcome:
            services.delete_version(version, request=request, reason=form.cleaned_data["reason"])
            messages.success(request, _("Version %(name)s deleted.") % {"name": name})
        if outcome.refused:
            return redirect("model-version-detail", pk=pk)
        return redirect("model-list")
    return confirm_page(
        request, form, title=_("Delete %(name)s?") % {"name": version},
        question=_("The version, its file list, checksums and evaluations are deleted from the registry; the "
                   "weight files on the nodes are not touched."),
        button=_("Delete the version"), cancel_url=reverse("model-version-detail", args=[pk]))
