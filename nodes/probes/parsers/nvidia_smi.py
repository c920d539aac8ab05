"""Parsers for NVIDIA's ``nvidia-smi`` output.

Formats handled:

* ``--query-gpu=...`` / ``--query-compute-apps=...`` with ``--format=csv``: columns are mapped by header
  name, so any field list and any field order work, from the probe's short query to the ~210-field
  "query everything" list. Units are taken from the header (``memory.total [MiB]``) and stripped from
  values (``81559 MiB``); ``nounits`` and ``noheader`` (with ``fields=``) work too.
* ``--version`` (``DRIVER version : 590.48.01``) and, for drivers whose nvidia-smi lacks ``--version``,
  the banner of the plain table (``| NVIDIA-SMI 590.48.01  Driver Version: 590.48.01  CUDA Version: 13.1 |``).
* ``-L`` (``GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)``, with MIG device lines).

nvidia-smi does not quote CSV values, so a value containing ", " would shift every later column; a row
whose column count differs from the header's is therefore rejected rather than guessed at.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from nodes.probes.parsers.common import (
    HEALTH_CRITICAL,
    HEALTH_OK,
    HEALTH_WARNING,
    AcceleratorReading,
    ParseError,
    clean,
    first_line,
    mib_to_bytes,
    to_float,
    to_int,
)

TOOL = "nvidia-smi"

# Fields whose presence marks a line as a --query-gpu / --query-compute-apps header.
_IDENTITY_FIELDS = {"index", "uuid", "name", "pci.bus_id", "gpu_uuid", "gpu_name", "gpu_bus_id", "pid"}

# Extra fields kept on a reading when the query included them, with the type to store them as.
_EXTRA_FIELDS: dict[str, type] = {
    "pstate": str,
    "driver_version": str,
    "vbios_version": str,
    "serial": str,
    "compute_cap": str,
    "persistence_mode": str,
    "compute_mode": str,
    "mig.mode.current": str,
    "ecc.mode.current": str,
    "fan.speed": float,
    "utilization.memory": float,
    "temperature.memory": float,
    "power.limit": float,
    "clocks.current.sm": float,
    "clocks.max.sm": float,
    "ecc.errors.uncorrected.volatile.total": int,
    "ecc.errors.uncorrected.aggregate.total": int,
    "retired_pages.pending": str,
    "remapped_rows.pending": str,
    "remapped_rows.failure": str,
    "remapped_rows.uncorrectable": int,
}

_UNIT_IN_HEADER = re.compile(r"^(?P<name>[^\[]+?)\s*\[(?P<unit>[^\]]+)\]$")
_LIST_GPU = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>[^)]+)\)\s*$")
_LIST_MIG = re.compile(r"^\s+MIG (?P<profile>\S+)\s+Device\s+(?P<index>\d+): \(UUID: (?P<uuid>[^)]+)\)\s*$")
_VERSION_PATTERNS = {
    # "--version" prints "NVIDIA-SMI version  : 590.48.01"; the table banner "| NVIDIA-SMI 590.48.01 ...".
    "nvidia_smi_version": re.compile(r"NVIDIA-SMI(?:\s+version)?\s*:?\s*(\d[\w.-]*)", re.IGNORECASE),
    "nvidia_driver_version": re.compile(r"DRIVER\s+version\s*:\s*(\d[\w.-]*)", re.IGNORECASE),
    "cuda_version": re.compile(r"CUDA\s+Version\s*:\s*(\d[\w.-]*)", re.IGNORECASE),
}


@dataclass
class CsvTable:
    """A ``--format=csv`` answer: field names (units stripped), each field's unit, and raw rows."""

    fields: list[str]
    units: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)


def parse_csv(text: str, fields: list[str] | None = None, version: str | None = None) -> CsvTable:
    """Parse any nvidia-smi ``--format=csv`` output into a :class:`CsvTable`.

    Pass ``fields`` (the names given to ``--query-*``) for ``noheader`` output. Raises
    :class:`ParseError` when there is no header or a row does not have one value per column.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and "no devices were found" in lines[0].lower():
        return CsvTable(fields=list(fields or []))
    if fields is None:
        if not lines:
            raise ParseError(TOOL, version, "empty CSV output")
        header = _split_csv_line(lines.pop(0))
        names, units = [], {}
        for column in header:
            match = _UNIT_IN_HEADER.match(column)
            name = match.group("name") if match else column
            if match:
                units[name] = match.group("unit")
            names.append(name)
        if not _IDENTITY_FIELDS.intersection(names):
            raise ParseError(TOOL, version, f"unrecognised CSV header: {first_line(text)!r}")
    else:
        names, units = list(fields), {}
    table = CsvTable(fields=names, units=units)
    for number, line in enumerate(lines, start=1):
        values = _split_csv_line(line)
        if len(values) != len(names):
            raise ParseError(
                TOOL, version,
                f"CSV row {number} has {len(values)} values for {len(names)} columns: {first_line(line)!r}",
            )
        table.rows.append(dict(zip(names, values, strict=True)))
    return table


def parse_query_gpu(text: str, fields: list[str] | None = None,
                    version: str | None = None) -> list[AcceleratorReading]:
    """One :class:`AcceleratorReading` per row of ``nvidia-smi --query-gpu=... --format=csv``.

    Rows without an ``index`` column get their position as index. Health is derived from the health
    columns the query happened to include (see :func:`gpu_health`); with none of them it is "ok".
    """
    table = parse_csv(text, fields=fields, version=version)
    return [_reading(position, row, table.units) for position, row in enumerate(table.rows)]


def gpu_health(row: dict[str, str]) -> tuple[str, list[str]]:
    """The health of one GPU row and the reasons for it.

    nvidia-smi has no single health field, so this reads the signals that exist:

    * critical: row remapping failed (``remapped_rows.failure``), or a value says the GPU needs a reset
      or is lost (nvidia-smi prints ``[GPU requires reset]`` / ``[GPU is lost]`` in place of values);
    * warning: retired pages or remapped rows pending (they need a reset to take effect), uncorrected
      volatile ECC errors, or ``[Unknown Error]`` values;
    * ok otherwise — including when the query asked for none of these fields.
    """
    critical, warning = [], []
    raw_values = [value.strip().lower() for value in row.values()]
    if _is_yes(row.get("remapped_rows.failure")):
        critical.append("row remapping failed")
    if any("requires reset" in value for value in raw_values):
        critical.append("GPU requires reset")
    if any("gpu is lost" in value for value in raw_values):
        critical.append("GPU is lost")
    if _is_yes(row.get("retired_pages.pending")):
        warning.append("retired pages pending")
    if _is_yes(row.get("remapped_rows.pending")):
        warning.append("remapped rows pending")
    uncorrected = to_int(row.get("ecc.errors.uncorrected.volatile.total"))
    if uncorrected:
        warning.append(f"{uncorrected} uncorrected volatile ECC errors")
    if any(value == "[unknown error]" for value in raw_values):
        warning.append("nvidia-smi reported [Unknown Error] values")
    if critical:
        return HEALTH_CRITICAL, critical + warning
    if warning:
        return HEALTH_WARNING, warning
    return HEALTH_OK, []


def parse_versions(text: str) -> dict[str, str | None]:
    """nvidia-smi, driver and CUDA versions from ``nvidia-smi --version`` or the plain table's banner.

    Returns the keys ``nvidia_smi_version``, ``nvidia_driver_version``, ``cuda_version`` (None when
    absent). The patterns ignore case, so the banner's ``Driver Version: X`` matches as well.
    """
    found: dict[str, str | None] = {}
    for key, pattern in _VERSION_PATTERNS.items():
        match = pattern.search(text)
        found[key] = match.group(1) if match else None
    return found


def parse_list(text: str) -> list[dict]:
    """``nvidia-smi -L``: ``[{"index", "name", "uuid", "mig": [{"index", "profile", "uuid"}]}]``."""
    gpus: list[dict] = []
    for line in text.splitlines():
        if match := _LIST_GPU.match(line):
            gpus.append({"index": int(match["index"]), "name": match["name"], "uuid": match["uuid"],
                         "mig": []})
        elif (match := _LIST_MIG.match(line)) and gpus:
            gpus[-1]["mig"].append({"index": int(match["index"]), "profile": match["profile"],
                                    "uuid": match["uuid"]})
    return gpus


def parse_compute_apps(text: str, version: str | None = None) -> list[dict]:
    """``--query-compute-apps=...`` CSV: ``[{"pid", "process_name", "gpu_uuid", "gpu_bus_id",
    "used_memory_bytes"}]`` (keys whose field was not queried are None)."""
    table = parse_csv(text, version=version)
    apps = []
    for row in table.rows:
        apps.append({
            "pid": to_int(row.get("pid")),
            "process_name": clean(row.get("process_name")),
            "gpu_uuid": clean(row.get("gpu_uuid")),
            "gpu_bus_id": clean(row.get("gpu_bus_id")),
            "used_memory_bytes": _bytes(row, table.units, "used_gpu_memory", "used_memory"),
        })
    return apps


def _reading(position: int, row: dict[str, str], units: dict[str, str]) -> AcceleratorReading:
    index = to_int(row.get("index"))
    health, reasons = gpu_health(row)
    extra: dict = {}
    for name, kind in _EXTRA_FIELDS.items():
        value = clean(row.get(name))
        if value is None:
            continue
        extra[name] = value if kind is str else (to_float(value) if kind is float else to_int(value))
    if reasons:
        extra["health_reasons"] = reasons
    # Newer drivers also report power.draw.instant / .average; older ones only power.draw.
    powers = (to_float(row.get(name)) for name in ("power.draw", "power.draw.instant", "power.draw.average"))
    power = next((value for value in powers if value is not None), None)
    return AcceleratorReading(
        index=index if index is not None else position,
        vendor="nvidia",
        kind="gpu",
        model=clean(row.get("name")),
        uuid=clean(row.get("uuid")),
        bus_id=clean(row.get("pci.bus_id")),
        memory_total_bytes=_bytes(row, units, "memory.total"),
        memory_used_bytes=_bytes(row, units, "memory.used"),
        utilization_percent=to_float(row.get("utilization.gpu")),
        temperature_c=to_float(row.get("temperature.gpu")),
        power_w=power,
        health=health,
        extra=extra,
    )


# nvidia-smi writes binary units (MiB); "MB" in older docs means the same thing.
_BYTES_PER_UNIT = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
                   "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _bytes(row: dict[str, str], units: dict[str, str], *names: str) -> int | None:
    """A memory column in bytes. The unit comes from the header, else from the value; nvidia-smi's
    default (and what every memory field has used so far) is MiB."""
    for name in names:
        raw = clean(row.get(name))
        number = to_float(raw)
        if number is None:
            continue
        unit = units.get(name) or (raw.split()[-1] if raw and " " in raw else "MiB")
        factor = _BYTES_PER_UNIT.get(unit.lower())
        return int(number * factor) if factor else mib_to_bytes(number)
    return None


def _split_csv_line(line: str) -> list[str]:
    # QUOTE_NONE: nvidia-smi never quotes, so a stray '"' in a process name must stay literal.
    reader = csv.reader([line], skipinitialspace=True, quoting=csv.QUOTE_NONE)
    return [value.strip() for value in next(reader)]


def _is_yes(value: str | None) -> bool:
    return (clean(value) or "").lower() == "yes"
