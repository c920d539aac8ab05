"""Copies of a version's files on nodes: asking for one, removing one, verifying one, and the state
machine binding (``transition_copy``). The transfer itself is in :mod:`.transfer`.

A copy is made from a node that holds a *ready* copy (every file with the version's verified digest)
to the target node, through the console: nothing is written on the console's disk and the nodes never
need a key for each other. The version must be verified first: its manifest (``ModelFile`` rows with
their sha256) is what the target is checked against before the copy becomes ``ready``.
"""

from __future__ import annotations

import posixpath
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.core import audit, broadcast, statemachine
from console.core.statemachine import TransitionNotAllowed
from models_registry import enqueue
from models_registry.choices import COPY_BUSY, CopyStatus, VersionStatus
from models_registry.inspection.remote import copy_files_command, manifest_text
from models_registry.models import CopyStatusChange, ModelCopy, ModelVersion
from models_registry.services.common import (
    Conflict,
    InvalidInput,
    publish,
    snapshot,  # noqa: F401 - part of this module's interface
    sync_origin,  # noqa: F401 - part of this module's interface
    transition_copy,
    version_topic,
)
from nodes.transports import NodeCommandError, transport_for

#: Instance states that hold a copy (an instance in any other state does not read its files).
USING_STATES = ("scheduled", "preparing", "starting", "running", "unhealthy", "restarting")
_COMPONENT = re.compile(r"[^A-Za-z0-9._-]+")


# --- where a copy goes --------------------------------------------------------------------------------


def _component(text: str) -> str:
    return _COMPONENT.sub("_", text).strip("._") or "model"


def default_path(version: ModelVersion) -> str:
    """``<CONSOLE_MODEL_ROOT>/<model>/<version>``, each name reduced to letters, digits, ``.``, ``_``, ``-``."""
    root = settings.CONSOLE_MODEL_ROOT.rstrip("/") or "/"
    return f"{root}/{_component(version.model.name)}/{_component(version.version)}"


def check_path(path: str) -> str:
    """A copy's directory: absolute or under the login's home (``~/``), normalised, not ``/`` itself and
    without ``..``; InvalidInput otherwise. It reaches the node as one argv element, never shell text."""
    if not isinstance(path, str) or not path or "\0" in path or len(path) > 1024 or any(
            ord(c) < 32 for c in path):
        raise InvalidInput({"path": [_("A directory path without control characters, at most 1024 long.")]})
    if not (path.startswith("/") or path.startswith("~/")):
        raise InvalidInput({"path": [_("An absolute path, or one under the login's home (~/...).")]})
    if ".." in path.split("/"):
        raise InvalidInput({"path": [_("The path may not contain '..'.")]})
    head, rest = ("~", path[1:]) if path.startswith("~") else ("", path)
    normal = head + posixpath.normpath(rest)
    if normal in ("/", "~", "~/"):
        raise InvalidInput({"path": [_("Name a directory below the root, not the root itself.")]})
    return normal


def manifest_of(version: ModelVersion) -> list[tuple[str, int, str]]:
    """``(path, size, sha256)`` of every manifest file, by path."""
    return list(version.files.order_by("path").values_list("path", "size_bytes", "sha256"))


def origin_of(version: ModelVersion) -> ModelCopy | None:
    return version.copies.filter(origin=True).first()


def in_use(copy: ModelCopy) -> list[str]:
    """Names of the jobs with an instance on the copy's node that uses its version (not stopped)."""
    return sorted(set(copy.node.instances.filter(job__model_version_id=copy.version_id, state__in=USING_STATES)
                      .values_list("job__name", flat=True)))


def source_for(version: ModelVersion, target_node_id: int) -> ModelCopy | None:
    """A ready copy on another node to read from: the origin first, then the most recently verified."""
    return (version.copies.select_related("node").filter(status=CopyStatus.READY).exclude(node_id=target_node_id)
            .order_by("-origin", "-verified_at").first())


def is_stale(copy: ModelCopy) -> bool:
    """A busy (or pending) copy whose worker has not written progress for CONSOLE_COPY_STALE_S: it died,
    or its task was lost before a worker took it."""
    return (copy.status in COPY_BUSY or copy.status == CopyStatus.PENDING) and copy.updated_at is not None and \
        copy.updated_at < timezone.now() - timedelta(seconds=settings.CONSOLE_COPY_STALE_S)


# --- the plan on the target -----------------------------------------------------------------------------


class TargetPlan:
    """What ``copy_files.py plan`` said about the target: free bytes, writable, the files there now."""

    def __init__(self, free: int, writable: bool, ancestor: str, have: dict[str, int]):
        self.free, self.writable, self.ancestor, self.have = free, writable, ancestor, have

    def needed(self, manifest: list[tuple[str, int, str]]) -> int:
        """Bytes still to write: the files not there with their manifest size."""
        return sum(size for path, size, _digest in manifest if self.have.get(path) != size)


def plan_target(node, path: str, manifest: list[tuple[str, int, str]], *, timeout: float = 60.0) -> TargetPlan:
    """Ask the target node about ``path`` (NodeCommandError when it cannot be asked)."""
    from models_registry.inspection.hashing import _unescape

    result = transport_for(node).run(copy_files_command("plan", path),
                                     stdin=manifest_text([(p, s) for p, s, _d in manifest]), timeout=timeout)
    free, writable, ancestor, have = None, False, "", {}
    for line in result.stdout.splitlines():
        if line.startswith("@@free "):
            parts = line.split(" ", 3)
            free, writable, ancestor = int(parts[1]), parts[2] == "1", _unescape(parts[3]) if len(parts) > 3 else ""
        elif line.startswith("@@have "):
            _tag, size, name = line.split(" ", 2)
            have[_unescape(name)] = int(size)
        elif line.startswith("@@fatal "):
            raise NodeCommandError(line[8:])
    if free is None:
        raise NodeCommandError(f"the copy planner gave no answer (exit {result.exit_code}): "
                               f"{result.stderr.strip()[-300:]}")
    return TargetPlan(free, writable, ancestor, have)


def check_room(node, path: str, plan: TargetPlan, manifest) -> None:
    """Conflict when the target cannot take the files (both numbers in the message)."""
    if not plan.writable:
        raise Conflict(_("node %(node)s: %(where)s is not writable by the login; choose another path")
                       % {"node": node.name, "where": plan.ancestor or path})
    needed = plan.needed(manifest)
    if plan.free < needed:
        raise Conflict(_("node %(node)s has %(free)s bytes free on the filesystem of %(where)s; the copy needs "
                         "%(needed)s bytes") % {"node": node.name, "free": plan.free, "where": plan.ancestor or path,
                                                "needed": needed})


# --- requests ------------------------------------------------------------------------------------


def request_copy(version: ModelVersion, node, *, path: str | None = None, bandwidth_limit: int | None = None,
                 request=None, actor: str | None = None) -> ModelCopy:
    """Ask for a copy of ``version`` on ``node`` and queue its transfer; returns the copy (``pending``).

    Conflict: the version is not verified (there is no manifest to check the target against), no node
    holds a ready copy to read from, the node already has a ready or running copy, or the target's
    filesystem has less free space than the files still missing there (both numbers said). A failed
    copy, or one whose worker died, is started again: files already there with their manifest size and
    digest are kept.
    """
    if version.status != VersionStatus.VERIFIED or not version.sha256:
        raise Conflict(_("%(version)s is %(status)s: verify it first, its verified manifest is what a copy is "
                         "checked against") % {"version": version, "status": version.get_status_display()})
    existing = version.copies.filter(node=node).first()
    if existing is not None:
        if existing.status == CopyStatus.READY:
            raise Conflict(_("node %(node)s already holds a ready copy of %(version)s at %(path)s")
                           % {"node": node.name, "version": version, "path": existing.path})
        if existing.status == CopyStatus.REMOVING or (existing.status in COPY_BUSY and not is_stale(existing)):
            raise Conflict(_("the copy of %(version)s on node %(node)s is %(status)s")
                           % {"version": version, "node": node.name, "status": existing.get_status_display()})
        if path and check_path(path) != existing.path and transport_for(node).expand(check_path(path)) \
                != existing.path:
            raise Conflict(_("node %(node)s already has a copy of %(version)s at %(path)s: remove it first to "
                             "copy elsewhere") % {"node": node.name, "version": version, "path": existing.path})
    source = source_for(version, node.pk)
    if source is None:
        raise Conflict(_("no other node holds a ready copy of %(version)s to copy from") % {"version": version})
    manifest = manifest_of(version)
    try:
        target_path = existing.path if existing is not None else \
            transport_for(node).expand(check_path(path) if path else default_path(version))
        plan = plan_target(node, target_path, manifest, timeout=float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S))
    except NodeCommandError as exc:
        raise Conflict(_("node %(node)s cannot be asked about %(path)s: %(error)s")
                       % {"node": node.name, "path": path or default_path(version), "error": exc}) from None
    check_room(node, target_path, plan, manifest)
    size = sum(s for _p, s, _d in manifest)
    reason = f"waiting to copy from node {source.node.name}"
    fields = {"source": source, "bytes_done": 0, "progress": 0.0, "size_bytes": size,
              "bandwidth_limit": bandwidth_limit, "files_skipped": 0, "files_copied": 0}
    with transaction.atomic():
        if existing is None:
            try:
                with transaction.atomic():
                    copy = ModelCopy.objects.create(version=version, node=node, path=target_path,
                                                    status=CopyStatus.PENDING, status_detail=reason, **fields)
            except IntegrityError:
                raise Conflict(_("a copy of %(version)s on node %(node)s was asked for meanwhile")
                               % {"version": version, "node": node.name}) from None
            CopyStatusChange.objects.create(copy=copy, from_status="", to_status=CopyStatus.PENDING, reason=reason,
                                            actor=statemachine.actor_of(request, actor))
            publish(copy)
        else:
            copy = existing
            try:
                moved = transition_copy(copy, CopyStatus.PENDING, f"started again: {reason}", request=request,
                                        actor=actor, **fields)
            except TransitionNotAllowed:
                moved = False
            if not moved:
                raise Conflict(_("the copy of %(version)s on node %(node)s changed meanwhile; try again")
                               % {"version": version, "node": node.name})
        audit.record("copy", version, request=request, actor=actor,
                     detail={"node": node.name, "path": target_path, "source_node": source.node.name,
                             "bytes": size, "bytes_to_write": plan.needed(manifest),
                             "bandwidth_limit": bandwidth_limit})
        enqueue.copy_version(copy.pk)
    return copy


def record_refusal(version: ModelVersion, node, reason: str, *, actor: str = "reconciler") -> ModelCopy:
    """A copy that could not even start (no room, nothing to copy from, the version not verified), kept as
    a ``failed`` copy on the node: placement leaves the node out for the version's jobs and the failed-copy
    alert fires, until an operator asks for the copy again or removes it."""
    copy = version.copies.filter(node=node).first()
    if copy is None:
        try:
            with transaction.atomic():
                copy = ModelCopy.objects.create(version=version, node=node, path=default_path(version),
                                                status=CopyStatus.FAILED, status_detail=reason[:4000],
                                                size_bytes=version.size_bytes)
                CopyStatusChange.objects.create(copy=copy, from_status="", to_status=CopyStatus.FAILED,
                                                reason=reason[:2000], actor=actor)
                publish(copy)
        except IntegrityError:
            copy = version.copies.get(node=node)
    elif copy.status != CopyStatus.FAILED:
        try:
            transition_copy(copy, CopyStatus.FAILED, reason, actor=actor)
        except TransitionNotAllowed:
            pass
    return copy


def cancel_copy(copy: ModelCopy, *, request=None) -> ModelCopy:
    """Stop a pending or running transfer: the copy ends ``failed`` ("cancelled"); the files already
    written stay (a new request resumes from them, or a removal deletes them)."""
    if copy.status not in (CopyStatus.PENDING, CopyStatus.COPYING, CopyStatus.VERIFYING):
        raise Conflict(_("the copy is %(status)s: there is nothing to cancel") % {"status": copy.get_status_display()})
    who = statemachine.actor_of(request)
    if not transition_copy(copy, CopyStatus.FAILED, f"cancelled by {who}", request=request):
        raise Conflict(_("the copy changed meanwhile; try again"))
    return copy


def request_remove(copy: ModelCopy, *, request=None) -> ModelCopy:
    """Delete a copy's files on its node (in the background) and then the copy.

    Conflict while an instance of a job on that node uses the version, while a transfer or
    verification runs (cancel it first), and for the origin (the directory the version was imported
    from: the console deletes only what it copied).
    """
    if copy.origin:
        raise Conflict(_("this is the directory %(version)s was imported from; the console removes only copies it "
                         "made") % {"version": copy.version})
    jobs = in_use(copy)
    if jobs:
        raise Conflict(_("job(s) %(jobs)s run on node %(node)s from this copy: stop them or move them first")
                       % {"jobs": ", ".join(jobs), "node": copy.node.name})
    if copy.status in COPY_BUSY and not is_stale(copy):
        raise Conflict(_("the copy is %(status)s: cancel it first") % {"status": copy.get_status_display()})
    with transaction.atomic():
        try:
            moved = transition_copy(copy, CopyStatus.REMOVING, "removing its files", request=request)
        except TransitionNotAllowed:
            moved = False
        if not moved:
            raise Conflict(_("the copy changed meanwhile; try again"))
        audit.record("remove_copy", copy.version, request=request,
                     detail={"node": copy.node.name, "path": copy.path})
        enqueue.remove_copy(copy.pk)
    return copy


def remove_copy(copy_id: int) -> bool:
    """Delete the manifest's files of a ``removing`` copy on its node, then the row (idempotent).
    A node that refuses leaves the copy ``failed`` with the reason. True when the row is gone."""
    copy = ModelCopy.objects.select_related("node", "version").filter(pk=copy_id).first()
    if copy is None or copy.status != CopyStatus.REMOVING:
        return False
    manifest = manifest_of(copy.version)
    try:
        result = transport_for(copy.node).run(copy_files_command("remove", copy.path),
                                              stdin=manifest_text([(p, s) for p, s, _d in manifest]),
                                              timeout=float(settings.CONSOLE_INSPECT_TIMEOUT_S))
    except NodeCommandError as exc:
        transition_copy(copy, CopyStatus.FAILED, f"removal failed: node {copy.node.name}: {exc}")
        return False
    errors = [line[8:] for line in result.stdout.splitlines() if line.startswith("@@error ")]
    if result.exit_code != 0 or errors:
        transition_copy(copy, CopyStatus.FAILED, "removal failed: " + ("; ".join(errors[:20]) or
                                                                     result.stderr.strip()[-500:]))
        return False
    with transaction.atomic():
        node_id, pk = copy.node_id, copy.pk
        deleted, _rows = ModelCopy.objects.filter(pk=pk, status=CopyStatus.REMOVING).delete()
        if deleted:
            broadcast.publish(f"node:{node_id}", {"state": {"copies": {str(pk): {"status": "removed"}}}})
            broadcast.changed("modelcopy", version_topic(copy.version_id))
    return bool(deleted)


def request_verify_copy(copy: ModelCopy, *, request=None) -> ModelCopy:
    """Hash the copy's files on its node against the verified manifest (in the background)."""
    version = copy.version
    if version.status != VersionStatus.VERIFIED or not version.sha256:
        raise Conflict(_("%(version)s is not verified: there is no manifest to check the copy against; verify "
                         "the version") % {"version": version})
    if copy.status in COPY_BUSY and not is_stale(copy):
        raise Conflict(_("the copy is %(status)s; wait for it or cancel it") % {"status": copy.get_status_display()})
    with transaction.atomic():
        try:
            moved = transition_copy(copy, CopyStatus.VERIFYING, "hashing the files on the node", request=request,
                                    progress=0.0, run=copy.run + 1)  # a worker still on the copy stops
        except TransitionNotAllowed:
            moved = False
        if not moved:
            raise Conflict(_("the copy changed meanwhile; try again"))
        enqueue.verify_copy(copy.pk)
    return copy
