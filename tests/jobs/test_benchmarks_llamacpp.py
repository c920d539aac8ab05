"""A serving benchmark against the real llama.cpp ``llama-server`` on the tiny model.

Skipped locally without a built llama-server; under ``CI=true`` a missing one fails
(tests.engines_support.llama_server.require_llama_server).
"""

import pytest

from jobs.benchmarks import services
from jobs.choices import BenchmarkStatus
from jobs.models import BenchmarkRun
from tests.engines_support.llama_server import require_llama_server, tiny_llama_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    binary = require_llama_server()
    with tiny_llama_server(tmp_path_factory.mktemp("bench-llama"), binary=binary, alias="boom-tiny") as server:
        yield server


def test_a_benchmark_of_the_real_llama_server_measures_every_level(db, llama):
    run = BenchmarkRun.objects.create(endpoint_url=llama.base_url + "/v1", endpoints=[llama.base_url + "/v1"],
                                      concurrency=[1, 4], requests_per_level=8, input_tokens=16, output_tokens=8)
    services.run_benchmark(run.pk)
    run.refresh_from_db()
    assert run.status == BenchmarkStatus.SUCCEEDED, run.status_detail
    assert run.model == "boom-tiny"  # found at /v1/models
    assert [level["concurrency"] for level in run.results] == [1, 4]
    for level in run.results:
        assert level["completed"] == 8 and level["errors"] == 0, (level["errors_by_kind"], level["error_sample"])
        assert level["output_tokens_per_s"] > 0 and level["ttft_p50_ms"] > 0
        # ignore_eos and max_tokens: every answer is exactly the asked length (from the usage chunk).
        assert level["usage_reported"] and level["output_tokens"] == 8 * 8
        assert level["tpot_p50_ms"] is not None
    # llama-server runs with --metrics: its own counters over each level's window sit beside ours.
    assert run.results[1]["engine"]["output_tokens_per_s"] > 0


def test_the_llama_server_completions_api_is_measured_too(db, llama):
    run = BenchmarkRun.objects.create(endpoint_url=llama.base_url + "/v1", endpoints=[llama.base_url + "/v1"],
                                      api="completions", concurrency=[2], requests_per_level=4, input_tokens=8,
                                      output_tokens=6)
    services.run_benchmark(run.pk)
    run.refresh_from_db()
    assert run.status == BenchmarkStatus.SUCCEEDED, run.status_detail
    level = run.results[0]
    assert level["completed"] == 4 and level["errors"] == 0, (level["errors_by_kind"], level["error_sample"])
    assert level["output_tokens"] == 24
