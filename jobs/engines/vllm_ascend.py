"""vLLM-Ascend on Huawei Ascend NPUs (Atlas 800I A2, 300I Duo...): vLLM with the vllm-ascend plugin.

The command is vLLM's (see :mod:`jobs.engines.vllm`), started through the constant
:data:`~jobs.engines.base.ENV_WRAPPER_SCRIPT`, which sources the CANN toolkit's and NNAL's
``set_env.sh`` (``LD_LIBRARY_PATH``, ``ASCEND_*``...) before it ``exec``\\ s vLLM: a non-interactive
SSH session does not read the ``~/.bashrc`` where the CANN installers put those lines.

Quantization: msModelSlim checkpoints (W8A8, W8A8_DYNAMIC, W4A16, W4A8_DYNAMIC, W8A16, with a
``quant_model_description*.json`` beside the weights) are served with ``--quantization ascend``
(vllm-ascend's quantization guide). A checkpoint made by LLM-Compressor (compressed-tensors) needs
no flag: give ``--quantization compressed-tensors`` in ``extra_args`` and the console leaves its own
out.

Devices: ``ASCEND_RT_VISIBLE_DEVICES``. Multi-node members also get ``HCCL_IF_IP`` (this node's
address, when ``spec.host`` is one); the network interface variables (``GLOO_SOCKET_IFNAME``,
``TP_SOCKET_IFNAME``, ``HCCL_SOCKET_IFNAME``) depend on the node's NIC names and come from the job's
``env``.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

from jobs.engines.base import (
    CONSOLE_ENV,
    ErrorHint,
    LaunchSpec,
    cann_setenv_files,
    env_wrapped,
    is_wildcard,
)
from jobs.engines.vllm import VLLM_HINTS, VllmEngine

#: Registry quantizations made by msModelSlim, all served by vllm-ascend's ``ascend`` method.
ASCEND_QUANTIZED = ("w8a8", "w8a8-smoothquant", "w8a16", "w4a16", "w4a8")

ASCEND_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"Unknown quantization method: ascend",
        gettext_noop("--quantization ascend is unknown to this vLLM: is the vllm-ascend plugin installed "
        "(same version as vllm) for this interpreter?"),
    ),
    ErrorHint.of(
        r"(lib(?:ascendcl|hccl|acl_op_compiler|atb|opapi|runtime)\S*\.so[^\n]*cannot open shared object file)",
        gettext_noop("CANN libraries not found ({0}): set BOOM_ASCEND_ROOT to the CANN install root"),
    ),
    ErrorHint.of(
        r"((?:HCCL|hccl)[^\n]*(?:error|fail|timeout|time out)[^\n]*)",
        gettext_noop("HCCL (NPU collective communication) failed: {0}; check HCCL_IF_IP, HCCL_SOCKET_IFNAME and "
        "the NPU network (hccn_tool)"),
    ),
)


class VllmAscendEngine(VllmEngine):
    """vLLM with the vllm-ascend plugin, on Huawei Ascend NPUs."""

    name = "vllm-ascend"
    label = "vLLM-Ascend"
    vendors = frozenset({"huawei"})
    needs_accelerators = True
    cpu_serving = False
    job_options = {}
    controlled_env = CONSOLE_ENV
    supported_quantizations = frozenset({"bf16", "fp16", *ASCEND_QUANTIZED})
    quantization_args = {name: ("--quantization", "ascend") for name in ASCEND_QUANTIZED}
    hints = (*ASCEND_HINTS, *VLLM_HINTS)

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """``bash -c WRAPPER boom-engine-env '' SET_ENV... -- python -m vllm.entrypoints.openai.api_server ...``
        (``vllm.entrypoints.cli.main serve`` for the members of a multi-node replica)."""
        return env_wrapped(self.serve_argv(spec), cann_setenv_files(spec))

    def build_env(self, spec: LaunchSpec) -> dict[str, str]:
        """``ASCEND_RT_VISIBLE_DEVICES``; multi-node members also ``HCCL_IF_IP`` unless ``env`` sets it."""
        env = super().build_env(spec)
        if spec.is_multinode and not is_wildcard(spec.host):
            env.setdefault("HCCL_IF_IP", spec.host)
        return env
