"""Usage: counted in memory per (minute, key, job, route, requested model) on the request path and
written to ``UsageMinute`` every :data:`FLUSH_INTERVAL_S` from the database thread.

Each gateway process owns its rows (``source`` = host:pid), so a flush adds to its own row of the
minute (or creates it) without coordinating with other processes. ``ApiKey.last_used_at`` is
updated in the same flush (a queryset update: it does not touch ``updated_at``, so it does not make
the state caches reload).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError

from jobs.gateway.models import ApiKey, UsageMinute

log = logging.getLogger("jobs.gateway")

FLUSH_INTERVAL_S = 2.0
MODEL_MAX = 200


def default_source() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


@dataclass
class Counts:
    requests: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms_sum: float = 0.0
    ttft_ms_sum: float = 0.0
    ttft_count: int = 0

    def merge(self, other: Counts) -> None:
        self.requests += other.requests
        for kind, n in other.errors_by_kind.items():
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + n
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.latency_ms_sum += other.latency_ms_sum
        self.ttft_ms_sum += other.ttft_ms_sum
        self.ttft_count += other.ttft_count


BucketKey = tuple[int, int | None, int | None, int | None, str]  # (minute epoch, key, job, route, model)


class UsageRecorder:
    def __init__(self, db, source: str | None = None, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.db = db
        self.source = source or default_source()
        self.interval_s = interval_s
        self.pending: dict[BucketKey, Counts] = {}
        self.keys_used: dict[int, float] = {}  # key id -> last use (epoch s) not yet written
        self._task: asyncio.Task | None = None

    def record(self, *, now: float, key_id: int | None, job_id: int | None, route_id: int | None, model: str,
               error_kind: str | None = None, prompt_tokens: int = 0, completion_tokens: int = 0,
               latency_ms: float = 0.0, ttft_ms: float | None = None) -> None:
        bucket = (int(now // 60) * 60, key_id, job_id, route_id, model[:MODEL_MAX])
        counts = self.pending.get(bucket)
        if counts is None:
            counts = self.pending[bucket] = Counts()
        counts.requests += 1
        if error_kind:
            counts.errors_by_kind[error_kind] = counts.errors_by_kind.get(error_kind, 0) + 1
        counts.prompt_tokens += prompt_tokens
        counts.completion_tokens += completion_tokens
        counts.latency_ms_sum += latency_ms
        if ttft_ms is not None:
            counts.ttft_ms_sum += ttft_ms
            counts.ttft_count += 1
        if key_id is not None:
            self.keys_used[key_id] = now

    async def flush(self) -> None:
        pending, self.pending = self.pending, {}
        keys_used, self.keys_used = self.keys_used, {}
        if not pending and not keys_used:
            return
        try:
            await self.db.run(self._write, pending, keys_used)
        except Exception:
            log.exception("gateway: writing usage failed; keeping it for the next flush")
            for bucket, counts in pending.items():
                self.pending.setdefault(bucket, Counts()).merge(counts)
            for key_id, when in keys_used.items():
                self.keys_used[key_id] = max(when, self.keys_used.get(key_id, 0.0))

    def _write(self, pending: dict[BucketKey, Counts], keys_used: dict[int, float]) -> None:
        for (minute, key_id, job_id, route_id, model), counts in pending.items():
            when = datetime.fromtimestamp(minute, tz=UTC)
            row = UsageMinute.objects.filter(source=self.source, minute=when, key_id=key_id, job_id=job_id,
                                             route_id=route_id, model=model).first()
            if row is None:
                row = UsageMinute(source=self.source, minute=when, key_id=key_id, job_id=job_id,
                                  route_id=route_id, model=model, errors_by_kind={})
            kinds = dict(row.errors_by_kind or {})
            for kind, n in counts.errors_by_kind.items():
                kinds[kind] = kinds.get(kind, 0) + n
            row.requests += counts.requests
            row.errors = sum(kinds.values())
            row.errors_by_kind = kinds
            row.prompt_tokens += counts.prompt_tokens
            row.completion_tokens += counts.completion_tokens
            row.latency_ms_sum += counts.latency_ms_sum
            row.ttft_ms_sum += counts.ttft_ms_sum
            row.ttft_count += counts.ttft_count
            try:
                row.save()
            except IntegrityError as exc:  # e.g. a key or job deleted since the request
                log.warning("gateway: usage row %s not written (%s)", (minute, key_id, job_id, route_id), exc)
        for key_id, when in keys_used.items():
            ApiKey.objects.filter(pk=key_id).update(last_used_at=datetime.fromtimestamp(when, tz=UTC))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gateway-usage")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

