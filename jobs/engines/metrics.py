"""Turn a serving engine's Prometheus ``/metrics`` text into the console's normalized series.

Pure functions, no I/O and no Django: a scraper passes the text it fetched and the time it
fetched it, and gets back an :class:`EngineSnapshot`; two snapshots of the same instance give
:class:`EngineRates` (tokens/s, requests/s, latency quantiles over the interval).

Flavours understood (detected from the metric names, never configured):

``vllm-v1`` / ``vllm-v0`` / ``vllm``
    vLLM and vLLM-Ascend (which reuses vLLM's metrics). V1 adds an ``engine`` label and
    ``*_created`` series and renamed ``gpu_cache_usage_perc`` to ``kv_cache_usage_perc`` and
    ``time_per_output_token_seconds`` to ``inter_token_latency_seconds``; both spellings are read,
    the V1 one first. ``vllm`` alone means the text was too short to tell the generations apart.
``sglang``
    ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage`` (fraction of the
    KV token pool in use) and vLLM-like counters and histograms.
``llamacpp``
    llama-server's ``llamacpp:`` set, old (``kv_cache_usage_ratio``) and new (``n_decode_total``...).
    It has no latency histograms and no finished-requests counter, so those stay ``None``.
``unknown``
    anything else (MindIE's metrics are not mapped yet): every normalized field is ``None``.

Aggregation: counters, running/waiting gauges and histograms are summed over label sets (several
engines of one vLLM data-parallel server, several ``finished_reason`` values); KV-cache usage is
averaged, since it is a fraction.

Truncated captures never raise: the text is read by a small line parser that skips only the lines
it cannot read (a capture cut in the middle of a line). A histogram label set without its ``+Inf``
bucket (a capture cut inside the histogram) is left out, because its quantiles would be wrong.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "EngineRates",
    "EngineSnapshot",
    "Histogram",
    "Sample",
    "compute_rates",
    "parse_metrics",
    "parse_samples",
    "quantile_from_buckets",
]


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative bucket counts by upper bound (``math.inf`` included)."""

    buckets: dict[float, float]
    sum: float | None
    count: float | None


@dataclass
class EngineSnapshot:
    """The normalized state of one engine at one scrape; ``None`` where the engine gave no value."""

    time: float  # caller-supplied scrape time (seconds)
    requests_running: float | None
    requests_waiting: float | None
    kv_cache_usage: float | None  # 0..1
    prompt_tokens_total: float | None
    generation_tokens_total: float | None
    requests_finished_total: float | None
    ttft: Histogram | None
    itl: Histogram | None  # inter-token latency, or time per output token on older engines
    e2e: Histogram | None
    raw_family_names: set[str] = field(default_factory=set)
    flavour: str = "unknown"


@dataclass
class EngineRates:
    """What the console charts for an instance over one scrape interval; ``None`` when unknown."""

    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    requests_per_s: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage_percent: float | None = None


class Sample(NamedTuple):
    """One exposition line: full sample name (with ``_total``/``_bucket``...), labels, value."""

    name: str
    labels: dict[str, str]
    value: float


# Where each flavour keeps each normalized series. Several names per field: the first one present
# wins (the newer spelling comes first).
_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "running": ("vllm:num_requests_running",),
        "waiting": ("vllm:num_requests_waiting",),
        "kv": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "prompt": ("vllm:prompt_tokens_total",),
        "generation": ("vllm:generation_tokens_total",),
        "finished": ("vllm:request_success_total",),
        "ttft": ("vllm:time_to_first_token_seconds",),
        "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        "e2e": ("vllm:e2e_request_latency_seconds",),
    },
    "sglang": {
        "running": ("sglang:num_running_reqs",),
        "waiting": ("sglang:num_queue_reqs",),
        "kv": ("sglang:token_usage",),
        "prompt": ("sglang:prompt_tokens_total",),
        "generation": ("sglang:generation_tokens_total",),
        "finished": ("sglang:num_requests_total",),
        "ttft": ("sglang:time_to_first_token_seconds",),
        "itl": ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
        "e2e": ("sglang:e2e_request_latency_seconds",),
    },
    "llamacpp": {
        "running": ("llamacpp:requests_processing",),
        "waiting": ("llamacpp:requests_deferred",),
        "kv": ("llamacpp:kv_cache_usage_ratio",),
        "prompt": ("llamacpp:prompt_tokens_total",),
        "generation": ("llamacpp:tokens_predicted_total",),
        "finished": (),
        "ttft": (),
        "itl": (),
        "e2e": (),
    },
}

_VLLM_V1_ONLY = {"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds_count"}
_VLLM_V0_ONLY = {"vllm:gpu_cache_usage_perc", "vllm:num_requests_swapped", "vllm:cpu_cache_usage_perc"}
# Suffixes a sample name may add to its family's name (text format and OpenMetrics).
_SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_gcount", "_info")


# ---------------------------------------------------------------------------------------------------
# Parsing


def parse_samples(text: str) -> list[Sample]:
    """Read every sample of a Prometheus text exposition, line by line; never raises.

    A leading UTF-8 byte-order mark is dropped, comments are skipped, and so is every line that
    cannot be read in full (a capture cut in the middle of a line). Names are kept as written:
    unlike ``prometheus_client``'s parser, a counter declared without ``_total`` (llama.cpp's
    ``n_tokens_max``) is not renamed. The tests check that both parsers agree on every capture.
    """
    samples = []
    for line in text.lstrip("\ufeff").splitlines():
        sample = _parse_sample_line(line.strip())
        if sample is not None:
            samples.append(sample)
    return samples


_NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\"")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _parse_sample_line(line: str) -> Sample | None:
    """Parse ``name{label="value",...} value [timestamp]``; ``None`` for comments and bad lines."""
    if not line or line.startswith("#"):
        return None
    match = _NAME_RE.match(line)
    if match is None:
        return None
    name, pos = match.group(0), match.end()
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        pos += 1
        while True:
            rest = line[pos:].lstrip()
            pos = len(line) - len(rest)
            if rest.startswith("}"):
                pos += 1
                break
            label = _LABEL_NAME_RE.match(line, pos)
            if label is None:
                return None
            pos = label.end()
            chars = []
            while True:
                if pos >= len(line):
                    return None  # the line ends inside a label value
                char = line[pos]
                if char == "\\" and pos + 1 < len(line):
                    chars.append(_ESCAPES.get(line[pos + 1], "\\" + line[pos + 1]))
                    pos += 2
                elif char == '"':
                    pos += 1
                    break
                else:
                    chars.append(char)
                    pos += 1
            labels[label.group(1)] = "".join(chars)
            rest = line[pos:].lstrip()
            pos = len(line) - len(rest)
            if rest.startswith(","):
                pos += 1
    parts = line[pos:].split()
    if not parts or (pos < len(line) and not line[pos].isspace()):
        return None
    try:
        value = float(parts[0])
    except ValueError:
        return None
    return Sample(name, labels, value)


def _family_names(text: str, sample_names: set[str]) -> set[str]:
    """Names declared by ``# TYPE`` lines, plus the names of samples no declaration covers."""
    declared = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "#" and parts[1] == "TYPE":
            declared.add(parts[2])
    names = set(declared)
    for name in sample_names:
        if name in declared:
            continue
        if any(name.endswith(suffix) and name[: -len(suffix)] in declared for suffix in _SAMPLE_SUFFIXES):
            continue
        names.add(name)
    return names


def _detect_flavour(sample_names: set[str], samples: list[Sample]) -> str:
    """Which engine wrote this exposition, from the prefixes of its metric names."""
    prefixes = {"vllm": 0, "sglang": 0, "llamacpp": 0}
    for name in sample_names:
        prefix = name.split(":", 1)[0] if ":" in name else ""
        if prefix in prefixes:
            prefixes[prefix] += 1
    best = max(prefixes, key=lambda key: prefixes[key])
    if prefixes[best] == 0:
        return "unknown"
    if best != "vllm":
        return best
    if sample_names & _VLLM_V1_ONLY or any("engine" in s.labels for s in samples if s.name.startswith("vllm:")):
        return "vllm-v1"
    if sample_names & _VLLM_V0_ONLY:
        return "vllm-v0"
    return "vllm"


def _sum_of(samples_by_name: dict[str, list[Sample]], names: tuple[str, ...]) -> float | None:
    for name in names:
        values = [s.value for s in samples_by_name.get(name, ()) if not math.isnan(s.value)]
        if values:
            return float(sum(values))
    return None


def _mean_of(samples_by_name: dict[str, list[Sample]], names: tuple[str, ...]) -> float | None:
    for name in names:
        values = [s.value for s in samples_by_name.get(name, ()) if not math.isnan(s.value)]
        if values:
            return float(sum(values) / len(values))
    return None


def _histogram_of(samples_by_name: dict[str, list[Sample]], names: tuple[str, ...]) -> Histogram | None:
    for name in names:
        histogram = _histogram(samples_by_name, name)
        if histogram is not None:
            return histogram
    return None


def _histogram(samples_by_name: dict[str, list[Sample]], name: str) -> Histogram | None:
    """Sum the complete label sets of histogram ``name`` into one :class:`Histogram`."""

    def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "le"))

    buckets_by_set: dict[tuple, dict[float, float]] = defaultdict(dict)
    for sample in samples_by_name.get(name + "_bucket", ()):
        try:
            upper = float(sample.labels["le"])
        except (KeyError, ValueError):
            continue
        buckets_by_set[key(sample.labels)][upper] = sample.value
    sums = {key(s.labels): s.value for s in samples_by_name.get(name + "_sum", ())}
    counts = {key(s.labels): s.value for s in samples_by_name.get(name + "_count", ())}

    total: dict[float, float] = defaultdict(float)
    total_sum: float | None = None
    total_count = 0.0
    complete = 0
    for label_set, buckets in buckets_by_set.items():
        if math.inf not in buckets:
            continue  # cut short: its upper buckets are missing
        complete += 1
        for upper, count in buckets.items():
            total[upper] += count
        if label_set in sums:
            total_sum = (total_sum or 0.0) + sums[label_set]
        total_count += counts.get(label_set, buckets[math.inf])
    if not complete:
        return None
    return Histogram(buckets=dict(sorted(total.items())), sum=total_sum, count=total_count)


def parse_metrics(text: str, time: float) -> EngineSnapshot:
    """Parse one scrape of an engine's ``/metrics`` into an :class:`EngineSnapshot`.

    ``time`` is the caller's scrape time in seconds (any clock, as long as the caller uses the same
    one for every snapshot it compares). The engine flavour is detected from the metric names.
    Never raises: unreadable lines are skipped and missing series come back as ``None``.
    """
    samples = parse_samples(text)
    samples_by_name: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        samples_by_name[sample.name].append(sample)
    sample_names = set(samples_by_name)
    flavour = _detect_flavour(sample_names, samples)
    fields = _FIELDS.get(flavour.split("-", 1)[0])
    snapshot = EngineSnapshot(
        time=time,
        requests_running=None,
        requests_waiting=None,
        kv_cache_usage=None,
        prompt_tokens_total=None,
        generation_tokens_total=None,
        requests_finished_total=None,
        ttft=None,
        itl=None,
        e2e=None,
        raw_family_names=_family_names(text.lstrip("\ufeff"), sample_names),
        flavour=flavour,
    )
    if fields is None:
        return snapshot
    snapshot.requests_running = _sum_of(samples_by_name, fields["running"])
    snapshot.requests_waiting = _sum_of(samples_by_name, fields["waiting"])
    snapshot.kv_cache_usage = _mean_of(samples_by_name, fields["kv"])
    snapshot.prompt_tokens_total = _sum_of(samples_by_name, fields["prompt"])
    snapshot.generation_tokens_total = _sum_of(samples_by_name, fields["generation"])
    snapshot.ttft = _histogram_of(samples_by_name, fields["ttft"])
    snapshot.itl = _histogram_of(samples_by_name, fields["itl"])
    snapshot.e2e = _histogram_of(samples_by_name, fields["e2e"])
    finished = _sum_of(samples_by_name, fields["finished"])
    if finished is None and snapshot.e2e is not None:
        # Every finished request is observed once in the end-to-end latency histogram.
        finished = snapshot.e2e.count
    snapshot.requests_finished_total = finished
    return snapshot


# ---------------------------------------------------------------------------------------------------
# Rates and quantiles


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float | None:
    """The ``q``-quantile of cumulative histogram buckets, as PromQL's ``histogram_quantile()``.

    Linear interpolation inside the bucket that holds the rank; the lowest bucket starts at 0
    (when its bound is positive); a rank in the ``+Inf`` bucket gives the highest finite bound.
    ``None`` when there is nothing to compute from: no ``+Inf`` bucket, fewer than two buckets or
    no observations. Raises ``ValueError`` when ``q`` is outside ``[0, 1]``.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
    points = sorted((upper, count) for upper, count in buckets.items() if not math.isnan(count))
    if len(points) < 2 or not math.isinf(points[-1][0]):
        return None
    # Cumulative counts must not fall (they can, by float noise or a reset inside a delta).
    monotonic = []
    highest = 0.0
    for upper, count in points:
        highest = max(highest, count)
        monotonic.append((upper, highest))
    observations = monotonic[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next((i for i, (_, count) in enumerate(monotonic[:-1]) if count >= rank), len(monotonic) - 1)
    if index == len(monotonic) - 1:
        return monotonic[-2][0]
    upper, count = monotonic[index]
    if index == 0 and upper <= 0:
        return upper
    start = 0.0
    if index > 0:
        start, below = monotonic[index - 1]
        count -= below
        rank -= below
    if count <= 0:
        return start
    return start + (upper - start) * (rank / count)


def _counter_delta(prev: float | None, cur: float | None) -> float | None:
    if prev is None or cur is None:
        return None
    delta = cur - prev
    # A counter that went down was reset (the engine restarted): everything since is the delta.
    return cur if delta < 0 else delta


def _histogram_delta(prev: Histogram | None, cur: Histogram | None) -> dict[float, float] | None:
    if prev is None or cur is None:
        return None
    if prev.buckets.keys() != cur.buckets.keys():
        return dict(cur.buckets)  # new bucket layout: a different (restarted) engine
    delta = {upper: cur.buckets[upper] - prev.buckets[upper] for upper in cur.buckets}
    if any(value < 0 for value in delta.values()):
        return dict(cur.buckets)  # reset
    return delta


def _quantile_ms(buckets: dict[float, float] | None, q: float) -> float | None:
    if buckets is None:
        return None
    value = quantile_from_buckets(buckets, q)
    return None if value is None else value * 1000.0


def compute_rates(prev: EngineSnapshot | None, cur: EngineSnapshot) -> EngineRates:
    """Rates and latency quantiles between two snapshots of the same instance.

    Counters give ``delta / dt``; a counter that went down counts as reset, and its current value
    is the delta (as Prometheus' ``rate()`` does). Quantiles come from the bucket deltas, so they
    describe only the requests that finished in the interval, and are ``None`` when none did.
    Gauges come from ``cur``. Without ``prev``, or when time did not advance, only gauges are set.
    """
    rates = EngineRates(
        requests_running=cur.requests_running,
        requests_waiting=cur.requests_waiting,
        kv_cache_usage_percent=None if cur.kv_cache_usage is None else cur.kv_cache_usage * 100.0,
    )
    if prev is None:
        return rates
    dt = cur.time - prev.time
    if dt <= 0:
        return rates

    def per_second(old: float | None, new: float | None) -> float | None:
        delta = _counter_delta(old, new)
        return None if delta is None else delta / dt

    rates.prompt_tokens_per_s = per_second(prev.prompt_tokens_total, cur.prompt_tokens_total)
    rates.generation_tokens_per_s = per_second(prev.generation_tokens_total, cur.generation_tokens_total)
    rates.requests_per_s = per_second(prev.requests_finished_total, cur.requests_finished_total)
    ttft = _histogram_delta(prev.ttft, cur.ttft)
    itl = _histogram_delta(prev.itl, cur.itl)
    e2e = _histogram_delta(prev.e2e, cur.e2e)
    rates.ttft_p50_ms, rates.ttft_p99_ms = _quantile_ms(ttft, 0.5), _quantile_ms(ttft, 0.99)
    rates.itl_p50_ms, rates.itl_p99_ms = _quantile_ms(itl, 0.5), _quantile_ms(itl, 0.99)
    rates.e2e_p50_ms, rates.e2e_p99_ms = _quantile_ms(e2e, 0.5), _quantile_ms(e2e, 0.99)
    return rates
