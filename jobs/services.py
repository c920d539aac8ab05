"""Job workflows: instance state transitions, the job's derived state, operator actions, allocations.

``transition_instance`` is the only code that changes an instance's state; ``refresh_job_state`` the only
code that writes a job's state.
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from console.core import audit, broadcast, messages, statemachine
from console.core.confirm import with_reason
from console.core.errors import Conflict
from jobs import enqueue
from jobs.choices import ACTIVE_STATES, INSTANCE_TRANSITIONS, DesiredState, InstanceState, JobState
from jobs.engines.registry import ENGINES, get_engine
from jobs.engines.spec import core_list
from jobs.models import Allocation, Instance, InstanceStateChange, Job
from jobs.placement import NoRoom, plan_replica
from jobs.runtime import executor_for
from nodes.transports import NodeCommandError

S = InstanceState

#: Model-version statuses a job may not be created on, edited onto or started on (docs/jobs.md),
#: with the reason shown; engines that load no weights (the simulator) are exempt.
REFUSED_VERSION_STATUSES = {"failed": "its files failed verification", "deprecated": "it is deprecated"}



def transition_instance(instance: Instance, to_state: str, reason: str = "", **fields) -> bool:
    """Move ``instance`` to ``to_state`` if it is still in the state and the run we read (the run number
    guards against a reconciler acting on an earlier run). Through console.core.statemachine.transition:
    table check, conditional write, an InstanceStateChange row and an event. False when another
    reconciler got there first."""
    return statemachine.transition(instance, to_state, reason, table=INSTANCE_TRANSITIONS, field="state",
                                   what="an instance", guard={"run": instance.run}, history=InstanceStateChange,
                                   detail={"job": instance.job_id}, updated_at=timezone.now(),
                                   topics=[f"job:{instance.job_id}", "cluster"], **fields)


def derive_job_state(job: Job, instances: list[Instance]) -> tuple[str, str]:
    """A job's state from its instances: (state, detail)."""
    active = [i for i in instances if i.state in ACTIVE_STATES]
    if job.desired_state == DesiredState.STOPPED:
        running = [i for i in active if i.state not in (S.SCHEDULED, S.PREPARING)]
        return JobState.STOPPED, (f"stopping {len(running)} instance(s)" if running else "")
    replicas: dict[int, list[Instance]] = {}
    for instance in active:
        if instance.replica < job.replicas:
            replicas.setdefault(instance.replica, []).append(instance)
    serving = sum(
        1
        for members in replicas.values()
        if len(members) == job.nodes_per_replica and all(m.state == S.RUNNING for m in members)
    )
    if serving >= job.replicas:
        return JobState.RUNNING, ""
    if serving:
        return JobState.DEGRADED, f"{serving} of {job.replicas} replicas serve"
    failed = [i for i in instances if i.state == S.FAILED]
    # Three failures without ten healthy minutes in between: the back-off has grown to 40 s (0, 10, 20, 40...).
    loop_backoff = 4 * settings.CONSOLE_RESTART_BACKOFF_FIRST_S
    crash_looping = [i for i in active if i.state == S.RESTARTING and i.backoff_s >= loop_backoff]
    if failed or crash_looping:
        worst = (failed or crash_looping)[0]
        return JobState.FAILED, worst.last_exit_reason or worst.state_detail
    if not replicas:
        return JobState.PENDING, job.state_detail if job.state == JobState.PENDING else "waiting for placement"
    return JobState.STARTING, ""


def refresh_job_state(job: Job, pending_reason: str | None = None) -> Job:
    """Recompute and store the job's state; record an event when it changes."""
    instances = list(job.instances.all())
    state, detail = derive_job_state(job, instances)
    if pending_reason and state in (JobState.PENDING, JobState.STARTING, JobState.DEGRADED):
        detail = pending_reason
        if state == JobState.STARTING and not any(i.state not in (S.SCHEDULED, S.PREPARING) for i in instances):
            state = JobState.PENDING
    if (state, detail) != (job.state, job.state_detail):
        old = job.state
        Job.objects.filter(pk=job.pk).update(state=state, state_detail=detail[:2000])
        if old != state:
            reason, reason_message = messages.stored(detail[:500])
            event = {"from": old, "to": state, "reason": reason}
            if reason_message:
                event["reason_message"] = reason_message
            audit.record(statemachine.VERB, job, detail=event)
        broadcast.changed("job", f"job:{job.pk}", "cluster")
        job.state, job.state_detail = state, detail
    return job


def record_created(instance: Instance, member_plan) -> None:
    """History and event for a newly placed instance."""
    reason = f"placed on {member_plan.node.name}" + (
        f" with {', '.join(f'{a.vendor}{a.index}' for a in member_plan.accelerators)}"
        if member_plan.accelerators
        else ""
    ) + (f" on CPU cores {core_list(member_plan.cpu_cores)}" if getattr(member_plan, "cpu_cores", None) else "")
    InstanceStateChange.objects.create(instance=instance, from_state=S.SCHEDULED, to_state=S.SCHEDULED, reason=reason)
    audit.record("schedule", instance, detail={"job": instance.job_id, "node": member_plan.node.name, "reason": reason})


def allocate(instance: Instance, accelerators) -> bool:
    """Give accelerators to an instance. False if another placement took one of them first."""
    try:
        with transaction.atomic():
            Allocation.objects.bulk_create([Allocation(accelerator=a, instance=instance) for a in accelerators])
    except IntegrityError:
        return False
    return True


def release(instance: Instance) -> int:
    """Free the accelerators and CPU cores of an instance (on stop, or when it moves to another node)."""
    deleted, _ = Allocation.objects.filter(instance=instance).delete()
    if instance.cpu_cores:
        Instance.objects.filter(pk=instance.pk).update(cpu_cores=[])
        instance.cpu_cores = []
    return deleted


# --- operator actions -------------------------------------------------------------------------


def _kick(job: Job) -> None:
    enqueue.reconcile_job(job.pk)


def create_job(data: dict, request=None) -> Job:
    """Create a job from validated serializer ``data``, audit it, and start it when its desired state
    is running (it then waits, pending, for room: no placement check at create). The API and the
    create page both come here."""
    user = getattr(request, "user", None)
    with transaction.atomic():
        fields = {k: v for k, v in data.items() if k != "secret_env"}
        job = Job(**fields, created_by=user if user is not None and user.is_authenticated else None)
        job.set_secret_env(data.get("secret_env") or {})
        job.save()
        audit.record("create", job, request=request, detail={"fields": sorted(data)})  # names, never values
        if job.desired_state == DesiredState.RUNNING:
            start_job(job, request=request, check_room=False)
    return job


def start_refusal(job: Job, check_room: bool = True) -> str | None:
    """Why ``job`` may not start now, or None: its model version failed verification or is
    deprecated (unless its engine loads no weights), or, with ``check_room``, no node has room for a
    replica."""
    engine = ENGINES.get(job.engine)
    refused = REFUSED_VERSION_STATUSES.get(job.model_version.status)
    if refused and (engine is None or engine.loads_weights):
        return gettext("cannot start %(job)s: model version %(version)s: %(reason)s") % {
            "job": job.name, "version": job.model_version, "reason": refused}
    if check_room:
        reason = placement_problem(job)
        if reason:
            return gettext("no room to start %(job)s: %(reason)s") % {"job": job.name, "reason": reason}
    return None


def start_job(job: Job, request=None, *, check_room: bool = True) -> Job:
    """Desired state running; the reconciler places and starts the replicas.

    ``Conflict`` (nothing changed) when :func:`start_refusal` gives a reason: the API answers 409,
    pages show the message.
    """
    refusal = start_refusal(job, check_room=check_room)
    if refusal:
        raise Conflict(refusal)
    Job.objects.filter(pk=job.pk).update(desired_state=DesiredState.RUNNING, updated_at=timezone.now())
    job.desired_state = DesiredState.RUNNING
    audit.record("start", job, request=request)
    refresh_job_state(job)
    _kick(job)
    return job


def refuse_delete_while_live(job: Job) -> None:
    """Conflict while ``job`` still has live instances (stop it first, then delete it)."""
    if job.instances.active().exists():
        raise Conflict(gettext("the job still has live instances: stop it first"))


def delete_job(job: Job, request=None, *, reason: str = "") -> None:
    """Delete ``job`` and record who did it and why; Conflict (nothing deleted) while it still has live
    instances. The API's ``DELETE jobs/{id}/`` and the job page's *Delete* both come here."""
    refuse_delete_while_live(job)
    pk, text = job.pk, str(job)
    with transaction.atomic():
        job.delete()
        audit.record("delete", None, request=request, object_type="job", object_id=pk,
                     detail=with_reason({"name": text}, reason))


def stop_job(job: Job, request=None, *, reason: str = "") -> Job:
    """Desired state stopped; the reconciler stops the instances. ``reason`` goes into the audit event."""
    Job.objects.filter(pk=job.pk).update(desired_state=DesiredState.STOPPED, updated_at=timezone.now())
    job.desired_state = DesiredState.STOPPED
    audit.record("stop", job, request=request, detail=with_reason(None, reason))
    refresh_job_state(job)
    _kick(job)
    return job


def restart_job(job: Job, request=None) -> Job:
    """Rolling restart: bump the generation; the reconciler replaces one replica at a time so a job
    with two or more replicas keeps serving."""
    if job.desired_state != DesiredState.RUNNING:
        raise Conflict(gettext("the job is stopped: start it instead"))
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        job.generation += 1
        job.save(update_fields=["generation", "updated_at"])
    audit.record("restart", job, request=request, detail={"generation": job.generation})
    _kick(job)
    return job


def scale_job(job: Job, replicas: int, request=None, *, reason: str = "") -> Job:
    """Set the replica count: the reconciler places the missing replicas and stops those numbered
    ``replicas`` and above."""
    old = job.replicas
    Job.objects.filter(pk=job.pk).update(replicas=replicas, updated_at=timezone.now())
    job.replicas = replicas
    audit.record("scale", job, request=request, detail=with_reason({"from": old, "to": replicas}, reason))
    refresh_job_state(job)
    _kick(job)
    return job


# --- read helpers for views -------------------------------------------------------------------


def placement_problem(job: Job) -> str | None:
    """Why a replica of ``job`` cannot be placed now, or None (used to answer 409 on start)."""
    if job.instances.filter(state__in=ACTIVE_STATES).exists():
        return None
    try:
        plan_replica(job, get_engine(job.engine))
    except NoRoom as exc:
        return str(exc)
    return None


def rolling_restart_progress(job: Job, instances: list[Instance]) -> dict | None:
    """While a rolling restart is under way (an active instance of an older generation remains): the
    generation it moves to, how many replicas already serve on it, and how many there are."""
    active = [i for i in instances if i.state in ACTIVE_STATES and i.replica < job.replicas]
    if not any(i.generation < job.generation for i in active):
        return None
    by_replica: dict[int, list[Instance]] = {}
    for instance in active:
        by_replica.setdefault(instance.replica, []).append(instance)
    done = sum(1 for members in by_replica.values()
               if all(m.generation >= job.generation and m.state == S.RUNNING for m in members))
    return {"generation": job.generation, "done": done, "total": job.replicas}


def instance_logs(instance: Instance, lines: int, previous: bool) -> dict:
    """The log tail of an instance, read on its node (or kept from the previous run)."""
    if previous and instance.previous_log:
        text = "\n".join(instance.previous_log.splitlines()[-lines:])
        return {"instance": instance.pk, "previous": True, "text": text, "source": "console"}
    if instance.node is None:
        return {"instance": instance.pk, "previous": previous, "text": "", "error": "not placed on a node"}
    try:
        text = executor_for(instance.node).tail(instance.key, lines=lines, previous=previous)
    except NodeCommandError as exc:
        return {"instance": instance.pk, "previous": previous, "text": instance.previous_log[-5000:],
                "error": f"the node did not answer: {exc}"}
    return {"instance": instance.pk, "previous": previous, "text": text, "source": "node"}
