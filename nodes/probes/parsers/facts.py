"""Parsers for the probe's host sections: OS, kernel, CPU, memory, disks, load, Ascend version files.

Each function takes one section's text as the probe script printed it and returns plain,
JSON-serialisable values; anything missing or unreadable becomes None rather than an exception,
because a host fact we cannot read is not a reason to lose the rest of the probe.
"""

from __future__ import annotations

import re
import shlex

from nodes.probes.parsers.common import clean, to_float, to_int

FACT_KEYS = (
    "hostname", "os", "os_id", "os_version", "kernel", "arch", "cpu_model", "cpu_cores",
    "memory_total_bytes", "memory_available_bytes", "disks", "load",
    "nvidia_driver_version", "cuda_version", "nvidia_smi_version",
    "npu_smi_version", "ascend_driver_version", "ascend_firmware_version", "cann_version",
)

# Arm cores that /proc/cpuinfo names only by number ("CPU implementer : 0x48", "CPU part : 0xd01"),
# for hosts whose lscpu is too old to print a model name. Keyed by (implementer, part).
_ARM_PARTS = {
    ("0x48", "0xd01"): "HiSilicon Kunpeng-920",
    ("0x48", "0xd02"): "HiSilicon Kunpeng-930",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
}

_DF_ROW = re.compile(
    r"^(?P<fs>\S+)\s+(?P<total>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+(?P<pct>\d+%|-)\s+(?P<mount>/.*)$"
)
# Pseudo filesystems, for when df did not accept -x and listed them anyway.
_PSEUDO_FS = {"tmpfs", "devtmpfs", "overlay", "squashfs", "shm", "udev", "none", "proc", "sysfs", "cgroup"}


def empty_facts() -> dict:
    """Every fact key, set to None (``disks`` to an empty list)."""
    facts: dict = dict.fromkeys(FACT_KEYS)
    facts["disks"] = []
    return facts


def parse_facts(sections: dict[str, str]) -> dict:
    """All host facts from the probe's sections (tool versions stay None; the tool parsers fill them)."""
    facts = empty_facts()
    facts.update(parse_os_release(sections.get("os-release", "")))
    facts.update(parse_uname(sections.get("uname", "")))
    facts["cpu_model"] = parse_cpu_model(sections.get("cpuinfo", ""), sections.get("lscpu", ""))
    facts["cpu_cores"] = to_int(sections.get("nproc", "").strip() or None)
    facts.update(parse_meminfo(sections.get("meminfo", "")))
    facts["disks"] = parse_df(sections.get("df", ""))
    facts["load"] = parse_loadavg(sections.get("loadavg", ""))
    for kind in ("driver", "firmware"):
        facts[f"ascend_{kind}_version"] = parse_ascend_version_info(
            sections.get(f"ascend-{kind}-version-info", ""))
    facts["cann_version"] = parse_cann_version(sections.get("cann-install-info", ""),
                                               sections.get("cann-version-cfg", ""))
    return facts


def parse_key_values(text: str, separator: str = "=") -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments and junk skipped); the first occurrence of a key wins."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or separator not in line:
            continue
        key, _, value = line.partition(separator)
        values.setdefault(key.strip(), value.strip())
    return values


def parse_os_release(text: str) -> dict:
    """``/etc/os-release``: ``os`` (PRETTY_NAME), ``os_id`` (ID, lower-cased), ``os_version`` (VERSION_ID).

    The os-release spec makes ID lower-case, but openEuler ships ``ID="openEuler"``; lower-casing keeps
    comparisons simple. Values may be quoted with either quote or not at all (shell syntax).
    """
    raw = parse_key_values(text)
    values = {key: _unquote(value) for key, value in raw.items()}
    os_id = values.get("ID")
    pretty = values.get("PRETTY_NAME")
    if not pretty and values.get("NAME"):
        pretty = " ".join(part for part in (values.get("NAME"), values.get("VERSION")) if part)
    return {"os": pretty or None, "os_id": os_id.lower() if os_id else None,
            "os_version": values.get("VERSION_ID") or None}


def parse_uname(text: str) -> dict:
    """The probe's ``uname`` section (``nodename=``, ``release=``, ``machine=`` lines)."""
    values = parse_key_values(text)
    return {"hostname": clean(values.get("nodename")), "kernel": clean(values.get("release")),
            "arch": clean(values.get("machine"))}


def parse_cpu_model(cpuinfo: str, lscpu: str = "") -> str | None:
    """The CPU model: ``model name`` from /proc/cpuinfo (x86), else lscpu's ``Model name`` (Kunpeng and
    other Arm servers have no model name in cpuinfo), else the Arm part number, else ``Hardware``."""
    info = parse_key_values(cpuinfo, ":")
    lowered = {key.lower(): value for key, value in info.items()}
    if model := clean(lowered.get("model name")):
        return model
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and (value := clean(value)) and not value.isdigit():
            return value
    part = (lowered.get("cpu implementer", "").lower(), lowered.get("cpu part", "").lower())
    if part in _ARM_PARTS:
        return _ARM_PARTS[part]
    return clean(lowered.get("hardware"))


def parse_meminfo(text: str) -> dict:
    """``/proc/meminfo``: ``memory_total_bytes`` and ``memory_available_bytes`` (the file says kB: KiB)."""
    values = parse_key_values(text, ":")

    def kib(name: str) -> int | None:
        number = to_int(values.get(name, "").split(" ")[0] or None)
        return None if number is None else number * 1024

    return {"memory_total_bytes": kib("MemTotal"), "memory_available_bytes": kib("MemAvailable")}


def parse_df(text: str) -> list[dict]:
    """``df -P`` output as ``[{mount, filesystem, total_bytes, used_bytes}]``.

    The block size comes from the header (``1-blocks``/``1B-blocks`` for ``-B1``, ``1024-blocks`` for
    ``-k``); pseudo filesystems are dropped here too in case df did not support ``-x``.
    """
    block = 1024
    disks = []
    for line in text.splitlines():
        if line.startswith("Filesystem"):
            match = re.search(r"(\d+)B?-blocks", line)
            block = int(match.group(1)) if match else 1024
            continue
        match = _DF_ROW.match(line.strip())
        if not match or match["fs"] in _PSEUDO_FS:
            continue
        disks.append({"mount": match["mount"], "filesystem": match["fs"],
                      "total_bytes": int(match["total"]) * block, "used_bytes": int(match["used"]) * block})
    return disks


def parse_loadavg(text: str) -> list[float] | None:
    """``/proc/loadavg`` -> the 1, 5 and 15 minute load averages."""
    parts = text.split()
    loads = [to_float(part) for part in parts[:3]]
    if len(loads) < 3 or any(load is None for load in loads):
        return None
    return loads


def parse_ascend_version_info(text: str) -> str | None:
    """``/usr/local/Ascend/{driver,firmware}/version.info``: ``Version=24.1.rc1`` or ``package_version``."""
    values = parse_key_values(text)
    for key in ("Version", "version", "package_version"):
        if value := clean(values.get(key)):
            return value
    return None


def parse_cann_version(install_info: str, version_cfg: str = "") -> str | None:
    """The CANN toolkit version.

    ``<toolkit>/latest/<arch>-linux/ascend_toolkit_install.info`` says ``version=8.1.RC1.alpha001``;
    older and newer layouts have ``<toolkit>/latest/version.cfg`` with
    ``toolkit_running_version=[7.6.0.1.220:8.0.0]`` where the part after the colon is the CANN release.
    """
    if version := clean(parse_key_values(install_info).get("version")):
        return version
    values = parse_key_values(version_cfg)
    for key in ("toolkit_running_version", "runtime_running_version", "compiler_running_version"):
        match = re.match(r"^\[(?P<inner>[^:\]]*)(?::(?P<release>[^\]]*))?\]", values.get(key, ""))
        if match:
            return clean(match["release"]) or clean(match["inner"])
    return None


def _unquote(value: str) -> str:
    try:
        parts = shlex.split(value)
    except ValueError:
        return value.strip("\"'")
    return " ".join(parts)
