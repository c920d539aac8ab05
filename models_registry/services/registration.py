"""Registering and editing versions, their evaluations and lineage; aliases, deprecation, deletion."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from console.core import audit
from console.core.confirm import with_reason
from console.core.statemachine import TransitionNotAllowed
from models_registry.choices import VersionStatus, WeightFormat
from models_registry.models import Alias, Evaluation, Model, ModelVersion, Quantization
from models_registry.services.common import (
    ALIAS_RE,
    UNDEPLOYABLE,
    Conflict,
    InvalidInput,
    _enqueue_import,
    _memory_fields,
    parse_source,
    transition_version,
)

# --- registration -----------------------------------------------------------------------------


@dataclasses.dataclass
class EvaluationInput:
    """One evaluation as a client sends it."""

    benchmark: str
    score: float
    date: Any = None
    notes: str = ""


def register_version(*, model: Model, version: str, source_uri: str, quantization: str = "", format: str = "",
                     node=None, parent: ModelVersion | None = None, parent_relation: str = "",
                     parameters: int | None = None, architecture: dict[str, Any] | None = None, dtype: str = "",
                     notes: str = "", evaluations: Iterable[EvaluationInput] = (), catalog: bool = False,
                     request=None) -> ModelVersion:
    """Create a version, its evaluations and (for a directory on a node) queue the inspection.

    One transaction: the version exists with all it was given, or not at all. A directory source is
    inspected in the background (``tasks.import_version``) after the commit; until then
    ``import_pending`` is true. Callers validate input first (the API serializer does).
    """
    source = parse_source(source_uri)
    with transaction.atomic():
        obj = ModelVersion(
            model=model, version=version, source_uri=source.uri, quantization=quantization,
            # A directory's format is detected by the import; a reference without one is safetensors.
            format=format or ("" if source.on_node else WeightFormat.SAFETENSORS),
            node=node if source.on_node else None, parent=parent,
            parent_relation=parent_relation, parameters=parameters or None, architecture=architecture or {},
            dtype=dtype, notes=notes, catalog=catalog,
        )
        if source.on_node and node is not None:
            obj.import_pending = True
            obj.status_detail = f"waiting for the inspection of {source.path} on node {node.name}"
        obj.save()
        fields = _memory_fields(obj)
        ModelVersion.objects.filter(pk=obj.pk).update(**fields)
        for key, value in fields.items():
            setattr(obj, key, value)
        Evaluation.objects.bulk_create(
            [Evaluation(version=obj, benchmark=e.benchmark, score=e.score, date=e.date, notes=e.notes)
             for e in evaluations]
        )
        if obj.import_pending:
            _enqueue_import(obj.pk)
    return obj


def update_version(version: ModelVersion, changes: dict[str, Any], *, evaluations=None) -> ModelVersion:
    """Apply editable fields (quantization, parent, notes...) and, when given, replace the evaluations.

    The memory estimate is recomputed when what it depends on changed.
    """
    with transaction.atomic():
        for key, value in changes.items():
            setattr(version, key, value)
        if changes:
            version.save(update_fields=[*changes, "updated_at"])
        if {"quantization", "parameters", "architecture"} & set(changes):
            weights = version.memory_estimate.get("weights_bytes") if version.inspected_at else None
            fields = _memory_fields(version, weights_bytes=weights)
            ModelVersion.objects.filter(pk=version.pk).update(**fields)
            for key, value in fields.items():
                setattr(version, key, value)
        if evaluations is not None:
            set_evaluations(version, evaluations)
    return version


def set_evaluations(version: ModelVersion, evaluations: Iterable[EvaluationInput]) -> list[Evaluation]:
    """Replace the version's evaluations with ``evaluations`` (what a PATCH of the list means)."""
    with transaction.atomic():
        version.evaluations.all().delete()
        rows = Evaluation.objects.bulk_create(
            [Evaluation(version=version, benchmark=e.benchmark, score=e.score, date=e.date, notes=e.notes)
             for e in evaluations]
        )
    if hasattr(version, "_prefetched_objects_cache"):
        version._prefetched_objects_cache.pop("evaluations", None)
    return rows


def check_parent(version: ModelVersion | None, parent: ModelVersion | None) -> None:
    """InvalidInput when ``parent`` would make the lineage a loop (itself, or one of its descendants)."""
    if parent is None or version is None or version.pk is None:
        return
    seen = set()
    current: ModelVersion | None = parent
    while current is not None and current.pk not in seen:
        if current.pk == version.pk:
            raise InvalidInput({"parent": [_("A version cannot descend from itself.")]})
        seen.add(current.pk)
        current = current.parent


# --- aliases, deprecation, deletion -------------------------------------------------------------


def promote(version: ModelVersion, alias: str, *, request=None) -> Alias:
    """Point the model's alias ``alias`` at ``version`` (created, or moved from another version).

    Atomic: the alias row is locked and moved in one transaction, so it always names exactly one
    version. InvalidInput for a bad name; Conflict for a failed or deprecated version.
    """
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise InvalidInput({"alias": [_("An alias is a lower-case word of at most 32 letters, digits, '-' or '_', "
                                        "starting with a letter (e.g. production, canary).")]})
    if version.status in UNDEPLOYABLE:
        raise Conflict(_("%(version)s is %(status)s: it cannot be promoted")
                       % {"version": version, "status": version.get_status_display()})
    for attempt in range(2):
        try:
            with transaction.atomic():
                current = Alias.objects.select_for_update().filter(model_id=version.model_id, name=alias).first()
                previous = current.version_id if current else None
                if current is None:
                    current = Alias.objects.create(model_id=version.model_id, name=alias, version=version)
                elif current.version_id != version.pk:
                    current.version = version
                    current.save(update_fields=["version", "updated_at"])
                audit.record("promote", version, request=request,
                             detail={"alias": alias, "from_version": previous, "to_version": version.pk})
            return current
        except IntegrityError:
            if attempt:  # someone created the same alias between our read and our insert: read it again
                raise
    raise AssertionError("unreachable")


def deprecate(version: ModelVersion, reason: str = "", *, request=None) -> ModelVersion:
    """Mark a version deprecated (kept for history; new jobs refuse it). Its aliases are removed."""
    try:
        with transaction.atomic():
            if not transition_version(version, VersionStatus.DEPRECATED, reason or "deprecated", request=request):
                raise Conflict(_("%(version)s changed meanwhile; try again") % {"version": version})
            removed = list(version.aliases.values_list("name", flat=True))
            version.aliases.all().delete()
            if removed:
                audit.record("unalias", version, request=request, detail={"aliases": removed})
    except TransitionNotAllowed:
        raise Conflict(_("%(version)s is %(status)s: it cannot be deprecated now")
                       % {"version": version, "status": version.get_status_display()}) from None
    return version


def reinstate(version: ModelVersion, *, request=None) -> ModelVersion:
    """Bring a deprecated version back to ``registered`` (verify it again to trust its files)."""
    if version.status != VersionStatus.DEPRECATED:
        raise Conflict(_("%(version)s is not deprecated") % {"version": version})
    with transaction.atomic():
        if not transition_version(version, VersionStatus.REGISTERED, "reinstated", request=request):
            raise Conflict(_("%(version)s changed meanwhile; try again") % {"version": version})
    return version


def refuse_delete_with_versions(model: Model) -> None:
    """Conflict while ``model`` still has versions (delete them first)."""
    count = model.versions.count()
    if count:
        raise Conflict(f"model {model.name} still has {count} version(s): delete them first")


def refuse_delete_in_use(quantization: Quantization) -> None:
    """Conflict while model versions use ``quantization`` (they name it, without a foreign key)."""
    used = ModelVersion.objects.filter(quantization=quantization.name).count()
    if used:
        raise Conflict(f"{used} model version(s) use {quantization.name}")


def delete_version(version: ModelVersion, *, request=None, reason: str = "") -> None:
    """Delete a version; Conflict naming the jobs that use it or the aliases that point at it. ``reason``
    (the page's confirmation) goes into the audit event."""
    jobs = list(version.jobs.order_by("name").values_list("name", flat=True)[:10])
    if jobs:
        raise Conflict(f"model version {version} is used by job(s) {', '.join(jobs)}: delete them or point them "
                       "at another version first")
    aliases = list(version.aliases.values_list("name", flat=True))
    if aliases:
        raise Conflict(f"model version {version} holds alias(es) {', '.join(aliases)}: promote another version "
                       "first")
    pk, text = version.pk, str(version)
    with transaction.atomic():
        version.delete()
        audit.record("delete", None, request=request, object_type="modelversion", object_id=pk,
                     detail=with_reason({"name": text}, reason))


# --- evaluations and lineage --------------------------------------------------------------------


def latest_scores(evaluations: Iterable[Evaluation]) -> dict[str, float]:
    """Benchmark -> the most recent score (by date, undated counting as oldest; then by id)."""
    best: dict[str, tuple[Any, int, float]] = {}
    for e in evaluations:
        key = (e.date.toordinal() if e.date else 0, e.pk or 0)
        if e.benchmark not in best or key > best[e.benchmark][:2]:
            best[e.benchmark] = (*key, e.score)
    return {name: value[2] for name, value in best.items()}


def lineage(version: ModelVersion, max_depth: int = 32) -> dict[str, list[ModelVersion]]:
    """``ancestors`` (nearest first) and ``children`` of a version."""
    ancestors: list[ModelVersion] = []
    seen = {version.pk}
    current = version.parent
    while current is not None and current.pk not in seen and len(ancestors) < max_depth:
        ancestors.append(current)
        seen.add(current.pk)
        current = ModelVersion.objects.select_related("model", "parent").filter(pk=current.parent_id).first() \
            if current.parent_id else None
    children = list(version.children.select_related("model").order_by("model__name", "version"))
    return {"ancestors": ancestors, "children": children}
