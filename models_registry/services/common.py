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
from models_registry import enqueue
from models_registry.choices import VERSION_TRANSITIONS, VersionStatus
from models_registry.inspection.config import ModelArchitecture
from models_registry.inspection.memory import estimate_memory
from models_registry.models import ModelVersion, Quantization, VersionStatusChange
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
    return statemachine.transition(version, to_status, reason, table=VERSION_TRANSITIONS, what="a version",
                                   history=VersionStatusChange, actor=actor, request=request,
                                   topics=(version_topic(version.pk),), updated_at=timezone.now(), **fields)


def version_topic(version_id: int) -> str:
    """The live-stream topic of a version's page (console.streams): its status, files and progress."""
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
