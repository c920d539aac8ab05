"""The gateway's parts on their own: balancing, the SSE usage filter, model resolution."""

from __future__ import annotations

import json
import random

from jobs.gateway.balancer import Balancer
from jobs.gateway.proxy import SseUsage
from jobs.gateway.state import JobView, RouteView, Snapshot, Upstream


def up(n: int, job: int = 1) -> Upstream:
    return Upstream(n, job, f"http://127.0.0.1:{9000 + n}/v1", f"job{job}")


def test_the_balancer_picks_the_instance_with_the_fewest_outstanding_requests():
    balancer = Balancer()
    a, b = up(1), up(2)
    balancer.acquire(a)
    assert balancer.pick([a, b], set()) is b
    balancer.acquire(b)
    balancer.acquire(b)
    assert balancer.pick([a, b], set()) is a
    balancer.release(b)
    balancer.release(b)
    balancer.release(a)
    assert balancer.outstanding == {}


def test_an_ejected_instance_is_chosen_only_when_no_other_remains_and_a_tried_one_never():
    balancer = Balancer(eject_s=60)
    a, b = up(1), up(2)
    balancer.failed(a)
    assert {balancer.pick([a, b], set()) for _ in range(20)} == {b}
    assert balancer.pick([a, b], {b.base_url}) is a
    assert balancer.pick([a, b], {a.base_url, b.base_url}) is None
    balancer.succeeded(a)
    assert {balancer.pick([a, b], set()) for _ in range(50)} == {a, b}


def sse(payload) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def test_the_sse_filter_passes_events_as_soon_as_they_are_complete_and_strips_the_usage_chunk():
    events = SseUsage(strip=True)
    first = sse({"choices": [{"delta": {"content": "Hi"}}], "usage": None})
    usage = sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    assert events.feed(first[:10]) == b""
    assert events.feed(first[10:]) == first
    assert events.feed(usage + b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert events.usage == {"prompt_tokens": 5, "completion_tokens": 2}
    kept = SseUsage(strip=False)
    assert kept.feed(usage) == usage and kept.usage["completion_tokens"] == 2


def test_a_route_picks_targets_by_weight_among_those_ready_then_the_fallback():
    blue = JobView(1, "blue", "blue", (up(1, 1),))
    green = JobView(2, "green", "green", (up(2, 2),))
    down = JobView(3, "down", "down", ())
    spare = JobView(4, "spare", "spare", (up(4, 4),))
    snapshot = Snapshot(routes={"r": RouteView(9, "r", ((blue, 9), (green, 1), (down, 100)), spare)}, loaded_at=1)
    rng = random.Random(7)
    firsts = [snapshot.resolve("r", rng).pools[0][0].job_id for _ in range(1000)]
    assert 850 < firsts.count(1) < 950 and firsts.count(3) == 0
    assert snapshot.resolve("r", rng).pools[-1] == spare.upstreams
    assert snapshot.resolve("nothing") is None
