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

The launch specification and the node-side helpers are in :mod:`jobs.engines.spec`, the checks in
:mod:`jobs.engines.validation`, the log causes in :mod:`jobs.engines.hints`; their public names are
re-exported here. See ``docs/engines.md`` for the command line each engine gets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from jobs.engines.hints import COMMON_HINTS, ErrorHint, clip
from jobs.engines.metrics import EngineSnapshot
from jobs.engines.metrics import parse_metrics as _parse_metrics
from jobs.engines.spec import (
    ACCELERATOR_ENV,
    CONSOLE_ENV,
    ENV_WRAPPER_SCRIPT,
    LaunchSpec,
    _url,
    ascend_root,
    cann_setenv_files,
    env_wrapped,
    is_wildcard,
    url_host,
)
from jobs.engines.validation import (
    DEFAULT_CONTROLLED_FLAGS,
    MAX_EXTRA_ARG_CHARS,
    EngineChecks,
    Messages,
    _dtype_value,
    _token_flag_names,
    validate_extra_args,
)

__all__ = [
    "ACCELERATOR_ENV",
    "CONSOLE_ENV",
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


class Engine(EngineChecks, ABC):
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
    controlled_env: ClassVar[frozenset[str]] = CONSOLE_ENV
    #: Whether the engine loads the model version's weights. When not (the simulator), the version's
    #: status, quantization and memory estimate do not matter: any version will do.
    loads_weights: ClassVar[bool] = True
    #: Whether a placement without accelerators is CPU serving: it takes ``options["cpu_cores"]`` cores
    #: of the node (disjoint from the other CPU-serving replicas there, ``spec.cpu_cores``) and needs
    #: the weights plus ``options["kv_cache_gib"]`` of the node's free memory (``jobs/placement.py``).
    cpu_serving: ClassVar[bool] = False
    #: Job ``options`` this engine reads besides the generic ones (``python``, ``served_name``...):
    #: key -> (flag, type, smallest value, largest value or None). They reach the engine as
    #: ``spec.simulator`` and its ``validate_more`` checks them.
    job_options: ClassVar[Mapping[str, tuple[str, type, float | None, float | None]]] = {}
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
                return clip(cause, 300)
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

