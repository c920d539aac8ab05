"""Parsers for Huawei Ascend's ``npu-smi`` output.

``npu-smi info`` prints a box-drawn table with two lines per addressable chip: an NPU line
(``| NPU Name | Health | Power(W) Temp(C) Hugepages-Usage(page) |``) and a chip line
(``| Chip [Device|Phy-ID] | Bus-Id | AICore(%) Memory-Usage(MB) HBM-Usage(MB) |``). The columns inside
the third cell differ between releases and products (310 has no HBM column, 20.x has no hugepages,
A3 names its second chip column ``Phy-ID``), so values are mapped by the names in the table's own
header rather than by position. Cards with several chips (Atlas 300I Duo: two 310P3 chips per card;
the 310 inference cards: four) repeat the NPU line before each chip line, or list several chip lines
under one NPU line; both are read as one accelerator per chip.

``npu-smi info -m`` maps (NPU ID, Chip ID) to the Chip Logic ID that ``ASCEND_RT_VISIBLE_DEVICES``
takes; its ``Mcu`` rows (Chip Logic ID ``-``) are management controllers, not devices.

Index rule: the Chip Logic ID from ``info -m`` when it covers every chip in the table; otherwise the
chip's position in the table (npu-smi lists chips in NPU-ID then chip-ID order, which is the order the
runtime numbers logical devices in). The table's ``Device`` column is kept in ``extra`` but not used as
the index: Huawei's own examples show values (3..6 on a 4-chip host) that are not valid logical ids.

Lines that are not part of a table (a documentation URL a publisher appended, a warning) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nodes.probes.parsers.common import (
    HEALTH_CRITICAL,
    HEALTH_OK,
    HEALTH_UNKNOWN,
    HEALTH_WARNING,
    AcceleratorReading,
    ParseError,
    clean,
    first_line,
    mib_to_bytes,
    to_float,
    to_int,
)

TOOL = "npu-smi"

_HEALTH = {"ok": HEALTH_OK, "warning": HEALTH_WARNING, "alarm": HEALTH_CRITICAL, "critical": HEALTH_CRITICAL}
_BANNER = re.compile(r"npu-smi\s+(?P<short>\S+)\s+Version:\s*(?P<version>\S+)", re.IGNORECASE)
# Processes kept per chip in extra["processes"]: enough to see who holds a chip, bounded so that a
# busy host does not bloat the stored JSON.
_MAX_PROCESSES = 32
_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")


@dataclass
class _Chip:
    """One NPU line plus one chip line of the ``npu-smi info`` table, values keyed by header name."""

    npu_id: int
    name: str | None
    health: str | None
    npu_values: dict[str, str]
    chip_id: int | None = None
    chip_column: tuple[str, str] | None = None  # ("device", "0") or ("phy-id", "1") where printed
    bus_id: str | None = None
    chip_values: dict[str, str] = field(default_factory=dict)
    processes: list[dict] = field(default_factory=list)


def parse_version(text: str) -> str | None:
    """The version in the table banner (``| npu-smi 21.0.4   Version: 21.0.4.B030 |`` -> ``21.0.4.B030``)."""
    match = _BANNER.search(text)
    return match.group("version") if match else None


def parse_chip_map(text: str) -> dict[tuple[int, int], int]:
    """``npu-smi info -m`` as ``{(npu_id, chip_id): chip_logic_id}``, leaving out ``Mcu`` rows.

    Raises :class:`ParseError` when there is text but no ``Chip Logic ID`` header.
    """
    lines = text.splitlines()
    header_at = next((n for n, line in enumerate(lines) if "chip logic id" in line.lower()), None)
    if header_at is None:
        if not text.strip():
            return {}
        raise ParseError(TOOL, None, f"unrecognised 'info -m' layout: {first_line(text)!r}")
    header = lines[header_at]
    names = [name.lower() for name in re.split(r"\s{2,}", header.strip())]
    starts = [header.lower().index(name) for name in names]
    try:
        npu_col, chip_col, logic_col = (names.index(name) for name in ("npu id", "chip id", "chip logic id"))
    except ValueError as exc:
        raise ParseError(TOOL, None, f"unrecognised 'info -m' header: {header.strip()!r}") from exc
    mapping: dict[tuple[int, int], int] = {}
    for line in lines[header_at + 1:]:
        # The table is fixed-width: slice by the header's column starts, so names with spaces
        # ("Ascend 910A") stay whole; fall back to whitespace when a row is not aligned.
        cells = [line[start:end].strip() for start, end in zip(starts, starts[1:] + [len(line)], strict=True)]
        npu, chip, logic = to_int(cells[npu_col]), to_int(cells[chip_col]), cells[logic_col]
        if npu is None or chip is None:
            tokens = line.split()
            if len(tokens) < 3:
                continue
            npu, chip, logic = to_int(tokens[npu_col]), to_int(tokens[chip_col]), tokens[logic_col]
            if npu is None or chip is None:
                continue  # a junk line, e.g. a URL
        logic_id = to_int(logic)
        if logic_id is not None:
            mapping[(npu, chip)] = logic_id
    return mapping


def parse_detail(text: str) -> list[dict[str, str]]:
    """``npu-smi info -t common|usages|board -i N [-c C]``: its ``Key : Value`` blocks, in order.

    Blocks are separated by blank lines; a card with several chips prints one block per chip (the
    chip's ``Chip ID`` line may come first or last) plus, on newer cards, an ``mcu`` block.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if not line.strip() or not separator:
            if current:
                blocks.append(current)
                current = {}
            continue
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse_info(text: str, logic_ids: dict[tuple[int, int], int] | None = None) -> list[AcceleratorReading]:
    """One :class:`AcceleratorReading` per chip in ``npu-smi info``.

    ``logic_ids`` is :func:`parse_chip_map` of ``npu-smi info -m``; see the module docstring for how
    the index is chosen. Raises :class:`ParseError` naming the npu-smi version for a layout it does not
    recognise.
    """
    version = parse_version(text)
    chips = _parse_table(text, version)
    use_map = bool(logic_ids) and all((c.npu_id, c.chip_id) in logic_ids for c in chips)
    readings = []
    for position, chip in enumerate(chips):
        if use_map:
            index, source = logic_ids[(chip.npu_id, chip.chip_id)], "npu-smi info -m"
        else:
            index, source = position, "table order"
        readings.append(_reading(chip, index, source))
    return readings


def _parse_table(text: str, version: str | None) -> list[_Chip]:
    lines = text.splitlines()
    header_at = next((n for n, line in enumerate(lines) if _is_header(_cells(line))), None)
    if header_at is None:
        raise ParseError(TOOL, version, f"unrecognised output layout: {first_line(text)!r}")
    second_at = next((n for n in range(header_at + 1, len(lines)) if lines[n].strip().startswith("|")), None)
    second = _cells(lines[second_at]) if second_at is not None else []
    if len(second) != 3 or "bus-id" not in second[1].lower():
        raise ParseError(TOOL, version, "the table header has no 'Chip | Bus-Id' line")
    npu_names = _header_names(_cells(lines[header_at])[2])
    chip_names = _header_names(second[2])
    chip_first_names = [name.lower() for name in second[0].split()]  # ["chip"], ["chip", "device"], ...

    chips: list[_Chip] = []
    current: _Chip | None = None  # the NPU line waiting for its chip line
    in_processes = False
    for line in lines[second_at + 1:]:
        stripped = line.strip()
        if not stripped.startswith("|"):
            continue  # box borders, blank lines, and junk such as an appended URL
        cells = _cells(line)
        if any("process id" in cell.lower() for cell in cells):
            in_processes = True
            continue
        if in_processes:
            _attach_process(cells, chips)
            continue
        if len(cells) != 3:
            raise ParseError(TOOL, version, f"unexpected table line: {stripped[:100]!r}")
        looks_like_chip = bool(_BUS_ID.match(cells[1])) or clean(cells[1]) is None
        if current is None and not (looks_like_chip and chips):
            current = _npu_line(cells, npu_names, version)
            continue
        # A chip line: right after its NPU line, or a further chip under the same NPU line.
        owner = current or chips[-1]  # only its NPU-line fields are copied
        if not looks_like_chip and cells[1].lower() in _HEALTH:
            raise ParseError(TOOL, version, f"an NPU line without its chip line: {stripped[:100]!r}")
        chips.append(_chip_line(owner, cells, chip_first_names, chip_names, version))
        current = None
    return chips


def _is_header(cells: list[str]) -> bool:
    return (len(cells) == 3 and cells[0].split()[:1] == ["NPU"] and "name" in cells[0].lower()
            and cells[1].lower() == "health")


def _cells(line: str) -> list[str]:
    stripped = line.strip()
    if not stripped.startswith("|"):
        return []
    return [cell.strip() for cell in stripped.strip("|").split("|")]


def _header_names(cell: str) -> list[str]:
    """``Power(W)    Temp(C)    Hugepages-Usage(page)`` -> ``["power", "temp", "hugepages-usage"]``."""
    return [re.sub(r"\(.*\)$", "", name).lower() for name in cell.split()]


def _tokens(cell: str) -> list[str]:
    """Values of a third cell; a ``used / total`` pair is one token (``3338 / 65536`` -> ``3338/65536``)."""
    return re.sub(r"\s*/\s*", "/", cell).split()


def _named(names: list[str], cell: str, line: str, version: str | None) -> dict[str, str]:
    tokens = _tokens(cell)
    if len(tokens) > len(names):
        raise ParseError(TOOL, version,
                         f"more values than columns ({', '.join(names)}): {line.strip()[:100]!r}")
    return dict(zip(names, tokens, strict=False))


def _npu_line(cells: list[str], names: list[str], version: str | None) -> _Chip:
    first = cells[0].split()
    npu_id = to_int(first[0]) if first else None
    if npu_id is None:
        raise ParseError(TOOL, version, f"an NPU line without an NPU id: {' | '.join(cells)[:100]!r}")
    return _Chip(npu_id=npu_id, name=clean(" ".join(first[1:])), health=clean(cells[1]),
                 npu_values=_named(names, cells[2], " | ".join(cells), version))


def _chip_line(owner: _Chip, cells: list[str], first_names: list[str], names: list[str],
               version: str | None) -> _Chip:
    first = cells[0].split()
    chip_id = to_int(first[0]) if first else None
    if chip_id is None or len(first) > max(len(first_names), 1):
        raise ParseError(TOOL, version, f"unrecognised chip line: {' | '.join(cells)[:100]!r}")
    chip = _Chip(npu_id=owner.npu_id, name=owner.name, health=owner.health, npu_values=owner.npu_values,
                 chip_id=chip_id, bus_id=clean(cells[1]),
                 chip_values=_named(names, cells[2], " | ".join(cells), version))
    if len(first) > 1:
        chip.chip_column = (first_names[1], first[1])
    return chip


def _attach_process(cells: list[str], chips: list[_Chip]) -> None:
    """Process table rows ``| NPU Chip | pid | name | memory(MB) |``; "No running processes" rows skip."""
    if len(cells) != 4:
        return
    ids = cells[0].split()
    if len(ids) != 2:
        return
    npu, chip, pid = to_int(ids[0]), to_int(ids[1]), to_int(cells[1])
    for candidate in chips:
        if (candidate.npu_id, candidate.chip_id) == (npu, chip):
            if len(candidate.processes) < _MAX_PROCESSES:
                candidate.processes.append({"pid": pid, "name": clean(cells[2]),
                                            "memory_bytes": mib_to_bytes(to_float(cells[3]))})
            return


def _pair(value: str | None) -> tuple[float | None, float | None] | None:
    """``"3338/65536"`` -> ``(3338.0, 65536.0)``; None when the column is absent."""
    if value is None:
        return None
    used, _, total = value.partition("/")
    return to_float(used), to_float(total)


def _reading(chip: _Chip, index: int, index_source: str) -> AcceleratorReading:
    npu, chp = chip.npu_values, chip.chip_values
    hbm, ddr = _pair(chp.get("hbm-usage")), _pair(chp.get("memory-usage"))
    # 910-class chips report both: small on-chip DDR (or 0/0) and HBM. Use HBM when it has a size.
    if hbm and hbm[1]:
        memory, memory_kind = hbm, "hbm"
    else:
        memory, memory_kind = ddr or (None, None), "ddr"
    extra: dict = {"npu_id": chip.npu_id, "chip_id": chip.chip_id, "index_source": index_source,
                   "health_raw": chip.health, "memory_kind": memory_kind}
    if chip.chip_column:
        extra[chip.chip_column[0].replace("-", "_")] = to_int(chip.chip_column[1])
    if ddr and hbm and hbm[1]:
        extra["ddr_used_bytes"], extra["ddr_total_bytes"] = mib_to_bytes(ddr[0]), mib_to_bytes(ddr[1])
    hugepages = _pair(npu.get("hugepages-usage"))
    if hugepages:
        extra["hugepages_used"], extra["hugepages_total"] = _whole(hugepages[0]), _whole(hugepages[1])
    if chip.processes:
        extra["processes"] = chip.processes
    bus = chip.bus_id
    return AcceleratorReading(
        index=index,
        vendor="huawei",
        kind="npu",
        model=chip.name,
        uuid=f"npu-{bus}-chip{chip.chip_id}" if bus else f"npu-{chip.npu_id}-chip{chip.chip_id}",
        bus_id=bus,
        memory_total_bytes=mib_to_bytes(memory[1]),
        memory_used_bytes=mib_to_bytes(memory[0]),
        utilization_percent=to_float(chp.get("aicore")),
        temperature_c=to_float(npu.get("temp")),
        power_w=to_float(npu.get("power")),
        health=_HEALTH.get((chip.health or "").lower(), HEALTH_UNKNOWN),
        extra=extra,
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)
