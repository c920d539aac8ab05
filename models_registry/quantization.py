"""The documented list of weight quantizations and their storage cost per parameter.

``bits_per_param`` is what one parameter costs *on the accelerator*, scales included:

* plain floating point: bf16/fp16 16 bits, fp32 32, fp8 8 (DeepSeek-V3's 128x128-block fp32 scales
  add 0.002 bits and are ignored);
* integer schemes from the Ascend/vLLM world: ``int8``/``w8a8``/``w8a8-smoothquant``/``w8a16`` store
  one int8 per weight plus a per-output-channel scale (negligible) -> 8 bits; ``w4a16`` stores int4
  with one fp16 scale per group of 128 -> 4 + 16/128 = 4.125 bits;
* AWQ and GPTQ (4-bit, group size 128): int4 + fp16 scale + packed 4-bit zero point per group ->
  4 + (16 + 4)/128 = 4.15625 bits;
* GGUF types: the block formats have exact sizes (``q8_0`` = 34 bytes per 32 weights = 8.5 bits,
  ``q4_0`` 4.5, ``q6_k`` 6.5625...); the llama.cpp *mixes* (``q4_k_m``, ``q5_k_m``, ``q3_k_m``,
  ``q2_k``...) use the bits per weight that llama.cpp's quantize README measures for Llama-2-7B.

Administrators may add names (the registry keeps them in the database); every function here accepts
those as ``extra`` -- a mapping of name to :class:`Quantization` or to bits per parameter, or an
iterable of :class:`Quantization` objects or bare names (bare names are *known* but have no size).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class UnknownQuantization(ValueError):
    """A quantization name that is neither built in nor added by an administrator."""


@dataclass(frozen=True)
class Quantization:
    """A quantization scheme: its canonical name, storage cost and a one-line description."""

    name: str
    bits_per_param: float
    description: str
    kind: str = "float"

    @property
    def bytes_per_param(self) -> float:
        """``bits_per_param / 8``."""
        return self.bits_per_param / 8


#: What the ``extra`` argument accepts: administrator-added quantizations.
Extra = Mapping[str, Quantization | float] | Iterable[Quantization | str]


def _q(name: str, bits: float, description: str, kind: str) -> tuple[str, Quantization]:
    return name, Quantization(name, bits, description, kind)


#: Built-in quantizations by canonical (lower-case) name.
QUANTIZATIONS: dict[str, Quantization] = dict(
    [
        _q("fp32", 32, "IEEE float32", "float"),
        _q("bf16", 16, "bfloat16 (the usual release precision)", "float"),
        _q("fp16", 16, "IEEE float16", "float"),
        _q("fp8", 8, "float8 e4m3 weights with block or channel scales (DeepSeek-V3 native)", "float"),
        _q("int8", 8, "int8 weights, per-channel scales", "integer"),
        _q("w8a16", 8, "int8 weights, 16-bit activations (weight-only int8)", "integer"),
        _q("w8a8", 8, "int8 weights and int8 activations, per-channel weight scales", "integer"),
        _q("w8a8-smoothquant", 8, "w8a8 with SmoothQuant activation smoothing (msModelSlim)", "integer"),
        _q("w4a16", 4 + 16 / 128, "int4 weights, fp16 scale per group of 128, 16-bit activations", "integer"),
        _q("w4a8", 4 + 16 / 128, "int4 weights with group-128 fp16 scales, int8 activations", "integer"),
        _q("awq", 4 + 20 / 128, "AWQ 4-bit, group 128: fp16 scale + 4-bit zero per group", "integer"),
        _q("gptq", 4 + 20 / 128, "GPTQ 4-bit, group 128: fp16 scale + 4-bit zero per group", "integer"),
        _q("f32", 32, "GGUF F32", "gguf"),
        _q("f16", 16, "GGUF F16", "gguf"),
        _q("q8_0", 8.5, "GGUF Q8_0: blocks of 32 int8 + fp16 scale", "gguf"),
        _q("q6_k", 6.5625, "GGUF Q6_K: 6-bit k-quant", "gguf"),
        _q("q5_k_m", 5.68, "GGUF Q5_K_M mix (llama.cpp: 5.68 bpw on Llama-2-7B)", "gguf"),
        _q("q5_k_s", 5.52, "GGUF Q5_K_S mix (5.52 bpw)", "gguf"),
        _q("q5_1", 6.0, "GGUF Q5_1: blocks of 32, fp16 scale and min", "gguf"),
        _q("q5_0", 5.5, "GGUF Q5_0: blocks of 32, fp16 scale", "gguf"),
        _q("q4_k_m", 4.84, "GGUF Q4_K_M mix (llama.cpp: 4.84 bpw on Llama-2-7B)", "gguf"),
        _q("q4_k_s", 4.58, "GGUF Q4_K_S mix (4.58 bpw)", "gguf"),
        _q("q4_1", 5.0, "GGUF Q4_1: blocks of 32, fp16 scale and min", "gguf"),
        _q("q4_0", 4.5, "GGUF Q4_0: blocks of 32 int4 + fp16 scale", "gguf"),
        _q("iq4_xs", 4.25, "GGUF IQ4_XS", "gguf"),
        _q("iq4_nl", 4.5, "GGUF IQ4_NL", "gguf"),
        _q("q3_k_l", 4.27, "GGUF Q3_K_L mix (4.27 bpw)", "gguf"),
        _q("q3_k_m", 3.91, "GGUF Q3_K_M mix (llama.cpp: 3.91 bpw on Llama-2-7B)", "gguf"),
        _q("q3_k_s", 3.50, "GGUF Q3_K_S mix (3.50 bpw)", "gguf"),
        _q("iq3_xxs", 3.0625, "GGUF IQ3_XXS", "gguf"),
        _q("q2_k", 3.35, "GGUF Q2_K mix (llama.cpp: 3.35 bpw on Llama-2-7B)", "gguf"),
        _q("iq2_xxs", 2.0625, "GGUF IQ2_XXS", "gguf"),
        _q("iq1_s", 1.5625, "GGUF IQ1_S", "gguf"),
    ]
)

#: Other spellings accepted on input, mapped to canonical names.
ALIASES: dict[str, str] = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "float8_e4m3fn": "fp8",
    "w8a8_smoothquant": "w8a8-smoothquant",
    "smoothquant": "w8a8-smoothquant",
    "w8a8_dynamic": "w8a8",
    "w8a8-dynamic": "w8a8",
    "w4a16_awq": "awq",
    "w4a16_gptq": "gptq",
}

_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16", "float": "fp32"}


def normalize(name: str) -> str:
    """Lower-case, trim and resolve aliases: ``" BFloat16 "`` -> ``"bf16"``, ``"Q4_K_M"`` -> ``"q4_k_m"``."""
    key = name.strip().lower().replace(" ", "")
    return ALIASES.get(key, key)


def _extra_table(extra: Any) -> dict[str, Quantization | None]:
    table: dict[str, Quantization | None] = {}
    if isinstance(extra, Mapping):
        for name, value in extra.items():
            key = normalize(name)
            if isinstance(value, Quantization):
                table[key] = value
            elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                table[key] = Quantization(key, float(value), "added by an administrator", "custom")
            else:
                table[key] = None
    elif isinstance(extra, Iterable) and not isinstance(extra, str | bytes):
        for item in extra:
            if isinstance(item, Quantization):
                table[normalize(item.name)] = item
            elif isinstance(item, str):
                table[normalize(item)] = None
    return table


def lookup(name: str, extra: Extra = ()) -> Quantization:
    """Return the :class:`Quantization` called ``name`` (built in or in ``extra``).

    Raises :class:`UnknownQuantization` for an unknown name, and for an ``extra`` name given without
    a size.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownQuantization("quantization must be a non-empty name")
    key = normalize(name)
    table = _extra_table(extra)
    if key in table:
        found = table[key]
        if found is None:
            raise UnknownQuantization(f"quantization {name!r} has no recorded bits per parameter")
        return found
    if key in QUANTIZATIONS:
        return QUANTIZATIONS[key]
    known = ", ".join(sorted({*QUANTIZATIONS, *table}))
    raise UnknownQuantization(f"unknown quantization {name!r}; known: {known}")


def bytes_per_param(name: str, extra: Extra = ()) -> float:
    """Bytes one parameter occupies under quantization ``name`` (``bf16`` -> 2.0, ``w4a16`` -> 0.515625)."""
    return lookup(name, extra).bytes_per_param


def is_known(name: str, extra: Extra = ()) -> bool:
    """Whether ``name`` (after :func:`normalize`) is built in or listed in ``extra``."""
    if not isinstance(name, str) or not name.strip():
        return False
    key = normalize(name)
    return key in QUANTIZATIONS or key in _extra_table(extra)


def quantization_from_config(
    quantization_config: Mapping[str, Any] | None, torch_dtype: str | None = None
) -> str | None:
    """Guess the registry quantization from config.json's ``quantization_config`` and ``torch_dtype``.

    ``{"quant_method": "fp8"}`` -> ``fp8``, ``awq`` -> ``awq``, ``gptq`` -> ``gptq``,
    ``compressed-tensors`` with 8-bit int weights and activations -> ``w8a8`` (4-bit weights only ->
    ``w4a16``), no quantization_config -> the dtype (``bfloat16`` -> ``bf16``).  ``None`` when unsure.
    """
    if not quantization_config:
        return _TORCH_DTYPES.get((torch_dtype or "").lower())
    method = str(quantization_config.get("quant_method", "")).lower()
    if method in ("fp8", "fbgemm_fp8"):
        return "fp8"
    if method in ("awq", "gptq"):
        return method
    if method == "compressed-tensors":
        for group in (quantization_config.get("config_groups") or {}).values():
            if not isinstance(group, Mapping):
                continue
            weights = group.get("weights") or {}
            activations = group.get("input_activations") or {}
            bits, kind = weights.get("num_bits"), weights.get("type", "int")
            if kind == "float" and bits == 8:
                return "fp8"
            if kind == "int" and bits in (4, 8):
                act_bits = activations.get("num_bits") if isinstance(activations, Mapping) else None
                return f"w{bits}a{act_bits}" if act_bits == 8 else f"w{bits}a16"
        return None
    return normalize(method) if is_known(method) else None


def quantization_from_msmodelslim(description: Mapping[str, Any]) -> str | None:
    """Read ``model_quant_type`` from an Ascend msModelSlim ``quant_model_description*.json``.

    ``"W8A8"`` -> ``w8a8``, ``"W8A8_DYNAMIC"`` -> ``w8a8``, ``"W4A16"`` -> ``w4a16``; ``None`` when
    absent or unknown (sparse types such as ``W8A8S`` are not in the list).
    """
    value = description.get("model_quant_type")
    if not isinstance(value, str) or not value.strip():
        return None
    if is_known(value):
        return normalize(value)
    head = normalize(value).split("_")[0]
    return head if is_known(head) else None
