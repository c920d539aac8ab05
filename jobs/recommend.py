"""Guided deploy: how to serve a model version on this cluster, and whether it fits now.

:func:`recommend` answers the engine (by the version's format and quantization and the vendor: GGUF ->
llama.cpp; safetensors on NVIDIA -> vLLM, or SGLang; on Ascend -> vLLM-Ascend, or MindIE for its own
format), the accelerators and nodes a replica needs (the version's memory estimate against the memory of
the vendor's accelerators, tensor parallel sizes in powers of two, a node's accelerators at most per
node: DeepSeek-R1 W8A8 -> 2 nodes x 8 Ascend 910B 64 GB), whether it fits now (free healthy
accelerators on online nodes) and every reason it does not. ``job`` is the body of ``POST jobs/`` that
deploys it; the version page's Deploy button fills the job form with it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from django.db.models import Count, Q

from jobs import weights
from jobs.engines.registry import ENGINES
from jobs.models import Job
from jobs.placement import PLACEABLE_NODE_STATUSES, NoRoom, plan_replica, reserve
from models_registry.choices import CopyStatus, VersionStatus, WeightFormat
from nodes.choices import Health
from nodes.models import Accelerator, Node

#: Engines per (format, vendor), best first. ``cpu``: no accelerator.
ENGINE_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    (WeightFormat.GGUF, "nvidia"): ("llamacpp",),
    (WeightFormat.GGUF, "huawei"): ("llamacpp",),
    (WeightFormat.GGUF, "cpu"): ("llamacpp",),
    (WeightFormat.SAFETENSORS, "nvidia"): ("vllm", "sglang"),
    (WeightFormat.SAFETENSORS, "huawei"): ("vllm-ascend", "mindie"),
    (WeightFormat.SAFETENSORS, "cpu"): ("vllm",),
    (WeightFormat.PYTORCH, "nvidia"): ("vllm", "sglang"),
    (WeightFormat.PYTORCH, "huawei"): ("vllm-ascend", "mindie"),
    (WeightFormat.MINDIE, "huawei"): ("mindie",),
}
#: The oldest toolkit each engine runs on: (fact of the node's probe, version).
MIN_TOOLKIT: dict[str, tuple[str, str, str]] = {
    "vllm": ("cuda_version", "12.1", "CUDA"),
    "sglang": ("cuda_version", "12.1", "CUDA"),
    "vllm-ascend": ("cann_version", "8.1", "CANN"),
    "mindie": ("cann_version", "8.0", "CANN"),
}
#: The oldest accelerator driver each engine runs on: (fact of the node's probe, version). NVIDIA: what CUDA 12
#: needs on Linux (NVIDIA's compatibility table, 525.60.13); Ascend: the HDK driver the seed's figures were
#: measured on (Ascend HDK 24.1.0; its release candidates 24.1.RCn read as 24.1.n and pass).
MIN_DRIVER: dict[str, tuple[str, str]] = {
    "vllm": ("nvidia_driver_version", "525.60"),
    "sglang": ("nvidia_driver_version", "525.60"),
    "vllm-ascend": ("ascend_driver_version", "24.1"),
    "mindie": ("ascend_driver_version", "24.1"),
}
#: Accelerator memory when the inventory has none of the vendor's (Atlas 800I A2: 910B 64 GB; A100 80 GB).
DEFAULT_MEMORY = {"huawei": 64 << 30, "nvidia": 80 << 30}
DEFAULT_PER_NODE = 8
#: Share of an accelerator's memory the weights and cache may take (engines keep the rest).
USABLE = 0.9


def _version_tuple(text) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(text or ""))[:3])


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _inventory(vendor: str) -> tuple[int | None, int]:
    """(memory of the vendor's largest accelerator, most accelerators of that vendor on one node)."""
    rows = Accelerator.objects.filter(vendor=vendor, present=True)
    memory = max((m for m in rows.values_list("memory_total_bytes", flat=True) if m), default=None)
    per_node = max(Counter(rows.values_list("node_id", flat=True)).values(), default=0)
    return memory, per_node


def _vendor_with_most_free(fmt: str) -> str:
    counts = Counter(Accelerator.objects.filter(
        present=True, allocation__isnull=True, node__status__in=PLACEABLE_NODE_STATUSES,
        health__in=[Health.OK, Health.UNKNOWN, Health.WARNING]).values_list("vendor", flat=True))
    for vendor, _n in counts.most_common():
        if (fmt, vendor) in ENGINE_CHOICES:
            return vendor
    return "cpu" if (fmt, "cpu") in ENGINE_CHOICES else "nvidia"


def _cpu_placement(version, engine, replicas: int) -> tuple[list, str | None]:
    """The nodes CPU-serving replicas of ``version`` would go to now (jobs.placement: disjoint free cores,
    the weights' estimate in free node memory), or the placement's reason why they do not fit."""
    job = Job(name="recommendation", model_version=version, engine=engine.name, replicas=replicas,
              accelerators_per_replica=0, nodes_per_replica=1, options={}, node_selector={})
    chosen, reserved, cores, memory = [], set(), {}, {}
    for _replica in range(replicas):
        try:
            plan = plan_replica(job, engine, reserved=reserved, reserved_cores=cores, reserved_memory=memory)
        except NoRoom as exc:
            return chosen, str(exc)
        reserve(plan, reserved, cores, memory)
        chosen.extend(member.node for member in plan)
    return chosen, None


def recommend(version, *, vendor: str | None = None, replicas: int = 1, name: str | None = None) -> dict:
    """The recommendation for ``version`` (see the module docstring); never raises for a version that
    cannot be served: ``fits`` is False and ``reasons`` says why."""
    reasons: list[str] = []
    fmt = version.format
    vendor = vendor or _vendor_with_most_free(fmt)
    engines = ENGINE_CHOICES.get((fmt, vendor), ())
    quantization = version.quantization or ""
    engine_name = None
    for candidate in engines:
        engine = ENGINES.get(candidate)
        if engine is None:
            continue
        supported = getattr(engine, "supported_quantizations", None)
        if fmt != WeightFormat.GGUF and supported and quantization and quantization not in supported:
            continue
        engine_name = candidate
        break
    if not engines:
        reasons.append(f"no engine serves {fmt} weights on {vendor} accelerators")
    elif engine_name is None:
        engine_name = engines[0]
        reasons.append(f"{ENGINES[engine_name].label if engine_name in ENGINES else engine_name} cannot serve "
                       f"the {quantization} quantization on {vendor} accelerators (nor can "
                       f"{', '.join(engines[1:]) or 'any other engine'})")
    engine = ENGINES.get(engine_name) if engine_name else None

    # Accelerators and nodes per replica, from the memory estimate.
    need = version.memory_required_bytes
    memory, per_node_max = (None, 0) if vendor == "cpu" else _inventory(vendor)
    memory = memory or DEFAULT_MEMORY.get(vendor)
    per_node_max = per_node_max or DEFAULT_PER_NODE
    if vendor == "cpu":
        per_replica, nodes_per_replica = 0, 1
    elif not need:
        per_replica, nodes_per_replica = 1, 1
        reasons.append("the version has no memory estimate (import it): one accelerator assumed")
    else:
        devices = _pow2(max(1, -(-need // int(memory * USABLE))))
        if devices <= per_node_max:
            per_replica, nodes_per_replica = devices, 1
        else:
            per_replica, nodes_per_replica = per_node_max, -(-devices // per_node_max)
        if nodes_per_replica > 1 and engine is not None and not engine.supports_multinode:
            reasons.append(f"{engine.label} cannot run a replica over {nodes_per_replica} nodes")

    # Does it fit now? Nodes with enough free healthy accelerators of the vendor, ready copies first.
    nodes = list(Node.objects.filter(status__in=PLACEABLE_NODE_STATUSES).annotate(
        free=Count("accelerators", filter=Q(accelerators__present=True, accelerators__allocation__isnull=True,
                                            accelerators__vendor=vendor,
                                            accelerators__health__in=[Health.OK, Health.UNKNOWN, Health.WARNING]))))
    with_copy = set(version.copies.filter(status=CopyStatus.READY).values_list("node_id", flat=True))
    fitting = [n for n in nodes if n.free >= per_replica]
    fitting.sort(key=lambda n: (n.pk not in with_copy, -n.free, n.name))
    wanted_nodes = nodes_per_replica * replicas
    if not nodes:
        reasons.append("no node is online")
    elif len(fitting) < wanted_nodes:
        what = f"{per_replica} free {vendor} accelerator(s)" if per_replica else "room"
        reasons.append(f"not enough free accelerators: {replicas} replica(s) need {wanted_nodes} node(s) with "
                       f"{what} each; {len(fitting)} node(s) have them now")
    chosen = fitting[:wanted_nodes]
    if vendor == "cpu" and engine is not None and getattr(engine, "cpu_serving", False) and nodes:
        # CPU serving (vLLM without accelerators): free cores and free node memory decide, as placement does.
        chosen, no_room = _cpu_placement(version, engine, replicas)
        if no_room:
            reasons.append(no_room)

    # Toolkit and driver versions on the chosen (or every candidate) node.
    checks = []
    if engine_name in MIN_TOOLKIT:
        fact, minimum, label = MIN_TOOLKIT[engine_name]
        checks.append((fact, minimum, label, minimum))
    if engine_name in MIN_DRIVER and vendor != "cpu":
        fact, minimum = MIN_DRIVER[engine_name]
        checks.append((fact, minimum, "driver", f"driver {minimum}"))
    for fact, minimum, label, needed in checks:
        for node in chosen or fitting:
            have = (node.facts or {}).get(fact)
            if have and _version_tuple(have) < _version_tuple(minimum):
                reasons.append(f"node {node.name} has {label} {have}; {engine.label} needs {needed} or newer")

    # Weights: where they are, and whether they can be copied where they are missing.
    missing = [n.name for n in chosen if n.pk not in with_copy]
    copy_possible = version.status == VersionStatus.VERIFIED and bool(with_copy)
    if weights.copies_weights_for(version, engine_name) and missing and not copy_possible:
        reasons.append(f"the weights are not on {', '.join(missing)} and cannot be copied there: "
                       + ("verify the version first" if version.status != VersionStatus.VERIFIED
                          else "no node holds a ready copy"))
    if version.status in (VersionStatus.FAILED, VersionStatus.DEPRECATED):
        reasons.append(f"the version is {version.status}: jobs may not use it")

    placement = defaultdict(list)
    for index, node in enumerate(chosen):
        placement[index // nodes_per_replica].append(
            {"node": node.pk, "name": node.name, "free_accelerators": getattr(node, "free", 0),
             "has_copy": node.pk in with_copy})
    job_name = name or re.sub(r"[^a-z0-9-]+", "-", f"{version.model.name}-{version.version}".lower()).strip("-")[:63]
    return {
        "engine": engine_name, "vendor": None if vendor == "cpu" else vendor,
        "accelerators_per_replica": per_replica, "nodes_per_replica": nodes_per_replica, "replicas": replicas,
        "memory_required_bytes": need, "accelerator_memory_bytes": None if vendor == "cpu" else memory,
        "fits": not reasons, "reasons": reasons,
        "placement": [{"replica": r, "members": members} for r, members in sorted(placement.items())],
        "copies_needed": missing,
        "job": {"name": job_name, "model_version": version.pk, "engine": engine_name, "replicas": replicas,
                "accelerators_per_replica": per_replica, "nodes_per_replica": nodes_per_replica},
    }
