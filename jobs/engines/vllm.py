"""vLLM on NVIDIA GPUs: ``vllm serve``, started as ``python -m vllm.entrypoints.cli.main serve``.

The module form is the ``vllm`` console script run by ``spec.python``, so the engine runs under the
interpreter (virtual environment) configured for the node even when its ``bin/`` is not on PATH.

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

from typing import ClassVar

from django.utils.translation import gettext_noop

from jobs.engines.base import DEFAULT_CONTROLLED_FLAGS, Engine, ErrorHint, LaunchSpec

#: Registry quantization -> the flags vLLM needs; absent means "detected from the checkpoint".
VLLM_QUANTIZATION_ARGS: dict[str, tuple[str, ...]] = {"fp8": ("--quantization", "fp8")}

#: Hints shared by vLLM and vLLM-Ascend.
VLLM_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"No module named '?vllm\.entrypoints\.cli",
        gettext_noop("this vLLM is too old for `vllm serve` as a module (vLLM 0.8 or newer is needed)"),
    ),
    ErrorHint.of(
        r"unrecognized arguments:[^\n]*?(--(?:nnodes|node-rank|master-addr|master-port|headless))",
        gettext_noop("this vLLM does not know {0}: multi-node replicas need vLLM 0.11 or newer"),
    ),
)


class VllmEngine(Engine):
    """vLLM's OpenAI-compatible server on NVIDIA GPUs."""

    name = "vllm"
    label = "vLLM"
    vendors = frozenset({"nvidia"})
    needs_accelerators = True
    supported_quantizations = frozenset(
        {"fp32", "bf16", "fp16", "fp8", "awq", "gptq", "int8", "w8a8", "w8a8-smoothquant", "w8a16", "w4a16"}
    )
    supports_multinode = True
    controlled_flags = DEFAULT_CONTROLLED_FLAGS
    overridable_flags = frozenset({"--quantization", "-q", "--dtype", "--max-model-len"})
    hints = VLLM_HINTS
    #: The module ``python -m`` runs (the ``vllm`` console script's).
    module: ClassVar[str] = "vllm.entrypoints.cli.main"
    quantization_args: ClassVar[dict[str, tuple[str, ...]]] = VLLM_QUANTIZATION_ARGS

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """``python -m vllm.entrypoints.cli.main serve MODEL --served-model-name ... EXTRA...``."""
        return self.serve_argv(spec)

    def serve_argv(self, spec: LaunchSpec) -> list[str]:
        """The ``vllm serve`` command line, shared with vLLM-Ascend."""
        argv = [
            spec.python,
            "-m",
            self.module,
            "serve",
            spec.model_path,
            "--served-model-name",
            spec.served_name,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
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
