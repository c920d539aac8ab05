"""The batched writes of the hot paths (console.core.bulk): COPY or executemany for inserts, one UPDATE for
many rows, each row with its own values, on whichever database the suite runs (PostgreSQL or SQLite)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.core import bulk
from nodes.models import Accelerator, AcceleratorSample
from tests import factories

pytestmark = pytest.mark.django_db


def test_inserted_rows_keep_their_values_and_nulls():
    node = factories.node()
    accelerator = factories.accelerators(node, 1)[0]
    columns = ("accelerator_id", "node_id", "ts", "utilization_percent", "memory_used_bytes", "health")
    rows = [(accelerator.pk, node.pk, 1000 + i, 12.5 * i, 1 << 40, None if i == 2 else 0) for i in range(3)]
    assert bulk.insert_rows(AcceleratorSample, columns, rows) == 3
    stored = list(AcceleratorSample.objects.order_by("ts").values_list(*columns))
    assert stored == rows
    assert bulk.insert_rows(AcceleratorSample, columns, []) == 0


def test_one_update_gives_each_row_its_own_values_json_dates_and_nulls_included():
    node = factories.node()
    first, second, untouched = factories.accelerators(node, 3)
    when = datetime(2026, 12, 5, 12, 30, 15, 123456, tzinfo=UTC)
    columns = ("utilization_percent", "temperature_c", "health", "extra", "missing_since", "present")
    with CaptureQueriesContext(connection) as ctx:
        matched = bulk.update_rows(Accelerator, columns, [
            (first.pk, 91.5, None, "critical", {"pstate": "P0", "ecc": 3}, None, True),
            (second.pk, None, 33.0, "ok", {}, when, False)])
    assert matched == 2 and len(ctx) == 1
    rows = {a.pk: a for a in Accelerator.objects.all()}
    assert (rows[first.pk].utilization_percent, rows[first.pk].temperature_c, rows[first.pk].health,
            rows[first.pk].extra, rows[first.pk].missing_since, rows[first.pk].present) == (
        91.5, None, "critical", {"pstate": "P0", "ecc": 3}, None, True)
    assert (rows[second.pk].utilization_percent, rows[second.pk].temperature_c, rows[second.pk].extra,
            rows[second.pk].missing_since, rows[second.pk].present) == (None, 33.0, {}, when, False)
    assert rows[untouched.pk].utilization_percent == untouched.utilization_percent == 10.0


def test_a_text_value_is_a_parameter_never_sql():
    node = factories.node()
    accelerator = factories.accelerators(node, 1)[0]
    evil = "x'); DROP TABLE nodes_node; --"
    bulk.update_rows(Accelerator, ("model",), [(accelerator.pk, evil)])
    assert Accelerator.objects.get().model == evil and node.__class__.objects.count() == 1


def test_a_guarded_update_writes_only_the_rows_whose_guard_still_holds_and_returns_their_keys():
    from nodes.models import Node

    kept, moved = factories.node(status="online"), factories.node(status="online")
    Node.objects.filter(pk=moved.pk).update(status="maintenance")  # changed by someone else meanwhile
    written = bulk.update_rows(Node, ("accelerator_count", "facts"),
                               [(kept.pk, 8, {"hostname": "a"}, "online"), (moved.pk, 8, {"hostname": "b"}, "online")],
                               guard=("status",), returning=True)
    assert written == [kept.pk]
    rows = {n.pk: n for n in Node.objects.all()}
    assert (rows[kept.pk].accelerator_count, rows[kept.pk].facts) == (8, {"hostname": "a"})
    assert (rows[moved.pk].accelerator_count, rows[moved.pk].status) == (0, "maintenance")
