"""What a probe found, and the function that turns the probe script's output into it.

:func:`parse_probe_output` never raises: a tool whose output cannot be read becomes a human-readable
entry in ``ProbeResult.errors`` naming the tool and its version, and the rest of the probe still counts
(STYLE.md section 5: probes return typed results; problems are data).

``AcceleratorReading`` is defined in :mod:`nodes.probes.parsers.common` (so the parsers can build
readings without a circular import) and re-exported here; import it from this module.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from nodes.probes.parsers import facts as facts_parser
from nodes.probes.parsers import npu_smi, nvidia_smi
from nodes.probes.parsers.common import AcceleratorReading, ParseError, first_line

__all__ = ["AcceleratorReading", "ParseError", "ProbeResult", "RawProbeOutput", "parse_probe_output",
           "split_sections"]

log = logging.getLogger(__name__)

_MARKER = re.compile(r"^@@boom:(?P<name>[a-z][a-z0-9-]*)(?: (?P<args>.*?))?@@\s*$")
_TIMED_OUT = {124, 137}  # timeout(1)'s status, and 128+SIGKILL when -k had to kill the tool

T = TypeVar("T")


@dataclass
class ProbeResult:
    """Facts about the host, one reading per accelerator, and what went wrong while probing."""

    facts: dict
    accelerators: list[AcceleratorReading] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class RawProbeOutput:
    """The probe script's output cut into its sections (see :mod:`nodes.probes.script`)."""

    format_version: str | None = None  # from "@@boom:probe N@@"; None: this is not probe output
    complete: bool = False  # the end marker was seen
    sections: dict[str, str] = field(default_factory=dict)
    section_args: dict[str, str] = field(default_factory=dict)  # e.g. the file a section was read from
    tools: dict[str, str | None] = field(default_factory=dict)  # tool -> path, or None when missing
    exit_codes: dict[str, int] = field(default_factory=dict)
    stderr: dict[str, str] = field(default_factory=dict)


def split_sections(stdout: str) -> RawProbeOutput:
    """Cut probe output into sections. Text before the first marker (a login banner) is ignored; a
    section printed twice (a retried command) keeps its last text, status and stderr."""
    raw = RawProbeOutput()
    target: tuple[dict[str, str], str] | None = None
    buffers: dict[tuple[int, str], list[str]] = {}

    def start(store: dict[str, str], name: str) -> None:
        nonlocal target
        target = (store, name)
        buffers[(id(store), name)] = []
        store[name] = ""

    for line in stdout.splitlines():
        match = _MARKER.match(line)
        if not match:
            if target is not None:
                buffers[(id(target[0]), target[1])].append(line)
            continue
        name, args = match["name"], (match["args"] or "").strip()
        target = None
        if name == "probe":
            raw.format_version = args or "?"
        elif name == "end":
            raw.complete = True
        elif name == "tool":
            tool, _, path = args.partition(" ")
            raw.tools[tool] = path or None
        elif name == "missing":
            raw.tools[args] = None
        elif name == "rc":
            section, _, code = args.rpartition(" ")
            if section and code.lstrip("-").isdigit():
                raw.exit_codes[section] = int(code)
        elif name == "stderr":
            start(raw.stderr, args)
        else:
            raw.exit_codes.pop(name, None)
            raw.stderr.pop(name, None)
            raw.section_args[name] = args
            start(raw.sections, name)
    for (store_id, name), lines in buffers.items():
        store = raw.sections if store_id == id(raw.sections) else raw.stderr
        if name in store:
            store[name] = "\n".join(lines)
    return raw


def parse_probe_output(stdout: str) -> ProbeResult:
    """Turn the probe script's stdout into a :class:`ProbeResult`; never raises."""
    raw = split_sections(stdout)
    if raw.format_version is None:
        return ProbeResult(facts=facts_parser.empty_facts(),
                           errors=[f"the probe printed no probe output: {first_line(stdout)!r}"])
    errors: list[str] = []
    facts = _guarded("host facts", errors, lambda: facts_parser.parse_facts(raw.sections))
    facts = facts or facts_parser.empty_facts()
    accelerators: list[AcceleratorReading] = []
    if raw.tools.get("nvidia-smi"):
        accelerators += _nvidia(raw, facts, errors)
    if raw.tools.get("npu-smi"):
        accelerators += _ascend(raw, facts, errors)
    if not raw.complete:
        errors.append("the probe output was cut short (no end marker): results may be incomplete")
    return ProbeResult(facts=facts, accelerators=accelerators, errors=errors)


def _nvidia(raw: RawProbeOutput, facts: dict, errors: list[str]) -> list[AcceleratorReading]:
    banner = raw.sections.get("nvidia-smi-version", "")
    if "driver version" not in banner.lower():
        banner = raw.sections.get("nvidia-smi-table", banner)
    facts.update(nvidia_smi.parse_versions(banner))
    version = facts.get("nvidia_smi_version") or facts.get("nvidia_driver_version")
    if failure := _command_failure(raw, "nvidia-smi-query", "nvidia-smi", version, "--query-gpu"):
        errors.append(failure)
        return []
    readings = _guarded("nvidia-smi", errors,
                        lambda: nvidia_smi.parse_query_gpu(raw.sections.get("nvidia-smi-query", ""),
                                                           version=version), version=version) or []
    if not facts.get("nvidia_driver_version"):
        facts["nvidia_driver_version"] = next(
            (r.extra["driver_version"] for r in readings if r.extra.get("driver_version")), None)
    return readings


def _ascend(raw: RawProbeOutput, facts: dict, errors: list[str]) -> list[AcceleratorReading]:
    info = raw.sections.get("npu-smi-info", "")
    facts["npu_smi_version"] = npu_smi.parse_version(info)
    # npu-smi ships with the driver and carries its version; use that when the table did not say.
    version = facts["npu_smi_version"] or facts.get("ascend_driver_version")
    if failure := _command_failure(raw, "npu-smi-info", "npu-smi", version, "info"):
        errors.append(failure)
        return []
    logic_ids = None
    if raw.exit_codes.get("npu-smi-info-m") == 0:
        # Without the map the index falls back to table order (recorded in extra["index_source"]);
        # an unreadable map is therefore not worth an error of its own.
        try:
            logic_ids = npu_smi.parse_chip_map(raw.sections.get("npu-smi-info-m", ""))
        except ParseError:
            logic_ids = None
    return _guarded("npu-smi", errors, lambda: npu_smi.parse_info(info, logic_ids), version=version) or []


def _command_failure(raw: RawProbeOutput, section: str, tool: str, version: str | None,
                     what: str) -> str | None:
    """An error string when the command behind ``section`` did not run cleanly, else None."""
    code = raw.exit_codes.get(section)
    if section not in raw.sections and code is None:
        return f"{tool} {version or '(unknown version)'}: '{what}' printed nothing (the probe was cut short?)"
    if code in (0, None):
        return None
    said = raw.stderr.get(section, "").strip() or raw.sections.get(section, "").strip()
    if code in _TIMED_OUT:
        return f"{tool} {version or '(unknown version)'}: '{what}' did not answer in time (status {code})"
    return f"{tool} {version or '(unknown version)'}: '{what}' exited with status {code}: {first_line(said)}"


def _guarded(what: str, errors: list[str], parse: Callable[[], T], version: str | None = None) -> T | None:
    """Run one parser; turn its failure into an error string instead of losing the whole probe."""
    try:
        return parse()
    except ParseError as exc:
        errors.append(str(ParseError(exc.tool, exc.version or version, exc.message)))
    except Exception as exc:  # a parser bug must not cost the node its other results
        log.exception("parser for %s failed", what)
        name = f"{what} {version}" if version else what
        errors.append(f"{name}: output could not be parsed ({type(exc).__name__}: {exc})")
    return None
