"""The simulator engine, run as the real process an executor would start.

Each test starts ``python -m jobs.simulator`` on a port the system picks (``--port 0``; the
readiness line tells which), talks HTTP to it with httpx, and stops it at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.engines.metrics import compute_rates, parse_metrics
from jobs.simulator.config import build_arg_parser, config_from_args
from jobs.simulator.protocol import VOCABULARY, estimate_prompt_tokens
from tests.timing import scaled, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"boom-simulator listening on http://127\.0\.0\.1:(\d+) model=(\S+) pid=(\d+)")
MODEL = "sim-test"


@dataclass
class RunningSimulator:
    """A simulator process started by a test."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_simulator(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> RunningSimulator:
    """Start the simulator and wait for its readiness line (at most 20 s)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"simulator-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobs.simulator",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--model",
                MODEL,
                *args,
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = READY_RE.search(log_path.read_text(errors="replace"))
        if match:
            assert int(match.group(3)) == process.pid
            return RunningSimulator(process, int(match.group(1)), log_path)
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    process.wait()
    pytest.fail(f"the simulator did not start:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def launch(tmp_path) -> Iterator:
    """Start simulators with the given arguments; every one is stopped at the end of the test."""
    started: list[RunningSimulator] = []

    def _launch(*args: str, env: dict[str, str] | None = None) -> RunningSimulator:
        sim = start_simulator(tmp_path, *args, env=env)
        started.append(sim)
        return sim

    yield _launch
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory) -> Iterator[RunningSimulator]:
    """One simulator for the tests that only read from it."""
    sim = start_simulator(tmp_path_factory.mktemp("shared-simulator"), "--ttft-ms", "20", "--tpot-ms", "5")
    yield sim
    sim.stop()


def chat_body(content: str = "Hello there, simulator!", **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of a server-sent-events body."""
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


# -- unit level -------------------------------------------------------------------------------------


def test_prompt_tokens_are_estimated_at_four_characters_each_plus_three_per_chat_message():
    assert estimate_prompt_tokens("abcd" * 10) == 10
    assert estimate_prompt_tokens("abcde") == 2
    assert estimate_prompt_tokens("") == 1
    assert estimate_prompt_tokens([101, 102, 103]) == 3
    messages = [
        {"role": "system", "content": "x" * 8},
        {"role": "user", "content": [{"type": "text", "text": "y" * 4}]},
    ]
    assert estimate_prompt_tokens(messages) == (2 + 3) + (1 + 3)


def test_the_command_line_takes_defaults_from_the_environment(monkeypatch):
    monkeypatch.setenv("BOOM_SIM_CRASH_AFTER", "5")
    monkeypatch.setenv("BOOM_SIM_TPOT_MS", "7.5")
    args = build_arg_parser().parse_args(["--model", "m"])
    assert args.crash_after == 5
    assert args.tpot_ms == 7.5
    assert args.ttft_ms == 80.0


def test_the_command_line_refuses_negative_latencies(capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(["--tpot-ms", "-1"])
    assert exit_info.value.code == 2
    assert "--tpot-ms must not be negative" in capsys.readouterr().err


# -- the process ------------------------------------------------------------------------------------

integration = pytest.mark.integration


@integration
def test_it_answers_health_and_lists_its_model(shared_sim):
    health = httpx.get(f"{shared_sim.url}/health", timeout=5)
    assert health.status_code == 200
    models = httpx.get(f"{shared_sim.url}/v1/models", timeout=5).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert models["data"][0]["owned_by"] == "simulator"


@integration
def test_a_streamed_chat_completion_yields_n_chunks_a_usage_chunk_and_done(shared_sim):
    body = chat_body(max_tokens=12, ignore_eos=True, stream=True, stream_options={"include_usage": True})
    response = httpx.post(f"{shared_sim.url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 12
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in content[:-1])
    words = "".join(c["choices"][0]["delta"]["content"] for c in content).split()
    assert all(word in VOCABULARY for word in words)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    prompt_tokens = estimate_prompt_tokens(body["messages"])
    assert usage_chunk["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 12,
        "total_tokens": prompt_tokens + 12,
        "prompt_tokens_details": None,
    }


@integration
def test_a_streamed_completion_without_include_usage_has_no_usage_chunk(shared_sim):
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 4, "ignore_eos": True, "stream": True}
    events = sse_events(httpx.post(f"{shared_sim.url}/v1/completions", json=body, timeout=10).text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 4
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)


@integration
def test_a_non_streamed_completion_reports_usage_and_stops_at_max_tokens(shared_sim):
    body = {"model": MODEL, "prompt": "x" * 40, "max_tokens": 9, "ignore_eos": True}
    answer = httpx.post(f"{shared_sim.url}/v1/completions", json=body, timeout=10).json()
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["finish_reason"] == "length"
    assert len(answer["choices"][0]["text"].split()) == 9
    assert answer["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 9,
        "total_tokens": 19,
        "prompt_tokens_details": None,
    }


@integration
def test_a_non_streamed_chat_completion_may_stop_before_max_tokens_unless_eos_is_ignored(shared_sim):
    url = f"{shared_sim.url}/v1/chat/completions"
    natural = httpx.post(url, json=chat_body(max_tokens=2000), timeout=30).json()
    assert natural["object"] == "chat.completion"
    assert natural["choices"][0]["finish_reason"] == "stop"
    assert 16 <= natural["usage"]["completion_tokens"] <= 384
    assert natural["choices"][0]["message"]["role"] == "assistant"


@integration
def test_the_same_request_gets_the_same_words(shared_sim):
    url = f"{shared_sim.url}/v1/chat/completions"
    first = httpx.post(url, json=chat_body("same", max_tokens=20), timeout=10).json()
    second = httpx.post(url, json=chat_body("same", max_tokens=20), timeout=10).json()
    other = httpx.post(url, json=chat_body("different", max_tokens=20), timeout=10).json()
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    assert first["choices"][0]["message"]["content"] != other["choices"][0]["message"]["content"]


@integration
@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", chat_body(model="no-such-model"), 404),
        ("/v1/chat/completions", chat_body(n=2), 400),
        ("/v1/chat/completions", chat_body(max_tokens=0), 400),
        ("/v1/chat/completions", chat_body(max_tokens=10**6), 400),
        ("/v1/chat/completions", {"model": MODEL, "messages": "hi"}, 400),
        ("/v1/completions", {"model": MODEL}, 400),
        ("/v1/completions", {"model": MODEL, "prompt": ["one", "two"]}, 400),
        ("/_sim/fault", {"mode": "explode"}, 400),
        ("/_sim/fault", {"mode": "slow", "factor": -1}, 400),
    ],
)
def test_bad_requests_get_an_openai_style_error(shared_sim, path, body, status):
    response = httpx.post(f"{shared_sim.url}{path}", json=body, timeout=5)
    assert response.status_code == status
    error = response.json()
    assert error["object"] == "error" and error["code"] == status and error["message"]


@integration
def test_a_body_that_is_not_json_gets_a_400(shared_sim):
    response = httpx.post(f"{shared_sim.url}/v1/completions", content=b"{nope", timeout=5)
    assert response.status_code == 400


@integration
def test_metrics_parse_as_vllm_v1_and_counters_grow_with_requests(shared_sim):
    before = parse_metrics(httpx.get(f"{shared_sim.url}/metrics", timeout=5).text, time=0.0)
    for _ in range(3):
        body = {"model": MODEL, "prompt": "abcd" * 5, "max_tokens": 10, "ignore_eos": True}
        httpx.post(f"{shared_sim.url}/v1/completions", json=body, timeout=10).raise_for_status()
    text = httpx.get(f"{shared_sim.url}/metrics", timeout=5).text
    after = parse_metrics(text, time=1.0)
    assert after.flavour == "vllm-v1"
    assert after.generation_tokens_total - before.generation_tokens_total == 30
    assert after.prompt_tokens_total - before.prompt_tokens_total == 15
    assert after.requests_finished_total - before.requests_finished_total == 3
    assert after.ttft.count - before.ttft.count == 3
    assert after.itl.count - before.itl.count == 27
    assert after.e2e.count - before.e2e.count == 3
    assert after.requests_running == 0 and after.requests_waiting == 0
    assert after.kv_cache_usage == 0.0
    # Valid exposition for Prometheus' own parser too, with vLLM's families and buckets.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["vllm:time_to_first_token_seconds"].type == "histogram"
    assert families["vllm:generation_tokens"].type == "counter"
    assert 2560.0 in after.ttft.buckets and 80.0 in after.itl.buckets and 7680.0 in after.e2e.buckets
    assert 'engine="0"' in text and f'model_name="{MODEL}"' in text


@integration
def test_rates_between_two_scrapes_show_positive_generation_throughput(shared_sim):
    async def scenario():
        async with httpx.AsyncClient(base_url=shared_sim.url, timeout=30) as client:
            first = parse_metrics((await client.get("/metrics")).text, time=time.monotonic())
            body = {"model": MODEL, "prompt": "hello", "max_tokens": 30, "ignore_eos": True}
            await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(8)))
            second = parse_metrics((await client.get("/metrics")).text, time=time.monotonic())
            return compute_rates(first, second)

    rates = asyncio.run(scenario())
    assert rates.generation_tokens_per_s > 0
    assert rates.prompt_tokens_per_s > 0
    assert rates.requests_per_s > 0
    # base 20 ms TTFT and 5 ms per token, slowed a little by the batch
    assert 15 <= rates.ttft_p50_ms <= 250
    assert 1 <= rates.itl_p50_ms <= 50
    assert rates.e2e_p99_ms is not None


async def run_load(url: str, count: int, max_tokens: int, stream: bool, scrape: bool) -> tuple[list, list]:
    """Send ``count`` requests at once; scrape /metrics while they run. Returns (answers, snapshots)."""
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        body = chat_body(max_tokens=max_tokens, ignore_eos=True, stream=stream)

        async def one() -> int:
            response = await client.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            if stream:
                events = sse_events(response.text)
                assert events[-1] == "[DONE]"
                return sum(1 for e in events[:-1] if json.loads(e)["choices"][0]["delta"].get("content"))
            return response.json()["usage"]["completion_tokens"]

        snapshots = []
        tasks = [asyncio.create_task(one()) for _ in range(count)]
        while scrape and not all(t.done() for t in tasks):
            snapshots.append(parse_metrics((await client.get("/metrics")).text, time=time.monotonic()))
            await asyncio.sleep(0.05)
        return await asyncio.gather(*tasks), snapshots


@integration
def test_fifty_concurrent_requests_all_complete_and_the_running_gauge_shows_the_batch(launch):
    sim = launch("--ttft-ms", "20", "--tpot-ms", "10")
    answers, snapshots = asyncio.run(run_load(sim.url, 50, 40, stream=True, scrape=True))
    assert answers == [40] * 50
    assert max(s.requests_running for s in snapshots) > 1
    assert max(s.kv_cache_usage for s in snapshots) > 0
    final = parse_metrics(httpx.get(f"{sim.url}/metrics", timeout=5).text, time=0.0)
    assert final.requests_finished_total == 50
    assert final.generation_tokens_total == 2000


@integration
def test_requests_beyond_max_concurrency_wait_in_the_queue(launch):
    sim = launch("--ttft-ms", "10", "--tpot-ms", "20", "--max-concurrency", "2")
    answers, snapshots = asyncio.run(run_load(sim.url, 6, 15, stream=False, scrape=True))
    assert answers == [15] * 6
    assert max(s.requests_running for s in snapshots) == 2
    assert max(s.requests_waiting for s in snapshots) >= 1


@integration
def test_it_sustains_two_hundred_concurrent_streams(launch):
    sim = launch()  # default pace: 80 ms TTFT, 15 ms per token, 0.4 % slower per running request
    started = time.monotonic()
    answers, _ = asyncio.run(run_load(sim.url, 200, 32, stream=True, scrape=False))
    elapsed = time.monotonic() - started
    assert answers == [32] * 200
    # The model alone says about 0.08 + 31 * 0.015 * (1 + 0.004 * 200) = 0.92 s; allow a busy machine.
    assert elapsed < 20, elapsed


@integration
def test_it_listens_on_the_port_it_is_given(launch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = launch("--port", str(port))  # the later --port wins over the helper's --port 0
    assert sim.port == port
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200


@integration
def test_health_answers_503_until_the_startup_delay_has_passed(launch):
    sim = launch("--startup-s", "1.0")
    early = httpx.get(f"{sim.url}/health", timeout=5)
    assert early.status_code == 503
    assert early.json() == {"status": "starting"}
    refused = httpx.post(f"{sim.url}/v1/chat/completions", json=chat_body(max_tokens=2), timeout=5)
    assert refused.status_code == 503
    wait_for(lambda: httpx.get(f"{sim.url}/health", timeout=5).status_code == 200, 5, what="/health answering 200")


@integration
def test_the_crash_fault_answers_then_makes_the_process_exit(launch):
    sim = launch()
    response = httpx.post(f"{sim.url}/_sim/fault", json={"mode": "crash"}, timeout=5)
    assert response.json() == {"mode": "crash", "exit_code": 1}
    assert sim.wait_exit(timeout=5) == 1
    assert "simulated crash" in sim.log()


@integration
def test_the_crash_fault_can_pick_the_exit_code_of_a_kill(launch):
    sim = launch()
    httpx.post(f"{sim.url}/_sim/fault", json={"mode": "crash", "exit_code": 137}, timeout=5)
    assert sim.wait_exit(timeout=5) == 137


@integration
def test_crash_after_n_requests_exits_once_the_nth_has_been_answered(launch):
    sim = launch("--crash-after", "2", "--ttft-ms", "1", "--tpot-ms", "1")
    for _ in range(2):
        response = httpx.post(f"{sim.url}/v1/chat/completions", json=chat_body(max_tokens=3), timeout=5)
        assert response.status_code == 200
    assert sim.wait_exit(timeout=5) == 1


@integration
def test_crash_after_can_be_set_by_environment_variable(launch):
    sim = launch("--ttft-ms", "1", "--tpot-ms", "1", env={"BOOM_SIM_CRASH_AFTER": "1"})
    body = chat_body(max_tokens=3, stream=True)
    assert sse_events(httpx.post(f"{sim.url}/v1/chat/completions", json=body, timeout=5).text)[-1] == "[DONE]"
    assert sim.wait_exit(timeout=5) == 1


@integration
def test_the_hang_fault_makes_health_time_out_while_the_process_stays_alive(launch):
    sim = launch()
    assert httpx.post(f"{sim.url}/_sim/fault", json={"mode": "hang"}, timeout=5).status_code == 200
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{sim.url}/health", timeout=0.5)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{sim.url}/v1/chat/completions", json=chat_body(max_tokens=2), timeout=0.5)
    assert sim.process.poll() is None
    httpx.post(f"{sim.url}/_sim/fault", json={"mode": "recover"}, timeout=5)
    assert httpx.get(f"{sim.url}/health", timeout=5).status_code == 200


@integration
def test_the_unhealthy_fault_fails_health_but_still_serves(launch):
    sim = launch("--ttft-ms", "1", "--tpot-ms", "1")
    httpx.post(f"{sim.url}/_sim/fault", json={"mode": "unhealthy"}, timeout=5)
    assert httpx.get(f"{sim.url}/health", timeout=5).status_code == 503
    served = httpx.post(f"{sim.url}/v1/chat/completions", json=chat_body(max_tokens=2), timeout=5)
    assert served.status_code == 200
    assert httpx.get(f"{sim.url}/_sim/state", timeout=5).json()["fault"] == "unhealthy"
    httpx.post(f"{sim.url}/_sim/fault", json={"mode": "recover"}, timeout=5)
    assert httpx.get(f"{sim.url}/health", timeout=5).status_code == 200


@integration
def test_the_slow_fault_multiplies_latency(launch):
    sim = launch("--ttft-ms", "5", "--tpot-ms", "5")
    body = chat_body(max_tokens=10, ignore_eos=True)

    def timed() -> float:
        started = time.monotonic()
        httpx.post(f"{sim.url}/v1/chat/completions", json=body, timeout=30).raise_for_status()
        return time.monotonic() - started

    normal = timed()
    httpx.post(f"{sim.url}/_sim/fault", json={"mode": "slow", "factor": 10}, timeout=5)
    slow = timed()
    assert slow >= 0.45  # 10 steps of at least 50 ms
    assert slow - normal >= 0.3  # the same request, normally about 60 ms of simulated work


@integration
def test_sigterm_exits_zero_within_two_seconds_even_with_a_stream_in_flight(launch):
    sim = launch("--tpot-ms", "50")
    streaming = threading.Event()

    def long_stream() -> None:
        body = chat_body(max_tokens=1000, ignore_eos=True, stream=True)
        try:
            with httpx.stream("POST", f"{sim.url}/v1/chat/completions", json=body, timeout=10) as response:
                for _ in response.iter_lines():
                    streaming.set()
        except httpx.HTTPError:
            pass  # cut by the shutdown, as expected

    reader = threading.Thread(target=long_stream, daemon=True)
    reader.start()
    assert streaming.wait(timeout=scaled(5))
    started = time.monotonic()
    sim.process.send_signal(signal.SIGTERM)
    assert sim.wait_exit(timeout=scaled(5)) == 0
    assert time.monotonic() - started < scaled(2.0)
    reader.join(timeout=scaled(5))
    assert "stopped" in sim.log()


@integration
def test_sigterm_stops_a_hung_simulator_too(launch):
    sim = launch()
    httpx.post(f"{sim.url}/_sim/fault", json={"mode": "hang"}, timeout=5)
    started = time.monotonic()
    sim.process.send_signal(signal.SIGTERM)
    assert sim.wait_exit(timeout=scaled(5)) == 0
    assert time.monotonic() - started < scaled(2.0)


@integration
def test_a_port_already_in_use_is_reported_and_exits_non_zero(shared_sim):
    process = subprocess.run(
        [sys.executable, "-m", "jobs.simulator", "--host", "127.0.0.1", "--port", str(shared_sim.port)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert process.returncode == 2
    assert "cannot listen" in process.stderr
