"""Publishing to the live streams: the only code that talks to the channel layer.

A message for a topic (``cluster``, ``node:<id>``, ``job:<id>``, ``alerts``) is first written as a
:class:`console.models.StreamEntry` row, in the caller's transaction: its id is the stream cursor, and
the table is what a reconnecting browser catches up from. Then:

* ``CONSOLE_STREAM_TRANSPORT=poll`` (the embedded default, no Redis): nothing more. Every web process
  polls the table (console.consumers.StreamHub), which works with an in-process channel layer, since
  the collector and the Celery workers are other processes.
* ``push`` (production, Redis): after the transaction commits, the entries are also sent to the
  channel-layer groups named ``<topic>-<id>`` (``node-3``, ``cluster``), which reach the consumers of
  every web process at once. Consumers still catch up from the table after a reconnect.

Payloads are JSON objects; the consumers merge several entries of one topic into one message (see
:func:`merge_payloads`), so a payload must be mergeable. Its keys:

* ``series``: ``[{"series", "labels", "points": [[t, v], ...]}]``, points of one series of one entity
  (concatenated per series and labels);
* ``frames``: the compact form of many series at once, what the collector sends:
  ``[{"scope": "accelerator", "labels": ["node", "accelerator"], "fields": ["utilization_percent", ...],
  "rows": [[t, node id, accelerator id, value, ...], ...]}]``; row ``[t, *labels, *values]`` means
  a point ``(t, value)`` of series ``<scope>.<field>`` with those labels for every non-null value
  (rows concatenated per scope, labels and fields); a row's ``t`` is in integer milliseconds since the
  epoch (cheaper to encode than float seconds), ``series`` points' in seconds;
* ``state``: latest values, an object merged key by key, recursively (newer wins);
* anything else: the newest value wins.

Other publishers (alerting: ``publish("alerts", {"state": {...}})``) use the same keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from console.core import bulk
from console.core.models import StreamEntry, dump_json

log = logging.getLogger(__name__)

__all__ = ["changed", "entry_message", "group_for", "merge_payloads", "publish", "publish_many"]


def group_for(topic: str) -> str:
    """The channel-layer group of a topic: ``node:3`` -> ``node-3`` (group names allow no colon)."""
    return topic.replace(":", "-")


def entry_message(entry) -> dict:
    """What consumers receive for one entry, from the channel layer or from the table."""
    return {"id": entry.pk, "topic": entry.topic, "time": entry.time.timestamp(), "payload": entry.payload}


def publish(topic: str, payload: dict) -> None:
    """Publish one message; call it where the data it describes is written (same transaction)."""
    publish_many([(topic, payload)])


def publish_many(entries: Iterable[tuple[str, dict]]) -> list[int]:
    """Write stream entries in one statement and, with the push transport, send them after commit.
    Returns their ids (the cursors), in order."""
    now = timezone.now()
    entries = list(entries)
    if not entries:
        return []
    if connection.vendor == "postgresql" and len(entries) == 1:
        # One entry (a change stamp, an alert): one INSERT ... RETURNING, where the sequence and COPY below
        # cost two round trips (a probe of each node writes one).
        topic, payload = entries[0]
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {qn(StreamEntry._meta.db_table)} ({qn('time')}, {qn('topic')}, "
                           f"{qn('payload')}) VALUES (%s, %s, %s) RETURNING {qn('id')}",
                           [now, topic, dump_json(payload)])
            ids = [cursor.fetchone()[0]]
    elif connection.vendor == "postgresql":
        # COPY, with ids taken from the sequence first (the push messages carry them): bulk_create would send
        # the payloads as an array, which psycopg quotes element by element in Python (most of the
        # collector's flush at 1000 nodes). The payload column is text (JSONTextField): the server stores
        # the compact JSON as it comes.
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                           [StreamEntry._meta.db_table, len(entries)])
            ids = [pk for (pk,) in cursor.fetchall()]
        bulk.insert_rows(StreamEntry, ("id", "time", "topic", "payload"),
                         [(pk, now, topic, dump_json(payload)) for pk, (topic, payload) in zip(ids, entries,
                                                                                                 strict=True)])
    else:
        rows = StreamEntry.objects.bulk_create([StreamEntry(time=now, topic=topic, payload=payload)
                                                for topic, payload in entries])
        ids = [row.pk for row in rows]
    if settings.CONSOLE_STREAM_TRANSPORT == "push":
        messages = [(group_for(topic), {"type": "stream.entry", "entry": {
            "id": pk, "topic": topic, "time": now.timestamp(), "payload": payload}})
            for pk, (topic, payload) in zip(ids, entries, strict=True)]
        transaction.on_commit(lambda: _PUSHER.send(messages))
    return ids


def changed(kind: str, *topics: str) -> None:
    """Tell the pages that show ``topics`` that what they show of ``kind`` (a model name: ``job``,
    ``instance``, ``node``, ``benchmarkrun``) changed: ``{"state": {"changed": {kind: <unix time>}}}``. A page re-reads
    its live regions that follow ``kind`` (static/js/live_regions.js), at most about once a second.

    Call it where the change is written (same transaction), only for a real change: a state machine's
    transition, a new pid, a probe's facts. Never raises: a stream hiccup must not fail the change.
    """
    topics = tuple(dict.fromkeys(t for t in topics if t))
    if not topics:
        return
    stamp = {"state": {"changed": {kind: round(timezone.now().timestamp(), 3)}}}
    try:
        # A savepoint only inside a caller's transaction, so that a failure here does not abort theirs; outside
        # one, the write commits by itself (a savepoint was two more round trips for every probe).
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            publish_many([(topic, stamp) for topic in topics])
    except Exception:  # noqa: BLE001 - the page still shows it on its next load
        log.warning("could not publish a %s change to %s", kind, topics, exc_info=True)


class _Pusher:
    """Sends to the channel layer from a long-lived event loop of its own, so that sync callers (the
    collector, Celery tasks) reuse the Redis connections instead of opening a loop per message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="stream-push", daemon=True).start()
                self._loop = loop
            return self._loop

    def send(self, messages: list[tuple[str, dict]]) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return

        async def send_all() -> None:
            for group, message in messages:
                try:
                    await layer.group_send(group, message)
                except Exception:  # noqa: BLE001 - the table still has it; browsers catch up by cursor
                    log.warning("stream push to %s failed", group, exc_info=True)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            running.create_task(send_all())  # called from async code (a consumer's on_commit)
        else:
            asyncio.run_coroutine_threadsafe(send_all(), self._ensure_loop())

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._loop = None


_PUSHER = _Pusher()
if hasattr(os, "register_at_fork"):
    # A forked child (a prefork Celery worker) has none of the parent's threads: start its own loop.
    os.register_at_fork(after_in_child=_PUSHER._after_fork)


def merge_payloads(payloads: list[dict]) -> dict:
    """Merge several payloads of one topic, oldest first, into one: series points and frame rows
    concatenated, ``state`` merged recursively (newer values win), other keys: the newest."""
    merged: dict = {}
    series: dict[tuple, dict] = {}
    frames: dict[tuple, dict] = {}
    state: dict = {}
    for payload in payloads:
        for key, value in payload.items():
            if key == "frames" and isinstance(value, list):
                for frame in value:
                    ident = (frame.get("scope"), tuple(frame.get("labels", ())), tuple(frame.get("fields", ())))
                    if ident in frames:
                        frames[ident]["rows"].extend(frame.get("rows", []))
                    else:
                        frames[ident] = {**frame, "rows": list(frame.get("rows", []))}
            elif key == "series" and isinstance(value, list):
                for item in value:
                    labels = item.get("labels") or {}
                    try:
                        ident = (item.get("series", ""), tuple(sorted(labels.items())))
                    except TypeError:  # unhashable label values: slower, but still one key per label set
                        ident = (item.get("series", ""), json.dumps(labels, sort_keys=True))
                    if ident in series:
                        series[ident]["points"] = series[ident]["points"] + list(item.get("points", []))
                    else:
                        series[ident] = {**item, "points": list(item.get("points", []))}
            elif key == "state" and isinstance(value, dict):
                _deep_merge(state, value)
            else:
                merged[key] = value
    if series:
        merged["series"] = list(series.values())
    if frames:
        merged["frames"] = list(frames.values())
    if state:
        merged["state"] = state
    return merged


def _deep_merge(into: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


#: How long an entry id may stay invisible after a higher one became visible: entries are written in their
#: change's transaction, and with several writers (PostgreSQL) a transaction that took its id first may commit
#: last. Readers of the table look this far back (the poll hub waits this long for a missing id).
SETTLE_S = 3.0


def current_cursor() -> int:
    """A cursor every entry up to which has committed, as far as can be known: the newest entry written more
    than SETTLE_S seconds ago (0 if none). The newest id is not one: an entry still in its transaction may lie
    below it, invisible, and a reader starting there would skip it when it commits. Pages embed this cursor,
    so their socket starts at or before what they drew; the entries of the last seconds that it sends again
    are harmless (points carry their times, a change stamp makes a page re-read its live regions). Entry
    times come from the writers' clocks, which must agree (NTP) to well under SETTLE_S. One statement, on the
    time index."""
    qn = connection.ops.quote_name
    table, pk, time = qn(StreamEntry._meta.db_table), qn("id"), qn("time")
    settled = connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(seconds=SETTLE_S))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk} FROM {table} WHERE {time} <= %s ORDER BY {time} DESC LIMIT 1",  # noqa: S608
                       [settled])
        row = cursor.fetchone()
    return row[0] if row else 0
