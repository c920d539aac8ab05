"""The simulator engine: an OpenAI-compatible server that behaves like a small vLLM.

It is part of the product (see DESIGN.md): it lets the console run on a laptop and lets tests
launch, health-check, scrape, crash and restart a real process. It loads no model. It produces
words from a built-in vocabulary at a rate that depends on load, and exposes vLLM V1's metric names.

Run it as ``python -m jobs.simulator --host 127.0.0.1 --port 8000 --model NAME``; ``--help`` lists
every option (each also read from a ``BOOM_SIM_<OPTION>`` environment variable). Once it listens
it prints one line, ``boom-simulator listening on http://HOST:PORT model=NAME pid=PID``; with
``--port 0`` the system picks a free port and that line tells which.

Endpoints
    ``GET /health``          200 (empty body) when ready; 503 while starting, draining, or made unhealthy.
    ``GET /v1/models``       OpenAI list shape, one model, ``owned_by: "simulator"``.
    ``POST /v1/completions``, ``POST /v1/chat/completions``
                             non-streaming, or ``stream: true`` SSE ending with ``data: [DONE]``;
                             ``stream_options.include_usage`` adds a usage chunk (``choices: []``).
    ``GET /metrics``         Prometheus text from prometheus_client, vLLM V1 names and buckets,
                             labels ``engine="0"`` and ``model_name``.
    ``POST /_sim/fault``     ``{"mode": "crash" [, "exit_code": 1]}``: answer, then ``os._exit``;
                             ``"hang"``: /health, /metrics and inference stop answering (in-flight
                             streams freeze), the process stays alive; ``"slow" [, "factor": 10]``:
                             every latency multiplied by ``factor``; ``"unhealthy"``: /health
                             answers 503, inference still works; ``"recover"``: back to normal.
    ``GET /_sim/state``      fault mode, running, waiting and finished counts (for tests and demos).
    The ``/_sim/`` endpoints keep answering while hung, so a demo can recover without a restart.

Load model
    A request waits in a queue (``num_requests_waiting``) while ``max_concurrency`` requests run.
    Once admitted, its first token comes ``ttft_ms * (1 + batch_slowdown * running)`` after
    admission, and each next one ``tpot_ms * (1 + batch_slowdown * running)`` after the previous
    one, ``running`` being the number of requests running at that moment; a "slow" fault
    multiplies both. TTFT and end-to-end latency are measured from arrival, queue time included.
    KV-cache usage is the prompt and generated tokens of running requests over ``kv_cache_tokens``.

Tokens
    Prompt tokens are estimated as ``ceil(characters / 4)`` (at least 1) of the prompt text, plus
    3 per chat message for the chat template; a prompt given as token ids counts its ids.
    Output tokens are words of :data:`VOCABULARY`, one word per token, chosen by a random generator
    seeded with ``--seed``, the prompt text and the request's ``seed`` field: the same request gives
    the same answer, whatever else runs beside it. The output ends after ``max_tokens`` tokens
    (``finish_reason: "length"``), or earlier at a "natural" length drawn from 16 to 384 tokens
    (``"stop"``) unless ``ignore_eos`` is true. ``max_tokens`` defaults to 16 for completions (as
    OpenAI's and vLLM's) and to the room left in ``max_model_len`` for chat.

Shutdown
    SIGTERM or SIGINT: /health and new requests answer 503, running requests get ``drain_s`` to
    finish, the rest are cut, and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import Histogram as PromHistogram

__all__ = [
    "VOCABULARY",
    "SimulatorConfig",
    "Simulator",
    "build_arg_parser",
    "config_from_args",
    "estimate_prompt_tokens",
    "main",
    "serve",
]

READY_LINE_PREFIX = "boom-simulator listening on"

VOCABULARY: tuple[str, ...] = (
    "the", "model", "serves", "tokens", "from", "a", "cluster", "of", "accelerators", "and",
    "every", "node", "reports", "its", "health", "while", "requests", "wait", "in", "queue",
    "latency", "grows", "with", "load", "so", "operators", "watch", "throughput", "cache", "memory",
    "batch", "prefill", "decode", "stream", "engine", "replica", "restarts", "after", "crash", "on",
    "another", "server", "quickly", "inference", "is", "steady", "today", "weights", "are", "loaded",
    "context", "window", "holds", "the", "prompt", "answer", "follows", "here", "simply", "well",
    "metrics", "show", "it", "clearly",
)  # fmt: skip

# vLLM V1's bucket bounds (vllm/v1/metrics/loggers.py), so dashboards built on the simulator read
# real engines the same way.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
)  # fmt: skip
E2E_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip


def _dumps(value: Any) -> str:
    """Compact JSON, as vLLM writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


CHARS_PER_TOKEN = 4
TOKENS_PER_CHAT_MESSAGE = 3
NATURAL_LENGTH_RANGE = (16, 384)
DEFAULT_COMPLETION_MAX_TOKENS = 16
FAULT_MODES = ("crash", "hang", "slow", "unhealthy", "recover")


@dataclass
class SimulatorConfig:
    """Everything the command line sets; see ``python -m jobs.simulator --help``."""

    model: str = "simulator"
    host: str = "127.0.0.1"
    port: int = 8000
    ttft_ms: float = 80.0
    tpot_ms: float = 15.0
    batch_slowdown: float = 0.004
    max_concurrency: int = 256
    startup_s: float = 0.0
    seed: int = 0
    max_model_len: int = 8192
    kv_cache_tokens: int = 65536
    crash_after: int = 0  # exit after this many finished inference requests; 0: never
    crash_exit_code: int = 1
    drain_s: float = 0.5


class RequestError(Exception):
    """A bad request, answered with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def response(self) -> web.Response:
        """The error as vLLM shapes it."""
        kind = {400: "BadRequestError", 404: "NotFoundError", 503: "ServiceUnavailableError"}
        body = {
            "object": "error",
            "message": self.message,
            "type": kind.get(self.status, "Error"),
            "param": self.param,
            "code": self.status,
        }
        return web.json_response(body, status=self.status, dumps=_dumps)


def estimate_prompt_tokens(prompt: Any) -> int:
    """Estimate the token count of a completion prompt or a list of chat messages.

    Text counts ``ceil(len / 4)`` tokens (at least 1); a list of ints is token ids already; a list
    of chat messages counts each message's text plus 3 tokens of chat template.
    """
    if isinstance(prompt, str):
        return max(1, math.ceil(len(prompt) / CHARS_PER_TOKEN))
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return sum(math.ceil(len(_message_text(m)) / CHARS_PER_TOKEN) + TOKENS_PER_CHAT_MESSAGE for m in prompt)
    raise RequestError(400, "prompt must be a string or a list of token ids", "prompt")


def _message_text(message: dict) -> str:
    """The text of one chat message: a string, or the text parts of a content list."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    raise RequestError(400, "message content must be a string or a list of parts", "messages")


@dataclass
class _Plan:
    """What one request will do: its sizes and its deterministic words."""

    prompt_tokens: int
    words: list[str]
    finish_reason: str
    stream: bool
    include_usage: bool


class _Metrics:
    """The vLLM V1 series the simulator exposes, in a registry of its own."""

    def __init__(self, model: str, sim: Simulator) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name", "engine"]
        values = {"model_name": model, "engine": "0"}
        r = self.registry

        running = Gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", labels, registry=r
        )
        running.labels(**values).set_function(lambda: sim.running)
        waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels, registry=r)
        waiting.labels(**values).set_function(lambda: sim.waiting)
        kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, registry=r)
        kv.labels(**values).set_function(lambda: min(1.0, sim.kv_tokens / max(1, sim.config.kv_cache_tokens)))

        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=r
        ).labels(**values)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=r
        ).labels(**values)
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*labels, "finished_reason"],
            registry=r,
        )
        self.success = {reason: success.labels(**values, finished_reason=reason) for reason in ("stop", "length")}
        self.ttft = PromHistogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            labels,
            buckets=TTFT_BUCKETS,
            registry=r,
        ).labels(**values)
        self.itl = PromHistogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            labels,
            buckets=ITL_BUCKETS,
            registry=r,
        ).labels(**values)
        self.e2e = PromHistogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            labels,
            buckets=E2E_BUCKETS,
            registry=r,
        ).labels(**values)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class Simulator:
    """The state of one simulated engine and its HTTP handlers."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.started_at = time.monotonic()
        self.created = int(time.time())
        self.running = 0
        self.waiting = 0
        self.kv_tokens = 0
        self.finished = 0
        self.fault: str | None = None
        self.slow_factor = 1.0
        self.draining = False
        self._not_hung = asyncio.Event()
        self._not_hung.set()
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._generating: set[asyncio.Task] = set()
        self.metrics = _Metrics(config.model, self)

    # -- state -------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the simulated start-up delay has passed."""
        return time.monotonic() - self.started_at >= self.config.startup_s

    @property
    def in_flight(self) -> int:
        """Requests admitted or queued."""
        return self.running + self.waiting

    def begin_drain(self) -> None:
        """Refuse new work and answer /health with 503; a hung simulator wakes up to stop quickly."""
        self.draining = True
        self._not_hung.set()

    async def cut_requests(self, timeout: float = 0.2) -> None:
        """Cancel every queued or running request (the end of a drain) and wait for them to unwind."""
        tasks = [task for task in self._generating if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _hang_gate(self) -> None:
        """Block for as long as the "hang" fault is on."""
        if not self._not_hung.is_set():
            await self._not_hung.wait()

    def set_fault(self, mode: str, factor: float = 10.0) -> None:
        """Switch to a fault mode ("hang", "slow", "unhealthy") or back to normal ("recover")."""
        self.fault = None if mode == "recover" else mode
        self.slow_factor = factor if mode == "slow" else 1.0
        if mode == "hang":
            self._not_hung.clear()
        else:
            self._not_hung.set()
        _say(f"fault: {mode}" + (f" factor={factor:g}" if mode == "slow" else ""))

    def _delay(self, base_ms: float) -> float:
        """Seconds of one step at the current load."""
        return base_ms / 1000.0 * (1.0 + self.config.batch_slowdown * self.running) * self.slow_factor

    def _crash(self, exit_code: int) -> None:
        _say(f"simulated crash: exiting with code {exit_code}")
        os._exit(exit_code)

    # -- routes ------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/metrics", self.prometheus_metrics)
        app.router.add_post("/_sim/fault", self.fault_endpoint)
        app.router.add_get("/_sim/state", self.state_endpoint)
        return app

    async def health(self, request: web.Request) -> web.Response:
        """200 when ready, 503 with the reason otherwise; never answers while hung."""
        await self._hang_gate()
        if self.draining:
            return web.json_response({"status": "draining"}, status=503, dumps=_dumps)
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503, dumps=_dumps)
        if self.fault == "unhealthy":
            return web.json_response({"status": "unhealthy"}, status=503, dumps=_dumps)
        return web.Response(status=200)

    async def models(self, request: web.Request) -> web.Response:
        """The served model, in OpenAI's list shape."""
        await self._hang_gate()
        model = {
            "id": self.config.model,
            "object": "model",
            "created": self.created,
            "owned_by": "simulator",
            "root": self.config.model,
            "parent": None,
            "max_model_len": self.config.max_model_len,
        }
        return web.json_response({"object": "list", "data": [model]}, dumps=_dumps)

    async def prometheus_metrics(self, request: web.Request) -> web.Response:
        """vLLM V1-named series in Prometheus text format."""
        await self._hang_gate()
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def state_endpoint(self, request: web.Request) -> web.Response:
        """Counters and fault mode, for tests and demos; answers even while hung."""
        return web.json_response(
            {
                "model": self.config.model,
                "ready": self.ready,
                "fault": self.fault,
                "slow_factor": self.slow_factor,
                "running": self.running,
                "waiting": self.waiting,
                "finished": self.finished,
                "draining": self.draining,
            },
            dumps=_dumps,
        )

    async def fault_endpoint(self, request: web.Request) -> web.StreamResponse:
        """Inject a fault: ``{"mode": "crash"|"hang"|"slow"|"unhealthy"|"recover", ...}``."""
        try:
            body = await _json_body(request)
            mode = body.get("mode")
            if mode not in FAULT_MODES:
                raise RequestError(400, f"mode must be one of {', '.join(FAULT_MODES)}", "mode")
            factor = body.get("factor", 10.0)
            if mode == "slow" and (
                isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1e4
            ):
                raise RequestError(400, "factor must be a number above 0 and at most 10000", "factor")
            exit_code = body.get("exit_code", self.config.crash_exit_code)
            if mode == "crash" and (
                isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 0 <= exit_code <= 255
            ):
                raise RequestError(400, "exit_code must be an integer from 0 to 255", "exit_code")
        except RequestError as error:
            return error.response()
        if mode == "crash":
            response = web.json_response({"mode": "crash", "exit_code": exit_code}, dumps=_dumps)
            await response.prepare(request)
            await response.write_eof()
            asyncio.get_running_loop().call_soon(self._crash, exit_code)
            return response
        self.set_fault(mode, float(factor))
        return web.json_response({"mode": mode, "factor": self.slow_factor}, dumps=_dumps)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions``."""
        return await self._serve(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        return await self._serve(request, chat=True)

    # -- inference ---------------------------------------------------------------------------------

    def _plan(self, body: dict, chat: bool) -> _Plan:
        """Validate a request and decide its prompt size and its words."""
        model = body.get("model", self.config.model)
        if model != self.config.model:
            raise RequestError(404, f"The model `{model}` does not exist.", "model")
        n = body.get("n")
        if n not in (None, 1):
            raise RequestError(400, "the simulator generates one choice per request (n=1)", "n")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise RequestError(400, "messages must be a non-empty list of objects", "messages")
            prompt_tokens = estimate_prompt_tokens(messages)
            prompt_text = "\n".join(_message_text(m) for m in messages)
            max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
                prompt = prompt[0]
            if not isinstance(prompt, str | list) or (
                isinstance(prompt, list) and (not prompt or not all(isinstance(t, int) for t in prompt))
            ):
                raise RequestError(400, "prompt must be a string or a list of token ids (one prompt)", "prompt")
            prompt_tokens = estimate_prompt_tokens(prompt)
            prompt_text = prompt if isinstance(prompt, str) else ",".join(map(str, prompt))
            max_tokens = body.get("max_tokens", DEFAULT_COMPLETION_MAX_TOKENS)
        room = self.config.max_model_len - prompt_tokens
        if room < 1:
            raise RequestError(
                400,
                f"This model's maximum context length is {self.config.max_model_len} tokens. "
                f"However, you requested {prompt_tokens} tokens in the prompt.",
            )
        if max_tokens is None:
            max_tokens = room
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError(400, "max_tokens must be a positive integer", "max_tokens")
        if max_tokens > room:
            raise RequestError(
                400,
                f"This model's maximum context length is {self.config.max_model_len} tokens. However, you "
                f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
                f"{max_tokens} in the completion).",
                "max_tokens",
            )
        min_tokens = body.get("min_tokens", 0)
        if isinstance(min_tokens, bool) or not isinstance(min_tokens, int) or min_tokens < 0:
            raise RequestError(400, "min_tokens must be a non-negative integer", "min_tokens")
        stream = body.get("stream")
        stream = False if stream is None else stream
        if not isinstance(stream, bool):
            raise RequestError(400, "stream must be a boolean", "stream")
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "stream_options must be an object", "stream_options")

        rng = random.Random(f"{self.config.seed}|{body.get('seed')}|{prompt_text}")
        natural = max(rng.randint(*NATURAL_LENGTH_RANGE), min_tokens)
        if body.get("ignore_eos") is True or natural >= max_tokens:
            count, finish_reason = max_tokens, "length"
        else:
            count, finish_reason = natural, "stop"
        words = [rng.choice(VOCABULARY) for _ in range(count)]
        words = [words[0], *(" " + word for word in words[1:])]
        return _Plan(prompt_tokens, words, finish_reason, stream, bool(options.get("include_usage")))

    async def _generate(self, plan: _Plan, arrival: float, emit: Callable[[int, str], Awaitable[None]]) -> None:
        """Queue, then produce each word at the load-dependent pace, calling ``emit(index, word)``.

        Hot path (one call per token of every running request): keep it to arithmetic and one sleep.
        """
        task = asyncio.current_task()
        if task is not None:
            self._generating.add(task)
            task.add_done_callback(self._generating.discard)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        held = plan.prompt_tokens
        self.kv_tokens += held
        try:
            loop = asyncio.get_running_loop()
            due = loop.time() + self._delay(self.config.ttft_ms)
            await asyncio.sleep(due - loop.time())
            await self._hang_gate()
            now = loop.time()
            self.metrics.prompt_tokens.inc(plan.prompt_tokens)
            self.metrics.ttft.observe(now - arrival)
            last = now
            for index, word in enumerate(plan.words):
                if index:
                    # Deadlines, not plain sleeps: a late wake-up (timer slack, a slow client)
                    # shortens the next wait, so the pace stays what the model says. Never more
                    # than one step is made up at once: a stalled stream does not burst.
                    due = max(due + self._delay(self.config.tpot_ms), loop.time())
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await self._hang_gate()
                    now = loop.time()
                    self.metrics.itl.observe(now - last)
                    last = now
                self.metrics.generation_tokens.inc()
                self.kv_tokens += 1
                held += 1
                await emit(index, word)
        finally:
            self.kv_tokens -= held
            self.running -= 1
            self._slots.release()
        self.metrics.e2e.observe(loop.time() - arrival)
        self.metrics.success[plan.finish_reason].inc()
        self.finished += 1

    def _after_request(self) -> None:
        """Crash once ``crash_after`` requests have finished, if asked to."""
        if self.config.crash_after and self.finished >= self.config.crash_after:
            asyncio.get_running_loop().call_soon(self._crash, self.config.crash_exit_code)

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        await self._hang_gate()
        try:
            if self.draining:
                raise RequestError(503, "the server is shutting down")
            if not self.ready:
                raise RequestError(503, "the model is still loading")
            plan = self._plan(await _json_body(request), chat)
        except RequestError as error:
            return error.response()
        if plan.stream:
            return await self._serve_stream(request, plan, chat, arrival)

        words: list[str] = []

        async def collect(index: int, word: str) -> None:
            words.append(word)

        await self._generate(plan, arrival, collect)
        created = int(time.time())
        usage = _usage(plan.prompt_tokens, len(words))
        text = "".join(words)
        if chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": plan.finish_reason,
                "stop_reason": None,
            }
            body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion"}
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": plan.finish_reason,
                "stop_reason": None,
            }
            body = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion"}
        body.update(created=created, model=self.config.model, choices=[choice], usage=usage)
        response = web.json_response(body, dumps=_dumps)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away before its answer was ready
        self._after_request()
        return response

    async def _serve_stream(self, request: web.Request, plan: _Plan, chat: bool, arrival: float) -> web.StreamResponse:
        """Server-sent events as vLLM writes them: one chunk per token, then usage and [DONE]."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.config.model,
        }
        # Hot path: each chunk is a template plus one json.dumps of the word.
        prefix = "data: " + _dumps(head)[:-1] + ',"choices":[{"index":0,'
        last = len(plan.words) - 1
        final = _dumps(plan.finish_reason)
        if chat:
            role = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            await response.write(f"data: {_dumps({**head, 'choices': [role]})}\n\n".encode())

        async def send(index: int, word: str) -> None:
            body = ('"delta":{"content":%s}' if chat else '"text":%s') % _dumps(word)
            reason = final if index == last else "null"
            await response.write(
                f'{prefix}{body},"logprobs":null,"finish_reason":{reason},"stop_reason":null}}]}}\n\n'.encode()
            )

        try:
            await self._generate(plan, arrival, send)
            if plan.include_usage:
                usage_chunk = {**head, "choices": [], "usage": _usage(plan.prompt_tokens, len(plan.words))}
                await response.write(f"data: {_dumps(usage_chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            return response  # the client went away mid-stream: an aborted request, not a finished one
        self._after_request()
        return response


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


async def _json_body(request: web.Request) -> dict:
    """The request's JSON object, or a 400."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body


def _say(line: str) -> None:
    """One line on stdout, flushed at once (the executor's log tail reads it)."""
    print(line, flush=True)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # A deep backlog: benchmarks open hundreds of connections at once.
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(config: SimulatorConfig) -> int:
    """Run the simulator until SIGTERM or SIGINT; returns the process exit code (0)."""
    simulator = Simulator(config)
    sock = _listening_socket(config.host, config.port)
    runner = web.AppRunner(simulator.build_app(), access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=2048)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    _say(f"{READY_LINE_PREFIX} http://{shown}:{port} model={config.model} pid={os.getpid()}")
    await stop.wait()

    _say("received a stop signal: draining")
    simulator.begin_drain()
    deadline = loop.time() + config.drain_s
    while simulator.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.02)
    # Cut what is left ourselves: aiohttp's own shutdown would wait shutdown_timeout twice over.
    await simulator.cut_requests()
    await runner.cleanup()
    _say("stopped")
    return 0


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"BOOM_SIM_{name.upper()}", default)


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line; each option's default may come from ``BOOM_SIM_<OPTION>``."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs.simulator",
        description="BooM Console's simulated inference engine: OpenAI-compatible, vLLM metric names.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = SimulatorConfig()
    add = parser.add_argument
    add("--host", default=_env("host", d.host), help="address to listen on")
    add(
        "--port",
        type=int,
        default=_env("port", d.port),
        help="port; 0 picks a free one",
    )
    add("--model", default=_env("model", d.model), help="served model name")
    add("--ttft-ms", type=float, default=_env("ttft_ms", d.ttft_ms), help="base time to first token")
    add("--tpot-ms", type=float, default=_env("tpot_ms", d.tpot_ms), help="base time per output token")
    add(
        "--batch-slowdown",
        type=float,
        default=_env("batch_slowdown", d.batch_slowdown),
        help="latency grows by this fraction per running request",
    )
    add("--max-concurrency", type=int, default=_env("max_concurrency", d.max_concurrency),
        help="requests run at once; more wait in the queue")  # fmt: skip
    add("--startup-s", type=float, default=_env("startup_s", d.startup_s), help="seconds /health answers 503")
    add("--seed", type=int, default=_env("seed", d.seed), help="seed of the generated words")
    add("--max-model-len", type=int, default=_env("max_model_len", d.max_model_len), help="context length")
    add("--kv-cache-tokens", type=int, default=_env("kv_cache_tokens", d.kv_cache_tokens),
        help="tokens the simulated KV cache holds")  # fmt: skip
    add("--crash-after", type=int, default=_env("crash_after", d.crash_after),
        help="exit after this many finished requests (0: never)")  # fmt: skip
    add("--crash-exit-code", type=int, default=_env("crash_exit_code", d.crash_exit_code),
        help="exit code of a simulated crash")  # fmt: skip
    add(
        "--drain-s",
        type=float,
        default=_env("drain_s", d.drain_s),
        help="grace for running requests on SIGTERM",
    )
    return parser


def config_from_args(argv: list[str] | None) -> SimulatorConfig:
    """Parse and check the command line; exits with status 2 and a message when a value is wrong."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    checks = [
        (args.ttft_ms >= 0, "--ttft-ms must not be negative"),
        (args.tpot_ms >= 0, "--tpot-ms must not be negative"),
        (args.batch_slowdown >= 0, "--batch-slowdown must not be negative"),
        (args.max_concurrency >= 1, "--max-concurrency must be at least 1"),
        (args.startup_s >= 0, "--startup-s must not be negative"),
        (0 <= args.port <= 65535, "--port must be from 0 to 65535"),
        (args.max_model_len >= 2, "--max-model-len must be at least 2"),
        (args.kv_cache_tokens >= 1, "--kv-cache-tokens must be at least 1"),
        (args.crash_after >= 0, "--crash-after must not be negative"),
        (0 <= args.crash_exit_code <= 255, "--crash-exit-code must be from 0 to 255"),
        (args.drain_s >= 0, "--drain-s must not be negative"),
        (bool(args.model), "--model must not be empty"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    return SimulatorConfig(**{k: v for k, v in vars(args).items()})


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until stopped; the process exit code."""
    config = config_from_args(argv)
    try:
        return asyncio.run(serve(config))
    except OSError as error:  # the port is taken, the address is not ours...
        print(
            f"boom-simulator: cannot listen on {config.host}:{config.port}: {error}",
            file=sys.stderr,
            flush=True,
        )
        return 2
