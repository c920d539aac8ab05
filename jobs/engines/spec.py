"""The launch specification every engine reads, and the small helpers that place it on a node.

:class:`LaunchSpec` describes one member of one replica on one node; the helpers turn a bind address
into a URL host and wrap an argv in the constant CANN ``set_env.sh`` script (:data:`ENV_WRAPPER_SCRIPT`).
Nothing here opens a socket, a file or a process.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models_registry.quantization import normalize as normalize_quantization

__all__ = [
    "ACCELERATOR_ENV",
    "CONSOLE_ENV",
    "ENV_WRAPPER_SCRIPT",
    "LaunchSpec",
    "ascend_root",
    "cann_setenv_files",
    "core_list",
    "env_wrapped",
    "is_wildcard",
    "url_host",
]

#: The variable that restricts a process to the accelerators allocated to it, per vendor.
ACCELERATOR_ENV = {"nvidia": "CUDA_VISIBLE_DEVICES", "huawei": "ASCEND_RT_VISIBLE_DEVICES"}
#: Variables the console sets for every engine, so a job's ``env`` may not: the accelerator lists
#: (and the Ascend container runtime's), and the executor's markers of the instance and its run.
CONSOLE_ENV = frozenset({*ACCELERATOR_ENV.values(), "ASCEND_VISIBLE_DEVICES", "BOOM_INSTANCE", "BOOM_GENERATION"})

#: A constant bash script: ``bash -c SCRIPT NAME CWD FILE... -- ARGV...`` changes into ``CWD`` (when
#: not empty), sources each ``FILE`` that exists (the CANN ``set_env.sh`` scripts, which cannot be
#: applied any other way) with the positional parameters cleared, then ``exec``\ s ``ARGV``. Every
#: value arrives as a positional parameter and is expanded inside double quotes: no user text is
#: ever parsed by the shell.
ENV_WRAPPER_SCRIPT = (
    'cwd="$1"; shift; files=(); '
    'while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do files+=("$1"); shift; done; '
    'shift; argv=("$@"); set --; '
    'for f in "${files[@]}"; do if [ -f "$f" ]; then . "$f"; fi; done; '
    'if [ -n "$cwd" ]; then cd "$cwd" || exit 127; fi; '
    'exec "${argv[@]}"'
)
#: ``$0`` of the wrapper, so that ``ps`` shows what the bash process is for.
ENV_WRAPPER_NAME = "boom-engine-env"
#: Where the CANN toolkit, NNAL and MindIE live unless ``spec.env["BOOM_ASCEND_ROOT"]`` says otherwise.
DEFAULT_ASCEND_ROOT = "/usr/local/Ascend"

_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


@dataclass
class LaunchSpec:
    """Everything an engine needs to start one member of one replica on one node.

    Single-node replicas are the one-member case (``nnodes == 1``). For a replica spread over
    several nodes each member gets its own spec with the same ``nnodes``, ``master_addr`` and
    ``master_port`` and its own ``node_rank`` (0 is the head, which serves HTTP), ``host`` and
    ``accelerator_ids``.
    """

    model_path: str  # path on the node (a GGUF file for llama.cpp)
    served_name: str  # the name clients send as "model"
    host: str  # bind address ("0.0.0.0" or the node address)
    port: int
    vendor: str | None  # "nvidia" | "huawei" | None (CPU)
    accelerator_ids: list[int]  # logical ids on this node (nvidia-smi index, npu-smi logic id)
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    quantization: str | None = None  # registry name: bf16, fp8, w8a8, awq, q4_k_m...
    dtype: str | None = None
    max_model_len: int | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    python: str = "python3"  # interpreter on the node, for module-launched engines
    workdir: str | None = None  # per-instance directory on the node
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    simulator: dict[str, Any] = field(default_factory=dict)  # the engine's job options (ttft_ms, cpu_cores...)
    cpu_cores: list[int] = field(default_factory=list)  # CPU serving: the node's cores this member may use

    @property
    def placement_vendor(self) -> str:
        """``vendor``, or ``"cpu"`` for a placement without accelerators."""
        return self.vendor or "cpu"

    @property
    def is_multinode(self) -> bool:
        """Whether this member belongs to a replica spread over several nodes."""
        return isinstance(self.nnodes, int) and self.nnodes > 1

    @property
    def world_size(self) -> int:
        """``tensor_parallel * pipeline_parallel``: accelerators of the whole replica."""
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def normalized_quantization(self) -> str | None:
        """The quantization in canonical registry spelling (``"BF16"`` -> ``"bf16"``), or ``None``."""
        if not self.quantization or not isinstance(self.quantization, str):
            return None
        return normalize_quantization(self.quantization)


def core_list(cores: Sequence[int]) -> str:
    """CPU ids as ``taskset``/OpenMP write them: ``[0, 1, 2, 3, 6]`` -> ``"0-3,6"``."""
    ids = sorted(set(int(c) for c in cores))
    runs: list[str] = []
    start = prev = None
    for core in ids:
        if prev is not None and core == prev + 1:
            prev = core
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = core
    if start is not None:
        runs.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(runs)


def url_host(host: str) -> str:
    """``host`` as it goes into a URL: a wildcard becomes loopback, IPv6 gets brackets."""
    host = (host or "").strip()
    if host in _WILDCARD_HOSTS:
        return "127.0.0.1" if host != "::" else "[::1]"
    try:
        if isinstance(ipaddress.ip_address(host.strip("[]")), ipaddress.IPv6Address):
            return f"[{host.strip('[]')}]"
    except ValueError:
        pass
    return host


def is_wildcard(host: str | None) -> bool:
    """Whether ``host`` binds every interface (``0.0.0.0``, ``::`` or empty)."""
    return (host or "").strip() in _WILDCARD_HOSTS


def _url(host: str, port: int, path: str) -> str:
    return f"http://{url_host(host)}:{int(port)}{path}"


def env_wrapped(argv: Sequence[str], setenv_files: Sequence[str], cwd: str = "") -> list[str]:
    """``argv`` started through :data:`ENV_WRAPPER_SCRIPT`: source ``setenv_files``, cd, exec."""
    return ["bash", "-c", ENV_WRAPPER_SCRIPT, ENV_WRAPPER_NAME, cwd, *setenv_files, "--", *argv]


def ascend_root(spec: LaunchSpec) -> str:
    """Where CANN and MindIE are installed on the node (``BOOM_ASCEND_ROOT``, default /usr/local/Ascend)."""
    root = (spec.env or {}).get("BOOM_ASCEND_ROOT") or DEFAULT_ASCEND_ROOT
    return root.rstrip("/") or "/"


def cann_setenv_files(spec: LaunchSpec) -> list[str]:
    """The CANN toolkit and NNAL (ATB) ``set_env.sh`` scripts every Ascend engine needs."""
    root = ascend_root(spec)
    return [f"{root}/ascend-toolkit/set_env.sh", f"{root}/nnal/atb/set_env.sh"]
