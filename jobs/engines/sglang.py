"""SGLang on NVIDIA GPUs: ``python3 -m sglang.launch_server``.

``--enable-metrics`` is always passed: SGLang serves ``/metrics`` only with it. ``--pp-size`` is
passed only when pipeline parallelism is asked for, so that SGLang releases without it still start.

Quantization follows vLLM's reasoning (see :mod:`jobs.engines.vllm`): SGLang detects AWQ, GPTQ and
compressed-tensors checkpoints from ``config.json`` and picks Marlin kernels itself; ``fp8`` gets
``--quantization fp8`` (also quantizes a 16-bit checkpoint on the fly).

Multi-node: every member runs the same command with ``--nnodes``, ``--node-rank`` and
``--dist-init-addr MASTER_ADDR:MASTER_PORT``; only rank 0 serves HTTP.
"""

from __future__ import annotations

from jobs.engines.base import DEFAULT_CONTROLLED_FLAGS, Engine, LaunchSpec, url_host

SGLANG_QUANTIZATION_ARGS: dict[str, tuple[str, ...]] = {"fp8": ("--quantization", "fp8")}


class SglangEngine(Engine):
    """SGLang's OpenAI-compatible server on NVIDIA GPUs."""

    name = "sglang"
    label = "SGLang"
    vendors = frozenset({"nvidia"})
    needs_accelerators = True
    supported_quantizations = frozenset(
        {"fp32", "bf16", "fp16", "fp8", "awq", "gptq", "int8", "w8a8", "w8a8-smoothquant", "w8a16", "w4a16"}
    )
    supports_multinode = True
    controlled_flags = DEFAULT_CONTROLLED_FLAGS | {"--nccl-init-addr"}
    overridable_flags = frozenset({"--quantization", "--dtype", "--context-length"})

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """``python -m sglang.launch_server --model-path MODEL --served-model-name ... EXTRA...``."""
        argv = [
            spec.python,
            "-m",
            "sglang.launch_server",
            "--model-path",
            spec.model_path,
            "--served-model-name",
            spec.served_name,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--tp-size",
            str(spec.tensor_parallel),
        ]
        if spec.pipeline_parallel > 1:
            argv += ["--pp-size", str(spec.pipeline_parallel)]
        if not self.user_sets(spec, "--quantization"):
            argv += list(SGLANG_QUANTIZATION_ARGS.get(spec.normalized_quantization or "", ()))
        argv += self.dtype_args(spec)
        if spec.max_model_len and not self.user_sets(spec, "--context-length"):
            argv += ["--context-length", str(spec.max_model_len)]
        argv.append("--enable-metrics")
        if spec.is_multinode:
            argv += [
                "--nnodes",
                str(spec.nnodes),
                "--node-rank",
                str(spec.node_rank),
                "--dist-init-addr",
                f"{url_host(str(spec.master_addr))}:{spec.master_port}",
            ]
        argv += list(spec.extra_args)
        return argv
