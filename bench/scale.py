"""Benchmark: 1000 nodes on one console, on PostgreSQL (issue 12, item 6).

* **Telemetry ingest.** 1000 nodes x (1 node row + 8 accelerator rows) a second. (a) The collector's
  write path at full speed, in this process: every node's sampler lines (``simulated_ticks``, parsed
  by the real parser) for one second go into the collector's queue, every topic is due, and
  ``Collector.flush`` drains, writes and publishes them; repeated for ``INGEST_SECONDS`` seconds of
  samples. Its rows per second of flushing are compared with a raw batched insert of the same rows
  measured in the same run (psycopg ``COPY`` into the same tables, one transaction per second of
  rows), and with ``bulk_create`` of model instances (how the collector wrote before). (b) The real
  collector process (``manage.py collect --simulate``) at 1000 nodes sampled every second: rows
  written per second against the rows offered, and its CPU.
* **Probes.** 1000 node rows, spread over ``SSHD`` real sshd servers on loopback (fake nvidia-smi
  and npu-smi printing real captures: 16 accelerators a node), a pool of 50 threads, connections
  reused: one claimed round (``claim_due_nodes`` + ``probe_round``, what beat's periodic probe
  runs) of all 1000, and the console's CPU per probe (``getrusage`` of this process: the nodes'
  sshd and tools are other processes). The same run measures the parts of one probe: the SSH
  command alone, the parse, and storing the result.

Run: ``.venv/bin/python bench/scale.py`` (a PostgreSQL at ``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/boom_bench_scale``, dropped and created; sshd installed).
``--quick``: 200 nodes, no report.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, setup_django, write_section  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/boom_bench_scale")
INGEST_SECONDS = 16
WATCHED = 20  # node pages open during the ingest measurement (each a live topic the collector publishes)
LIVE_WARMUP_S, LIVE_MEASURE_S = 10, 20
SSHD = 20
PROBE_CONCURRENCY = 50
BATCH = 20  # probes stored together, for the per-part figure (a round stores what came in within 0.25 s)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fresh_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def make_cluster(n: int) -> list:
    from nodes.models import Accelerator, Node

    nodes = Node.objects.bulk_create([Node(name=f"sim-{i:04d}", address=f"10.2.{i // 250}.{i % 250 + 1}",
                                           transport="ssh", status="online", telemetry_interval_s=1,
                                           accelerator_count=8) for i in range(n)])
    Accelerator.objects.bulk_create([Accelerator(node=node, index=j, vendor="nvidia", kind="gpu", model="H100",
                                                 uuid=f"SIM-{node.pk}-{j}", memory_total_bytes=80 << 30)
                                     for node in nodes for j in range(8)])
    return nodes


def clear_samples() -> None:
    from django.db import connection

    from console.core.models import StreamEntry
    from nodes.models import AcceleratorSample, NodeSample

    tables = ", ".join(m._meta.db_table for m in (NodeSample, AcceleratorSample, StreamEntry))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")


# --- telemetry ---------------------------------------------------------------------------------


def readings_per_second(nodes, seconds: int) -> list[list[tuple]]:
    """What every node's sampling session hands the collector, one list per second of samples."""
    from nodes.probes.parsers.sampler import SamplerParser
    from nodes.telemetry import simulated_ticks

    out = [[] for _ in range(seconds)]
    for node in nodes:
        parser, ticks = SamplerParser(), simulated_ticks(node.pk, 8, 1.0)
        for line in next(ticks):
            parser.feed(line, 0.0)
        for second in range(-1, seconds):  # the first tick only primes the CPU and network rates
            for line in next(ticks):
                for kind, reading in parser.feed(line, 1000.0 + second):
                    if second >= 0:
                        out[second].append((kind, node.pk, reading))
    return out


def ingest(nodes, seconds: list[list[tuple]], per_second) -> dict:
    """Each second of samples, in turn (the order rotating): the collector's flush, a raw COPY of the same
    sample rows, a raw COPY of the same rows and of the stream entries that flush published, and
    bulk_create of model instances. Interleaved, so that the machine's other work weighs on all alike."""
    from console import streams
    from console.core import broadcast
    from console.telemetry.collector import Collector, tune_gc
    from nodes.models import Accelerator

    tune_gc()  # as manage.py collect does
    # WATCHED node pages are open (their topics watched, console.streams.watch): the collector publishes
    # those nodes' samples; the others' are written and not published (CONSOLE_STREAM_WATCHED_ONLY).
    streams.watch([f"node:{node_id}" for node_id in sorted({n for second in seconds for _k, n, _r in second})
                   [:WATCHED]])
    collector = Collector(flush_ms=100)
    keys: dict[int, dict[str, int]] = {}
    for node_id, uuid, pk in Accelerator.objects.values_list("node_id", "uuid", "pk"):
        keys.setdefault(node_id, {})[uuid] = pk
    collector.accelerators = keys
    wall = {"collector": 0.0, "copy": 0.0, "copy_entries": 0.0, "bulk_create": 0.0}
    cpu = 0.0
    now = time.time()
    published: list[list[tuple[str, dict]]] = []  # what each flush published, for the second baseline
    real_publish = broadcast.publish_many

    def publish_many(entries):
        entries = list(entries)
        published.append(entries)
        return real_publish(entries)

    def flush(second: int) -> float:
        nonlocal cpu
        for kind, node_id, reading in seconds[second]:
            collector.emit(node_id, kind, reading, now + second)
        collector._published_at.clear()  # a second went by: every topic is due, as in the live collector
        started, cpu0 = time.perf_counter(), time.process_time()
        broadcast.publish_many = publish_many
        try:
            collector.flush()
        finally:
            broadcast.publish_many = real_publish
        cpu += time.process_time() - cpu0
        return time.perf_counter() - started

    steps = {"collector": flush,
             "copy": lambda second: copy_second(*per_second[second]),
             "copy_entries": lambda second: copy_second(*per_second[second], published[second]),
             "bulk_create": lambda second: bulk_create_second(*per_second[second])}
    order = list(steps)
    for second in range(len(seconds)):
        turn = order[second % len(order):] + order[:second % len(order)]
        if turn.index("copy_entries") < turn.index("collector"):  # it copies what the flush published
            turn.remove("copy_entries")
            turn.insert(turn.index("collector") + 1, "copy_entries")
        for name in turn:
            wall[name] += steps[name](second)
    rows = collector.stats.rows_written
    entry_rows = sum(len(p) for p in published)
    return {"rows": rows, "rate": rows / wall["collector"], "cpu_per_row_us": cpu / rows * 1e6,
            "entries": entry_rows, "flush_ms": wall["collector"] / len(seconds) * 1000,
            "copy": rows / wall["copy"], "copy_entries": rows / wall["copy_entries"],
            "bulk_create": rows / wall["bulk_create"]}


def sample_rows(seconds: list[list[tuple]]) -> list[tuple[list, list]]:
    """The same samples as plain tuples (node rows, accelerator rows) per second, for the baselines."""
    from console.telemetry.collector import NODE_FIELDS
    from nodes.models import Accelerator

    keys = {(n, u): pk for n, u, pk in Accelerator.objects.values_list("node_id", "uuid", "pk")}
    ts = int(time.time() * 1000)
    out = []
    for second, items in enumerate(seconds):
        node_rows, acc_rows = [], []
        for kind, node_id, r in items:
            if kind == "node":
                node_rows.append((ts + second * 1000, node_id, *(getattr(r, f) for f in NODE_FIELDS)))
            else:  # in the order of COLUMNS
                acc_rows.append((ts + second * 1000, node_id, keys[(node_id, r.uuid)], r.utilization_percent,
                                 r.memory_used_bytes, 50.0, r.temperature_c, r.power_w, 0))
        out.append((node_rows, acc_rows))
    return out


def copy_second(node_rows, acc_rows, published=None) -> float:
    """Seconds that psycopg COPY of one second's sample rows takes in one transaction; with ``published``,
    that second's stream entries are copied too (their JSON text made in the timing)."""
    import json

    from django.db import connection, transaction
    from django.utils import timezone

    from console.core.models import StreamEntry
    from console.telemetry.collector import COLUMNS
    from nodes.models import AcceleratorSample, NodeSample

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        for model, rows in ((NodeSample, node_rows), (AcceleratorSample, acc_rows)):
            columns = ", ".join(model._meta.get_field(c).column for c in COLUMNS[model])
            with raw.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        if published is not None:
            now = timezone.now()
            with raw.copy(f'COPY {StreamEntry._meta.db_table} ("time", topic, payload) FROM STDIN') as copy:
                for topic, payload in published:
                    copy.write_row((now, topic, json.dumps(payload, separators=(",", ":"))))
    return time.perf_counter() - started


def bulk_create_second(node_rows, acc_rows) -> float:
    """Seconds that bulk_create of one second's rows as model instances (1000 a batch) takes, as the
    collector wrote before."""
    from django.db import transaction

    from console.telemetry.collector import COLUMNS
    from nodes.models import AcceleratorSample, NodeSample

    started = time.perf_counter()
    with transaction.atomic():
        NodeSample.objects.bulk_create([NodeSample(**dict(zip(COLUMNS[NodeSample], r, strict=True)))
                                        for r in node_rows], batch_size=1000)
        AcceleratorSample.objects.bulk_create(
            [AcceleratorSample(**dict(zip(COLUMNS[AcceleratorSample], r, strict=True))) for r in acc_rows],
            batch_size=1000)
    return time.perf_counter() - started


def live_collector(n: int) -> dict:
    """The real collector process at ``n`` simulated nodes sampled every second."""
    import psutil
    from django.db import connection

    from nodes.models import AcceleratorSample, NodeSample

    def rows() -> int:
        count = NodeSample.objects.count() + AcceleratorSample.objects.count()
        connection.close()
        return count

    env = dict(os.environ, DATABASE_URL=DATABASE_URL, DJANGO_SETTINGS_MODULE="console.settings",
               PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "manage.py", "collect", "--simulate", "--stats-every", "0"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(LIVE_WARMUP_S)
        proc = psutil.Process(process.pid)
        cpu0, rows0, t0 = sum(proc.cpu_times()[:2]), rows(), time.time()
        time.sleep(LIVE_MEASURE_S)
        cpu1, rows1, t1 = sum(proc.cpu_times()[:2]), rows(), time.time()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {"rate": (rows1 - rows0) / (t1 - t0), "offered": n * 9, "cpu": (cpu1 - cpu0) / (t1 - t0),
            "load": os.getloadavg()[0]}


# --- probes ------------------------------------------------------------------------------------


def probe_bench(nodes) -> dict:
    from django.conf import settings
    from django.utils import timezone

    from bench.probe_round import bench_user
    from nodes import services
    from nodes.models import Accelerator, Node
    from nodes.probes.result import parse_probe_output
    from nodes.probes.runner import run_probe
    from nodes.probes.script import PROBE_SCRIPT
    from nodes.transports import transport_for
    from nodes.transports.ssh import POOL
    from tests.conftest import FAKE_BIN
    from tests.sshd import SshdNode

    settings.CONSOLE_PROBE_CONCURRENCY = PROBE_CONCURRENCY
    Accelerator.objects.all().delete()  # the telemetry part's made-up ones: the probes find 16 real ones a node
    user = bench_user()
    daemons = []
    for _ in range(SSHD):
        # HOME: an empty directory, as bench/gateway.py and bench/healing.py do: this machine's root ~/.bashrc runs
        # `pyenv init` (about 0.2 s of CPU) in every SSH command's shell, which a node's shell does not.
        home = Path(tempfile.mkdtemp(prefix="boom-bench-node-home-"))
        daemon = SshdNode(env={"PATH": f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home)})
        daemon.start()
        if user:
            daemon.username = user
            daemon.dir.chmod(0o755)
            (daemon.dir / "authorized_keys").chmod(0o644)
        daemons.append(daemon)
    try:
        for i, daemon in enumerate(daemons):
            credential = services.create_credential(name=f"key-{i}", username=daemon.username,
                                                    private_key=daemon.client_key_pem, passphrase=None)
            Node.objects.filter(pk__in=[n.pk for n in nodes[i::SSHD]]).update(
                address="127.0.0.1", ssh_port=daemon.port, credential=credential, probe_interval_s=3600)
        ids = [n.pk for n in nodes]
        services.probe_round(ids)  # pins the host keys, opens one connection per sshd, warms imports
        Node.objects.update(next_probe_at=timezone.now())
        cpu0, started = cpu_seconds(), time.perf_counter()
        claimed = services.claim_due_nodes(limit=len(ids))
        finished = services.probe_round(claimed)
        round_s, round_cpu = time.perf_counter() - started, cpu_seconds() - cpu0
        online = Node.objects.filter(status="online").count()
        one = Node.objects.select_related("credential").get(pk=ids[0])
        transport = transport_for(one)

        def per_call(fn, repeat=30):
            cpu = cpu_seconds()
            for _ in range(repeat):
                value = fn()
            return (cpu_seconds() - cpu) / repeat, value

        ssh_cpu, result = per_call(lambda: transport.run("bash -s", stdin=PROBE_SCRIPT))
        true_cpu, _ = per_call(lambda: transport.run("true"))
        parse_cpu, _ = per_call(lambda: parse_probe_output(result.stdout))
        outcome = run_probe(one)

        store_cpu, _ = per_call(lambda: services.apply_probe_outcome(one, outcome))
        # What a round does: the outcomes that came in together are stored together (store_probe_outcomes).
        batch = list(Node.objects.select_related("credential").filter(pk__in=ids[:BATCH]))
        batch_cpu, _ = per_call(lambda: services.store_probe_outcomes([(node, outcome) for node in batch]), repeat=10)
        whole_cpu, _ = per_call(lambda: services.probe_node(ids[0]))
    finally:
        POOL.close_all()
        for daemon in daemons:
            daemon.cleanup()
    return {"n": len(ids), "claimed": len(claimed), "finished": sum(finished.values()), "online": online,
            "round_s": round_s, "cpu_per_probe": round_cpu / len(ids), "ssh": ssh_cpu, "true": true_cpu,
            "parse": parse_cpu, "store": store_cpu, "batch": batch_cpu / BATCH, "whole": whole_cpu,
            "load": os.getloadavg()[0]}


def main(n: int = 1000, write: bool = True) -> None:
    fresh_database(DATABASE_URL)
    setup_django(DATABASE_URL)
    os.environ["DATABASE_URL"] = DATABASE_URL
    nodes = make_cluster(n)
    seconds = readings_per_second(nodes, INGEST_SECONDS)
    per_second = sample_rows(seconds)
    clear_samples()
    result = ingest(nodes, seconds, per_second)
    clear_samples()
    baseline, with_entries, bulk_rate = result["copy"], result["copy_entries"], result["bulk_create"]
    print(f"ingest: collector {result['rate']:.0f} rows/s ({result['cpu_per_row_us']:.1f} us CPU a row, "
          f"{result['flush_ms']:.0f} ms a flush of one second); COPY {baseline:.0f} rows/s, with the entries "
          f"{with_entries:.0f}; bulk_create {bulk_rate:.0f} rows/s", flush=True)
    live = live_collector(n)
    clear_samples()
    print(f"live collector: {live['rate']:.0f} of {live['offered']} rows/s, CPU {live['cpu'] * 100:.0f}%", flush=True)
    probes = probe_bench(nodes)
    print(f"probes: {probes}", flush=True)
    ms = 1000
    body = (
        f"{n} nodes of 8 accelerators on PostgreSQL (local server, default settings), the console's processes "
        "and the simulated nodes on the same machine. Made by `bench/scale.py`.\n\n"
        "### Telemetry ingest\n\n"
        f"The collector's write path at full speed: {INGEST_SECONDS} seconds of samples of every node (their "
        "sampler lines, made up and parsed by the real parser), one `Collector.flush` a second of samples with "
        "every topic due (it drains the queue, builds the rows and the stream entries, writes both in one "
        "transaction). The baseline is a raw batched insert of the same rows into the same tables in the same "
        "run: psycopg `COPY`, one transaction per second of rows. Each second of samples goes through the "
        "collector and every baseline in turn (the order rotating), so that the machine's other work weighs on "
        "all of them alike. The "
        f"flush also writes the live pages' stream entries: the `cluster` topic, and the topics of the {WATCHED} "
        "nodes whose pages are open (watched topics: the collector publishes a node's samples only while a "
        "connection watches it, `CONSOLE_STREAM_WATCHED_ONLY`; before, every node topic once a second, the same "
        "points again as JSON, read by nobody); the second baseline copies those entries too, as raw as the "
        "samples.\n\n"
        "| rows a second of samples | collector, rows/s of flushing | raw `COPY` of the samples (baseline) | "
        "**collector ÷ baseline** | raw `COPY` of the samples and the stream entries | **collector ÷ that** | "
        "`bulk_create` of model instances, 1000 a batch | collector CPU a row | flush of one second of samples | "
        "stream entries, all flushes |\n|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {len(per_second[0][0]) + len(per_second[0][1])} | {result['rate']:.0f} | {baseline:.0f} | "
        f"**{result['rate'] / baseline:.2f}** | {with_entries:.0f} | **{result['rate'] / with_entries:.2f}** | "
        f"{bulk_rate:.0f} ({bulk_rate / baseline:.2f} of the baseline) | "
        f"{result['cpu_per_row_us']:.1f} µs | {result['flush_ms']:.0f} ms | {result['entries']} |\n\n"
        f"Goal: at least 0.5 of the raw batched insert: **{result['rate'] / baseline:.2f}** of the samples' "
        f"`COPY`, **{result['rate'] / with_entries:.2f}** of the `COPY` of everything the flush writes. The collector "
        "writes plain tuples with `COPY` on PostgreSQL (`console.core.bulk.insert_rows`); it used to build model "
        "instances for `bulk_create` (the `bulk_create` column). The figure before, 0.13 at 200 nodes on SQLite, "
        "was the offered load (the nodes' samples a second) over the insert rate, not the collector's capacity. "
        "Profiled at 1000 nodes (cProfile of the flush, per-part timings): the stream entries' payloads were "
        "`jsonb`, which the server parsed into a binary form larger than the text (1698 against 1047 bytes a "
        "node's entry); they are now compact JSON text (`JSONTextField`, 985 bytes), read back whole by the "
        "consumers. JSON's encoder spent half its time on the rows' float-second times: a frame row's time is "
        "now integer milliseconds, and one list is both a sample's table row and its frame's row.\n\n"
        f"The real collector process (`manage.py collect --simulate`, {n} nodes sampled every second, "
        f"{LIVE_MEASURE_S} s after {LIVE_WARMUP_S} s of warm-up): **{live['rate']:.0f} rows/s written of "
        f"{live['offered']} offered**, collector CPU {live['cpu'] * 100:.0f}% of one core (its {n} simulated "
        "sources make up and parse their lines in the same process), machine load "
        f"{live['load']:.1f}.\n\n"
        "### Probes\n\n"
        f"{probes['n']} node rows over {SSHD} real sshd servers on loopback ({probes['n'] // SSHD} nodes share each "
        "server and its pooled connection; fake nvidia-smi and npu-smi print real captures: 16 accelerators a "
        f"node), a pool of {PROBE_CONCURRENCY} threads, connections reused. The round is what beat's periodic "
        "probe runs: `claim_due_nodes` and `probe_round`. CPU is this process's (`getrusage`): the console's "
        "side only, the nodes' sshd, bash and tools are other processes on the same 2 cores.\n\n"
        "| nodes | round | **console CPU per probe** | nodes online | SSH command alone | of which an empty "
        f"command (`true`) | parse | store, one probe alone (5 statements) | store, in a batch of {BATCH}, a probe "
        "| one `probe_node`, sequential | machine load |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {probes['n']} | {probes['round_s']:.1f} s | **{probes['cpu_per_probe'] * ms:.1f} ms** | "
        f"{probes['online']}/{probes['n']} | {probes['ssh'] * ms:.1f} ms | {probes['true'] * ms:.1f} ms | "
        f"{probes['parse'] * ms:.1f} ms | {probes['store'] * ms:.1f} ms | {probes['batch'] * ms:.2f} ms | "
        f"{probes['whole'] * ms:.1f} ms | {probes['load']:.1f} |\n\n"
        f"Goal: at most 6 ms of the console's CPU per probe: **{probes['cpu_per_probe'] * ms:.1f} ms** "
        "(12–16 ms before this work: `bench/probe_round.py`, 2026-11-28, SQLite). "
        "The last step (2026-12-05, profiled with yappi's CPU clock over every thread of a round): a round "
        "now stores what its probes saw in batches (`nodes.services.store_probe_outcomes`, what came in within "
        "0.25 s: one statement for the batch's accelerators, one conditional UPDATE for its nodes, one for "
        "their pages' change stamps; a probe that changes a status or an accelerator still goes through its "
        "transition alone); a probe no longer re-reads its node's status (the write is conditional on it); "
        "a lone write is no longer wrapped in BEGIN and COMMIT; the SSH connections offer AES-GCM first "
        "(paramiko checked every packet's HMAC in Python, byte by byte: a third of its transport thread's "
        "work); and a command's time limit is one shared watchdog thread instead of a `threading.Timer` "
        "started for each command. Measured the same day on the same machine, 200 nodes: the code before "
        "this step (359edd8) 7.62 ms a probe, this code 4.59 ms (at 1000 nodes, that code measured 6.9, 7.0 and "
        "7.8 ms on another VM of this kind, and 5.0 ms on a third). Profiled before that "
        "(cProfile and per-part CPU, 5 nodes, "
        "PostgreSQL): the probe's output left the node one line per write, and each write was an SSH packet the "
        "console decrypted and dispatched (4.2 ms of about 13 ms); the probe script now gathers its output with "
        "`dd` and writes it once (1.0 ms). Storing a probe updated its 16 accelerators one statement each "
        "(7.9 ms); it is now one statement (`console.core.bulk.update_rows`, 2.2 ms), and the periodic claim "
        "is one `UPDATE ... RETURNING` per probe interval instead of one per node. The round's wall "
        "time is bounded by the nodes' own work (sshd, bash and a Python fake nvidia-smi per probe), which "
        "shares the console's 2 cores here; on a cluster it runs on the nodes. Here 50 nodes share each SSH "
        "connection, whose transport thread then handles several channels a wake-up; a lone sequential "
        "`probe_node` (loading the node and its credential included) costs more, and the same round with "
        "one sshd per node on SQLite (whose engine runs in the console's process, so its work counts) is in "
        "`Probe round over SSH`."
    )
    print(body)
    if write:
        write_section("1000 nodes on one console", body)


if __name__ == "__main__":
    if "--quick" in sys.argv:
        main(n=200, write=False)
    else:
        main()
