"""What the system writes, in the reader's language: a catalogue of message templates with parameters.

The console records reasons, causes and details (an instance's ``state_detail`` and ``last_exit_reason``,
a node's ``status_detail``, the reason of every transition, an alert's summary) as English sentences built
from templates. Each app registers its templates here (``register``, from its ``messages.py``, loaded by
``console.apps``), each under a stable code, written as ``gettext_noop`` literals so that they are in the
translation catalogue. Then:

- ``Message(code, params)`` is one sentence; ``str()`` is its English text (what the API and the stored
  text fields carry, unchanged), ``render()`` the text in the active language, ``as_dict()`` the form
  stored with events (``{"code": ..., "params": {...}}``).
- ``parse(text)`` finds the template an English sentence was made from and its parameters. It is how rows
  written as free text (before codes were stored, or by code that passes plain strings) still render in
  the reader's language: ``render_text(text)``. A text no template matches is shown as it is (an error a
  node's tool printed stays in its own words), except that clauses joined by ``"; "`` are tried one by one.

Parameters named in ``NESTED`` (a cause, a reason...) are sentences themselves and are rendered the same
way; parameters named in ``WORDS`` (a state, a health...) are single words looked up in the catalogue.
Templates use ``%(name)s`` placeholders, or ``{0}``, ``{1}``... (the engines' log hints).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.utils.translation import gettext, gettext_noop

#: Parameters that are sentences of their own (rendered through the catalogue too).
NESTED = frozenset({"cause", "reason", "why", "detail", "error", "hint", "problems", "note"})
#: Parameters that are one word of a fixed vocabulary (a state, a health, a unit): translated as words.
WORDS = frozenset({"state", "status", "from", "to", "health", "severity", "exception"})
#: How clauses are joined in English, and how a page joins them in each language.
CLAUSE_SEPARATOR = "; "

#: Parameters that are numbers (matched as numbers when a text is parsed, so that "nvidia0" splits right).
NUMBERS = frozenset({"index", "count", "total", "code", "seconds", "delay", "failures", "generation", "replicas",
                     "serving", "concurrency", "value", "number", "low", "high", "needed", "available", "per_acc",
                     "nodes", "fitting", "replica"})

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\d+)\}|%%")
_NUMBER = r"-?\d+(?:\.\d+)?"
_templates: dict[str, str] = {}
_patterns: list[tuple[re.Pattern[str], str]] = []


def register(entries: dict[str, str]) -> None:
    """Add ``{code: English template}``. A template must have some literal text besides placeholders."""
    for code, template in entries.items():
        if _templates.get(code) == template:
            continue
        if code in _templates:
            raise ValueError(f"message code {code!r} registered twice with different templates")
        if not _PLACEHOLDER.sub("", template).strip(" %"):
            raise ValueError(f"message template {template!r} has no literal text")
        _templates[code] = template
        _patterns.append((_compile(template), code))
    # Most literal text first: "placed on X with Y" before "placed on X".
    _patterns.sort(key=lambda item: -len(_PLACEHOLDER.sub("", _templates[item[1]])))
    parse.cache_clear()


def codes() -> dict[str, str]:
    """Every registered ``{code: English template}`` (a copy)."""
    return dict(_templates)


def _compile(template: str) -> re.Pattern[str]:
    out, position, seen = [], 0, set()
    for match in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[position:match.start()]))
        position = match.end()
        if match.group(0) == "%%":
            out.append("%")
            continue
        name = match.group(1) or f"g{match.group(2)}"
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>{_NUMBER if name in NUMBERS else '.+?'})")
        seen.add(name)
    out.append(re.escape(template[position:]))
    return re.compile("".join(out), re.S)


def _fill(template: str, params: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1) or f"g{match.group(2)}"
        return str(params.get(name, ""))

    return _PLACEHOLDER.sub(one, template)


@dataclass(frozen=True)
class Message:
    """One system-written sentence: a registered code and its parameters (strings)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        template = _templates.get(self.code)
        return _fill(template, self.params) if template is not None else " ".join(map(str, self.params.values()))

    def render(self) -> str:
        """The sentence in the active language (nested causes and state words translated as well)."""
        template = _templates.get(self.code)
        if template is None:
            return str(self)
        return _fill(gettext(template), {name: _render_param(name, value) for name, value in self.params.items()})

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params)}


def message(code: str, **params: Any) -> Message:
    """A Message of a registered code (a KeyError for an unknown one: codes are fixed in the code)."""
    if code not in _templates:
        raise KeyError(f"unknown message code {code!r}")
    return Message(code, {k: _plain(v) for k, v in params.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _param_kind(name: str) -> str:
    base = name.rsplit("_", 1)[-1]
    if name in NESTED or base in NESTED:
        return "nested"
    if name in WORDS or base in WORDS:
        return "word"
    return "plain"


def _render_param(name: str, value: Any) -> str:
    kind = _param_kind(name)
    text = str(value)
    if kind == "nested":
        return render_text(text)
    if kind == "word":
        return word(text)
    return text


def word(text: str) -> str:
    """One word of the console's vocabulary (a state, a health, a verb...) in the active language; in a
    list such as ``nvidia0 critical, nvidia3 warning`` each word the catalogue knows is translated."""
    if not text:
        return text
    whole = gettext(text)
    if whole != text or " " not in text:
        return whole
    return ", ".join(" ".join(gettext(token) for token in item.split(" ")) for item in text.split(", "))


@lru_cache(maxsize=4096)
def parse(text: str) -> Message | None:
    """The registered message whose template makes ``text``, with its parameters; None if none does."""
    if not text:
        return None
    for pattern, code in _patterns:
        match = pattern.fullmatch(text)
        if match is not None:
            return Message(code, match.groupdict())
    return None


def render_text(text: str) -> str:
    """A stored English sentence in the active language, as far as the catalogue knows its parts."""
    if not text:
        return text
    found = parse(text)
    if found is not None:
        return found.render()
    if CLAUSE_SEPARATOR in text:
        parts = text.split(CLAUSE_SEPARATOR)
        rendered = [render_text(part) for part in parts]
        if rendered != parts:
            return gettext(CLAUSE_JOIN).join(rendered)
    return text


def render(value: Any) -> str:
    """What a page shows for a stored system text: a ``{"code", "params"}`` dict, a Message or a string."""
    if value is None:
        return ""
    if isinstance(value, Message):
        return value.render()
    if isinstance(value, dict) and "code" in value:
        if value["code"] in _templates:
            return Message(value["code"], dict(value.get("params") or {})).render()
        return str(value.get("text", ""))
    return render_text(str(value))


def stored(reason: Any) -> tuple[str, dict[str, Any] | None]:
    """``(English text, {"code", "params"} or None)`` for a reason given as a Message or as text: what
    an event records."""
    if isinstance(reason, Message):
        return str(reason), reason.as_dict()
    text = str(reason or "")
    found = parse(text)
    return text, (found.as_dict() if found is not None else None)


#: The separator between clauses of one detail in the reader's language (Chinese uses a full-width one).
CLAUSE_JOIN = gettext_noop("; ")
