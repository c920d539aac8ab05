"""Types and value helpers shared by the tool-output parsers.

``AcceleratorReading`` lives here rather than in ``nodes.probes.result`` so that the parsers can build
readings without importing the module that imports them (``result`` re-exports it; callers should keep
using ``nodes.probes.result.AcceleratorReading``).

Everything here is pure: text in, data out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1024 * 1024

HEALTH_OK = "ok"
HEALTH_WARNING = "warning"
HEALTH_CRITICAL = "critical"
HEALTH_UNKNOWN = "unknown"


class ParseError(ValueError):
    """A tool printed something its parser does not recognise.

    ``tool`` and ``version`` name what printed it (``version`` may be None when the output did not say),
    so that the message shown to an operator says which tool and release needs a look.
    """

    def __init__(self, tool: str, version: str | None, message: str):
        self.tool = tool
        self.version = version
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.tool} {self.version or '(unknown version)'}: {self.message}"


@dataclass
class AcceleratorReading:
    """One addressable accelerator (a GPU, or one chip of an Ascend card) as a probe saw it."""

    index: int  # logical id: what CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES takes
    vendor: str  # "nvidia" | "huawei"
    kind: str  # "gpu" | "npu"
    model: str | None
    uuid: str | None
    bus_id: str | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    utilization_percent: float | None
    temperature_c: float | None
    power_w: float | None
    health: str  # "ok" | "warning" | "critical" | "unknown"
    extra: dict = field(default_factory=dict)  # JSON-serialisable details that vary by vendor


# Values the tools print when they have nothing to report. nvidia-smi wraps every such status in
# brackets ("[N/A]", "[Not Supported]", "[Unknown Error]", "[Requested functionality has been
# deprecated]"), so any bracketed value counts as missing; npu-smi prints "NA" or "-".
_MISSING = {"", "n/a", "na", "-", "--", "not supported", "none", "unknown"}

_NUMBER = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*([A-Za-z%/]*)$")


def clean(value: str | None) -> str | None:
    """Strip a raw value; return None for the tools' many spellings of "nothing here"."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() in _MISSING or (value.startswith("[") and value.endswith("]")):
        return None
    return value


def to_float(value: str | None) -> float | None:
    """A number from a raw value, ignoring a trailing unit ("631.95 W" -> 631.95); None if not a number."""
    value = clean(value)
    if value is None:
        return None
    match = _NUMBER.match(value)
    return float(match.group(1)) if match else None


def to_int(value: str | None) -> int | None:
    """An integer from a raw value ("42", "42 MiB" -> 42); None if not a whole number."""
    number = to_float(value)
    if number is None or number != int(number):
        return None
    return int(number)


def mib_to_bytes(value: float | int | None) -> int | None:
    """MiB (what both vendors' tools call MiB or MB) to bytes."""
    return None if value is None else int(round(value * MIB))


def first_line(text: str, limit: int = 120) -> str:
    """The first non-blank line of ``text``, shortened for an error message."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return "(empty output)"
