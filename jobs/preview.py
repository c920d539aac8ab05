"""The placement preview of the job form (``POST /api/v1/jobs/preview-placement/``): where a job would
go now, and what the operator should know about the accelerators it would get (memory, current load,
who holds them), in words for the page. Reads only; the reconciler places for real (jobs.placement).
"""

from __future__ import annotations

import time

from django.db.models import OuterRef, Subquery
from django.utils.translation import gettext, ngettext

from jobs.engines.registry import get_engine
from jobs.models import Instance, Job
from jobs.placement import (
    NoRoom,
    cpu_memory_per_replica,
    format_bytes,
    memory_per_accelerator,
    plan_replica,
    reserve,
)
from nodes.models import Accelerator, AcceleratorSample

#: Utilisation at or above which the preview says a chosen accelerator is busy (the probe rounds).
SATURATED_PERCENT = 99.5
#: How old a streamed sample may be to count as the current load (else the last probe's value).
CURRENT_WINDOW_S = 120


def preview_placement(data: dict) -> dict:
    """Where a job described by validated serializer ``data`` would go now.

    ``replicas`` lists each placeable replica's members with their accelerators (memory total, used and
    free, current utilisation, holders: the console's own allocation and the processes the probe saw,
    named by job and instance where their pid is one of ours); ``summary`` and ``memory_per_accelerator``
    are the page's words; ``warnings`` names each chosen accelerator at 100 %; ``placeable`` is whether
    every replica fits. A constant number of queries per replica.
    """
    fields = {f.name for f in Job._meta.concrete_fields} - {"desired_state", "id"}
    job = Job(**{k: v for k, v in data.items() if k in fields})
    engine = get_engine(job.engine)
    plans, reserved, reserved_cores, reserved_memory = [], set(), {}, {}
    reason = None
    for _replica in range(job.replicas):
        try:
            plan = plan_replica(job, engine, reserved=reserved, reserved_cores=reserved_cores,
                                reserved_memory=reserved_memory)
        except NoRoom as exc:
            reason = str(exc)
            break
        reserve(plan, reserved, reserved_cores, reserved_memory)
        plans.append(plan)
    details = _accelerator_details(reserved)
    warnings = []
    replicas = []
    for plan in plans:
        members = []
        for m in plan:
            accelerators = [details[a.pk] for a in m.accelerators]
            for item in accelerators:
                if item["saturated"]:
                    warnings.append(_saturated_warning(m.node.name, item))
            members.append({"node": m.node.pk, "node_name": m.node.name, "accelerators": accelerators,
                            "cpu_cores": list(m.cpu_cores)})
        replicas.append(members)
    # CPU serving (vLLM with 0 accelerators): the node memory a replica needs, not accelerator memory.
    cpu_serving = job.accelerators_per_replica == 0 and getattr(engine, "cpu_serving", False)
    need = None if cpu_serving else memory_per_accelerator(job)
    per_replica = cpu_memory_per_replica(job) if cpu_serving else None
    summary = ngettext("%(placeable)d of %(replicas)d replica can be placed now.",
                       "%(placeable)d of %(replicas)d replicas can be placed now.",
                       job.replicas) % {"placeable": len(replicas), "replicas": job.replicas}
    return {"placeable_replicas": len(replicas), "replicas": replicas, "reason": reason,
            "placeable": reason is None, "summary": summary, "warnings": warnings,
            "memory_per_accelerator_bytes": need,
            "memory_per_accelerator": format_bytes(need) if need else None, "cpu_serving": cpu_serving,
            "memory_per_replica_bytes": per_replica,
            "memory_per_replica": format_bytes(per_replica) if per_replica else None}


def _accelerator_details(ids: set[int]) -> dict[int, dict]:
    """Memory, current load and holders of the accelerators ``ids``: two queries whatever their number."""
    if not ids:
        return {}
    cutoff = int((time.time() - CURRENT_WINDOW_S) * 1000)
    newest = (AcceleratorSample.objects.filter(accelerator_id=OuterRef("pk"), ts__gte=cutoff,
                                               utilization_percent__isnull=False).order_by("-ts"))
    rows = list(Accelerator.objects.filter(pk__in=ids).select_related("node", "allocation__instance__job")
                .annotate(_util=Subquery(newest.values("utilization_percent")[:1]),
                          _used=Subquery(newest.values("memory_used_bytes")[:1])))
    # Processes the probe saw on a chip (npu-smi lists them), named by job where the pid is an instance's.
    pids = {(row.node_id, p.get("pid")) for row in rows for p in (row.extra or {}).get("processes", [])}
    ours = {}
    if pids:
        for instance in (Instance.objects.filter(node_id__in={n for n, _pid in pids},
                                                 pid__in={pid for _n, pid in pids if isinstance(pid, int)})
                         .exclude(state="stopped").select_related("job")):
            ours[(instance.node_id, instance.pid)] = instance
    out = {}
    for row in rows:
        used = row._used if row._used is not None else row.memory_used_bytes
        util = row._util if row._util is not None else row.utilization_percent
        total = row.memory_total_bytes
        holders = []
        allocation = getattr(row, "allocation", None)
        if allocation is not None:
            holders.append(_instance_holder(allocation.instance))
        for process in (row.extra or {}).get("processes", []):
            instance = ours.get((row.node_id, process.get("pid")))
            holders.append(_instance_holder(instance) if instance is not None else {
                "pid": process.get("pid"), "name": str(process.get("name") or ""),
                "text": gettext("process %(pid)s (%(name)s), not started by the console") % {
                    "pid": process.get("pid"), "name": process.get("name") or "?"}})
        out[row.pk] = {
            "id": row.pk, "vendor": row.vendor, "kind": row.kind, "index": row.index, "model": row.model,
            "label": f"{str(row.kind).upper()} {row.index}",
            "memory_total_bytes": total, "memory_used_bytes": used,
            "memory_free_bytes": (total - (used or 0)) if total is not None else None,
            "memory_text": gettext("%(used)s of %(total)s used") % {
                "used": format_bytes(used or 0), "total": format_bytes(total)} if total else "",
            "utilization_percent": util,
            "saturated": util is not None and util >= SATURATED_PERCENT,
            "holders": holders,
        }
    return out


def _instance_holder(instance: Instance) -> dict:
    return {"job": instance.job_id, "job_name": instance.job.name, "instance": instance.pk,
            "replica": instance.replica, "pid": instance.pid,
            "text": gettext("job %(job)s, replica %(replica)d (instance %(instance)d)") % {
                "job": instance.job.name, "replica": instance.replica, "instance": instance.pk}}


def _saturated_warning(node_name: str, item: dict) -> str:
    held = "; ".join(h["text"] for h in item["holders"])
    if held:
        return gettext("%(accelerator)s on %(node)s is at %(percent)d %% utilisation, held by %(holders)s: "
                       "the job would share it.") % {
            "accelerator": item["label"], "node": node_name, "percent": round(item["utilization_percent"]),
            "holders": held}
    return gettext("%(accelerator)s on %(node)s is at %(percent)d %% utilisation although no job of the "
                   "console holds it: the job would share it.") % {
        "accelerator": item["label"], "node": node_name, "percent": round(item["utilization_percent"])}
