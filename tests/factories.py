"""Small factories for test data (plain functions; no extra dependency)."""

import itertools

from nodes.choices import Health, NodeStatus, Transport
from nodes.models import Accelerator, Node

_counter = itertools.count(1)


def node(**fields) -> Node:
    n = next(_counter)
    values = {"name": f"node-{n}", "address": f"10.0.{n // 250}.{n % 250 + 1}", "transport": Transport.LOCAL
              if fields.get("transport") == Transport.LOCAL else Transport.SSH, "status": NodeStatus.ONLINE}
    values.update(fields)
    return Node.objects.create(**values)


def accelerators(node: Node, count: int = 8, vendor: str = "nvidia") -> list[Accelerator]:
    kind = "gpu" if vendor == "nvidia" else "npu"
    rows = [Accelerator(node=node, index=i, vendor=vendor, kind=kind, model="H100" if vendor == "nvidia"
                        else "910B3", uuid=f"{node.name}-{vendor}-{i}", memory_total_bytes=80 << 30,
                        memory_used_bytes=1 << 30, utilization_percent=10.0, temperature_c=40.0, power_w=100.0,
                        health=Health.OK) for i in range(count)]
    created = Accelerator.objects.bulk_create(rows)
    Node.objects.filter(pk=node.pk).update(accelerator_count=count)
    return created
