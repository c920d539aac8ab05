"""The documented quantization list and its bytes per parameter."""

from __future__ import annotations

import pytest

from models_registry.quantization import (
    QUANTIZATIONS,
    Quantization,
    UnknownQuantization,
    bytes_per_param,
    is_known,
    lookup,
    normalize,
    quantization_from_config,
    quantization_from_msmodelslim,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bf16", 2), ("fp16", 2), ("fp32", 4), ("fp8", 1), ("int8", 1), ("w8a8", 1), ("w8a8-smoothquant", 1),
        ("w4a16", 0.5 + 2 / 128), ("awq", 0.5 + 2.5 / 128), ("gptq", 0.5 + 2.5 / 128),
        ("q8_0", 8.5 / 8), ("q6_k", 6.5625 / 8), ("q4_0", 4.5 / 8), ("q4_k_m", 4.84 / 8), ("q5_k_m", 5.68 / 8),
        ("q3_k_m", 3.91 / 8), ("q2_k", 3.35 / 8), ("f16", 2), ("f32", 4),
    ],
)
def test_each_documented_quantization_costs_its_bytes_per_parameter(name, expected):
    assert bytes_per_param(name) == pytest.approx(expected)


def test_names_are_case_insensitive_and_common_spellings_are_aliases():
    assert normalize(" W4A16 ") == "w4a16"
    assert normalize("Q4_K_M") == "q4_k_m"
    assert lookup("bfloat16").name == "bf16"
    assert lookup("float8_e4m3fn").name == "fp8"
    assert lookup("W8A8_SmoothQuant").name == "w8a8-smoothquant"


def test_every_entry_has_a_description_and_a_positive_size():
    for name, q in QUANTIZATIONS.items():
        assert q.name == name == normalize(name)
        assert q.bits_per_param > 0 and q.description


def test_an_unknown_quantization_is_refused_with_the_known_names():
    assert not is_known("q9_z")
    assert not is_known("")
    with pytest.raises(UnknownQuantization, match="unknown quantization 'q9_z'; known: .*w4a16"):
        bytes_per_param("q9_z")
    with pytest.raises(UnknownQuantization):
        lookup("   ")


def test_administrators_can_extend_the_list():
    assert is_known("nf4", {"nf4": 4.5})
    assert bytes_per_param("NF4", {"nf4": 4.5}) == pytest.approx(4.5 / 8)
    custom = Quantization("w4a8-mindie", 4.25, "MindIE W4A8", "custom")
    assert lookup("w4a8-mindie", [custom]) is custom
    assert is_known("house-blend", ["house-blend"])
    with pytest.raises(UnknownQuantization, match="no recorded bits per parameter"):
        bytes_per_param("house-blend", ["house-blend"])


@pytest.mark.parametrize(
    ("config", "dtype", "expected"),
    [
        (None, "bfloat16", "bf16"),
        (None, "float16", "fp16"),
        (None, None, None),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "bfloat16", "fp8"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "float16", "awq"),
        ({"quant_method": "gptq", "bits": 4}, "float16", "gptq"),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
            "weights": {"num_bits": 8, "type": "int"}, "input_activations": {"num_bits": 8, "type": "int"}}}},
         "bfloat16", "w8a8"),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
            "weights": {"num_bits": 4, "type": "int"}, "input_activations": None}}}, "bfloat16", "w4a16"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bfloat16", None),
    ],
)
def test_the_quantization_is_guessed_from_config_json(config, dtype, expected):
    assert quantization_from_config(config, dtype) == expected


def test_the_quantization_is_read_from_an_msmodelslim_description():
    assert quantization_from_msmodelslim({"model_quant_type": "W8A8", "a.weight": "W8A8"}) == "w8a8"
    assert quantization_from_msmodelslim({"model_quant_type": "W8A8_DYNAMIC"}) == "w8a8"
    assert quantization_from_msmodelslim({"model_quant_type": "W4A16"}) == "w4a16"
    assert quantization_from_msmodelslim({"model_quant_type": "W8A8SC"}) is None
    assert quantization_from_msmodelslim({}) is None
