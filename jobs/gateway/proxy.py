"""Forwarding one request to an engine: pick an instance, retry what failed before the first byte,
pass streams through event by event.

A failure before anything reached the client (connection refused or reset, a 502/503 from the
engine, a stream that closed before its first chunk) ejects the instance for a few seconds and
tries another, at most :data:`MAX_ATTEMPTS` in all, within the request's deadline. Once the client
has bytes, a broken stream ends with an SSE error event in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from jobs.gateway.balancer import Balancer
from jobs.gateway.errors import GatewayError, sse_error_event
from jobs.gateway.state import Resolution, Upstream

MAX_ATTEMPTS = 3  # the first try and two retries
RETRYABLE_STATUS = frozenset({502, 503})
CONNECT_TIMEOUT_S = 3.0
NO_INSTANCE_RETRY_AFTER_S = 2
UPSTREAM_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Outcome:
    """What happened to one request, for usage, limits and metrics."""

    status: int = 0
    job_id: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    error_kind: str | None = None
    response: web.StreamResponse | None = None  # set once a stream's headers went to the client

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def take_usage(self, usage) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = _int(usage.get("prompt_tokens"))
            self.completion_tokens = _int(usage.get("completion_tokens"))


def _int(value) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


class _Retry(Exception):
    """This instance failed before the client got a byte: try another."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, balancer: Balancer) -> None:
        self.session = session
        self.balancer = balancer

    async def forward(self, request: web.Request, resolution: Resolution, path: str, body: dict, *,
                      started: float, deadline: float, outcome: Outcome) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        stream = body.get("stream") is True
        client_wants_usage = False
        if stream:
            options = body.get("stream_options")
            client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        tried: set[str] = set()
        attempts = 0
        last: _Retry | None = None
        for pool in resolution.pools:
            while attempts < MAX_ATTEMPTS:
                upstream = self.balancer.pick(pool, tried)
                if upstream is None:
                    break
                tried.add(upstream.base_url)
                attempts += 1
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise GatewayError(504, "The request's deadline passed before an instance answered.", "timeout")
                body["model"] = upstream.served_name
                payload = json.dumps(body).encode()
                timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=min(CONNECT_TIMEOUT_S, remaining))
                outcome.job_id = upstream.job_id
                self.balancer.acquire(upstream)
                try:
                    if stream:
                        response = await self._stream(request, upstream, path, payload, timeout, outcome,
                                                      started=started, strip_usage=not client_wants_usage)
                    else:
                        response = await self._once(upstream, path, payload, timeout, outcome)
                except _Retry as problem:
                    self.balancer.failed(upstream)
                    last = problem
                    if loop.time() >= deadline:
                        raise GatewayError(504, "The request's deadline passed.", "timeout") from None
                    continue
                finally:
                    self.balancer.release(upstream)
                self.balancer.succeeded(upstream)
                return response
            if attempts >= MAX_ATTEMPTS:
                break
        if last is None:
            raise GatewayError(503, f"No ready instance serves {resolution.name!r} right now.", "no_ready_instance",
                               retry_after=NO_INSTANCE_RETRY_AFTER_S)
        if last.status == 503:
            raise GatewayError(503, f"Every instance tried for {resolution.name!r} is unavailable ({attempts} tries).",
                               "upstream_unavailable", retry_after=NO_INSTANCE_RETRY_AFTER_S)
        raise GatewayError(502, f"The engine failed for {resolution.name!r} after {attempts} tries: {last}.",
                           "upstream_error")

    async def _once(self, upstream: Upstream, path: str, payload: bytes, timeout: aiohttp.ClientTimeout,
                    outcome: Outcome) -> web.Response:
        try:
            async with self.session.post(upstream.base_url + path, data=payload, headers=UPSTREAM_HEADERS,
                                         timeout=timeout) as upstream_response:
                data = await upstream_response.read()
                status = upstream_response.status
                content_type = upstream_response.headers.get("Content-Type", "application/json")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(_describe(exc)) from None
        if status in RETRYABLE_STATUS:
            raise _Retry(f"HTTP {status}", status)
        if status == 200:
            try:
                outcome.take_usage(json.loads(data).get("usage"))
            except (ValueError, AttributeError):
                pass
        else:
            outcome.error_kind = f"upstream_{status}"
        return web.Response(status=status, body=data, headers={"Content-Type": content_type})

    async def _stream(self, request: web.Request, upstream: Upstream, path: str, payload: bytes,
                      timeout: aiohttp.ClientTimeout, outcome: Outcome, *, started: float,
                      strip_usage: bool) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        try:
            upstream_response = await self.session.post(upstream.base_url + path, data=payload,
                                                        headers=UPSTREAM_HEADERS, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(_describe(exc)) from None
        async with upstream_response:
            status = upstream_response.status
            if status != 200:
                try:
                    data = await upstream_response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise _Retry(_describe(exc)) from None
                if status in RETRYABLE_STATUS:
                    raise _Retry(f"HTTP {status}", status)
                outcome.error_kind = f"upstream_{status}"
                return web.Response(status=status, body=data, headers={
                    "Content-Type": upstream_response.headers.get("Content-Type", "application/json")})
            chunks = upstream_response.content.iter_any()
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                raise _Retry("the stream closed before its first byte") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Retry(_describe(exc)) from None
            response = web.StreamResponse(status=200, headers={
                "Content-Type": upstream_response.headers.get("Content-Type", "text/event-stream"),
                "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            await response.prepare(request)
            outcome.response = response
            events = SseUsage(strip=strip_usage)
            chunk = first
            while True:
                out = events.feed(chunk)
                if out:
                    await response.write(out)  # a client gone raises ConnectionResetError to the handler
                    if outcome.ttft_s is None:
                        outcome.ttft_s = loop.time() - started
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.balancer.failed(upstream)
                    outcome.error_kind = "stream_broken"
                    await response.write(events.flush() + sse_error_event(
                        f"The engine's stream broke: {_describe(exc)}.", "upstream_error"))
                    break
            tail = events.flush()
            if tail:
                await response.write(tail)
            outcome.take_usage(events.usage)
            await response.write_eof()
            return response


class SseUsage:
    """Passes server-sent events through as soon as each is complete, reads the usage chunk and
    drops it when the client did not ask for usage."""

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.buffer = b""
        self.usage: dict | None = None

    def feed(self, chunk: bytes) -> bytes:
        data = self.buffer + chunk if self.buffer else chunk
        sep = b"\n\n" if b"\r\n\r\n" not in data else b"\r\n\r\n"
        end = data.rfind(sep)
        if end < 0:
            self.buffer = data
            return b""
        complete, self.buffer = data[: end + len(sep)], data[end + len(sep):]
        if b'"usage"' not in complete:
            return complete
        kept = []
        for event in complete.split(sep)[:-1]:
            if b'"usage"' in event and not self._take(event):
                continue
            kept.append(event + sep)
        return b"".join(kept)

    def _take(self, event: bytes) -> bool:
        """Read a usage event; False when it is to be dropped."""
        for line in event.splitlines():
            if not line.startswith(b"data:"):
                continue
            try:
                payload = json.loads(line[5:])
            except ValueError:
                return True
            if not isinstance(payload, dict) or not isinstance(payload.get("usage"), dict):
                return True
            self.usage = payload["usage"]
            return not (self.strip and payload.get("choices") == [])
        return True

    def flush(self) -> bytes:
        rest, self.buffer = self.buffer, b""
        return rest


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
