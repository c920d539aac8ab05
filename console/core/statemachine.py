"""State machines: the one way a status changes.

Each stateful model keeps its table next to its choices (``X_TRANSITIONS``: source -> allowed targets):
nodes.choices.NODE_TRANSITIONS, models_registry.choices.VERSION_TRANSITIONS, jobs.choices.INSTANCE_TRANSITIONS
and BENCHMARK_TRANSITIONS, console.alerting.choices.ALERT_TRANSITIONS and NOTIFICATION_TRANSITIONS. Every
change of one of those fields goes through ``transition`` (one object) or ``transition_all`` (a batch of
rows, no history), which read the table; the domain functions (``transition_node``, ...) only bind their
table, history model and side fields.

The rules, the same for every machine:

- **Table check.** A change the table does not list raises ``TransitionNotAllowed`` (a ``Conflict``, so the
  API answers 409 with ``detail``), naming the object kind and both statuses.
- **Conditional write.** ``UPDATE ... WHERE pk = <pk> AND <field> = <status read> [AND <guard>]``: when
  someone else changed the row first (or the guard, e.g. an instance's run number, no longer holds) nothing
  is written and the call returns False.
- **History and audit.** A real change appends one history row (a ``TransitionRecord``) and one audit event,
  verb ``status`` with ``{"from", "to", "reason", ...}``, in the same transaction as the write.
- **Same status.** Asking for the status the object already has is not a transition: no table check, no
  history row, no event. It is still a conditional write of the reason and the extra fields (it loses to a
  concurrent change exactly like a transition) and returns whether it wrote.
- **Reason.** Text, or a ``console.core.messages.Message``: the history row, the ``<field>_detail`` and the
  event's ``reason`` keep the English text; the event also stores the message's code and parameters
  (``reason_message``) when the reason is a catalogued sentence, so that pages render it in the reader's
  language.
- **Actor.** The ``actor`` given, else the request's authenticated user, else ``system``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models, transaction
from django.utils import timezone

from console.core import audit, broadcast, messages
from console.core.errors import Conflict

#: The audit verb of every state transition (docs/api.md shows it on a node's event).
VERB = "status"
#: Longest ``<field>_detail`` written, and longest reason in a history row and in an event.
DETAIL_MAX = 4000
HISTORY_REASON_MAX = 2000
EVENT_REASON_MAX = 500

#: Fields a same-status write may change without a page showing anything new (no live-stream notice).
# Bookkeeping that changes at every pass (a probe's time and duration, a heartbeat): written, but no news for
# the pages by itself (at 1000 nodes a notice per probe would be a stream write per probe).
QUIET_FIELDS = frozenset({"updated_at", "last_check_at", "heartbeat_at", "next_probe_at", "last_probe_at",
                          "last_probe_duration_ms", "last_seen"})

Table = Mapping[str, set[str] | frozenset[str]]


class TransitionNotAllowed(Conflict):
    """The object's state table forbids this change (HTTP 409)."""


def clip(text: str, limit: int = DETAIL_MAX) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check(table: Table, from_status: str, to_status: str, *, what: str = "an object") -> None:
    """Raise TransitionNotAllowed unless ``table`` allows ``from_status`` -> ``to_status``."""
    if to_status not in table.get(from_status, ()):
        raise TransitionNotAllowed(f"{what} cannot go from {from_status or 'new'} to {to_status}")


def actor_of(request=None, actor: str | None = None) -> str:
    """Who acts: the explicit ``actor``, else the request's authenticated user, else ``system``."""
    if actor:
        return actor
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.get_username()
    return audit.SYSTEM


def transition(obj: models.Model, to: str, reason: str = "", *, table: Table, field: str = "status",
               what: str | None = None, guard: Mapping[str, Any] | None = None,
               history: type[models.Model] | None = None, history_fields: Mapping[str, Any] | None = None,
               collect: list | None = None, verb: str | None = VERB, detail: Mapping[str, Any] | None = None,
               actor: str | None = None, request=None, now: datetime | None = None,
               on_change: Mapping[str, Any] | None = None, after: Callable[[], None] | None = None,
               topics: Iterable[str] = (), **fields: Any) -> bool:
    """Move ``obj`` to status ``to`` if it still has the status it was read with (see the module rules).

    ``field``: the state field (``status`` or ``state``); a ``<field>_detail`` field, when the model has one,
    receives the reason. ``guard``: more conditions of the conditional write (``{"run": instance.run}``).
    ``fields``: written with the status, on every successful call; ``on_change``: written only when the
    status really changes. ``history``: the TransitionRecord model (None: the machine keeps none), with
    ``history_fields`` added to its row; ``collect``: a list that receives the unsaved row instead, for a
    caller that bulk-creates its rows in the same transaction. ``verb=None``: no audit event (a machine
    whose history table is its own log). ``detail``: more keys of the event's detail. ``after``: called
    inside the transaction after a real change (a broadcast, a follow-up write). ``topics``: live-stream
    topics told of the change (console.core.broadcast.changed, kind: the model's name), the object's own
    first: all of them on a real change or a new reason, the first alone when a same-status write changes
    only other fields that a page shows (not ``QUIET_FIELDS``).

    Returns True when the row was written, False when a concurrent change won; the instance is updated.
    """
    given_message = reason.as_dict() if isinstance(reason, messages.Message) else None
    reason = str(reason or "")
    from_status = getattr(obj, field)
    model = type(obj)
    what = what or f"a {model._meta.verbose_name}"
    now = now or timezone.now()
    updates = dict(fields)
    if _has_field(model, f"{field}_detail"):
        updates[f"{field}_detail"] = clip(reason)
    rows = model._default_manager.filter(pk=obj.pk, **{field: from_status}, **(guard or {}))
    if to == from_status:
        topics = list(topics)
        reason_changed = f"{field}_detail" in updates and getattr(obj, f"{field}_detail") != updates[f"{field}_detail"]
        shown = any(getattr(obj, k, None) != v for k, v in updates.items() if k not in QUIET_FIELDS)
        if updates and not rows.update(**updates):
            return False
        _assign(obj, updates)
        if topics and (reason_changed or shown):
            # A new reason is news for every topic; other fields (a probe's facts, a pid) only for the
            # object's own page, the first topic: lists need not re-read at every probe.
            broadcast.changed(model._meta.model_name, *(topics if reason_changed else topics[:1]))
        return True
    check(table, from_status, to, what=what)
    updates.update(on_change or {})
    updates[field] = to
    actor = actor_of(request, actor)
    # A savepoint only when more than the UPDATE is written here (an evaluator moving thousands of
    # alerts, whose rows it collects, pays one statement per alert).
    writes_more = (history is not None and collect is None) or verb or after is not None
    with transaction.atomic() if writes_more else nullcontext():
        if not rows.update(**updates):
            return False
        if history is not None:
            row = history(**{history.subject: obj, f"from_{field}": from_status, f"to_{field}": to, "time": now,
                             "reason": clip(reason, HISTORY_REASON_MAX), "actor": actor, **(history_fields or {})})
            if collect is None:
                row.save(force_insert=True)
            else:
                collect.append(row)
        if verb:
            event_detail = {**(detail or {}), "from": from_status, "to": to, "reason": reason[:EVENT_REASON_MAX]}
            reason_message = given_message or messages.stored(reason)[1]
            if reason_message is not None:
                event_detail["reason_message"] = reason_message
            audit.record(verb, obj, actor=actor, request=request, detail=event_detail)
        if after is not None:
            after()
        if topics:
            broadcast.changed(model._meta.model_name, *topics)
    _assign(obj, updates)
    return True


def transition_all(queryset: models.QuerySet, from_status: str, to: str, *, table: Table,
                   field: str = "status", what: str = "an object", **fields: Any) -> int:
    """Move every row of ``queryset`` that still has ``from_status`` to ``to`` in one conditional UPDATE
    (a machine without history, such as notifications). Returns how many rows moved."""
    check(table, from_status, to, what=what)
    return queryset.filter(**{field: from_status}).update(**{field: to}, **fields)


def _has_field(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _assign(obj: models.Model, updates: Mapping[str, Any]) -> None:
    for key, value in updates.items():
        setattr(obj, key, value)
