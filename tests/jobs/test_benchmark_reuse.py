"""Benchmark pages without dead ends (issue 17, item 6): "Run again" opens the form with the run's
settings, and the comparison says when the overlaid runs sent prompts of different shapes."""

import re

import pytest
from django.urls import reverse

from jobs.choices import BenchmarkStatus
from jobs.models import BenchmarkRun
from tests.jobs import factories

pytestmark = pytest.mark.django_db
LEVEL = {"concurrency": 1, "output_tokens_per_s": 22.4, "ttft_p99_ms": 80.0}


@pytest.fixture
def operator(client, make_user):
    client.force_login(make_user("operator"))
    return client


def make_run(**fields) -> BenchmarkRun:
    fields.setdefault("endpoint_url", "http://10.0.0.5:8000/v1")
    fields.setdefault("status", BenchmarkStatus.SUCCEEDED)
    fields.setdefault("results", [LEVEL])
    return BenchmarkRun.objects.create(**fields)


def value_of(page: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'<input[^>]*value="([^"]*)"[^>]*name="{name}"', page)
    return match.group(1) if match else ""


def selected(page: str, name: str) -> str:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.S).group(1)
    return re.search(r'<option value="([^"]*)" selected>', select).group(1)


def test_run_again_opens_the_form_with_every_setting_of_the_run(operator):
    run = make_run(label="R1 w8a8", model="r1", concurrency=[1, 8, 32], requests_per_level=20,
                   prompt_source="synthetic", input_tokens=2048, output_tokens=512, api="completions",
                   request_timeout_s=60.0)
    detail = operator.get(reverse("benchmark-detail", args=[run.pk])).content.decode()
    assert f'href="/jobs/benchmarks/add/?from={run.pk}"' in detail
    page = operator.get(f"/jobs/benchmarks/add/?from={run.pk}").content.decode()
    assert value_of(page, "endpoint_url") == "http://10.0.0.5:8000/v1" and value_of(page, "model") == "r1"
    assert value_of(page, "concurrency") == "1, 8, 32" and value_of(page, "requests_per_level") == "20"
    assert value_of(page, "input_tokens") == "2048" and value_of(page, "output_tokens") == "512"
    assert value_of(page, "label") == "R1 w8a8" and value_of(page, "request_timeout_s") == "60.0"
    assert selected(page, "api") == "completions" and selected(page, "prompt_source") == "synthetic"
    assert re.search(r'<input type="radio" name="target" value="endpoint"[^>]*checked', page)
    assert operator.get("/jobs/benchmarks/add/?from=999999").status_code == 404


def test_run_again_of_a_job_run_chooses_the_job(operator):
    job = factories.job(name="chat", engine="simulator")
    type(job).objects.filter(pk=job.pk).update(state="running")
    run = make_run(job=job, endpoint_url="", job_name="chat", prompt_source="dataset", dataset_path="sharegpt.jsonl")
    page = operator.get(f"/jobs/benchmarks/add/?from={run.pk}").content.decode()
    assert selected(page, "job") == str(job.pk) and value_of(page, "dataset_path") == "sharegpt.jsonl"
    assert selected(page, "prompt_source") == "dataset"
    assert re.search(r'<input type="radio" name="target" value="job"[^>]*checked', page)


def compare(client, runs) -> str:
    return client.get(reverse("benchmark-compare") + "?" + "&".join(f"runs={r.pk}" for r in runs)).content.decode()


def test_the_comparison_warns_when_runs_sent_prompts_of_different_shapes(operator):
    short = make_run(label="short", input_tokens=128, output_tokens=128)
    long = make_run(label="long", input_tokens=2048, output_tokens=128)
    data = make_run(label="data", prompt_source="dataset", dataset_path="sharegpt.jsonl")
    page = compare(operator, [short, long, data])
    assert 'id="shape-warning"' in page
    assert f"#{short.pk} short: 128 input / 128 output tokens" in page
    assert f"#{long.pk} long: 2048 input / 128 output tokens" in page and "dataset sharegpt.jsonl" in page


def test_the_comparison_of_runs_with_one_prompt_shape_has_no_warning(operator):
    runs = [make_run(label=q, input_tokens=256, output_tokens=128) for q in ("bf16", "w8a8")]
    assert 'id="shape-warning"' not in compare(operator, runs)
    other_api = make_run(label="completions", input_tokens=256, output_tokens=128, api="completions")
    assert 'id="shape-warning"' in compare(operator, [*runs, other_api])
