"""What every serving engine adapter provides, and the launch specification they all read.

An engine adapter is a pure object: it never opens a socket, a file or a process. The job services
build a :class:`LaunchSpec` for one member of one replica (the node it runs on, the accelerators
allocated to it, the port...), ask the engine to :meth:`Engine.validate` it, and hand the executor
what the engine returns:

* :meth:`Engine.build_argv` -- the command as a list of argv tokens. It is never joined into a shell
  line: user values (``extra_args``, paths, names) stay separate tokens. Two engines start through
  ``bash -c`` with a *constant* script (:data:`ENV_WRAPPER_SCRIPT`) that sources the Ascend CANN
  ``set_env.sh`` files and then ``exec``\\ s the engine; the file names and the engine's argv reach
  that script as positional parameters, never inside the script text.
* :meth:`Engine.build_env` -- variables to add to the process environment (visible accelerators
  first of all).
* :meth:`Engine.prepare_files` -- files to write into ``spec.workdir`` before the start (MindIE's
  ``config.json``), by name relative to the workdir.
* :meth:`Engine.readiness_url` / :meth:`Engine.metrics_url`, and :meth:`Engine.parse_metrics`, which
  turns a scrape into :class:`~jobs.engines.metrics.EngineSnapshot`.
* :meth:`Engine.error_hints` -- a short cause for ``last_exit_reason`` read from a log tail.

See ``docs/engines.md`` for the command line each engine gets.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jobs.engines.metrics import EngineSnapshot
from jobs.engines.metrics import parse_metrics as _parse_metrics
from models_registry.quantization import normalize as normalize_quantization

__all__ = [
    "ACCELERATOR_ENV",
    "COMMON_HINTS",
    "DEFAULT_CONTROLLED_FLAGS",
    "ENV_WRAPPER_SCRIPT",
    "Engine",
    "ErrorHint",
    "LaunchSpec",
    "MAX_EXTRA_ARG_CHARS",
    "Messages",
    "ascend_root",
    "cann_setenv_files",
    "env_wrapped",
    "is_wildcard",
    "url_host",
    "validate_extra_args",
]

#: Field name -> messages, as :meth:`Engine.validate` returns them (empty when the spec is fine).
Messages = dict[str, list[str]]

#: Longest accepted ``extra_args`` token.
MAX_EXTRA_ARG_CHARS = 4096
#: Most ``extra_args`` tokens accepted.
MAX_EXTRA_ARGS = 256
#: Longest accepted environment value.
MAX_ENV_VALUE_CHARS = 32768

#: The variable that restricts a process to the accelerators allocated to it, per vendor.
ACCELERATOR_ENV = {"nvidia": "CUDA_VISIBLE_DEVICES", "huawei": "ASCEND_RT_VISIBLE_DEVICES"}

#: Flags the console sets itself for the argparse-based engines; ``validate_extra_args`` refuses
#: them (and their ``--flag=value`` forms) unless an engine passes its own list.
DEFAULT_CONTROLLED_FLAGS = frozenset(
    {
        "--host",
        "--port",
        "--model",
        "--model-path",
        "--served-model-name",
        "--tensor-parallel-size",
        "-tp",
        "--tp-size",
        "--tp",
        "--pipeline-parallel-size",
        "-pp",
        "--pp-size",
        "--nnodes",
        "--node-rank",
        "--master-addr",
        "--master-port",
        "--headless",
        "--dist-init-addr",
    }
)

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

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
# Values of ``--dtype`` accepted by vLLM and SGLang, and the spellings the console maps onto them.
_DTYPES = {
    "auto": "auto",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "f16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "f32": "float32",
    "float32": "float32",
    "float": "float32",
}


# ---------------------------------------------------------------------------------------------------
# The launch specification


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
    simulator: dict[str, Any] = field(default_factory=dict)  # simulator options (ttft_ms, ...)

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


@dataclass(frozen=True)
class ErrorHint:
    """A log pattern and the short cause it stands for (``{0}``, ``{1}``... are the groups)."""

    pattern: re.Pattern[str]
    cause: str

    @classmethod
    def of(cls, regex: str, cause: str, flags: int = re.IGNORECASE) -> ErrorHint:
        """Compile ``regex`` (case-insensitive, multi-line by default)."""
        return cls(re.compile(regex, flags | re.MULTILINE), cause)

    def explain(self, text: str) -> str | None:
        """The cause when the pattern occurs in ``text``, with its groups filled in."""
        match = self.pattern.search(text)
        if match is None:
            return None
        groups = [_clip(group or "", 160) for group in match.groups()]
        return self.cause.format(*groups)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_OOM_CAUSE = (
    "accelerator out of memory ({0}): lower max_model_len or the batch size, or give the replica more or "
    "larger accelerators"
)

#: Causes every engine recognises, most specific first. Engines put their own before these.
COMMON_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"No module named '?(vllm_ascend|vllm|sglang|torch_npu|torch|jobs)\b",
        "engine not installed for this interpreter: no Python module '{0}'",
    ),
    ErrorHint.of(r"No module named '?([\w.]+)'?", "missing Python module '{0}' on the node"),
    ErrorHint.of(r"(?:^|\s)(\S+): (?:command )?not found\s*$", "engine executable not found on the node: {0}"),
    ErrorHint.of(
        r"(?:FileNotFoundError|No such file or directory)[^\n]*?: '([^']*(?:llama-server|"
        r"mindieservice_daemon|python[0-9.]*))'",
        "engine executable not found on the node: {0}",
    ),
    ErrorHint.of(
        r"(CUDA out of memory|NPU out of memory|CUDA error: out of memory|cudaMalloc failed: out of memory|"
        r"failed to allocate \S+ buffer|Not enough memory)",
        _OOM_CAUSE,
    ),
    ErrorHint.of(r"(OutOfMemoryError)", _OOM_CAUSE),
    ErrorHint.of(
        r"(No available memory for the cache blocks|larger than the available KV cache memory|"
        r"is larger than the maximum number of tokens that can be stored in KV cache)",
        "not enough accelerator memory left for the KV cache ({0}): lower max_model_len or raise "
        "the memory fraction the engine may use",
    ),
    ErrorHint.of(
        r"bind on address \('[^']*', (\d+)\)[^\n]*address already in use",
        "port {0} already in use: another process listens on it",
    ),
    ErrorHint.of(r"(Address already in use)", "port already in use: another process listens on it"),
    ErrorHint.of(
        r"couldn't bind HTTP server socket[^\n]*?port: (\d+)",
        "port already in use ({0}): another process listens on it",
    ),
    ErrorHint.of(
        r"(/\S+) does not appear to have a file named (\S+?)\.?(?:\s|$)",
        "model path incomplete on the node: {0} has no {1}",
    ),
    ErrorHint.of(
        r"(?:Invalid repository ID or local directory specified|Repo id must be in the form)"
        r"[^\n]*?[\s'\"](/[^'\"\s]+)",
        "model path missing on the node: {0}",
    ),
    ErrorHint.of(
        r"FileNotFoundError: \[Errno 2\] No such file or directory: '([^']+)'",
        "file or directory not found on the node: {0} (check the model path)",
    ),
    ErrorHint.of(
        r"(Unknown quantization method: \S+|Quantization method specified in the model config "
        r"\(\S+\) does not match|quantization method \S+ is not supported for the current GPU|"
        r"Cannot find the config file for \w+)",
        "unsupported quantization: {0}",
    ),
    ErrorHint.of(r"unrecognized arguments: ([^\n]+)", "the engine rejected argument(s): {0}"),
    ErrorHint.of(r"error: (?:invalid argument|unknown argument): ([^\n]+)", "the engine rejected argument: {0}"),
    ErrorHint.of(
        r"(pass the argument `trust_remote_code=True`|contains custom code which must be executed)",
        "the model needs custom code: add --trust-remote-code to extra_args",
    ),
    ErrorHint.of(
        r"(User-specified max_model_len \(\d+\) is greater than[^\n.]*)",
        "max_model_len too large for this model: {0}",
    ),
    ErrorHint.of(
        r"Model architectures? \[?'?([\w, ']+?)'?\]? (?:are|is) not supported",
        "model architecture not supported by this engine version: {0}",
    ),
    ErrorHint.of(
        r"(Found no NVIDIA driver|No CUDA GPUs are available|no CUDA-capable device|"
        r"CUDA driver version is insufficient)",
        "no usable GPU visible to the engine: {0}",
    ),
    ErrorHint.of(r"(NCCL error[^\n]*)", "collective communication failed: {0}"),
    ErrorHint.of(
        r"(DistNetworkError[^\n]*|TCPStore[^\n]*(?:Connection refused|timed out|timeout)[^\n]*)",
        "multi-node rendezvous with the head node failed (check master_addr, master_port and the firewall): {0}",
    ),
    ErrorHint.of(r"(PermissionError: [^\n]+|Permission denied[^\n]*)", "permission denied: {0}"),
)


# ---------------------------------------------------------------------------------------------------
# extra_args


def validate_extra_args(
    tokens: Any,
    controlled: Iterable[str] | None = None,
    *,
    allow_abbrev: bool = True,
) -> list[str]:
    """Messages about ``extra_args``; empty when they can be passed to the engine as they are.

    ``tokens`` must be a list (or tuple) of strings, each at most :data:`MAX_EXTRA_ARG_CHARS`
    characters and without NUL. A token naming a flag the console sets itself (``controlled``,
    :data:`DEFAULT_CONTROLLED_FLAGS` by default), alone or as ``--flag=value``, is refused with a
    message naming it; with ``allow_abbrev`` (argparse engines), so is an unambiguous abbreviation
    of such a flag (``--serv`` for ``--served-model-name``), which argparse would accept.

    Shell metacharacters are *not* refused: the tokens become separate argv entries and no shell
    ever reads them, so ``;``, ``$(...)`` or quotes reach the engine literally.
    """
    if isinstance(tokens, str | bytes) or not isinstance(tokens, list | tuple):
        return ["extra_args must be a list of strings (one argv token per item)"]
    if len(tokens) > MAX_EXTRA_ARGS:
        return [f"extra_args has {len(tokens)} tokens; at most {MAX_EXTRA_ARGS} are accepted"]
    flags = frozenset(DEFAULT_CONTROLLED_FLAGS if controlled is None else controlled)
    messages = []
    for index, token in enumerate(tokens):
        where = f"extra_args[{index}]"
        if not isinstance(token, str):
            messages.append(f"{where} must be a string, not {type(token).__name__}")
            continue
        if len(token) > MAX_EXTRA_ARG_CHARS:
            messages.append(f"{where} is {len(token)} characters long; at most {MAX_EXTRA_ARG_CHARS}")
        if "\x00" in token:
            messages.append(f"{where} contains a NUL character")
        flag = _controlled_flag(token, flags, allow_abbrev)
        if flag is not None:
            shown = token.split("=", 1)[0]
            named = flag if shown == flag else f"{shown} (an abbreviation of {flag})"
            messages.append(f"{where}: {named} is set by the console from the job and cannot be overridden")
    return messages


def _controlled_flag(token: str, flags: frozenset[str], allow_abbrev: bool) -> str | None:
    """The controlled flag ``token`` names (exactly, with ``=value``, or abbreviated), or ``None``."""
    if not token.startswith("-") or token in ("-", "--"):
        return None
    name = token.split("=", 1)[0]
    if name in flags:
        return name
    if allow_abbrev and name.startswith("--") and len(name) > 3:
        candidates = [flag for flag in flags if flag.startswith("--") and flag.startswith(name)]
        if candidates:
            return sorted(candidates)[0]
    return None


def _token_flag_names(tokens: Sequence[str]) -> set[str]:
    """Flag names used in ``tokens`` (``--x=1`` counts as ``--x``)."""
    return {token.split("=", 1)[0] for token in tokens if isinstance(token, str) and token.startswith("-")}


# ---------------------------------------------------------------------------------------------------
# The engine base class


class Engine(ABC):
    """A serving engine adapter. Subclasses set the class attributes and :meth:`build_argv`."""

    #: Stored ``engine`` value of a job: ``"vllm"``, ``"vllm-ascend"``...
    name: ClassVar[str]
    #: Human name shown in the UI and API.
    label: ClassVar[str]
    #: Placement: vendors whose nodes may run it (``"cpu"`` for nodes without accelerators).
    vendors: ClassVar[frozenset[str]]
    #: Whether a member needs at least one accelerator.
    needs_accelerators: ClassVar[bool] = True
    #: Registry quantizations it can serve; ``None`` means any.
    supported_quantizations: ClassVar[frozenset[str] | None] = None
    #: Whether a replica may span several nodes.
    supports_multinode: ClassVar[bool] = False
    readiness_path: ClassVar[str] = "/health"
    metrics_path: ClassVar[str] = "/metrics"
    #: Flags the console sets: refused in ``extra_args``.
    controlled_flags: ClassVar[frozenset[str]] = DEFAULT_CONTROLLED_FLAGS
    #: Whether the engine's parser accepts abbreviated long flags (argparse does).
    allows_abbreviated_flags: ClassVar[bool] = True
    #: Flags the console sets by default but leaves out when ``extra_args`` sets them.
    overridable_flags: ClassVar[frozenset[str]] = frozenset()
    #: Environment variables the console sets and ``spec.env`` may not.
    controlled_env: ClassVar[frozenset[str]] = frozenset(ACCELERATOR_ENV.values())
    #: Engine-specific log causes, tried before :data:`COMMON_HINTS`.
    hints: ClassVar[tuple[ErrorHint, ...]] = ()
    #: Whether a multi-node member needs ``master_port``.
    needs_master_port: ClassVar[bool] = True
    #: The flag that takes ``spec.dtype`` (``None``: the engine has no dtype setting).
    dtype_flag: ClassVar[str | None] = "--dtype"

    # -- what to run ---------------------------------------------------------------------------------

    @abstractmethod
    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """The command to start, as argv tokens (``spec.extra_args`` included, each one token)."""

    def build_env(self, spec: LaunchSpec) -> dict[str, str]:
        """Variables to add to the engine's environment: ``spec.env``, then the accelerator list.

        NVIDIA: ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (so that CUDA numbers
        GPUs as nvidia-smi does); Huawei: ``ASCEND_RT_VISIBLE_DEVICES``; CPU: an empty
        ``CUDA_VISIBLE_DEVICES``, so that a CUDA build cannot take a GPU the console thinks is free.
        The accelerator variables come last: ``spec.env`` cannot change them.
        """
        env = {str(key): str(value) for key, value in (spec.env or {}).items()}
        env.update(self.accelerator_env(spec))
        return env

    def accelerator_env(self, spec: LaunchSpec) -> dict[str, str]:
        """The variables that restrict the process to ``spec.accelerator_ids``."""
        ids = ",".join(str(i) for i in spec.accelerator_ids)
        if spec.vendor == "nvidia":
            return {"CUDA_VISIBLE_DEVICES": ids, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        if spec.vendor == "huawei":
            return {"ASCEND_RT_VISIBLE_DEVICES": ids}
        return {"CUDA_VISIBLE_DEVICES": ""}

    def prepare_files(self, spec: LaunchSpec) -> dict[str, str]:
        """Files to write into ``spec.workdir`` before the start, by relative name; none by default."""
        return {}

    def serves_http(self, spec: LaunchSpec) -> bool:
        """Whether this member answers HTTP (readiness, metrics); only the head of a multi-node replica."""
        return spec.node_rank == 0

    # -- where to look -------------------------------------------------------------------------------

    def readiness_url(self, host: str, port: int) -> str:
        """URL that answers 200 once the engine serves (a wildcard ``host`` means this machine)."""
        return _url(host, port, self.readiness_path)

    def metrics_url(self, host: str, port: int) -> str:
        """URL of the engine's Prometheus exposition."""
        return _url(host, port, self.metrics_path)

    def parse_metrics(self, text: str, time: float) -> EngineSnapshot:
        """Normalize one scrape (delegates to :func:`jobs.engines.metrics.parse_metrics`)."""
        return _parse_metrics(text, time)

    # -- checks --------------------------------------------------------------------------------------

    def validate(self, spec: LaunchSpec) -> Messages:
        """Field -> messages for everything in ``spec`` this engine cannot run; ``{}`` when fine."""
        errors: Messages = {}

        def add(field_name: str, message: str) -> None:
            errors.setdefault(field_name, []).append(message)

        self._validate_identity(spec, add)
        self._validate_placement(spec, add)
        self._validate_parallelism(spec, add)
        self._validate_multinode(spec, add)
        self._validate_model_options(spec, add)
        for message in self.validate_extra_args(spec.extra_args):
            add("extra_args", message)
        self._validate_env(spec, add)
        self.validate_more(spec, add)
        return errors

    def validate_extra_args(self, tokens: Any) -> list[str]:
        """:func:`validate_extra_args` with this engine's controlled flags."""
        return validate_extra_args(tokens, self.controlled_flags, allow_abbrev=self.allows_abbreviated_flags)

    def validate_more(self, spec: LaunchSpec, add: Any) -> None:
        """Engine-specific checks; ``add(field, message)`` records a problem. None by default."""
        return None

    def _validate_identity(self, spec: LaunchSpec, add: Any) -> None:
        for name, value in (("model_path", spec.model_path), ("served_name", spec.served_name)):
            if not isinstance(value, str) or not value.strip():
                add(name, f"{name} must not be empty")
            elif "\x00" in value or any(ch in value for ch in "\r\n"):
                add(name, f"{name} must not contain NUL or line breaks")
            elif value.startswith("-"):
                add(name, f"{name} must not start with '-' (the engine would read it as a flag)")
            elif len(value) > MAX_EXTRA_ARG_CHARS:
                add(name, f"{name} is longer than {MAX_EXTRA_ARG_CHARS} characters")
        if not isinstance(spec.host, str) or not spec.host or spec.host.startswith("-"):
            add("host", "host must be an address to bind, such as 0.0.0.0 or the node's address")
        elif any(ch.isspace() for ch in spec.host) or "\x00" in spec.host:
            add("host", "host must not contain spaces")
        if not _is_int(spec.port) or not 1 <= spec.port <= 65535:
            add("port", f"port must be an integer from 1 to 65535, not {spec.port!r}")
        if not isinstance(spec.python, str) or not spec.python or spec.python.startswith("-"):
            add("python", "python must name the interpreter on the node")

    def _validate_placement(self, spec: LaunchSpec, add: Any) -> None:
        vendor = spec.placement_vendor
        if spec.vendor not in (None, *ACCELERATOR_ENV):
            add("vendor", f"unknown vendor {spec.vendor!r}; expected nvidia, huawei or none (CPU)")
            return
        if vendor not in self.vendors:
            where = {"cpu": "a CPU-only placement", "nvidia": "NVIDIA GPUs", "huawei": "Huawei Ascend NPUs"}
            allowed = ", ".join(where[v] for v in sorted(self.vendors))
            add("vendor", f"{self.label} runs on {allowed}; it cannot run on {where[vendor]}")
        ids = spec.accelerator_ids
        if not isinstance(ids, list | tuple) or not all(_is_int(i) and i >= 0 for i in ids):
            add("accelerator_ids", "accelerator_ids must be a list of non-negative integers")
            return
        if len(set(ids)) != len(ids):
            add("accelerator_ids", "accelerator_ids lists an accelerator twice")
        if spec.vendor is None and ids:
            add("accelerator_ids", "a CPU-only placement has no accelerators to assign")
        if self.needs_accelerators and not ids:
            add("accelerator_ids", f"{self.label} needs at least one accelerator on each node")

    def _validate_parallelism(self, spec: LaunchSpec, add: Any) -> None:
        tp, pp = spec.tensor_parallel, spec.pipeline_parallel
        ok = True
        for name, value in (("tensor_parallel", tp), ("pipeline_parallel", pp)):
            if not _is_int(value) or value < 1:
                add(name, f"{name} must be an integer of at least 1, not {value!r}")
                ok = False
        if not ok or not _is_int(spec.nnodes) or spec.nnodes < 1:
            return
        ids = spec.accelerator_ids if isinstance(spec.accelerator_ids, list | tuple) else []
        if spec.vendor is None:
            if tp * pp > 1:
                add("tensor_parallel", "a CPU-only placement runs one process: keep tensor and pipeline parallel at 1")
            return
        world = tp * pp
        if world % spec.nnodes:
            add(
                "tensor_parallel",
                f"tensor_parallel × pipeline_parallel = {world} does not split evenly over {spec.nnodes} nodes",
            )
            return
        per_node = world // spec.nnodes
        if per_node > len(ids):
            over = f" over {spec.nnodes} nodes" if spec.nnodes > 1 else ""
            add(
                "tensor_parallel",
                f"tensor_parallel × pipeline_parallel = {world}{over} needs {per_node} accelerators on this "
                f"node, but {len(ids)} {'is' if len(ids) == 1 else 'are'} assigned",
            )

    def _validate_multinode(self, spec: LaunchSpec, add: Any) -> None:
        if not _is_int(spec.nnodes) or spec.nnodes < 1:
            add("nnodes", f"nnodes must be an integer of at least 1, not {spec.nnodes!r}")
            return
        if not _is_int(spec.node_rank) or not 0 <= spec.node_rank < spec.nnodes:
            add("node_rank", f"node_rank must be from 0 to {spec.nnodes - 1}, not {spec.node_rank!r}")
        if spec.nnodes == 1:
            return
        if not self.supports_multinode:
            add("nnodes", f"{self.label} cannot spread one replica over several nodes")
            return
        if not isinstance(spec.master_addr, str) or not spec.master_addr.strip() or spec.master_addr.startswith("-"):
            add("master_addr", "a multi-node replica needs master_addr, the head node's address")
        elif spec.master_addr in _WILDCARD_HOSTS:
            add("master_addr", "master_addr must be the head node's reachable address, not a wildcard")
        if self.needs_master_port and (not _is_int(spec.master_port) or not 1 <= spec.master_port <= 65535):
            add("master_port", "a multi-node replica needs master_port, a free port on the head node")

    def _validate_model_options(self, spec: LaunchSpec, add: Any) -> None:
        quantization = spec.quantization
        if quantization is not None and (not isinstance(quantization, str) or not quantization.strip()):
            add("quantization", "quantization must be a registry name such as bf16, fp8, w8a8 or awq")
        elif quantization is not None and self.supported_quantizations is not None:
            canonical = spec.normalized_quantization
            if canonical not in self.supported_quantizations:
                supported = ", ".join(sorted(self.supported_quantizations))
                add("quantization", f"{self.label} cannot serve {quantization!r} weights; it serves: {supported}")
        if spec.dtype is not None and self.dtype_flag is not None and _dtype_value(spec.dtype) is None:
            add("dtype", f"unknown dtype {spec.dtype!r}; use auto, bfloat16, float16 or float32")
        if spec.max_model_len is not None and (not _is_int(spec.max_model_len) or spec.max_model_len < 1):
            add("max_model_len", f"max_model_len must be a positive integer, not {spec.max_model_len!r}")

    def _validate_env(self, spec: LaunchSpec, add: Any) -> None:
        if not isinstance(spec.env, Mapping):
            add("env", "env must be an object of NAME: value strings")
            return
        for key, value in spec.env.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                add("env", f"{key!r} is not a valid environment variable name")
            elif key in self.controlled_env:
                add("env", f"{key} is set by the console from the allocated accelerators and job")
            if not isinstance(value, str):
                add("env", f"{key}: the value must be a string, not {type(value).__name__}")
            elif "\x00" in value or len(value) > MAX_ENV_VALUE_CHARS:
                add("env", f"{key}: the value must have no NUL and at most {MAX_ENV_VALUE_CHARS} characters")

    # -- after a failure -----------------------------------------------------------------------------

    def error_hints(self, log_tail: str) -> str | None:
        """A short cause for ``last_exit_reason`` recognised in ``log_tail``, or ``None``.

        The engine's own patterns are tried first, then :data:`COMMON_HINTS` (out of memory, port in
        use, model path missing, unsupported quantization, engine not installed...).
        """
        if not log_tail:
            return None
        for hint in (*self.hints, *COMMON_HINTS):
            cause = hint.explain(log_tail)
            if cause is not None:
                return _clip(cause, 300)
        return None

    # -- helpers for subclasses ----------------------------------------------------------------------

    def user_sets(self, spec: LaunchSpec, *flags: str) -> bool:
        """Whether ``spec.extra_args`` sets one of ``flags`` (then the console's default is left out)."""
        return bool(_token_flag_names(spec.extra_args or []) & set(flags))

    def dtype_args(self, spec: LaunchSpec, *aliases: str) -> list[str]:
        """``[dtype_flag, value]`` for ``spec.dtype`` unless ``extra_args`` sets it."""
        value = _dtype_value(spec.dtype)
        if value is None or self.dtype_flag is None or self.user_sets(spec, self.dtype_flag, *aliases):
            return []
        return [self.dtype_flag, value]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _dtype_value(dtype: str | None) -> str | None:
    if not isinstance(dtype, str):
        return None
    return _DTYPES.get(dtype.strip().lower())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
