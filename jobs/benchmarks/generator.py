"""The load generator of serving benchmarks: asyncio + aiohttp, streaming, no Django.

It sends OpenAI-compatible streaming requests (``stream: true`` with
``stream_options.include_usage``) at a fixed concurrency to one or more ``/v1`` base URLs (round
robin), and measures each request from the client's side:

* TTFT: from sending the request to the first chunk that carries generated text;
* ITL: the gaps between successive text chunks; TPOT: ``(e2e - ttft) / (output_tokens - 1)``;
* end-to-end latency: from sending to the end of the stream;
* tokens: ``usage.completion_tokens`` / ``usage.prompt_tokens`` of the final usage chunk, else the
  number of text chunks (and the requested input length);
* errors by kind: ``connect`` (refused, reset, dropped), ``timeout``, ``http_<status>`` and
  ``protocol`` (not an SSE stream, bad JSON, a stream that ends without ``[DONE]``, an error event).

:func:`run_sweep` runs the levels one after the other, scraping each endpoint's ``/metrics`` before
and after a level so the engine's own figures over the same window sit beside the client's. It is
driven from another thread (jobs.benchmarks.runner): a :class:`threading.Event` stops it, a
:class:`SweepState` exposes progress, and finished levels are handed over as they end.

Every wait has a timeout: connecting (``connect_timeout_s``), each request as a whole
(``request_timeout_s``), the probe and the scrapes. A level gives up after ``2 x concurrency`` (at
least 16) requests in a row failed, so a dead endpoint ends a run in seconds, not after every request.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from jobs.engines.metrics import EngineRates, compute_rates, parse_metrics

__all__ = [
    "LevelResult",
    "LoadSpec",
    "ProbeError",
    "Prompt",
    "RequestResult",
    "SweepState",
    "dataset_prompts",
    "metrics_url",
    "percentile",
    "probe",
    "run_level",
    "run_sweep",
    "summarize",
    "synthetic_prompt",
]

# Common English words that most BPE tokenizers encode as one token each (with the leading space).
WORDS = (
    "the of and to in is was for on that with as by at from his her they this are be had not have "
    "one all were which she there when an been their has would who will more no if out so said what "
    "up its about into than them can only other new some could time these two may then do first any "
    "my now such like our over man me even most made after also did many before must through back "
    "years where much your way well down should because each just those people how too little state "
    "good very make world still own see men work long get here between both life being under never"
).split()


@dataclass(frozen=True)
class Prompt:
    """One request's input: a text (completion prompt or the user message) or chat messages."""

    text: str = ""
    messages: tuple[dict, ...] = ()
    max_tokens: int = 128
    input_tokens: int = 0  # the intended prompt length, used when the server reports no usage


def synthetic_prompt(index: int, input_tokens: int, output_tokens: int, seed: int = 0) -> Prompt:
    """A prompt of about ``input_tokens`` tokens, different for every ``index`` (no prefix-cache hits)."""
    rng = random.Random(seed * 1_000_003 + index)
    words = [str(index)] + rng.choices(WORDS, k=max(0, input_tokens - 1))
    return Prompt(text=" ".join(words), max_tokens=output_tokens, input_tokens=input_tokens)


def dataset_prompts(lines: Sequence[str], default_output_tokens: int) -> list[Prompt]:
    """Prompts from JSONL lines: ``{"prompt": str}`` or ``{"messages": [...]}``, optionally with
    ``"output_tokens"`` (or ``"max_tokens"``). Raises ValueError naming the first bad line."""
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {number}: not a JSON object")
        out = row.get("output_tokens", row.get("max_tokens", default_output_tokens))
        if isinstance(out, bool) or not isinstance(out, int) or not 1 <= out <= 131072:
            raise ValueError(f"line {number}: output_tokens must be an integer from 1 to 131072")
        if isinstance(row.get("prompt"), str) and row["prompt"]:
            prompts.append(Prompt(text=row["prompt"], max_tokens=out, input_tokens=math.ceil(len(row["prompt"]) / 4)))
        elif isinstance(row.get("messages"), list) and row["messages"] and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in row["messages"]
        ):
            chars = sum(len(str(m.get("content", ""))) for m in row["messages"])
            prompts.append(Prompt(messages=tuple(row["messages"]), max_tokens=out, input_tokens=math.ceil(chars / 4)))
        else:
            raise ValueError(f'line {number}: needs a non-empty "prompt" string or a "messages" list')
    if not prompts:
        raise ValueError("the file holds no prompts")
    return prompts


@dataclass(frozen=True)
class LoadSpec:
    """Where and how to send: ``/v1`` base URLs, the served model, the API, the timeouts."""

    endpoints: tuple[str, ...]
    model: str = ""
    api: str = "chat"  # or "completions"
    request_timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    ignore_eos: bool = True

    def url(self, index: int) -> str:
        base = self.endpoints[index % len(self.endpoints)].rstrip("/")
        return base + ("/chat/completions" if self.api == "chat" else "/completions")

    def body(self, prompt: Prompt) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": prompt.max_tokens,
            "temperature": 0.0,
        }
        if self.ignore_eos:
            body["ignore_eos"] = True
        if self.api == "chat":
            body["messages"] = list(prompt.messages) or [{"role": "user", "content": prompt.text}]
        else:
            body["prompt"] = prompt.text or "\n".join(str(m.get("content", "")) for m in prompt.messages)
        return body


@dataclass
class RequestResult:
    """What one request did, measured by the client (times in seconds)."""

    ok: bool
    start: float = 0.0  # perf_counter at send
    end: float = 0.0
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    usage_reported: bool = False
    error_kind: str = ""
    error: str = ""

    @property
    def e2e_s(self) -> float:
        return self.end - self.start

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..100) percentile with linear interpolation (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


@dataclass
class LevelResult:
    """One concurrency level: the requests it ran and the window it ran in."""

    concurrency: int
    requests: list[RequestResult]
    started: float  # wall clock (epoch seconds)
    wall_s: float  # from the level's start to its last request's end
    aborted: str = ""  # why the level gave up early
    cancelled: bool = False
    engine: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return summarize(self)


def summarize(level: LevelResult) -> dict[str, Any]:
    """The stored figures of a level (see docs/benchmarks-serving.md for each one's meaning)."""
    ok = [r for r in level.requests if r.ok]
    failed = [r for r in level.requests if not r.ok]
    errors_by_kind: dict[str, int] = {}
    for r in failed:
        errors_by_kind[r.error_kind] = errors_by_kind.get(r.error_kind, 0) + 1
    wall = level.wall_s if level.wall_s > 0 else float("nan")
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.prompt_tokens for r in ok)
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    tpot = [t for t in (r.tpot_s for r in ok) if t is not None]
    itl = [gap for r in ok for gap in r.itl_s]
    e2e = [r.e2e_s for r in ok]

    def rate(value: float) -> float:
        return 0.0 if not ok or math.isnan(wall) else round(value / wall, 3)

    return {
        "concurrency": level.concurrency,
        "requests": len(level.requests),
        "completed": len(ok),
        "errors": len(failed),
        "errors_by_kind": dict(sorted(errors_by_kind.items())),
        "error_sample": failed[-1].error[:300] if failed else "",
        "duration_s": round(level.wall_s, 3),
        "started_at": round(level.started, 3),
        "ended_at": round(level.started + level.wall_s, 3),
        "requests_per_s": rate(len(ok)),
        "output_tokens_per_s": rate(out_tokens),
        "total_tokens_per_s": rate(out_tokens + in_tokens),
        "output_tokens": out_tokens,
        "prompt_tokens": in_tokens,
        "usage_reported": bool(ok) and all(r.usage_reported for r in ok),
        "ttft_p50_ms": _ms(percentile(ttft, 50)),
        "ttft_p90_ms": _ms(percentile(ttft, 90)),
        "ttft_p99_ms": _ms(percentile(ttft, 99)),
        "tpot_p50_ms": _ms(percentile(tpot, 50)),
        "tpot_p99_ms": _ms(percentile(tpot, 99)),
        "itl_p50_ms": _ms(percentile(itl, 50)),
        "itl_p99_ms": _ms(percentile(itl, 99)),
        "e2e_p50_ms": _ms(percentile(e2e, 50)),
        "e2e_p99_ms": _ms(percentile(e2e, 99)),
        "aborted": level.aborted,
        "cancelled": level.cancelled,
        "engine": level.engine,
    }


# --- one request -----------------------------------------------------------------------------------


def _error(answered: bool, result: RequestResult, kind: str, message: str) -> tuple[RequestResult, bool]:
    result.ok = False
    result.end = time.perf_counter()
    result.error_kind = kind
    result.error = message
    return result, answered


async def send_one(session: aiohttp.ClientSession, spec: LoadSpec, index: int, prompt: Prompt) -> RequestResult:
    """Send one streaming request and measure it. Never raises (except CancelledError).

    A pooled keep-alive connection that the server closed meanwhile fails before any answer
    (llama.cpp's server closes them; aiohttp then says "Can not write request body"): such a request
    is sent once more with its clock restarted, on a connection of its own rather than the pool's,
    since the pool may hold more connections the server closed at the same moment. A fresh
    connection that fails is an error at once.
    """
    result, answered = await _send_once(session, spec, index, prompt)
    if not result.ok and not answered and result.error_kind == "connect" and "ClientConnectorError" not in result.error:
        async with _session(spec, 1, fresh=True) as fresh:
            result, answered = await _send_once(fresh, spec, index, prompt)
    return result


async def _send_once(session: aiohttp.ClientSession, spec: LoadSpec, index: int,
                     prompt: Prompt) -> tuple[RequestResult, bool]:
    """One attempt: the result and whether the server answered at all (status line received)."""
    url = spec.url(index)
    result = RequestResult(ok=False, start=time.perf_counter())
    chunks = 0
    answered = False
    try:
        async with asyncio.timeout(spec.request_timeout_s):
            async with session.post(url, json=spec.body(prompt), allow_redirects=False) as response:
                answered = True
                if response.status != 200:  # the body is not kept: viewers read the run (docs/security.md)
                    return _error(answered, result, f"http_{response.status}", f"HTTP {response.status}")
                ctype = response.headers.get("Content-Type", "")
                if "text/event-stream" not in ctype:
                    return _error(answered, result, "protocol",
                                  f"answered {ctype or 'no content type'}, not an SSE stream")
                done = finished = False
                last = 0.0
                # Hot path: one iteration per streamed token. Keep it free of anything but parsing.
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = True
                        break
                    now = time.perf_counter()
                    try:
                        event = json.loads(data)
                    except ValueError:
                        return _error(answered, result, "protocol", "a chunk is not JSON")
                    if not isinstance(event, dict):
                        return _error(answered, result, "protocol", "a chunk is not a JSON object")
                    if "error" in event:
                        return _error(answered, result, "protocol", "an error event in the stream")
                    usage = event.get("usage")
                    if usage and isinstance(usage, dict) and usage.get("completion_tokens") is not None:
                        result.output_tokens = int(usage["completion_tokens"])
                        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        result.usage_reported = True
                    for choice in event.get("choices") or ():
                        if spec.api == "chat":
                            delta = choice.get("delta") or {}
                            text = delta.get("content") or delta.get("reasoning_content")
                        else:
                            text = choice.get("text")
                        if text:
                            chunks += 1
                            if result.ttft_s is None:
                                result.ttft_s = now - result.start
                            else:
                                result.itl_s.append(now - last)
                            last = now
                        if choice.get("finish_reason"):
                            finished = True
                            # A byte-level tokenizer may hold back tokens that do not end a UTF-8
                            # character (llama.cpp does): the answer's first text may be in the last chunk.
                            if result.ttft_s is None:
                                result.ttft_s = now - result.start
                if not done and not finished:
                    return _error(answered, result, "protocol", "the stream ended without [DONE] or a finish_reason")
    except TimeoutError:
        return _error(answered, result, "timeout", f"no complete answer within {spec.request_timeout_s:g} s")
    except aiohttp.ServerTimeoutError as exc:
        return _error(answered, result, "timeout", str(exc) or "read timeout")
    except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
            ConnectionError) as exc:
        return _error(answered, result, "connect", f"{type(exc).__name__}: {exc}")
    except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError, aiohttp.ClientError, UnicodeError) as exc:
        return _error(answered, result, "protocol", f"{type(exc).__name__}: {exc}")
    result.end = time.perf_counter()
    if not result.usage_reported:
        result.output_tokens = chunks
        result.prompt_tokens = prompt.input_tokens
    if result.ttft_s is None:
        return _error(answered, result, "protocol", "the stream carried no generated text")
    result.ok = True
    return result, answered


def _session(spec: LoadSpec, limit: int, *, fresh: bool = False) -> aiohttp.ClientSession:
    """A session with a pool of ``limit`` keep-alive connections; ``fresh``: one connection, not kept."""
    connector = aiohttp.TCPConnector(limit=max(limit, 1), limit_per_host=0, force_close=fresh,
                                     enable_cleanup_closed=not fresh)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=spec.connect_timeout_s,
                                    sock_read=spec.request_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


# --- probe -----------------------------------------------------------------------------------------


class ProbeError(Exception):
    """The endpoint cannot be benchmarked; the message says why (it becomes the run's detail)."""


async def _probe_one(session: aiohttp.ClientSession, base: str, spec: LoadSpec) -> str:
    """Check one base URL; return the served model name to use."""
    model = spec.model
    models_url = base.rstrip("/") + "/models"
    try:
        async with asyncio.timeout(10):
            async with session.get(models_url, allow_redirects=False) as response:
                listed: list[str] = []
                if response.status == 200:
                    try:
                        body = await response.json(content_type=None)
                        listed = [m.get("id") for m in body.get("data", []) if isinstance(m, dict) and m.get("id")]
                    except (ValueError, AttributeError, aiohttp.ContentTypeError):
                        listed = []
                if not model:
                    if response.status != 200:
                        raise ProbeError(f"GET {models_url} answered HTTP {response.status}: not an OpenAI-compatible "
                                         f"endpoint (or name the served model)")
                    if not listed:
                        raise ProbeError(f"GET {models_url} lists no models: not an OpenAI-compatible endpoint")
                    model = listed[0]
    except TimeoutError:
        raise ProbeError(f"{models_url} did not answer within 10 s") from None
    except (aiohttp.ClientConnectorError, aiohttp.ClientOSError, ConnectionError,
            aiohttp.ServerDisconnectedError) as exc:
        raise ProbeError(f"cannot connect to {base}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise ProbeError(f"{models_url}: {type(exc).__name__}: {exc}") from None
    probe_spec = LoadSpec(endpoints=(base,), model=model, api=spec.api,
                          request_timeout_s=min(spec.request_timeout_s, 30.0), connect_timeout_s=spec.connect_timeout_s)
    result = await send_one(session, probe_spec, 0, Prompt(text="Hello", max_tokens=2, input_tokens=1))
    if not result.ok:
        url = probe_spec.url(0)
        if result.error_kind == "connect":
            raise ProbeError(f"cannot connect to {url}: {result.error}")
        if result.error_kind == "timeout":
            raise ProbeError(f"POST {url}: {result.error}")
        raise ProbeError(f"POST {url}: {result.error} — not an OpenAI-compatible streaming endpoint")
    return model


async def probe(spec: LoadSpec) -> LoadSpec:
    """Check every endpoint answers a one-token streaming request; fill in the model name.

    Raises ProbeError with the reason (unreachable, not OpenAI-compatible, no model listed).
    """
    async with _session(spec, len(spec.endpoints)) as session:
        models = await asyncio.gather(*(_probe_one(session, base, spec) for base in spec.endpoints))
    return LoadSpec(endpoints=spec.endpoints, model=spec.model or models[0], api=spec.api,
                    request_timeout_s=spec.request_timeout_s, connect_timeout_s=spec.connect_timeout_s,
                    ignore_eos=spec.ignore_eos)


# --- engine metrics --------------------------------------------------------------------------------


def metrics_url(base: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port/metrics``."""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}/metrics"


async def _scrape(session: aiohttp.ClientSession, base: str) -> Any:
    try:
        async with asyncio.timeout(3):
            async with session.get(metrics_url(base), allow_redirects=False) as response:
                if response.status != 200:
                    return None
                text = await response.text(errors="replace")
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
    snapshot = parse_metrics(text, time.monotonic())
    return snapshot if snapshot.flavour != "unknown" or snapshot.generation_tokens_total is not None else None


async def scrape_all(session: aiohttp.ClientSession, endpoints: Sequence[str]) -> list[Any]:
    """One snapshot per endpoint (None where ``/metrics`` did not answer with engine metrics)."""
    return list(await asyncio.gather(*(_scrape(session, base) for base in endpoints)))


def engine_window(before: Sequence[Any], after: Sequence[Any]) -> dict[str, Any] | None:
    """The engines' own figures between two scrapes: rates summed, latency quantiles of the worst."""
    rates: list[EngineRates] = [compute_rates(b, a) for b, a in zip(before, after, strict=True)
                                if b is not None and a is not None]
    if not rates:
        return None

    def total(name: str) -> float | None:
        values = [getattr(r, name) for r in rates if getattr(r, name) is not None]
        return round(sum(values), 3) if values else None

    def worst(name: str) -> float | None:
        values = [getattr(r, name) for r in rates if getattr(r, name) is not None]
        return round(max(values), 3) if values else None

    return {
        "instances": len(rates),
        "output_tokens_per_s": total("generation_tokens_per_s"),
        "prompt_tokens_per_s": total("prompt_tokens_per_s"),
        "requests_per_s": total("requests_per_s"),
        "ttft_p50_ms": worst("ttft_p50_ms"),
        "ttft_p99_ms": worst("ttft_p99_ms"),
        "itl_p50_ms": worst("itl_p50_ms"),
        "itl_p99_ms": worst("itl_p99_ms"),
        "e2e_p50_ms": worst("e2e_p50_ms"),
        "e2e_p99_ms": worst("e2e_p99_ms"),
    }


# --- levels and sweeps -----------------------------------------------------------------------------


@dataclass
class SweepState:
    """Progress shared with the driving thread: plain counters (written by the loop's thread only)."""

    level_index: int = 0
    concurrency: int = 0
    level_done: int = 0
    level_started: float = 0.0  # perf_counter
    model: str = ""  # the served model name, once the probe found it


def _abort_after(concurrency: int) -> int:
    return max(16, 2 * concurrency)


async def run_level(
    spec: LoadSpec,
    concurrency: int,
    prompt_for: Callable[[int], Prompt],
    *,
    requests: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    state: SweepState | None = None,
    offset: int = 0,
    scrape: bool = True,
) -> LevelResult:
    """Run ``concurrency`` workers that each send one request after another until ``requests`` were
    sent or ``duration_s`` passed (requests in flight then finish); ``stop`` cancels in-flight requests
    within about 0.1 s. ``offset`` numbers the requests (prompt index and endpoint round robin)."""
    if (requests is None) == (duration_s is None):
        raise ValueError("give requests or duration_s")
    stop = stop or threading.Event()
    state = state or SweepState()
    results: list[RequestResult] = []
    counter = 0
    streak = 0
    aborted = ""
    async with _session(spec, concurrency) as session:
        before = await scrape_all(session, spec.endpoints) if scrape else []
        started_wall, t0 = time.time(), time.perf_counter()
        state.level_started, state.level_done = t0, 0
        deadline = t0 + duration_s if duration_s is not None else math.inf

        async def worker() -> None:
            nonlocal counter, streak, aborted
            while not stop.is_set() and not aborted:
                if requests is not None and counter >= requests:
                    return
                if time.perf_counter() >= deadline:
                    return
                index = offset + counter
                counter += 1
                result = await send_one(session, spec, index, prompt_for(index))
                results.append(result)
                state.level_done += 1
                if result.ok:
                    streak = 0
                else:
                    streak += 1
                    if streak >= _abort_after(concurrency) and not aborted:
                        aborted = (f"{streak} requests in a row failed, the last with {result.error_kind}: "
                                   f"{result.error}")

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        cancelled = False
        while True:
            finished, _pending = await asyncio.wait(tasks, timeout=0.1)
            if len(finished) == len(tasks):
                break
            if stop.is_set() or aborted:
                cancelled = stop.is_set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                break
        ends = [r.end for r in results if r.ok]
        wall = (max(ends) if ends else time.perf_counter()) - t0
        engine = engine_window(before, await scrape_all(session, spec.endpoints)) if scrape and not cancelled else None
    return LevelResult(concurrency=concurrency, requests=results, started=started_wall, wall_s=wall,
                       aborted=aborted, cancelled=cancelled, engine=engine)


async def run_sweep(
    spec: LoadSpec,
    levels: Sequence[int],
    prompt_for: Callable[[int], Prompt],
    *,
    requests_per_level: Callable[[int], int] | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    state: SweepState | None = None,
    on_level: Callable[[LevelResult], None] | None = None,
    scrape: bool = True,
) -> list[LevelResult]:
    """Probe, then run each level in turn; stops after a cancelled or aborted level.

    Raises ProbeError when an endpoint cannot be benchmarked at all.
    """
    stop = stop or threading.Event()
    state = state or SweepState()
    spec = await probe(spec)
    state.model = spec.model
    out: list[LevelResult] = []
    offset = 0
    for index, concurrency in enumerate(levels):
        if stop.is_set():
            break
        state.level_index, state.concurrency = index, concurrency
        level = await run_level(
            spec, concurrency, prompt_for,
            requests=requests_per_level(concurrency) if requests_per_level else None,
            duration_s=duration_s, stop=stop, state=state, offset=offset, scrape=scrape,
        )
        offset += len(level.requests)
        out.append(level)
        if on_level:
            on_level(level)
        if level.cancelled or level.aborted:
            break
    return out
