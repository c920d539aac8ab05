"""Parser of the sampling session's output (:mod:`nodes.probes.sampler`), line by line.

Pure: lines and the time each was read go in, readings come out. It keeps the state a stream needs
(the GPU field list, the previous CPU and network counters for rates, the ``npu-smi`` block being
read), so use one :class:`SamplerParser` per session. Never raises: a line it cannot read is counted
in ``errors`` (the last few kept, for the collector's log) and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodes.probes.parsers import npu_smi, nvidia_smi
from nodes.probes.parsers.common import AcceleratorReading, ParseError

__all__ = ["NodeReading", "SamplerParser", "accelerator_key"]


@dataclass
class NodeReading:
    """One tick of a node's own series; None where the node did not tell (or no rate yet)."""

    cpu_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_percent: float | None = None
    load1: float | None = None
    disk_used_percent: float | None = None
    network_rx_bytes_per_s: float | None = None
    network_tx_bytes_per_s: float | None = None


def accelerator_key(reading: AcceleratorReading) -> str:
    """The key the inventory stores an accelerator under (``Accelerator.uuid``; see
    ``nodes.services._plan_accelerators``): the tool's UUID, else vendor and bus id or index."""
    return reading.uuid or f"{reading.vendor}-{reading.bus_id or reading.index}"


class SamplerParser:
    """Turns sampler lines into ``("node", NodeReading)`` and ``("accelerator", AcceleratorReading)``."""

    def __init__(self) -> None:
        self.gpu_fields: list[str] | None = None
        self.format_version: str | None = None
        self.errors: list[str] = []
        self.error_count = 0
        self._tick: dict[str, list[str]] = {}
        self._disk: float | None = None
        self._cpu: list[int] | None = None
        self._net: tuple[float, int, int] | None = None
        self._npu: list[str] | None = None

    def feed(self, line: str, t: float) -> list[tuple[str, object]]:
        """Parse one line read at ``t`` (seconds, any monotonic-enough clock used for every line)."""
        if self._npu is not None:
            if line.strip() == "@@boom:npu-end@@":
                text, self._npu = "\n".join(self._npu), None
                try:
                    return [("accelerator", r) for r in npu_smi.parse_info(text)]
                except ParseError as exc:
                    self._error(str(exc))
                    return []
            if len(self._npu) < 2000:
                self._npu.append(line)
            return []
        tag, _, rest = line.partition(" ")
        if tag == "G":
            return self._gpu(rest)
        if tag in ("C", "M", "L", "N", "D"):
            self._tick[tag] = rest.split()
            return []
        if tag == "E":
            return self._end_tick(t)
        if line.startswith("@@boom:"):
            self._marker(line.strip())
            return []
        if line.strip():
            self._error(f"unexpected line: {line[:80]!r}")
        return []

    # -- pieces

    def _marker(self, line: str) -> None:
        body = line.removeprefix("@@boom:").removesuffix("@@")
        name, _, args = body.partition(" ")
        if name == "sampler":
            self.format_version = args.split()[0] if args else "?"
        elif name == "gpu-fields":
            self.gpu_fields = [field for field in args.split(",") if field]
        elif name == "npu":
            self._npu = []

    def _gpu(self, rest: str) -> list[tuple[str, object]]:
        if not self.gpu_fields:
            self._error("a GPU line came before the field list")
            return []
        try:
            readings = nvidia_smi.parse_query_gpu(rest, fields=self.gpu_fields)
        except ParseError as exc:
            self._error(str(exc))
            return []
        return [("accelerator", reading) for reading in readings]

    def _end_tick(self, t: float) -> list[tuple[str, object]]:
        tick, self._tick = self._tick, {}
        if not tick:
            return []  # accelerators-only session: nothing of the node's own
        reading = NodeReading(disk_used_percent=self._disk)
        try:
            if "C" in tick:
                jiffies = [int(v) for v in tick["C"][:8]]
                if self._cpu is not None and len(self._cpu) == len(jiffies):
                    delta = [max(0, a - b) for a, b in zip(jiffies, self._cpu, strict=True)]
                    total = sum(delta)
                    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)  # idle + iowait
                    if total > 0:
                        reading.cpu_percent = round(100.0 * (total - idle) / total, 2)
                self._cpu = jiffies
            if "M" in tick and len(tick["M"]) >= 2:
                total_kb, available_kb = int(tick["M"][0]), int(tick["M"][1])
                if total_kb > 0:
                    reading.memory_used_bytes = (total_kb - available_kb) * 1024
                    reading.memory_percent = round(100.0 * (total_kb - available_kb) / total_kb, 2)
            if "L" in tick and tick["L"]:
                reading.load1 = float(tick["L"][0])
            if "N" in tick and len(tick["N"]) >= 2:
                rx, tx = int(tick["N"][0]), int(tick["N"][1])
                if self._net is not None and t > self._net[0]:
                    dt = t - self._net[0]
                    reading.network_rx_bytes_per_s = max(0, rx - self._net[1]) / dt
                    reading.network_tx_bytes_per_s = max(0, tx - self._net[2]) / dt
                self._net = (t, rx, tx)
            if "D" in tick and len(tick["D"]) >= 2:
                used, size = int(tick["D"][0]), int(tick["D"][1])
                if size > 0:
                    self._disk = reading.disk_used_percent = round(100.0 * used / size, 2)
        except (ValueError, IndexError) as exc:
            self._error(f"unreadable node counters: {exc}")
        return [("node", reading)]

    def _error(self, message: str) -> None:
        self.error_count += 1
        self.errors = (self.errors + [message])[-5:]
