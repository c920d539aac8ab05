"""Benchmark: the nodes and accelerators list API with 1000 nodes of 8 accelerators.

Queries per page (constant: a test pins it) and time per page of 100, against the time of a
bare ``SELECT`` of the same 100 rows in the same run (the baseline of the ratio).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, setup_django, timed, write_section  # noqa: E402


def main(nodes: int = 1000, per_node: int = 8):
    setup_django()
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from console.core.models import ApiToken
    from nodes.models import Accelerator, Node

    Node.objects.bulk_create([Node(name=f"npu-{i:04d}", address=f"10.1.{i // 250}.{i % 250 + 1}", transport="ssh",
                                   status="online", accelerator_count=per_node, labels={"rack": f"r{i % 20}"},
                                   facts={"hostname": f"npu-{i:04d}", "os": "openEuler 24.03 (LTS)",
                                          "cpu_cores": 192, "memory_total_bytes": 1 << 40})
                              for i in range(nodes)], batch_size=500)
    rows = []
    for node in Node.objects.all():
        rows += [Accelerator(node=node, index=j, vendor="huawei", kind="npu", model="910B3",
                             uuid=f"{node.name}-{j}", memory_total_bytes=64 << 30, memory_used_bytes=3 << 30,
                             utilization_percent=12.0, temperature_c=55.0, power_w=100.0, health="ok")
                 for j in range(per_node)]
    Accelerator.objects.bulk_create(rows, batch_size=2000)
    user = User.objects.create_user("bench")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=user).key}")

    results = []
    for label, url, model in (("nodes", "/api/v1/nodes/", Node), ("accelerators", "/api/v1/accelerators/",
                                                                    Accelerator)):
        pages = {}
        for offset in (0, 500, (nodes * (per_node if model is Accelerator else 1)) - 100):
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(f"{url}?limit=100&offset={offset}").status_code == 200
            pages[offset] = len(ctx)
        api = median(timed(lambda u=url: client.get(f"{u}?limit=100&offset=500"), repeat=20))
        bare = median(timed(lambda m=model: list(m.objects.all()[500:600].values()), repeat=20))
        results.append((label, pages, api, bare))

    lines = ["| list | rows | queries per page (offsets 0 / 500 / last) | time per page of 100 | "
             "bare SELECT of 100 rows | ratio |", "|---|---|---|---|---|---|"]
    for label, pages, api, bare in results:
        total = nodes * (per_node if label == "accelerators" else 1)
        lines.append(f"| `{label}/` | {total} | {' / '.join(str(v) for v in pages.values())} | "
                     f"{api * 1000:.1f} ms | {bare * 1000:.2f} ms | {api / bare:.1f}× |")
    body = (f"{nodes} nodes of {per_node} accelerators, SQLite, Django test client with token auth "
            "(serialization included, no network).\n\n" + "\n".join(lines) +
            "\n\nThe query count does not grow with the offset or the row count "
            "(pinned by `tests/nodes/test_nodes_api.py`).")
    print(body)
    write_section("Inventory list API", body)


if __name__ == "__main__":
    main()
