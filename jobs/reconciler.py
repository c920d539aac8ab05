"""The reconciler: converges instances to each job's desired state, and heals.

One pass over a job (``reconcile_job``):
1. under the job's row lock, place replicas that have no live instance (allocating accelerators) and pick
   the instances to stop (scale down, job stopped, one old-generation replica of a rolling restart);
2. then, without holding locks, act on each instance: stop, start, or health-check it, restart a crashed
   or hung one with back-off, and move the instances of a node that stayed unreachable past the grace.

Safe when two passes run at once: every state change is a conditional write (jobs.services.transition_instance)
and the executor's pid file on the node tells whether a process already runs, so a start is never doubled.
"""

import logging
import re
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from console.core import audit, broadcast, locks
from jobs import services, weights
from jobs.choices import ACTIVE_STATES, PROCESS_STATES, DesiredState, InstanceState
from jobs.engines.registry import get_engine
from jobs.executors.base import AlreadyRunning, ExecutorError, ProcessSpec
from jobs.models import Allocation, Instance, Job
from jobs.placement import NoRoom, plan_replica, reserve
from jobs.runtime import check_ready, executor_for, launch_spec
from nodes.choices import NodeStatus
from nodes.models import Node
from nodes.services import transition_node
from nodes.transports import NodeCommandError

log = logging.getLogger(__name__)
S = InstanceState


# --- entry points ----------------------------------------------------------------------------------


def reconcile_all() -> int:
    """Reconcile every job that wants to run or still has live instances. Returns how many were looked at.
    Only one pass runs at a time across all workers (console.core.locks); a skipped pass is harmless."""
    with locks.hold("jobs-reconcile-all") as mine:
        if not mine:
            return 0
        ids = list(
            Job.objects.filter(Q(desired_state=DesiredState.RUNNING) | Q(instances__state__in=ACTIVE_STATES))
            .values_list("pk", flat=True)
            .distinct()
        )
        for job_id in ids:
            try:
                reconcile_job(job_id)
            except Exception:  # one job's failure must not stop the others
                log.exception("reconcile of job %s failed", job_id)
        return len(ids)


def reconcile_job(job_id: int) -> Job | None:
    """One reconcile pass over a job (see the module docstring); None when another pass holds the job's
    lock (console.core.locks: dropped with its holder's connection, so a killed worker delays nothing)."""
    with locks.hold("jobs-reconcile", job_id) as mine:
        return _reconcile_job(job_id) if mine else None


def _reconcile_job(job_id: int) -> Job | None:
    job = Job.objects.select_related("model_version").filter(pk=job_id).first()
    if job is None:
        return None
    engine = get_engine(job.engine)
    now = timezone.now()
    _move_off_lost_nodes(job, now)
    to_stop, pending_reason = _plan(job, engine)
    for instance, reason in to_stop:
        _stop_instance(instance, reason)
    stopped = {instance.pk for instance, _reason in to_stop}
    instances = list(job.instances.select_related("node").filter(state__in=ACTIVE_STATES).exclude(pk__in=stopped))
    members = {}
    for instance in instances:
        members.setdefault(instance.replica, []).append(instance)
    # The files first, on every node of a replica that spans nodes: a member whose node lacks them is
    # ``preparing`` before its leader is looked at (acting in order, the leader started while a member,
    # not yet asked, was still ``scheduled``; a multi-node head then waits for a worker that cannot start).
    weights_ready = {instance.pk: _weights_ready(job, instance) for instance in instances
                     if instance.member != 0 and instance.state in (S.SCHEDULED, S.PREPARING)
                     and instance.node is not None and instance.node.status != NodeStatus.UNREACHABLE}
    for instance in instances:
        _act(job, engine, instance, members[instance.replica], weights_ready)
    services.refresh_job_state(job, pending_reason)
    return job


# --- planning (under the job lock) -------------------------------------------------------------------


def _plan(job: Job, engine) -> tuple[list[tuple[Instance, str]], str | None]:
    """Place missing replicas and choose instances to stop.

    Returns ([(instance to stop, why)], why some replica is pending)."""
    pending_reason = None
    to_stop: list[tuple[Instance, str]] = []
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("model_version").get(pk=job.pk)
        instances = list(job.instances.select_related("node").all())
        wanted = job.replicas if job.desired_state == DesiredState.RUNNING else 0
        by_replica: dict[int, list[Instance]] = {}
        for instance in instances:
            by_replica.setdefault(instance.replica, []).append(instance)
        extra_reason = "scaled down" if job.desired_state == DesiredState.RUNNING else "job stopped"
        for instance in instances:
            if instance.replica >= wanted and instance.state in ACTIVE_STATES:
                to_stop.append((instance, extra_reason))
        reserved: set[int] = set()
        reserved_cores: dict[int, set[int]] = {}
        reserved_memory: dict[int, int] = {}
        for replica in range(wanted):
            members = by_replica.get(replica, [])
            live = [m for m in members if m.state in ACTIVE_STATES and m.node_id is not None]
            if len(live) == job.nodes_per_replica:
                continue
            try:
                plan = plan_replica(job, engine, reserved=reserved, reserved_cores=reserved_cores,
                                    reserved_memory=reserved_memory)
            except NoRoom as exc:
                pending_reason = str(exc)
                continue
            if not _place(job, replica, members, plan):
                pending_reason = "placement raced with another; retrying"
                continue
            reserve(plan, reserved, reserved_cores, reserved_memory)
        if job.desired_state == DesiredState.RUNNING:
            reason = f"rolling restart to generation {job.generation}"
            to_stop += [(victim, reason) for victim in _rolling_restart_victims(job, by_replica, wanted)]
    return to_stop, pending_reason


def _place(job: Job, replica: int, members: list[Instance], plan) -> bool:
    existing = {m.member: m for m in members}
    placed = []
    for rank, member_plan in enumerate(plan):
        instance = existing.get(rank)
        port = choose_port(member_plan.node)
        if instance is None:
            instance = Instance.objects.create(
                job=job,
                replica=replica,
                member=rank,
                node=member_plan.node,
                port=port,
                state=S.SCHEDULED,
                generation=job.generation,
                cpu_cores=member_plan.cpu_cores,
            )
            services.record_created(instance, member_plan)
        else:
            if instance.state not in (S.STOPPED, S.FAILED, S.RESTARTING, S.SCHEDULED):
                continue  # a live member keeps its node and accelerators
            services.release(instance)
            if not services.transition_instance(
                instance,
                S.SCHEDULED,
                f"placed on {member_plan.node.name}",
                node=member_plan.node,
                port=port,
                generation=job.generation,
                pid=None,
                next_attempt_at=None,
                cpu_cores=member_plan.cpu_cores,
            ):
                return False
        if not services.allocate(instance, member_plan.accelerators):
            return False
        placed.append(instance)
    return True


def _rolling_restart_victims(job: Job, by_replica, wanted: int) -> list[Instance]:
    """At most one replica of an older generation at a time, and only while all others serve."""
    old = [
        r
        for r in range(wanted)
        if any(m.generation < job.generation and m.state in ACTIVE_STATES for m in by_replica.get(r, []))
    ]
    if not old:
        return []
    others_serving = all(
        all(m.state == S.RUNNING for m in by_replica.get(r, [])) and by_replica.get(r)
        for r in range(wanted)
        if r not in old
    )
    in_flight = any(
        m.state in (S.SCHEDULED, S.STARTING, S.RESTARTING) and m.generation == job.generation
        for r in range(wanted)
        for m in by_replica.get(r, [])
    )
    if in_flight or not others_serving:
        return []
    return [m for m in by_replica[old[0]] if m.state in ACTIVE_STATES]


def choose_port(node, exclude=()) -> int:
    """A port not used by another live instance on the node nor in ``exclude`` (ports the node reported busy);
    checked again on the node at start."""
    low, high = settings.CONSOLE_INSTANCE_PORT_RANGE
    used = set(Instance.objects.filter(node=node, state__in=ACTIVE_STATES).values_list("port", flat=True))
    used.update(exclude)
    free = next((p for p in range(low, high + 1) if p not in used), None)
    if free is None:
        raise NoRoom(f"no free port in {low}-{high} on {node.name}")
    return free


# --- acting on one instance (no locks held) ----------------------------------------------------------


def _act(job, engine, instance: Instance, members: list[Instance],
         weights_ready: dict[int, bool] | None = None) -> None:
    """Move one instance on: start it once its node has the files (``weights_ready``: what the pass already
    found for the members of replicas that span nodes), check its process, restart it when due."""
    weights_ready = weights_ready or {}
    now = timezone.now()
    if instance.node is None:
        return
    if instance.node.status == NodeStatus.UNREACHABLE:
        return  # within the grace: wait (see _move_off_lost_nodes)
    try:
        if instance.state in (S.SCHEDULED, S.PREPARING):
            ready = weights_ready[instance.pk] if instance.pk in weights_ready else _weights_ready(job, instance)
            if not ready:
                return
            if instance.member == 0 and any(m.state in (S.PREPARING, S.FAILED) for m in members if m.pk != instance.pk):
                return  # a replica spanning nodes starts once every member's node has the files
            if instance.member == 0 or _leader_started(members):
                _start(job, engine, instance, members)
        elif instance.state == S.RESTARTING:
            if instance.next_attempt_at is None or instance.next_attempt_at <= now:
                _start(job, engine, instance, members)
        elif instance.state in PROCESS_STATES:
            _check(job, engine, instance)
            due = instance.next_attempt_at
            if instance.state == S.RESTARTING and due is not None and due <= timezone.now():
                _start(job, engine, instance, members)  # the first restart happens in the same pass
    except NodeCommandError as exc:
        _node_not_answering(instance, str(exc))
    except (ExecutorError, OSError) as exc:
        instance.refresh_from_db()
        if instance.state in PROCESS_STATES or instance.state in (S.SCHEDULED, S.PREPARING):
            _failed(instance, f"the executor failed: {exc}", "")


def _weights_ready(job, instance: Instance) -> bool:
    """True when the instance's node has the model's files (jobs.weights). Otherwise the instance is
    ``preparing`` while its copy runs (its detail shows the progress), or ``failed`` with the copy's
    reason: placement then avoids that node for this job, so a failed copy is not retried in a loop."""
    outcome = weights.prepare(job, instance.node)
    if outcome.outcome == "ready":
        if instance.state == S.PREPARING:
            # Back to ``scheduled``: the leader of a replica spanning nodes waits while a member is ``preparing``
            # (a member left ``preparing`` once its copy was ready held its leader back for ever).
            services.transition_instance(instance, S.SCHEDULED,
                                         f"the model's files are ready on node {instance.node.name}")
        return True
    if outcome.outcome == "wait":
        services.transition_instance(instance, S.PREPARING, outcome.reason)
        return False
    services.release(instance)
    services.transition_instance(instance, S.FAILED, outcome.reason, last_exit_reason=outcome.reason[:2000],
                                 pid=None)
    return False


def _leader_started(members) -> bool:
    return any(m.member == 0 and m.state in (S.STARTING, S.RUNNING) for m in members)


def _start(job, engine, instance: Instance, members) -> None:
    """Start (or re-adopt) the process of an instance."""
    executor = executor_for(instance.node)
    restarting = instance.state == S.RESTARTING
    # One round trip for the ports (the launcher itself refuses to start a key that still runs, and ends the
    # leftovers of its previous run), then one for the start.
    busy = executor.ports_in_use(_candidate_ports(instance))
    planned_port = instance.port
    if instance.port in busy:
        new_port = choose_port(instance.node, exclude={instance.port, *busy})
        Instance.objects.filter(pk=instance.pk).update(port=new_port)
        instance.port = new_port
    accelerators = [
        a.accelerator
        for a in Allocation.objects.filter(instance=instance)
        .select_related("accelerator")
        .order_by("accelerator__index")
    ]
    workdir = executor.workdir(instance.key)
    spec = launch_spec(instance, accelerators, members, workdir=workdir)
    files = engine.prepare_files(spec)
    if files:
        executor.write_files(instance.key, files)
    fields = {
        "run": instance.run + 1,
        "started_at": timezone.now(),
        "ready_at": None,
        "health_failures": 0,
        "pid": None,
    }
    if restarting:
        fields["restart_count"] = instance.restart_count + 1
    if not services.transition_instance(instance, S.STARTING, "starting", **fields):
        return  # another pass claimed this start
    process = ProcessSpec(instance_key=instance.key, argv=engine.build_argv(spec), env=engine.build_env(spec))
    try:
        handle = executor.start(process)
    except AlreadyRunning as exc:
        if restarting:
            # We believed it dead (hung, or left over): end it and start afresh.
            executor.stop(instance.key, grace_s=5)
            handle = executor.start(process)
        else:
            # A process from before a console restart, or from a pass that died mid-way: adopt it, on its port.
            handle = exc.handle
            services.transition_instance(instance, S.STARTING, "re-adopted a running process", run=instance.run,
                                         port=planned_port)
    Instance.objects.filter(pk=instance.pk).update(pid=handle.pid, node_run=handle.generation)
    instance.pid, instance.node_run = handle.pid, handle.generation
    broadcast.changed("instance", f"job:{instance.job_id}")


def _candidate_ports(instance: Instance) -> list[int]:
    """The instance's port and the next few free ones, so one round trip can check them all on the node."""
    low, high = settings.CONSOLE_INSTANCE_PORT_RANGE
    used = set(Instance.objects.filter(node=instance.node, state__in=ACTIVE_STATES)
               .exclude(pk=instance.pk).values_list("port", flat=True))
    spare = [p for p in range(low, high + 1) if p not in used and p != instance.port][:8]
    return [instance.port, *spare]


def _check(job, engine, instance: Instance) -> None:
    """Health-check a started instance: process alive and ours, then HTTP readiness."""
    executor = executor_for(instance.node)
    status = executor.status(instance.key)
    for _ in range(5):
        # The supervisor writes the exit status a moment after the process dies: wait for it briefly.
        if status.alive or status.exit_code is not None or (status.pid_alive and not status.ours):
            break
        time.sleep(0.1)
        status = executor.status(instance.key)
    now = timezone.now()
    Instance.objects.filter(pk=instance.pk).update(last_check_at=now)
    if not (status.alive and status.ours):
        if _start_interrupted(instance, status):
            # A worker stopped between claiming this start and launching it: the exit status on the node
            # is the previous run's, already counted. Start at once, with the back-off as it was.
            services.transition_instance(instance, S.RESTARTING, "the start was interrupted; starting again",
                                         next_attempt_at=now, pid=None)
            return
        tail = executor.tail(instance.key, lines=200)
        _failed(instance, exit_reason(status, tail, engine), tail)
        return
    if status.pid and status.pid != instance.pid:
        # A worker killed between starting the process and recording its pid: the node knows it.
        Instance.objects.filter(pk=instance.pk).update(pid=status.pid)
        instance.pid = status.pid
        broadcast.changed("instance", f"job:{instance.job_id}")
    if instance.member > 0:
        ready, why = True, ""
    else:
        ready, why = check_ready(engine, instance)
    if ready:
        fields = {"health_failures": 0}
        if instance.state == S.STARTING:
            fields.update(ready_at=now, healthy_since=now)
        elif instance.state == S.UNHEALTHY:
            fields.update(healthy_since=now)
        healthy_for = (now - instance.healthy_since).total_seconds() if instance.healthy_since else 0
        if instance.backoff_s and healthy_for >= settings.CONSOLE_RESTART_BACKOFF_RESET_S:
            fields["backoff_s"] = 0
        if instance.state != S.RUNNING:
            services.transition_instance(instance, S.RUNNING, "ready", **fields)
        elif fields != {"health_failures": 0} or instance.health_failures:
            Instance.objects.filter(pk=instance.pk).update(**fields)
        return
    if instance.state == S.STARTING:
        waited = (now - instance.started_at).total_seconds() if instance.started_at else 0
        if waited > job.options.get("start_timeout_s", settings.CONSOLE_START_TIMEOUT_S):
            executor.stop(instance.key, grace_s=5)
            _failed(instance, f"not ready after {waited:.0f} s: {why}", executor.tail(instance.key, lines=200))
        return
    failures = instance.health_failures + 1
    if failures >= settings.CONSOLE_HEALTH_FAILURES_BEFORE_RESTART:
        tail = executor.tail(instance.key, lines=200)
        executor.stop(instance.key, grace_s=5)
        _failed(instance, f"unhealthy ({failures} failed checks): {why}", tail)
    else:
        services.transition_instance(instance, S.UNHEALTHY, why, health_failures=failures)


def _start_interrupted(instance: Instance, status) -> bool:
    """True when a start was claimed (``starting``, no pid saved) but the node is still at the run whose
    pid was saved last: the launch itself never happened."""
    return (instance.state == S.STARTING and instance.pid is None and instance.node_run is not None
            and status.generation is not None and status.generation <= instance.node_run)


def _failed(instance: Instance, reason: str, tail: str) -> None:
    """Record why the process ended and schedule its restart with back-off
    (first at once, then 10 s doubling up to 5 min; reset after 10 min healthy)."""
    now = timezone.now()
    healthy_for = (now - instance.healthy_since).total_seconds() if instance.healthy_since else 0
    delay = 0.0 if healthy_for >= settings.CONSOLE_RESTART_BACKOFF_RESET_S else instance.backoff_s
    following = (
        settings.CONSOLE_RESTART_BACKOFF_FIRST_S
        if delay == 0
        else min(delay * 2, settings.CONSOLE_RESTART_BACKOFF_MAX_S)
    )
    when = "at once" if delay == 0 else f"in {delay:.0f} s"
    services.transition_instance(
        instance,
        S.RESTARTING,
        f"{reason}; restarting {when}",
        last_exit_reason=reason[:2000],
        previous_log=tail[-20000:],
        next_attempt_at=now + timedelta(seconds=delay),
        backoff_s=following,
        healthy_since=None,
        pid=None,
    )


def exit_reason(status, tail: str, engine) -> str:
    """A one-line cause: exit code or signal, OOM, and what the engine's log says."""
    if status.pid_alive and not status.ours:
        parts = ["the recorded pid now belongs to another process"]
    else:
        parts = [status.exit_reason() or "the process disappeared without an exit status"]
    hint = engine.error_hints(tail or "")
    if hint:
        parts.append(hint)
    return "; ".join(parts)


def _stop_instance(instance: Instance, reason: str) -> None:
    if instance.node is not None and instance.node.status != NodeStatus.UNREACHABLE:
        try:
            executor_for(instance.node).stop(instance.key, grace_s=float(instance.job.options.get("stop_grace_s", 10)))
        except NodeCommandError as exc:
            _node_not_answering(instance, str(exc))
            return
    services.release(instance)
    services.transition_instance(instance, S.STOPPED, reason, pid=None, next_attempt_at=None)


# --- node loss ----------------------------------------------------------------------------------------


def _node_not_answering(instance: Instance, reason: str) -> None:
    """The executor could not reach the node: mark it unreachable at once (starting the grace period)
    rather than waiting for the next periodic probe."""
    node = instance.node
    node.refresh_from_db(fields=["status"])
    if node.status in (NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.UNKNOWN):
        transition_node(node, NodeStatus.UNREACHABLE, f"not answering the reconciler: {reason}")


def _last_contact(instance: Instance):
    known = [t for t in (instance.last_check_at, instance.node.last_seen) if t is not None]
    return max(known) if known else instance.node.status_changed_at


def _move_off_lost_nodes(job: Job, now) -> None:
    """Instances on a node unreachable for longer than the grace go back to placement (elsewhere).
    A shorter blip changes nothing."""
    grace = timedelta(seconds=settings.CONSOLE_NODE_LOSS_GRACE_S)
    # The grace counts from the last time the node answered (a successful check of the instance, or the
    # transition to unreachable when none is known), so a silent partition is not detected twice over.
    candidates = job.instances.select_related("node").filter(state__in=ACTIVE_STATES,
                                                             node__status=NodeStatus.UNREACHABLE)
    lost = [i for i in candidates if _last_contact(i) <= now - grace]
    replicas = {instance.replica for instance in lost}
    if not replicas:
        return
    for instance in job.instances.select_related("node").filter(replica__in=replicas, state__in=ACTIVE_STATES):
        name = instance.node.name if instance.node else "?"
        services.release(instance)
        reason = f"node {name} unreachable for more than {grace.total_seconds():.0f} s; moving the replica"
        if instance.node and instance.node.status != NodeStatus.UNREACHABLE:
            try:  # a member on a healthy node is stopped so that the replica restarts as a group
                executor_for(instance.node).stop(instance.key, grace_s=5)
            except NodeCommandError:
                pass
        services.transition_instance(
            instance, S.RESTARTING, reason, node=None, pid=None, last_exit_reason=reason, next_attempt_at=None
        )


# --- orphans ---------------------------------------------------------------------------------------

ORPHAN_SWEEP_INTERVAL_S = 30
KEY_RE = re.compile(r"^(?P<prefix>[A-Za-z0-9]+)-job(\d+)-r(\d+)-m(\d+)-n(\d+)$")


def reap_orphans_due() -> None:
    """Every ORPHAN_SWEEP_INTERVAL_S per node, stop processes of instances that no longer live there
    (a node that came back after its replicas moved away, a job deleted while its node was down).

    A node whose status changed since its last sweep (one that came back) is swept at the next call, not
    up to an interval later: the engines left there since its replicas moved away hold its accelerators
    (the production-topology test measured 55 s before they were stopped; beat calls this every 5 s)."""
    for node in Node.objects.filter(status__in=(NodeStatus.ONLINE, NodeStatus.DEGRADED)):
        changed = node.status_changed_at.timestamp() if node.status_changed_at else 0
        # A rate limit, not a lock: the key expires after the interval whatever happens to its writer.
        if cache.add(f"jobs:orphan-sweep:{node.pk}:{changed:.3f}", 1, timeout=ORPHAN_SWEEP_INTERVAL_S):
            try:
                reap_orphans(node)
            except (NodeCommandError, ExecutorError, OSError) as exc:
                log.info("orphan sweep of %s skipped: %s", node.name, exc)


def reap_orphans(node) -> list[str]:
    """Stop every process under the node's instance directory that no live instance on it owns."""
    executor, stopped = executor_for(node), []
    keys = executor.list_instances()
    owned = {i.key for i in Instance.objects.filter(node=node, state__in=ACTIVE_STATES)}
    # Stopped instances keep their directory (their last log) until their job is deleted.
    known = {i.key for i in Instance.objects.filter(node=node)}
    for key in keys:
        match = KEY_RE.match(key)
        if not match or match["prefix"] != settings.CONSOLE_INSTANCE_PREFIX or key in owned:
            continue
        if executor.status(key).alive:
            executor.stop(key, grace_s=5)
            stopped.append(key)
            audit.record("reap_orphan", node, detail={"instance_key": key})
        if key not in known:
            executor.cleanup(key)  # a deleted job's directory: keeps the next sweeps short
    return stopped
