"""The collector's flush, without threads: batched writes, compact stream frames, the throttle at the
source that delays and merges but never drops, and a database failure that keeps the batch."""

import json
from unittest import mock

import pytest
from django.db import OperationalError, connection

from console import streams
from console.core import broadcast, bulk
from console.core.models import StreamEntry
from console.telemetry.collector import Collector
from nodes.models import AcceleratorSample, NodeSample
from nodes.probes.parsers.common import AcceleratorReading
from nodes.probes.parsers.sampler import NodeReading
from tests import factories

pytestmark = pytest.mark.django_db


def gpu(index, util=50.0, health="ok"):
    return AcceleratorReading(index=index, vendor="nvidia", kind="gpu", model="H100", uuid=f"GPU-{index}",
                              bus_id=None, memory_total_bytes=1000, memory_used_bytes=250, utilization_percent=util,
                              temperature_c=60.0, power_w=300.0, health=health)


@pytest.fixture
def setup():
    node = factories.node()
    accelerators = factories.accelerators(node, count=2)
    collector = Collector(flush_ms=100)
    collector.accelerators = {node.pk: {f"GPU-{a.index}": a.pk for a in accelerators}}
    streams.watch([f"node:{node.pk}"])  # a node page is open: its samples are published
    return collector, node, accelerators


def test_one_flush_writes_every_sample_and_publishes_compact_frames(setup):
    collector, node, accelerators = setup
    collector.emit(node.pk, "node", NodeReading(cpu_percent=12.5, memory_percent=40.0), 1000.0)
    collector.emit(node.pk, "accelerator", gpu(0, 80.0), 1000.1)
    collector.emit(node.pk, "accelerator", gpu(1, 20.0, "critical"), 1000.1)
    collector.flush()
    assert NodeSample.objects.get().cpu_percent == 12.5
    assert sorted(AcceleratorSample.objects.values_list("utilization_percent", "health", "memory_percent")) == [
        (20.0, 2, 25.0), (80.0, 0, 25.0)]
    entry = StreamEntry.objects.get(topic=f"node:{node.pk}")
    frames = {f["scope"]: f for f in entry.payload["frames"]}
    assert frames["node"]["rows"][0][:3] == [1000_000, node.pk, 12.5]  # t in milliseconds
    assert frames["accelerator"]["labels"] == ["node", "accelerator"]
    assert [row[:4] for row in frames["accelerator"]["rows"]] == [[1000_100, node.pk, accelerators[0].pk, 80.0],
                                                                   [1000_100, node.pk, accelerators[1].pk, 20.0]]
    cluster = StreamEntry.objects.get(topic="cluster").payload["state"]
    assert cluster["accelerators"][str(accelerators[1].pk)] == [node.pk, 20.0, 2, 1000_100]  # t in milliseconds
    assert cluster["totals"]["nodes"] == {"online": 1}


def test_a_topic_published_less_than_a_second_ago_waits_and_its_samples_are_merged_not_dropped(setup):
    collector, node, _ = setup
    collector.emit(node.pk, "node", NodeReading(cpu_percent=1.0), 2000.0)
    collector.flush()
    collector.emit(node.pk, "node", NodeReading(cpu_percent=2.0), 2000.3)
    collector.flush()
    collector.emit(node.pk, "node", NodeReading(cpu_percent=3.0), 2000.6)
    collector.flush()
    topic = f"node:{node.pk}"
    assert StreamEntry.objects.filter(topic=topic).count() == 1  # throttled at the source
    assert NodeSample.objects.count() == 3  # but every sample is written at once
    collector._published_at[topic] -= 1.0  # a second passes
    collector.flush()
    latest = StreamEntry.objects.filter(topic=topic).order_by("-pk").first()
    assert [row[2] for row in latest.payload["frames"][0]["rows"]] == [2.0, 3.0]


def test_accelerators_not_yet_inventoried_are_skipped_and_counted(setup):
    collector, node, _ = setup
    collector.emit(node.pk, "accelerator", gpu(7), 3000.0)
    collector.flush()
    assert not AcceleratorSample.objects.exists() and collector.stats.unknown_accelerators == 1


def test_a_failed_write_keeps_the_batch_for_the_next_flush(setup):
    collector, node, _ = setup
    collector.emit(node.pk, "node", NodeReading(cpu_percent=5.0), 4000.0)
    with mock.patch.object(broadcast, "publish_many", side_effect=OperationalError("database is locked")), \
            pytest.raises(OperationalError):
        collector.flush()
    assert not NodeSample.objects.exists()
    collector.flush()
    assert NodeSample.objects.get().cpu_percent == 5.0
    assert StreamEntry.objects.filter(topic=f"node:{node.pk}").exists()


def test_merging_concatenates_frames_and_series_and_merges_state():
    merged = broadcast.merge_payloads([
        {"frames": [{"scope": "job", "labels": ["job"], "fields": ["a"], "rows": [[1, 5, 1.0]]}],
         "series": [{"series": "x", "labels": {"k": 1}, "points": [[1, 1]]}], "state": {"cells": {"1": 1, "2": 2}}},
        {"frames": [{"scope": "job", "labels": ["job"], "fields": ["a"], "rows": [[2, 5, 2.0]]}],
         "series": [{"series": "x", "labels": {"k": 1}, "points": [[2, 2]]}], "state": {"cells": {"2": 3}}},
    ])
    assert merged["frames"][0]["rows"] == [[1, 5, 1.0], [2, 5, 2.0]]
    assert merged["series"][0]["points"] == [[1, 1], [2, 2]]
    assert merged["state"] == {"cells": {"1": 1, "2": 3}}


def test_stream_payloads_are_stored_as_compact_json_text_that_the_database_never_parses(setup):
    collector, node, _ = setup
    collector.emit(node.pk, "node", NodeReading(cpu_percent=7.5), 5000.0)
    collector.flush()
    entry = StreamEntry.objects.get(topic=f"node:{node.pk}")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT payload FROM {StreamEntry._meta.db_table} WHERE id = %s", [entry.pk])
        (stored,) = cursor.fetchone()
    # text in, the same text out: a jsonb column would hand back a parsed value (PostgreSQL) or re-spaced text
    assert isinstance(stored, str) and stored.startswith('{"frames":[{"scope":"node"') and ", " not in stored
    assert json.loads(stored) == entry.payload
    assert StreamEntry._meta.get_field("payload").db_type(connection) == "text"


def test_a_sample_row_and_its_frame_row_are_one_list_with_the_time_in_milliseconds(setup):
    collector, node, accelerators = setup
    collector.emit(node.pk, "node", NodeReading(cpu_percent=7.5), 6000.25)
    collector.emit(node.pk, "accelerator", gpu(0, 30.0), 6000.25)
    written = {}
    real_insert = bulk.insert_rows

    def insert_rows(model, columns, rows, **kwargs):
        written[model] = list(rows)
        return real_insert(model, columns, rows, **kwargs)

    with mock.patch.object(bulk, "insert_rows", insert_rows):
        collector.flush()
    frames = {f["scope"]: f for f in StreamEntry.objects.get(topic=f"node:{node.pk}").payload["frames"]}
    assert frames["node"]["rows"] == [list(written[NodeSample][0])]
    assert frames["accelerator"]["rows"] == [list(written[AcceleratorSample][0])]
    assert written[AcceleratorSample][0][:4] == [6000_250, node.pk, accelerators[0].pk, 30.0]
    assert AcceleratorSample.objects.get().ts == 6000_250


def test_a_node_nobody_watches_gets_its_samples_written_but_no_stream_entries(setup, settings):
    collector, node, accelerators = setup
    other = factories.node(name="unwatched")
    collector.emit(other.pk, "node", NodeReading(cpu_percent=1.0), 1000.0)
    collector.emit(node.pk, "node", NodeReading(cpu_percent=2.0), 1000.0)
    collector.flush()
    assert NodeSample.objects.filter(node=other).exists()
    assert set(StreamEntry.objects.values_list("topic", flat=True)) == {f"node:{node.pk}"}
    assert collector.stats.entries_published == 1
    settings.CONSOLE_STREAM_WATCHED_ONLY = False  # the way before: every node's topic, watched or not
    collector._watch_checked = float("-inf")
    collector.emit(other.pk, "node", NodeReading(cpu_percent=3.0), 1001.0)
    collector._published_at.clear()
    collector.flush()
    assert StreamEntry.objects.filter(topic=f"node:{other.pk}").exists()


def test_a_page_that_starts_watching_a_node_gets_the_points_of_the_last_seconds_then_every_new_one(setup):
    collector, _node, _accelerators = setup
    other = factories.node(name="late")
    topic = f"node:{other.pk}"
    for second in range(15):  # 15 s of samples while nobody watched: written, not published
        collector.emit(other.pk, "node", NodeReading(cpu_percent=float(second)), 1000.0 + second)
        collector._published_at.clear()
        collector.flush()
    assert not StreamEntry.objects.filter(topic=topic).exists()
    assert NodeSample.objects.filter(node=other).count() == 15
    streams.watch([topic])  # the page subscribes
    collector._watch_checked = float("-inf")  # (the collector reads the watched set once a second)
    collector.emit(other.pk, "node", NodeReading(cpu_percent=15.0), 1015.0)
    collector._published_at.clear()
    collector.flush()
    (entry,) = StreamEntry.objects.filter(topic=topic)
    rows = [row for frame in entry.payload["frames"] for row in frame["rows"]]
    # The last ten seconds' points (what a page rendered a moment ago may lack), and the new one.
    assert [row[0] // 1000 for row in rows] == list(range(1005, 1016))


def test_a_watch_lasts_its_time_and_only_node_topics_are_watched(settings):
    from datetime import timedelta

    from django.utils import timezone

    from console.core.models import StreamWatch

    assert streams.watch(["node:7", "cluster", "job:3", "node:7"]) == 1
    assert streams.watched_topics() == {"node:7"}
    StreamWatch.objects.filter(topic="node:7").update(until=timezone.now() - timedelta(seconds=1))
    assert streams.watched_topics() == set()
    streams.watch(["node:7"])  # renewed by the connection
    assert streams.watched_topics() == {"node:7"}
