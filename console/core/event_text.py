"""Events (console.core.models.Event) in the reader's language: verbs, object types, detail keys and
values, and one sentence per event (the API's ``message``). Pages add links (console.dashboards.system_text)."""

from __future__ import annotations

from django.apps import apps
from django.utils.translation import gettext, gettext_noop

from console.core import messages
from console.core.audit import SYSTEM

#: Audit verbs, as a reader says them.
VERBS = {
    "status": gettext_noop("status change"),
    "create": gettext_noop("create"),
    "update": gettext_noop("update"),
    "delete": gettext_noop("delete"),
    "start": gettext_noop("start"),
    "stop": gettext_noop("stop"),
    "restart": gettext_noop("restart"),
    "scale": gettext_noop("scale"),
    "schedule": gettext_noop("schedule"),
    "probe": gettext_noop("probe"),
    "missing": gettext_noop("went missing"),
    "pin_host_key": gettext_noop("pin host key"),
    "reset_host_key": gettext_noop("reset host key"),
    "reap_orphan": gettext_noop("stop orphan process"),
    "promote": gettext_noop("promote"),
    "unalias": gettext_noop("remove alias"),
    "verify": gettext_noop("verify"),
    "integrity": gettext_noop("integrity check"),
    "import": gettext_noop("import"),
    "imported": gettext_noop("imported"),
    "cancel": gettext_noop("cancel"),
    "acknowledge": gettext_noop("acknowledge"),
    "unacknowledge": gettext_noop("withdraw acknowledgement"),
    "expire": gettext_noop("expire"),
    "enable": gettext_noop("enable"),
    "disable": gettext_noop("disable"),
    "test": gettext_noop("test"),
    "flapping": gettext_noop("flapping"),
    "revoke": gettext_noop("revoke"),
    "login.locked_out": gettext_noop("login locked out"),
}

#: Keys of an event's detail, as a reader says them.
DETAIL_KEYS = {
    "from": gettext_noop("from"),
    "to": gettext_noop("to"),
    "reason": gettext_noop("reason"),
    "fields": gettext_noop("fields"),
    "registered": gettext_noop("registered"),
    "fingerprint": gettext_noop("fingerprint"),
    "old_fingerprint": gettext_noop("old fingerprint"),
    "node": gettext_noop("node"),
    "job": gettext_noop("job"),
    "uuid": gettext_noop("UUID"),
    "generation": gettext_noop("generation"),
    "target": gettext_noop("target"),
    "concurrency": gettext_noop("concurrency"),
    "comment": gettext_noop("comment"),
    "matchers": gettext_noop("matchers"),
    "ends_at": gettext_noop("ends at"),
    "name": gettext_noop("name"),
    "enabled": gettext_noop("enabled"),
    "ok": gettext_noop("succeeded"),
    "error": gettext_noop("error"),
    "aliases": gettext_noop("aliases"),
    "source_uri": gettext_noop("source"),
    "catalog": gettext_noop("from the catalogue"),
    "summary": gettext_noop("summary"),
    "was": gettext_noop("was"),
    "now": gettext_noop("now"),
    "rule": gettext_noop("rule"),
    "firings": gettext_noop("firings"),
    "window_s": gettext_noop("window (s)"),
    "prefix": gettext_noop("prefix"),
    "owner": gettext_noop("owner"),
    "instance_key": gettext_noop("instance key"),
    "alias": gettext_noop("alias"),
    "version": gettext_noop("version"),
    "attempts": gettext_noop("attempts"),
}
#: Detail keys whose values are sentences the system wrote (rendered through the message catalogue).
SENTENCE_KEYS = {"reason", "error", "summary"}
#: Detail keys whose values are identifiers (shown as code, never translated).
CODE_KEYS = {"fields", "fingerprint", "old_fingerprint", "uuid", "instance_key", "prefix", "was", "now",
             "matchers", "source_uri"}
#: Detail values that are words of the console's vocabulary.
VALUE_WORDS = {"automatically": gettext_noop("automatically")}

def verb_label(verb: str) -> str:
    return gettext(VERBS[verb]) if verb in VERBS else verb


#: Object types whose model has no verbose name of its own.
OBJECT_TYPES = {
    "instance": gettext_noop("instance"),
    "quantization": gettext_noop("quantization"),
    "alias": gettext_noop("alias"),
    "evaluation": gettext_noop("evaluation"),
    "user": gettext_noop("user"),
    "route": gettext_noop("route"),
}


def object_type_label(object_type: str) -> str:
    if object_type in OBJECT_TYPES:
        return gettext(OBJECT_TYPES[object_type])
    for model in apps.get_models():
        if model._meta.model_name == object_type:
            return str(model._meta.verbose_name)
    return object_type


def value_text(key: str, value) -> tuple[str, bool]:
    if isinstance(value, bool):
        return (gettext("yes") if value else gettext("no")), False
    if isinstance(value, list):
        return ", ".join(str(v) for v in value), True
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()), True
    text = "" if value is None else str(value)
    if key in CODE_KEYS:
        return text, True
    if key in SENTENCE_KEYS:
        return messages.render_text(text), False
    if text in VALUE_WORDS:
        return gettext(VALUE_WORDS[text]), False
    return text, False


def actor_label(value: str) -> str:
    """Who acted: a username as it is, the console's own work as "system" in the reader's language."""
    return gettext("system") if value == SYSTEM else (value or "")


def change_of(event) -> tuple[str, str, str] | None:
    """A status event's (from, to, reason) in the reader's words; None for other events."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    if event.verb != "status" or "to" not in detail:
        return None
    return (messages.word(str(detail.get("from") or "")) or "—", messages.word(str(detail["to"])),
            messages.render(detail.get("reason_message") or detail.get("reason", "")))


#: Detail keys a change (from, to, reason) already shows, and the stored code of the reason.
CHANGE_KEYS = {"from", "to", "reason", "reason_message"}


def items_of(event) -> list[tuple[str, str, bool]]:
    """The event's other detail entries: (key, value, is an identifier) in the reader's words."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    skip = CHANGE_KEYS if change_of(event) is not None else {"reason_message"}
    out = []
    for key, value in detail.items():
        if key in skip:
            continue
        text, code = value_text(key, value)
        out.append((gettext(DETAIL_KEYS[key]) if key in DETAIL_KEYS else key, text, code))
    return out


def sentence(event) -> str:
    """One line for the event in the active language: ``<verb> <object type> <object>: <from> → <to>, <reason>``
    or ``... : key: value, ...``."""
    head = " ".join(filter(None, (verb_label(event.verb), object_type_label(event.object_type),
                                  event.object_repr or (f"#{event.object_id}" if event.object_id else ""))))
    change = change_of(event)
    if change is not None:
        tail = f"{change[0]} → {change[1]}" + (f"{gettext(messages.CLAUSE_JOIN)}{change[2]}" if change[2] else "")
    else:
        tail = gettext(messages.CLAUSE_JOIN).join(f"{key}: {value}" for key, value, _code in items_of(event))
    return f"{head}: {tail}" if tail else head
