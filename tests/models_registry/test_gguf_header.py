"""GGUF header reading, checked against files written by ``gguf.GGUFWriter`` and read by ``GGUFReader``."""

from __future__ import annotations

import struct

import gguf
import pytest

from models_registry.inspection import InvalidWeightsFile, NeedMoreBytes
from models_registry.inspection.gguf_header import GGUFArray, parse_header
from tests.models_registry import write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-q8_0.gguf")


def test_a_tiny_llama_gguf_reads_the_same_as_the_reference_reader(tiny_gguf):
    data = tiny_gguf.read_bytes()
    header = parse_header(data, len(data))
    reference = gguf.GGUFReader(str(tiny_gguf))

    assert header.version == 3 and header.byte_order == "little"
    assert [t.name for t in header.tensors] == [t.name for t in reference.tensors]
    for mine, theirs in zip(header.tensors, reference.tensors, strict=True):
        assert list(mine.dims) == [int(d) for d in theirs.shape]
        assert mine.ggml_type == int(theirs.tensor_type)
        assert mine.parameters == int(theirs.n_elements)
        assert mine.nbytes == int(theirs.n_bytes)
        assert header.data_offset + mine.offset == int(theirs.data_offset)
    assert header.parameters == sum(int(t.n_elements) for t in reference.tensors)
    assert set(header.metadata) == {k for k in reference.fields if not k.startswith("GGUF.")}


def test_the_architecture_facts_and_the_quantization_name_come_from_the_metadata(tiny_gguf):
    data = tiny_gguf.read_bytes()
    header = parse_header(data, len(data))
    assert header.architecture == "llama"
    assert header.name == "tiny-test-model"
    assert header.file_type == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert header.quantization == "q8_0"
    assert (header.context_length, header.block_count, header.embedding_length) == (2048, 2, 64)
    assert (header.head_count, header.head_count_kv, header.vocab_size) == (4, 2, 300)
    assert header.tensor_types["Q8_0"] > 0 and "F16" in header.tensor_types

    arch = header.to_architecture()
    assert (arch.num_layers, arch.num_attention_heads, arch.num_kv_heads, arch.head_dim) == (2, 4, 2, 16)
    assert arch.max_position_embeddings == 2048 and arch.vocab_size == 300 and not arch.is_mla


def test_large_arrays_keep_only_their_length_and_small_ones_their_values(tiny_gguf):
    data = tiny_gguf.read_bytes()
    header = parse_header(data, len(data))
    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GGUFArray) and tokens.length == 300 and tokens.values is None
    assert header.metadata["test.small_array"].values == (1, 2, 3)
    summary = header.to_dict()
    assert summary["metadata"]["tokenizer.ggml.tokens"] == {"type": "string", "length": 300}
    assert summary["quantization"] == "q8_0"


def test_a_prefix_can_be_grown_in_chunks_until_the_header_parses(tmp_path):
    path = write_tiny_gguf(tmp_path / "big-vocab.gguf", vocab=8000)
    data = path.read_bytes()
    prefix_length, requests = 16, []
    while True:
        try:
            header = parse_header(data[:prefix_length])
            break
        except NeedMoreBytes as more:
            assert more.needed > prefix_length
            requests.append(more.needed)
            prefix_length = max(more.needed, 2 * prefix_length)
    assert len(requests) > 3
    assert header.vocab_size == 8000
    assert header.parameters == parse_header(data, len(data)).parameters


def test_a_big_endian_gguf_is_read_too(tmp_path):
    path = write_tiny_gguf(tmp_path / "be.gguf", endianess=gguf.GGUFEndian.BIG)
    data = path.read_bytes()
    header = parse_header(data, len(data))
    assert header.byte_order == "big"
    assert header.block_count == 2 and header.vocab_size == 300 and header.quantization == "q8_0"


def test_a_deepseek2_gguf_is_described_as_multi_head_latent_attention(tmp_path):
    path = write_tiny_gguf(
        tmp_path / "ds.gguf",
        arch="deepseek2",
        extra_kv={
            "deepseek2.attention.kv_lora_rank": 512,
            "deepseek2.rope.dimension_count": 64,
            "deepseek2.expert_count": 256,
            "deepseek2.expert_used_count": 8,
        },
    )
    data = path.read_bytes()
    arch = parse_header(data, len(data)).to_architecture()
    assert arch.is_mla and (arch.kv_lora_rank, arch.qk_rope_head_dim) == (512, 64)
    assert arch.is_moe and arch.n_routed_experts == 256 and arch.num_experts_per_tok == 8


def test_a_gguf_cut_inside_its_header_is_reported_as_truncated(tiny_gguf):
    data = tiny_gguf.read_bytes()[:3000]
    with pytest.raises(InvalidWeightsFile, match="GGUF header is truncated.*file has 3000"):
        parse_header(data, len(data))


def test_a_gguf_cut_inside_its_tensor_data_is_reported_as_truncated(tiny_gguf):
    full = tiny_gguf.read_bytes()
    header = parse_header(full, len(full))
    cut = full[: header.data_offset + 100]
    with pytest.raises(InvalidWeightsFile, match="GGUF data is truncated"):
        parse_header(cut, len(cut))


def _header(version=3, tensors=0, kvs=0, magic=b"GGUF"):
    return magic + struct.pack("<IQQ", version, tensors, kvs)


def _string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"PK\x03\x04" + b"\0" * 20, "not a GGUF file"),
        (_header(version=1), "version 1 is not supported"),
        (_header(version=4), "version 4 is not supported"),
        (_header(tensors=1 << 40), "implausible"),
        (_header(kvs=1) + struct.pack("<Q", 1 << 60), "implausible string"),
        (_header(kvs=1) + _string(b"k") + struct.pack("<I", 99), "unknown value type 99"),
        (_header(kvs=2) + (_string(b"k") + struct.pack("<IB", 0, 1)) * 2, "appears twice"),
        (_header(kvs=1) + _string(b"general.alignment") + struct.pack("<II", 4, 24), "power of two"),
        (_header(tensors=1) + _string(b"t") + struct.pack("<I", 5) + b"\0" * 60, "5 dimensions"),
        (_header(tensors=1) + _string(b"t") + struct.pack("<IQIQ", 1, 33, 2, 0), "multiple of the Q4_0"),
        (_header(tensors=1) + _string(b"t") + struct.pack("<IQIQ", 1, 8, 0, 3), "not aligned"),
    ],
)
def test_nonsense_is_rejected_as_an_invalid_gguf(data, fragment):
    with pytest.raises(InvalidWeightsFile, match=fragment):
        parse_header(data, len(data) + (1 << 20))


def test_a_prefix_shorter_than_the_fixed_header_asks_for_more():
    with pytest.raises(NeedMoreBytes) as info:
        parse_header(b"GGUF")
    assert info.value.needed == 8
    with pytest.raises(NeedMoreBytes) as info:
        parse_header(_header(kvs=1))
    assert info.value.needed == 24 + 8
