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

import asyncio
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from jobs.simulator.config import SimulatorConfig, config_from_args
from jobs.simulator.metrics import EngineMetrics
from jobs.simulator.protocol import (
    DEFAULT_COMPLETION_MAX_TOKENS,
    NATURAL_LENGTH_RANGE,
    VOCABULARY,
    RequestError,
    dumps,
    estimate_prompt_tokens,
    json_body,
    message_text,
    token_usage,
)

__all__ = ["Simulator", "main", "serve"]

READY_LINE_PREFIX = "boom-simulator listening on"
FAULT_MODES = ("crash", "hang", "slow", "unhealthy", "recover")


@dataclass
class _Plan:
    """What one request will do: its sizes and its deterministic words."""

    prompt_tokens: int
    words: list[str]
    finish_reason: str
    stream: bool
    include_usage: bool


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
        self.metrics = EngineMetrics(config.model, self)

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
            return web.json_response({"status": "draining"}, status=503, dumps=dumps)
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503, dumps=dumps)
        if self.fault == "unhealthy":
            return web.json_response({"status": "unhealthy"}, status=503, dumps=dumps)
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
        return web.json_response({"object": "list", "data": [model]}, dumps=dumps)

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
            dumps=dumps,
        )

    async def fault_endpoint(self, request: web.Request) -> web.StreamResponse:
        """Inject a fault: ``{"mode": "crash"|"hang"|"slow"|"unhealthy"|"recover", ...}``."""
        try:
            body = await json_body(request)
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
            response = web.json_response({"mode": "crash", "exit_code": exit_code}, dumps=dumps)
            await response.prepare(request)
            await response.write_eof()
            asyncio.get_running_loop().call_soon(self._crash, exit_code)
            return response
        self.set_fault(mode, float(factor))
        return web.json_response({"mode": mode, "factor": self.slow_factor}, dumps=dumps)

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
            prompt_text = "\n".join(message_text(m) for m in messages)
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
            plan = self._plan(await json_body(request), chat)
        except RequestError as error:
            return error.response()
        if plan.stream:
            return await self._serve_stream(request, plan, chat, arrival)

        words: list[str] = []

        async def collect(index: int, word: str) -> None:
            words.append(word)

        await self._generate(plan, arrival, collect)
        created = int(time.time())
        usage = token_usage(plan.prompt_tokens, len(words))
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
        response = web.json_response(body, dumps=dumps)
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
        prefix = "data: " + dumps(head)[:-1] + ',"choices":[{"index":0,'
        last = len(plan.words) - 1
        final = dumps(plan.finish_reason)
        if chat:
            role = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            await response.write(f"data: {dumps({**head, 'choices': [role]})}\n\n".encode())

        async def send(index: int, word: str) -> None:
            body = ('"delta":{"content":%s}' if chat else '"text":%s') % dumps(word)
            reason = final if index == last else "null"
            await response.write(
                f'{prefix}{body},"logprobs":null,"finish_reason":{reason},"stop_reason":null}}]}}\n\n'.encode()
            )

        try:
            await self._generate(plan, arrival, send)
            if plan.include_usage:
                usage_chunk = {**head, "choices": [], "usage": token_usage(plan.prompt_tokens, len(plan.words))}
                await response.write(f"data: {dumps(usage_chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            return response  # the client went away mid-stream: an aborted request, not a finished one
        self._after_request()
        return response


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
