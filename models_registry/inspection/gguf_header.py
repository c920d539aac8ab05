"""Read the metadata and tensor table of a GGUF (v2/v3) file from a prefix of its bytes.

Layout (``ggml/docs/gguf.md``)::

    magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
    kv_count x (key: string, value_type: u32, value)
    tensor_count x (name: string, n_dims: u32, dims: n_dims x u64, ggml_type: u32, offset: u64)
    padding to general.alignment (default 32) | tensor data

Strings are ``u64 length + UTF-8 bytes``; arrays are ``item_type u32 + count u64 + items``.  Files
written on big-endian machines store every number big-endian; the version field tells which.

The reader works on a *prefix*: when the header runs past the end of the bytes it was given it raises
:class:`~models_registry.inspection.NeedMoreBytes` with a lower bound of the prefix length it needs,
so a caller can fetch a remote file in growing chunks.  Large arrays (``tokenizer.ggml.tokens`` holds
100k+ strings) are stepped over and recorded by their length only.  Only :mod:`struct` is used.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from models_registry.inspection import InvalidWeightsFile, NeedMoreBytes
from models_registry.inspection.config import ModelArchitecture

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
#: llama.cpp's GGML_MAX_DIMS.
MAX_DIMS = 4
#: Arrays up to these lengths are materialised; longer ones only keep their length.
INLINE_NUMBER_ARRAY = 1024
INLINE_STRING_ARRAY = 64
#: Limits that turn garbage lengths into an error instead of a request for exabytes.
MAX_STRING_BYTES = 256 * 1024 * 1024
MAX_ARRAY_LENGTH = 1 << 32
MAX_KV_COUNT = 1 << 20
MAX_TENSOR_COUNT = 1 << 24

#: GGUF value types: id -> (name, struct code, size).  STRING (8) and ARRAY (9) are handled apart.
VALUE_TYPES: dict[int, tuple[str, str, int]] = {
    0: ("uint8", "B", 1),
    1: ("int8", "b", 1),
    2: ("uint16", "H", 2),
    3: ("int16", "h", 2),
    4: ("uint32", "I", 4),
    5: ("int32", "i", 4),
    6: ("float32", "f", 4),
    7: ("bool", "?", 1),
    10: ("uint64", "Q", 8),
    11: ("int64", "q", 8),
    12: ("float64", "d", 8),
}
STRING, ARRAY = 8, 9

#: ggml tensor types: id -> (name, elements per block, bytes per block) (``GGML_QUANT_SIZES``).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

#: ``general.file_type`` (llama.cpp's ``llama_ftype``) -> quantization name used by the registry.
FILE_TYPES: dict[int, str] = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    3: "q4_1",
    7: "q8_0",
    8: "q5_0",
    9: "q5_1",
    10: "q2_k",
    11: "q3_k_s",
    12: "q3_k_m",
    13: "q3_k_l",
    14: "q4_k_s",
    15: "q4_k_m",
    16: "q5_k_s",
    17: "q5_k_m",
    18: "q6_k",
    19: "iq2_xxs",
    20: "iq2_xs",
    21: "q2_k_s",
    22: "iq3_xs",
    23: "iq3_xxs",
    24: "iq1_s",
    25: "iq4_nl",
    26: "iq3_s",
    27: "iq3_m",
    28: "iq2_s",
    29: "iq2_m",
    30: "iq4_xs",
    31: "iq1_m",
    32: "bf16",
    36: "tq1_0",
    37: "tq2_0",
    38: "mxfp4_moe",
}


@dataclass(frozen=True)
class GGUFArray:
    """An array value: its item type, its length and, when short enough, its items."""

    item_type: str
    length: int
    values: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class GGUFTensor:
    """One entry of the tensor table (dims in GGUF order: fastest-varying first)."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def type_name(self) -> str:
        """The ggml type name (``Q4_K``, ``F16``...), or ``TYPE_<id>`` for a type this reader lacks."""
        known = GGML_TYPES.get(self.ggml_type)
        return known[0] if known else f"TYPE_{self.ggml_type}"

    @property
    def parameters(self) -> int:
        """Number of elements."""
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int | None:
        """Bytes of tensor data, or ``None`` for an unknown ggml type."""
        known = GGML_TYPES.get(self.ggml_type)
        if not known:
            return None
        _, block, size = known
        return self.parameters // block * size


@dataclass(frozen=True)
class GGUFHeader:
    """Everything in a GGUF file before its tensor data."""

    version: int
    byte_order: str
    metadata: dict[str, Any]
    tensors: tuple[GGUFTensor, ...]
    header_length: int
    alignment: int
    data_offset: int
    file_size: int | None = None

    # -- generic -------------------------------------------------------------------------------
    @property
    def parameters(self) -> int:
        """Sum of the element counts of all tensors."""
        return sum(t.parameters for t in self.tensors)

    @property
    def tensor_types(self) -> dict[str, int]:
        """Histogram: ggml type name -> number of parameters stored in it, largest first."""
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.type_name] = counts.get(t.type_name, 0) + t.parameters
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def architecture(self) -> str | None:
        """``general.architecture`` (``llama``, ``qwen2``, ``deepseek2``...)."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        """``general.name`` when present."""
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> int | None:
        """``general.file_type`` (llama.cpp's ``llama_ftype``) when present."""
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def quantization(self) -> str | None:
        """Registry quantization name: from ``general.file_type`` (``MOSTLY_Q4_K_M`` -> ``q4_k_m``),
        else the type of most parameters (``f16``, ``q8_0``...)."""
        if self.file_type is not None and self.file_type in FILE_TYPES:
            return FILE_TYPES[self.file_type]
        dominant = next(iter(self.tensor_types), None)
        return dominant.lower() if dominant else None

    # -- architecture keys ---------------------------------------------------------------------
    def arch_value(self, suffix: str) -> Any:
        """The value of ``<architecture>.<suffix>`` (for example ``block_count``), or ``None``."""
        if self.architecture is None:
            return None
        return self.metadata.get(f"{self.architecture}.{suffix}")

    def _arch_int(self, suffix: str) -> int | None:
        value = self.arch_value(suffix)
        if isinstance(value, GGUFArray):  # per-layer values (OpenELM): the largest one matters
            numbers = [v for v in value.values or () if isinstance(v, int)]
            return max(numbers) if numbers else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None

    @property
    def context_length(self) -> int | None:
        """``<arch>.context_length``: the training context."""
        return self._arch_int("context_length")

    @property
    def block_count(self) -> int | None:
        """``<arch>.block_count``: number of transformer layers."""
        return self._arch_int("block_count")

    @property
    def embedding_length(self) -> int | None:
        """``<arch>.embedding_length``: the hidden size."""
        return self._arch_int("embedding_length")

    @property
    def head_count(self) -> int | None:
        """``<arch>.attention.head_count``."""
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        """``<arch>.attention.head_count_kv``, defaulting to the head count."""
        kv = self._arch_int("attention.head_count_kv")
        return kv if kv is not None else self.head_count

    @property
    def vocab_size(self) -> int | None:
        """``<arch>.vocab_size`` or the length of ``tokenizer.ggml.tokens``."""
        explicit = self._arch_int("vocab_size")
        if explicit is not None:
            return explicit
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        return tokens.length if isinstance(tokens, GGUFArray) else None

    def to_architecture(self) -> ModelArchitecture:
        """The same facts as a :class:`ModelArchitecture`, so GGUF models get a memory estimate."""
        heads = self.head_count
        hidden = self.embedding_length
        head_dim = self._arch_int("attention.key_length")
        if head_dim is None and hidden and heads:
            head_dim = hidden // heads
        kv_lora = self._arch_int("attention.kv_lora_rank")
        return ModelArchitecture(
            architecture=self.architecture,
            model_type=self.architecture,
            hidden_size=hidden,
            num_layers=self.block_count,
            num_attention_heads=heads,
            num_kv_heads=self.head_count_kv,
            head_dim=head_dim,
            vocab_size=self.vocab_size,
            max_position_embeddings=self.context_length,
            torch_dtype=None,
            quantization_config=None,
            intermediate_size=self._arch_int("feed_forward_length"),
            kv_lora_rank=kv_lora,
            qk_rope_head_dim=self._arch_int("rope.dimension_count") if kv_lora else None,
            q_lora_rank=self._arch_int("attention.q_lora_rank"),
            n_routed_experts=self._arch_int("expert_count"),
            n_shared_experts=self._arch_int("expert_shared_count"),
            num_experts_per_tok=self._arch_int("expert_used_count"),
            moe_intermediate_size=self._arch_int("expert_feed_forward_length"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (large arrays appear as ``{"type", "length"}``)."""

        def plain(value: Any) -> Any:
            if isinstance(value, GGUFArray):
                if value.values is None:
                    return {"type": value.item_type, "length": value.length}
                return [plain(v) for v in value.values]
            return value

        return {
            "format": "gguf",
            "version": self.version,
            "byte_order": self.byte_order,
            "architecture": self.architecture,
            "quantization": self.quantization,
            "tensor_count": len(self.tensors),
            "parameters": self.parameters,
            "tensor_types": self.tensor_types,
            "header_length": self.header_length,
            "file_size": self.file_size,
            "metadata": {k: plain(v) for k, v in self.metadata.items()},
        }


class _Reader:
    """A cursor over the prefix that knows what to raise when it runs out of bytes."""

    def __init__(self, data: bytes, file_size: int | None, endian: str):
        self.data = memoryview(data)
        self.file_size = file_size
        self.endian = endian
        self.pos = 0

    def need(self, n: int) -> None:
        end = self.pos + n
        if end <= len(self.data):
            return
        if self.file_size is not None and end > self.file_size:
            raise InvalidWeightsFile(
                f"GGUF header is truncated: needs at least {end} bytes, file has {self.file_size}"
            )
        raise NeedMoreBytes(end)

    def number(self, code: str, size: int) -> Any:
        self.need(size)
        (value,) = struct.unpack_from(self.endian + code, self.data, self.pos)
        self.pos += size
        return value

    def u32(self) -> int:
        return self.number("I", 4)

    def u64(self) -> int:
        return self.number("Q", 8)

    def string_length(self, what: str) -> int:
        n = self.u64()
        if n > MAX_STRING_BYTES:
            raise InvalidWeightsFile(f"GGUF {what} declares an implausible string of {n} bytes")
        self.need(n)
        return n

    def string(self, what: str) -> str:
        n = self.string_length(what)
        raw = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        n = self.string_length(what)  # reads the length first: ``self.pos += ...`` would lose that
        self.pos += n

    def value(self, value_type: int, key: str, depth: int = 0) -> Any:
        if value_type in VALUE_TYPES:
            _, code, size = VALUE_TYPES[value_type]
            return self.number(code, size)
        if value_type == STRING:
            return self.string(f"value of {key!r}")
        if value_type == ARRAY:
            if depth > 4:
                raise InvalidWeightsFile(f"GGUF value of {key!r} nests arrays too deeply")
            item_type = self.u32()
            length = self.u64()
            if length > MAX_ARRAY_LENGTH:
                raise InvalidWeightsFile(f"GGUF array {key!r} declares an implausible length {length}")
            return self.array(item_type, length, key, depth)
        raise InvalidWeightsFile(f"GGUF key {key!r} has unknown value type {value_type}")

    def array(self, item_type: int, length: int, key: str, depth: int) -> GGUFArray:
        if item_type in VALUE_TYPES:
            name, code, size = VALUE_TYPES[item_type]
            if length <= INLINE_NUMBER_ARRAY:
                self.need(length * size)
                values = struct.unpack_from(f"{self.endian}{length}{code}", self.data, self.pos)
                self.pos += length * size
                return GGUFArray(name, length, tuple(values))
            self.need(length * size)
            self.pos += length * size
            return GGUFArray(name, length)
        if item_type == STRING:
            if length <= INLINE_STRING_ARRAY:
                items = tuple(self.string(f"array {key!r}") for _ in range(length))
                return GGUFArray("string", length, items)
            for _ in range(length):
                self.skip_string(f"array {key!r}")
            return GGUFArray("string", length)
        if item_type == ARRAY:
            items = [self.value(ARRAY, key, depth + 1) for _ in range(length)]
            return GGUFArray("array", length, tuple(items) if length <= INLINE_STRING_ARRAY else None)
        raise InvalidWeightsFile(f"GGUF array {key!r} has unknown item type {item_type}")


def parse_header(prefix: bytes, file_size: int | None = None) -> GGUFHeader:
    """Parse the GGUF header at the start of ``prefix``.

    ``file_size`` (when known) turns "the prefix is too short" into "the file is truncated" and lets
    the reader check that every tensor's data lies inside the file.  Raises
    :class:`~models_registry.inspection.NeedMoreBytes` when ``prefix`` stops inside the header and
    :class:`~models_registry.inspection.InvalidWeightsFile` when the bytes are not a GGUF v2/v3 file.
    """
    if len(prefix) < 8:
        if file_size is not None and file_size < 8:
            raise InvalidWeightsFile(f"file of {file_size} bytes is too small to be GGUF")
        raise NeedMoreBytes(8)
    if prefix[:4] != MAGIC:
        raise InvalidWeightsFile(f"not a GGUF file: magic is {bytes(prefix[:4])!r}, expected b'GGUF'")
    (version,) = struct.unpack_from("<I", prefix, 4)
    endian, byte_order = "<", "little"
    if version & 0xFFFF == 0 and struct.unpack_from(">I", prefix, 4)[0] in SUPPORTED_VERSIONS:
        endian, byte_order = ">", "big"
        version = struct.unpack_from(">I", prefix, 4)[0]
    if version not in SUPPORTED_VERSIONS:
        raise InvalidWeightsFile(f"GGUF version {version} is not supported (only 2 and 3)")

    reader = _Reader(prefix, file_size, endian)
    reader.pos = 8
    tensor_count = reader.u64()
    kv_count = reader.u64()
    if tensor_count > MAX_TENSOR_COUNT or kv_count > MAX_KV_COUNT:
        raise InvalidWeightsFile(
            f"GGUF header declares an implausible {tensor_count} tensors and {kv_count} metadata keys"
        )

    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string("metadata key")
        value_type = reader.u32()
        if key in metadata:
            raise InvalidWeightsFile(f"GGUF metadata key {key!r} appears twice")
        metadata[key] = reader.value(value_type, key)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or (
        alignment & (alignment - 1)
    ):
        raise InvalidWeightsFile(f"GGUF general.alignment {alignment!r} is not a power of two")

    tensors: list[GGUFTensor] = []
    names: set[str] = set()
    for _ in range(tensor_count):
        name = reader.string("tensor name")
        n_dims = reader.u32()
        if n_dims > MAX_DIMS:
            raise InvalidWeightsFile(f"GGUF tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        dims = tuple(reader.u64() for _ in range(n_dims))
        ggml_type = reader.u32()
        offset = reader.u64()
        if name in names:
            raise InvalidWeightsFile(f"GGUF tensor {name!r} appears twice")
        names.add(name)
        tensor = GGUFTensor(name, dims, ggml_type, offset)
        known = GGML_TYPES.get(ggml_type)
        if known and dims and dims[0] % known[1]:
            raise InvalidWeightsFile(
                f"GGUF tensor {name!r} has a row of {dims[0]} elements, not a multiple of the "
                f"{known[0]} block size {known[1]}"
            )
        if offset % alignment:
            raise InvalidWeightsFile(
                f"GGUF tensor {name!r} starts at offset {offset}, not aligned to {alignment}"
            )
        tensors.append(tensor)

    header_length = reader.pos
    data_offset = -(-header_length // alignment) * alignment
    if file_size is not None:
        for t in tensors:
            end = data_offset + t.offset + (t.nbytes or 0)
            if end > file_size:
                raise InvalidWeightsFile(
                    f"GGUF data is truncated: tensor {t.name!r} ends at byte {end}, file has {file_size}"
                )
    return GGUFHeader(
        version=version,
        byte_order=byte_order,
        metadata=metadata,
        tensors=tuple(tensors),
        header_length=header_length,
        alignment=alignment,
        data_offset=data_offset,
        file_size=file_size,
    )
