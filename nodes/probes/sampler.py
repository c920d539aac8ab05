"""The telemetry sampling session: one long-lived bash script per node (``sampler.sh``, next to this
module), locally or over SSH.

Where the probe (:mod:`nodes.probes.script`) runs once and exits, this script stays up and prints a
sample every interval, so that sampling a node every second costs one SSH session, not one connection
(or one command) per sample. Run it as ``bash -c SAMPLER_SCRIPT boom-sampler <interval_ms> <mode>``
(an argv list: the interval is validated as an integer, the mode is ``node`` or ``accelerators``).

What it prints (parsed by :mod:`nodes.probes.parsers.sampler`)::

    @@boom:sampler 1 <interval_ms>@@          format version, once
    @@boom:gpu-fields <f1,f2,...>@@            nvidia-smi found: the fields of the ``G`` lines
    @@boom:missing nvidia-smi@@ / npu-smi     a tool is not there
    G <csv row>                                one GPU, from ``nvidia-smi --query-gpu=... -lms <interval>``
    C <user> <nice> <system> <idle> <iowait> <irq> <softirq> <steal>    /proc/stat's cpu line (jiffies)
    M <MemTotal kB> <MemAvailable kB>          /proc/meminfo
    L <1 min>                                  /proc/loadavg
    N <rx bytes> <tx bytes>                    /proc/net/dev, all interfaces but lo
    D <used bytes> <size bytes>                df of /, every 10th tick (a stale mount must not stall us)
    @@boom:npu@@ ... @@boom:npu-end@@           ``npu-smi info`` (no loop mode of its own), every tick
    E                                          end of one tick (node mode; G lines come on their own)

Rules, as for the probe script: no user input is ever put into it; it never reads stdin except as a
sleep (``read -t``) which ends the script when stdin closes, so it dies with the session that
started it; every tool runs under ``timeout`` where the host has one.

``nvidia-smi -lms`` runs as one background process (NVML stays initialised between samples, which
is how nvidia-smi is meant to be looped), its lines prefixed by a ``read`` loop.
"""

from pathlib import Path

from nodes.probes.script import NPU_SMI_DIRS, NVIDIA_HEALTH_FIELDS, NVIDIA_SMI_DIRS

MODES = ("node", "accelerators")

# Fewer fields than the probe: only what changes. Identity comes from the probe's inventory.
GPU_BASE_FIELDS = ("index", "uuid", "pci.bus_id", "memory.used", "memory.total", "utilization.gpu",
                   "temperature.gpu", "power.draw")
GPU_FULL_FIELDS = GPU_BASE_FIELDS + NVIDIA_HEALTH_FIELDS

_HERE = Path(__file__).resolve().parent
# find.sh (boom_find, shared with the other node program) goes first: one self-contained script.
_TEMPLATE = "".join((_HERE / n).read_text(encoding="utf-8") for n in ("find.sh", "sampler.sh"))

SAMPLER_SCRIPT: str = (
    _TEMPLATE
    .replace("__NVIDIA_DIRS__", " ".join(NVIDIA_SMI_DIRS))
    .replace("__NPU_DIRS__", " ".join(NPU_SMI_DIRS))
    .replace("__GPU_FULL__", ",".join(GPU_FULL_FIELDS))
    .replace("__GPU_BASE__", ",".join(GPU_BASE_FIELDS))
)


def sampler_argv(interval_s: float, mode: str) -> list[str]:
    """The argv that runs the sampling session (quote it with ``quote_argv`` for SSH)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    interval_ms = max(100, int(round(float(interval_s) * 1000)))
    return ["bash", "-c", SAMPLER_SCRIPT, "boom-sampler", str(interval_ms), mode]
