"""Failover under load, per-key limits (in-process and shared through Redis), clients that hang up,
and the real llama-server behind the gateway."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import httpx
import openai
import pytest

from jobs.gateway.models import UsageMinute
from tests.conftest import require
from tests.engines_support.llama_server import require_llama_server, tiny_llama_server
from tests.gateway.test_gateway import chat


def test_killing_an_instance_with_kill_9_under_steady_load_fails_no_request(gateway, launch, world):
    first, second = launch("--model", "steady"), launch("--model", "steady")
    world.served("steady", first, second)
    key, _ = world.key()
    gateway.refresh()
    stop = threading.Event()
    ok, failed, errors = [0], [0], []
    lock = threading.Lock()

    def client_loop():
        client = gateway.client(key)
        while not stop.is_set():
            try:
                chat(client, "steady", max_tokens=4)
                with lock:
                    ok[0] += 1
            except Exception as exc:  # counted, not raised: the test reports them all
                with lock:
                    failed[0] += 1
                    errors.append(repr(exc))

    threads = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in threads:
        thread.start()

    def served_at_least(count: int, within: float = 120) -> bool:
        """Counted, not timed: wait (generously, the machine may be loaded) until ``count`` answers came."""
        deadline = time.monotonic() + within
        while ok[0] < count and failed[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return ok[0] >= count

    try:
        assert served_at_least(20), ("no steady load before the kill", ok[0], errors[:3])
        before = ok[0]
        first.process.kill()  # SIGKILL: in-flight requests lose their connection mid-answer
        first.process.wait()
        assert served_at_least(before + 40), ("no load served after the kill", before, ok[0], errors[:3])
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert failed[0] == 0, f"{failed[0]} failed requests: {errors[:3]}"


def test_a_key_over_its_requests_per_minute_gets_429_with_retry_after_and_the_limit_named(gateway, launch, world):
    world.served("limited", launch("--model", "limited"))
    key, _ = world.key(rpm=3)
    gateway.refresh()
    client = gateway.client(key)
    for _ in range(3):
        chat(client, "limited", max_tokens=1)

    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, "limited", max_tokens=1)

    response = caught.value.response
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert caught.value.body["code"] == "rpm_exceeded" and "rpm=3" in caught.value.body["message"]


def test_a_key_over_its_tokens_per_minute_is_refused_after_the_engine_reported_them(gateway, launch, world):
    world.served("tokens", launch("--model", "tokens"))
    key, _ = world.key(tpm=20)
    gateway.refresh()
    client = gateway.client(key)
    chat(client, "tokens", max_tokens=16)  # prompt + 16 completion tokens: over 20

    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, "tokens", max_tokens=1)

    assert caught.value.body["code"] == "tpm_exceeded"


def test_a_key_at_its_concurrency_limit_is_refused_until_a_request_ends(gateway, launch, world):
    world.served("slow", launch("--model", "slow", "--tpot-ms", "50"))
    key, _ = world.key(max_concurrency=1)
    gateway.refresh()
    client = gateway.client(key)
    stream = chat(client, "slow", max_tokens=40, stream=True)
    next(iter(stream))  # the first request holds the only slot

    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, "slow", max_tokens=1)
    assert caught.value.body["code"] == "max_concurrency_exceeded"
    list(stream)
    assert chat(client, "slow", max_tokens=1).choices


def test_a_client_that_hangs_up_mid_stream_frees_its_slot_and_is_counted(gateway, launch, world):
    world.served("slow", launch("--model", "slow", "--tpot-ms", "50"))
    key, row = world.key(max_concurrency=1)
    gateway.refresh()
    body = (b'{"model": "slow", "stream": true, "max_tokens": 100, '
            b'"messages": [{"role": "user", "content": "hi"}]}')
    with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)
        raw.settimeout(10)
        received = b""
        while b"data:" not in received:  # headers and the first event may come in separate reads
            data = raw.recv(65536)
            assert data, f"the stream ended before its first event: {received!r}"
            received += data
    # the slot is free again once the gateway noticed (its next write to the closed socket)
    client = gateway.client(key)
    deadline = time.monotonic() + 30  # generous: a loaded machine; the poll itself is every 0.5 s
    while True:
        try:
            assert chat(client, "slow", max_tokens=1).choices
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the slot of the client that hung up was not freed"
            time.sleep(0.05)
    gateway.flush_usage()
    kinds = {}
    for usage in UsageMinute.objects.filter(key=row):
        for kind, n in usage.errors_by_kind.items():
            kinds[kind] = kinds.get(kind, 0) + n
    assert kinds.get("client_gone") == 1, kinds


def test_two_gateways_share_a_keys_limit_through_redis(start_gateway, launch, world):
    url = os.environ.get("TEST_REDIS_URL")
    require(bool(url), "Redis (TEST_REDIS_URL)")
    namespace = f"boom:gateway-test:{uuid.uuid4().hex}"
    world.served("shared", launch("--model", "shared"))
    key, _ = world.key(rpm=4)
    one = start_gateway(redis_url=url, redis_namespace=namespace)
    two = start_gateway(redis_url=url, redis_namespace=namespace)
    first, second = one.client(key), two.client(key)
    for client in (first, second, first, second):
        chat(client, "shared", max_tokens=1)

    for client in (first, second):
        with pytest.raises(openai.RateLimitError) as caught:
            chat(client, "shared", max_tokens=1)
        assert caught.value.body["code"] == "rpm_exceeded"


def test_the_real_llama_server_answers_through_the_gateway_streaming_and_not(gateway, world, tmp_path):
    binary = require_llama_server()
    with tiny_llama_server(tmp_path / "llama", binary=binary, alias="boom-tiny") as server:
        job = world.job("tiny-llama", served_name="boom-tiny")
        world.instance(job, server.port)
        key, row = world.key()
        gateway.refresh()
        client = gateway.client(key)

        answer = chat(client, "boom-tiny", max_tokens=4)
        chunks = list(chat(client, "boom-tiny", max_tokens=4, stream=True))
        direct = httpx.get(f"{server.base_url}/v1/models").json()

    assert answer.choices and answer.usage.completion_tokens >= 1
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert all(c.choices for c in chunks)
    assert direct["data"][0]["id"] == "boom-tiny"
    gateway.flush_usage()
    usage = UsageMinute.objects.get(key=row)
    assert usage.requests == 2 and usage.completion_tokens >= 2 and usage.prompt_tokens > 0
