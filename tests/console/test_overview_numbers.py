"""The overview's numbers (issue 17, item 5): the heatmap draws one cell per accelerator keyed by node,
vendor and index; long ranges end with the recent raw samples when the rollups lag, and the throughput
tile is the current rate whatever the range; a first-run guide on an empty console."""

import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from console.models import RollupWatermark
from console.telemetry import series
from jobs.models import JobSample, JobSampleMinute
from nodes.models import AcceleratorSample
from tests import factories
from tests.jobs import factories as jf
from tests.live import live_config

pytestmark = pytest.mark.django_db




@pytest.fixture
def viewer_client(client, make_user):
    client.force_login(make_user("viewer"))
    return client


def test_a_node_with_8_gpus_and_12_npus_draws_20_heatmap_cells_keyed_by_node_vendor_and_index(viewer_client):
    node = factories.node(name="mixed")
    gpus = factories.accelerators(node, count=8, vendor="nvidia")
    npus = factories.accelerators(node, count=12, vendor="huawei")
    now = int(time.time() * 1000)
    AcceleratorSample.objects.create(accelerator=gpus[3], node=node, ts=now - 1000, utilization_percent=100.0,
                                     health=0)
    AcceleratorSample.objects.create(accelerator=npus[3], node=node, ts=now - 1000, utilization_percent=5.0,
                                     health=0)
    heatmap = live_config(viewer_client.get("/"))["heatmap"]
    assert len(heatmap["cells"]) == 20
    assert set(heatmap["cells"]) == ({f"{node.pk}/nvidia/{i}" for i in range(8)}
                                     | {f"{node.pk}/huawei/{i}" for i in range(12)})
    # Two rows for the one node, so GPU 3 and NPU 3 are two cells in two places, each with its own value.
    positions = {(c[0], c[1]) for c in heatmap["cells"].values()}
    assert len(positions) == 20 and len(heatmap["nodes"]) == 2 and heatmap["columns"] == 12
    assert {n["vendor"] for n in heatmap["nodes"]} == {"nvidia", "huawei"}
    assert len({n["name"] for n in heatmap["nodes"]}) == 2
    assert heatmap["cells"][f"{node.pk}/nvidia/3"][2] == 100.0 and heatmap["cells"][f"{node.pk}/huawei/3"][2] == 5.0
    # The stream names accelerators by id: each id leads to its own cell.
    assert heatmap["ids"][str(gpus[3].pk)] == f"{node.pk}/nvidia/3"
    assert heatmap["ids"][str(npus[3].pk)] == f"{node.pk}/huawei/3"


def lagging_rollups(job, now_ms: int, watermark: int):
    """An hour of minutes rolled up at 850 tokens/s up to ``watermark``; raw samples at 900 after it."""
    JobSampleMinute.objects.bulk_create([JobSampleMinute(job=job, ts=m, output_tokens_per_s=850.0)
                                         for m in range(watermark - 3600_000, watermark, 60_000)])
    RollupWatermark.objects.update_or_create(table="jobs.JobSample", defaults={"rolled_up_to": watermark})
    JobSample.objects.bulk_create([JobSample(job=job, ts=t, output_tokens_per_s=900.0)
                                   for t in range(watermark, now_ms, 1000)])


def test_a_24h_range_ends_with_the_raw_samples_the_lagging_rollups_do_not_have_yet(viewer_client):
    job = jf.job(name="chat", engine="simulator")
    now = int(time.time() * 1000)
    watermark = (now - 4 * 60_000) // 120_000 * 120_000 + 60_000  # rollups 3-5 minutes behind, mid-bucket
    lagging_rollups(job, now, watermark)
    response = viewer_client.get("/api/v1/metrics/query/", {
        "series": "job.output_tokens_per_s", "job": job.pk, "start": now / 1000 - 86400, "end": now / 1000 + 1})
    body = response.json()
    assert response.status_code == 200 and body["resolution"] == "1m" and body["step"] == 120
    points = body["results"][0]["points"]
    # The last bucket is the current one and holds the current rate, not a minute-old one.
    assert points[-1][0] * 1000 >= now - 120_000 and points[-1][1] == 900.0
    # The bucket across the watermark weighs its rolled-up minute and its raw minute once each.
    straddling = dict(points)[(watermark - 60_000) / 1000]
    assert straddling == pytest.approx(875.0)
    assert dict(points)[(watermark - 1_260_000) / 1000] == 850.0
    assert all(t * 1000 < now + 1000 for t, _ in points)


def test_the_joined_long_range_costs_the_same_queries_for_one_or_many_jobs():
    now = int(time.time() * 1000)
    watermark = (now - 4 * 60_000) // 60_000 * 60_000
    counts = []
    for n in (1, 6):
        jobs = [jf.job(name=f"j{n}-{i}", engine="simulator") for i in range(n)]
        for job in jobs:
            lagging_rollups(job, now, watermark)
        with CaptureQueriesContext(connection) as ctx:
            results = series.query("job.output_tokens_per_s", start=now / 1000 - 86400, end=now / 1000)
        assert len(results) >= n
        counts.append(len(ctx))
    assert counts[0] == counts[1], counts


def test_the_throughput_tile_is_the_newest_raw_rate_of_each_job_whatever_the_charts_range(viewer_client):
    job = jf.job(name="chat", engine="simulator")
    now = int(time.time() * 1000)
    lagging_rollups(job, now, (now - 4 * 60_000) // 60_000 * 60_000)
    config = live_config(viewer_client.get("/"))
    assert config["throughput"] == 900.0
    t, value = config["throughput_jobs"][str(job.pk)]
    assert value == 900.0 and now - 2000 <= t <= now
    assert config["strings"]["periodic"] and "%(s)s" in config["strings"]["lagging"]


def guide_steps(page: str) -> dict[str, bool]:
    guide = re.search(r'<div class="card first-run" id="first-run-guide">(.*?)</ol>', page, re.S)
    if guide is None:
        return {}
    return {m.group(1): m.group(2) == "done" for m in re.finditer(r'<li data-step="(\w+)" class="(\w*)">',
                                                                  guide.group(1))}


def test_the_first_run_guide_leads_an_empty_console_to_a_node_a_model_and_a_job(client, make_user):
    client.force_login(make_user("admin"))
    page = client.get("/").content.decode()
    assert guide_steps(page) == {"node": False, "model": False, "job": False}
    assert 'href="/nodes/add/"' in page and 'href="/models/versions/add/"' in page
    assert 'action="/models/catalog/load/"' in page
    assert 'href="/jobs/add/?engine=simulator&amp;accelerators_per_replica=0"' in page
    # The simulator link opens the job form with the simulator and no accelerator chosen.
    form = client.get("/jobs/add/?engine=simulator&accelerators_per_replica=0").content.decode()
    assert re.search(r'<option value="simulator" selected>', form)
    assert re.search(r'name="accelerators_per_replica" value="0"', form)


def test_the_guide_ticks_the_node_step_once_a_node_exists_and_goes_away_after_the_first_job(client, make_user):
    client.force_login(make_user("admin"))
    factories.node(name="first")
    page = client.get("/").content.decode()
    steps = guide_steps(page)
    assert steps == {"node": True, "model": False, "job": False}
    assert 'href="/nodes/add/"' not in page.split('id="first-run-guide"')[1].split("</ol>")[0]
    jf.job(name="first-job", engine="simulator")  # a job needs a model version: both steps are done
    page = client.get("/").content.decode()
    assert 'id="first-run-guide"' not in page and guide_steps(page) == {}


def test_a_viewer_sees_the_guide_without_the_admin_buttons(viewer_client):
    page = viewer_client.get("/").content.decode()
    assert guide_steps(page) == {"node": False, "model": False, "job": False}
    assert "These steps need an administrator." in page and 'href="/nodes/add/"' not in page


@pytest.mark.parametrize("url, says, link", [
    ("/nodes/", "No nodes yet. Add the machines that run engines", "/nodes/add/"),
    ("/jobs/", "No jobs yet. A job serves one model version", "/jobs/add/"),
    ("/jobs/benchmarks/", "No benchmarks yet. A benchmark sweeps concurrency levels", "/jobs/benchmarks/add/"),
    ("/models/", "No models yet.", "/models/versions/add/"),
    ("/alerts/channels/", "Add an e-mail, webhook or chat channel", "/alerts/channels/add/"),
])
def test_empty_list_pages_say_what_to_do_and_link_to_it(client, make_user, url, says, link):
    client.force_login(make_user("admin"))
    page = client.get(url).content.decode()
    assert says in page and f'href="{link}"' in page


def test_the_empty_states_and_the_guide_speak_chinese(client, make_user):
    client.force_login(make_user("admin"))
    client.cookies["django_language"] = "zh-hans"
    try:
        page = client.get("/").content.decode()
        assert "快速上手" in page and "部署模拟器" in page and "Getting started" not in page
        assert "暂无节点。添加运行推理引擎的机器" in client.get("/nodes/").content.decode()
    finally:
        translation.deactivate()  # LocaleMiddleware leaves zh-hans active in this thread
