"""The collector: a long-running process (``manage.py collect``) that gathers all telemetry.

Long-lived streams do not belong in Celery tasks (DESIGN.md), so the collector owns them:

* one :class:`nodes.telemetry.NodeSource` thread per node, holding its sampling session open;
* one scraper thread that scrapes every serving instance's engine ``/metrics`` each
  ``CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S`` (:mod:`jobs.telemetry`);
* the main loop, which every ``CONSOLE_TELEMETRY_FLUSH_MS`` drains what the threads read, writes it in
  one transaction (``bulk_create`` per table) and publishes the stream entries of the topics that
  changed (:mod:`console.core.broadcast`), and every few seconds reconciles the sources with the nodes table.

Throttled at the source: a topic gets at most one stream entry per ~second, carrying every point
gathered since its previous entry (so nothing is lost, only batched). Several collectors split the
work with ``--shard i --shards n``: nodes by ``id % n``, jobs by ``id % n``.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Count

from console import streams
from console.core import broadcast, bulk
from console.telemetry.series import HEALTH_CODES
from jobs.models import InstanceSample, Job, JobSample
from jobs.telemetry import ENGINE_SERIES, EngineScraper, instance_values, job_values, scrape_targets
from nodes.models import Accelerator, AcceleratorSample, Node, NodeSample
from nodes.probes.parsers.sampler import accelerator_key
from nodes.telemetry import SourceSpec, make_source
from nodes.transports import transport_for

log = logging.getLogger(__name__)

# Hot path: everything below runs for every sample of every node. Keep per-item work small; do
# per-flush work (queries, publishing) once per flush, not per sample.
# At most one entry per topic this often (compared between flush start times). Node and job topics
# get a little less than the consumers' 1 s on purpose: their samples come every interval at a fixed
# phase, but flushes come every CONSOLE_TELEMETRY_FLUSH_MS at a phase that drifts with each flush's
# duration, and a threshold of exactly 1 s would often hold a sample back a flush. ``cluster`` is
# not tied to any one node's phase: exactly 1 s, so that consumers (which enforce 1 s) never hold
# one of its entries back and the next one never has to be merged into it.
SOURCE_TOPIC_INTERVAL_S = 0.9
CLUSTER_TOPIC_INTERVAL_S = 1.0
SUPERVISE_EVERY_S = 5.0
# A node's samples are published on ``node:<id>`` only while someone watches that topic (a node page, a
# script: console.streams.watch); the watched set is read this often. Until then its last payloads are
# kept (about this many seconds' worth), so that a page that subscribes gets the points since it rendered.
WATCH_CHECK_S = 1.0
UNWATCHED_KEEP = 10
MAX_RETRY_ROWS = 200_000  # rows kept for the next flush while the database is unavailable

NODE_FIELDS = ("cpu_percent", "memory_used_bytes", "memory_percent", "load1", "disk_used_percent",
               "network_rx_bytes_per_s", "network_tx_bytes_per_s")
ACCELERATOR_FIELDS = ("utilization_percent", "memory_used_bytes", "memory_percent", "temperature_c", "power_w",
                      "health")


INSTANCE_FIELDS = (*ENGINE_SERIES, "up")
JOB_FIELDS = (*ENGINE_SERIES, "instances_up")
# The columns each sample table is written with (console.core.bulk.insert_rows: COPY on PostgreSQL):
# rows are plain tuples or lists in this order, never model instances (at 1000 nodes, building those and
# their INSERT cost the collector more CPU than the database spent writing them). A node's and an
# accelerator's rows are in the order of their stream frames' rows (``[t, *labels, *values]``, see
# NODE_FRAMES), so that one list serves both.
COLUMNS = {
    NodeSample: ("ts", "node_id", *NODE_FIELDS),
    AcceleratorSample: ("ts", "node_id", "accelerator_id", *ACCELERATOR_FIELDS),
    InstanceSample: ("instance_id", "job_id", "node_id", "ts", *INSTANCE_FIELDS),
    JobSample: ("job_id", "ts", *JOB_FIELDS),
}


# The frames of a node topic (see _frame): its own series, and its accelerators'.
NODE_FRAMES = {"node": {"scope": "node", "labels": ["node"], "fields": list(NODE_FIELDS)},
               "accelerator": {"scope": "accelerator", "labels": ["node", "accelerator"],
                               "fields": list(ACCELERATOR_FIELDS)}}


def _frame(scope: str, labels: tuple[str, ...], fields: tuple[str, ...], row: list) -> dict:
    """One sample as a stream payload in the compact form (console.core.broadcast): ``row`` is
    ``[t, *label values, *field values]``, ``t`` in integer milliseconds. Repeating series names and labels
    per point would make a node's entry about seven times larger (1 MB/s of JSON at 200 nodes); a time
    in float seconds (1796477828.865) took JSON's encoder twice as long as the integer (profiled at 1000
    nodes: 47 ms against 25 ms of a flush's 1000 entries)."""
    return {"frames": [{"scope": scope, "labels": list(labels), "fields": list(fields), "rows": [row]}]}


@dataclass
class CollectorStats:
    """Counters for the log line and the benchmark."""

    flushes: int = 0
    rows_written: int = 0
    entries_published: int = 0
    last_flush_ms: float = 0.0
    write_errors: int = 0
    unknown_accelerators: int = 0
    sources: dict[str, int] = field(default_factory=dict)


class Collector:
    """See the module docstring. ``run(stop)`` blocks until ``stop`` is set."""

    def __init__(self, *, shard: int = 0, shards: int = 1, simulate: bool = False, flush_ms: int | None = None,
                 scrape_interval_s: float | None = None) -> None:
        if shards < 1 or not 0 <= shard < shards:
            raise ValueError("shard must be in 0..shards-1")
        self.shard, self.shards, self.simulate = shard, shards, simulate
        self.flush_s = (flush_ms or settings.CONSOLE_TELEMETRY_FLUSH_MS) / 1000
        self.scrape_interval_s = scrape_interval_s or settings.CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.sources: dict[int, object] = {}
        self.accelerators: dict[int, dict[str, int]] = {}  # node id -> accelerator key -> id
        self.stats = CollectorStats()
        self._pending: dict[str, list[dict]] = defaultdict(list)  # topic -> payloads not yet published
        self._published_at: dict[str, float] = {}
        self._watched: set[str] = set()
        self._watch_checked = float("-inf")
        self._retry: list[tuple[type, list]] = []
        self._stop = threading.Event()

    # -- threads feed this (thread-safe: SimpleQueue)

    def emit(self, node_id: int, kind: str, reading, t: float) -> None:
        self.queue.put((kind, node_id, reading, t))

    # -- the main loop

    def run(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or self._stop
        scraper = threading.Thread(target=self._scrape_loop, name="telemetry-scraper", daemon=True)
        next_supervise = 0.0
        started_scraper = False
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                if began >= next_supervise:
                    self._guarded(self.supervise)
                    next_supervise = began + SUPERVISE_EVERY_S
                    if not started_scraper:
                        scraper.start()
                        started_scraper = True
                self._guarded(self.flush)
                self._stop.wait(max(0.0, self.flush_s - (time.monotonic() - began)))
            self._guarded(self.flush)
        finally:
            for source in self.sources.values():
                source.stop()
            for source in self.sources.values():
                source.join(timeout=5)

    def stop(self) -> None:
        self._stop.set()

    def _guarded(self, step) -> None:
        try:
            step()
        except DatabaseError:
            self.stats.write_errors += 1
            log.warning("collector: database error in %s; retrying at the next turn", step.__name__,
                        exc_info=True)
            connection.close()
        except Exception:  # the collector must outlive any one bug in its steps
            log.exception("collector: %s failed", step.__name__)

    # -- sources

    def supervise(self) -> None:
        """Start, restart or stop node sources to match the nodes table; reload accelerator keys."""
        close_old_connections()
        nodes = [n for n in Node.objects.select_related("credential").order_by("pk")
                 if n.pk % self.shards == self.shard]
        counts = dict(Accelerator.objects.filter(node__in=nodes, present=True).values_list("node")
                      .annotate(n=Count("id")))
        keys: dict[int, dict[str, int]] = defaultdict(dict)
        for node_id, key, pk in Accelerator.objects.filter(node__in=nodes).values_list("node_id", "uuid", "pk"):
            keys[node_id][key] = pk
        self.accelerators = dict(keys)
        wanted: dict[int, SourceSpec] = {}
        for node in nodes:
            interval = float(node.telemetry_interval_s)
            transport = transport_for(node)
            if transport.is_local:
                wanted[node.pk] = SourceSpec(node.pk, "local", interval)
            elif self.simulate:
                wanted[node.pk] = SourceSpec(node.pk, "simulated", interval, accelerators=counts.get(node.pk, 0))
            elif (identity := transport.session_identity(node)) is not None:
                wanted[node.pk] = SourceSpec(node.pk, transport.kind, interval, transport=transport,
                                             identity=identity)
        for node_id in list(self.sources):
            source = self.sources[node_id]
            if wanted.get(node_id) != source.spec or not source.is_alive():
                source.stop()
                del self.sources[node_id]
        for node_id, spec in wanted.items():
            if node_id in self.sources:
                continue
            source = make_source(spec, self.emit)
            source.start()
            self.sources[node_id] = source
        by_kind: dict[str, int] = defaultdict(int)
        for source in self.sources.values():
            by_kind[source.spec.kind] += 1
        self.stats.sources = dict(by_kind)

    def _scrape_loop(self) -> None:
        scraper = EngineScraper()
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    targets = [t for t in scrape_targets() if t.job_id % self.shards == self.shard]
                    self.queue.put(("scrape", 0, scraper.scrape(targets), time.time()))
                except DatabaseError:
                    connection.close()
                except Exception:
                    log.exception("collector: scraping failed")
                finally:
                    close_old_connections()
                next_at += self.scrape_interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            scraper.close()
            connection.close()

    # -- flushing

    def flush(self) -> None:
        """Write what the threads gathered and publish what is due. One transaction per flush."""
        began = time.monotonic()
        rows: dict[type, list] = defaultdict(list)
        updates: dict[str, list[dict]] = defaultdict(list)
        cluster_cells: dict[str, list] = {}
        cluster_frames: list[dict] = []
        # A node's points of this flush, by node id and scope: one frame per scope, not one per sample to merge.
        node_points: dict[int, dict[str, list]] = defaultdict(dict)
        # The loop runs for every sample (9000 a second at 1000 nodes): locals, not attribute look-ups.
        node_rows, accelerator_rows = rows[NodeSample], rows[AcceleratorSample]
        inventory, get = self.accelerators, self.queue.get_nowait
        no_accelerators: dict[str, int] = {}
        while True:
            try:
                kind, node_id, item, t = get()
            except queue.Empty:
                break
            ts = int(t * 1000)  # also the frames' time: integer milliseconds (see _frame)
            if kind == "node":
                row = [ts, node_id, *[getattr(item, name) for name in NODE_FIELDS]]
                node_rows.append(row)  # the same list is the table's row and the frame's (COLUMNS)
                node_points[node_id].setdefault("node", []).append(row)
            elif kind == "accelerator":
                accelerator_id = inventory.get(node_id, no_accelerators).get(item.uuid or accelerator_key(item))
                if accelerator_id is None:
                    self.stats.unknown_accelerators += 1  # not inventoried yet: the next probe adds it
                    continue
                health = HEALTH_CODES.get(item.health)
                row = [  # ts, the labels (NODE_FRAMES), ACCELERATOR_FIELDS
                    ts, node_id, accelerator_id,
                    item.utilization_percent, item.memory_used_bytes,
                    (round(100.0 * item.memory_used_bytes / item.memory_total_bytes, 2)
                     if item.memory_used_bytes is not None and item.memory_total_bytes else None),
                    item.temperature_c, item.power_w, health,
                ]
                accelerator_rows.append(row)
                node_points[node_id].setdefault("accelerator", []).append(row)
                cluster_cells[str(accelerator_id)] = [node_id, item.utilization_percent, health, ts]  # t in ms
            elif kind == "scrape":
                by_job: dict[int, list[dict]] = defaultdict(list)
                up: dict[int, int] = defaultdict(int)
                for result in item:
                    target = result.target
                    values = instance_values(result.rates)
                    ts_i = int(result.time * 1000)
                    rows[InstanceSample].append((target.instance_id, target.job_id, target.node_id, ts_i,
                                                 *(values[n] for n in ENGINE_SERIES), 1.0 if result.up else 0.0))
                    updates[f"job:{target.job_id}"].append(_frame(
                        "instance", ("job", "instance"), INSTANCE_FIELDS,
                        [ts_i, target.job_id, target.instance_id, *values.values(),
                         1.0 if result.up else 0.0]))
                    by_job[target.job_id].append(values if result.up else {})
                    up[target.job_id] += 1 if result.up else 0
                for job_id, instance_rows in by_job.items():
                    values = job_values([r for r in instance_rows if r])
                    rows[JobSample].append((job_id, ts, *(values[n] for n in ENGINE_SERIES), float(up[job_id])))
                    updates[f"job:{job_id}"].append(_frame("job", ("job",), JOB_FIELDS,
                                                           [ts, job_id, *values.values(), float(up[job_id])]))
                    if values["output_tokens_per_s"] is not None:
                        cluster_frames.append(_frame("job", ("job",), ("output_tokens_per_s",),
                                                     [ts, job_id, values["output_tokens_per_s"]]))
        for node_id, by_scope in node_points.items():
            updates[f"node:{node_id}"].append({"frames": [{**NODE_FRAMES[scope], "rows": points}
                                              for scope, points in by_scope.items()]})
        if cluster_cells:
            updates["cluster"].append({"state": {"accelerators": cluster_cells}})
        updates["cluster"].extend(cluster_frames)
        for topic, payloads in updates.items():
            self._pending[topic].extend(payloads)
        due = self._due_topics(began)
        rows = {model: objs for model, objs in rows.items() if objs}
        if not rows and not due and not self._retry:
            return
        batches = list(self._retry) + [(model, objs) for model, objs in rows.items()]
        # A topic's one payload of this flush is its entry as it is (the usual case: every topic once a second).
        entries = [(topic, payloads[0] if len(payloads := self._pending[topic]) == 1
                    else broadcast.merge_payloads(payloads)) for topic in due]
        if "cluster" in due:
            entries[due.index("cluster")][1].setdefault("state", {})["totals"] = cluster_totals()
        try:
            with transaction.atomic():
                written = 0
                for model, objs in batches:
                    written += bulk.insert_rows(model, COLUMNS[model], objs)
                if entries:
                    broadcast.publish_many(entries)
        except DatabaseError:
            kept = sum(len(objs) for _, objs in batches)
            self._retry = batches if kept <= MAX_RETRY_ROWS else []
            raise
        self._retry = []
        for topic in due:
            self._published_at[topic] = began  # the same instant _due_topics compared with
            del self._pending[topic]
        self.stats.flushes += 1
        self.stats.rows_written += written
        self.stats.entries_published += len(entries)
        self.stats.last_flush_ms = (time.monotonic() - began) * 1000

    def _watched_topics(self, now: float) -> set[str] | None:
        """The node topics someone watches (read at most every WATCH_CHECK_S); None: publish them all."""
        if not settings.CONSOLE_STREAM_WATCHED_ONLY:
            return None
        if now - self._watch_checked >= WATCH_CHECK_S:
            self._watched = streams.watched_topics("node:")
            self._watch_checked = now
        return self._watched

    def _due_topics(self, now: float) -> list[str]:
        due = []
        watched = self._watched_topics(now)
        for topic, payloads in self._pending.items():
            if watched is not None and topic.startswith("node:") and topic not in watched:
                if len(payloads) > UNWATCHED_KEEP:
                    del payloads[:-UNWATCHED_KEEP]
                continue
            interval = CLUSTER_TOPIC_INTERVAL_S if topic == "cluster" else SOURCE_TOPIC_INTERVAL_S
            # 5 ms of slack: flush start times on a regular grid are not exact to the microsecond.
            if payloads and now - self._published_at.get(topic, -interval) >= interval - 0.005:
                due.append(topic)
        return due


def tune_gc() -> None:
    """For the collector's process, once it is set up: the objects alive now (Django, the modules, the
    inventory) move out of the cyclic collector's sight, and young collections run less often. A flush
    allocates tens of thousands of short-lived tuples and lists (freed by reference counting), and every
    collection used to scan the whole heap again: at 1000 nodes, half the collector's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def cluster_totals() -> dict:
    """Counts for the overview's tiles: nodes by status, accelerators by health, jobs by state."""
    return {
        "nodes": dict(Node.objects.values_list("status").annotate(n=Count("id")).order_by()),
        "accelerators": dict(Accelerator.objects.filter(present=True).values_list("health")
                             .annotate(n=Count("id")).order_by()),
        "jobs": dict(Job.objects.values_list("state").annotate(n=Count("id")).order_by()),
    }
