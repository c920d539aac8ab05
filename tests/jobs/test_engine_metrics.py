"""Engines' Prometheus metrics into normalized snapshots and rates, on real captures.

The captures live in tests/fixtures/{vllm,sglang,llamacpp}; ENGINES-SOURCES.md says where each
came from. Values asserted here are read off the files by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.engines.metrics import (
    EngineSnapshot,
    Histogram,
    compute_rates,
    parse_metrics,
    parse_samples,
    quantile_from_buckets,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1_HEAD40 = "vllm/metrics_v1-engine_engine-label_created-gauges_head40_kserve-openshift-lab.prom"
V0_IDLE = "vllm/metrics_v0-engine_llama-3.1-8b_idle_vllm-section_korean-note.prom"
V0_PARTIAL = "vllm/metrics_v0-engine_qwen2.5-coder-1.5b_partial_aibrix-runtime-doc.prom"
SGLANG = "sglang/metrics_llama-3.1-8b_sglang-docs-production_metrics-example.prom"
LLAMACPP_BOM = "llamacpp/metrics_b9041-f08f20a0e_win-cuda_idle_full-scrape_utf8-bom_TDuy22-lab.prom"
LLAMACPP_OLD = "llamacpp/metrics_ik-llama-cpp_kv-cache-ratio_full-scrape_ik_llama-pr695.prom"
LLAMACPP_NEW = "llamacpp/metrics_llama-server-0.5.0-dev-0c1e570_tiny-random-model_after-7-requests.prom"
ALL_CAPTURES = [V1_HEAD40, V0_IDLE, V0_PARTIAL, SGLANG, LLAMACPP_BOM, LLAMACPP_OLD, LLAMACPP_NEW]


def capture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def snapshot_of(name: str, time: float = 0.0) -> EngineSnapshot:
    return parse_metrics(capture(name), time)


# -- captures ---------------------------------------------------------------------------------------


def test_every_capture_is_in_the_fixtures_folder():
    for name in ALL_CAPTURES:
        assert (FIXTURES / name).is_file(), name


def test_vllm_v1_capture_gives_kv_cache_usage_and_zero_counters_from_the_engine_labelled_series():
    snap = snapshot_of(V1_HEAD40, time=12.5)
    assert snap.flavour == "vllm-v1"
    assert snap.time == 12.5
    assert snap.requests_running == 0.0
    assert snap.requests_waiting == 0.0
    assert snap.kv_cache_usage == 0.0
    assert snap.prompt_tokens_total == 0.0
    assert snap.generation_tokens_total == 0.0
    # The capture stops at request_success's HELP line, before any histogram.
    assert snap.requests_finished_total is None
    assert snap.ttft is None and snap.itl is None and snap.e2e is None


def test_vllm_v1_family_names_keep_the_created_series_as_their_own_gauges():
    names = snapshot_of(V1_HEAD40).raw_family_names
    assert "vllm:kv_cache_usage_perc" in names
    assert "vllm:prompt_tokens_total" in names
    assert "vllm:prompt_tokens_created" in names
    assert "vllm:gpu_cache_usage_perc" not in names


def test_vllm_v0_idle_capture_reads_kv_cache_usage_from_the_old_gpu_cache_name():
    snap = snapshot_of(V0_IDLE)
    assert snap.flavour == "vllm-v0"
    assert snap.kv_cache_usage == 0.0
    assert snap.requests_running == 0.0
    assert snap.requests_waiting == 0.0
    assert snap.prompt_tokens_total == 0.0
    assert snap.generation_tokens_total == 0.0
    assert "vllm:num_requests_swapped" in snap.raw_family_names


def test_vllm_v0_partial_capture_gives_its_token_counters_and_finished_requests():
    snap = snapshot_of(V0_PARTIAL)
    assert snap.flavour == "vllm-v0"
    assert snap.prompt_tokens_total == 148.0
    assert snap.generation_tokens_total == 955.0
    assert snap.requests_finished_total == 4.0
    assert snap.ttft is None  # cut off before the latency histograms


def test_vllm_v0_partial_capture_keeps_the_buckets_it_has_of_the_histogram_it_ends_in():
    buckets = [s for s in parse_samples(capture(V0_PARTIAL)) if s.name == "vllm:iteration_tokens_total_bucket"]
    assert len(buckets) == 15
    assert buckets[-1].labels["le"] == "96.0"
    assert buckets[-1].value == 998.0


def test_sglang_capture_gives_running_waiting_token_usage_and_counters():
    snap = snapshot_of(SGLANG)
    assert snap.flavour == "sglang"
    assert snap.requests_running == 162.0
    assert snap.requests_waiting == 2826.0
    assert snap.kv_cache_usage == pytest.approx(0.28)
    assert snap.prompt_tokens_total == 8128902.0
    assert snap.generation_tokens_total == 7557572.0
    # SGLang of that age has no finished-requests counter: the e2e histogram counts them.
    assert snap.requests_finished_total == 11228.0


def test_sglang_capture_gives_its_three_latency_histograms():
    snap = snapshot_of(SGLANG)
    assert snap.ttft.count == 11008.0
    assert snap.ttft.sum == pytest.approx(2.3518979474117756e06)
    assert snap.ttft.buckets[0.04] == 1.0
    assert snap.ttft.buckets[math.inf] == 11008.0
    assert snap.itl.count == 7400757.0  # from time_per_output_token_seconds
    assert snap.e2e.buckets[60.0] == 1513.0


def test_sglang_ttft_median_falls_in_the_inf_bucket_and_reads_as_the_highest_finite_bound():
    # 2513 of 11008 observations are at or under 30 s; the median is above every finite bound.
    assert quantile_from_buckets(snapshot_of(SGLANG).ttft.buckets, 0.5) == 30.0


def test_sglang_time_per_output_token_median_interpolates_inside_its_bucket():
    buckets = snapshot_of(SGLANG).itl.buckets
    rank = 0.5 * 7400757.0
    expected = 0.075 + (0.1 - 0.075) * (rank - 433413.0) / (4950195.0 - 433413.0)
    assert quantile_from_buckets(buckets, 0.5) == pytest.approx(expected)


def test_llamacpp_capture_with_a_byte_order_mark_is_read_from_its_first_line():
    snap = snapshot_of(LLAMACPP_BOM)
    assert snap.flavour == "llamacpp"
    assert "llamacpp:prompt_tokens_total" in snap.raw_family_names
    assert not any(name.startswith("\ufeff") for name in snap.raw_family_names)
    assert snap.prompt_tokens_total == 0.0
    assert snap.generation_tokens_total == 0.0
    assert snap.requests_running == 0.0
    assert snap.requests_waiting == 0.0
    assert snap.kv_cache_usage is None  # removed from llama.cpp's newer metric set


def test_llamacpp_old_metric_set_gives_kv_cache_ratio_and_token_totals():
    snap = snapshot_of(LLAMACPP_OLD)
    assert snap.kv_cache_usage == pytest.approx(0.491063)
    assert snap.prompt_tokens_total == 6886.0
    assert snap.generation_tokens_total == 3469.0
    assert "llamacpp:kv_cache_tokens" in snap.raw_family_names


def test_llamacpp_new_metric_set_gives_token_totals_and_no_latency_histograms():
    snap = snapshot_of(LLAMACPP_NEW)
    assert snap.prompt_tokens_total == 285.0
    assert snap.generation_tokens_total == 394.0
    assert snap.requests_running == 0.0
    assert snap.requests_finished_total is None
    assert snap.ttft is None and snap.itl is None and snap.e2e is None
    assert {"llamacpp:n_decode_total", "llamacpp:n_tokens_max"} <= snap.raw_family_names


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_our_line_parser_reads_every_capture_as_prometheus_client_does(name):
    text = capture(name).lstrip("\ufeff")

    def normalized(samples):
        # prometheus_client renames a counter sample without "_total" (llama.cpp's n_tokens_max).
        return sorted((n.removesuffix("_total"), tuple(sorted(labels.items())), v) for n, labels, v in samples)

    theirs = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]
    ours = [(s.name, s.labels, s.value) for s in parse_samples(text)]
    assert normalized(ours) == normalized(theirs)
    assert ours


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_a_capture_cut_anywhere_never_raises(name):
    text = capture(name)
    for end in range(0, len(text), 37):
        snap = parse_metrics(text[:end], time=1.0)
        assert snap.time == 1.0


# -- truncated and odd input ------------------------------------------------------------------------


def test_a_capture_cut_inside_a_histogram_drops_that_histogram_but_keeps_the_counters():
    text = capture(SGLANG)
    cut = text.index('sglang:time_to_first_token_seconds_bucket{le="0.5"')
    snap = parse_metrics(text[:cut], time=0.0)
    assert snap.ttft is None
    assert snap.prompt_tokens_total == 8128902.0
    assert snap.kv_cache_usage == pytest.approx(0.28)


def test_a_line_cut_inside_its_labels_is_skipped_and_the_lines_before_it_are_kept():
    text = 'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\nvllm:num_requests_running{engine="0",model_na'
    snap = parse_metrics(text, time=0.0)
    assert snap.kv_cache_usage == 0.25
    assert snap.requests_running is None


def test_text_that_is_not_an_exposition_gives_an_empty_snapshot_of_unknown_flavour():
    snap = parse_metrics("<html>502 Bad Gateway</html>\n\x00\x01 {{{", time=3.0)
    assert snap.flavour == "unknown"
    assert snap.requests_running is None
    assert snap.prompt_tokens_total is None
    assert snap.ttft is None


def test_empty_text_gives_an_empty_snapshot():
    snap = parse_metrics("", time=0.0)
    assert snap.flavour == "unknown"
    assert snap.raw_family_names == set()


def test_escaped_label_values_and_timestamps_are_read():
    text = 'vllm:num_requests_waiting{model_name="a \\"quoted\\" \\\\ name\\n",engine="0"} 7 1700000000000\n'
    [sample] = parse_samples(text)
    assert sample.labels["model_name"] == 'a "quoted" \\ name\n'
    assert sample.value == 7.0


def test_several_vllm_engines_are_summed_and_their_kv_cache_usage_averaged():
    text = "".join(
        f'vllm:num_requests_running{{engine="{e}",model_name="m"}} {r}\n'
        f'vllm:kv_cache_usage_perc{{engine="{e}",model_name="m"}} {kv}\n'
        f'vllm:generation_tokens_total{{engine="{e}",model_name="m"}} {g}\n'
        f'vllm:time_to_first_token_seconds_bucket{{engine="{e}",le="0.1",model_name="m"}} {b}\n'
        f'vllm:time_to_first_token_seconds_bucket{{engine="{e}",le="+Inf",model_name="m"}} {c}\n'
        f'vllm:time_to_first_token_seconds_count{{engine="{e}",model_name="m"}} {c}\n'
        f'vllm:time_to_first_token_seconds_sum{{engine="{e}",model_name="m"}} {s}\n'
        for e, r, kv, g, b, c, s in [(0, 3, 0.2, 100, 4, 5, 0.5), (1, 5, 0.6, 50, 1, 3, 1.5)]
    )
    snap = parse_metrics(text, time=0.0)
    assert snap.flavour == "vllm-v1"
    assert snap.requests_running == 8.0
    assert snap.kv_cache_usage == pytest.approx(0.4)
    assert snap.generation_tokens_total == 150.0
    assert snap.ttft == Histogram(buckets={0.1: 5.0, math.inf: 8.0}, sum=2.0, count=8.0)


def test_a_histogram_label_set_cut_short_is_left_out_of_the_sum():
    text = (
        'vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0"} 2\n'
        'vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf"} 4\n'
        'vllm:e2e_request_latency_seconds_count{engine="0"} 4\n'
        'vllm:e2e_request_latency_seconds_bucket{engine="1",le="1.0"} 9\n'
    )
    snap = parse_metrics(text, time=0.0)
    assert snap.e2e.buckets == {1.0: 2.0, math.inf: 4.0}
    assert snap.requests_finished_total == 4.0  # no request_success counter: e2e count stands in


# -- quantiles --------------------------------------------------------------------------------------


def test_quantile_interpolates_linearly_inside_the_bucket_holding_the_rank():
    buckets = {0.1: 0.0, 0.2: 10.0, 0.4: 30.0, math.inf: 40.0}
    assert quantile_from_buckets(buckets, 0.5) == pytest.approx(0.3)
    assert quantile_from_buckets(buckets, 0.25) == pytest.approx(0.2)


def test_quantile_in_the_first_bucket_starts_from_zero():
    assert quantile_from_buckets({1.0: 10.0, math.inf: 10.0}, 0.5) == pytest.approx(0.5)


def test_quantile_beyond_the_last_finite_bucket_is_that_bucket_bound():
    assert quantile_from_buckets({0.1: 0.0, 0.2: 10.0, 0.4: 30.0, math.inf: 40.0}, 0.99) == 0.4


def test_quantile_has_no_answer_without_observations_or_an_inf_bucket():
    assert quantile_from_buckets({}, 0.5) is None
    assert quantile_from_buckets({0.1: 0.0, math.inf: 0.0}, 0.5) is None
    assert quantile_from_buckets({0.1: 3.0, 0.2: 5.0}, 0.5) is None
    assert quantile_from_buckets({math.inf: 5.0}, 0.5) is None


def test_quantile_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        quantile_from_buckets({0.1: 1.0, math.inf: 1.0}, 1.5)


def test_quantile_ignores_a_bucket_count_that_falls():
    # float noise can make a cumulative count drop slightly; treat it as flat, as Prometheus does
    assert quantile_from_buckets({1.0: 10.0, 2.0: 9.0, math.inf: 10.0}, 0.5) == pytest.approx(0.5)


# -- rates ------------------------------------------------------------------------------------------


def make_snapshot(time, prompt, generation, finished, ttft_buckets, **gauges) -> EngineSnapshot:
    ttft = Histogram(buckets=ttft_buckets, sum=None, count=ttft_buckets[math.inf])
    return EngineSnapshot(
        time=time,
        requests_running=gauges.get("running", 0.0),
        requests_waiting=gauges.get("waiting", 0.0),
        kv_cache_usage=gauges.get("kv", 0.0),
        prompt_tokens_total=prompt,
        generation_tokens_total=generation,
        requests_finished_total=finished,
        ttft=ttft,
        itl=None,
        e2e=None,
        raw_family_names=set(),
    )


def test_rates_are_counter_deltas_over_the_interval_and_quantiles_come_from_bucket_deltas():
    # Before: 100 fast requests. During the 10 s: 40 more, 10 between 0.1 and 0.2 s, 20 between
    # 0.2 and 0.4 s and 10 slower. The interval's median is 0.3 s, whatever came before.
    prev = make_snapshot(100.0, 1000.0, 2000.0, 10.0, {0.1: 100.0, 0.2: 100.0, 0.4: 100.0, math.inf: 100.0})
    cur = make_snapshot(
        110.0,
        1500.0,
        4000.0,
        30.0,
        {0.1: 100.0, 0.2: 110.0, 0.4: 130.0, math.inf: 140.0},
        running=7.0,
        waiting=2.0,
        kv=0.35,
    )
    rates = compute_rates(prev, cur)
    assert rates.prompt_tokens_per_s == pytest.approx(50.0)
    assert rates.generation_tokens_per_s == pytest.approx(200.0)
    assert rates.requests_per_s == pytest.approx(2.0)
    assert rates.ttft_p50_ms == pytest.approx(300.0)
    assert rates.ttft_p99_ms == pytest.approx(400.0)
    assert rates.itl_p50_ms is None and rates.e2e_p99_ms is None
    assert rates.requests_running == 7.0
    assert rates.requests_waiting == 2.0
    assert rates.kv_cache_usage_percent == pytest.approx(35.0)


def test_a_counter_that_went_down_was_reset_and_its_current_value_is_the_delta():
    prev = make_snapshot(0.0, 9000.0, 5000.0, 50.0, {0.2: 50.0, math.inf: 50.0})
    cur = make_snapshot(10.0, 100.0, 300.0, 2.0, {0.2: 2.0, math.inf: 2.0})
    rates = compute_rates(prev, cur)
    assert rates.generation_tokens_per_s == pytest.approx(30.0)
    assert rates.prompt_tokens_per_s == pytest.approx(10.0)
    assert rates.requests_per_s == pytest.approx(0.2)
    assert rates.ttft_p50_ms == pytest.approx(100.0)  # from the restarted engine's own buckets


def test_an_interval_without_finished_requests_has_no_latency_quantiles():
    buckets = {0.2: 5.0, math.inf: 5.0}
    rates = compute_rates(make_snapshot(0.0, 10.0, 10.0, 5.0, buckets), make_snapshot(5.0, 10.0, 10.0, 5.0, buckets))
    assert rates.generation_tokens_per_s == 0.0
    assert rates.requests_per_s == 0.0
    assert rates.ttft_p50_ms is None


def test_without_a_previous_snapshot_only_gauges_are_given():
    cur = make_snapshot(10.0, 100.0, 300.0, 2.0, {0.2: 2.0, math.inf: 2.0}, running=4.0, kv=0.5)
    rates = compute_rates(None, cur)
    assert rates.requests_running == 4.0
    assert rates.kv_cache_usage_percent == 50.0
    assert rates.generation_tokens_per_s is None
    assert rates.ttft_p50_ms is None


def test_snapshots_taken_at_the_same_time_give_no_rates():
    snap = make_snapshot(10.0, 100.0, 300.0, 2.0, {0.2: 2.0, math.inf: 2.0})
    assert compute_rates(snap, snap).generation_tokens_per_s is None


def test_rates_from_two_real_captures_of_different_engines_never_raise():
    rates = compute_rates(snapshot_of(V0_PARTIAL, 0.0), snapshot_of(LLAMACPP_NEW, 15.0))
    assert rates.generation_tokens_per_s is not None
    assert rates.ttft_p50_ms is None
