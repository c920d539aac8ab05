"""Where node and accelerator telemetry comes from: one long-lived source per node.

* SSH nodes: the sampling session of :mod:`nodes.probes.sampler` over the pooled connection
  (``POOL.open_stream``), one line-streaming command per node for as long as the collector runs.
* The local node: psutil for the node's own series, and the same sampling script as a local
  subprocess for its accelerators (when it has nvidia-smi or npu-smi).
* Simulated nodes (``manage.py collect --simulate``, for demos and benchmarks): sampler lines made up
  in-process, parsed by the same parser.

Each source is a thread that reads, parses and hands readings to ``emit(node_id, kind, reading, t)``
(``kind`` "node" or "accelerator", ``t`` epoch seconds when the line was read). A source never
raises: when its session fails it records why (``last_error``), waits (1, 2, 5, 10, 30 s...) and
starts a new one, until ``stop()``. Django-free apart from the SSH target, which the caller builds.
"""

from __future__ import annotations

import logging
import math
import os
import random
import select
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nodes.probes.parsers.sampler import NodeReading, SamplerParser
from nodes.probes.sampler import GPU_FULL_FIELDS, sampler_argv

log = logging.getLogger(__name__)

Emit = Callable[[int, str, object, float], None]
BACKOFF_S = (1, 2, 5, 10, 30)
# A session that printed nothing for this many intervals (plus a margin) is considered wedged.
SILENT_INTERVALS = 5


@dataclass
class SourceSpec:
    """What a source needs to know about its node; a changed spec means a new session."""

    node_id: int
    kind: str  # "local", "simulated", or the kind of the transport that streams ("ssh")
    interval_s: float
    transport: object | None = field(default=None, compare=False, repr=False)  # streamed sources
    identity: tuple = ()  # the transport's session identity, compared instead of the transport
    accelerators: int = 8  # simulated sources only


class NodeSource(threading.Thread):
    """Base: the retry loop around one session at a time."""

    def __init__(self, spec: SourceSpec, emit: Emit) -> None:
        super().__init__(name=f"telemetry-node-{spec.node_id}", daemon=True)
        self.spec = spec
        self.emit = emit
        self.last_error = ""
        self.sessions_started = 0
        self.lines_read = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        failures = 0
        while not self.stopped:
            started = time.monotonic()
            try:
                self.sessions_started += 1
                self.session()
                self.last_error = ""
            except Exception as exc:  # noqa: BLE001 - a node's failure is data; the source goes on
                self.last_error = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                log.info("telemetry of node %s: %s", self.spec.node_id, self.last_error)
            if time.monotonic() - started > 60:
                failures = 0  # it ran for a while: start the back-off again from the shortest wait
            delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            failures += 1
            self._stop_event.wait(delay)

    def session(self) -> None:
        raise NotImplementedError

    def _pump(self, parser: SamplerParser, readline: Callable[[float], str | None],
              on_idle: Callable[[], None] | None = None, idle_every: float | None = None) -> None:
        """Read lines until stopped; ``readline(timeout)`` returns None on timeout and raises at the end."""
        silent_limit = self.spec.interval_s * SILENT_INTERVALS + 10
        last_line = time.monotonic()
        next_idle = time.monotonic()
        while not self.stopped:
            now = time.monotonic()
            if on_idle is not None and now >= next_idle:
                on_idle()
                next_idle = now + (idle_every or self.spec.interval_s)
            wait = 1.0 if on_idle is None else max(0.0, min(1.0, next_idle - time.monotonic()))
            line = readline(wait)
            if line is None:
                if on_idle is None and time.monotonic() - last_line > silent_limit:
                    raise TimeoutError(f"the sampling session printed nothing for {silent_limit:.0f} s")
                continue
            last_line = time.monotonic()
            self.lines_read += 1
            self.last_error = ""  # the session works: the previous one's failure is history
            t = time.time()
            for kind, reading in parser.feed(line, t):
                self.emit(self.spec.node_id, kind, reading, t)


class StreamSource(NodeSource):
    """The sampling session through the node's transport (SSH): node counters and accelerators in one
    stream."""

    def session(self) -> None:
        stream = self.spec.transport.open_stream(sampler_argv(self.spec.interval_s, "node"), timeout=15)
        try:
            self._pump(SamplerParser(), stream.readline)
        finally:
            stream.close()


class LocalSource(NodeSource):
    """The console's own machine: psutil every interval, accelerators from a local sampling session."""

    def session(self) -> None:
        stats = LocalNodeStats()
        process = subprocess.Popen(  # noqa: S603 - a fixed argv, no user text
            sampler_argv(self.spec.interval_s, "accelerators"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True)
        reader = _PipeLines(process.stdout)

        def tick() -> None:
            self.emit(self.spec.node_id, "node", stats.sample(), time.time())

        try:
            self._pump(SamplerParser(), reader.readline, on_idle=tick)
        finally:
            process.stdin.close()  # the script's `read -t` sees end of file and exits
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


def simulated_ticks(node_id: int, accelerators: int, interval_s: float):
    """Made-up sampler output of one node (a random walk around a realistic load): first the session's
    header lines, then one list of lines per tick, for ever. Seeded by the node id."""
    rng = random.Random(node_id)
    yield [f"@@boom:sampler 1 {int(interval_s * 1000)}@@", f"@@boom:gpu-fields {','.join(GPU_FULL_FIELDS)}@@"]
    jiffies = [1000, 0, 500, 8000, 10, 0, 5, 0]
    rx = tx = 0
    load = [rng.uniform(20, 90) for _ in range(accelerators)]
    while True:
        busy = rng.randint(20, 80)
        jiffies = [jiffies[0] + busy, 0, jiffies[2] + 10, jiffies[3] + 100 - busy, jiffies[4] + 1, 0, 0, 0]
        rx += rng.randint(10_000, 2_000_000)
        tx += rng.randint(10_000, 2_000_000)
        lines = [f"C {' '.join(map(str, jiffies))}", "M 1056000000 800000000", f"L {busy / 10:.2f}",
                 f"N {rx} {tx}", "D 300000000000 1000000000000"]
        for i in range(accelerators):
            load[i] = min(100.0, max(0.0, load[i] + rng.uniform(-8, 8)))
            used = int(81559 * (0.3 + 0.6 * load[i] / 100))
            temp = 35 + load[i] * 0.4 + math.sin(time.time() / 30 + i) * 2
            lines.append(f"G {i}, SIM-{node_id}-{i}, 00000000:{i:02X}:00.0, {used}, 81559, "
                         f"{load[i]:.0f}, {temp:.0f}, {100 + load[i] * 5:.2f}, 0, No, No, No")
        lines.append("E")
        yield lines


class SimulatedSource(NodeSource):
    """Made-up sampler lines (:func:`simulated_ticks`), parsed like a real session."""

    def session(self) -> None:
        parser = SamplerParser()
        ticks = simulated_ticks(self.spec.node_id, self.spec.accelerators, self.spec.interval_s)
        self._feed(parser, next(ticks))
        # Start at a random phase so that simulated nodes do not all report at the same instant.
        if self._stop_event.wait(random.Random(self.spec.node_id).uniform(0, self.spec.interval_s)):
            return
        next_at = time.monotonic()
        while not self.stopped:
            self._feed(parser, next(ticks))
            next_at += self.spec.interval_s
            if self._stop_event.wait(max(0.0, next_at - time.monotonic())):
                return

    def _feed(self, parser: SamplerParser, lines: list[str]) -> None:
        t = time.time()
        for line in lines:
            self.lines_read += 1
            for kind, reading in parser.feed(line, t):
                self.emit(self.spec.node_id, kind, reading, t)


SOURCES: dict[str, type[NodeSource]] = {"local": LocalSource, "simulated": SimulatedSource}


def make_source(spec: SourceSpec, emit: Emit) -> NodeSource:
    """The source of ``spec``: local, simulated, or a stream through any other transport."""
    return SOURCES.get(spec.kind, StreamSource)(spec, emit)


class LocalNodeStats:
    """The local machine's node series from psutil (CPU and network as rates since the last call)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        psutil.cpu_percent(interval=None)  # primes the counter: the first real value is a rate
        self._net = self._net_counters()
        self._disk_at = 0.0
        self._disk: float | None = None
        self._primed = False

    def _net_counters(self) -> tuple[float, int, int]:
        counters = self._psutil.net_io_counters(pernic=True)
        rx = sum(c.bytes_recv for name, c in counters.items() if name != "lo")
        tx = sum(c.bytes_sent for name, c in counters.items() if name != "lo")
        return time.monotonic(), rx, tx

    def sample(self) -> NodeReading:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        cpu = psutil.cpu_percent(interval=None)
        if not self._primed:  # the first value covers only the instants since __init__: not a rate yet
            self._primed, cpu = True, None
        reading = NodeReading(cpu_percent=cpu,
                              memory_used_bytes=int(memory.total - memory.available),
                              memory_percent=round(100.0 * (memory.total - memory.available) / memory.total, 2),
                              load1=os.getloadavg()[0])
        now, rx, tx = self._net_counters()
        if now > self._net[0]:
            reading.network_rx_bytes_per_s = max(0, rx - self._net[1]) / (now - self._net[0])
            reading.network_tx_bytes_per_s = max(0, tx - self._net[2]) / (now - self._net[0])
        self._net = (now, rx, tx)
        if now - self._disk_at > 10:  # a stale network mount must not stall every sample
            self._disk_at = now
            try:
                self._disk = psutil.disk_usage("/").percent
            except OSError:
                self._disk = None
        reading.disk_used_percent = self._disk
        return reading


class _PipeLines:
    """Lines of a subprocess's stdout with a timeout (select on the raw pipe)."""

    def __init__(self, pipe) -> None:
        self._fd = pipe.fileno()
        self._buffer = b""
        self._lines: list[str] = []
        self._eof = False

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while not self._lines:
            if self._eof:
                raise EOFError("the sampling process exited")
            ready, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                self._eof = True
                continue
            *complete, self._buffer = (self._buffer + chunk).split(b"\n")
            self._lines.extend(line.decode("utf-8", errors="replace") for line in complete)
        return self._lines.pop(0)
