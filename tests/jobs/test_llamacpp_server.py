"""The real llama.cpp ``llama-server`` on a tiny random-weight model: its HTTP API, its ``/metrics``
as the console reads them, and the command line the console's llama.cpp adapter builds.

Needs the binary from ``scripts/build-llama-server.sh`` (or ``BOOM_LLAMA_SERVER``): skipped
without it, failed under ``CI=true``. No database. The tiny model loads in well under a second, so
the whole module takes a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from jobs.engines.base import LaunchSpec
from jobs.engines.metrics import compute_rates, parse_metrics
from jobs.engines.registry import get_engine
from tests.engines_support.llama_server import (
    LlamaServer,
    free_port,
    require_llama_server,
    run_llama_server,
    tiny_llama_server,
)
from tests.engines_support.tiny_gguf import BOS_ID, NON_ASCII_BYTE_TOKEN_IDS, UNK_ID, write_tiny_llama

pytestmark = pytest.mark.integration

ALIAS = "boom-tiny"
# Tokens that would not come back as one content chunk each: a lone UTF-8 lead or continuation
# byte is held back until its character is complete, and <unk>/<s> render as nothing or a
# placeholder. Banned, every generated token is its own chunk.
NOT_ONE_CHUNK_EACH = [UNK_ID, BOS_ID, *NON_ASCII_BYTE_TOKEN_IDS]


def chat_request(max_tokens: int, *, stream: bool, seed: int = 7) -> dict:
    """A chat completion that generates exactly ``max_tokens`` tokens on the tiny model."""
    payload = {
        "model": ALIAS,
        "messages": [{"role": "user", "content": "hello boom console"}],
        "max_tokens": max_tokens,
        "ignore_eos": True,  # random weights would stop at once
        "seed": seed,
        "logit_bias": [[token, False] for token in NOT_ONE_CHUNK_EACH],
        "stream": stream,
    }
    if stream:
        payload["stream_options"] = {"include_usage": True}
    return payload


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> LlamaServer:
    """One llama-server on the tiny model for the module's API tests."""
    require_llama_server()
    with tiny_llama_server(tmp_path_factory.mktemp("llama-server"), alias=ALIAS) as running:
        yield running


def test_the_server_reports_healthy_once_the_tiny_model_is_loaded(server):
    assert server.get_json("/health") == {"status": "ok"}


def test_the_models_endpoint_lists_the_tiny_model_under_its_alias(server):
    models = server.get_json("/v1/models")
    assert models["object"] == "list"
    assert [model["id"] for model in models["data"]] == [ALIAS]
    meta = models["data"][0]["meta"]
    assert (meta["n_vocab"], meta["n_embd"], meta["n_params"]) == (320, 64, 123200)


def test_a_streamed_chat_completion_returns_one_content_chunk_per_token_and_a_usage_chunk(server):
    events = server.post_sse("/v1/chat/completions", chat_request(32, stream=True))

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    content = [
        choice["delta"]["content"]
        for chunk in chunks
        for choice in chunk["choices"]
        if choice.get("delta", {}).get("content")
    ]
    assert len(content) == 32, content
    finish = [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"] if choice["finish_reason"]]
    assert finish == ["length"]
    usage_chunks = [chunk for chunk in chunks if chunk.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert usage_chunks[0]["choices"] == []
    usage = usage_chunks[0]["usage"]
    assert usage["completion_tokens"] == 32
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + 32


def test_metrics_parse_as_llamacpp_and_two_scrapes_give_a_generation_rate(server):
    before_text = server.get("/metrics")[1]
    before = parse_metrics(before_text, time.monotonic())
    for seed in range(3):
        answer = server.post_json("/v1/chat/completions", chat_request(32, stream=False, seed=seed))
        assert answer["usage"]["completion_tokens"] == 32
    status, after_text = server.get("/metrics")
    after = parse_metrics(after_text, time.monotonic())

    assert status == 200
    assert before.flavour == after.flavour == "llamacpp"
    assert after.generation_tokens_total - before.generation_tokens_total >= 3 * 32
    assert after.prompt_tokens_total > before.prompt_tokens_total
    assert after.requests_running == 0
    rates = compute_rates(before, after)
    assert rates.generation_tokens_per_s > 0
    assert rates.prompt_tokens_per_s > 0
    assert rates.requests_running == 0
    # llama-server has no latency histograms: the console leaves those empty rather than inventing them.
    assert rates.ttft_p50_ms is None and rates.e2e_p99_ms is None


@pytest.mark.parametrize("binary_from", ["BOOM_LLAMA_SERVER", "PATH"])
def test_the_adapter_command_line_starts_the_real_engine_with_health_and_metrics(tmp_path, binary_from):
    """Run exactly the argv and environment ``get_engine("llamacpp")`` builds for a CPU placement.

    ``BOOM_LLAMA_SERVER``: the job's env names the binary, so argv[0] is its path. ``PATH``: the
    adapter's default bare ``llama-server``, found on a PATH that starts with the binary's folder.
    """
    binary = require_llama_server()
    engine = get_engine("llamacpp")
    model = write_tiny_llama(tmp_path / "model" / "tiny-llama.gguf")
    port = free_port()
    spec = LaunchSpec(
        model_path=str(model),
        served_name="tiny-from-adapter",
        host="127.0.0.1",
        port=port,
        vendor=None,
        accelerator_ids=[],
        quantization="f32",  # the tiny model is all F32
        max_model_len=512,
        env={"BOOM_LLAMA_SERVER": str(binary)} if binary_from == "BOOM_LLAMA_SERVER" else {},
    )
    assert engine.validate(spec) == {}
    argv = engine.build_argv(spec)
    env = {**os.environ, **engine.build_env(spec)}
    if binary_from == "PATH":
        assert argv[0] == "llama-server"
        env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
    else:
        assert argv[0] == str(binary)

    with run_llama_server(
        argv,
        host=spec.host,
        port=port,
        log_path=tmp_path / "llama-server.log",
        env=env,
        health_path=engine.readiness_path,
    ) as running:
        assert running.base_url + engine.readiness_path == engine.readiness_url(spec.host, port)
        assert [model["id"] for model in running.get_json("/v1/models")["data"]] == ["tiny-from-adapter"]
        answer = running.post_json("/v1/chat/completions", {**chat_request(8, stream=False), "model": spec.served_name})
        assert answer["usage"]["completion_tokens"] == 8
        status, text = running.get(engine.metrics_url(spec.host, port).removeprefix(running.base_url))

    assert status == 200
    snapshot = engine.parse_metrics(text, time.monotonic())
    assert snapshot.flavour == "llamacpp"
    assert snapshot.generation_tokens_total >= 8
    assert Path(argv[argv.index("-m") + 1]) == model


def run_adapter_argv_to_exit(binary: Path, model_path: Path) -> tuple[int, str]:
    """Run the adapter's command line for ``model_path`` until the engine exits; status, log tail."""
    engine = get_engine("llamacpp")
    spec = LaunchSpec(
        model_path=str(model_path),
        served_name="broken",
        host="127.0.0.1",
        port=free_port(),
        vendor=None,
        accelerator_ids=[],
        env={"BOOM_LLAMA_SERVER": str(binary)},
    )
    result = subprocess.run(
        engine.build_argv(spec),
        env={**os.environ, **engine.build_env(spec)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr)[-4000:]


def test_the_adapter_explains_the_real_engine_exit_on_a_missing_model_file(tmp_path):
    binary = require_llama_server()
    missing = tmp_path / "no-such-model.gguf"

    status, log_tail = run_adapter_argv_to_exit(binary, missing)

    assert status != 0
    hint = get_engine("llamacpp").error_hints(log_tail)
    assert hint == f"GGUF model file missing or unreadable on the node: {missing}"


def test_the_adapter_explains_the_real_engine_exit_on_a_file_that_is_not_gguf(tmp_path):
    binary = require_llama_server()
    not_gguf = tmp_path / "not-a-model.gguf"
    not_gguf.write_bytes(b"this is not a GGUF file\n" * 8)

    status, log_tail = run_adapter_argv_to_exit(binary, not_gguf)

    assert status != 0
    assert get_engine("llamacpp").error_hints(log_tail).startswith("the model file is not a valid GGUF file")
