"""The node probe: one bash script (``probe.sh``, next to this module), run as ``bash -s`` (script on
stdin) through the node's transport.

It gathers everything a probe needs in one round trip and prints it as sections, each opened by a
marker line that :func:`nodes.probes.result.split_sections` understands::

    @@boom:probe 1@@                       format version
    @@boom:<section> [args]@@              a section's text follows (os-release, df, nvidia-smi-query, ...)
    @@boom:tool <name> <path>@@            a tool was found at <path>
    @@boom:missing <name>@@                a tool was not found on PATH nor in its usual places
    @@boom:stderr <section>@@              what the command behind <section> wrote to stderr
    @@boom:rc <section> <status>@@         exit status of the command behind <section>
    @@boom:end@@                           the script got to the end (absent: output was cut)

Rules the script keeps, and that any edit must keep:

* It never fails as a whole: every command is optional, a missing tool prints a ``missing`` marker,
  and the script exits 0.
* It never reads its own stdin. ``bash -s`` reads the script from stdin, so a command that read
  stdin would swallow the rest of the script; the body is a function (parsed in full before it runs)
  called with ``</dev/null``.
* Tools run under ``timeout`` where the host has it: a wedged driver makes nvidia-smi / npu-smi hang.
* It needs nothing beyond bash for the basics: files are read with ``read`` builtins, so a host with a
  broken PATH still reports its OS, CPU, memory and load.
* No user input is ever put into it: ``PROBE_SCRIPT`` is a constant built once at import time, from
  ``probe.sh`` with its placeholders (``__NAME__``) replaced by the constants below.
"""

from pathlib import Path

# Where the tools live when they are not on a non-interactive SSH session's PATH.
NVIDIA_SMI_DIRS = ("/usr/bin", "/usr/local/nvidia/bin", "/usr/local/bin")
NPU_SMI_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/local/Ascend/driver/tools",
                "/usr/local/Ascend/driver/bin")
# CANN toolkit roots: /usr/local/Ascend/cann from CANN 8.5 on, ascend-toolkit/latest before.
CANN_DIRS = ("/usr/local/Ascend/cann", "/usr/local/Ascend/ascend-toolkit/latest")

# Fields asked of nvidia-smi. The health fields come first in a fuller query; a driver too old to
# know one of them rejects the whole query, and the probe then retries with the basic fields only.
NVIDIA_QUERY_FIELDS = ("index", "uuid", "name", "pci.bus_id", "memory.total", "memory.used",
                       "utilization.gpu", "temperature.gpu", "power.draw", "pstate", "driver_version")
NVIDIA_HEALTH_FIELDS = ("ecc.errors.uncorrected.volatile.total", "retired_pages.pending",
                        "remapped_rows.pending", "remapped_rows.failure")

TOOL_TIMEOUT_S = 20
DF_TIMEOUT_S = 10  # a stale network mount makes df hang; the rest of the probe must not wait for it

_HERE = Path(__file__).resolve().parent
# find.sh (boom_find, shared with the other node program) goes first: one self-contained script.
_TEMPLATE = "".join((_HERE / n).read_text(encoding="utf-8") for n in ("find.sh", "probe.sh"))

PROBE_SCRIPT: str = (
    _TEMPLATE
    .replace("__NVIDIA_DIRS__", " ".join(NVIDIA_SMI_DIRS))
    .replace("__NPU_DIRS__", " ".join(NPU_SMI_DIRS))
    .replace("__CANN_DIRS__", " ".join(CANN_DIRS))
    .replace("__NVIDIA_FULL_FIELDS__", ",".join(NVIDIA_QUERY_FIELDS + NVIDIA_HEALTH_FIELDS))
    .replace("__NVIDIA_BASE_FIELDS__", ",".join(NVIDIA_QUERY_FIELDS))
    .replace("__TOOL_TIMEOUT__", str(TOOL_TIMEOUT_S))
    .replace("__DF_TIMEOUT__", str(DF_TIMEOUT_S))
)
