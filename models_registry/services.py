"""Model registry workflows: register a version, import (inspect) its directory on a node, verify its
checksums, move aliases, write evaluations, deprecate, delete.

These functions are the only code that changes a version's status (through ``transition_version``),
its manifest (``ModelFile`` rows) or its aliases. Views and tasks call them; they open their own
transactions and never run on a node while a transaction is open.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.core import audit
from models_registry.choices import VERSION_TRANSITIONS, VersionStatus, WeightFormat
from models_registry.inspection import InspectionError
from models_registry.inspection.config import ModelArchitecture
from models_registry.inspection.directory import DirectoryInspection, parse_inspect_output
from models_registry.inspection.hashing import HashTracker
from models_registry.inspection.memory import estimate_memory
from models_registry.inspection.remote import hash_command, inspect_command
from models_registry.models import Alias, Evaluation, Model, ModelFile, ModelVersion, Quantization
from models_registry.quantization import UnknownQuantization, is_known, lookup, normalize
from models_registry.uris import InvalidSourceURI, SourceURI, parse_source_uri
from nodes.transports import NodeCommandError, transport_for

log = logging.getLogger(__name__)

#: Alias names: a lower-case word such as ``production``, ``canary`` or ``eval-2025q3``.
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: Seconds between two progress writes while a verification runs (the API and page poll every second).
PROGRESS_INTERVAL_S = 0.5
#: Longest ``status_detail`` we write (a verification of 10 000 broken files must not write megabytes).
DETAIL_MAX = 4000
#: Statuses a new job may not use and that cannot be promoted (jobs/api/serializers.py agrees).
UNDEPLOYABLE = {VersionStatus.FAILED, VersionStatus.DEPRECATED}

# Inspection formats (models_registry.inspection.directory.WEIGHT_SUFFIXES) -> WeightFormat values.
_FORMATS = {
    "safetensors": WeightFormat.SAFETENSORS,
    "gguf": WeightFormat.GGUF,
    "pytorch": WeightFormat.PYTORCH,
    "onnx": WeightFormat.ONNX,
    "om": WeightFormat.MINDIE,
    "mindir": WeightFormat.MINDIE,
    "mindspore": WeightFormat.OTHER,
}


class RegistryError(Exception):
    """Base class of the errors the registry's workflows raise on purpose."""


class TransitionNotAllowed(RegistryError):
    """The version status table forbids this change."""


class Conflict(RegistryError):
    """The request is valid but conflicts with the version's current state (HTTP 409)."""


class InvalidInput(RegistryError):
    """Bad input, with field messages (HTTP 400): ``errors = {field: [message, ...]}``."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class NodeUnavailable(RegistryError):
    """The node could not be reached; the caller may retry later."""


def _actor(request) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else audit.SYSTEM


def _clip(text: str, limit: int = DETAIL_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- quantizations and URIs -------------------------------------------------------------------


def extra_quantizations() -> dict[str, float]:
    """Administrator-added quantizations (name -> bits per parameter), for the pure helpers."""
    return dict(Quantization.objects.values_list("name", "bits_per_param"))


def check_quantization(name: str, extra: dict[str, float] | None = None) -> str:
    """The canonical name of a known quantization; InvalidInput naming the known ones otherwise."""
    extra = extra_quantizations() if extra is None else extra
    try:
        return lookup(name, extra).name
    except UnknownQuantization as exc:
        raise InvalidInput({"quantization": [str(exc)]}) from None


def parse_source(value: str) -> SourceURI:
    """``parse_source_uri`` with the error as field messages."""
    try:
        return parse_source_uri(value)
    except InvalidSourceURI as exc:
        raise InvalidInput({"source_uri": [str(exc)]}) from None


def directory_of(version: ModelVersion) -> str | None:
    """The directory of a version whose files lie on a node, else None (hub and object-store sources)."""
    try:
        return parse_source_uri(version.source_uri).path
    except InvalidSourceURI:
        return None


# --- state machine ----------------------------------------------------------------------------


def transition_version(version: ModelVersion, to_status: str, reason: str = "", *, actor: str = audit.SYSTEM,
                       request=None, **fields) -> bool:
    """Move ``version`` to ``to_status`` if it is still in the status we read.

    A conditional write: returns False when someone else changed the status first. Equal statuses
    only update ``status_detail`` and the extra ``fields``. Every real change appends a
    ``VersionStatusChange`` row and an audit event, in the same transaction as the change.
    """
    from_status = version.status
    updates = dict(fields, status_detail=_clip(reason), updated_at=timezone.now())
    if from_status == to_status:
        changed = ModelVersion.objects.filter(pk=version.pk, status=from_status).update(**updates)
        if changed:
            for key, value in updates.items():
                setattr(version, key, value)
        return bool(changed)
    if to_status not in VERSION_TRANSITIONS[from_status]:
        raise TransitionNotAllowed(f"a version cannot go from {from_status} to {to_status}")
    if request is not None:
        actor = _actor(request)
    with transaction.atomic():
        changed = ModelVersion.objects.filter(pk=version.pk, status=from_status).update(status=to_status, **updates)
        if not changed:
            return False
        version.status_history.create(from_status=from_status, to_status=to_status, reason=_clip(reason, 2000),
                                      actor=actor)
        audit.record("status", version, actor=actor, request=request,
                     detail={"from": from_status, "to": to_status, "reason": reason[:500]})
    version.status = to_status
    for key, value in updates.items():
        setattr(version, key, value)
    return True


# --- memory estimate --------------------------------------------------------------------------

_ARCH_FIELDS = {f.name for f in dataclasses.fields(ModelArchitecture)}


def architecture_of(data: dict[str, Any] | None) -> ModelArchitecture | None:
    """The ModelArchitecture stored in a version's ``architecture`` JSON (None when empty)."""
    if not data:
        return None
    return ModelArchitecture(**{k: v for k, v in data.items() if k in _ARCH_FIELDS})


def memory_estimate(*, parameters: int | None, quantization: str, architecture: dict[str, Any] | None,
                    weights_bytes: int | None = None, extra: dict[str, float] | None = None) -> dict[str, Any]:
    """The memory estimate of a version as stored in ``memory_estimate`` ({} when it cannot be made).

    Uses the measured size of the weight files when known (exact, whatever the quantization), else
    parameters x bytes per parameter of the quantization; plus the KV cache of
    ``CONSOLE_MEMORY_ESTIMATE_CONTEXT`` tokens x ``CONSOLE_MEMORY_ESTIMATE_CONCURRENCY`` sequences
    (docs/memory-estimate.md).
    """
    extra = extra_quantizations() if extra is None else extra
    context = int(settings.CONSOLE_MEMORY_ESTIMATE_CONTEXT)
    concurrency = int(settings.CONSOLE_MEMORY_ESTIMATE_CONCURRENCY)
    if weights_bytes is None and (not parameters or not is_known(quantization or "", extra)):
        return {}
    # With measured weights the quantization only names the scheme: an unknown one must not stop the
    # estimate, so fall back to bf16 (its bytes per parameter are not used).
    scheme = quantization if quantization and is_known(quantization, extra) else "bf16"
    try:
        estimate = estimate_memory(int(parameters or 0), scheme, architecture_of(architecture), context, concurrency,
                                   weights_bytes=weights_bytes, extra=extra)
    except (ValueError, TypeError) as exc:
        log.warning("memory estimate failed: %s", exc)
        return {}
    return dict(estimate.to_dict(), context_length=context, concurrency=concurrency, kv_dtype_bytes=2,
                overhead_fraction=0.1)


def _memory_fields(version: ModelVersion, weights_bytes: int | None = None) -> dict[str, Any]:
    parameters = version.parameters or version.model.parameters
    estimate = memory_estimate(parameters=parameters, quantization=version.quantization,
                               architecture=version.architecture, weights_bytes=weights_bytes)
    return {"memory_estimate": estimate, "memory_required_bytes": estimate.get("total_bytes")}


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


# --- import -----------------------------------------------------------------------------------


def _enqueue_import(version_id: int) -> None:
    from models_registry import tasks

    transaction.on_commit(lambda: tasks.import_version.delay(version_id))


def _enqueue_verify(version_id: int) -> None:
    from models_registry import tasks

    transaction.on_commit(lambda: tasks.verify_version.delay(version_id))


def request_import(version: ModelVersion, *, source_uri: str, node, request=None) -> ModelVersion:
    """Point ``version`` at a directory on ``node`` and queue its inspection (a catalog entry getting
    local files, or a failed import tried again).

    Conflict when the version was ever verified (its manifest is immutable: register a new version
    for other files), is being verified, or is deprecated.
    """
    source = parse_source(source_uri)
    if not source.on_node:
        raise InvalidInput({"source_uri": [_("Import reads a directory on a node: give an absolute path or file://.")]})
    if node is None:
        raise InvalidInput({"node": [_("Say on which node the directory lies.")]})
    if version.status == VersionStatus.VERIFIED or version.sha256:
        # Also after an integrity failure: re-importing would quietly accept the changed files.
        raise Conflict(_("%(version)s was verified: its manifest is immutable; register a new version for other files")
                       % {"version": version})
    if version.status in (VersionStatus.VERIFYING, VersionStatus.DEPRECATED):
        raise Conflict(_("%(version)s is %(status)s; it cannot be imported again now")
                       % {"version": version, "status": version.get_status_display()})
    reason = f"waiting for the inspection of {source.path} on node {node.name}"
    fields = {"source_uri": source.uri, "node": node, "import_pending": True, "progress": None, "sha256": ""}
    with transaction.atomic():
        if version.status == VersionStatus.FAILED:
            if not transition_version(version, VersionStatus.REGISTERED, reason, request=request, **fields):
                raise Conflict(_("%(version)s changed meanwhile; try again") % {"version": version})
        elif not transition_version(version, version.status, reason, **fields):
            raise Conflict(_("%(version)s changed meanwhile; try again") % {"version": version})
        ModelFile.objects.filter(version=version).delete()
        audit.record("import", version, request=request, detail={"source_uri": source.uri, "node": node.name})
        _enqueue_import(version.pk)
    return version


def _fail_import(version: ModelVersion, reason: str) -> None:
    if version.status != VersionStatus.REGISTERED:
        return
    transition_version(version, VersionStatus.FAILED, f"import failed: {reason}", import_pending=False)


def import_version(version_id: int, *, final_attempt: bool = True) -> ModelVersion | None:
    """Inspect the version's directory on its node and record files, parameters, architecture,
    format, dtype, size and memory estimate -- all in one transaction, or nothing.

    Idempotent: does nothing unless an import is pending. A directory without weights, a truncated or
    lying weights header, an unreadable file: the version ends ``failed`` with the reason and without
    files. An unreachable node raises NodeUnavailable unless ``final_attempt`` (then it fails too).
    """
    version = ModelVersion.objects.select_related("model", "node").filter(pk=version_id).first()
    if version is None or not version.import_pending or version.status != VersionStatus.REGISTERED:
        return None
    directory = directory_of(version)
    if directory is None or version.node is None:
        _fail_import(version, "the version has no directory on a node to inspect")
        return version
    try:
        result = transport_for(version.node).run(inspect_command(directory),
                                                 timeout=float(settings.CONSOLE_INSPECT_TIMEOUT_S))
    except NodeCommandError as exc:
        if not final_attempt:
            raise NodeUnavailable(str(exc)) from None
        _fail_import(version, f"node {version.node.name}: {exc}")
        return version
    try:
        inspection = parse_inspect_output(result.stdout)
        inspection.raise_for_errors()
    except InspectionError as exc:
        _fail_import(version, str(exc))
        return version
    _store_inspection(version, inspection)
    return version


def _store_inspection(version: ModelVersion, inspection: DirectoryInspection) -> bool:
    notes = []
    detected_format = _FORMATS.get(inspection.format, WeightFormat.OTHER)
    if version.format and version.format != detected_format and not version.catalog:
        notes.append(f"format given as {version.format}; the files are {detected_format}")
    quantization = version.quantization
    extra = extra_quantizations()
    if not quantization and inspection.quantization and is_known(inspection.quantization, extra):
        quantization = normalize(inspection.quantization)
    elif quantization and inspection.quantization and normalize(inspection.quantization) != quantization:
        notes.append(f"quantization given as {quantization}; the files look like {inspection.quantization}")
    config = inspection.config.to_dict() if inspection.config else {}
    parameters = inspection.parameters or None
    estimate = memory_estimate(parameters=parameters or version.model.parameters, quantization=quantization,
                               architecture=config, weights_bytes=inspection.weight_bytes or None, extra=extra)
    now = timezone.now()
    values = {
        "format": detected_format, "quantization": quantization, "dtype": (inspection.dtype or "")[:16],
        "parameters": parameters, "architecture": config, "size_bytes": inspection.size_bytes,
        "memory_estimate": estimate, "memory_required_bytes": estimate.get("total_bytes"),
        "import_pending": False, "inspected_at": now, "catalog": False, "status_detail": _clip("; ".join(notes)),
        "updated_at": now,
    }
    with transaction.atomic():
        # Conditional: a second run of the task, or a status change meanwhile, writes nothing.
        if not ModelVersion.objects.filter(pk=version.pk, import_pending=True,
                                           status=VersionStatus.REGISTERED).update(**values):
            return False
        ModelFile.objects.filter(version=version).delete()
        ModelFile.objects.bulk_create(
            [ModelFile(version=version, path=f["path"], size_bytes=f["size"], mtime=f["mtime"])
             for f in inspection.files],
            batch_size=1000,
        )
        _fill_model_facts(version.model, parameters, config)
        audit.record("imported", version, detail={
            "files": len(inspection.files), "size_bytes": inspection.size_bytes, "format": detected_format,
            "parameters": parameters, "quantization": quantization})
    for key, value in values.items():
        setattr(version, key, value)
    return True


def _fill_model_facts(model: Model, parameters: int | None, config: dict[str, Any]) -> None:
    """The first import tells a model without them its parameter count and architecture."""
    updates: dict[str, Any] = {}
    if model.parameters is None and parameters:
        updates["parameters"] = parameters
    if not model.architecture and config.get("architecture"):
        updates["architecture"] = str(config["architecture"])[:128]
    if updates:
        Model.objects.filter(pk=model.pk).update(**updates, updated_at=timezone.now())


# --- verification -----------------------------------------------------------------------------


def manifest_digest(digests: dict[str, str]) -> str:
    """The version's ``sha256``: sha256 of ``"<path> <sha256>\\n"`` lines sorted by path (UTF-8)."""
    text = "".join(f"{path} {digests[path]}\n" for path in sorted(digests))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_verify(version: ModelVersion, *, request=None) -> ModelVersion:
    """Move the version to ``verifying`` and queue the checksum run on its node.

    Conflict when there is nothing to verify (no directory, or no files recorded yet), when the
    version is deprecated, or when a verification is already running. A verification that stopped
    reporting for ``CONSOLE_VERIFY_STALE_S`` (its worker died) may be started again.
    """
    if directory_of(version) is None or version.node_id is None:
        raise Conflict(_("%(version)s has no directory on a node: import it first") % {"version": version})
    if version.import_pending:
        raise Conflict(_("%(version)s is still being imported; verify it once its files are listed")
                       % {"version": version})
    if not version.files.exists():
        raise Conflict(_("%(version)s has no files recorded: import it first") % {"version": version})
    if version.status == VersionStatus.VERIFYING:
        stale = timezone.now() - timedelta(seconds=settings.CONSOLE_VERIFY_STALE_S)
        if version.updated_at and version.updated_at > stale:
            if version.progress is not None:
                raise Conflict(_("%(version)s is already being verified (%(percent)s done)")
                               % {"version": version, "percent": f"{version.progress:.0%}"})
            raise Conflict(_("%(version)s is already being verified") % {"version": version})
        with transaction.atomic():
            transition_version(version, VersionStatus.VERIFYING,
                               "restarted: the previous verification stopped reporting progress", progress=0.0)
            _enqueue_verify(version.pk)
        return version
    try:
        with transaction.atomic():
            if not transition_version(version, VersionStatus.VERIFYING, "computing sha256 on the node", request=request,
                                      progress=0.0):
                raise Conflict(_("%(version)s changed meanwhile; try again") % {"version": version})
            _enqueue_verify(version.pk)
    except TransitionNotAllowed:
        raise Conflict(_("%(version)s is %(status)s: it cannot be verified")
                       % {"version": version, "status": version.get_status_display()}) from None
    return version


class _Abandoned(Exception):
    """The version left ``verifying`` while we hashed (another worker finished it)."""


def verify_version(version_id: int, *, on_event: Callable[[str], None] | None = None) -> ModelVersion | None:
    """Hash every manifest file on the node, streaming progress into ``progress``, and end the
    version ``verified`` or ``failed`` with the files named.

    Idempotent: does nothing unless the version is ``verifying``. A verified manifest is immutable:
    a digest that differs from the one recorded before fails the version and records an
    ``integrity`` event. ``on_event`` sees every output line (tests use it to change files mid-run).
    """
    version = ModelVersion.objects.select_related("model", "node").filter(pk=version_id).first()
    if version is None or version.status != VersionStatus.VERIFYING:
        return None
    files = {f.path: f for f in version.files.all()}
    directory = directory_of(version)
    if not files or directory is None or version.node is None:
        transition_version(version, VersionStatus.FAILED, "verification failed: no files on a node to verify")
        return version
    tracker = HashTracker(sorted(files))
    sizes: dict[str, int] = {}
    last_write = [time.monotonic()]

    def on_line(line: str) -> None:
        # Hot path: called for every output line (every 0.5 s per file at most); keep it cheap and
        # write to the database at most every PROGRESS_INTERVAL_S.
        if on_event is not None:
            on_event(line)
        event = tracker.feed(line)
        if event is not None and event.kind == "progress" and event.path is not None:
            sizes[event.path] = event.total or 0
        now = time.monotonic()
        if now - last_write[0] >= PROGRESS_INTERVAL_S:
            last_write[0] = now
            if not ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.VERIFYING).update(
                    progress=round(tracker.progress, 4), updated_at=timezone.now()):
                raise _Abandoned

    try:
        argv = hash_command(directory, sorted(files), settings.CONSOLE_VERIFY_HASH_METHOD)
        transport_for(version.node).stream(argv, on_line, timeout=float(settings.CONSOLE_VERIFY_TIMEOUT_S))
    except _Abandoned:
        return None
    except NodeCommandError as exc:
        transition_version(version, VersionStatus.FAILED, f"verification failed: node {version.node.name}: {exc}",
                           progress=round(tracker.progress, 4))
        return version
    return _finish_verification(version, files, tracker, sizes)


def _finish_verification(version: ModelVersion, files: dict[str, ModelFile], tracker: HashTracker,
                         sizes: dict[str, int]) -> ModelVersion:
    failures = tracker.failures()
    previously_verified = any(f.sha256 for f in files.values())
    for path, digest in tracker.sha256.items():
        recorded = files.get(path)
        if recorded is None:
            continue
        if recorded.sha256 and recorded.sha256 != digest:
            failures[path] = (f"sha256 differs from the verified manifest ({recorded.sha256[:12]}… recorded, "
                              f"{digest[:12]}… now)")
        elif not recorded.sha256 and path in sizes and sizes[path] != recorded.size_bytes:
            failures[path] = (f"changed since the import: {recorded.size_bytes} bytes then, {sizes[path]} now; "
                              "import it again")
    if failures:
        ordered = sorted(failures.items())
        listing = "; ".join(f"{path}: {why}" for path, why in ordered)
        reason = (f"verification failed: {tracker.fatal}" if tracker.fatal else
                  f"verification failed for {len(failures)} of {len(files)} files: {listing}")
        with transaction.atomic():
            if transition_version(version, VersionStatus.FAILED, reason, progress=round(tracker.progress, 4)) \
                    and previously_verified:
                audit.record("integrity", version, detail={
                    "summary": "files differ from the verified manifest",
                    "files": dict(ordered[:50]), "manifest_sha256": version.sha256})
        return version

    digest = manifest_digest(tracker.sha256)
    if version.sha256 and version.sha256 != digest:  # per-file checks above make this a safety net
        with transaction.atomic():
            if transition_version(version, VersionStatus.FAILED,
                                  "verification failed: the manifest differs from the verified one", progress=1.0):
                audit.record("integrity", version, detail={"summary": "manifest changed", "was": version.sha256,
                                                           "now": digest})
        return version
    now = timezone.now()
    with transaction.atomic():
        if not transition_version(version, VersionStatus.VERIFIED,
                                  f"{len(files)} files verified ({tracker.method or 'sha256'})", progress=1.0,
                                  sha256=digest, verified_at=now):
            return version
        changed = []
        for path, row in files.items():
            if not row.sha256:
                row.sha256 = tracker.sha256[path]
                changed.append(row)
        ModelFile.objects.bulk_update(changed, ["sha256"], batch_size=1000)
    return version


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


def delete_version(version: ModelVersion, *, request=None) -> None:
    """Delete a version; Conflict naming the jobs that use it or the aliases that point at it."""
    from jobs.models import Job

    jobs = list(Job.objects.filter(model_version=version).order_by("name").values_list("name", flat=True)[:10])
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
                     detail={"name": text})


# --- evaluations and lineage --------------------------------------------------------------------


def latest_scores(evaluations: Iterable[Evaluation]) -> dict[str, float]:
    """Benchmark -> the most recent score (by date, undated counting as oldest; then by id)."""
    best: dict[str, tuple[Any, int, float]] = {}
    for e in evaluations:
        key = (e.date.toordinal() if e.date else 0, e.pk or 0)
        if e.benchmark not in best or key > best[e.benchmark][:2]:
            best[e.benchmark] = (*key, e.score)
    return {name: value[2] for name, value in best.items()}


def parent_deltas(version: ModelVersion) -> dict[str, dict[str, float | None]]:
    """Per benchmark of the version: its score, the parent's and the difference (None without one)."""
    mine = latest_scores(version.evaluations.all())
    theirs = latest_scores(version.parent.evaluations.all()) if version.parent_id else {}
    return {
        name: {"score": score, "parent_score": theirs.get(name),
               "delta": round(score - theirs[name], 4) if name in theirs else None}
        for name, score in sorted(mine.items())
    }


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
