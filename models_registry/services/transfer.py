"""The transfer of a copy: files streamed from a node with a ready copy to the target, through the console.

For every file, two commands run at once: ``cat`` of the file on the source node, and on the target a
small ``sh`` program (``programs/receive_file.sh``) that writes its input to ``<file>.boom-part`` and
renames it once it holds the manifest's size; for a large file, ``programs/stream_file.py`` does both
ends' work with splice(2) (``inspection.remote.send_command``/``receive_command``). The console reads one
SSH channel and writes the other: nothing touches its disk, and the nodes need no key for each other.
Several files stream at once (``CONSOLE_COPY_PARALLEL``), each over its own channels of the two pooled
connections.

Resumable: before streaming, the files already on the target with their manifest size are hashed there,
and those with the manifest's digest are kept; every other file (missing, partial, different) is written
again from its start. After streaming, the written files are hashed on the target against the verified
manifest; the copy becomes ``ready`` only when every file matches, else ``failed`` naming the files.

A ``bandwidth_limit`` (bytes per second) is shared by the streams of one copy. Cancelling (the copy
leaving ``copying``) is seen at the next progress write, within half a second, and stops every stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.core import audit
from models_registry.choices import CopyStatus, VersionStatus
from models_registry.inspection.hashing import HashTracker
from models_registry.inspection.remote import hash_command, receive_command, send_command
from models_registry.models import ModelCopy
from models_registry.services.common import Conflict, _clip
from models_registry.services.copies import check_room, manifest_of, plan_target, publish, transition_copy
from nodes.transports import NodeCommandError, transport_for

#: Seconds between two progress writes (the heartbeat; the page and API poll every second or two).
PROGRESS_INTERVAL_S = 0.5
#: Bytes read from the source at a time (a read returns what the channel holds, up to this).
CHUNK = 1 << 20


class _Stop(Exception):
    """The copy left ``copying`` (cancelled, or another worker took it over)."""


class RateLimit:
    """A token bucket shared by a copy's streams: at most ``rate`` bytes per second on average."""

    def __init__(self, rate: int | None):
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now - 0.25)  # at most a quarter second of burst
            self._next = start + n / self.rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


class Progress:
    """Bytes written so far, shared by the streams; the main thread writes it to the copy row."""

    def __init__(self, done: int = 0):
        self._lock = threading.Lock()
        self.done = done
        self.stop = threading.Event()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
        if self.stop.is_set():
            raise _Stop

    def take_back(self, n: int) -> None:
        """A file whose stream failed starts again: what it had written no longer counts."""
        with self._lock:
            self.done -= n


def pump(source, target, source_path: str, target_path: str, size: int, progress: Progress, limit: RateLimit,
         *, timeout: float, on_chunk: Callable[[int], None] | None = None) -> None:
    """Stream one file from ``source`` to ``target`` (transports). Raises NodeCommandError naming what failed."""
    with source.open_pipe(send_command(source_path, size), timeout=timeout, size=size) as reader, \
            target.open_pipe(receive_command(target_path, size), timeout=timeout, size=size) as writer:
        sent = 0
        # Two OS pipes (the shards' ``ssh`` clients): the kernel moves the bytes from one to the other
        # (splice), and the console only counts them; else read and write (paramiko channels).
        spliced = reader.splices_to(writer)
        while True:
            if spliced:
                n = reader.splice_to(writer, CHUNK)
            else:
                chunk = reader.read(CHUNK)
                n = len(chunk)
            if not n:
                break
            limit.take(n)
            if not spliced:
                writer.write(chunk)
            sent += n
            progress.add(n)
            if on_chunk is not None:
                on_chunk(sent)
        writer.close_write()
        read = reader.wait(timeout)
        written = writer.wait(timeout)
    if read.exit_code != 0:
        raise NodeCommandError(f"reading it failed (exit {read.exit_code}): {read.stderr.strip()[-300:]}")
    if written.exit_code != 0:
        raise NodeCommandError(f"writing it failed (exit {written.exit_code}): {written.stderr.strip()[-300:]}")
    if sent != size:
        raise NodeCommandError(f"{sent} bytes read, the manifest says {size}")


#: Tries per file: a stream that breaks (a connection lost or re-keyed too slowly under load) is written
#: again from its start on a fresh channel, after 1 then 2 seconds, before the copy fails.
FILE_ATTEMPTS = 3


def _pump_with_retries(source, target, source_path: str, target_path: str, size: int, progress: Progress,
                       limit: RateLimit, *, timeout: float, on_chunk) -> None:
    for attempt in range(1, FILE_ATTEMPTS + 1):
        counted = [0]

        def count(sent: int, counted: list[int] = counted) -> None:
            counted[0] = sent
            if on_chunk is not None:
                on_chunk(sent)

        try:
            pump(source, target, source_path, target_path, size, progress, limit, timeout=timeout, on_chunk=count)
            return
        except NodeCommandError:
            progress.take_back(counted[0])
            if attempt == FILE_ATTEMPTS or progress.stop.is_set():
                raise
            time.sleep(attempt)


def _hash_on(node, directory: str, paths: list[str], on_line: Callable[[str], None]) -> HashTracker:
    tracker = HashTracker(sorted(paths))

    def feed(line: str) -> None:
        tracker.feed(line)
        on_line(line)

    transport_for(node).stream(hash_command(directory, sorted(paths), settings.CONSOLE_VERIFY_HASH_METHOD), feed,
                               timeout=float(settings.CONSOLE_VERIFY_TIMEOUT_S))
    return tracker


def _mismatches(tracker: HashTracker, expected: dict[str, str]) -> dict[str, str]:
    failures = tracker.failures()
    for path, digest in tracker.sha256.items():
        if path in expected and digest != expected[path]:
            failures[path] = f"sha256 {digest[:12]}… differs from the manifest's {expected[path][:12]}…"
    return failures


def _heartbeat(copy: ModelCopy, status: str, **fields) -> bool:
    """Write progress if the copy still has ``status`` and this worker's run; False when it does not any more
    (cancelled, or started again by another worker)."""
    now = timezone.now()
    written = ModelCopy.objects.filter(pk=copy.pk, status=status, run=copy.run).update(updated_at=now, **fields)
    if written:
        for key, value in fields.items():
            setattr(copy, key, value)
        publish(copy)
    return bool(written)


def _take(copy: ModelCopy) -> bool:
    """A worker takes a ``pending`` copy: ``copying`` on a run of its own (False when another was first)."""
    return copy.status == CopyStatus.PENDING and transition_copy(
        copy, CopyStatus.COPYING, "planning the transfer", guard={"run": copy.run}, run=copy.run + 1)


def _move(copy: ModelCopy, to_status: str, reason: str, **fields) -> bool:
    """A worker's transition: only while the copy is still on the run this worker took."""
    return transition_copy(copy, to_status, reason, guard={"run": copy.run}, **fields)


def run_copy(copy_id: int, *, parallel: int | None = None,
             on_chunk: Callable[[str, int], None] | None = None) -> ModelCopy | None:
    """Make a ``pending`` copy: plan, keep what is there, stream the rest, verify, end ``ready`` or
    ``failed``. Idempotent: does nothing unless the copy is ``pending``. ``on_chunk(path, bytes)`` is
    called by the stream threads after each chunk (tests use it to stop a transfer half-way)."""
    copy = ModelCopy.objects.select_related("version", "node", "source__node").filter(pk=copy_id).first()
    if copy is None or copy.status != CopyStatus.PENDING:
        return None
    if not _take(copy):
        return None
    version = copy.version
    source = copy.source
    try:
        if version.status != VersionStatus.VERIFIED or not version.sha256:
            raise _Failed(f"{version} is not verified any more")
        if source is None or source.status != CopyStatus.READY:
            raise _Failed("the source copy is not ready any more; ask for the copy again")
        return _transfer(copy, source, parallel or settings.CONSOLE_COPY_PARALLEL, on_chunk)
    except _Failed as exc:
        _move(copy, CopyStatus.FAILED, f"copy failed: {exc}")
    except _Stop:
        return copy
    except NodeCommandError as exc:
        _move(copy, CopyStatus.FAILED, f"copy failed: {exc}")
    except Conflict as exc:
        _move(copy, CopyStatus.FAILED, f"copy failed: {exc}")
    return copy


class _Failed(Exception):
    """The transfer cannot go on; the message says why."""


def _transfer(copy: ModelCopy, source: ModelCopy, parallel: int, on_chunk) -> ModelCopy:
    manifest = manifest_of(copy.version)
    expected = {p: d for p, _s, d in manifest}
    sizes = {p: s for p, s, _d in manifest}
    total = sum(sizes.values())
    plan = plan_target(copy.node, copy.path, manifest)
    check_room(copy.node, copy.path, plan, manifest)

    # 1. Files already there with their manifest size are hashed on the target while the missing ones
    # stream (a resume does not wait for the check); those whose digest differs join the queue.
    present = [p for p in sizes if plan.have.get(p) == sizes[p]]
    missing = sorted((p for p in sizes if p not in present), key=lambda p: -sizes[p])
    progress = Progress(0)
    if not _heartbeat(copy, CopyStatus.COPYING, bytes_done=0, files_skipped=0, progress=0.0 if total else 1.0,
                      status_detail=f"streaming {len(missing)} file(s) from node {source.node.name}"
                                    + (f"; checking {len(present)} already there" if present else "")):
        raise _Stop

    # 2. Stream, ``parallel`` files at a time.
    source_t, target_t = transport_for(source.node), transport_for(copy.node)
    limit = RateLimit(copy.bandwidth_limit)
    timeout = float(settings.CONSOLE_COPY_IDLE_TIMEOUT_S)
    queue = list(missing)
    kept: list[str] = []
    failures: dict[str, str] = {}
    lock = threading.Lock()
    checking = threading.Event()

    def check_present() -> None:
        def on_line(line: str) -> None:
            if progress.stop.is_set():
                raise _Stop

        try:
            bad = _mismatches(_hash_on(copy.node, copy.path, present, on_line), expected)
            with lock:
                kept.extend(p for p in present if p not in bad)
                queue.extend(sorted((p for p in present if p in bad), key=lambda p: -sizes[p]))
            progress.add(sum(sizes[p] for p in present if p not in bad))
        except _Stop:
            pass
        except NodeCommandError as exc:
            with lock:
                failures["(the files already there)"] = f"checking them failed: {exc}"
            progress.stop.set()
        finally:
            checking.clear()

    def worker() -> None:
        while not progress.stop.is_set():
            with lock:
                path = queue.pop(0) if queue else None
            if path is None:
                if checking.is_set():
                    time.sleep(0.1)  # files found wrong by the check may still join the queue
                    continue
                with lock:
                    if not queue:
                        return
                continue
            try:
                _pump_with_retries(source_t, target_t, f"{source.path}/{path}", f"{copy.path}/{path}", sizes[path],
                                   progress, limit, timeout=timeout,
                                   on_chunk=(lambda n, path=path: on_chunk(path, n)) if on_chunk is not None else None)
            except _Stop:
                return
            except NodeCommandError as exc:
                with lock:
                    failures[path] = str(exc)
                progress.stop.set()
            except Exception as exc:  # noqa: BLE001 - a test hook or a bug: stop every stream, fail the copy
                with lock:
                    failures[path] = f"{type(exc).__name__}: {exc}"
                progress.stop.set()

    if present:
        checking.set()
        threads = [threading.Thread(target=check_present, name=f"copy-{copy.pk}-check", daemon=True)]
    else:
        threads = []
    threads += [threading.Thread(target=worker, name=f"copy-{copy.pk}-{i}", daemon=True)
                for i in range(max(1, min(parallel, len(sizes))))]
    for thread in threads:
        thread.start()
    cancelled = False
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(PROGRESS_INTERVAL_S / max(1, len(threads)))
            done = progress.done
            if not _heartbeat(copy, CopyStatus.COPYING, bytes_done=done, files_skipped=len(kept),
                              progress=round(done / total, 4) if total else 1.0):
                cancelled = True
                progress.stop.set()
    finally:
        progress.stop.set()
        for thread in threads:
            thread.join()
    if cancelled:
        raise _Stop
    if failures:
        listing = "; ".join(f"{p}: {why}" for p, why in sorted(failures.items())[:20])
        raise _Failed(f"{len(failures)} file(s) could not be copied: {listing}")

    # 3. Hash what was written against the verified manifest.
    written = sorted(p for p in sizes if p not in kept)
    if not _move(copy, CopyStatus.VERIFYING, f"{len(written)} file(s) written; hashing them on the node",
                           bytes_done=total, progress=1.0, files_copied=len(written), files_skipped=len(kept)):
        raise _Stop
    return _verify(copy, written, expected, kept=len(kept))


def _verify(copy: ModelCopy, paths: list[str], expected: dict[str, str], *, kept: int = 0) -> ModelCopy:
    """Hash ``paths`` of a ``verifying`` copy on its node; ``ready`` when each matches the manifest."""
    last = [time.monotonic()]
    total = len(paths)

    def on_line(line: str) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            if not _heartbeat(copy, CopyStatus.VERIFYING):
                raise _Stop

    try:
        tracker = _hash_on(copy.node, copy.path, paths, on_line) if paths else HashTracker([])
    except _Stop:
        return copy
    except NodeCommandError as exc:
        _move(copy, CopyStatus.FAILED, f"verification failed: node {copy.node.name}: {exc}")
        return copy
    failures = _mismatches(tracker, expected)
    if failures:
        ordered = sorted(failures.items())
        listing = "; ".join(f"{p}: {why}" for p, why in ordered)
        with transaction.atomic():
            _move(copy, CopyStatus.FAILED,
                            _clip(f"verification failed for {len(failures)} of {len(expected)} files: {listing}"))
            audit.record("integrity", copy.version, detail={
                "summary": f"the copy on node {copy.node.name} differs from the verified manifest",
                "node": copy.node.name, "path": copy.path, "files": dict(ordered[:50])})
        return copy
    _move(copy, CopyStatus.READY,
                    f"{total} file(s) verified on the node" + (f", {kept} kept from before" if kept else ""),
                    verified_at=timezone.now(), progress=1.0, bytes_done=copy.size_bytes or 0)
    return copy


def verify_copy(copy_id: int) -> ModelCopy | None:
    """Hash every manifest file of a ``verifying`` copy on its node (idempotent: only while verifying)."""
    copy = ModelCopy.objects.select_related("version", "node").filter(pk=copy_id).first()
    if copy is None or copy.status != CopyStatus.VERIFYING:
        return None
    manifest = manifest_of(copy.version)
    return _verify(copy, [p for p, _s, _d in manifest], {p: d for p, _s, d in manifest})
