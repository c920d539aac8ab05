"""The gateway's HTTP server (aiohttp): OpenAI-compatible endpoints in front of the jobs' engines.

``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` are authenticated by API
key, limited, resolved to a job (route, served name or ``model@alias``), forwarded by
:mod:`jobs.gateway.proxy` and counted by :mod:`jobs.gateway.usage`. ``GET /v1/models`` lists what
the key may use; ``/health`` and ``/metrics`` are for operators. Every answer the gateway makes up
is an OpenAI-shaped error (:mod:`jobs.gateway.errors`); CORS lets the console's playground call it
from the browser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from django.conf import settings

from jobs.gateway.balancer import Balancer
from jobs.gateway.errors import GatewayError, error_response, sse_error_event
from jobs.gateway.keys import KEY_PREFIX, digest
from jobs.gateway.limits import LocalLimits, RedisLimits
from jobs.gateway.metrics import GatewayMetrics
from jobs.gateway.proxy import Forwarder, Outcome
from jobs.gateway.state import DatabaseThread, KeyView, StateCache
from jobs.gateway.usage import UsageRecorder

log = logging.getLogger("jobs.gateway")

ENDPOINTS = {"/v1/chat/completions": "/chat/completions", "/v1/completions": "/completions",
             "/v1/embeddings": "/embeddings"}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


class Gateway:
    """One gateway process's state: the snapshot cache, balancer, limits, usage and metrics."""

    def __init__(self, *, redis_url: str | None = None, redis_namespace: str = "boom:gateway",
                 source: str | None = None, state_interval_s: float | None = None,
                 usage_interval_s: float | None = None) -> None:
        self.db = DatabaseThread()
        self.state = StateCache(self.db, **({"interval_s": state_interval_s} if state_interval_s else {}))
        self.usage = UsageRecorder(self.db, source, **({"interval_s": usage_interval_s} if usage_interval_s else {}))
        self.limits = RedisLimits(redis_url, redis_namespace) if redis_url else LocalLimits()
        self.balancer = Balancer()
        self.metrics = GatewayMetrics()
        self.max_body = int(settings.CONSOLE_GATEWAY_MAX_BODY_BYTES)
        self.timeout_s = float(settings.CONSOLE_GATEWAY_TIMEOUT_S)
        self.session: aiohttp.ClientSession | None = None
        self.forwarder: Forwarder | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def startup(self, _app: web.Application) -> None:
        # keepalive below the engines' own idle timeouts (llama-server: 5 s) so a pooled connection
        # is not found closed by the engine.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4, ttl_dns_cache=60)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self.forwarder = Forwarder(self.session, self.balancer)
        await self.state.start()
        await self.usage.start()

    async def cleanup(self, _app: web.Application) -> None:
        await self.state.stop()
        await self.usage.stop()
        if self.session is not None:
            await self.session.close()
        await self.limits.close()
        await self.db.close()

    # -- request path ------------------------------------------------------------------------------

    async def authenticate(self, request: web.Request) -> KeyView:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header or scheme.lower() != "bearer" or not token:
            raise GatewayError(401, "Missing API key: send 'Authorization: Bearer bk-...'.", "missing_api_key")
        if not self.state.snapshot.loaded_at:
            raise GatewayError(503, "The gateway is starting: retry in a moment.", "gateway_starting", retry_after=1)
        if not token.startswith(KEY_PREFIX):
            raise GatewayError(401, "Invalid API key.", "invalid_api_key")
        arrived = time.monotonic()
        hashed = digest(token)
        key = self.state.snapshot.keys.get(hashed)
        if key is None:
            # Perhaps created a moment ago (the playground mints a key and uses it at once).
            await self.state.refresh_on_miss(arrived)
            key = self.state.snapshot.keys.get(hashed)
        if key is None:
            raise GatewayError(401, "Invalid API key.", "invalid_api_key")
        if key.revoked:
            raise GatewayError(401, f"API key {key.prefix}… was revoked.", "revoked_api_key")
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise GatewayError(401, f"API key {key.prefix}… expired at {key.expires_at:%Y-%m-%d %H:%M} UTC.",
                               "expired_api_key")
        return key

    async def read_body(self, request: web.Request) -> dict:
        if request.content_length is not None and request.content_length > self.max_body:
            raise _too_large(self.max_body)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(self.max_body) from None
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise GatewayError(400, "The body is not valid JSON.", "invalid_json") from None
        if not isinstance(body, dict):
            raise GatewayError(400, "The body must be a JSON object.", "invalid_json")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "'model' is required: a model name from GET /v1/models.", "missing_model",
                               param="model")
        return body

    async def inference(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = Outcome()
        key: KeyView | None = None
        admitted = False
        model, label, route_id = "", "", None
        try:
            key = await self.authenticate(request)
            body = await self.read_body(request)
            model = body["model"]
            if not key.may_use(model):
                raise GatewayError(403, f"This key may not use the model {model!r}.", "model_not_allowed",
                                   param="model")
            resolution = self.state.snapshot.resolve(model)
            if resolution is None:
                raise GatewayError(404, f"The model {model!r} does not exist: see GET /v1/models.",
                                   "model_not_found", param="model")
            label, route_id = model, resolution.route_id
            if key.limited:
                await self.limits.admit(key)
                admitted = True
            response = await self.forwarder.forward(request, resolution, ENDPOINTS[request.path], body,
                                                    started=started, deadline=started + self.timeout_s,
                                                    outcome=outcome)
            outcome.status = response.status
            return response
        except GatewayError as error:
            outcome.status, outcome.error_kind = error.status, error.kind
            return error_response(error)
        except (ConnectionResetError, asyncio.CancelledError) as gone:  # the client hung up
            outcome.status, outcome.error_kind = 499, "client_gone"
            if isinstance(gone, asyncio.CancelledError):
                raise
            return outcome.response or web.Response(status=499)
        except Exception:
            log.exception("gateway: unexpected error on %s %s", request.method, request.path)
            outcome.status, outcome.error_kind = 502, "gateway_error"
            if outcome.response is not None:  # the stream started: end it with an error event
                try:
                    await outcome.response.write(sse_error_event("The gateway failed.", "gateway_error"))
                except ConnectionResetError:
                    pass
                return outcome.response
            return error_response(GatewayError(502, "The gateway failed on this request (logged).", "gateway_error"))
        finally:
            if admitted:
                await self.limits.done(key, outcome.tokens)
            elapsed = loop.time() - started
            self.usage.record(now=time.time(), key_id=key.id if key else None, job_id=outcome.job_id,
                              route_id=route_id, model=model, error_kind=outcome.error_kind,
                              prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
                              latency_ms=elapsed * 1000.0,
                              ttft_ms=None if outcome.ttft_s is None else outcome.ttft_s * 1000.0)
            self.metrics.observe(outcome.status, label, elapsed, outcome.ttft_s)

    async def models(self, request: web.Request) -> web.Response:
        try:
            key = await self.authenticate(request)
        except GatewayError as error:
            return error_response(error)
        names = [name for name in self.state.snapshot.model_names() if key.may_use(name)]
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "boom-console"} for name in names]
        return web.json_response({"object": "list", "data": data})

    async def health(self, _request: web.Request) -> web.Response:
        snapshot = self.state.snapshot
        if not snapshot.loaded_at:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok", "models": len(snapshot.model_names()),
                                  "snapshot_age_s": round(time.monotonic() - snapshot.loaded_at, 3)})

    async def prometheus(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def fallback(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":  # CORS preflight
            return web.Response(status=204, headers=CORS_HEADERS)
        return error_response(GatewayError(404, f"No such endpoint: {request.method} {request.path}.", "not_found"))


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The body is larger than {limit} bytes (CONSOLE_GATEWAY_MAX_BODY_BYTES).",
                        "request_too_large")


async def _cors(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = "Retry-After"


GATEWAY = web.AppKey("gateway", Gateway)


def build_app(gateway: Gateway | None = None) -> web.Application:
    """The aiohttp application; ``gateway`` defaults to one configured from settings."""
    gateway = gateway or Gateway(redis_url=settings.REDIS_URL or None)
    # The body limit is checked by Gateway.read_body (413 in OpenAI's shape); aiohttp's own stops
    # just above it.
    app = web.Application(client_max_size=gateway.max_body + 1)
    app[GATEWAY] = gateway
    app.on_startup.append(gateway.startup)
    app.on_cleanup.append(gateway.cleanup)
    app.on_response_prepare.append(_cors)
    for path in ENDPOINTS:
        app.router.add_post(path, gateway.inference)
    app.router.add_get("/v1/models", gateway.models)
    app.router.add_get("/health", gateway.health)
    app.router.add_get("/metrics", gateway.prometheus)
    app.router.add_route("*", "/{tail:.*}", gateway.fallback)
    return app


def run(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (``manage.py gateway``)."""
    log.info("gateway listening on http://%s:%s", host, port)
    web.run_app(build_app(), host=host, port=port, access_log=None, print=None, handle_signals=True)
