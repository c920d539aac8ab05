"""Placement: choose nodes and accelerators for a replica.

Rules: the engine's vendors (vllm and sglang on NVIDIA, vllm-ascend and mindie on Ascend, llamacpp and the
simulator anywhere, CPU-only nodes included), the job's ``node_selector`` labels, healthy free accelerators,
and free accelerator memory against the model version's memory estimate. ``binpack`` (default) fills the
fullest node that still fits; ``spread`` uses the emptiest; either way nodes holding a ready copy of the
model's files come first (jobs.weights). A replica that spans nodes gets one member per
node, all placed together or not at all.

CPU serving (an engine with ``cpu_serving``, vLLM's CPU build, and no accelerators): a replica takes
``options["cpu_cores"]`` cores of its node (all the node's free cores when unset), disjoint from the
cores of the other CPU-serving instances there (``Instance.cpu_cores``), and needs the version's
memory estimate plus ``options["kv_cache_gib"]`` of the node's free memory (``facts``, as the last
probe read ``/proc/meminfo``), less what the replicas placed in the same pass take.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.utils.translation import gettext as _

from jobs import weights
from jobs.choices import ACTIVE_STATES
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
    cpu_cores: list[int] = field(default_factory=list)  # CPU serving: the node's cores it gets
    memory_bytes: int | None = None  # CPU serving: the node memory it needs (weights + KV cache)


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


def cpu_memory_per_replica(job) -> int | None:
    """The node memory a CPU-serving replica needs: the version's estimate plus the KV cache
    (``options["kv_cache_gib"]``); ``None`` when neither is known."""
    options = job.options or {}
    kv_cache = options.get("kv_cache_gib")
    kv_bytes = int(kv_cache) << 30 if isinstance(kv_cache, int) and not isinstance(kv_cache, bool) else 0
    need = (job.model_version.memory_required_bytes or 0) + kv_bytes
    return need or None


def cores_in_use(node) -> set[int]:
    """The cores the node's live CPU-serving instances hold."""
    live = node.instances.filter(state__in=ACTIVE_STATES).exclude(cpu_cores=[])
    used: set[int] = set()
    for cores in live.values_list("cpu_cores", flat=True):
        used.update(int(c) for c in cores or [])
    return used


def _plan_cpu_serving(job, nodes, reserved_cores: dict[int, set[int]],
                      reserved_memory: dict[int, int]) -> list[MemberPlan]:
    """Nodes with enough free cores and memory for one CPU-serving replica (binpack or spread by free cores)."""
    wanted = (job.options or {}).get("cpu_cores")
    need_mem = cpu_memory_per_replica(job)
    candidates, short_cores, short_memory = [], 0, 0
    for node in nodes:
        total = (node.facts or {}).get("cpu_cores")
        if not isinstance(total, int) or total < 1:
            short_cores += 1
            continue
        used = cores_in_use(node) | reserved_cores.get(node.pk, set())
        free = [core for core in range(total) if core not in used]
        count = wanted if isinstance(wanted, int) and wanted > 0 else len(free)
        if count < 1 or len(free) < count:
            short_cores += 1
            continue
        available = (node.facts or {}).get("memory_available_bytes")
        if need_mem and isinstance(available, int) and available - reserved_memory.get(node.pk, 0) < need_mem:
            short_memory += 1
            continue
        candidates.append((node, free, count))
    if len(candidates) < job.nodes_per_replica:
        reason = _("no room for CPU serving: a replica needs %(cores)s free CPU core(s) on each of %(nodes)d "
                   "node(s); nodes with enough: %(fitting)d") % {
            "cores": wanted if isinstance(wanted, int) else _("any"), "nodes": job.nodes_per_replica,
            "fitting": len(candidates)}
        if short_memory:
            reason += _("; %(count)d node(s) lack the %(gib)s GiB of free memory it needs") % {
                "count": short_memory, "gib": f"{need_mem / 2**30:.1f}"}
        raise NoRoom(reason)
    # binpack: fewest free cores first; spread: most first.
    candidates.sort(key=lambda c: (len(c[1]), c[0].name), reverse=job.placement == "spread")
    return [MemberPlan(node, cpu_cores=free[:count], memory_bytes=need_mem)
            for node, free, count in candidates[: job.nodes_per_replica]]


def plan_replica(job, engine, exclude_nodes=(), reserved: set[int] | None = None,
                 reserved_cores: dict[int, set[int]] | None = None,
                 reserved_memory: dict[int, int] | None = None) -> list[MemberPlan]:
    """Plan one replica of ``job``. Raises NoRoom with the reason. Does not write anything;
    the caller allocates (the Allocation unique constraint settles races). ``reserved``: accelerators,
    ``reserved_cores`` and ``reserved_memory``: node pk -> cores and bytes, that replicas planned
    earlier in the same pass take."""
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
        if getattr(engine, "cpu_serving", False):
            return _plan_cpu_serving(job, nodes, reserved_cores or {}, reserved_memory or {})
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


def reserve(plan: list[MemberPlan], reserved: set[int], reserved_cores: dict[int, set[int]],
            reserved_memory: dict[int, int]) -> None:
    """Record what ``plan`` takes, so that the next replica planned in the same pass avoids it."""
    for member in plan:
        reserved.update(a.pk for a in member.accelerators)
        reserved_cores.setdefault(member.node.pk, set()).update(member.cpu_cores)
        if member.memory_bytes:
            reserved_memory[member.node.pk] = reserved_memory.get(member.node.pk, 0) + member.memory_bytes
