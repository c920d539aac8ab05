"""Log patterns and the short causes they stand for: what ``Engine.error_hints`` recognises."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.translation import gettext_noop

__all__ = ["COMMON_HINTS", "ErrorHint", "clip"]


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
        groups = [clip(group or "", 160) for group in match.groups()]
        return self.cause.format(*groups)


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_OOM_CAUSE = (
    gettext_noop("accelerator out of memory ({0}): lower max_model_len or the batch size, or give the replica more or "
    "larger accelerators")
)

#: Causes every engine recognises, most specific first. Engines put their own before these.
COMMON_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"No module named '?(vllm_ascend|vllm|sglang|torch_npu|torch|jobs)\b",
        gettext_noop("engine not installed for this interpreter: no Python module '{0}'"),
    ),
    ErrorHint.of(r"No module named '?([\w.]+)'?", gettext_noop("missing Python module '{0}' on the node")),
    ErrorHint.of(r"(?:^|\s)(\S+): (?:command )?not found\s*$",
        gettext_noop("engine executable not found on the node: {0}")),
    ErrorHint.of(
        r"(?:FileNotFoundError|No such file or directory)[^\n]*?: '([^']*(?:llama-server|"
        r"mindieservice_daemon|python[0-9.]*))'",
        gettext_noop("engine executable not found on the node: {0}"),
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
        gettext_noop("not enough accelerator memory left for the KV cache ({0}): lower max_model_len or raise "
        "the memory fraction the engine may use"),
    ),
    ErrorHint.of(
        r"bind on address \('[^']*', (\d+)\)[^\n]*address already in use",
        gettext_noop("port {0} already in use: another process listens on it"),
    ),
    ErrorHint.of(r"(Address already in use)", gettext_noop("port already in use: another process listens on it")),
    ErrorHint.of(
        r"couldn't bind HTTP server socket[^\n]*?port: (\d+)",
        gettext_noop("port already in use ({0}): another process listens on it"),
    ),
    ErrorHint.of(
        r"(/\S+) does not appear to have a file named (\S+?)\.?(?:\s|$)",
        gettext_noop("model path incomplete on the node: {0} has no {1}"),
    ),
    ErrorHint.of(
        r"(?:Invalid repository ID or local directory specified|Repo id must be in the form)"
        r"[^\n]*?[\s'\"](/[^'\"\s]+)",
        gettext_noop("model path missing on the node: {0}"),
    ),
    ErrorHint.of(
        r"FileNotFoundError: \[Errno 2\] No such file or directory: '([^']+)'",
        gettext_noop("file or directory not found on the node: {0} (check the model path)"),
    ),
    ErrorHint.of(
        r"(Unknown quantization method: \S+|Quantization method specified in the model config "
        r"\(\S+\) does not match|quantization method \S+ is not supported for the current GPU|"
        r"Cannot find the config file for \w+)",
        gettext_noop("unsupported quantization: {0}"),
    ),
    ErrorHint.of(r"unrecognized arguments: ([^\n]+)", gettext_noop("the engine rejected argument(s): {0}")),
    ErrorHint.of(r"error: (?:invalid argument|unknown argument): ([^\n]+)",
        gettext_noop("the engine rejected argument: {0}")),
    ErrorHint.of(
        r"(pass the argument `trust_remote_code=True`|contains custom code which must be executed)",
        gettext_noop("the model needs custom code: add --trust-remote-code to extra_args"),
    ),
    ErrorHint.of(
        r"(User-specified max_model_len \(\d+\) is greater than[^\n.]*)",
        gettext_noop("max_model_len too large for this model: {0}"),
    ),
    ErrorHint.of(
        r"Model architectures? \[?'?([\w, ']+?)'?\]? (?:are|is) not supported",
        gettext_noop("model architecture not supported by this engine version: {0}"),
    ),
    ErrorHint.of(
        r"(Found no NVIDIA driver|No CUDA GPUs are available|no CUDA-capable device|"
        r"CUDA driver version is insufficient)",
        gettext_noop("no usable GPU visible to the engine: {0}"),
    ),
    ErrorHint.of(r"(NCCL error[^\n]*)", gettext_noop("collective communication failed: {0}")),
    ErrorHint.of(
        r"(DistNetworkError[^\n]*|TCPStore[^\n]*(?:Connection refused|timed out|timeout)[^\n]*)",
        gettext_noop("multi-node rendezvous with the head node failed (check "
                     "master_addr, master_port and the firewall): {0}"),
    ),
    ErrorHint.of(r"(PermissionError: [^\n]+|Permission denied[^\n]*)", gettext_noop("permission denied: {0}")),
)

