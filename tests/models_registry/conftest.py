"""Fixtures of the registry tests: the local node, model directories written with the real
safetensors and gguf packages, and a registered model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from models_registry.models import Model
from nodes import services as node_services
from tests.models_registry import write_tiny_gguf, write_zero_safetensors

#: A small llama-shaped config.json (2 layers, 4 heads of 16, 2 KV heads).
TINY_LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128, "torch_dtype": "bfloat16",
    "max_position_embeddings": 2048, "intermediate_size": 128,
}


@pytest.fixture
def local_node(db):
    return node_services.register_local_node()


@pytest.fixture
def model(db):
    return Model.objects.create(name="Tiny-Llama", family="llama")


def write_safetensors_dir(directory, *, shards: int = 2):
    """A Hugging Face style directory: config.json, tokenizer, and BF16 safetensors shards."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    (directory / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    write_zero_safetensors(directory / "model-00001-of-00002.safetensors",
                           {"model.embed_tokens.weight": ("BF16", [128, 64]), "model.norm.weight": ("BF16", [64])})
    if shards > 1:
        # This shard is written by the safetensors package itself (float16, numpy has no bfloat16).
        save_file({"lm_head.weight": np.ones((128, 64), dtype=np.float16)},
                  str(directory / "model-00002-of-00002.safetensors"))
    return directory


@pytest.fixture
def safetensors_dir(tmp_path):
    return write_safetensors_dir(tmp_path / "tiny-llama-bf16")


@pytest.fixture
def gguf_dir(tmp_path):
    directory = tmp_path / "tiny-gguf"
    directory.mkdir()
    write_tiny_gguf(directory / "tiny-q8_0.gguf")
    return directory
