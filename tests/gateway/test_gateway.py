"""The gateway with the official ``openai`` client in front and simulator processes behind it."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from django.utils import timezone

from jobs.gateway.models import ApiKey, UsageMinute
from tests.gateway.conftest import expired
from tests.timing import scaled


def chat(client, model: str, content: str = "Hello gateway", **extra):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                          max_tokens=extra.pop("max_tokens", 8), **extra)


def test_a_chat_completion_reaches_the_job_by_its_served_name_and_is_counted_in_usage(gateway, launch, world):
    sim = launch("--model", "qwen-served")
    job = world.served("qwen-chat", sim, served_name="qwen-served")
    key, row = world.key()
    gateway.refresh()

    answer = chat(gateway.client(key), "qwen-served")

    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens == 8 and answer.usage.prompt_tokens > 0
    gateway.flush_usage()
    usage = UsageMinute.objects.get(key=row)
    assert (usage.job_id, usage.model, usage.requests, usage.errors) == (job.id, "qwen-served", 1, 0)
    assert usage.completion_tokens == 8 and usage.prompt_tokens == answer.usage.prompt_tokens
    assert usage.latency_ms_sum > 0 and usage.source
    assert ApiKey.objects.get(pk=row.pk).last_used_at is not None


def test_a_job_is_also_reached_by_its_name_when_it_has_no_served_name(gateway, launch, world):
    sim = launch("--model", "plain-job")
    world.served("plain-job", sim)
    key, _ = world.key()
    gateway.refresh()

    assert chat(gateway.client(key), "plain-job").model == "plain-job"


def test_a_stream_arrives_chunk_by_chunk_and_without_the_usage_chunk_the_client_did_not_ask_for(
        gateway, launch, world):
    sim = launch("--model", "streamer", "--tpot-ms", "20")
    world.served("streamer", sim)
    key, row = world.key()
    gateway.refresh()

    arrivals, chunks = [], []
    for chunk in chat(gateway.client(key), "streamer", max_tokens=10, stream=True):
        arrivals.append(time.monotonic())
        chunks.append(chunk)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 10
    assert all(c.choices for c in chunks), "the usage chunk (choices: []) reached a client that did not ask for it"
    assert arrivals[-1] - arrivals[0] > 0.1, "the chunks arrived at once: the stream was buffered"
    gateway.flush_usage()
    usage = UsageMinute.objects.get(key=row)
    assert usage.completion_tokens == 10 and usage.prompt_tokens > 0  # asked of the engine all the same
    assert usage.ttft_count == 1 and usage.ttft_ms_sum > 0


def test_a_stream_that_asks_for_usage_gets_the_usage_chunk(gateway, launch, world):
    sim = launch("--model", "streamer")
    world.served("streamer", sim)
    key, _ = world.key()
    gateway.refresh()

    chunks = list(chat(gateway.client(key), "streamer", max_tokens=4, stream=True,
                       stream_options={"include_usage": True}))

    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


def test_completions_are_forwarded_too(gateway, launch, world):
    sim = launch("--model", "base")
    world.served("base", sim)
    key, _ = world.key()
    gateway.refresh()

    answer = gateway.client(key).completions.create(model="base", prompt="Once upon a time", max_tokens=5)

    assert answer.choices[0].text and answer.usage.completion_tokens == 5


def test_models_lists_only_the_models_the_key_may_use(gateway, launch, world):
    sim = launch("--model", "a")
    world.served("a", sim)
    world.served("b", sim)
    scoped, _ = world.key("scoped", models=["b"])
    everything, _ = world.key("all")
    gateway.refresh()

    assert [m.id for m in gateway.client(scoped).models.list()] == ["b"]
    assert [m.id for m in gateway.client(everything).models.list()] == ["a", "b"]


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    return body["error"]


def test_every_refusal_is_an_openai_shaped_error_with_the_right_status(gateway, launch, world, settings):
    sim = launch("--model", "allowed")
    world.served("allowed", sim)
    world.served("other", sim)
    key, _ = world.key(models=["allowed", "ghost"])
    expired_key, _ = world.key("old", **expired())
    revoked_key, _ = world.key("gone", revoked=True)
    gateway.refresh()
    url = f"{gateway.url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": "allowed", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

    cases = [
        (httpx.post(url, json=body), 401, "missing_api_key"),
        (httpx.post(url, json=body, headers={"Authorization": "Bearer bk-not-a-key"}), 401, "invalid_api_key"),
        (httpx.post(url, json=body, headers={"Authorization": f"Bearer {expired_key}"}), 401, "expired_api_key"),
        (httpx.post(url, json=body, headers={"Authorization": f"Bearer {revoked_key}"}), 401, "revoked_api_key"),
        (httpx.post(url, json={**body, "model": "other"}, headers=auth), 403, "model_not_allowed"),
        (httpx.post(url, json={**body, "model": "ghost"}, headers=auth), 404, "model_not_found"),
        (httpx.post(url, content=b"{not json", headers=auth), 400, "invalid_json"),
        (httpx.post(url, json={"messages": []}, headers=auth), 400, "missing_model"),
        (httpx.post(url, content=b"x" * (gateway.gateway.max_body + 1), headers=auth), 413, "request_too_large"),
        (httpx.get(f"{gateway.url}/v1/nothing-here", headers=auth), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert _error(response)["code"] == code
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert httpx.post(url, json=body, headers=auth).status_code == 200


def test_the_openai_client_sees_a_missing_model_as_not_found(gateway, world):
    key, _ = world.key()
    gateway.refresh()

    with pytest.raises(openai.NotFoundError) as caught:
        chat(gateway.client(key), "no-such-model")

    assert caught.value.body["code"] == "model_not_found"


def test_a_browser_preflight_is_allowed_from_any_origin(gateway):
    response = httpx.options(f"{gateway.url}/v1/chat/completions", headers={
        "Origin": "http://console.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


def test_no_ready_instance_answers_503_with_retry_after(gateway, launch, world):
    job = world.job("sleeping")
    world.instance(job, 1, state="starting")
    key, _ = world.key()
    gateway.refresh()

    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "sleeping", "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert _error(response)["code"] == "no_ready_instance"


def test_a_request_to_a_dead_instance_is_retried_on_a_live_one(gateway, launch, world):
    sim = launch("--model", "pair")
    job = world.served("pair", sim)
    world.instance(job, 1)  # nothing listens on port 1: connection refused
    key, _ = world.key()
    gateway.refresh()
    client = gateway.client(key)

    assert all(chat(client, "pair").choices for _ in range(10))


def test_a_route_spreads_requests_by_weight_and_falls_back_when_no_target_is_ready(gateway, launch, world):
    from jobs.gateway.models import Route, RouteTarget

    blue, green, spare = launch("--model", "blue"), launch("--model", "green"), launch("--model", "spare")
    blue_job, green_job = world.served("blue", blue), world.served("green", green)
    spare_job = world.served("spare", spare)
    route = Route.objects.create(name="chat", fallback=spare_job)
    RouteTarget.objects.create(route=route, job=blue_job, weight=3)
    RouteTarget.objects.create(route=route, job=green_job, weight=1)
    key, row = world.key()
    gateway.refresh()
    client = gateway.client(key)

    served = [chat(client, "chat", max_tokens=1).model for _ in range(200)]

    assert served.count("blue") + served.count("green") == 200
    assert 120 <= served.count("blue") <= 180, served.count("blue")  # 150 expected
    blue_job.instances.update(state="stopped", updated_at=timezone.now())
    green_job.instances.update(state="failed", updated_at=timezone.now())
    gateway.refresh()
    assert {chat(client, "chat", max_tokens=1).model for _ in range(5)} == {"spare"}
    gateway.flush_usage()
    assert sum(UsageMinute.objects.filter(route=route).values_list("requests", flat=True)) == 205


def test_model_at_alias_follows_a_promotion_without_restart(gateway, launch, world):
    from models_registry.models import Alias
    from tests.jobs import factories

    v1, v2 = factories.version("Qwen3", "v1"), factories.version("Qwen3", "v2")
    world.served("qwen3-v1", launch("--model", "qwen3-v1"), version=v1)
    world.served("qwen3-v2", launch("--model", "qwen3-v2"), version=v2)
    alias = Alias.objects.create(model=v1.model, name="production", version=v1)
    key, _ = world.key()
    gateway.refresh()
    client = gateway.client(key)
    assert chat(client, "Qwen3@production").model == "qwen3-v1"

    alias.version = v2
    alias.save()
    deadline = time.monotonic() + 30  # generous: a loaded machine; the poll itself is every 0.5 s
    while chat(client, "Qwen3@production").model != "qwen3-v2":  # the state cache polls every 0.5 s
        assert time.monotonic() < deadline, "the promotion was not followed within 30 s"
        time.sleep(0.05)
    assert "Qwen3@production" in [m.id for m in client.models.list()]


def test_a_revoked_key_is_refused_within_two_seconds(gateway, world):
    key, row = world.key()
    gateway.refresh()
    client = gateway.client(key)
    assert client.models.list().data == []

    row.revoked = True
    row.save()
    revoked_at = time.monotonic()
    while True:
        try:
            client.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() - revoked_at < scaled(10, below=60), "still accepted long after the revocation"
        time.sleep(0.02)
    assert time.monotonic() - revoked_at < scaled(2, below=10)  # the state cache polls every 0.5 s


def test_a_key_created_a_moment_ago_is_accepted_at_once_without_waiting_for_the_poll(start_gateway, world):
    gateway = start_gateway(state_interval_s=3600.0)  # no poll during the test
    gateway.refresh()
    key, _ = world.key()  # created after the gateway's last look at the database
    assert gateway.client(key).models.list().data == []  # accepted: no 401 while the snapshot catches up


def test_unknown_keys_in_a_loop_cost_a_bounded_number_of_database_checks(start_gateway, world):
    gateway = start_gateway(state_interval_s=3600.0)  # no poll during the test
    gateway.refresh()
    checks = []
    state = gateway.gateway.state
    original = state.refresh

    async def counted():
        checks.append(1)
        return await original()

    state.refresh = counted
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(openai.AuthenticationError):
            gateway.client("bk-not-a-key-" + "x" * 30).models.list()
    elapsed = time.monotonic() - started
    # One check per request at most, and never more often than MISS_CHECK_S (0.2 s) apart.
    assert 1 <= len(checks) <= 20
    assert len(checks) <= elapsed / 0.2 + 1


def test_metrics_count_requests_by_code_with_latency_and_ttft_histograms(gateway, launch, world):
    world.served("m", launch("--model", "m"))
    key, _ = world.key()
    gateway.refresh()
    client = gateway.client(key)
    chat(client, "m")
    list(chat(client, "m", stream=True))
    with pytest.raises(openai.NotFoundError):
        chat(client, "nope")

    text = httpx.get(f"{gateway.url}/metrics").text

    assert 'boom_gateway_requests_total{code="200",model="m"} 2.0' in text
    assert 'boom_gateway_requests_total{code="404",model=""} 1.0' in text
    assert 'boom_gateway_request_duration_seconds_count{model="m"} 2.0' in text
    assert 'boom_gateway_ttft_seconds_count{model="m"} 1.0' in text


def test_health_answers_once_the_snapshot_is_loaded(gateway):
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["status"] == "ok" and json.dumps(health)
