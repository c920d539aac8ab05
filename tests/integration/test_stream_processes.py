"""Several web processes (real daphne servers) behind one database: a stream entry published by
another process (as the collector does) reaches a websocket client of each of them, with the
embedded poll transport (no Redis) and with the production push transport (Redis)."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import transaction

from console.core import broadcast
from console.core.models import ApiToken
from tests import factories
from tests.conftest import require
from tests.integration.procs import ROOT, child_database_url, child_env, free_port, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


def start_web(extra: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = child_env(DATABASE_URL=child_database_url(), **extra)
    for key in ("REDIS_URL", "CONSOLE_STREAM_TRANSPORT"):
        if key not in extra:
            env.pop(key, None)
    process = subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                "console.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"http://{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, what="daphne to listen")
    return process, base


async def receive_point(url: str, topic: str, published: asyncio.Event, timeout: float = 30.0):
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json({"type": "subscribe", "topics": [topic]})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            body = json.loads(message.data)
            if body["type"] == "subscribed":
                published.set()
            elif body["type"] == "data":
                return body["data"]["series"][0]["points"], time.monotonic()
    raise AssertionError("no data message")


@pytest.mark.parametrize("transport", ["poll", "push"])
def test_an_entry_reaches_clients_of_every_web_process(transport, settings, make_user):
    extra = {"CONSOLE_STREAM_TRANSPORT": transport, "CONSOLE_STREAM_POLL_MS": "100"}
    if transport == "push":
        require(redis_answers(), f"Redis at {REDIS_URL}")
        extra["REDIS_URL"] = REDIS_URL
    token = ApiToken.objects.create(user=make_user("viewer")).key
    node = factories.node()
    topic = f"node:{node.pk}"
    webs = [start_web(extra) for _ in range(2)]
    try:
        from channels.layers import channel_layers

        settings.CONSOLE_STREAM_TRANSPORT = transport
        if transport == "push":
            settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                                   "CONFIG": {"hosts": [REDIS_URL]}}}
        channel_layers.backends.clear()

        async def scenario():
            ready = [asyncio.Event(), asyncio.Event()]
            clients = [asyncio.ensure_future(receive_point(f"ws://{base}/ws/stream/?token={token}", topic, event))
                       for (_, base), event in zip(webs, ready, strict=True)]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 30)
            sent = time.monotonic()

            def publish():
                with transaction.atomic():
                    broadcast.publish(topic, {"series": [{"series": "node.cpu_percent", "labels": {"node": node.pk},
                                                          "points": [[123.0, 45.0]]}]})

            await asyncio.to_thread(publish)
            results = await asyncio.gather(*clients)
            for points, arrived in results:
                assert points == [[123.0, 45.0]]
                # Well under a second on an idle machine (docs/benchmarks.md); the bound allows a busy CI.
                assert arrived - sent < 5

        asyncio.run(scenario())
    finally:
        from channels.layers import channel_layers

        channel_layers.backends.clear()
        for process, _ in webs:
            stop(process)
