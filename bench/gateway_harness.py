"""The gateway benchmark's harness (bench/gateway.py): simulator and gateway processes, the asyncio
closed-loop client, and the statistics helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench.common import ROOT  # noqa: E402

READY = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
FIRST_TOKEN = re.compile(rb'"(?:content|text)":\s*"[^"]')
PRIVATE_ENV = ("REDIS_URL", "CELERY_")


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Simulator:
    def __init__(self, work: Path, name: str, model: str, *args: str) -> None:
        self.log = work / f"sim-{name}.log"
        handle = open(self.log, "w")  # noqa: SIM115 - kept open for the process' lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobs.simulator", "--host", "127.0.0.1", "--port", "0", "--model", model,
             "--max-concurrency", "1024", *args],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = READY.search(self.log.read_text())
            if match:
                self.port = int(match.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.process.kill()
        raise SystemExit(f"the simulator did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


class GatewayProcess:
    """``manage.py gateway`` on a free port with the bench's environment (database, data dir)."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "gateway.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV)}
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "gateway", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env)  # noqa: SIM115
        self.ps = psutil.Process(self.process.pid)

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the gateway exited: {self.log.read_text()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(self.url + "/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise SystemExit(f"the gateway did not become healthy: {self.log.read_text()}")

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# --------------------------------------------------------------------------- the client


@dataclass
class Sample:
    start: float
    end: float
    ok: bool
    ttft: float | None = None
    error: str = ""

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Target:
    """Where a request goes and what it carries (the body already encoded)."""

    url: str
    body: bytes
    headers: dict = field(default_factory=dict)
    stream: bool = False


def body(model: str, max_tokens: int, stream: bool = False) -> bytes:
    import json

    payload = {"model": model, "max_tokens": max_tokens, "temperature": 0,
               "messages": [{"role": "user", "content": "Say something short about the sea."}]}
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


async def one(session: aiohttp.ClientSession, target: Target) -> Sample:
    start = time.perf_counter()
    ttft = None
    try:
        async with session.post(target.url, data=target.body, headers=target.headers) as response:
            if target.stream:
                async for chunk in response.content.iter_any():
                    if ttft is None and FIRST_TOKEN.search(chunk):
                        ttft = time.perf_counter() - start
                data = b""
            else:
                data = await response.read()
            ok = response.status == 200 and (target.stream or b'"choices"' in data)
            if target.stream and ok and ttft is None:
                ok = False
            error = "" if ok else f"HTTP {response.status}: {data[:200]!r}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Sample(start, time.perf_counter(), False, error=f"{type(exc).__name__}: {exc}")
    return Sample(start, time.perf_counter(), ok, ttft, error)


async def closed_loop(session: aiohttp.ClientSession, target: Target, concurrency: int, *,
                      count: int | None = None, duration: float | None = None,
                      stop: asyncio.Event | None = None) -> list[Sample]:
    """``concurrency`` workers each sending the next request when the last ended, until ``count``
    requests were sent, ``duration`` seconds passed or ``stop`` is set."""
    samples: list[Sample] = []
    sent = 0
    end = time.perf_counter() + duration if duration else None

    async def worker() -> None:
        nonlocal sent
        while True:
            if count is not None and sent >= count:
                return
            if end is not None and time.perf_counter() >= end:
                return
            if stop is not None and stop.is_set():
                return
            sent += 1
            samples.append(await one(session, target))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def session_for(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# --------------------------------------------------------------------------- console rows


def make_rows(jobs: dict[str, list[int]]):
    """A local node, one job per served name with one running instance per port, and an API key."""
    from django.contrib.auth.models import User

    from jobs.gateway.services import create_key
    from jobs.models import Instance, Job
    from models_registry.models import Model, ModelVersion
    from nodes.models import Node

    owner = User.objects.create_user("bench-owner")
    # a node of their own: the SSH case's placement (node selector) sees only its two nodes
    node = Node.objects.create(name="bench-direct", address="127.0.0.1", transport="local", status="online")
    model = Model.objects.create(name="bench-model", family="qwen")
    version = ModelVersion.objects.create(model=model, version="v1", quantization="bf16", source_uri="/models/bench")
    rows = {}
    for name, ports in jobs.items():
        job = Job.objects.create(name=name, engine="simulator", model_version=version)
        rows[name] = [Instance.objects.create(job=job, replica=i, member=0, node=node, port=port, state="running")
                      for i, port in enumerate(ports)]
    _, key = create_key(owner, name="bench")
    return owner, key, version, rows
