"""safetensors header parsing, checked against files the ``safetensors`` package writes and reads."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from models_registry.inspection import InvalidWeightsFile, NeedMoreBytes
from models_registry.inspection.safetensors_header import MAX_HEADER_BYTES, header_length, parse_header
from tests.models_registry import raw_safetensors, write_zero_safetensors


def _parse_file(path):
    data = path.read_bytes()
    return parse_header(data, len(data))


def test_a_file_written_by_the_safetensors_package_is_summarised_like_the_package_reads_it(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(
        {
            "embed.weight": np.zeros((10, 4), dtype=np.float16),
            "norm.weight": np.ones(4, dtype=np.float32),
            "scale": np.array(3, dtype=np.int8),
        },
        str(path),
        metadata={"format": "pt"},
    )
    header = _parse_file(path)
    with safe_open(str(path), "np") as reference:
        assert {t.name for t in header.tensors} == set(reference.keys())
        for t in header.tensors:
            assert list(t.shape) == list(reference.get_slice(t.name).get_shape())
        assert header.metadata == reference.metadata() == {"format": "pt"}
    assert header.parameters == 40 + 4 + 1
    assert header.dtypes == {"F16": 40, "F32": 4, "I8": 1}
    assert header.dominant_dtype == "F16"
    assert {t.name: t.nbytes for t in header.tensors} == {"embed.weight": 80, "norm.weight": 16, "scale": 1}
    summary = header.to_dict()
    assert summary["tensor_count"] == 3 and summary["parameters"] == 45


def test_only_the_header_bytes_are_needed_and_header_length_says_how_many(tmp_path):
    path = write_zero_safetensors(tmp_path / "m.safetensors", {"w": ("BF16", [256, 256])})
    data = path.read_bytes()
    n = header_length(data[:8])
    header = parse_header(data[: 8 + n], len(data))
    assert header.parameters == 65536
    assert header.dtypes == {"BF16": 65536}
    assert header.data_bytes == 65536 * 2


def test_header_length_needs_eight_bytes():
    with pytest.raises(NeedMoreBytes) as info:
        header_length(b"\x01\x02")
    assert info.value.needed == 8


def test_a_prefix_that_stops_inside_the_header_asks_for_the_rest(tmp_path):
    path = write_zero_safetensors(tmp_path / "m.safetensors", {"w": ("F32", [4])})
    data = path.read_bytes()
    with pytest.raises(NeedMoreBytes) as info:
        parse_header(data[:20], len(data))
    assert info.value.needed == 8 + header_length(data)


def test_a_truncated_safetensors_header_is_rejected_with_its_sizes():
    prefix = struct.pack("<Q", 4096) + b'{"a":'
    with pytest.raises(InvalidWeightsFile) as info:
        parse_header(prefix, 100)
    message = str(info.value)
    assert "truncated" in message and "4096" in message and "100" in message


def test_a_header_length_beyond_the_limit_is_rejected_without_reading_it():
    with pytest.raises(InvalidWeightsFile, match="exceeds the limit"):
        header_length(struct.pack("<Q", MAX_HEADER_BYTES + 1))
    with pytest.raises(InvalidWeightsFile, match="exceeds the limit"):
        parse_header(struct.pack("<Q", 2**63), 2**64)


def test_a_file_smaller_than_the_length_field_is_rejected():
    with pytest.raises(InvalidWeightsFile, match="too small"):
        parse_header(b"\x00\x00\x00", 3)


def test_a_header_that_lies_about_the_data_size_is_rejected_like_the_real_loader_does(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}
    path = tmp_path / "lying.safetensors"
    path.write_bytes(raw_safetensors(header, b"\0" * 100))
    with pytest.raises(InvalidWeightsFile) as info:
        _parse_file(path)
    assert "truncated" in str(info.value) and "4096" in str(info.value) and "100" in str(info.value)
    with pytest.raises(SafetensorError):
        safe_open(str(path), "np")


_BAD_HEADERS = {
    "not JSON": ("{not json", b"", "not valid JSON"),
    "a JSON array": ('[{"a": 1}]', b"", "does not start with a JSON object"),
    "a tensor that is not an object": ('{"w": 3}', b"", "not an object"),
    "a tensor without data_offsets": ('{"w": {"dtype": "F32", "shape": [1]}}', b"\0" * 4, "lacks data_offsets"),
    "an unknown dtype": ('{"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}}', b"\0", "unknown dtype"),
    "a negative dimension": (
        '{"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}}', b"\0", "invalid shape"),
    "offsets that leave a gap": (
        '{"w": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}', b"\0" * 4, "leaves a gap"),
    "overlapping tensors": (
        '{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},'
        ' "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}', b"\0" * 3, "overlaps"),
    "a size that does not match dtype times shape": (
        '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', b"\0" * 4, "needs 8"),
    "bytes after the last tensor": (
        '{"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}', b"\0" * 3, "tensors cover 2"),
    "metadata that is not strings": (
        '{"__metadata__": {"a": 1}, "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"\0",
        "__metadata__"),
}


@pytest.mark.parametrize("case", sorted(_BAD_HEADERS))
def test_a_malformed_header_is_rejected_and_the_real_loader_agrees(tmp_path, case):
    text, data, fragment = _BAD_HEADERS[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw_safetensors(text, data))
    with pytest.raises(InvalidWeightsFile, match=fragment):
        _parse_file(path)
    with pytest.raises(SafetensorError):
        with safe_open(str(path), "np") as f:
            list(f.keys())


def test_invalid_utf8_in_the_header_is_rejected():
    prefix = struct.pack("<Q", 4) + b"{\xff\xfe}"
    with pytest.raises(InvalidWeightsFile, match="not UTF-8"):
        parse_header(prefix, len(prefix))


def test_a_tensor_named_twice_is_rejected_even_though_the_real_loader_keeps_the_last():
    text = ('{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},'
            ' "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}')
    data = raw_safetensors(text, b"\0")
    with pytest.raises(InvalidWeightsFile, match="twice"):
        parse_header(data, len(data))


def test_an_empty_file_and_zero_sized_tensors_are_valid():
    empty = raw_safetensors({})
    assert parse_header(empty, len(empty)).parameters == 0
    text = {"a": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
            "b": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]}}
    data = raw_safetensors(text, b"\0")
    header = parse_header(data, len(data))
    assert header.parameters == 1
    assert [t.name for t in header.tensors] == ["a", "b"]
