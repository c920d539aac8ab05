"""Per-key limits: requests per minute, tokens per minute, concurrent requests.

Fixed one-minute windows (UTC minute). Requests are counted when admitted, tokens (prompt +
completion, as the engine reports them) when the response ends, so a request that starts under the
token limit may end over it; the next one is refused until the minute turns.

:class:`LocalLimits` keeps the counters in the process (the embedded profile, one gateway);
:class:`RedisLimits` keeps them in Redis (``INCR``/``EXPIRE``, one round trip per admission) so
that every gateway process shares them.
"""

from __future__ import annotations

import logging
import math
import time

from redis.exceptions import RedisError

from jobs.gateway.errors import GatewayError
from jobs.gateway.state import KeyView

log = logging.getLogger("jobs.gateway")

WINDOW_S = 60
# A concurrency counter left behind by a process that died mid-request heals after this long idle.
CONCURRENCY_TTL_S = 600


def _window(now: float) -> tuple[int, int]:
    """(window number, seconds until it ends, at least 1)."""
    window = int(now // WINDOW_S)
    return window, max(1, math.ceil((window + 1) * WINDOW_S - now))


def _over(limit: str, value: int, retry_after: int) -> GatewayError:
    names = {"rpm": "requests per minute", "tpm": "tokens per minute", "max_concurrency": "concurrent requests"}
    return GatewayError(429, f"Rate limit reached: {names[limit]} of this key ({limit}={value}); "
                             f"retry after {retry_after} s.", f"{limit}_exceeded", retry_after=retry_after)


class LocalLimits:
    def __init__(self) -> None:
        self.concurrent: dict[int, int] = {}
        self.requests: dict[tuple[int, int], int] = {}
        self.tokens: dict[tuple[int, int], int] = {}
        self._window = -1

    def _turn(self, window: int) -> None:
        if window != self._window:  # forget older windows
            self.requests = {k: v for k, v in self.requests.items() if k[1] >= window}
            self.tokens = {k: v for k, v in self.tokens.items() if k[1] >= window}
            self._window = window

    async def admit(self, key: KeyView) -> None:
        """Take a concurrency slot and count the request, or raise a 429 :class:`GatewayError`."""
        window, retry_after = _window(time.time())
        self._turn(window)
        if key.max_concurrency and self.concurrent.get(key.id, 0) >= key.max_concurrency:
            raise _over("max_concurrency", key.max_concurrency, 1)
        if key.tpm and self.tokens.get((key.id, window), 0) >= key.tpm:
            raise _over("tpm", key.tpm, retry_after)
        if key.rpm:
            count = self.requests.get((key.id, window), 0) + 1
            self.requests[(key.id, window)] = count
            if count > key.rpm:
                raise _over("rpm", key.rpm, retry_after)
        if key.max_concurrency:
            self.concurrent[key.id] = self.concurrent.get(key.id, 0) + 1

    async def done(self, key: KeyView, tokens: int) -> None:
        """Free the slot taken by :meth:`admit` and count the tokens."""
        if key.max_concurrency:
            left = self.concurrent.get(key.id, 0) - 1
            if left > 0:
                self.concurrent[key.id] = left
            else:
                self.concurrent.pop(key.id, None)
        if key.tpm and tokens:
            window, _ = _window(time.time())
            self.tokens[(key.id, window)] = self.tokens.get((key.id, window), 0) + tokens

    async def close(self) -> None:
        pass


class RedisLimits:
    """The same counters in Redis, shared by every gateway process using ``url``."""

    def __init__(self, url: str, namespace: str = "boom:gateway") -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.namespace = namespace
        self._warned_at = -1e9

    def _keys(self, key_id: int, window: int) -> tuple[str, str, str]:
        ns = self.namespace
        return f"{ns}:conc:{key_id}", f"{ns}:rpm:{key_id}:{window}", f"{ns}:tpm:{key_id}:{window}"

    async def admit(self, key: KeyView) -> None:
        window, retry_after = _window(time.time())
        conc_key, rpm_key, tpm_key = self._keys(key.id, window)
        pipe = self.redis.pipeline(transaction=False)
        if key.max_concurrency:
            pipe.incr(conc_key)
            pipe.expire(conc_key, CONCURRENCY_TTL_S)
        if key.rpm:
            pipe.incr(rpm_key)
            pipe.expire(rpm_key, WINDOW_S * 2)
        if key.tpm:
            pipe.get(tpm_key)
        try:
            results = await pipe.execute()
        except (RedisError, OSError) as exc:  # Redis away: serve without limits rather than refuse everything
            self._warn(exc)
            return
        concurrent = int(results.pop(0)) if key.max_concurrency else 0
        if key.max_concurrency:
            results.pop(0)
        requests = int(results.pop(0)) if key.rpm else 0
        if key.rpm:
            results.pop(0)
        tokens = int(results.pop(0) or 0) if key.tpm else 0
        problem = None
        if key.max_concurrency and concurrent > key.max_concurrency:
            problem = _over("max_concurrency", key.max_concurrency, 1)
        elif key.tpm and tokens >= key.tpm:
            problem = _over("tpm", key.tpm, retry_after)
        elif key.rpm and requests > key.rpm:
            problem = _over("rpm", key.rpm, retry_after)
        if problem is not None:
            if key.max_concurrency:
                try:
                    await self.redis.decr(conc_key)
                except (RedisError, OSError) as exc:
                    self._warn(exc)
            raise problem

    async def done(self, key: KeyView, tokens: int) -> None:
        if not (key.max_concurrency or (key.tpm and tokens)):
            return
        window, _ = _window(time.time())
        conc_key, _, tpm_key = self._keys(key.id, window)
        pipe = self.redis.pipeline(transaction=False)
        if key.max_concurrency:
            pipe.decr(conc_key)
        if key.tpm and tokens:
            pipe.incrby(tpm_key, tokens)
            pipe.expire(tpm_key, WINDOW_S * 2)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning("gateway: Redis does not answer (%s); limits are not enforced meanwhile", exc)

    async def close(self) -> None:
        await self.redis.aclose()
