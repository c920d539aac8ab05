"""Inventory workflows: node status transitions, probes and their results, credentials.

These functions are the only code that changes a node's status or its accelerators.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from console.core import audit, broadcast, bulk, statemachine
from console.core.confirm import with_reason
from console.core.errors import Conflict
from console.core.statemachine import QUIET_FIELDS, clip
from nodes import enqueue
from nodes.choices import NODE_TRANSITIONS, Health, NodeStatus, Transport
from nodes.crypto import default_box
from nodes.keys import (
    fingerprint,
    generate_ed25519,
    host_key_fingerprint,
    load_private_key,
    normalise_private_key,
    public_key_line,
)
from nodes.models import Accelerator, Credential, Node, NodeStatusChange
from nodes.probes.runner import run_probe

log = logging.getLogger(__name__)

LOCAL_NODE_NAME = "local"


def transition_node(node: Node, to_status: str, reason: str = "", actor: str | None = None,
                    request=None, **fields) -> bool:
    """Move ``node`` to ``to_status`` through the state machine (console.core.statemachine.transition:
    table check, conditional write, a NodeStatusChange row and an event); ``status_changed_at`` moves
    with every real change. False when someone else changed the status first."""
    now = timezone.now()
    return statemachine.transition(node, to_status, reason, table=NODE_TRANSITIONS, what="a node",
                                   history=NodeStatusChange, actor=actor, request=request, now=now,
                                   on_change={"status_changed_at": now}, topics=[f"node:{node.pk}", "cluster"],
                                   **fields)


def set_maintenance(node: Node, enabled: bool, *, request=None, reason: str = "") -> Node:
    """Take a node out of service (probes keep running but do not change its status) or bring it back."""
    actor = request.user.get_username() if request else audit.SYSTEM
    if enabled and node.status != NodeStatus.MAINTENANCE:
        transition_node(node, NodeStatus.MAINTENANCE, reason or "set by an operator", actor=actor, request=request)
    elif not enabled and node.status == NodeStatus.MAINTENANCE:
        transition_node(node, NodeStatus.UNKNOWN, reason or "maintenance ended", actor=actor, request=request,
                        next_probe_at=timezone.now())
    return node


# --- probes -----------------------------------------------------------------------------------


def apply_probe_outcome(node: Node, outcome) -> Node:
    """Store what a probe saw: facts, accelerators, pinned host key, and the resulting status."""
    now = timezone.now()
    if not outcome.reachable:
        reason = outcome.error
        if outcome.host_key_mismatch:
            reason = f"host key changed, connection refused: {outcome.error}"
        _set_probe_status(node, NodeStatus.UNREACHABLE, reason,
                          {"last_probe_at": now, "last_probe_duration_ms": outcome.duration_ms})
        return node

    existing = {a.uuid: a for a in Accelerator.objects.filter(node=node).only(*_ACCELERATOR_KEYS)}
    plan = _plan_accelerators(node, outcome.result.accelerators, existing, now)
    _write_accelerators(node, plan, now)
    status, reason, fields = _probe_status(outcome, plan, now)
    if outcome.host_key and not node.host_key:
        fields["host_key"] = outcome.host_key
        fields["host_key_fingerprint"] = host_key_fingerprint(outcome.host_key)
        audit.record("pin_host_key", node, detail={"fingerprint": fields["host_key_fingerprint"]})
    _set_probe_status(node, status, reason, fields)
    return node


def store_probe_outcomes(pairs: list[tuple[Node, object]]) -> None:
    """Store the outcomes of many probes (a round's, as they come in).

    The usual probe (the node answered, its host key is pinned, it has the same accelerators, and its status
    and reason stay as they are) is written together with the others of its kind: one statement for all their
    accelerators, one conditional UPDATE for all their nodes (a node whose status someone changed meanwhile
    is left out of it), one for their pages' change stamps. Any other probe, and a node left out, goes
    through :func:`apply_probe_outcome`, its transitions and events included. At a thousand nodes a round,
    writing each probe on its own was a third of the console's CPU per probe.
    """
    now = timezone.now()
    others, candidates = [], []
    for node, outcome in pairs:
        usual = outcome.reachable and node.host_key and node.status != NodeStatus.MAINTENANCE
        (candidates if usual else others).append((node, outcome))
    existing: dict[int, dict[str, Accelerator]] = defaultdict(dict)
    if candidates:
        for accelerator in Accelerator.objects.filter(node_id__in=[n.pk for n, _ in candidates]).only(
                "node_id", *_ACCELERATOR_KEYS):
            existing[accelerator.node_id][accelerator.uuid] = accelerator
    usual = []
    for node, outcome in candidates:
        plan = _plan_accelerators(node, outcome.result.accelerators, existing[node.pk], now)
        status, reason, fields = _probe_status(outcome, plan, now)
        if plan.to_create or plan.vanished or status != node.status or clip(reason) != node.status_detail:
            others.append((node, outcome))
        else:
            usual.append((node, outcome, plan, fields))
    if usual:
        bulk.update_rows(Accelerator, ACCELERATOR_FIELDS, [row for _, _, plan, _ in usual for row in plan.to_update])
        columns = _PROBE_NODE_FIELDS
        written = set(bulk.update_rows(Node, columns, [(node.pk, *(fields[c] for c in columns), node.status)
                                                       for node, _, _, fields in usual],
                                       guard=("status",), returning=True))
        shown = []
        for node, outcome, _plan, fields in usual:
            if node.pk not in written:
                others.append((node, outcome))
                continue
            if any(getattr(node, key) != value for key, value in fields.items() if key not in QUIET_FIELDS):
                shown.append(f"node:{node.pk}")  # a fact the node's page shows changed; the lists need not know
            for key, value in fields.items():
                setattr(node, key, value)
        broadcast.changed("node", *shown)
    for node, outcome in others:
        apply_probe_outcome(node, outcome)


_PROBE_NODE_FIELDS = ("last_probe_at", "last_probe_duration_ms", "facts", "probe_errors", "last_seen",
                      "accelerator_count")


def _probe_status(outcome, plan: _AcceleratorPlan, now) -> tuple[str, str, dict]:
    """The status, reason and fields of a node a probe reached (``_PROBE_NODE_FIELDS``)."""
    result = outcome.result
    errors = list(result.errors) + list(outcome.warnings)
    fields = {"last_probe_at": now, "last_probe_duration_ms": outcome.duration_ms, "facts": result.facts,
              "probe_errors": errors, "last_seen": now, "accelerator_count": plan.present}
    problems = list(errors)
    unhealthy = [a for a in result.accelerators if a.health in (Health.WARNING, Health.CRITICAL)]
    if unhealthy:
        problems.append(
            "unhealthy accelerators: " + ", ".join(f"{a.vendor}{a.index} {a.health}" for a in unhealthy)
        )
    # Missing accelerators keep the node degraded until they come back (or an admin deletes their record).
    if plan.missing:
        problems.append("accelerators missing: " + ", ".join(plan.missing))
    return (NodeStatus.DEGRADED if problems else NodeStatus.ONLINE), "; ".join(problems), fields


def _set_probe_status(node: Node, status: str, reason: str, fields: dict) -> None:
    if node.status == NodeStatus.MAINTENANCE:
        Node.objects.filter(pk=node.pk).update(**fields)
        broadcast.changed("node", f"node:{node.pk}")
        for key, value in fields.items():
            setattr(node, key, value)
        return
    if not transition_node(node, status, reason, **fields):
        # Someone changed the status while we probed (an operator set maintenance): keep theirs.
        node.refresh_from_db()
        Node.objects.filter(pk=node.pk).update(**fields)
        broadcast.changed("node", f"node:{node.pk}")


ACCELERATOR_FIELDS = ("index", "vendor", "kind", "model", "bus_id", "memory_total_bytes", "memory_used_bytes",
                      "utilization_percent", "temperature_c", "power_w", "health", "extra", "present",
                      "missing_since", "updated_at")
_ACCELERATOR_KEYS = ("pk", "uuid", "vendor", "index", "present")


@dataclass
class _AcceleratorPlan:
    """What to write of a node's accelerators after a probe (``_plan_accelerators``)."""

    present: int                          # accelerators the probe saw
    to_create: list[Accelerator]          # seen for the first time
    to_update: list[tuple]                # (pk, *ACCELERATOR_FIELDS values) of the others seen
    vanished: list[Accelerator]           # present until now, not seen: missing from this probe on
    missing: list[str]                    # names of all that are missing now (in this probe or before)


def _plan_accelerators(node: Node, readings, existing: dict[str, Accelerator], now) -> _AcceleratorPlan:
    """Match a probe's readings with the node's accelerators (``existing``, by uuid): never deletes one."""
    seen = set()
    to_create, to_update = [], []
    for reading in readings:
        uuid = reading.uuid or f"{reading.vendor}-{reading.bus_id or reading.index}"
        if uuid in seen:
            uuid = f"{uuid}-{reading.index}"
        seen.add(uuid)
        values = (reading.index, reading.vendor, reading.kind, (reading.model or "")[:128],
                  (reading.bus_id or "")[:64], reading.memory_total_bytes, reading.memory_used_bytes,
                  reading.utilization_percent, reading.temperature_c, reading.power_w,
                  reading.health or Health.UNKNOWN, reading.extra or {}, True, None, now)
        accelerator = existing.get(uuid)
        if accelerator is None:
            to_create.append(Accelerator(node=node, uuid=uuid, **dict(zip(ACCELERATOR_FIELDS, values, strict=True))))
        else:
            to_update.append((accelerator.pk, *values))
    vanished = [a for uuid, a in existing.items() if uuid not in seen and a.present]
    missing = sorted((a.vendor, a.index) for uuid, a in existing.items() if uuid not in seen)
    return _AcceleratorPlan(len(seen), to_create, to_update, vanished,
                            [f"{vendor}{index}" for vendor, index in missing])


def _write_accelerators(node: Node, plan: _AcceleratorPlan, now) -> None:
    """Write a plan: new accelerators created, the others updated, the vanished marked missing (and audited)."""
    # A transaction only when there is more than the one UPDATE to write (a new or vanished accelerator):
    # the usual probe's BEGIN and COMMIT were two of its round trips to the database.
    with transaction.atomic() if (plan.to_create or plan.vanished) else nullcontext():
        if plan.to_create:
            Accelerator.objects.bulk_create(plan.to_create)
        # One statement for every accelerator of the node: an UPDATE per row (or bulk_update's CASE per
        # field and row) cost more of the console's CPU than the probe's whole SSH round trip.
        bulk.update_rows(Accelerator, ACCELERATOR_FIELDS, plan.to_update)
        if plan.vanished:
            Accelerator.objects.filter(pk__in=[a.pk for a in plan.vanished]).update(
                present=False, missing_since=now, health=Health.UNKNOWN, updated_at=now
            )
            for accelerator in plan.vanished:
                audit.record("missing", accelerator, detail={"node": node.name, "uuid": accelerator.uuid})


def probe_node(node_id: int) -> Node | None:
    """Probe one node now and store the outcome."""
    node = Node.objects.select_related("credential").filter(pk=node_id).first()
    if node is None:
        return None
    outcome = run_probe(node)
    # No re-read of the status after the probe: the write is conditional on the status read here, and
    # when an operator changed it meanwhile (maintenance), _set_probe_status keeps theirs.
    return apply_probe_outcome(node, outcome)


def refuse_delete_while_serving(node: Node) -> None:
    """Conflict naming the jobs whose instances still run on ``node`` (stop or move them first)."""
    live = node.instances.active().select_related("job")
    if live.exists():
        names = sorted({i.job.name for i in live[:10]})
        raise Conflict(f"{node.name} runs instances of {', '.join(names)}: stop or move them first")


def delete_node(node: Node, request=None, *, reason: str = "") -> None:
    """Delete ``node`` (its accelerators and status history go with it) and record who did it and why;
    Conflict (nothing deleted) while instances still run on it. The API's ``DELETE nodes/{id}/`` and the
    node page's *Delete* both come here."""
    refuse_delete_while_serving(node)
    pk, text = node.pk, str(node)
    with transaction.atomic():
        node.delete()
        audit.record("delete", None, request=request, object_type="node", object_id=pk,
                     detail=with_reason({"name": text}, reason))


def request_probe(node: Node, request=None, *, record: bool = False) -> Node:
    """Probe ``node`` soon, once the current transaction commits (after a create, an edit, a host key
    reset, or an operator's "probe now"). With ``record``, an audit event says who asked."""
    if record:
        audit.record("probe", node, request=request)
    enqueue.probe_node(node.pk)
    return node


def claim_due_nodes(now=None, limit: int = 1000) -> list[int]:
    """Claim the nodes whose periodic probe is due, by moving their ``next_probe_at`` forward.

    A conditional update (``next_probe_at`` still due), so that two schedulers never probe the same node
    twice: one statement per probe interval among the due nodes (``UPDATE ... RETURNING``, PostgreSQL
    and SQLite 3.35+), not one per node (1000 statements a round at 1000 nodes).
    """
    now = now or timezone.now()
    by_interval: dict[int, list[int]] = defaultdict(list)
    for pk, interval in Node.objects.filter(next_probe_at__lte=now).values_list("pk", "probe_interval_s")[:limit]:
        by_interval[interval].append(pk)
    table, qn = Node._meta.db_table, connection.ops.quote_name
    claimed: list[int] = []
    with connection.cursor() as cursor:
        for interval, pks in by_interval.items():
            cursor.execute(
                f"UPDATE {qn(table)} SET {qn('next_probe_at')} = %s WHERE {qn('id')} IN "
                f"({', '.join(['%s'] * len(pks))}) AND {qn('next_probe_at')} <= %s RETURNING {qn('id')}",
                [connection.ops.adapt_datetimefield_value(now + timedelta(seconds=interval)), *pks,
                 connection.ops.adapt_datetimefield_value(now)])
            claimed += [pk for (pk,) in cursor.fetchall()]
    return sorted(claimed)


_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=settings.CONSOLE_PROBE_CONCURRENCY,
                                       thread_name_prefix="probe")
    return _EXECUTOR


STORE_BATCH_S = 0.25  # a round writes what its probes saw at least this often (store_probe_outcomes)


class _RoundResults:
    """The outcomes of a round's probes, from its pool's threads to the round, which stores them in batches.
    Once the round has returned (its deadline passed), ``put`` refuses: a late probe stores its own."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[tuple] = []
        self._open = True

    def put(self, item: tuple) -> bool:
        with self._cond:
            if not self._open:
                return False
            self._items.append(item)
            self._cond.notify()
            return True

    def take(self, timeout: float, expected: int) -> list[tuple]:
        """What came in: waits up to ``timeout`` for a first outcome, then up to ``STORE_BATCH_S`` for more,
        unless all the ``expected`` ones are in."""
        with self._cond:
            self._cond.wait_for(lambda: self._items, timeout)
            if self._items:
                self._cond.wait_for(lambda: len(self._items) >= expected, min(STORE_BATCH_S, timeout))
            items, self._items = self._items, []
            return items

    def close(self) -> list[tuple]:
        with self._cond:
            self._open = False
            items, self._items = self._items, []
            return items


def _probe_in_thread(node_id: int, results: _RoundResults) -> None:
    node = outcome = None
    try:
        node = Node.objects.select_related("credential").filter(pk=node_id).first()
        if node is not None:
            outcome = run_probe(node)
            if not results.put((node_id, node, outcome)):
                apply_probe_outcome(node, outcome)  # the round has returned: store it now
                return
    except Exception:  # one node's bug must not stop the round
        log.exception("probe of node %s failed", node_id)
    finally:
        close_old_connections()
    if outcome is None:
        results.put((node_id, None, None))  # nothing to store, but the round need not wait for it


def probe_round(node_ids: list[int], deadline_s: float | None = None) -> dict[int, bool]:
    """Probe many nodes concurrently from a bounded pool. What each probe saw is stored within
    ``STORE_BATCH_S`` of its end, together with the others' that ended meanwhile (``store_probe_outcomes``),
    so a slow node never delays the others' results. The round returns when every probe is stored or at
    ``deadline_s``; a probe still running then stores its own result when it ends.
    Returns {node_id: finished in time}."""
    if not node_ids:
        return {}
    results = _RoundResults()
    for pk in node_ids:
        _executor().submit(_probe_in_thread, pk, results)
    deadline_s = deadline_s or (settings.CONSOLE_SSH_CONNECT_TIMEOUT_S + settings.CONSOLE_SSH_COMMAND_TIMEOUT_S + 5)
    deadline = time.monotonic() + deadline_s
    finished: dict[int, bool] = dict.fromkeys(node_ids, False)
    waiting = len(node_ids)
    try:
        while waiting and (left := deadline - time.monotonic()) > 0:
            batch = results.take(left, waiting)
            _store_batch(batch)
            for pk, *_ in batch:
                finished[pk] = True
            waiting -= len(batch)
    finally:
        late = results.close()
        _store_batch(late)
        for pk, *_ in late:
            finished[pk] = True
    return finished


def _store_batch(batch: list[tuple]) -> None:
    pairs = [(node, outcome) for _, node, outcome in batch if node is not None]
    if not pairs:
        return
    try:
        store_probe_outcomes(pairs)
    except Exception:  # one bad row must not lose the batch: store them one by one
        log.exception("storing %d probe results together failed; storing them one by one", len(pairs))
        for node, outcome in pairs:
            try:
                apply_probe_outcome(node, outcome)
            except Exception:
                log.exception("storing the probe of node %s failed", node.pk)


# --- registration -----------------------------------------------------------------------------


def register_local_node() -> Node:
    """Register the machine the console runs on as node ``local`` (idempotent)."""
    node, created = Node.objects.get_or_create(
        name=LOCAL_NODE_NAME,
        defaults={"address": "127.0.0.1", "transport": Transport.LOCAL, "labels": {},
                  "facts": {"hostname": socket.gethostname()}},
    )
    if created:
        audit.record("create", node, detail={"registered": "automatically"})
    return node


def create_credential(*, name: str, username: str, private_key: str, passphrase: str | None, request=None,
                      instance: Credential | None = None) -> Credential:
    """Store a credential with its key re-serialised without passphrase and encrypted at rest."""
    pkey = load_private_key(private_key, passphrase)
    credential = instance or Credential()
    credential.name, credential.username = name, username
    credential.encrypted_private_key = default_box().encrypt(normalise_private_key(private_key, passphrase))
    credential.key_type = pkey.get_name()
    credential.fingerprint = fingerprint(pkey)
    credential.public_key = public_key_line(pkey)
    credential.save()
    return credential


def reset_host_key(node: Node, request=None, *, reason: str = "") -> Node:
    """Forget the pinned host key (a reinstalled machine); the next probe pins the new one."""
    old = node.host_key_fingerprint
    Node.objects.filter(pk=node.pk).update(host_key="", host_key_fingerprint="", next_probe_at=timezone.now())
    node.host_key, node.host_key_fingerprint = "", ""
    audit.record("reset_host_key", node, request=request, detail=with_reason({"old_fingerprint": old}, reason))
    return node


def generate_credential(*, name: str, username: str, request=None) -> Credential:
    """A new credential with a fresh Ed25519 key pair: the private key is encrypted at rest like a pasted
    one and never leaves the console; its public half (``Credential.public_key``) goes into the nodes'
    ``authorized_keys``."""
    with transaction.atomic():
        credential = create_credential(name=name, username=username, private_key=generate_ed25519(),
                                       passphrase=None)
        audit.record("create", credential, request=request,
                     detail={"fingerprint": credential.fingerprint, "generated": True})
    return credential


def authorized_key_line(credential: Credential) -> str:
    """The line to put in a node's ``~/.ssh/authorized_keys`` for ``credential``: its stored public key,
    or (a credential stored before the console kept it) the public half derived from the decrypted
    private key, which is never returned. A comment names the credential."""
    line = credential.public_key
    if not line:
        line = public_key_line(load_private_key(credential.private_key(), None))
    return f"{line} boom-console:{credential.name}"


def delete_credential(credential: Credential, request=None, *, reason: str = "") -> None:
    """Delete ``credential`` and record who did it and why; Conflict (nothing deleted) naming the nodes
    that still log in with it."""
    names = sorted(credential.nodes.values_list("name", flat=True)[:10])
    if names:
        raise Conflict(f"credential {credential.name} is used by node(s) {', '.join(names)}: give them another "
                       "credential first")
    pk, text = credential.pk, str(credential)
    with transaction.atomic():
        credential.delete()
        audit.record("delete", None, request=request, object_type="credential", object_id=pk,
                     detail=with_reason({"name": text}, reason))


