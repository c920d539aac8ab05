"""The starter catalog: the models of the Intelligence BooM seed (DeepSeek V3 and R1 with their
quantizations and CEval scores) plus Qwen, Llama, GLM and TeleChat examples, so that a new console
shows a realistic registry. ``manage.py load_catalog`` loads it (idempotent).

Catalog versions have ``catalog=True`` and no files: they are references (a hub repository, or a
path on shared storage) until an admin imports them from a directory on a node. Architectures are
the published config.json values; parameter counts are the published ones (DeepSeek's 671B excludes
the 14B multi-token-prediction module that engines do not load by default).
"""

from __future__ import annotations

CEVAL_SOURCE = "CEval from the openEuler Intelligence BooM README (llm_solution), 精度 table"

_DEEPSEEK_V3_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "torch_dtype": "bfloat16",
    "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "intermediate_size": 18432,
    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "moe_intermediate_size": 2048,
}
_QWEN25_7B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "torch_dtype": "bfloat16", "hidden_size": 3584,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
    "max_position_embeddings": 32768, "intermediate_size": 18944,
}
_QWEN25_72B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "torch_dtype": "bfloat16", "hidden_size": 8192,
    "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 152064,
    "max_position_embeddings": 32768, "intermediate_size": 29568,
}
_LLAMA31_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16", "hidden_size": 4096,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "intermediate_size": 14336,
}
_GLM4_9B_CONFIG = {
    "architectures": ["ChatGLMModel"], "model_type": "chatglm", "torch_dtype": "bfloat16", "hidden_size": 4096,
    "num_layers": 40, "num_attention_heads": 32, "multi_query_attention": True, "multi_query_group_num": 2,
    "kv_channels": 128, "padded_vocab_size": 151552, "seq_length": 131072, "ffn_hidden_size": 13696,
}
_TELECHAT_7B_CONFIG = {
    "architectures": ["TelechatForCausalLM"], "model_type": "telechat", "torch_dtype": "float16", "hidden_size": 4096,
    "n_layer": 30, "n_head": 32, "vocab_size": 160256, "seq_length": 8192, "ffn_hidden_size": 12288,
}

#: Models: name -> fields, and their versions (parents named by version within the same model).
CATALOG: list[dict] = [
    {
        "name": "DeepSeek-V3", "family": "deepseek", "publisher": "DeepSeek", "parameters": 671_000_000_000,
        "architecture": "DeepseekV3ForCausalLM", "license": "MIT",
        "description": "Mixture-of-experts model (671B total, 37B active per token) with multi-head latent attention.",
        "config": _DEEPSEEK_V3_CONFIG,
        "versions": [
            {"version": "fp8", "quantization": "fp8", "source_uri": "hf://deepseek-ai/DeepSeek-V3",
             "evaluations": [("CEval", 86.5)], "notes": "The original release (FP8 weights, 128x128 block scales)."},
            {"version": "0324", "quantization": "fp8", "source_uri": "hf://deepseek-ai/DeepSeek-V3-0324",
             "notes": "The March 2025 update of V3."},
            {"version": "0324-w4a16", "quantization": "w4a16", "parent": "0324", "relation": "quantized",
             "source_uri": "/data/models/DeepSeek-V3-0324-W4A16", "evaluations": [("CEval", 87.82)],
             "notes": "msModelSlim W4A16 for Atlas 800I A2; a directory on shared storage until imported."},
        ],
    },
    {
        "name": "DeepSeek-R1", "family": "deepseek", "publisher": "DeepSeek", "parameters": 671_000_000_000,
        "architecture": "DeepseekV3ForCausalLM", "license": "MIT",
        "description": "Reasoning model on the DeepSeek-V3 architecture.",
        "config": _DEEPSEEK_V3_CONFIG,
        "versions": [
            {"version": "fp8", "quantization": "fp8", "source_uri": "hf://deepseek-ai/DeepSeek-R1",
             "notes": "The original release (FP8 weights)."},
            {"version": "bf16", "quantization": "bf16", "parent": "fp8", "relation": "converted",
             "source_uri": "/data/models/DeepSeek-R1-bf16", "evaluations": [("CEval", 91.8)],
             "notes": "Converted from FP8 for NPUs without FP8 (fp8_cast_bf16.py)."},
            {"version": "w8a8", "quantization": "w8a8", "parent": "bf16", "relation": "quantized",
             "source_uri": "modelscope://vllm-ascend/DeepSeek-R1-W8A8", "evaluations": [("CEval", 89.52)],
             "notes": "8-bit weights with SmoothQuant and mixed precision; the seed serves it on two Atlas 800I A2."},
            {"version": "w4a16", "quantization": "w4a16", "parent": "bf16", "relation": "quantized",
             "source_uri": "/data/models/DeepSeek-R1-W4A16", "evaluations": [("CEval", 88.78)],
             "notes": "msModelSlim W4A16; fits one Atlas 800I A2 (8 x 64 GB)."},
        ],
    },
    {
        "name": "Qwen2.5-7B-Instruct", "family": "qwen", "publisher": "Alibaba Qwen", "parameters": 7_615_616_512,
        "architecture": "Qwen2ForCausalLM", "license": "Apache-2.0", "config": _QWEN25_7B_CONFIG,
        "versions": [
            {"version": "bf16", "quantization": "bf16", "source_uri": "hf://Qwen/Qwen2.5-7B-Instruct"},
        ],
    },
    {
        "name": "Qwen2.5-72B-Instruct", "family": "qwen", "publisher": "Alibaba Qwen", "parameters": 72_706_203_648,
        "architecture": "Qwen2ForCausalLM", "license": "Qwen", "config": _QWEN25_72B_CONFIG,
        "versions": [
            {"version": "bf16", "quantization": "bf16", "source_uri": "hf://Qwen/Qwen2.5-72B-Instruct"},
            {"version": "awq", "quantization": "awq", "parent": "bf16", "relation": "quantized",
             "source_uri": "hf://Qwen/Qwen2.5-72B-Instruct-AWQ"},
        ],
    },
    {
        "name": "Llama-3.1-8B-Instruct", "family": "llama", "publisher": "Meta", "parameters": 8_030_261_248,
        "architecture": "LlamaForCausalLM", "license": "Llama 3.1 Community", "config": _LLAMA31_8B_CONFIG,
        "versions": [
            {"version": "bf16", "quantization": "bf16", "source_uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            {"version": "q4_k_m", "quantization": "q4_k_m", "format": "gguf", "parent": "bf16",
             "relation": "quantized", "source_uri": "hf://bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
             "notes": "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf, for llama.cpp."},
        ],
    },
    {
        "name": "glm-4-9b-chat", "family": "glm", "publisher": "Zhipu AI / THUDM", "parameters": 9_399_951_360,
        "architecture": "ChatGLMModel", "license": "GLM-4", "config": _GLM4_9B_CONFIG,
        "versions": [
            {"version": "bf16", "quantization": "bf16", "source_uri": "hf://THUDM/glm-4-9b-chat"},
        ],
    },
    {
        "name": "TeleChat-7B", "family": "telechat", "publisher": "China Telecom AI (Tele-AI)",
        "parameters": 7_200_000_000, "architecture": "TelechatForCausalLM", "license": "Apache-2.0",
        "description": "30 layers, hidden 4096, 32 heads, FFN 12288 (parameter count approximate).",
        "config": _TELECHAT_7B_CONFIG,
        "versions": [
            {"version": "fp16", "quantization": "fp16", "source_uri": "hf://Tele-AI/telechat-7B"},
        ],
    },
]
