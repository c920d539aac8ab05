"""Summary and description templates of alert rules.

A deliberately small language, close to what Prometheus rule files use, so that it can be validated
completely when a rule is saved (an invalid template is a 400, never an empty notification later):

    Accelerator {{ labels.index }} of {{ labels.node_name }} is at {{ value }} °C

``{{ labels.NAME }}`` (or Prometheus' ``{{ $labels.NAME }}``) is a label of the alert; the other
variables are ``value``, ``threshold``, ``comparator``, ``unit``, ``series``, ``rule``, ``severity``,
``entity`` (a readable name of what the alert is about), ``detail`` (what a built-in check saw), and
for relative rules ``current`` and ``baseline``. Nothing else is evaluated; ``{{`` and ``}}`` must pair.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

MAX_TEMPLATE_LENGTH = 2000
VARIABLES = ("value", "threshold", "comparator", "unit", "series", "rule", "severity", "entity", "detail",
             "current", "baseline")
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
_LABEL = re.compile(r"^\$?labels\.([a-zA-Z_][a-zA-Z0-9_]*)$")


class TemplateError(ValueError):
    """An invalid template; the message is shown to the user."""


def _parse(template: str) -> tuple[tuple[str, str], ...]:
    """``(("text", ...), ("label", name), ("var", name), ...)``; raises TemplateError."""
    if not isinstance(template, str):
        raise TemplateError("must be a string")
    return _parse_cached(template)


@lru_cache(maxsize=4096)
def _parse_cached(template: str) -> tuple[tuple[str, str], ...]:
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _EXPRESSION.finditer(template):
        text = template[position:match.start()]
        _check_text(text)
        parts.append(("text", text))
        expression = match.group(1).strip()
        label = _LABEL.match(expression)
        name = expression[1:] if expression.startswith("$") else expression
        if label:
            parts.append(("label", label.group(1)))
        elif name in VARIABLES:
            parts.append(("var", name))
        elif not expression:
            raise TemplateError("empty {{ }}")
        else:
            raise TemplateError(f"unknown variable {expression[:60]!r}: use labels.<name> or one of "
                                f"{', '.join(VARIABLES)}")
        position = match.end()
    tail = template[position:]
    _check_text(tail)
    parts.append(("text", tail))
    return tuple(parts)


def _check_text(text: str) -> None:
    if "{{" in text:
        raise TemplateError("unclosed {{ (every {{ needs a }})")
    if "}}" in text:
        raise TemplateError("}} without an opening {{")


def validate(template: str, labels: tuple[str, ...] | None = None) -> None:
    """Raise TemplateError if ``template`` does not parse, or names a label outside ``labels``."""
    for kind, name in _parse(template):
        if kind == "label" and labels is not None and name not in labels:
            raise TemplateError(f"these alerts have no label {name!r} (labels: {', '.join(labels)})")


def format_value(value: Any) -> str:
    """Numbers as people read them: no float noise, at most two decimals, integers as integers."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def render(template: str, labels: dict[str, str], variables: dict[str, Any]) -> str:
    """Render a validated template. A label the alert lacks renders empty."""
    out = []
    for kind, name in _parse(template):
        if kind == "text":
            out.append(name)
        elif kind == "label":
            out.append(labels.get(name, ""))
        else:
            out.append(format_value(variables.get(name)))
    return "".join(out)
