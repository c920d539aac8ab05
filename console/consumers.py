"""The live-stream websocket ``/ws/stream/`` (shared/API.md "Live streams").

Protocol. The client sends ``{"type": "subscribe", "topics": [...], "cursor": N}`` (cursor optional),
``{"type": "unsubscribe", "topics": [...]}`` or ``{"type": "ping"}``. The server sends

* ``{"type": "data", "topic", "cursor", "time", "data"}``: what happened on a topic since its previous
  message; ``data`` holds ``frames`` (the compact form of the collector's samples: rows of
  ``[t in ms, *labels, *values]``), ``series`` (``[{"series", "labels", "points": [[t, v], ...]}]``) and/or
  ``state`` (latest values, merged key by key); see console.core.broadcast;
* ``{"type": "subscribed", "topics", "cursor"}``, ``{"type": "reset", "topics", "detail"}`` (the cursor
  is older than the kept entries: reload from the series API), ``{"type": "pong"}``;
* ``{"type": "error", "detail"[, "topic"]}`` for a malformed message or a topic the user may not see;
  the connection stays open.

``cursor`` in a data message is safe to resume from: every entry up to it, of every subscribed topic,
has been sent. Entries after it may arrive again after a resume; their points carry times, and
clients drop points they already have.

At most one data message per topic per second per client (``MIN_INTERVAL_S``): entries that arrive
sooner wait and are merged into the next message, so throttling loses no points.

Where entries come from: with ``CONSOLE_STREAM_TRANSPORT=poll`` one :class:`StreamHub` per web process
polls the StreamEntry table for all its connections; with ``push`` the consumer joins the topics'
channel-layer groups (console.core.broadcast sends to them). Either way a subscription with a cursor first
catches up from the table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from console import streams
from console.core.broadcast import SETTLE_S, entry_message, group_for, merge_payloads
from console.core.models import StreamEntry
from console.core.permissions import VIEWER, has_role

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0
MAX_MESSAGE_BYTES = 64 * 1024
SEEN_IDS = 20_000  # entry ids remembered per connection to drop duplicates (push and catch-up overlap)


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """One browser's (or script's) stream connection. See the module docstring."""

    async def connect(self):
        self.topics: set[str] = set()
        self.pending: dict[str, list[dict]] = defaultdict(list)
        self.last_sent: dict[str, float] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.seen: set[int] = set()
        self.floors: dict[str, int] = {}  # topic -> the cursor it was subscribed with (entries up to it are had)
        self.seen_order: deque[int] = deque()
        self.max_seen = 0
        self.joined = False
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.send_json({"type": "error", "detail": "authentication required: log in or pass ?token="})
            await self.close(code=4401)
            return
        if not await database_sync_to_async(_is_viewer)(user):
            await self.send_json({"type": "error", "detail": "your role may not see live streams"})
            await self.close(code=4403)
            return
        self.joined = True

    async def disconnect(self, code):
        for handle in getattr(self, "timers", {}).values():
            handle.cancel()
        if getattr(self, "watch_task", None) is not None:
            self.watch_task.cancel()
        if getattr(self, "topics", None):
            await self._leave(set(self.topics))

    # -- incoming

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if not self.joined:
            return
        if text_data is None:
            await self._error("send JSON text messages, not binary")
            return
        if len(text_data) > MAX_MESSAGE_BYTES:
            await self._error(f"message too large (at most {MAX_MESSAGE_BYTES} bytes)")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self._error("malformed message: not JSON")
            return
        if not isinstance(message, dict):
            await self._error("malformed message: expected a JSON object with a type")
            return
        kind = message.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind in ("subscribe", "unsubscribe"):
            topics = message.get("topics")
            if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
                await self._error("malformed message: topics must be a non-empty list of strings")
                return
            if len(topics) > streams.MAX_TOPICS:
                await self._error(f"too many topics (at most {streams.MAX_TOPICS})")
                return
            if kind == "unsubscribe":
                await self._leave(set(topics) & self.topics)
                return
            cursor = message.get("cursor")
            if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0):
                await self._error("malformed message: cursor must be a non-negative integer")
                return
            await self._subscribe(topics, cursor)
        else:
            await self._error(f"unknown message type {str(kind)[:40]!r}: use subscribe, unsubscribe or ping")

    async def _subscribe(self, topics: list[str], cursor: int | None):
        allowed = []
        for topic in dict.fromkeys(topics):
            try:
                await database_sync_to_async(streams.check_topic)(self.scope["user"], topic)
            except streams.TopicError as exc:
                await self._error(str(exc), topic=topic)
                continue
            allowed.append(topic)
        new = [t for t in allowed if t not in self.topics]
        self.topics.update(new)
        if cursor is not None:  # what the client has: the hub may send entries of the last seconds again
            self.floors.update((t, cursor) for t in new)
        await self._watch(new)
        await self._join(new)
        if cursor is not None and allowed:
            entries, too_old = await database_sync_to_async(streams.entries_after)(cursor, allowed)
            if too_old:
                await self.send_json({"type": "reset", "topics": allowed,
                                      "detail": "the cursor is older than the kept stream: reload the series"})
            for entry in entries:
                self.deliver(entry)
        if cursor is None and self.max_seen == 0:
            self.max_seen = await database_sync_to_async(streams.current_cursor)()
        await self.send_json({"type": "subscribed", "topics": allowed, "cursor": self._safe_cursor()})

    async def _watch(self, topics: list[str]):
        """Tell the collector these topics are watched (it publishes a node's samples only then), and renew
        that while the connection lives."""
        if not any(t.startswith(streams.WATCHED_PREFIXES) for t in topics):
            return
        await database_sync_to_async(streams.watch)(topics)
        if getattr(self, "watch_task", None) is None:
            self.watch_task = asyncio.ensure_future(self._renew_watches())

    async def _renew_watches(self):
        while True:
            await asyncio.sleep(streams.WATCH_TTL_S / 3)
            try:
                await database_sync_to_async(streams.watch)(list(self.topics))
            except Exception:  # noqa: BLE001 - a database hiccup: the next turn renews them
                log.warning("stream: renewing watches failed", exc_info=True)

    async def _join(self, topics: list[str]):
        if not topics:
            return
        if settings.CONSOLE_STREAM_TRANSPORT == "push":
            for topic in topics:
                await self.channel_layer.group_add(group_for(topic), self.channel_name)
        else:
            hub_for_loop().add(self, topics)

    async def _leave(self, topics: set[str]):
        if not topics:
            return
        self.topics -= topics
        for topic in topics:
            self.pending.pop(topic, None)
            self.floors.pop(topic, None)
            handle = self.timers.pop(topic, None)
            if handle:
                handle.cancel()
        if settings.CONSOLE_STREAM_TRANSPORT == "push":
            for topic in topics:
                await self.channel_layer.group_discard(group_for(topic), self.channel_name)
        else:
            hub_for_loop().remove(self, topics)

    async def _error(self, detail: str, topic: str | None = None):
        message = {"type": "error", "detail": detail}
        if topic is not None:
            message["topic"] = topic
        await self.send_json(message)

    # -- outgoing (throttled)

    async def stream_entry(self, event):
        """Channel-layer handler (push transport)."""
        self.deliver(event["entry"])

    def deliver(self, entry: dict) -> None:
        """Queue one stream entry for its topic; sends now or when the topic's second is up."""
        topic = entry["topic"]
        if topic not in self.topics or entry["id"] in self.seen or entry["id"] <= self.floors.get(topic, 0):
            return
        self.seen.add(entry["id"])
        self.seen_order.append(entry["id"])
        if len(self.seen_order) > SEEN_IDS:
            self.seen.discard(self.seen_order.popleft())
        self.max_seen = max(self.max_seen, entry["id"])
        self.pending[topic].append(entry)
        if topic in self.timers:
            return
        loop = asyncio.get_running_loop()
        wait = self.last_sent.get(topic, -MIN_INTERVAL_S) + MIN_INTERVAL_S - loop.time()
        self.timers[topic] = loop.call_later(max(0.0, wait), lambda: asyncio.ensure_future(self._flush(topic)))

    async def _flush(self, topic: str):
        self.timers.pop(topic, None)
        entries = self.pending.pop(topic, None)
        if not entries or topic not in self.topics:
            return
        self.last_sent[topic] = asyncio.get_running_loop().time()
        entries.sort(key=lambda e: e["id"])
        data = merge_payloads([e["payload"] for e in entries])
        try:
            await self.send_json({"type": "data", "topic": topic, "cursor": self._safe_cursor(),
                                  "time": entries[-1]["time"], "data": data})
        except Exception:  # noqa: BLE001 - the socket went away; disconnect() cleans up
            log.debug("stream send failed", exc_info=True)

    def _safe_cursor(self) -> int:
        waiting = [e["id"] for entries in self.pending.values() for e in entries]
        return min(waiting) - 1 if waiting else self.max_seen


def _is_viewer(user) -> bool:
    return has_role(user, VIEWER)


# ------------------------------------------------------------------------------------------------ hub


class StreamHub:
    """Polls the StreamEntry table for every connection of this process (the ``poll`` transport).

    One query per poll, whatever the number of connections (two when new entries came). Entry ids
    come from the database in insertion order; with several writers (PostgreSQL) an id may become
    visible after a higher one, so ids missing below the newest seen are waited for during
    ``GAP_WAIT_S`` before the hub gives up on them (a rolled-back insert leaves a gap for ever).
    """

    GAP_WAIT_S = SETTLE_S

    def __init__(self) -> None:
        self.subscribers: dict[str, set[StreamConsumer]] = defaultdict(set)
        self.task: asyncio.Task | None = None
        self.last_id: int | None = None
        self.gaps: dict[int, float] = {}
        self.polls = 0

    def add(self, consumer: StreamConsumer, topics: list[str]) -> None:
        for topic in topics:
            self.subscribers[topic].add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    def remove(self, consumer: StreamConsumer, topics: set[str]) -> None:
        for topic in topics:
            group = self.subscribers.get(topic)
            if group is not None:
                group.discard(consumer)
                if not group:
                    del self.subscribers[topic]

    async def _run(self) -> None:
        interval = settings.CONSOLE_STREAM_POLL_MS / 1000
        while self.subscribers:
            try:
                entries = await database_sync_to_async(self._fetch)()
                for entry in entries:
                    for consumer in list(self.subscribers.get(entry["topic"], ())):
                        consumer.deliver(entry)
            except Exception:  # noqa: BLE001 - a database hiccup must not end every stream
                log.warning("stream hub: polling failed", exc_info=True)
            self.polls += 1
            await asyncio.sleep(interval)
        self.task = None
        self.last_id = None
        self.gaps.clear()

    def _fetch(self) -> list[dict]:
        if self.last_id is None:
            # SETTLE_S back (current_cursor): an entry still in its transaction below the newest visible id is
            # then a gap that this hub waits for, not an id it has already passed.
            self.last_id = streams.current_cursor()
            return []
        now = time.monotonic()
        self.gaps = {pk: seen for pk, seen in self.gaps.items() if now - seen < self.GAP_WAIT_S}
        floor = min(self.gaps) - 1 if self.gaps else self.last_id
        ids = list(StreamEntry.objects.filter(pk__gt=floor).order_by("pk").values_list("pk", flat=True)[:20_000])
        wanted = [pk for pk in ids if pk > self.last_id or pk in self.gaps]
        if not wanted:
            return []
        if max(wanted) - self.last_id < 10_000:  # a larger jump is a sequence jump, not commits in flight
            present = set(ids)
            for pk in range(self.last_id + 1, max(wanted)):
                if pk not in present:
                    self.gaps.setdefault(pk, now)
        for pk in wanted:
            self.gaps.pop(pk, None)
        self.last_id = max(self.last_id, max(wanted))
        rows = StreamEntry.objects.filter(pk__in=wanted).order_by("pk")
        return [entry_message(row) for row in rows]


_HUBS: dict[int, StreamHub] = {}


def hub_for_loop() -> StreamHub:
    """The hub of the running event loop (one per process in practice; tests run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _HUBS.get(id(loop))
    if hub is None:
        hub = _HUBS[id(loop)] = StreamHub()
    return hub
