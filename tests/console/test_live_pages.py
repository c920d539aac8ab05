"""The live pages (overview, node, job) embed their figures and stream settings, serve plotly.js from
our own static files, cost a number of queries that does not grow with the cluster, and GET /metrics
is a Prometheus exposition that promtool accepts."""

import json
import re
import shutil
import subprocess
import time

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.core.models import ApiToken
from jobs.models import JobSample
from nodes.models import AcceleratorSample, NodeSample
from tests import factories
from tests.conftest import require
from tests.jobs import factories as jf
from tests.live import live_config

pytestmark = pytest.mark.django_db
NOW = int(time.time() * 1000)


@pytest.fixture(autouse=True)
def fresh_now():
    """Times are relative to now: a long suite must not age a test's samples out of its window."""
    global NOW
    NOW = int(time.time()) * 1000


def grow_cluster(nodes: int, seconds: int = 5):
    created = []
    for _ in range(nodes):
        node = factories.node()
        accelerators = factories.accelerators(node, count=8)
        NodeSample.objects.bulk_create([NodeSample(node=node, ts=NOW - i * 1000, cpu_percent=10.0 + i)
                                        for i in range(seconds)])
        AcceleratorSample.objects.bulk_create([
            AcceleratorSample(accelerator=a, node=node, ts=NOW - i * 1000, utilization_percent=50.0,
                              temperature_c=60.0, power_w=300.0, memory_percent=40.0, health=1 if a.index == 3 else 0)
            for a in accelerators for i in range(seconds)])
        created.append(node)
    return created




@pytest.fixture
def viewer_client(client, make_user):
    client.force_login(make_user("viewer"))
    return client


def test_the_overview_embeds_the_heatmap_and_job_throughput_and_loads_plotly_locally(viewer_client):
    nodes = grow_cluster(2)
    job = jf.job(name="chat", engine="simulator")
    JobSample.objects.create(job=job, ts=NOW - 1000, output_tokens_per_s=123.5)
    response = viewer_client.get("/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/static/vendor/plotly-4.1.1.min.js" in text and "cdn" not in text.lower()
    config = live_config(response)
    assert config["topics"] == ["cluster"] and config["ws_path"] == "/ws/stream/"
    heatmap = config["heatmap"]
    assert [n["name"] for n in heatmap["nodes"]] == sorted(n.name for n in nodes) and heatmap["columns"] == 8
    assert len(heatmap["cells"]) == 16 and {c[3] for c in heatmap["cells"].values()} == {0, 1}
    throughput = config["charts"][0]
    assert throughput["traces"][0]["name"] == "chat" and throughput["traces"][0]["y"] == [123.5]
    assert config["throughput"] == 123.5
    assert finders.find("vendor/plotly-4.1.1.min.js") and finders.find("js/live.js")


def test_the_node_page_has_one_trace_per_accelerator_for_each_series(viewer_client):
    node = grow_cluster(1)[0]
    config = live_config(viewer_client.get(f"/nodes/{node.pk}/"))
    assert config["topics"] == [f"node:{node.pk}"]
    charts = {c["id"]: c for c in config["charts"]}
    assert set(charts) == {"node-cpu", "acc-utilization_percent", "acc-memory_percent", "acc-temperature_c",
                           "acc-power_w"}
    assert len(charts["acc-temperature_c"]["traces"]) == 8
    assert all(len(t["x"]) == 5 for t in charts["acc-power_w"]["traces"])
    assert charts["node-cpu"]["traces"][0]["y"][-1] == 10.0


def test_the_job_page_charts_tokens_ttft_queue_and_kv_cache(viewer_client):
    job = jf.job(name="serve", engine="simulator")
    JobSample.objects.bulk_create([JobSample(job=job, ts=NOW - i * 1000, output_tokens_per_s=100.0, ttft_p50_ms=20.0,
                                             ttft_p99_ms=80.0, requests_running=3, requests_waiting=1,
                                             kv_cache_usage_percent=12.5) for i in range(3)])
    config = live_config(viewer_client.get(f"/jobs/{job.pk}/"))
    series = {t["series"]: t for c in config["charts"] for t in c["traces"]}
    assert {"job.output_tokens_per_s", "job.ttft_p50_ms", "job.ttft_p99_ms", "job.requests_running",
            "job.requests_waiting", "job.kv_cache_usage_percent"} <= set(series)
    assert series["job.ttft_p99_ms"]["y"] == [80.0, 80.0, 80.0] and config["topics"] == [f"job:{job.pk}"]


@pytest.mark.parametrize("url", ["/", "node"])
def test_the_live_pages_cost_the_same_queries_for_a_small_and_a_large_cluster(viewer_client, url):
    counts = []
    for size in (1, 12):
        nodes = grow_cluster(size)
        path = url if url == "/" else f"/nodes/{nodes[-1].pk}/"
        viewer_client.get(path)  # warm the session and the role cache
        with CaptureQueriesContext(connection) as ctx:
            assert viewer_client.get(path).status_code == 200
        counts.append(len(ctx))
    assert counts[0] == counts[1], counts


class TestPrometheusExposition:
    def test_it_needs_a_viewer_unless_public(self, client, make_user, settings):
        assert client.get("/metrics").status_code == 401
        nobody = ApiToken.objects.create(user=make_user(None)).key
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {nobody}").status_code == 403
        viewer = ApiToken.objects.create(user=make_user("viewer")).key
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {viewer}")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
        settings.CONSOLE_METRICS_PUBLIC = True
        assert client.get("/metrics").status_code == 200

    def test_it_reports_the_cluster_in_base_units_from_the_latest_samples(self, client, settings):
        settings.CONSOLE_METRICS_PUBLIC = True
        node = grow_cluster(1)[0]
        job = jf.job(name="chat", engine="vllm")
        JobSample.objects.create(job=job, ts=NOW, output_tokens_per_s=50.0, ttft_p99_ms=250.0)
        text = client.get("/metrics").content.decode()
        assert f'boom_node_up{{node="{node.name}"}} 1.0' in text
        assert f'boom_accelerator_utilization_ratio{{index="0",node="{node.name}",vendor="nvidia"}} 0.5' in text
        assert f'boom_accelerator_health{{index="3",node="{node.name}",vendor="nvidia"}} 1.0' in text
        assert 'boom_job_time_to_first_token_p99_seconds{job="chat"} 0.25' in text
        assert 'boom_job_output_tokens_per_second{job="chat"} 50.0' in text
        assert 'boom_jobs{state="stopped"} 1.0' in text

    def test_promtool_accepts_it(self, client, settings):
        promtool = shutil.which("promtool")
        require(promtool is not None, "promtool (apt-get install prometheus)")
        settings.CONSOLE_METRICS_PUBLIC = True
        grow_cluster(2)
        job = jf.job(name="chat", engine="vllm")
        JobSample.objects.create(job=job, ts=NOW, output_tokens_per_s=50.0)
        text = client.get("/metrics").content
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_its_query_count_does_not_grow_with_the_cluster(self, client, settings):
        settings.CONSOLE_METRICS_PUBLIC = True
        counts = []
        for size in (1, 10):
            grow_cluster(size)
            with CaptureQueriesContext(connection) as ctx:
                client.get("/metrics")
            counts.append(len(ctx))
        assert counts[0] == counts[1], counts


def test_the_grafana_dashboard_uses_only_metrics_that_the_exposition_has(client, settings):
    from pathlib import Path

    from tests.conftest import TESTS_DIR

    settings.CONSOLE_METRICS_PUBLIC = True
    grow_cluster(1)
    job = jf.job(name="chat", engine="vllm")
    JobSample.objects.create(job=job, ts=NOW, output_tokens_per_s=1.0, prompt_tokens_per_s=1.0, ttft_p50_ms=1.0,
                             ttft_p99_ms=1.0, requests_running=1, requests_waiting=0, kv_cache_usage_percent=1.0)
    exposed = set(re.findall(r"^# TYPE (\w+) ", client.get("/metrics").content.decode(), re.M))
    exposed |= {name + "_total" for name in exposed}  # counters are sampled with the suffix
    dashboard = json.loads((Path(TESTS_DIR).parent / "docs" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bboom_\w+", target["expr"])}
    used |= set(re.findall(r"label_values\((boom_\w+)", json.dumps(dashboard["templating"])))
    assert used and used - {"boom_alerts"} <= exposed, sorted(used - exposed)
