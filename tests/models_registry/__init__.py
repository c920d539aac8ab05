"""Tests of the pure model-registry parts, and the helpers that write real weight files for them.

The helpers write small but genuine files: safetensors through the ``safetensors`` package (or by
hand when a test needs a dtype numpy lacks, or a deliberately broken header) and GGUF through
``gguf.GGUFWriter``, so the parsers are checked against the formats' reference implementations.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import gguf
import numpy as np

#: Element sizes for hand-written safetensors files.
_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I8": 1, "U8": 1, "I32": 4, "F8_E4M3": 1}


def raw_safetensors(header: dict[str, Any] | str, data: bytes = b"", declared_length: int | None = None) -> bytes:
    """Bytes of a safetensors file with exactly this header (dict or JSON text) and data section."""
    text = header if isinstance(header, str) else json.dumps(header)
    encoded = text.encode("utf-8")
    length = len(encoded) if declared_length is None else declared_length
    return struct.pack("<Q", length) + encoded + data


def write_zero_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]], metadata=None) -> Path:
    """Write a valid safetensors file of zeros: ``{name: (dtype, shape)}``, any dtype (BF16 included)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = int(np.prod(shape, dtype=np.int64)) * _DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    path.write_bytes(raw_safetensors(header, b"\0" * offset))
    return path


def tiny_llama_tensors(vocab: int = 300, hidden: int = 64, layers: int = 2) -> dict[str, np.ndarray]:
    """Float tensors shaped like a (very) small llama."""
    rng = np.random.default_rng(0)
    tensors = {"token_embd.weight": rng.standard_normal((vocab, hidden), dtype=np.float32)}
    for i in range(layers):
        tensors[f"blk.{i}.attn_norm.weight"] = np.ones(hidden, dtype=np.float32)
        tensors[f"blk.{i}.attn_q.weight"] = rng.standard_normal((hidden, hidden), dtype=np.float32)
        tensors[f"blk.{i}.attn_k.weight"] = rng.standard_normal((hidden // 2, hidden), dtype=np.float32)
        tensors[f"blk.{i}.ffn_up.weight"] = rng.standard_normal((2 * hidden, hidden), dtype=np.float32)
    tensors["output_norm.weight"] = np.ones(hidden, dtype=np.float32)
    return tensors


def write_tiny_gguf(
    path: Path,
    *,
    vocab: int = 300,
    arch: str = "llama",
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
    extra_kv: dict[str, Any] | None = None,
    token_prefix: str = "tok",
) -> Path:
    """Write a llama-like GGUF: 2 blocks, hidden 64, 4 heads (2 KV), Q8_0 matrices, a real vocabulary."""
    writer = gguf.GGUFWriter(str(path), arch, endianess=endianess)
    writer.add_name("tiny-test-model")
    writer.add_block_count(2)
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"{token_prefix}{i}" for i in range(vocab)])
    writer.add_token_scores([float(-i) for i in range(vocab)])
    writer.add_token_types([1] * vocab)
    writer.add_array("test.small_array", [1, 2, 3])
    for key, value in (extra_kv or {}).items():
        if isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_string(key, value)
    for name, array in tiny_llama_tensors(vocab).items():
        if array.ndim == 2 and not name.startswith("token_embd"):
            quantized = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif array.ndim == 2:
            writer.add_tensor(name, array.astype(np.float16))
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def old_pythons() -> list[str]:
    """Interpreters older than this project's (2.7, 3.6...) that a node might carry, when installed here."""
    candidates = [shutil.which(name) for name in ("python2.7", "python2", "python3.6")]
    home = os.path.expanduser("~/.pyenv/versions")
    candidates += sorted(glob.glob(os.path.join(home, "2.7*", "bin", "python")))
    candidates += sorted(glob.glob(os.path.join(home, "3.6*", "bin", "python")))
    found: dict[str, str] = {}
    for exe in candidates:
        if not exe:
            continue
        try:
            probe = subprocess.run(
                [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() not in found:
            found[probe.stdout.strip()] = exe
    return [found[v] for v in sorted(found)]


def verified_version(model, node, directory, version: str = "v1"):
    """The files in ``directory`` on ``node`` registered as ``version`` of ``model``, imported and verified as
    an operator would (the worker's tasks run here, in turn)."""
    from models_registry import services

    row = services.register_version(model=model, version=version, source_uri=str(directory), node=node)
    services.import_version(row.pk)
    row.refresh_from_db()
    services.request_verify(row)
    services.verify_version(row.pk)
    row.refresh_from_db()
    assert row.status == "verified", row.status_detail
    return row
