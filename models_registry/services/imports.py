"""Importing a version: inspecting its directory on a node and recording its files and facts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.core import audit
from models_registry.choices import VersionStatus, WeightFormat
from models_registry.inspection import InspectionError
from models_registry.inspection.directory import DirectoryInspection, parse_inspect_output
from models_registry.inspection.remote import inspect_command
from models_registry.models import Model, ModelFile, ModelVersion
from models_registry.quantization import is_known, normalize
from models_registry.services.common import (
    Conflict,
    InvalidInput,
    NodeUnavailable,
    _clip,
    _enqueue_import,
    directory_of,
    extra_quantizations,
    memory_estimate,
    parse_source,
    sync_origin,
    tell_version_page,
    transition_version,
)
from nodes.transports import NodeCommandError, transport_for

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
        for key, value in values.items():
            setattr(version, key, value)
        sync_origin(version, "imported")
        audit.record("imported", version, detail={
            "files": len(inspection.files), "size_bytes": inspection.size_bytes, "format": detected_format,
            "parameters": parameters, "quantization": quantization})
        tell_version_page(version.pk)
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
