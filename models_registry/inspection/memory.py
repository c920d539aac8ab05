"""Estimate the accelerator memory a model version needs to serve.

``total = weights + kv_cache + overhead`` where

* ``weights = parameters x bytes_per_param(quantization)`` (or the measured size of the weight files
  when the caller passes ``weights_bytes``);
* ``kv_cache = kv_bytes_per_token x context_length x concurrency``, with
  ``kv_bytes_per_token = 2 (K and V) x layers x kv_heads x head_dim x kv_dtype_bytes`` for standard
  (multi-head / grouped-query) attention and
  ``(kv_lora_rank + qk_rope_head_dim) x layers x kv_dtype_bytes`` for DeepSeek's multi-head latent
  attention, which caches one compressed latent plus the shared RoPE key per layer;
* ``overhead = overhead_fraction x (weights + kv_cache)`` for activations, CUDA graphs / ACL
  workspaces and allocator fragmentation.

docs/memory-estimate.md explains the formula with worked examples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from models_registry.inspection.config import ModelArchitecture
from models_registry.quantization import Extra, lookup


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of a memory estimate, in bytes, and the formula that produced them."""

    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    total_bytes: int
    kv_bytes_per_token: int
    formula: str
    kv_cache_known: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields."""
        return asdict(self)


def format_bytes(n: float) -> str:
    """``70272`` -> ``"68.6 KiB"``; binary units, one decimal."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:g}"


def kv_bytes_per_token(arch: ModelArchitecture | None, kv_dtype_bytes: float = 2) -> tuple[int, str] | None:
    """Bytes of KV cache one token occupies across all layers, with the formula, or ``None``.

    ``None`` means the architecture lacks the layer count or the attention shape.
    """
    if arch is None or not arch.num_layers:
        return None
    if arch.is_mla:
        latent = arch.kv_lora_rank + arch.qk_rope_head_dim
        value = math.ceil(latent * arch.num_layers * kv_dtype_bytes)
        text = (
            f"(kv_lora_rank {arch.kv_lora_rank} + qk_rope_head_dim {arch.qk_rope_head_dim}) x "
            f"{arch.num_layers} layers x {_number(kv_dtype_bytes)} B"
        )
        return value, text
    if not arch.num_kv_heads or not arch.head_dim:
        return None
    value = math.ceil(2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * kv_dtype_bytes)
    text = (
        f"2 x {arch.num_layers} layers x {arch.num_kv_heads} KV heads x {arch.head_dim} head dim x "
        f"{_number(kv_dtype_bytes)} B"
    )
    return value, text


def estimate_memory(
    params: int,
    quantization: str,
    arch: ModelArchitecture | None,
    context_length: int = 4096,
    concurrency: int = 1,
    kv_dtype_bytes: float = 2,
    overhead_fraction: float = 0.1,
    *,
    weights_bytes: int | None = None,
    extra: Extra = (),
) -> MemoryEstimate:
    """Estimate the memory to serve ``params`` parameters in ``quantization``.

    ``context_length`` tokens per sequence times ``concurrency`` sequences are kept in the KV cache,
    each element ``kv_dtype_bytes`` wide (2 for bf16/fp16, 1 for an fp8/int8 cache).  Pass
    ``weights_bytes`` to use the measured size of the weight files instead of the parameter count,
    and ``extra`` for quantizations an administrator added.  Raises ``ValueError`` on negative or zero
    sizes and :class:`~models_registry.quantization.UnknownQuantization` on an unknown name.
    """
    if not isinstance(params, int) or isinstance(params, bool) or params < 0:
        raise ValueError(f"parameters must be a non-negative integer, not {params!r}")
    if context_length < 1 or concurrency < 1:
        raise ValueError("context_length and concurrency must be at least 1")
    if kv_dtype_bytes <= 0:
        raise ValueError("kv_dtype_bytes must be positive")
    if not 0 <= overhead_fraction <= 10:
        raise ValueError("overhead_fraction must lie between 0 and 10")
    scheme = lookup(quantization, extra)

    lines = []
    if weights_bytes is None:
        weights = math.ceil(params * scheme.bytes_per_param)
        lines.append(
            f"weights = {params:,} params x {_number(scheme.bytes_per_param)} B/param ({scheme.name}) "
            f"= {weights:,} B ({format_bytes(weights)})"
        )
    else:
        if weights_bytes < 0:
            raise ValueError("weights_bytes must be non-negative")
        weights = int(weights_bytes)
        lines.append(f"weights = {weights:,} B measured on disk ({format_bytes(weights)})")

    per_token = kv_bytes_per_token(arch, kv_dtype_bytes)
    if per_token is None:
        kv_per_token, kv_cache = 0, 0
        lines.append("kv_cache = unknown (no layer count or attention shape in the architecture)")
    else:
        kv_per_token, kv_text = per_token
        kv_cache = kv_per_token * context_length * concurrency
        lines.append(
            f"kv_cache = {kv_text} = {kv_per_token:,} B/token x {context_length:,} tokens x "
            f"{concurrency:,} sequences = {kv_cache:,} B ({format_bytes(kv_cache)})"
        )
    overhead = math.ceil((weights + kv_cache) * overhead_fraction)
    lines.append(
        f"overhead = {_number(overhead_fraction)} x (weights + kv_cache) = {overhead:,} B "
        f"({format_bytes(overhead)})"
    )
    total = weights + kv_cache + overhead
    lines.append(f"total = {total:,} B ({format_bytes(total)})")
    return MemoryEstimate(
        weights_bytes=weights,
        kv_cache_bytes=kv_cache,
        overhead_bytes=overhead,
        total_bytes=total,
        kv_bytes_per_token=kv_per_token,
        formula="\n".join(lines),
        kv_cache_known=per_token is not None,
    )
