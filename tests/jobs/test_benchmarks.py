"""Serving benchmarks: the load generator against the real simulator process, the run's lifecycle
(failure reasons, cancel), the API's validation and permissions, export, and the pages."""

from __future__ import annotations

import asyncio
import csv
import http.server
import io
import json
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.urls import reverse

from console.core.statemachine import TransitionNotAllowed
from jobs.benchmarks import export, generator, runner, services
from jobs.choices import BENCHMARK_TRANSITIONS, BenchmarkStatus
from jobs.models import BenchmarkRun, BenchmarkTransition, Instance
from tests import factories as node_factories
from tests.engines_support.llama_server import free_port
from tests.jobs import factories
from tests.jobs.test_simulator import start_simulator
from tests.timing import load_factor, scaled

S = BenchmarkStatus


@pytest.fixture(autouse=True)
def allowed_networks(settings):
    """These tests point benchmarks at test servers and documentation addresses (the outbound policy allows
    other endpoints than the console's own instances only in the networks an admin lists)."""
    settings.CONSOLE_BENCHMARK_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """One simulator for the read-only generator tests: TTFT 20 ms, TPOT 5 ms."""
    running = start_simulator(tmp_path_factory.mktemp("bench-sim"), "--ttft-ms", "20", "--tpot-ms", "5")
    yield running
    running.stop()


@pytest.fixture
def launch(tmp_path):
    started = []

    def _launch(*args):
        running = start_simulator(tmp_path, *args)
        started.append(running)
        return running

    yield _launch
    for running in started:
        running.stop()


def serving_job(port: int, name: str = "sim-job", state: str = "running"):
    """A job whose one instance serves on 127.0.0.1:``port`` (a local node)."""
    node = node_factories.node(transport="local", name=f"{name}-node")
    job = factories.job(name=name, engine="simulator", desired_state="running")
    Instance.objects.create(job=job, replica=0, node=node, port=port, state="running" if state == "running" else
                            "stopped")
    job.__class__.objects.filter(pk=job.pk).update(state=state)
    job.refresh_from_db()
    return job


def make_run(**fields) -> BenchmarkRun:
    fields.setdefault("endpoint_url", "http://127.0.0.1:9/v1")
    fields.setdefault("endpoints", [fields["endpoint_url"]] if fields["endpoint_url"] else [])
    return BenchmarkRun.objects.create(**fields)


class OtherServer:
    """An HTTP server that is not OpenAI-compatible: 404 everywhere, or HTML for everything."""

    def __init__(self, html: bool):
        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                body = b"<html><body>hello</body></html>"
                self.send_response(200 if html else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- the generator, no database ---------------------------------------------------------------------


def test_percentiles_interpolate_linearly_like_numpy():
    assert generator.percentile([], 50) is None
    assert generator.percentile([1.0], 99) == 1.0
    assert generator.percentile([1, 2, 3, 4], 50) == 2.5
    assert generator.percentile(list(range(101)), 90) == pytest.approx(90)


def test_a_level_summary_counts_errors_by_kind_and_rates_over_the_wall_time():
    ok = generator.RequestResult(ok=True, start=0.0, end=1.0, ttft_s=0.1, itl_s=[0.1] * 9, output_tokens=10,
                                 prompt_tokens=5, usage_reported=True)
    bad = generator.RequestResult(ok=False, error_kind="connect", error="refused")
    level = generator.LevelResult(concurrency=2, requests=[ok, ok, bad], started=1000.0, wall_s=2.0)
    row = level.as_dict()
    assert row["completed"] == 2 and row["errors"] == 1 and row["errors_by_kind"] == {"connect": 1}
    assert row["output_tokens_per_s"] == 10.0 and row["total_tokens_per_s"] == 15.0 and row["requests_per_s"] == 1.0
    assert row["ttft_p50_ms"] == 100.0 and row["tpot_p50_ms"] == 100.0 and row["e2e_p99_ms"] == 1000.0


def test_synthetic_prompts_differ_per_request_and_dataset_lines_are_validated():
    a, b = generator.synthetic_prompt(0, 64, 16), generator.synthetic_prompt(1, 64, 16)
    assert a.text != b.text and len(a.text.split()) == 64 and a.max_tokens == 16
    prompts = generator.dataset_prompts(['{"prompt": "hi"}', "", '{"messages": [{"role": "user", "content": "x"}],'
                                         ' "output_tokens": 7}'], 32)
    assert [p.max_tokens for p in prompts] == [32, 7]
    with pytest.raises(ValueError, match="line 2"):
        generator.dataset_prompts(['{"prompt": "hi"}', "not json"], 32)
    with pytest.raises(ValueError, match="no prompts"):
        generator.dataset_prompts([], 32)


def test_the_generator_sweeps_levels_against_the_simulator_with_ttft_close_to_its_configuration(sim):
    spec = generator.LoadSpec(endpoints=(sim.url + "/v1",), model="sim-test")
    levels = asyncio.run(generator.run_sweep(spec, [1, 4, 16], lambda i: generator.synthetic_prompt(i, 32, 24),
                                             requests_per_level=lambda c: 2 * c + 4))
    rows = [level.as_dict() for level in levels]
    assert [r["concurrency"] for r in rows] == [1, 4, 16]
    assert [r["requests"] for r in rows] == [6, 12, 36]
    for row in rows:
        assert row["errors"] == 0 and row["completed"] == row["requests"]
        assert row["output_tokens_per_s"] > 0 and row["total_tokens_per_s"] > row["output_tokens_per_s"]
        assert row["usage_reported"] and row["output_tokens"] == 24 * row["completed"]  # ignore_eos + max_tokens
        assert row["engine"]["output_tokens_per_s"] > 0  # the simulator's own /metrics over the window
    # More concurrency, more throughput (the simulator slows each stream by 0.4 % per running request;
    # a loaded machine adds the same scheduling delay to every level, so the gain is asked of it loosely).
    assert rows[2]["output_tokens_per_s"] > (4 if load_factor() < 2 else 2) * rows[0]["output_tokens_per_s"]
    # TTFT at concurrency 1 is the configured 20 ms plus HTTP overhead; TPOT the configured 5 ms. The
    # lower bounds hold whatever the load; the upper bounds give the machine's load its share.
    assert 18 <= rows[0]["ttft_p50_ms"] <= 1000 * scaled(0.080)
    assert 4.5 <= rows[0]["tpot_p50_ms"] <= 1000 * scaled(0.015)
    assert rows[0]["engine"]["ttft_p50_ms"] is not None


def test_a_duration_level_sends_until_the_time_is_up(sim):
    spec = generator.LoadSpec(endpoints=(sim.url + "/v1",), model="sim-test")
    started = time.monotonic()
    level = asyncio.run(generator.run_level(spec, 4, lambda i: generator.synthetic_prompt(i, 16, 8),
                                            duration_s=1.0))
    assert 1.0 <= time.monotonic() - started < scaled(4)
    assert level.as_dict()["completed"] >= 8


def test_the_completions_api_is_measured_too(sim):
    spec = generator.LoadSpec(endpoints=(sim.url + "/v1",), model="sim-test", api="completions")
    row = asyncio.run(generator.run_level(spec, 2, lambda i: generator.synthetic_prompt(i, 16, 12),
                                          requests=4)).as_dict()
    assert row["completed"] == 4 and row["output_tokens"] == 48


def test_a_dead_port_fails_the_probe_fast_with_the_reason():
    spec = generator.LoadSpec(endpoints=(f"http://127.0.0.1:{free_port()}/v1",))
    started = time.monotonic()
    with pytest.raises(generator.ProbeError, match="cannot connect"):
        asyncio.run(generator.probe(spec))
    assert time.monotonic() - started < 3


# --- runs: lifecycle and failure reasons ------------------------------------------------------------


def test_every_status_change_goes_through_the_transition_table(db):
    run = make_run()
    assert services.transition_benchmark(run, S.RUNNING)
    with pytest.raises(TransitionNotAllowed):
        services.transition_benchmark(run, S.QUEUED)
    stale = BenchmarkRun.objects.get(pk=run.pk)
    assert services.transition_benchmark(run, S.SUCCEEDED, "done")
    assert not services.transition_benchmark(stale, S.FAILED, "late")  # someone else got there first
    assert list(BenchmarkTransition.objects.filter(run=run).values_list("to_status", flat=True)) == [
        "running", "succeeded"]
    assert all(not BENCHMARK_TRANSITIONS[s] for s in (S.SUCCEEDED, S.FAILED, S.CANCELLED))


def test_a_run_against_a_job_succeeds_with_a_row_per_level_and_engine_metrics(db, sim):
    job = serving_job(sim.port)
    run = services.create_benchmark({"job": job, "concurrency": [1, 8], "requests_per_level": 16,
                                     "input_tokens": 32, "output_tokens": 16})
    assert run.endpoints == [f"http://127.0.0.1:{sim.port}/v1"] and run.status == S.QUEUED
    services.run_benchmark(run.pk)
    run.refresh_from_db()
    assert run.status == S.SUCCEEDED, run.status_detail
    assert run.progress == 1.0 and run.model == "sim-test" and run.finished_at
    assert [r["concurrency"] for r in run.results] == [1, 8]
    assert all(r["completed"] == 16 and r["engine"]["output_tokens_per_s"] > 0 for r in run.results)
    assert services.run_benchmark(run.pk).status == S.SUCCEEDED  # a second delivery changes nothing
    assert run.transitions.count() == 2


def test_a_dead_endpoint_fails_the_run_with_the_reason_quickly(db):
    run = make_run(endpoint_url=f"http://127.0.0.1:{free_port()}/v1", concurrency=[1, 8])
    started = time.monotonic()
    services.run_benchmark(run.pk)
    run.refresh_from_db()
    assert time.monotonic() - started < 5
    assert run.status == S.FAILED and "cannot connect" in run.status_detail


@pytest.mark.parametrize("html", [False, True])
def test_an_http_server_that_is_not_openai_compatible_fails_the_run_with_the_reason(db, html):
    server = OtherServer(html)
    try:
        run = make_run(endpoint_url=server.url, model="any", concurrency=[1])
        services.run_benchmark(run.pk)
        run.refresh_from_db()
    finally:
        server.close()
    assert run.status == S.FAILED
    assert "not an OpenAI-compatible" in run.status_detail
    assert ("not an SSE stream" if html else "HTTP 404") in run.status_detail


def test_without_a_model_name_a_server_without_v1_models_is_refused(db):
    server = OtherServer(html=False)
    try:
        run = make_run(endpoint_url=server.url, concurrency=[1])
        services.run_benchmark(run.pk)
        run.refresh_from_db()
    finally:
        server.close()
    assert run.status == S.FAILED and "/v1/models answered HTTP 404" in run.status_detail


def test_errors_are_counted_when_the_simulator_crashes_mid_run(db, launch):
    crashing = launch("--ttft-ms", "20", "--tpot-ms", "10")
    run = make_run(endpoint_url=crashing.url + "/v1", concurrency=[2, 4], requests_per_level=200,
                   input_tokens=16, output_tokens=20)
    timer = threading.Timer(1.0, lambda: httpx.post(crashing.url + "/_sim/fault", json={"mode": "crash"}))
    timer.start()
    started = time.monotonic()
    services.run_benchmark(run.pk)
    timer.join()
    run.refresh_from_db()
    assert time.monotonic() - started < 15
    assert run.status == S.FAILED and "in a row failed" in run.status_detail
    level = run.results[0]
    assert level["completed"] > 0 and level["errors"] >= 16
    # Streams cut mid-answer are protocol errors; requests after the crash cannot connect.
    assert set(level["errors_by_kind"]) <= {"connect", "protocol"} and level["errors_by_kind"]["connect"] >= 8
    assert level["aborted"]


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_benchmark_stops_it_within_two_seconds_keeping_finished_levels(launch, operator_api):
    slow = launch("--ttft-ms", "20", "--tpot-ms", "20")
    # Each level sends for ten minutes, far longer than the test: only cancelling ends it.
    run = make_run(endpoint_url=slow.url + "/v1", concurrency=[4, 8], duration_s=600.0, input_tokens=8,
                   output_tokens=4)
    worker = threading.Thread(target=services.run_benchmark, args=(run.pk,))
    worker.start()
    deadline = time.monotonic() + scaled(10)
    while BenchmarkRun.objects.get(pk=run.pk).progress <= 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    current = BenchmarkRun.objects.get(pk=run.pk)
    assert current.status == S.RUNNING and current.progress > 0 and current.current_concurrency == 4
    asked = time.monotonic()
    response = operator_api.post(f"/api/v1/benchmarks/{run.pk}/cancel/")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    worker.join(timeout=scaled(10))
    assert not worker.is_alive()
    assert time.monotonic() - asked < scaled(2.5, below=60)  # a level sends for 600 s
    run.refresh_from_db()
    assert run.status == S.CANCELLED and run.status_detail == "cancelled by an operator"
    assert operator_api.post(f"/api/v1/benchmarks/{run.pk}/cancel/").status_code == 409


def test_a_queued_run_is_cancelled_at_once_and_its_task_then_does_nothing(operator_api):
    run = make_run()
    assert operator_api.post(f"/api/v1/benchmarks/{run.pk}/cancel/").status_code == 202
    run.refresh_from_db()
    assert run.status == S.CANCELLED
    assert services.run_benchmark(run.pk).status == S.CANCELLED


def test_a_run_whose_worker_died_is_failed_by_a_redelivery(db):
    run = make_run()
    services.transition_benchmark(run, S.RUNNING)
    BenchmarkRun.objects.filter(pk=run.pk).update(heartbeat_at=run.heartbeat_at - services.STALE_HEARTBEAT * 2)
    assert services.run_benchmark(run.pk).status == S.FAILED


def test_progress_counts_finished_levels_and_the_running_levels_share(db):
    run = make_run(concurrency=[1, 8], requests_per_level=10)
    state = generator.SweepState(level_index=1, concurrency=8, level_done=5, level_started=time.perf_counter())
    assert runner.progress_of(run, state, 1) == 0.75


# --- API -------------------------------------------------------------------------------------------


def test_an_operator_creates_a_benchmark_of_a_running_job_and_gets_202_and_the_contract_fields(
        operator_api, django_capture_on_commit_callbacks, monkeypatch):
    job = serving_job(free_port())
    queued = []
    monkeypatch.setattr(services.enqueue, "run_benchmark", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post("/api/v1/benchmarks/", {"job": job.pk, "concurrency": [1, 8, 32],
                                                             "requests_per_level": 64, "input_tokens": 128,
                                                             "output_tokens": 64}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    for key in ("id", "job", "concurrency", "status", "progress", "results"):
        assert key in body
    assert body["status"] == "queued" and body["progress"] == 0 and body["results"] == []
    assert body["concurrency"] == [1, 8, 32] and body["job_name"] == job.name and body["created_by"]
    assert queued == [body["id"]]


def test_the_default_levels_are_the_seeds_sweep(operator_api):
    response = operator_api.post("/api/v1/benchmarks/", {"endpoint_url": "http://10.0.0.5:8000"}, format="json")
    assert response.status_code == 202
    assert response.json()["concurrency"] == [1, 8, 32, 64, 128, 192]
    assert response.json()["endpoints"] == ["http://10.0.0.5:8000/v1"]


@pytest.mark.parametrize("body,field", [
    ({"concurrency": [0]}, "concurrency"),
    ({"concurrency": [1025]}, "concurrency"),
    ({"concurrency": list(range(1, 18))}, "concurrency"),
    ({"concurrency": []}, "concurrency"),
    ({"concurrency": "8"}, "concurrency"),
    ({"concurrency": [8, 8]}, "concurrency"),
    ({"concurrency": [True]}, "concurrency"),
    ({"endpoint_url": "ftp://10.0.0.5/v1"}, "endpoint_url"),
    ({"endpoint_url": "not a url"}, "endpoint_url"),
    ({"endpoint_url": ""}, "job"),
    ({"requests_per_level": 0}, "requests_per_level"),
    ({"requests_per_level": 10, "duration_s": 5}, "duration_s"),
    ({"input_tokens": 0}, "input_tokens"),
    ({"output_tokens": -1}, "output_tokens"),
    ({"prompt_source": "dataset"}, "dataset_path"),
    ({"prompt_source": "dataset", "dataset_path": "/etc/passwd"}, "dataset_path"),
    ({"prompt_source": "synthetic", "dataset_path": "x.jsonl"}, "dataset_path"),
    ({"api": "embeddings"}, "api"),
])
def test_bad_benchmark_input_is_a_400_naming_the_field(operator_api, body, field):
    body = {"endpoint_url": "http://10.0.0.5:8000/v1", **body}
    response = operator_api.post("/api/v1/benchmarks/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not BenchmarkRun.objects.exists()


def test_a_job_and_an_endpoint_together_are_a_400(operator_api):
    job = serving_job(free_port())
    response = operator_api.post("/api/v1/benchmarks/", {"job": job.pk, "endpoint_url": "http://x:1/v1"},
                                 format="json")
    assert response.status_code == 400 and "endpoint_url" in response.json()


def test_a_dataset_file_must_be_valid_jsonl_in_the_dataset_directory(operator_api, settings, tmp_path):
    settings.CONSOLE_BENCHMARK_DATASET_DIR = tmp_path
    (tmp_path / "good.jsonl").write_text('{"prompt": "Explain KV cache."}\n{"prompt": "Hi", "output_tokens": 9}\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "no prompt key"}\n')
    url = "http://10.0.0.5:8000/v1"
    bad = operator_api.post("/api/v1/benchmarks/", {"endpoint_url": url, "prompt_source": "dataset",
                                                    "dataset_path": "bad.jsonl"}, format="json")
    assert bad.status_code == 400 and "line 1" in bad.json()["dataset_path"][0]
    escape = operator_api.post("/api/v1/benchmarks/", {"endpoint_url": url, "prompt_source": "dataset",
                                                       "dataset_path": "../../etc/passwd"}, format="json")
    assert escape.status_code == 400 and "must lie in" in escape.json()["dataset_path"][0]
    good = operator_api.post("/api/v1/benchmarks/", {"endpoint_url": url, "prompt_source": "dataset",
                                                     "dataset_path": "good.jsonl"}, format="json")
    assert good.status_code == 202 and good.json()["dataset_path"] == str(tmp_path / "good.jsonl")


def test_a_run_from_a_dataset_uses_its_prompts_and_lengths(db, sim, settings, tmp_path):
    settings.CONSOLE_BENCHMARK_DATASET_DIR = tmp_path
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"question {i}", "output_tokens": 5 + i}) for i in range(3)))
    run = make_run(endpoint_url=sim.url + "/v1", concurrency=[2], requests_per_level=6, prompt_source="dataset",
                   dataset_path=str(path))
    services.run_benchmark(run.pk)
    run.refresh_from_db()
    assert run.status == S.SUCCEEDED, run.status_detail
    assert run.results[0]["output_tokens"] == 2 * (5 + 6 + 7)


def test_a_job_that_is_not_running_is_a_409(operator_api):
    job = serving_job(free_port(), state="stopped")
    response = operator_api.post("/api/v1/benchmarks/", {"job": job.pk}, format="json")
    assert response.status_code == 409 and "not running" in response.json()["detail"]
    assert not BenchmarkRun.objects.exists()


def test_a_viewer_may_not_create_or_cancel_but_may_read_and_export(viewer_api):
    run = make_run()
    assert viewer_api.post("/api/v1/benchmarks/", {"endpoint_url": "http://x:1/v1"},
                           format="json").status_code == 403
    assert viewer_api.post(f"/api/v1/benchmarks/{run.pk}/cancel/").status_code == 403
    assert viewer_api.delete(f"/api/v1/benchmarks/{run.pk}/").status_code == 403
    assert viewer_api.get(f"/api/v1/benchmarks/{run.pk}/").status_code == 200
    assert viewer_api.get(f"/api/v1/benchmarks/{run.pk}/export/?format=csv").status_code == 200


def test_an_active_run_cannot_be_deleted_and_a_finished_one_can_by_an_admin(admin_api, operator_api):
    run = make_run()
    assert operator_api.delete(f"/api/v1/benchmarks/{run.pk}/").status_code == 403
    response = admin_api.delete(f"/api/v1/benchmarks/{run.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": "the benchmark is still queued or running: cancel it first"}
    services.transition_benchmark(run, S.CANCELLED)
    assert admin_api.delete(f"/api/v1/benchmarks/{run.pk}/").status_code == 204


LEVEL = {"concurrency": 1, "requests": 10, "completed": 9, "errors": 1, "errors_by_kind": {"timeout": 1},
         "output_tokens_per_s": 22.4, "total_tokens_per_s": 40.0, "requests_per_s": 0.5, "ttft_p50_ms": 80.0,
         "ttft_p90_ms": 90.0, "ttft_p99_ms": 99.0, "tpot_p50_ms": 40.0, "tpot_p99_ms": 44.0, "itl_p50_ms": 40.0,
         "itl_p99_ms": 45.0, "e2e_p50_ms": 2000.0, "e2e_p99_ms": 2500.0, "aborted": "", "cancelled": False,
         "engine": {"output_tokens_per_s": 22.0, "ttft_p50_ms": 75.0}}


def test_export_gives_csv_rows_by_concurrency_and_a_json_document(viewer_api):
    run = make_run(label="R1 w8a8", results=[LEVEL, {**LEVEL, "concurrency": 192, "output_tokens_per_s": 2600.0}])
    response = viewer_api.get(f"/api/v1/benchmarks/{run.pk}/export/?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="benchmark-' in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["concurrency"], r["output_tokens_per_s"]) for r in table] == [("1", "22.4"), ("192", "2600.0")]
    assert table[0]["errors_by_kind"] == "timeout=1" and table[0]["engine_output_tokens_per_s"] == "22.0"
    doc = viewer_api.get(f"/api/v1/benchmarks/{run.pk}/export/?format=json").json()
    assert doc["label"] == "R1 w8a8" and doc["results"][1]["output_tokens_per_s"] == 2600.0
    assert export.COLUMNS[:2] == ["concurrency", "output_tokens_per_s"]


def test_the_benchmark_list_has_constant_queries(viewer_api, django_assert_max_num_queries, operator_api):
    for i in range(3):
        make_run(label=f"run {i}", created_by=operator_api.user, results=[LEVEL])
    with django_assert_max_num_queries(5) as few:
        assert viewer_api.get("/api/v1/benchmarks/").json()["count"] == 3
    for i in range(20):
        make_run(label=f"more {i}", created_by=operator_api.user, results=[LEVEL])
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert viewer_api.get("/api/v1/benchmarks/").json()["count"] == 23


# --- pages -----------------------------------------------------------------------------------------


@pytest.fixture
def operator_browser(client, make_user):
    client.force_login(make_user("operator"))
    return client


def test_the_result_page_shows_the_seed_table_charts_and_export_links(operator_browser):
    run = make_run(label="R1 w8a8", status=S.SUCCEEDED,
                   results=[LEVEL, {**LEVEL, "concurrency": 192, "output_tokens_per_s": 2600.0}])
    page = operator_browser.get(reverse("benchmark-detail", args=[run.pk])).content.decode()
    assert "22.4" in page and "2600.0" in page
    assert 'id="benchmark-figures"' in page and "plotly" in page
    assert reverse("benchmark-export", args=[run.pk, "csv"]) in page
    assert operator_browser.get(reverse("benchmark-export", args=[run.pk, "csv"])).status_code == 200


def test_the_compare_page_overlays_the_chosen_runs_on_one_chart(operator_browser):
    runs = [make_run(label=label, status=S.SUCCEEDED, results=[{**LEVEL, "output_tokens_per_s": tps}])
            for label, tps in (("bf16", 100.0), ("w8a8", 150.0), ("w4a16", 180.0))]
    page = operator_browser.get(reverse("benchmark-compare") + "?" + "&".join(f"runs={r.pk}" for r in runs))
    text = page.content.decode()
    figures = json.loads(text.split('id="benchmark-figures" type="application/json">')[1].split("</script>")[0])
    throughput = figures[0]
    assert [trace["name"] for trace in throughput["data"]] == ["bf16", "w8a8", "w4a16"]
    assert [trace["y"] for trace in throughput["data"]] == [[100.0], [150.0], [180.0]]


def test_the_form_page_creates_a_run_and_a_viewer_cannot_open_it(operator_browser, client, make_user, monkeypatch):
    monkeypatch.setattr(services.enqueue, "run_benchmark", lambda pk: None)
    response = operator_browser.post(reverse("benchmark-add"), {
        "target": "endpoint", "endpoint_url": "http://10.0.0.5:8000/v1", "concurrency": "1, 8, 32",
        "requests_per_level": "20", "prompt_source": "synthetic", "input_tokens": "64", "output_tokens": "32",
        "api": "chat", "request_timeout_s": "60"})
    run = BenchmarkRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("benchmark-detail", args=[run.pk])
    assert run.concurrency == [1, 8, 32]
    bad = operator_browser.post(reverse("benchmark-add"), {"target": "endpoint", "endpoint_url": "http://x:1",
                                                           "concurrency": "1, 5000", "prompt_source": "synthetic",
                                                           "input_tokens": "64", "output_tokens": "32",
                                                           "api": "chat", "request_timeout_s": "60"})
    assert bad.status_code == 200 and "1024" in bad.content.decode()
    client.force_login(make_user("viewer"))
    assert client.get(reverse("benchmark-add")).status_code == 403
    assert client.get(reverse("benchmark-list")).status_code == 200


def test_the_dataset_directory_setting_is_a_path():
    from django.conf import settings

    assert isinstance(settings.CONSOLE_BENCHMARK_DATASET_DIR, Path)


def test_a_running_runs_page_follows_its_stream_topic_and_offers_cancel(operator_browser):
    run = make_run(label="live", results=[LEVEL])
    services.transition_benchmark(run, S.RUNNING)
    BenchmarkRun.objects.filter(pk=run.pk).update(progress=0.42, current_concurrency=8)
    page = operator_browser.get(reverse("benchmark-detail", args=[run.pk])).content.decode()
    assert "data-poll-url" not in page and "42%" in page
    # Status and progress, results, history and the figures' data are live regions of the run's topic.
    assert f'"topics": ["benchmark:{run.pk}"]' in page
    for region in ("benchmark-head", "benchmark-state", "benchmark-results", "benchmark-figures-region",
                   "benchmark-history"):
        assert re.search(rf'id="{region}"[^>]*data-live-region data-live-on="benchmarkrun"', page), region
    head = page.split('id="benchmark-head"')[1].split('id="benchmark-state"')[0]
    assert 'id="bench-status"' in head and 'id="bench-progress"' in head
    figures = page.split('id="benchmark-figures-region"')[1].split("</div>")[0]
    assert 'id="benchmark-figures"' in figures
    assert reverse("benchmark-cancel", args=[run.pk]) in page
    listing = operator_browser.get(reverse("benchmark-list")).content.decode()
    assert "live" in listing and "22.4" in listing
    response = operator_browser.post(reverse("benchmark-cancel", args=[run.pk]))
    assert response.status_code == 302
    assert BenchmarkRun.objects.get(pk=run.pk).cancel_requested


def test_the_benchmark_task_is_routed_to_the_long_queue():
    from console.celery import app
    from jobs.benchmarks import tasks

    route = app.amqp.router.route({}, tasks.run_benchmark.name, args=(1,), kwargs={})
    assert tasks.run_benchmark.name == "jobs.benchmarks.tasks.run_benchmark"
    assert route["queue"].name == "long"
