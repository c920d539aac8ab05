"""Verifying a version: hashing its files on the node, against the manifest recorded before."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.core import audit
from console.core.statemachine import TransitionNotAllowed
from models_registry.choices import VersionStatus
from models_registry.inspection.hashing import HashTracker
from models_registry.inspection.remote import hash_command
from models_registry.models import ModelFile, ModelVersion
from models_registry.services.common import (
    Conflict,
    _enqueue_verify,
    directory_of,
    publish_progress,
    transition_version,
)
from nodes.transports import NodeCommandError, transport_for

#: Seconds between two progress writes while a verification runs (each also published to the version's page).
PROGRESS_INTERVAL_S = 0.5


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
            publish_progress(version.pk, round(tracker.progress, 4))

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
