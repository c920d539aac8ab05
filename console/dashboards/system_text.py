"""Template filters and tags that show what the system wrote in the reader's language (a builtin template
library: settings.TEMPLATES lists it, so pages use it without ``{% load %}``).

- ``{{ text|sysmsg }}``: a stored reason, cause or detail (console.core.messages.render);
- ``{{ word|sysword }}``: one word of the console's vocabulary (a state, ``system``);
- ``{{ name|engine_name }}``, ``{{ code|vendor_name }}``: display names of engine and vendor codes;
- ``{% describe_events events as rows %}``: the rows of an event table (verb, object type and a link to the
  object, actor, detail), looked up in one query per object type;
- ``{{ alert|alert_summary }}``, ``{{ alert|alert_description }}``, ``{{ name|rule_name }}``,
  ``{{ alert|alert_labels }}``: an alert as a reader sees it (names rather than ids in its labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext, gettext_noop

from console.alerting import messages as alerting_messages
from console.alerting.labels import NAME_LABELS
from console.core import event_text, messages

register = template.Library()

#: The page of each object type: (URL name, how the URL's pk is found).
OBJECT_URLS = {
    "node": "node-detail",
    "job": "job-detail",
    "modelversion": "model-version-detail",
    "benchmarkrun": "benchmark-detail",
    "alert": "alerting-alert",
    "alertrule": "alerting-rule-edit",
    "notificationchannel": "alerting-channel",
}

#: Labels of alerts, as a reader says them (the stored label name stays in the title).
LABEL_NAMES = {
    "alertname": gettext_noop("alert name"),
    "severity": gettext_noop("severity"),
    "node": gettext_noop("node"),
    "job": gettext_noop("job"),
    "instance": gettext_noop("instance"),
    "replica": gettext_noop("replica"),
    "accelerator": gettext_noop("accelerator"),
    "index": gettext_noop("index"),
    "vendor": gettext_noop("vendor"),
    "health": gettext_noop("health"),
    "mount": gettext_noop("mount point"),
    "state": gettext_noop("state"),
}


@register.filter
def sysmsg(value) -> str:
    """A stored system sentence in the reader's language."""
    return messages.render(value)


@register.filter
def sysword(value) -> str:
    """A word of the console's vocabulary (a state, a health, ``system``) in the reader's language."""
    return messages.word(str(value)) if value not in (None, "") else ""


@register.filter
def actor(value) -> str:
    """Who acted: a username as it is, the console's own work as "system" in the reader's language."""
    return event_text.actor_label(value)


@register.filter
def engine_name(value) -> str:
    """An engine's display name (``vllm`` -> ``vLLM``)."""
    from jobs.engines.registry import ENGINES

    engine = ENGINES.get(str(value))
    return str(engine.label) if engine is not None and getattr(engine, "label", "") else str(value or "")


@register.filter
def vendor_name(value) -> str:
    """An accelerator vendor's display name (``huawei`` -> ``Huawei Ascend`` in the reader's language)."""
    from nodes.choices import Vendor

    try:
        return str(Vendor(value).label)
    except ValueError:
        return str(value or "")


@register.filter
def rule_name(value) -> str:
    return alerting_messages.rule_name(str(value or ""))


@register.filter
def alert_summary(alert) -> str:
    summary = alert.annotations.get("summary", "") if isinstance(alert.annotations, dict) else ""
    return messages.render_text(summary) if summary else rule_name(alert.rule_name)


@register.filter
def alert_description(alert) -> str:
    description = alert.annotations.get("description", "") if isinstance(alert.annotations, dict) else ""
    return messages.render_text(description)


@dataclass
class Label:
    name: str  # as the reader says it
    value: str
    raw: str  # name=value as stored (matchers and silences use it)


@register.filter
def alert_labels(labels, hide: str = "") -> list[Label]:
    """An alert's labels for a page: an id label with a name label beside it shows the name
    (``node=gpu-a1``, not ``node=2``); ``hide``: comma-separated names left out (``alertname,severity``)."""
    hidden = set(filter(None, hide.split(",")))
    out = []
    labels = labels or {}
    for key, value in labels.items():
        if key in hidden or (key in NAME_LABELS and NAME_LABELS[key] in labels):
            continue
        raw = f"{key}={value}"
        shown = value
        name_key = next((n for n, of in NAME_LABELS.items() if of == key), None)
        if name_key and labels.get(name_key):
            shown = labels[name_key]
            raw = f"{raw} ({name_key}={shown})"
        elif key == "alertname":
            shown = rule_name(value)
        elif key in ("health", "state", "severity"):
            shown = messages.word(value)
        elif key == "vendor":
            shown = vendor_name(value)
        out.append(Label(gettext(LABEL_NAMES[key]) if key in LABEL_NAMES else key, shown, raw))
    return out


@dataclass
class EventRow:
    event: object
    verb: str
    object_type: str
    object_text: str
    url: str | None
    actor: str
    change: tuple[str, str] | None = None  # a status event: (from, to) in the reader's words
    reason: str = ""
    items: list[tuple[str, str, bool]] = field(default_factory=list)  # (key, value, is code)


def _object_text(event) -> str:
    text = event.object_repr or (f"#{event.object_id}" if event.object_id else "")
    if event.object_type == "benchmarkrun" and text == f"benchmark {event.object_id}":
        return f"#{event.object_id}"
    if event.object_type == "alert" and text:
        name, _, rest = text.rpartition(" (")
        name = name.rsplit(" ", 1)[0] if " " in name else name
        return f"{rule_name(name)} ({messages.word(rest.rstrip(')'))})" if rest else rule_name(name)
    return text


def describe(event, urls: dict[tuple[str, str], str | None]) -> EventRow:
    row = EventRow(event, event_text.verb_label(event.verb), event_text.object_type_label(event.object_type),
                   _object_text(event), urls.get((event.object_type, event.object_id)), actor(event.actor))
    change = event_text.change_of(event)
    if change is not None:
        row.change, row.reason = change[:2], change[2]
    row.items = event_text.items_of(event)
    return row


def object_urls(events) -> dict[tuple[str, str], str | None]:
    """The page of each event's object, with one query for the instances (linked to their job)."""
    urls: dict[tuple[str, str], str | None] = {}
    instance_ids = {e.object_id for e in events if e.object_type == "instance" and e.object_id.isdigit()}
    jobs_of: dict[str, int] = {}
    if instance_ids:
        from jobs.models import Instance

        jobs_of = {str(pk): job for pk, job in Instance.objects.filter(pk__in=instance_ids)
                   .values_list("pk", "job_id")}
    for event in events:
        key = (event.object_type, event.object_id)
        if key in urls or not event.object_id.isdigit() or event.verb == "delete":
            continue
        pk = jobs_of.get(event.object_id) if event.object_type == "instance" else event.object_id
        name = "job-detail" if event.object_type == "instance" else OBJECT_URLS.get(event.object_type)
        try:
            urls[key] = reverse(name, args=[pk]) if name and pk else None
        except NoReverseMatch:
            urls[key] = None
    return urls


@register.simple_tag
def describe_events(events) -> list[EventRow]:
    events = list(events)
    urls = object_urls(events)
    return [describe(event, urls) for event in events]
