"""Gateway fixtures: a gateway application served from a thread of its own (its own event loop, a
free port), simulator processes behind it, and jobs, instances and keys pointing at them.

The gateway reads the database from its own thread, so these tests use ``transactional_db``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import openai
import pytest
from aiohttp import web
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.gateway.keys import digest, new_key, prefix_of
from jobs.gateway.models import ApiKey
from jobs.gateway.server import Gateway, build_app
from jobs.models import Instance, Job
from nodes.choices import Transport
from tests import factories as node_factories
from tests.jobs import factories
from tests.jobs.test_simulator import RunningSimulator, start_simulator

FAST = ("--ttft-ms", "5", "--tpot-ms", "1")


class GatewayThread:
    """A gateway application on 127.0.0.1:<free port>, run by an event loop in a thread."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(build_app(gateway), access_log=None)
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="gateway-test", daemon=True)
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the gateway did not start within 30 s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = self.runner.addresses[0][1]
        except BaseException as exc:  # reported to the test by __init__
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str, **options) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, **options)

    def call(self, coroutine_fn, *args, timeout: float = 10):
        """Run ``coroutine_fn(*args)`` on the gateway's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine_fn(*args), self.loop).result(timeout)

    def refresh(self) -> None:
        """Reload the snapshot now (tests that just changed the database need not wait for the poll)."""
        self.call(self.gateway.state.refresh)

    def flush_usage(self) -> None:
        self.call(self.gateway.usage.flush)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture
def start_gateway(transactional_db) -> Iterator:
    """``start_gateway(**Gateway options)`` serves a gateway; all are stopped at the end of the test."""
    started: list[GatewayThread] = []

    def start(**options) -> GatewayThread:
        options.setdefault("usage_interval_s", 60.0)  # tests flush usage themselves
        server = GatewayThread(Gateway(**options))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(start_gateway) -> GatewayThread:
    return start_gateway()


@pytest.fixture
def launch(tmp_path) -> Iterator:
    """``launch("--model", "name", ...)`` starts a simulator (fast timings); all are stopped at the end."""
    started: list[RunningSimulator] = []

    def _launch(*args: str) -> RunningSimulator:
        sim = start_simulator(tmp_path / "sims", *FAST, *args)
        started.append(sim)
        return sim

    yield _launch
    for sim in started:
        sim.stop()


@dataclass
class World:
    """Jobs, instances and keys for the gateway to find."""

    owner: User

    def node(self):
        if not hasattr(self, "_node"):
            self._node = node_factories.node(name="local", address="127.0.0.1", transport=Transport.LOCAL)
        return self._node

    def job(self, name: str, *, served_name: str | None = None, version=None) -> Job:
        options = {"served_name": served_name} if served_name else {}
        return factories.job(name=name, engine="simulator", options=options,
                             model_version=version or factories.version())

    def instance(self, job: Job, port: int, *, replica: int | None = None, state: str = "running") -> Instance:
        if replica is None:
            replica = job.instances.count()
        return Instance.objects.create(job=job, replica=replica, member=0, node=self.node(), port=port, state=state)

    def served(self, job_name: str, *sims: RunningSimulator, served_name: str | None = None, version=None) -> Job:
        """A job with one running instance per simulator."""
        job = self.job(job_name, served_name=served_name, version=version)
        for sim in sims:
            self.instance(job, sim.port)
        return job

    def key(self, name: str = "app", **fields) -> tuple[str, ApiKey]:
        """A new API key: (the key to send, its row)."""
        plain = new_key()
        row = ApiKey.objects.create(name=name, prefix=prefix_of(plain), digest=digest(plain), owner=self.owner,
                                    **fields)
        return plain, row


@pytest.fixture
def world(transactional_db) -> World:
    owner = User.objects.create_user("key-owner")
    return World(owner)


def expired() -> dict:
    return {"expires_at": timezone.now() - timedelta(minutes=1)}
