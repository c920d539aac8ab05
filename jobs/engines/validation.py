"""What an engine refuses in a launch specification: field -> messages, before anything starts.

:class:`EngineChecks` is the half of :class:`jobs.engines.base.Engine` that validates; engines
refine it with ``validate_more`` and their class attributes (vendors, controlled flags and
variables, supported quantizations...). :func:`validate_extra_args` is the ``extra_args`` check
every engine shares. The API's job serializer calls :meth:`EngineChecks.validate` on a draft
specification built from the job (``jobs/api/serializers.py``): one validation path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jobs.engines.spec import _WILDCARD_HOSTS, ACCELERATOR_ENV, LaunchSpec

__all__ = [
    "DEFAULT_CONTROLLED_FLAGS",
    "EngineChecks",
    "MAX_EXTRA_ARG_CHARS",
    "Messages",
    "job_option_messages",
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

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

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



class EngineChecks:
    """The validation half of an engine: :meth:`validate` and the checks it runs, by field."""

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
        if spec.vendor is not None and not ids and spec.vendor in self.vendors:
            add("accelerator_ids", f"{self.label} on {spec.vendor} accelerators needs at least one of them assigned")
        cores = spec.cpu_cores
        if not isinstance(cores, list | tuple) or not all(_is_int(c) and c >= 0 for c in cores):
            add("cpu_cores", "cpu_cores must be a list of non-negative CPU ids")
        elif len(set(cores)) != len(cores):
            add("cpu_cores", "cpu_cores lists a CPU twice")
        elif cores and spec.vendor is not None:
            add("cpu_cores", "CPU cores are assigned only to a CPU-only placement")

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


def job_option_messages(options: Any, known: Mapping[str, tuple[str, type, float | None, float | None]],
                        label: str) -> list[str]:
    """Messages about an engine's job ``options`` (``spec.simulator``) against its ``known`` ones:
    key -> (flag, type, smallest value, largest value or None). Unknown keys are refused."""
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [f"{label} options must be an object"]
    messages = []
    for key, value in options.items():
        if key not in known:
            messages.append(f"unknown {label} option {key!r}; known: {', '.join(known)}")
            continue
        if value is None:
            continue
        _flag, kind, low, high = known[key]
        ok_type = isinstance(value, int | float) if kind is float else isinstance(value, int)
        if isinstance(value, bool) or not ok_type or (kind is float and value != value):
            messages.append(f"{key} must be {'a number' if kind is float else 'an integer'}, not {value!r}")
        elif (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            messages.append(f"{key} must be {bounds}, not {value!r}")
    return messages


def _dtype_value(dtype: str | None) -> str | None:
    if not isinstance(dtype, str):
        return None
    return _DTYPES.get(dtype.strip().lower())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

