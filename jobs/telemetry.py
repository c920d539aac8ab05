"""Job telemetry: scrape every serving instance's engine ``/metrics`` and turn two scrapes into rates.

The engine adapters do the reading (``engine.metrics_url``, ``engine.parse_metrics``,
:func:`jobs.engines.metrics.compute_rates`); this module only fetches, concurrently and with a short
timeout, remembers each instance's previous snapshot, and sums instances up into their job. A scrape
that fails is a sample too: ``up = 0`` (what alerting and the charts need to see).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import httpx

from jobs.engines.metrics import EngineRates, EngineSnapshot, compute_rates
from jobs.engines.registry import UnknownEngine, get_engine
from jobs.models import Instance
from jobs.runtime import reach_host

log = logging.getLogger(__name__)

SERVING_STATES = ("running", "unhealthy")


@dataclass(frozen=True)
class ScrapeTarget:
    """One instance to scrape. ``run`` changes with every process start: a new process, a new baseline."""

    instance_id: int
    job_id: int
    node_id: int | None
    run: int
    engine: str
    url: str


@dataclass
class ScrapeResult:
    target: ScrapeTarget
    up: bool
    rates: EngineRates | None
    time: float  # epoch seconds
    error: str = ""


def scrape_targets(job_ids=None) -> list[ScrapeTarget]:
    """The serving instances (heads of their replica) to scrape, optionally of some jobs only."""
    instances = (Instance.objects.filter(state__in=SERVING_STATES, member=0, node__isnull=False, port__isnull=False)
                 .select_related("node", "job").order_by("pk"))
    if job_ids is not None:
        instances = instances.filter(job_id__in=job_ids)
    targets = []
    for instance in instances:
        try:
            engine = get_engine(instance.job.engine)
        except UnknownEngine:
            continue
        targets.append(ScrapeTarget(instance.pk, instance.job_id, instance.node_id, instance.run, engine.name,
                                    engine.metrics_url(reach_host(instance.node), instance.port)))
    return targets


class EngineScraper:
    """Scrapes targets concurrently and keeps each one's previous snapshot for the rates."""

    def __init__(self, concurrency: int = 16, timeout: float = 2.0, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=concurrency))
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="scrape")
        self._previous: dict[tuple[int, int], EngineSnapshot] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def scrape(self, targets: list[ScrapeTarget]) -> list[ScrapeResult]:
        results = list(self._pool.map(self._one, targets))
        alive = {(t.instance_id, t.run) for t in targets}
        for key in list(self._previous):
            if key not in alive:
                del self._previous[key]  # a stopped or restarted instance: forget its old baseline
        return results

    def _one(self, target: ScrapeTarget) -> ScrapeResult:
        started = time.time()
        try:
            response = self._client.get(target.url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return ScrapeResult(target, False, None, started, f"{type(exc).__name__}: {exc}"[:300])
        now = time.time()
        snapshot = get_engine(target.engine).parse_metrics(response.text, now)
        key = (target.instance_id, target.run)
        rates = compute_rates(self._previous.get(key), snapshot)
        self._previous[key] = snapshot
        return ScrapeResult(target, True, rates, now)


_SUMMED = ("output_tokens_per_s", "prompt_tokens_per_s", "requests_per_s", "requests_running", "requests_waiting")
_WORST = ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
          "kv_cache_usage_percent")
ENGINE_SERIES = _SUMMED + _WORST


def instance_values(rates: EngineRates | None) -> dict[str, float | None]:
    """An instance's series values (the column names of jobs.models.EngineMetrics)."""
    if rates is None:
        return dict.fromkeys(ENGINE_SERIES)
    values = {f.name: getattr(rates, f.name) for f in fields(rates)}
    values["output_tokens_per_s"] = values.pop("generation_tokens_per_s")
    return {name: values.get(name) for name in ENGINE_SERIES}


def job_values(instance_rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    """A job's values from its instances': rates and queues summed, latencies and KV-cache usage of
    the worst instance (quantiles of different instances cannot be combined exactly)."""
    out: dict[str, float | None] = {}
    for name in _SUMMED:
        values = [row[name] for row in instance_rows if row.get(name) is not None]
        out[name] = sum(values) if values else None
    for name in _WORST:
        values = [row[name] for row in instance_rows if row.get(name) is not None]
        out[name] = max(values) if values else None
    return out
