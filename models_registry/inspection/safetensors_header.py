"""Validate and summarise the header of a ``.safetensors`` file without reading its tensors.

A safetensors file is ``<N: u64 little-endian><N bytes of JSON><data section>``.  The JSON object maps
tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data
section) and may hold a ``"__metadata__"`` object of strings.  :func:`parse_header` applies the checks
of the reference loader (``safetensors`` crate, ``Metadata::validate``): a sane header length, a JSON
object, contiguous offsets that start at 0, each tensor's byte size equal to its dtype size times the
product of its shape, and a data section that ends exactly at the end of the file.

Only ``8 + N`` bytes are ever needed: :func:`header_length` reads ``N`` from the first eight bytes so a
caller on the other end of an SSH connection can fetch exactly the header.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from models_registry.inspection import InvalidWeightsFile, NeedMoreBytes

#: The reference loader refuses headers larger than this (``MAX_HEADER_SIZE`` in the crate).
MAX_HEADER_BYTES = 100_000_000

#: Bits per element of every dtype the reference loader knows.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

#: Registry-style names for the safetensors dtypes that name a precision (``BF16`` -> ``bf16``).
DTYPE_NAMES: dict[str, str] = {
    "BF16": "bf16",
    "F16": "fp16",
    "F32": "fp32",
    "F64": "fp64",
    "F8_E4M3": "fp8",
    "F8_E5M2": "fp8",
    "I8": "int8",
    "U8": "uint8",
    "I32": "int32",
    "F4": "fp4",
}


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the header: the tensor's name, dtype, shape and its size in bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    data_offsets: tuple[int, int]

    @property
    def parameters(self) -> int:
        """Number of elements (the product of the shape; 1 for a scalar)."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a safetensors header says about its file."""

    header_length: int
    file_size: int
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        """Sum of the element counts of all tensors.

        Packed quantized formats (GPTQ/AWQ ``qweight`` stored as ``I32``) hold several parameters per
        element, so for them this under-counts; config.json is the better source there.
        """
        return sum(t.parameters for t in self.tensors)

    @property
    def dtypes(self) -> dict[str, int]:
        """Histogram: dtype -> number of parameters stored in that dtype, largest first."""
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.dtype] = counts.get(t.dtype, 0) + t.parameters
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def dominant_dtype(self) -> str | None:
        """The dtype that holds the most parameters, or ``None`` for a file without tensors."""
        return next(iter(self.dtypes), None)

    @property
    def data_bytes(self) -> int:
        """Size of the data section (everything after the header)."""
        return self.file_size - 8 - self.header_length

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the per-tensor list, which can hold 100k entries)."""
        return {
            "format": "safetensors",
            "header_length": self.header_length,
            "file_size": self.file_size,
            "tensor_count": len(self.tensors),
            "parameters": self.parameters,
            "dtypes": self.dtypes,
            "metadata": dict(self.metadata),
        }


def header_length(first8: bytes) -> int:
    """Return ``N``, the JSON header length declared by the first eight bytes of a file.

    Raises :class:`NeedMoreBytes` when fewer than eight bytes are given and
    :class:`InvalidWeightsFile` when ``N`` exceeds :data:`MAX_HEADER_BYTES`.
    """
    if len(first8) < 8:
        raise NeedMoreBytes(8)
    (n,) = struct.unpack_from("<Q", first8, 0)
    if n > MAX_HEADER_BYTES:
        raise InvalidWeightsFile(
            f"safetensors header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes"
        )
    return n


def _loads_no_duplicates(text: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise InvalidWeightsFile(f"safetensors header names {key!r} twice")
            result[key] = value
        return result

    return json.loads(text, object_pairs_hook=hook)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor(name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict):
        raise InvalidWeightsFile(f"safetensors tensor {name!r} is not an object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise InvalidWeightsFile(f"safetensors tensor {name!r} lacks {', '.join(missing)}")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise InvalidWeightsFile(f"safetensors tensor {name!r} has unknown dtype {dtype!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise InvalidWeightsFile(f"safetensors tensor {name!r} has an invalid shape {shape!r}")
    offsets = entry["data_offsets"]
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
        raise InvalidWeightsFile(f"safetensors tensor {name!r} has invalid data_offsets {offsets!r}")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        raise InvalidWeightsFile(
            f"safetensors tensor {name!r} does not fill whole bytes ({bits} bits of {dtype})"
        )
    return TensorInfo(name, dtype, tuple(shape), bits // 8, (offsets[0], offsets[1]))


def parse_header(prefix: bytes, file_size: int) -> SafetensorsHeader:
    """Parse and validate the header at the start of a safetensors file.

    ``prefix`` is the beginning of the file (at least ``8 + N`` bytes; more is ignored) and
    ``file_size`` the size of the whole file.  Raises :class:`InvalidWeightsFile` with a message that
    names the sizes involved (never the path) when the file could not be loaded, and
    :class:`NeedMoreBytes` when ``prefix`` stops before the end of a header the file can hold.
    """
    if file_size < 8:
        raise InvalidWeightsFile(f"file of {file_size} bytes is too small to be safetensors")
    n = header_length(prefix)
    if n < 2:
        raise InvalidWeightsFile(f"safetensors header length {n} is too small to hold a JSON object")
    if 8 + n > file_size:
        raise InvalidWeightsFile(
            f"safetensors header is truncated: declares {n} bytes of header, file has {file_size}"
        )
    if len(prefix) < 8 + n:
        raise NeedMoreBytes(8 + n)
    try:
        text = prefix[8 : 8 + n].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWeightsFile(f"safetensors header is not UTF-8 (byte {exc.start})") from None
    if not text.startswith("{"):
        raise InvalidWeightsFile("safetensors header does not start with a JSON object")
    try:
        document = _loads_no_duplicates(text)
    except json.JSONDecodeError as exc:
        raise InvalidWeightsFile(
            f"safetensors header is not valid JSON: {exc.msg} at byte {exc.pos}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidWeightsFile("safetensors header is not a JSON object")

    metadata = document.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidWeightsFile("safetensors __metadata__ must map strings to strings")

    tensors = sorted((_tensor(name, entry) for name, entry in document.items()),
                     key=lambda t: (t.data_offsets, t.name))
    data_bytes = file_size - 8 - n
    position = 0
    for t in tensors:
        begin, end = t.data_offsets
        if begin != position:
            what = "overlaps the previous one" if begin < position else f"leaves a gap at byte {position}"
            raise InvalidWeightsFile(
                f"safetensors tensor {t.name!r} starts at byte {begin} and {what}"
            )
        if end < begin:
            raise InvalidWeightsFile(f"safetensors tensor {t.name!r} ends before it begins ({begin}..{end})")
        if end - begin != t.nbytes:
            raise InvalidWeightsFile(
                f"safetensors tensor {t.name!r} spans {end - begin} bytes but {t.dtype} x "
                f"{list(t.shape)} needs {t.nbytes}"
            )
        if end > data_bytes:
            raise InvalidWeightsFile(
                f"safetensors data is truncated: tensor {t.name!r} ends at byte {end} of the data "
                f"section, file has {data_bytes} data bytes"
            )
        position = end
    if position != data_bytes:
        raise InvalidWeightsFile(
            f"safetensors data section holds {data_bytes} bytes but its tensors cover {position}"
        )
    return SafetensorsHeader(header_length=n, file_size=file_size, tensors=tuple(tensors), metadata=metadata)
