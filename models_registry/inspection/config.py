"""Read a Hugging Face ``config.json`` into the few facts the registry needs.

Model families spell the same fact differently (``num_hidden_layers`` / ``num_layers`` / ``n_layer``,
``num_key_value_heads`` / ``multi_query_group_num``...) and multimodal models keep the language model
under ``text_config``; :func:`parse_config` looks in all those places and leaves a field ``None`` when
no spelling is present or its value is not a positive integer.  Only text that is not a JSON object
is an error (:class:`~models_registry.inspection.InvalidConfig`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from models_registry.inspection import InvalidConfig

#: Nested sections that hold the language model of multimodal configs, searched after the top level.
NESTED_SECTIONS = ("text_config", "language_config", "llm_config", "thinker_config")

_ALIASES: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_layers": ("num_hidden_layers", "num_layers", "n_layer", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "n_heads", "num_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads"),
    "head_dim": ("head_dim", "kv_channels"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "max_position_embeddings": (
        "max_position_embeddings",
        "seq_length",
        "n_positions",
        "max_sequence_length",
        "n_ctx",
    ),
    "intermediate_size": ("intermediate_size", "ffn_hidden_size", "n_inner"),
    "kv_lora_rank": ("kv_lora_rank",),
    "q_lora_rank": ("q_lora_rank",),
    "qk_rope_head_dim": ("qk_rope_head_dim",),
    "qk_nope_head_dim": ("qk_nope_head_dim",),
    "v_head_dim": ("v_head_dim",),
    "n_routed_experts": ("n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts"),
    "n_shared_experts": ("n_shared_experts", "num_shared_experts"),
    "num_experts_per_tok": ("num_experts_per_tok", "moe_topk", "top_k_experts"),
    "moe_intermediate_size": ("moe_intermediate_size",),
}


@dataclass(frozen=True)
class ModelArchitecture:
    """The architecture facts of a model; every field is optional because configs vary.

    ``num_kv_heads`` defaults to ``num_attention_heads`` (multi-head attention) and ``head_dim`` to
    ``hidden_size // num_attention_heads``.  DeepSeek-V2/V3 style multi-head latent attention (MLA) is
    described by ``kv_lora_rank`` and ``qk_rope_head_dim``; mixture-of-experts models by
    ``n_routed_experts`` and friends.
    """

    architecture: str | None = None
    model_type: str | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    num_attention_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    torch_dtype: str | None = None
    quantization_config: dict[str, Any] | None = None
    intermediate_size: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    q_lora_rank: int | None = None
    n_routed_experts: int | None = None
    n_shared_experts: int | None = None
    num_experts_per_tok: int | None = None
    moe_intermediate_size: int | None = None

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention (the KV cache holds a compressed latent per layer)."""
        return bool(self.kv_lora_rank and self.qk_rope_head_dim is not None)

    @property
    def is_moe(self) -> bool:
        """True for mixture-of-experts models."""
        return bool(self.n_routed_experts and self.n_routed_experts > 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields."""
        return asdict(self)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value.is_integer():
        return int(value) if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value) or None
    return None


def _sections(document: dict[str, Any]) -> list[dict[str, Any]]:
    sections = [document]
    sections += [document[name] for name in NESTED_SECTIONS if isinstance(document.get(name), dict)]
    return sections


def _first_int(sections: list[dict[str, Any]], keys: tuple[str, ...]) -> int | None:
    for section in sections:
        for key in keys:
            value = _positive_int(section.get(key))
            if value is not None:
                return value
    return None


def _first_str(sections: list[dict[str, Any]], keys: tuple[str, ...]) -> str | None:
    for section in sections:
        for key in keys:
            value = section.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def architecture_from_dict(document: dict[str, Any]) -> ModelArchitecture:
    """Build a :class:`ModelArchitecture` from an already decoded config object."""
    sections = _sections(document)
    values = {name: _first_int(sections, keys) for name, keys in _ALIASES.items()}

    heads = values["num_attention_heads"]
    kv_heads = values["num_kv_heads"]
    if kv_heads is None:
        for section in sections:
            if section.get("multi_query_attention") is True:  # ChatGLM
                kv_heads = _positive_int(section.get("multi_query_group_num")) or 1
                break
            if section.get("multi_query") is True:  # GPT-BigCode, old Falcon
                kv_heads = 1
                break
    if kv_heads is None:
        kv_heads = heads
    head_dim = values["head_dim"]
    if head_dim is None and values["hidden_size"] and heads:
        head_dim = values["hidden_size"] // heads

    architectures = document.get("architectures")
    architecture = None
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        architecture = architectures[0]

    quantization_config = None
    for section in sections:
        for key in ("quantization_config", "compression_config"):
            if isinstance(section.get(key), dict):
                quantization_config = section[key]
                break
        if quantization_config is not None:
            break

    values.update(num_kv_heads=kv_heads, head_dim=head_dim)
    return ModelArchitecture(
        architecture=architecture,
        model_type=_first_str(sections, ("model_type",)),
        torch_dtype=_first_str(sections, ("torch_dtype", "dtype")),
        quantization_config=quantization_config,
        **values,
    )


def parse_config(text: str | bytes) -> ModelArchitecture:
    """Parse the text of a ``config.json``; raise :class:`InvalidConfig` unless it is a JSON object."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"config.json is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except UnicodeDecodeError:
        raise InvalidConfig("config.json is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise InvalidConfig("config.json is not valid JSON: it is nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidConfig(f"config.json is a JSON {type(document).__name__}, not an object")
    return architecture_from_dict(document)
