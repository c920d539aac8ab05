"""``manage.py collect``: run the telemetry collector in the foreground (``make run`` starts one)."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from console.telemetry.collector import Collector, tune_gc

log = logging.getLogger("console.telemetry.collector")


class Command(BaseCommand):
    help = ("Collect node, accelerator and engine telemetry: one sampling session per node, engine /metrics "
            "scrapes, batched writes and live-stream entries. Several collectors split the cluster with "
            "--shard/--shards.")

    def add_arguments(self, parser):
        parser.add_argument("--shard", type=int, default=0, help="This collector's share (0-based).")
        parser.add_argument("--shards", type=int, default=1, help="How many collectors split the nodes and jobs.")
        parser.add_argument("--simulate", action="store_true",
                            help="Give every SSH node made-up telemetry instead of a session (demos, benchmarks).")
        parser.add_argument("--stats-every", type=float, default=60.0,
                            help="Log the collector's counters this often (seconds; 0: never).")

    def handle(self, *args, shard, shards, simulate, stats_every, **options):
        try:
            collector = Collector(shard=shard, shards=shards, simulate=simulate)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        tune_gc()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if stats_every > 0:
            threading.Thread(target=_log_stats, args=(collector, stop, stats_every), daemon=True).start()
        log.info("collector %d/%d started%s", shard, shards, " (simulated SSH nodes)" if simulate else "")
        collector.run(stop)
        log.info("collector stopped")


def _log_stats(collector: Collector, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        s = collector.stats
        log.info("collector: %s sources, %d rows in %d flushes (last %.0f ms), %d stream entries, %d write errors",
                 s.sources, s.rows_written, s.flushes, s.last_flush_ms, s.entries_published, s.write_errors)
