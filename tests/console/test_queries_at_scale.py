"""Pages and lists at 1000 nodes of 8 accelerators (issue 12, item 6) make the same number of queries as
for 2 nodes: nothing is fetched per node or per accelerator."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodes.models import Accelerator, AcceleratorSample, Node, NodeSample

pytestmark = pytest.mark.django_db

URLS = ["/", "/nodes/", "node-page", "/api/v1/nodes/", "/api/v1/nodes/?page_size=500", "/api/v1/accelerators/",
        "/api/v1/accelerators/?page_size=500"]


def grow(total: int) -> list[Node]:
    """Bulk-create nodes (8 accelerators and 3 samples each) up to ``total``."""
    have = Node.objects.count()
    now = int(time.time()) * 1000
    nodes = Node.objects.bulk_create([Node(name=f"scale-{i:04d}", address=f"10.3.{i // 250}.{i % 250 + 1}",
                                           transport="ssh", status="online", accelerator_count=8)
                                      for i in range(have, total)])
    accelerators = Accelerator.objects.bulk_create([
        Accelerator(node=node, index=j, vendor="nvidia", kind="gpu", model="H100", uuid=f"S-{node.pk}-{j}",
                    memory_total_bytes=80 << 30, utilization_percent=50.0, health="ok")
        for node in nodes for j in range(8)])
    NodeSample.objects.bulk_create([NodeSample(node=node, ts=now - s * 1000, cpu_percent=10.0)
                                    for node in nodes for s in range(3)])
    AcceleratorSample.objects.bulk_create([AcceleratorSample(accelerator=a, node_id=a.node_id, ts=now - s * 1000,
                                                             utilization_percent=50.0, health=0)
                                           for a in accelerators for s in range(3)])
    return list(Node.objects.order_by("pk"))


def queries(client, url: str, node: Node) -> int:
    path = f"/nodes/{node.pk}/" if url == "node-page" else url
    client.get(path)  # warm the session and the role cache
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(ctx)


def test_pages_and_lists_make_the_same_queries_for_1000_nodes_as_for_2(client, make_user):
    client.force_login(make_user("viewer"))
    small = grow(2)
    few = {url: queries(client, url, small[0]) for url in URLS}
    large = grow(1000)
    many = {url: queries(client, url, large[-1]) for url in URLS}
    assert many == few
    # Today: overview 16, node page 21, nodes page 4, each list 5 (with the session and role checks).
    assert all(count <= (25 if url.startswith(("/", "node")) and "/api/" not in url else 6)
               for url, count in few.items()), few
