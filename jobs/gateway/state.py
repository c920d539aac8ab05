"""What the gateway knows of the console's database: a snapshot of keys, routes, jobs, ready
instances and aliases, reloaded in a worker thread when something changed.

A cheap fingerprint (row counts and the latest ``updated_at`` of each table the snapshot reads) is
checked every :data:`CHECK_INTERVAL_S`; only a changed fingerprint reloads the snapshot. Revoking a
key, an instance leaving ``running`` or a promoted alias are therefore seen within about a second.
The request path only reads :attr:`StateCache.snapshot`, an immutable object replaced as a whole.

Model names resolve, in order, to a route, a job's served model name, then ``<model>@<alias>``
(the jobs whose version carries the alias).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.db import close_old_connections, connection, connections

log = logging.getLogger("jobs.gateway")

CHECK_INTERVAL_S = 0.5
# After a miss (an unknown key), the earliest next check: bounds the queries unknown keys can cause.
MISS_CHECK_S = 0.2
_RNG = random.Random()
# A node in these states does not get requests even if its instances still say "running".
UNUSABLE_NODE_STATES = ("unreachable",)


@dataclass(frozen=True)
class Upstream:
    """One ready head instance: where to send a request and the model name it serves."""

    instance_id: int
    job_id: int
    base_url: str  # http://host:port/v1
    served_name: str


@dataclass(frozen=True)
class JobView:
    id: int
    name: str
    served_name: str
    upstreams: tuple[Upstream, ...] = ()


@dataclass(frozen=True)
class RouteView:
    id: int
    name: str
    targets: tuple[tuple[JobView, int], ...]
    fallback: JobView | None


@dataclass(frozen=True)
class KeyView:
    id: int
    prefix: str
    models: frozenset[str]
    expires_at: datetime | None
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None
    revoked: bool

    def may_use(self, model: str) -> bool:
        return not self.models or model in self.models

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_concurrency)


@dataclass(frozen=True)
class Resolution:
    """Where a model name leads: pools of upstreams to try in order (the first that has one wins)."""

    name: str
    route_id: int | None
    pools: tuple[tuple[Upstream, ...], ...]


@dataclass
class Snapshot:
    keys: dict[str, KeyView] = field(default_factory=dict)  # by digest
    routes: dict[str, RouteView] = field(default_factory=dict)
    jobs: dict[str, JobView] = field(default_factory=dict)  # by served name
    aliases: dict[str, tuple[JobView, ...]] = field(default_factory=dict)  # "model@alias" -> jobs
    loaded_at: float = 0.0  # time.monotonic(); 0: never loaded

    def model_names(self) -> list[str]:
        return sorted({*self.routes, *self.jobs, *self.aliases})

    def resolve(self, name: str, rng: random.Random | None = None) -> Resolution | None:
        route = self.routes.get(name)
        if route is not None:
            return Resolution(name, route.id, _route_pools(route, rng or _RNG))
        job = self.jobs.get(name)
        if job is not None:
            return Resolution(name, None, (job.upstreams,))
        jobs = self.aliases.get(name)
        if jobs is not None:
            return Resolution(name, None, (tuple(up for job in jobs for up in job.upstreams),))
        return None


def _route_pools(route: RouteView, rng: random.Random) -> tuple[tuple[Upstream, ...], ...]:
    """The target picked by weight among those with a ready instance, then the other ready targets
    (retries), then the fallback job."""
    ready = [(job, weight) for job, weight in route.targets if job.upstreams and weight > 0]
    pools: list[tuple[Upstream, ...]] = []
    if ready:
        total = sum(weight for _, weight in ready)
        point = rng.uniform(0, total)
        chosen = ready[-1][0]
        for job, weight in ready:
            point -= weight
            if point <= 0:
                chosen = job
                break
        pools.append(chosen.upstreams)
        pools.extend(job.upstreams for job, _ in ready if job is not chosen)
    if route.fallback is not None:
        pools.append(route.fallback.upstreams)
    return tuple(pools)


# -- loading (worker thread) ------------------------------------------------------------------------

# (app, model, an aggregate that changes when a row the snapshot reads changes)
FINGERPRINT_TABLES = (
    ("jobs", "ApiKey", "MAX(updated_at)"),
    ("jobs", "Route", "MAX(updated_at)"),
    ("jobs", "RouteTarget", "SUM(weight * 1000003 + job_id)"),  # no updated_at: weights and jobs summed
    ("jobs", "Job", "MAX(updated_at)"),
    ("jobs", "Instance", "MAX(updated_at)"),
    ("models_registry", "Alias", "MAX(updated_at)"),
    ("nodes", "Node", "MAX(status_changed_at)"),
)


def fingerprint() -> tuple:
    """Counts and latest change time of every table the snapshot reads, in one query."""
    parts = []
    for app_label, model_name, aggregate in FINGERPRINT_TABLES:
        table = connection.ops.quote_name(apps.get_model(app_label, model_name)._meta.db_table)
        parts.append(f"SELECT COUNT(*), CAST({aggregate} AS TEXT) FROM {table}")
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        return tuple(cursor.fetchall())


def load_snapshot() -> Snapshot:
    """Read everything the request path needs (runs in a worker thread)."""
    api_key = apps.get_model("jobs", "ApiKey")
    route_model = apps.get_model("jobs", "Route")
    job_model = apps.get_model("jobs", "Job")
    instance_model = apps.get_model("jobs", "Instance")
    alias_model = apps.get_model("models_registry", "Alias")

    keys = {
        row.digest: KeyView(row.id, row.prefix, frozenset(row.models or ()), row.expires_at, row.rpm, row.tpm,
                            row.max_concurrency, row.revoked)
        for row in api_key.objects.only(
            "id", "prefix", "digest", "models", "expires_at", "rpm", "tpm", "max_concurrency", "revoked")
    }
    upstreams: dict[int, list[Upstream]] = {}
    ready = (instance_model.objects.filter(state="running", member=0, port__isnull=False, node__isnull=False)
             .exclude(node__status__in=UNUSABLE_NODE_STATES).select_related("node", "job").order_by("id"))
    for instance in ready:
        try:
            base_url = instance.endpoint
        except Exception as exc:  # an unknown transport: the instance cannot be reached from here
            log.warning("instance %s has no endpoint: %s", instance.pk, exc)
            continue
        if base_url:
            upstreams.setdefault(instance.job_id, []).append(
                Upstream(instance.pk, instance.job_id, base_url, _served_name(instance.job)))
    jobs_by_id: dict[int, JobView] = {}
    jobs_by_version: dict[int, list[JobView]] = {}
    for job in job_model.objects.only("id", "name", "options", "model_version_id").order_by("id"):
        view = JobView(job.id, job.name, _served_name(job), tuple(upstreams.get(job.id, ())))
        jobs_by_id[job.id] = view
        jobs_by_version.setdefault(job.model_version_id, []).append(view)
    jobs = {}
    for view in jobs_by_id.values():
        jobs.setdefault(view.served_name, view)  # two jobs serving one name: the older wins
    aliases = {}
    for alias in alias_model.objects.select_related("model").only("name", "version_id", "model__name"):
        versions_jobs = jobs_by_version.get(alias.version_id)
        if versions_jobs:
            aliases[f"{alias.model.name}@{alias.name}"] = tuple(versions_jobs)
    routes = {}
    for route in route_model.objects.prefetch_related("targets"):
        targets = tuple((jobs_by_id[t.job_id], t.weight) for t in route.targets.all() if t.job_id in jobs_by_id)
        routes[route.name] = RouteView(route.id, route.name, targets, jobs_by_id.get(route.fallback_id))
    return Snapshot(keys=keys, routes=routes, jobs=jobs, aliases=aliases, loaded_at=time.monotonic())


def _served_name(job) -> str:
    return (job.options or {}).get("served_name") or job.name


# -- the cache (event loop) -------------------------------------------------------------------------


class DatabaseThread:
    """One worker thread for every database access of a gateway process (Django's connections are
    per thread: one thread means one connection, closed by :meth:`close`)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db")

    async def run(self, fn, *args):
        def call():
            close_old_connections()
            try:
                return fn(*args)
            except Exception:
                connections.close_all()  # a broken connection is not reused
                raise

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
        self._executor.shutdown(wait=True)


class StateCache:
    """Holds the current :class:`Snapshot` and keeps it fresh from a background task."""

    def __init__(self, db: DatabaseThread, interval_s: float = CHECK_INTERVAL_S) -> None:
        self.db = db
        self.interval_s = interval_s
        self.snapshot = Snapshot()
        self._fingerprint: tuple | None = None
        self._task: asyncio.Task | None = None
        self._checked_at = 0.0  # monotonic time of the last fingerprint check
        self._miss_lock = asyncio.Lock()

    async def refresh(self) -> bool:
        """Reload when the fingerprint changed; True when it did."""
        self._checked_at = time.monotonic()
        current = await self.db.run(fingerprint)
        if current == self._fingerprint and self.snapshot.loaded_at:
            return False
        self.snapshot = await self.db.run(load_snapshot)
        self._fingerprint = current
        return True

    async def refresh_on_miss(self, since: float, min_interval_s: float = MISS_CHECK_S) -> None:
        """Something the snapshot does not know yet (a key created a moment ago): make sure a check for
        changes started after ``since`` (the request's arrival, monotonic) before answering. Misses
        wait for one another and share a check, and checks are at least ``min_interval_s`` apart:
        unknown keys sent in a loop cost one small query per interval, not one per request."""
        async with self._miss_lock:
            if self._checked_at >= since:
                return
            wait = self._checked_at + min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.refresh()

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("gateway: the first snapshot could not be loaded; retrying in the background")
        self._task = asyncio.create_task(self._follow(), name="gateway-state")

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("gateway: reloading the snapshot failed; serving the previous one")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

