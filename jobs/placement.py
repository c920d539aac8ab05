"""Placement: choose nodes and accelerators for a replica.

Rules: the engine's vendors (vllm and sglang on NVIDIA, vllm-ascend and mindie on Ascend, llamacpp and the
simulator anywhere, CPU-only nodes included), the job's ``node_selector`` labels, healthy free accelerators,
and free accelerator memory against the model version's memory estimate. ``binpack`` (default) fills the
fullest node that still fits; ``spread`` uses the emptiest; either way nodes holding a ready copy of the
model's files come first (jobs.weights). A replica that spans nodes gets one member per
node, all placed together or not at all.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.utils.translation import gettext as _

from jobs import weights
from jobs.engines.registry import ENGINES
from nodes.choices import Health, NodeStatus
from nodes.models import Accelerator, Node

PLACEABLE_NODE_STATUSES = (NodeStatus.ONLINE, NodeStatus.DEGRADED)


class NoRoom(Exception):
    """No node can take the replica now; the message says why (shown as the job's state detail)."""


@dataclass
class MemberPlan:
    node: Node
    accelerators: list[Accelerator] = field(default_factory=list)


def format_bytes(count: int | None) -> str:
    """A size in the unit that reads: ``12.0 MiB``, ``200.0 GiB`` (binary units, as accelerator memory is
    counted; a fixed GiB wrote a small model's need as "0.0 GiB")."""
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _fits_selector(node: Node, selector: dict) -> bool:
    return all(str(node.labels.get(key)) == str(value) for key, value in (selector or {}).items())


def memory_per_accelerator(job) -> int | None:
    """The accelerator memory each device of a replica needs, from the version's estimate (none for
    an engine that loads no weights, such as the simulator)."""
    need = job.model_version.memory_required_bytes
    devices = job.accelerators_per_replica * job.nodes_per_replica
    engine = ENGINES.get(job.engine)
    if not need or not devices or (engine is not None and not engine.loads_weights):
        return None
    return -(-need // devices)


def plan_replica(job, engine, exclude_nodes=(), reserved: set[int] | None = None) -> list[MemberPlan]:
    """Plan one replica of ``job``. Raises NoRoom with the reason. Does not write anything;
    the caller allocates (the Allocation unique constraint settles races)."""
    reserved = reserved or set()
    nodes = [
        n
        for n in Node.objects.filter(status__in=PLACEABLE_NODE_STATUSES)
        .exclude(pk__in=exclude_nodes)
        .annotate(instance_count=Count("instances", filter=~Q(instances__state="stopped")))
        if _fits_selector(n, job.node_selector)
    ]
    if not nodes:
        raise NoRoom(_("no online node matches the node selector") if job.node_selector else _("no node is online"))
    # Weights follow the job (jobs.weights): nodes whose copy of the version failed are left out (the
    # operator asks for the copy again or removes it), and nodes with a ready copy come first.
    if weights.copies_weights(job):
        failed = weights.failed_nodes(job)
        usable = [n for n in nodes if n.pk not in failed]
        if not usable:
            names = ", ".join(sorted(n.name for n in nodes if n.pk in failed))
            raise NoRoom(_("the copy of the model failed on every node that matches (%(nodes)s): ask for the copy "
                           "again or remove it") % {"nodes": names})
        nodes = usable
    with_copy = weights.ready_nodes(job)
    per_acc = job.accelerators_per_replica
    if per_acc == 0:
        if "cpu" not in engine.vendors:
            raise NoRoom(_("the %(engine)s engine needs accelerators") % {"engine": engine.name})
        ordered = sorted(nodes, key=lambda n: (n.instance_count, n.name), reverse=job.placement == "binpack")
        ordered.sort(key=lambda n: n.pk not in with_copy)  # stable: a ready copy first, then the strategy
        if len(ordered) < job.nodes_per_replica:
            raise NoRoom(_("a replica needs %(needed)d nodes; %(available)d are available")
                         % {"needed": job.nodes_per_replica, "available": len(ordered)})
        return [MemberPlan(node) for node in ordered[: job.nodes_per_replica]]

    vendors = {v for v in engine.vendors if v != "cpu"}
    need_mem = memory_per_accelerator(job)
    free = Accelerator.objects.filter(
        node__in=nodes, present=True, allocation__isnull=True, health__in=[Health.OK, Health.UNKNOWN, Health.WARNING]
    )
    if vendors:
        free = free.filter(vendor__in=vendors)
    by_node: dict[int, list[Accelerator]] = defaultdict(list)
    too_small = 0
    for accelerator in free.order_by("node_id", "index"):
        if accelerator.pk in reserved:
            continue
        if need_mem and accelerator.memory_total_bytes is not None:
            available = accelerator.memory_total_bytes - (accelerator.memory_used_bytes or 0)
            if available < need_mem:
                too_small += 1
                continue
        by_node[accelerator.node_id].append(accelerator)
    fitting = [n for n in nodes if len(by_node[n.pk]) >= per_acc]
    if len(fitting) < job.nodes_per_replica:
        vendor_text = "/".join(sorted(vendors)) or _("any")
        reason = _(
            "no room: a replica needs %(per_acc)d free %(vendor)s accelerator(s) on each of "
            "%(nodes)d node(s); nodes with enough: %(fitting)d"
        ) % {"per_acc": per_acc, "vendor": vendor_text, "nodes": job.nodes_per_replica, "fitting": len(fitting)}
        if too_small:
            reason += _("; %(count)d free accelerator(s) lack the %(size)s each needs") % {
                "count": too_small, "size": format_bytes(need_mem)}
        raise NoRoom(reason)
    # binpack: fewest free accelerators first; spread: most first.
    fitting.sort(key=lambda n: (len(by_node[n.pk]), n.name), reverse=job.placement == "spread")
    fitting.sort(key=lambda n: n.pk not in with_copy)  # stable: a ready copy first, then the strategy
    return [MemberPlan(node, by_node[node.pk][:per_acc]) for node in fitting[: job.nodes_per_replica]]
