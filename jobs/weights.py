"""Weights follow the job: which nodes hold a ready copy of a job's model version, whether a replica
placed on a node must wait for a copy (``preparing``), and the path the engine loads there.

``options.copy_weights`` (default: on when the version's files lie in a directory on a node, and the
engine loads weights) lets the reconciler ask for a copy (models_registry.services.copies.request_copy)
when a replica is placed on a node without one. The instance is ``preparing`` until the copy is
``ready``, then starts with that node's path. A copy that fails leaves the instance ``failed`` with the
copy's reason; placement then avoids that node for the job (no retry loop): the operator removes or
asks for the copy again.
"""

from __future__ import annotations

from jobs.engines.registry import ENGINES
from models_registry import services as registry
from models_registry.choices import CopyStatus
from models_registry.models import ModelCopy


def copies_weights(job) -> bool:
    """True when replicas of ``job`` need the version's files on their node, copied there if missing."""
    return copies_weights_for(job.model_version, job.engine, job.options)


def copies_weights_for(version, engine_name: str | None, options: dict | None = None) -> bool:
    """``copies_weights`` for a version and an engine before a job exists (the deploy recommendation)."""
    engine = ENGINES.get(engine_name or "")
    if engine is not None and not engine.loads_weights:
        return False
    if registry.directory_of(version) is None or version.node_id is None:
        return False  # a hub or object-store source: the engine fetches it itself
    return bool((options or {}).get("copy_weights", True))


def ready_nodes(job) -> set[int]:
    """Ids of the nodes holding a ready copy of the job's version."""
    return set(ModelCopy.objects.filter(version_id=job.model_version_id, status=CopyStatus.READY)
               .values_list("node_id", flat=True))


def failed_nodes(job) -> dict[int, str]:
    """Nodes whose copy of the job's version failed, with the reason (placement avoids them)."""
    return dict(ModelCopy.objects.filter(version_id=job.model_version_id, status=CopyStatus.FAILED, origin=False)
                .values_list("node_id", "status_detail"))


def copy_on(job, node) -> ModelCopy | None:
    return ModelCopy.objects.filter(version_id=job.model_version_id, node=node).first()


def path_on(version, node) -> str | None:
    """The directory of a ready copy of ``version`` on ``node``, if there is one."""
    if node is None:
        return None
    return (ModelCopy.objects.filter(version=version, node=node, status=CopyStatus.READY)
            .values_list("path", flat=True).first())


class Prepare:
    """What a placed instance must do about its weights: ``ready`` (start), ``wait`` (``preparing``:
    the copy runs) or ``failed`` (with ``reason``)."""

    def __init__(self, outcome: str, reason: str = "", copy: ModelCopy | None = None):
        self.outcome, self.reason, self.copy = outcome, reason, copy


def prepare(job, node) -> Prepare:
    """Make sure ``node`` has, or gets, a ready copy of the job's version (asks for one when missing)."""
    if not copies_weights(job):
        return Prepare("ready")
    copy = copy_on(job, node)
    if copy is not None and (copy.status == CopyStatus.READY or copy.origin and copy.status != CopyStatus.REMOVING):
        # The origin holds the files whatever its verdict (the jobs API warns about unverified versions).
        return Prepare("ready", copy=copy)
    if copy is not None and copy.status == CopyStatus.FAILED:
        return Prepare("failed", f"the copy of the model to node {node.name} failed: {copy.status_detail}", copy)
    if copy is not None and copy.status == CopyStatus.REMOVING:
        return Prepare("failed", f"the copy of the model on node {node.name} is being removed", copy)
    if copy is not None and not registry.copies.is_stale(copy):
        return Prepare("wait", _progress(node, copy), copy)
    try:
        copy = registry.copies.request_copy(job.model_version, node, actor="reconciler")
    except registry.Conflict as exc:
        reason = f"the model cannot be copied to node {node.name}: {exc}"
        # Kept as a failed copy: placement leaves the node out, so the refusal is not asked again every pass.
        registry.copies.record_refusal(job.model_version, node, reason)
        return Prepare("failed", reason)
    return Prepare("wait", _progress(node, copy), copy)


def _progress(node, copy: ModelCopy) -> str:
    percent = f" ({copy.progress:.0%})" if copy.progress else ""
    return f"copying the model's files to node {node.name}: {copy.status}{percent}"
