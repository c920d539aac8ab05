"""llama.cpp's ``llama-server`` on a GGUF file: CPU-only nodes, NVIDIA GPUs (CUDA build) or Ascend
NPUs (CANN build).

The binary is ``llama-server`` from PATH unless the job's ``env`` names another one in
``BOOM_LLAMA_SERVER``. ``--metrics`` is always passed (``/metrics`` is off by default). With
accelerators, every layer is offloaded (``-ngl 999``) and llama.cpp splits the layers over all
visible devices by itself; ``extra_args`` may set ``-ngl`` (partial offload) or ``-c`` instead. On
Ascend the command goes through the CANN ``set_env.sh`` wrapper, as vLLM-Ascend's does.

The weight type is the GGUF file's own (``q4_k_m``, ``q8_0``, ``f16``...): there is no quantization
flag. llama.cpp's parser does not take abbreviated flags, so only exact controlled flags are refused.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

from jobs.engines.base import (
    Engine,
    ErrorHint,
    LaunchSpec,
    cann_setenv_files,
    env_wrapped,
)
from models_registry.quantization import QUANTIZATIONS

#: Every GGUF type of the registry, plus ``bf16`` (a BF16 GGUF is valid).
GGUF_QUANTIZATIONS = frozenset({name for name, q in QUANTIZATIONS.items() if q.kind == "gguf"} | {"bf16"})

#: Layers to offload to accelerators: more than any model has, so "all".
ALL_LAYERS = "999"

LLAMACPP_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"failed to open GGUF file '([^']+)'",
        gettext_noop("GGUF model file missing or unreadable on the node: {0}"),
    ),
    ErrorHint.of(
        r"gguf_init_from_\w+[^\n]*(invalid magic[^\n]*|failed to read[^\n]*)",
        gettext_noop("the model file is not a valid GGUF file: {0}"),
    ),
    ErrorHint.of(
        r"(unknown model architecture: '[^']+')",
        gettext_noop("model architecture not supported by this llama.cpp build: {0}"),
    ),
    ErrorHint.of(r"llama_model_load: error loading model: ([^\n]+)",
        gettext_noop("llama.cpp could not load the model: {0}")),
)


class LlamaCppEngine(Engine):
    """llama.cpp's ``llama-server``."""

    name = "llamacpp"
    label = "llama.cpp"
    vendors = frozenset({"nvidia", "huawei", "cpu"})
    needs_accelerators = False
    supported_quantizations = GGUF_QUANTIZATIONS
    supports_multinode = False
    controlled_flags = frozenset(
        {
            "-m",
            "--model",
            "-mu",
            "--model-url",
            "-hf",
            "-hfr",
            "--hf-repo",
            "-hff",
            "--hf-file",
            "--host",
            "--port",
            "-a",
            "--alias",
        }
    )
    allows_abbreviated_flags = False
    overridable_flags = frozenset({"-ngl", "--n-gpu-layers", "--gpu-layers", "-c", "--ctx-size"})
    dtype_flag = None
    hints = LLAMACPP_HINTS

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """``llama-server -m FILE --host H --port P -a NAME --metrics [-ngl 999] [-c N] EXTRA...``."""
        binary = (spec.env or {}).get("BOOM_LLAMA_SERVER") or "llama-server"
        argv = [
            binary,
            "-m",
            spec.model_path,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "-a",
            spec.served_name,
            "--metrics",
        ]
        if spec.vendor is not None and not self.user_sets(spec, "-ngl", "--n-gpu-layers", "--gpu-layers"):
            argv += ["-ngl", ALL_LAYERS]
        if spec.max_model_len and not self.user_sets(spec, "-c", "--ctx-size"):
            argv += ["-c", str(spec.max_model_len)]
        argv += list(spec.extra_args)
        if spec.vendor == "huawei":
            return env_wrapped(argv, cann_setenv_files(spec))
        return argv

    def validate_more(self, spec: LaunchSpec, add) -> None:
        """A GGUF file and no pipeline parallelism (``dtype`` is ignored: the GGUF file has its types)."""
        if isinstance(spec.model_path, str) and spec.model_path and not spec.model_path.lower().endswith(".gguf"):
            add("model_path", "llama.cpp serves a GGUF file: model_path must end in .gguf")
        if spec.pipeline_parallel != 1:
            add(
                "pipeline_parallel",
                "llama.cpp splits the layers over all assigned GPUs by itself: keep pipeline_parallel at 1",
            )
