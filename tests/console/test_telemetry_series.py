"""The series registry and its reads: query() by range and step, latest() per entity, rollups and
retention, and the REST endpoints metrics/series/ and metrics/query/ with their 400s."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.models import RollupWatermark
from console.telemetry import retention, series
from jobs.models import JobSample
from nodes.models import AcceleratorSample, AcceleratorSampleMinute, NodeSample
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db
NOW = int(time.time()) * 1000


@pytest.fixture(autouse=True)
def fresh_now():
    """Times are relative to now: a long suite must not age a test's samples out of its window."""
    global NOW
    NOW = int(time.time()) * 1000


def seed_accelerators(node, accelerators, seconds=60, every=1, now=None):
    now = now or NOW
    rows = []
    for accelerator in accelerators:
        for i in range(0, seconds, every):
            ts = now - (seconds - i) * 1000
            rows.append(AcceleratorSample(accelerator=accelerator, node=node, ts=ts, utilization_percent=float(i),
                                          temperature_c=40.0 + accelerator.index, power_w=100.0, health=0,
                                          memory_used_bytes=1 << 30, memory_percent=1.25))
    AcceleratorSample.objects.bulk_create(rows)


def test_every_series_is_named_scope_dot_metric_with_a_unit_and_a_description():
    assert {"accelerator.utilization_percent", "accelerator.temperature_c", "node.cpu_percent",
            "job.output_tokens_per_s", "job.ttft_p99_ms", "job.ttft_p50_ms", "job.requests_running",
            "job.requests_waiting", "job.kv_cache_usage_percent", "accelerator.health"} <= set(series.SERIES)
    for name, definition in series.SERIES.items():
        # The gateway's series (issue 11 asks for gateway.*) are per job, read from its usage rows.
        prefix = "gateway" if definition.source == "usage" else definition.scope
        assert name == f"{prefix}.{definition.column}"
        assert definition.scope in series.SCOPES and str(definition.description)


def test_query_returns_one_ascending_series_per_accelerator_with_labels():
    node = factories.node(name="gpu-a")
    accelerators = factories.accelerators(node, count=2)
    seed_accelerators(node, accelerators, seconds=30)
    results = series.query("accelerator.temperature_c", node=node.pk, start=(NOW - 60_000) / 1000, end=NOW / 1000)
    assert len(results) == 2
    by_index = {r.labels["index"]: r for r in results}
    assert by_index[1].labels == {"node": node.pk, "node_name": "gpu-a", "accelerator": accelerators[1].pk,
                                  "index": 1, "vendor": "nvidia"}
    points = by_index[1].points
    assert len(points) == 30 and points == sorted(points) and points[0][1] == 41.0


def test_a_step_averages_each_bucket_and_health_takes_the_worst_value():
    node = factories.node()
    accelerator = factories.accelerators(node, count=1)[0]
    base = NOW // 60_000 * 60_000 - 120_000
    AcceleratorSample.objects.bulk_create([
        AcceleratorSample(accelerator=accelerator, node=node, ts=base + i * 10_000, utilization_percent=float(i),
                          health=2 if i == 3 else 0) for i in range(12)])
    util = series.query("accelerator.utilization_percent", accelerator=accelerator.pk, start=base / 1000,
                        end=(base + 120_000) / 1000, step=60)
    assert util[0].points == [(base / 1000, 2.5), ((base + 60_000) / 1000, 8.5)]
    health = series.query("accelerator.health", accelerator=accelerator.pk, start=base / 1000,
                          end=(base + 120_000) / 1000, step=60)
    assert [v for _, v in health[0].points] == [2.0, 0.0]


def test_ranges_older_than_the_raw_retention_read_the_minute_rollups(settings):
    node = factories.node()
    accelerator = factories.accelerators(node, count=1)[0]
    old = NOW - 3 * 86_400_000
    AcceleratorSampleMinute.objects.create(accelerator=accelerator, node=node, ts=old // 60_000 * 60_000,
                                           utilization_percent=77.0)
    plan, results = series.query_with_plan("accelerator.utilization_percent", node=node.pk,
                                           start=(old - 3600_000) / 1000, end=(old + 3600_000) / 1000)
    assert plan.resolution == "1m" and plan.step_s >= 60
    assert results[0].points[0][1] == 77.0


def test_latest_gives_the_newest_value_of_each_entity_within_the_window():
    node = factories.node()
    accelerators = factories.accelerators(node, count=3)
    seed_accelerators(node, accelerators[:2], seconds=20)
    AcceleratorSample.objects.create(accelerator=accelerators[2], node=node, ts=NOW - 600_000, temperature_c=99.0)
    values = series.latest("accelerator.utilization_percent", 60)
    assert {v.labels["accelerator"] for v in values} == {accelerators[0].pk, accelerators[1].pk}
    assert all(v.value == 19.0 for v in values)
    assert all(abs(v.time.timestamp() * 1000 - (NOW - 1000)) < 2 for v in values)
    assert series.latest("accelerator.temperature_c", 3600, accelerator=accelerators[2].pk)[0].value == 99.0


def test_latest_costs_one_query_however_many_entities_there_are():
    counts = []
    for n in (2, 20):
        node = factories.node()
        accelerators = factories.accelerators(node, count=n)
        seed_accelerators(node, accelerators, seconds=5)
        with CaptureQueriesContext(connection) as ctx:
            values = series.latest("accelerator.power_w", 120, node=node.pk)
        assert len(values) == n
        counts.append(len(ctx))
    assert counts[0] == counts[1] == 1


def test_query_costs_the_same_number_of_queries_for_one_or_many_entities():
    counts = []
    for n in (1, 16):
        node = factories.node()
        seed_accelerators(node, factories.accelerators(node, count=n), seconds=5)
        with CaptureQueriesContext(connection) as ctx:
            series.query("accelerator.power_w", node=node.pk, start=(NOW - 60_000) / 1000, end=NOW / 1000)
        counts.append(len(ctx))
    assert counts[0] == counts[1] == 3


@pytest.mark.parametrize("kwargs, field", [
    ({"series": "accelerator.nope"}, "series"),
    ({"series": "job.ttft_p99_ms", "node": 1}, "node"),
    ({"series": "node.cpu_percent", "node": "abc"}, "node"),
    ({"series": "node.cpu_percent", "start": NOW / 1000, "end": (NOW - 1000) / 1000}, "end"),
    ({"series": "node.cpu_percent", "start": (NOW - 400 * 86_400_000) / 1000}, "start"),
    ({"series": "node.cpu_percent", "start": (NOW - 5 * 3600_000) / 1000, "step": 1}, "step"),
    ({"series": "node.cpu_percent", "step": 0}, "step"),
    ({"series": "node.cpu_percent", "start": "yesterday"}, "start"),
])
def test_bad_queries_raise_series_errors_naming_the_field(kwargs, field):
    kwargs.setdefault("start", None)
    kwargs.setdefault("end", None)
    with pytest.raises(series.SeriesError) as caught:
        series.query(**kwargs)
    assert field in caught.value.errors


def test_rollup_averages_minutes_once_and_retention_deletes_only_rolled_up_raw_samples(settings):
    settings.CONSOLE_TELEMETRY_RAW_RETENTION_S = 600
    node = factories.node()
    accelerator = factories.accelerators(node, count=1)[0]
    minute0 = NOW // 60_000 * 60_000 - 30 * 60_000
    AcceleratorSample.objects.bulk_create([
        AcceleratorSample(accelerator=accelerator, node=node, ts=minute0 + i * 15_000, utilization_percent=float(i),
                          health=1 if i == 5 else 0) for i in range(8)])
    NodeSample.objects.create(node=node, ts=minute0, cpu_percent=50.0)
    report = retention.rollup_and_prune(now=NOW)
    rows = list(AcceleratorSampleMinute.objects.order_by("ts").values_list("ts", "utilization_percent", "health"))
    assert rows == [(minute0, 1.5, 0), (minute0 + 60_000, 5.5, 1)]
    assert report["rolled_up"] == 3
    # Past the raw retention (10 min) and rolled up: deleted.
    assert not AcceleratorSample.objects.exists() and not NodeSample.objects.exists()
    again = retention.rollup_and_prune(now=NOW)
    assert again["rolled_up"] == 0 and AcceleratorSampleMinute.objects.count() == 2
    assert RollupWatermark.objects.get(table="nodes.AcceleratorSample").rolled_up_to > minute0


def test_the_rollup_task_is_idempotent_when_run_twice(settings):
    from console.telemetry.tasks import rollup_and_prune

    job = jf.job(name="roll", engine="simulator")
    minute0 = NOW // 60_000 * 60_000 - 10 * 60_000
    JobSample.objects.bulk_create([JobSample(job=job, ts=minute0 + i * 5_000, output_tokens_per_s=100.0 + i)
                                   for i in range(12)])
    rollup_and_prune.apply()
    RollupWatermark.objects.all().update(rolled_up_to=0)  # as if a second worker ran the same turn
    rollup_and_prune.apply()
    results = series.query("job.output_tokens_per_s", job=job.pk, start=(NOW - 7200_000) / 1000,
                           end=NOW / 1000, step=60)
    assert results[0].points == [(minute0 / 1000, 105.5)]


class TestTheSeriesApi:
    def test_it_lists_the_series_for_viewers(self, viewer_api):
        body = viewer_api.get("/api/v1/metrics/series/").json()
        names = {row["name"] for row in body["results"]}
        assert "job.output_tokens_per_s" in names and body["count"] == len(series.SERIES)
        scoped = viewer_api.get("/api/v1/metrics/series/?scope=job").json()["results"]
        assert {row["scope"] for row in scoped} == {"job"}
        assert viewer_api.get("/api/v1/metrics/series/?scope=rack").status_code == 400

    def test_it_refuses_anonymous_clients(self, client):
        assert client.get("/api/v1/metrics/query/?series=node.cpu_percent").status_code in (401, 403)

    def test_it_returns_points_with_the_plan(self, viewer_api):
        node = factories.node()
        accelerators = factories.accelerators(node, count=2)
        seed_accelerators(node, accelerators, seconds=10)
        response = viewer_api.get(f"/api/v1/metrics/query/?series=accelerator.utilization_percent&node={node.pk}"
                                  f"&start={(NOW - 60_000) / 1000}&end={NOW / 1000}")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["resolution"] == "raw" and body["step"] is None and body["unit"] == "%"
        assert len(body["results"]) == 2 and len(body["results"][0]["points"]) == 10
        assert body["results"][0]["points"][0] == [(NOW - 10_000) / 1000, 0.0]

    def test_it_accepts_iso_times(self, viewer_api):
        response = viewer_api.get("/api/v1/metrics/query/?series=node.cpu_percent"
                                  "&start=2020-01-01T00:00:00Z&end=2020-01-01T01:00:00%2B00:00")
        assert response.status_code == 200 and response.json()["results"] == []

    @pytest.mark.parametrize("query, field", [
        ("", "series"),
        ("series=gpu.temp", "series"),
        ("series=node.cpu_percent&start=200&end=100", "end"),
        ("series=node.cpu_percent&start=0&end=99999999", "start"),
        ("series=node.cpu_percent&step=-5", "step"),
        ("series=node.cpu_percent&start=0&end=36000&step=1", "step"),
        ("series=job.ttft_p99_ms&accelerator=3", "accelerator"),
        ("series=node.cpu_percent&node=1%3B drop", "node"),
        ("series=node.cpu_percent&end=NaN", "end"),
    ])
    def test_bad_input_is_a_400_naming_the_field(self, viewer_api, query, field):
        response = viewer_api.get(f"/api/v1/metrics/query/?{query}")
        assert response.status_code == 400, response.content
        assert field in response.json()
