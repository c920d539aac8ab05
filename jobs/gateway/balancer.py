"""Which ready instance gets a request: least outstanding requests, with passive ejection.

An instance that failed (connection refused or reset, 502/503 before any byte) is ejected for
:data:`EJECT_S` seconds: it is chosen again only when every other candidate is ejected or tried.
The reconciler's states reach the pools through the state cache; ejection covers the second
between a crash and the reconciler noticing it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from jobs.gateway.state import Upstream

EJECT_S = 5.0


class Balancer:
    def __init__(self, eject_s: float = EJECT_S, rng: random.Random | None = None) -> None:
        self.eject_s = eject_s
        self.outstanding: dict[str, int] = {}
        self.ejected_until: dict[str, float] = {}
        self._rng = rng or random.Random()

    def pick(self, pool: Iterable[Upstream], tried: set[str]) -> Upstream | None:
        """The untried upstream with the fewest outstanding requests (ties at random), preferring
        those not ejected; ``None`` when every one was tried."""
        now = time.monotonic()
        best: list[Upstream] = []
        best_rank: tuple[bool, int] | None = None
        for upstream in pool:
            url = upstream.base_url
            if url in tried:
                continue
            rank = (self.ejected_until.get(url, 0.0) > now, self.outstanding.get(url, 0))
            if best_rank is None or rank < best_rank:
                best, best_rank = [upstream], rank
            elif rank == best_rank:
                best.append(upstream)
        if not best:
            return None
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def acquire(self, upstream: Upstream) -> None:
        url = upstream.base_url
        self.outstanding[url] = self.outstanding.get(url, 0) + 1

    def release(self, upstream: Upstream) -> None:
        url = upstream.base_url
        left = self.outstanding.get(url, 0) - 1
        if left > 0:
            self.outstanding[url] = left
        else:
            self.outstanding.pop(url, None)

    def failed(self, upstream: Upstream) -> None:
        self.ejected_until[upstream.base_url] = time.monotonic() + self.eject_s

    def succeeded(self, upstream: Upstream) -> None:
        if self.ejected_until:
            self.ejected_until.pop(upstream.base_url, None)
