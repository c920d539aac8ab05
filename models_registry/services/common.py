"""What the registry's workflows share: errors, limits, quantization and source URI checks, the version
state machine binding (``transition_version``), the memory estimate, and the task queueing."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from django.conf import settings
from django.utils import timezone

from console.core import audit, broadcast, statemachine
from console.core.errors import Conflict as CoreConflict
from console.core.statemachine import TransitionNotAllowed
from models_registry import enqueue
from models_registry.choices import COPY_TRANSITIONS, VERSION_TRANSITIONS, CopyStatus, VersionStatus
from models_registry.inspection.config import ModelArchitecture
from models_registry.inspection.memory import estimate_memory
from models_registry.models import CopyStatusChange, ModelCopy, ModelVersion, Quantization, VersionStatusChange
from models_registry.quantization import UnknownQuantization, is_known, lookup
from models_registry.uris import InvalidSourceURI, SourceURI, parse_source_uri

log = logging.getLogger(__name__)

#: Alias names: a lower-case word such as ``production``, ``canary`` or ``eval-2025q3``.
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: Longest ``status_detail`` we write (a verification of 10 000 broken files must not write megabytes).
DETAIL_MAX = 4000
#: Statuses a new job may not use and that cannot be promoted (jobs/api/serializers.py agrees).
UNDEPLOYABLE = {VersionStatus.FAILED, VersionStatus.DEPRECATED}


class RegistryError(Exception):
    """Base class of the errors the registry's workflows raise on purpose."""


class Conflict(RegistryError, CoreConflict):
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


def _actor(request) -> str:
    return statemachine.actor_of(request)


def _clip(text: str, limit: int = DETAIL_MAX) -> str:
    return statemachine.clip(text, limit)


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


def transition_version(version: ModelVersion, to_status: str, reason: str = "", *, actor: str | None = None,
                       request=None, **fields) -> bool:
    """Move ``version`` to ``to_status`` through console.core.statemachine.transition (table check,
    conditional write, a ``VersionStatusChange`` row and an audit event in one transaction). False when
    someone else changed the status first."""
    changed = statemachine.transition(version, to_status, reason, table=VERSION_TRANSITIONS, what="a version",
                                      history=VersionStatusChange, actor=actor, request=request,
                                      topics=(version_topic(version.pk),), updated_at=timezone.now(), **fields)
    if changed:
        sync_origin(version, reason)
    return changed


def version_topic(version_id: int) -> str:
    """The live-stream topic of a version's page (console.streams): its status, files, progress and copies."""
    return f"modelversion:{version_id}"


def tell_version_page(version_id: int) -> None:
    """Tell the version's page that what it shows changed outside a transition (an import's files)."""
    broadcast.changed("modelversion", version_topic(version_id))


def publish_progress(version_id: int, progress: float) -> None:
    """The verification's progress to the version's page, which moves its bar without a re-read."""
    try:
        broadcast.publish(version_topic(version_id), {"state": {"progress": {"modelversion": progress}}})
    except Exception:  # noqa: BLE001 - the page still shows it at the next transition
        log.warning("could not publish the progress of version %s", version_id, exc_info=True)


# --- copies: the state machine, and the origin copy following the version ---------------------------


def transition_copy(copy: ModelCopy, to_status: str, reason: str = "", *, actor: str | None = None,
                    request=None, guard: dict | None = None, **fields) -> bool:
    """Move ``copy`` to ``to_status`` through console.core.statemachine.transition (table check,
    conditional write, a ``CopyStatusChange`` row and an audit event), then publish it on the target
    node's live stream; the version's page re-reads its copies (kind ``modelcopy``). False when someone
    else changed the status first. ``guard``: more conditions (a worker's ``{"run": copy.run}``)."""
    changed = statemachine.transition(copy, to_status, reason, table=COPY_TRANSITIONS, what="a model copy",
                                      history=CopyStatusChange, actor=actor, request=request, guard=guard,
                                      topics=(version_topic(copy.version_id),), updated_at=timezone.now(), **fields)
    if changed:
        publish(copy)
    return changed


def publish(copy: ModelCopy) -> None:
    """The copy's status and progress on the live stream of its node (``node:<id>``, key ``copies``) and of
    its version's page (``modelversion:<id>``), whose progress bars move on it."""
    state = {"state": {"copies": {str(copy.pk): snapshot(copy)}}}
    broadcast.publish_many([(f"node:{copy.node_id}", state), (version_topic(copy.version_id), state)])


def snapshot(copy: ModelCopy) -> dict:
    return {"version": copy.version_id, "status": copy.status, "progress": copy.progress,
            "bytes_done": copy.bytes_done, "size_bytes": copy.size_bytes, "detail": copy.status_detail[:500]}



_ORIGIN_STATUS = {VersionStatus.REGISTERED: CopyStatus.PENDING, VersionStatus.VERIFYING: CopyStatus.VERIFYING,
                  VersionStatus.VERIFIED: CopyStatus.READY, VersionStatus.FAILED: CopyStatus.FAILED}


def sync_origin(version: ModelVersion, reason: str = "") -> ModelCopy | None:
    """Keep the origin copy (the directory the version was imported from) in step with the version:
    created once the version has a directory on a node, moved when it is imported elsewhere, and its
    status following the version's (verified -> ready, failed -> failed, ...)."""
    directory = directory_of(version)
    origin = version.copies.filter(origin=True).first()
    if version.node_id is None or directory is None or version.catalog and not version.files.exists():
        return origin
    if origin is not None and (origin.node_id != version.node_id or origin.path != directory):
        origin.delete()
        origin = None
    wanted = _ORIGIN_STATUS.get(version.status)
    if origin is None:
        version.copies.filter(node_id=version.node_id).delete()  # a copy where the version now lies is its origin
        origin = ModelCopy.objects.create(
            version=version, node_id=version.node_id, path=directory, origin=True,
            status=wanted or CopyStatus.PENDING, status_detail=reason[:4000], size_bytes=version.size_bytes,
            verified_at=version.verified_at if wanted == CopyStatus.READY else None,
            progress=1.0 if wanted == CopyStatus.READY else None,
            bytes_done=version.size_bytes or 0 if wanted == CopyStatus.READY else 0)
        CopyStatusChange.objects.create(copy=origin, from_status="", to_status=origin.status,
                                        reason=f"the version's directory: {reason}"[:2000])
        return origin
    if wanted is None or wanted == origin.status:
        return origin
    extra = {"size_bytes": version.size_bytes}
    if wanted == CopyStatus.READY:
        extra.update(verified_at=version.verified_at, progress=1.0, bytes_done=version.size_bytes or 0)
    try:
        transition_copy(origin, wanted, f"the version is {version.status}: {reason}", **extra)
    except TransitionNotAllowed:
        pass
    return origin


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


# --- queueing -----------------------------------------------------------------------------------


def _enqueue_import(version_id: int) -> None:
    enqueue.import_version(version_id)


def _enqueue_verify(version_id: int) -> None:
    enqueue.verify_version(version_id)
