"""config.json parsing for the families the registry carries (Llama, Qwen, DeepSeek, GLM, TeleChat)."""

from __future__ import annotations

import json

import pytest

from models_registry.inspection import InvalidConfig
from models_registry.inspection.config import parse_config

LLAMA_3_1_8B = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "rope_type": "llama3"}, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "vocab_size": 128256,
}
QWEN2_5_7B = {
    "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944,
    "max_position_embeddings": 32768, "model_type": "qwen2", "num_attention_heads": 28,
    "num_hidden_layers": 28, "num_key_value_heads": 4, "sliding_window": 131072,
    "torch_dtype": "bfloat16", "vocab_size": 152064,
}
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 7168, "intermediate_size": 18432,
    "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61,
    "num_key_value_heads": 128, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
    "torch_dtype": "bfloat16", "v_head_dim": 128, "vocab_size": 129280,
}
GLM_4_9B = {
    "architectures": ["ChatGLMModel"], "model_type": "chatglm", "num_layers": 40, "hidden_size": 4096,
    "num_attention_heads": 32, "multi_query_attention": True, "multi_query_group_num": 2,
    "kv_channels": 128, "padded_vocab_size": 151552, "seq_length": 131072, "torch_dtype": "bfloat16",
}
TELECHAT = {
    "architectures": ["TelechatForCausalLM"], "model_type": "telechat", "n_layer": 30, "n_head": 32,
    "hidden_size": 4096, "vocab_size": 120000, "seq_length": 8192, "torch_dtype": "float16",
}


def test_llama_3_1_8b_has_32_layers_of_8_kv_heads_of_128():
    arch = parse_config(json.dumps(LLAMA_3_1_8B))
    assert arch.architecture == "LlamaForCausalLM" and arch.model_type == "llama"
    assert (arch.num_layers, arch.num_attention_heads, arch.num_kv_heads, arch.head_dim) == (32, 32, 8, 128)
    assert (arch.hidden_size, arch.vocab_size, arch.max_position_embeddings) == (4096, 128256, 131072)
    assert arch.torch_dtype == "bfloat16" and arch.quantization_config is None
    assert not arch.is_mla and not arch.is_moe


def test_qwen2_5_7b_derives_its_head_dim_from_the_hidden_size():
    arch = parse_config(json.dumps(QWEN2_5_7B))
    assert (arch.num_layers, arch.num_kv_heads, arch.head_dim) == (28, 4, 128)


def test_deepseek_v3_carries_its_latent_attention_experts_and_fp8_quantization():
    arch = parse_config(json.dumps(DEEPSEEK_V3))
    assert arch.is_mla and (arch.kv_lora_rank, arch.qk_rope_head_dim, arch.qk_nope_head_dim) == (512, 64, 128)
    assert arch.is_moe and (arch.n_routed_experts, arch.n_shared_experts, arch.num_experts_per_tok) == (256, 1, 8)
    assert arch.moe_intermediate_size == 2048 and arch.q_lora_rank == 1536 and arch.v_head_dim == 128
    assert arch.quantization_config["quant_method"] == "fp8"


def test_chatglm_spells_layers_kv_groups_and_head_dim_its_own_way():
    arch = parse_config(json.dumps(GLM_4_9B))
    assert (arch.num_layers, arch.num_kv_heads, arch.head_dim) == (40, 2, 128)
    assert (arch.vocab_size, arch.max_position_embeddings) == (151552, 131072)


def test_telechat_uses_gpt_style_names():
    arch = parse_config(json.dumps(TELECHAT))
    assert (arch.num_layers, arch.num_attention_heads, arch.num_kv_heads, arch.head_dim) == (30, 32, 32, 128)
    assert arch.torch_dtype == "float16"


def test_kv_heads_default_to_the_attention_heads_and_an_explicit_head_dim_wins():
    arch = parse_config('{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "head_dim": 32}')
    assert (arch.num_kv_heads, arch.head_dim) == (4, 32)
    assert parse_config('{"hidden_size": 64, "num_attention_heads": 4, "head_dim": null}').head_dim == 16


def test_a_multimodal_config_is_read_from_its_text_config():
    config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
              "text_config": {"num_hidden_layers": 34, "num_attention_heads": 8, "num_key_value_heads": 4,
                              "head_dim": 256, "hidden_size": 2560},
              "dtype": "bfloat16"}
    arch = parse_config(json.dumps(config))
    assert (arch.num_layers, arch.num_kv_heads, arch.head_dim) == (34, 4, 256)
    assert arch.model_type == "gemma3" and arch.torch_dtype == "bfloat16"


def test_missing_and_silly_values_become_none_instead_of_errors():
    arch = parse_config('{"num_hidden_layers": "32", "hidden_size": -1, "vocab_size": true, "architectures": []}')
    assert arch.num_layers == 32
    assert arch.hidden_size is None and arch.vocab_size is None and arch.architecture is None
    empty = parse_config("{}")
    assert empty.num_layers is None and empty.head_dim is None and empty.to_dict()["num_kv_heads"] is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{oops", "not valid JSON"), ("[1, 2]", "JSON list, not an object"), (b"\xff\xfe{", "not"),
     ("[" * 100000, "not valid JSON")],
)
def test_text_that_is_not_a_json_object_is_an_invalid_config(text, fragment):
    with pytest.raises(InvalidConfig, match=fragment):
        parse_config(text)
