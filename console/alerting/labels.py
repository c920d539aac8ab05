"""Label sets: fingerprints, matchers, group keys, and which labels each kind of rule produces.

Label values are strings (as in Prometheus and Alertmanager): ids become their decimal text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_MATCHERS = 20
MAX_REGEX_LENGTH = 500
MAX_VALUE_LENGTH = 1000
OPS = ("=", "!=", "=~", "!~")
_STRING_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')

# Labels of the alerts of each series scope (besides alertname and severity). The series module's
# labels plus node_name where a node is known, so that matchers can use names rather than ids.
SCOPE_LABELS: dict[str, tuple[str, ...]] = {
    "node": ("node", "node_name"),
    "accelerator": ("node", "node_name", "accelerator", "index", "vendor"),
    "job": ("job", "job_name"),
    "instance": ("job", "job_name", "instance", "replica", "node", "node_name"),
}
COMMON_LABELS = ("alertname", "severity")
# Labels that name what an id label points at (``node_name`` names ``node``): shown, matched and sent, but
# not part of an alert's identity, so that renaming a node or a job keeps its alerts (identity_fingerprint).
NAME_LABELS: dict[str, str] = {"node_name": "node", "job_name": "job"}


class LabelError(ValueError):
    """Invalid matchers or label names; ``messages`` are shown to the user (a 400)."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


# ------------------------------------------------------------------------------------- fingerprints

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = 0xFF


def _fnv(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


@lru_cache(maxsize=200_000)
def _fingerprint(items: tuple[tuple[str, str], ...]) -> str:
    h = _FNV_OFFSET
    for name, value in items:
        h = _fnv(h, name.encode())
        h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK
        h = _fnv(h, value.encode())
        h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


def fingerprint(labels: dict[str, str]) -> str:
    """The label set's fingerprint as Prometheus and Alertmanager compute it (FNV-1a 64 over the sorted
    names and values, each followed by 0xff), as 16 hex digits. Memoised: the evaluator asks for the
    same label sets every cycle."""
    return _fingerprint(tuple(sorted(labels.items())))


def identity_fingerprint(labels: dict[str, str]) -> str:
    """What identifies an alert across evaluations: the fingerprint of its labels without the name labels
    whose id label is present, so that an alert about node 2 stays the same alert when node 2 is renamed
    (its labels and its stored, Prometheus-compatible ``fingerprint`` then follow the new name)."""
    return fingerprint({k: v for k, v in labels.items() if NAME_LABELS.get(k) not in labels})


# ----------------------------------------------------------------------------------------- matchers


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self.regex.fullmatch(actual) is not None  # anchored, as in Alertmanager
        return found if self.op == "=~" else not found

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def _one(raw: Any, position: int) -> Matcher:
    where = f"matcher {position + 1}"
    if isinstance(raw, str):
        match = _STRING_MATCHER.match(raw)
        if not match:
            raise LabelError([f'{where}: {raw[:80]!r} is not name=value, name!=value, name=~"regex" or '
                              f'name!~"regex"'])
        name, op = match.group(1), match.group(2)
        value = match.group(3) if match.group(3) is not None else match.group(4)
        value = re.sub(r"\\(.)", r"\1", value) if match.group(3) is not None else value
    elif isinstance(raw, dict):
        name = raw.get("name", raw.get("label"))
        value = raw.get("value")
        if "op" in raw or "type" in raw:
            op = raw.get("op", raw.get("type"))
        elif "isRegex" in raw or "isEqual" in raw:  # Alertmanager's API form
            regex, equal = bool(raw.get("isRegex")), raw.get("isEqual", True) is not False
            op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
        else:
            op = "="
        extra = set(raw) - {"name", "label", "value", "op", "type", "isRegex", "isEqual"}
        if extra:
            raise LabelError([f"{where}: unknown keys {', '.join(sorted(extra))} (use name, op, value)"])
    else:
        raise LabelError([f"{where}: must be an object {{name, op, value}} or a string such as "
                          f'node_name=~"gpu-.*"'])
    if not isinstance(name, str) or not LABEL_NAME_RE.match(name):
        raise LabelError([f"{where}: {str(name)[:60]!r} is not a label name (letters, digits, _; not first a digit)"])
    if op not in OPS:
        raise LabelError([f"{where}: operator {str(op)[:10]!r} is not one of {', '.join(OPS)}"])
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise LabelError([f"{where}: value must be a string"])
    if len(value) > MAX_VALUE_LENGTH:
        raise LabelError([f"{where}: value longer than {MAX_VALUE_LENGTH} characters"])
    regex = None
    if op in ("=~", "!~"):
        if len(value) > MAX_REGEX_LENGTH:
            raise LabelError([f"{where}: regular expression longer than {MAX_REGEX_LENGTH} characters"])
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise LabelError([f"{where}: {value[:80]!r} is not a valid regular expression: {exc}"]) from None
    return Matcher(name, op, value, regex)


def parse_matchers(raw: Any, *, allowed_labels: tuple[str, ...] | None = None) -> list[Matcher]:
    """Validate matchers as the API receives them: a list of ``{name, op, value}`` objects (``op`` one
    of ``= != =~ !~``, default ``=``), of Alertmanager's ``{name, value, isRegex, isEqual}``, or of
    strings ``name=~"regex"``; or an object ``{name: value}`` of equalities. Raises LabelError."""
    if raw in (None, ""):
        return []
    if isinstance(raw, dict):
        raw = [{"name": k, "op": "=", "value": v} for k, v in raw.items()]
    if isinstance(raw, str):
        raw = [line for line in raw.splitlines() if line.strip()]
    if not isinstance(raw, list):
        raise LabelError(["must be a list of matchers"])
    if len(raw) > MAX_MATCHERS:
        raise LabelError([f"at most {MAX_MATCHERS} matchers"])
    errors, out = [], []
    for position, item in enumerate(raw):
        try:
            matcher = _one(item, position)
        except LabelError as exc:
            errors += exc.messages
            continue
        if allowed_labels is not None and matcher.name not in allowed_labels:
            errors.append(f"matcher {position + 1}: these alerts have no label {matcher.name!r} "
                          f"(labels: {', '.join(allowed_labels)})")
            continue
        out.append(matcher)
    if errors:
        raise LabelError(errors)
    return out


@lru_cache(maxsize=4096)
def _compiled(key: str) -> tuple[Matcher, ...]:
    import json

    return tuple(parse_matchers(json.loads(key)))


def compiled(stored: list) -> tuple[Matcher, ...]:
    """Matchers from their stored (already validated) form, compiled once per process."""
    if not stored:
        return ()
    import json

    return _compiled(json.dumps(stored, sort_keys=True))


def matches_all(matchers: tuple[Matcher, ...] | list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matchers_text(stored: list) -> str:
    """One matcher per line, as the pages show and edit them."""
    return "\n".join(str(m) for m in compiled(stored))


# ------------------------------------------------------------------------------------------ groups


def normalize_group_by(raw: Any) -> list[str]:
    """``group_by`` as stored: label names (``rule`` is accepted for ``alertname``), or ``["..."]`` for
    every label (one group per alert). Raises LabelError."""
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise LabelError(["must be a list of label names"])
    if len(raw) > 10:
        raise LabelError(["at most 10 labels"])
    if "..." in raw:
        if len(raw) > 1:
            raise LabelError(['"..." (every label) cannot be combined with other labels'])
        return ["..."]
    out: list[str] = []
    for name in raw:
        name = "alertname" if name == "rule" else name
        if not LABEL_NAME_RE.match(name):
            raise LabelError([f"{name[:60]!r} is not a label name"])
        if name not in out:
            out.append(name)
    return out


def format_label_set(labels: dict[str, str]) -> str:
    """``{a="1", b="x"}``, as Alertmanager prints label sets in a group key."""
    inner = ", ".join(f'{k}={_quote(v)}' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def group_labels(labels: dict[str, str], group_by: list[str]) -> dict[str, str]:
    if group_by == ["..."]:
        return dict(labels)
    return {name: labels[name] for name in group_by if labels.get(name, "") != ""}


def group_key(labels: dict[str, str], group_by: list[str]) -> tuple[str, dict[str, str]]:
    """The Alertmanager-style group key (``{}:{alertname="X", node="3"}``; the route part is always the
    root route's ``{}``) and the group's labels."""
    chosen = group_labels(labels, group_by)
    return "{}:" + format_label_set(chosen), chosen
