"""Memory estimates on known architectures, against numbers computed by hand (docs/memory-estimate.md)."""

from __future__ import annotations

import json

import pytest

from models_registry.inspection.config import ModelArchitecture, parse_config
from models_registry.inspection.memory import estimate_memory, format_bytes, kv_bytes_per_token
from models_registry.quantization import UnknownQuantization
from tests.models_registry.test_config import DEEPSEEK_V3, LLAMA_3_1_8B, QWEN2_5_7B

KIB, GIB = 1024, 1024**3
LLAMA = parse_config(json.dumps(LLAMA_3_1_8B))
QWEN = parse_config(json.dumps(QWEN2_5_7B))
DEEPSEEK = parse_config(json.dumps(DEEPSEEK_V3))
R1_PARAMS = 671_000_000_000


def test_llama_3_1_8b_caches_128_kib_per_token_in_bf16():
    # 2 (K and V) x 32 layers x 8 KV heads x 128 head dim x 2 bytes
    assert kv_bytes_per_token(LLAMA)[0] == 2 * 32 * 8 * 128 * 2 == 128 * KIB
    estimate = estimate_memory(8_030_261_248, "bf16", LLAMA, context_length=8192)
    assert estimate.kv_bytes_per_token == 131072
    assert estimate.kv_cache_bytes == 1 * GIB
    assert estimate.weights_bytes == 16_060_522_496
    assert estimate.overhead_bytes == 1_713_426_432
    assert estimate.total_bytes == 18_847_690_752


def test_qwen2_5_7b_caches_56_kib_per_token_in_bf16():
    assert kv_bytes_per_token(QWEN)[0] == 2 * 28 * 4 * 128 * 2 == 56 * KIB
    estimate = estimate_memory(7_615_616_512, "bf16", QWEN, context_length=32768)
    assert estimate.kv_cache_bytes == 56 * KIB * 32768 == 1_879_048_192


def test_deepseek_v3_latent_attention_caches_70272_bytes_per_token():
    # (kv_lora_rank 512 + qk_rope_head_dim 64) x 61 layers x 2 bytes
    assert kv_bytes_per_token(DEEPSEEK)[0] == (512 + 64) * 61 * 2 == 70272
    assert kv_bytes_per_token(DEEPSEEK, kv_dtype_bytes=1)[0] == 35136
    estimate = estimate_memory(R1_PARAMS, "w8a8", DEEPSEEK, context_length=4096, concurrency=192)
    assert estimate.kv_cache_bytes == 70272 * 4096 * 192 == 55_264_149_504


def test_deepseek_r1_weights_are_about_671_gb_in_w8a8_and_about_346_gb_in_w4a16():
    w8a8 = estimate_memory(R1_PARAMS, "w8a8", DEEPSEEK)
    w4a16 = estimate_memory(R1_PARAMS, "w4a16", DEEPSEEK)
    bf16 = estimate_memory(R1_PARAMS, "bf16", DEEPSEEK)
    assert w8a8.weights_bytes == 671_000_000_000
    assert 340e9 <= w4a16.weights_bytes <= 360e9
    assert w4a16.weights_bytes == 345_984_375_000  # 671e9 x (0.5 + 2/128)
    assert bf16.weights_bytes == 1_342_000_000_000


def test_kv_cache_grows_linearly_with_context_and_concurrency():
    one = estimate_memory(1000, "bf16", LLAMA, context_length=1024, concurrency=1)
    many = estimate_memory(1000, "bf16", LLAMA, context_length=2048, concurrency=8)
    assert many.kv_cache_bytes == 16 * one.kv_cache_bytes


def test_the_formula_shows_every_factor():
    formula = estimate_memory(R1_PARAMS, "w4a16", DEEPSEEK, context_length=4096).formula
    assert "671,000,000,000 params x 0.515625 B/param (w4a16)" in formula
    assert "(kv_lora_rank 512 + qk_rope_head_dim 64) x 61 layers x 2 B = 70,272 B/token x 4,096 tokens" in formula
    assert "overhead = 0.1 x (weights + kv_cache)" in formula
    llama = estimate_memory(10, "bf16", LLAMA).formula
    assert "2 x 32 layers x 8 KV heads x 128 head dim x 2 B = 131,072 B/token" in llama


def test_without_an_architecture_only_the_weights_are_counted():
    estimate = estimate_memory(1_000_000, "fp16", None, overhead_fraction=0)
    assert estimate.kv_cache_bytes == 0 and not estimate.kv_cache_known
    assert estimate.total_bytes == 2_000_000
    assert "unknown" in estimate.formula
    assert not estimate_memory(10, "fp16", ModelArchitecture(num_layers=2)).kv_cache_known


def test_measured_weight_bytes_replace_the_parameter_arithmetic():
    estimate = estimate_memory(0, "q4_k_m", LLAMA, weights_bytes=4_920_000_000, overhead_fraction=0)
    assert estimate.weights_bytes == 4_920_000_000
    assert "measured on disk" in estimate.formula


@pytest.mark.parametrize(
    "kwargs",
    [{"params": -1}, {"params": 1.5}, {"context_length": 0}, {"concurrency": 0}, {"kv_dtype_bytes": 0},
     {"overhead_fraction": -0.1}],
)
def test_nonsense_sizes_are_rejected(kwargs):
    arguments = {"params": 10, "quantization": "bf16", "arch": LLAMA} | kwargs
    with pytest.raises(ValueError):
        estimate_memory(**arguments)


def test_an_unknown_quantization_cannot_be_estimated():
    with pytest.raises(UnknownQuantization):
        estimate_memory(10, "int3", LLAMA)


def test_bytes_are_formatted_in_binary_units():
    assert format_bytes(70272) == "68.6 KiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(671_000_000_000) == "624.9 GiB"
