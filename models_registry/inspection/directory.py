"""What the inspection program prints (``programs/inspect_directory.py``), turned into a
:class:`DirectoryInspection`: files, weight format, parsed weight headers, architecture, parameters,
dtype and quantization. Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

from models_registry.inspection import (
    InspectionError,
    InspectionFailed,
    InvalidConfig,
    InvalidWeightsFile,
    NeedMoreBytes,
    NoWeights,
    gguf_header,
    safetensors_header,
)
from models_registry.inspection.config import ModelArchitecture, parse_config
from models_registry.quantization import (
    QUANTIZATIONS,
    quantization_from_config,
    quantization_from_msmodelslim,
)

__all__ = [
    "FORMAT_PRIORITY",
    "NOT_WEIGHTS",
    "WEIGHT_SUFFIXES",
    "DirectoryInspection",
    "FileInfo",
    "WeightFile",
    "parse_inspect_output",
    "weight_format",
]

#: File-name suffix -> weight format; the first format present in a directory wins.
WEIGHT_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".safetensors", "safetensors"),
    (".gguf", "gguf"),
    (".bin", "pytorch"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
    (".ckpt", "mindspore"),
    (".om", "om"),
    (".mindir", "mindir"),
    (".onnx", "onnx"),
)
FORMAT_PRIORITY = ("safetensors", "gguf", "pytorch", "mindspore", "om", "mindir", "onnx")
#: PyTorch-suffixed files that training leaves next to a checkpoint but that hold no weights.
NOT_WEIGHTS = re.compile(r"(^|/)(training_args\.bin|optimizer\.pt|scheduler\.pt|rng_state[^/]*\.pth)$")
_GGUF_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


class FileInfo(TypedDict):
    """A regular file found under the directory (path relative to it, with ``/``)."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class WeightFile:
    """A weights file and, for safetensors and GGUF, its parsed header (``None`` when unreadable)."""

    path: str
    format: str
    size: int
    header: safetensors_header.SafetensorsHeader | gguf_header.GGUFHeader | None = None

    @property
    def parameters(self) -> int | None:
        """Parameters this file holds according to its header."""
        return self.header.parameters if self.header is not None else None


@dataclass
class DirectoryInspection:
    """What :func:`parse_inspect_output` learnt about a model directory.

    ``errors`` lists per-file problems as ``"<path>: <reason>"`` (a truncated shard, an unreadable
    file, a shard named in the index but absent); when it is not empty ``parameters`` may be ``None``
    and callers should fail the import with :meth:`raise_for_errors`.
    """

    directory: str
    files: list[FileInfo]
    config: ModelArchitecture | None
    weights: list[WeightFile]
    parameters: int | None
    format: str
    dtype: str | None
    quantization: str | None
    errors: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        """Total size of all files."""
        return sum(f["size"] for f in self.files)

    @property
    def weight_bytes(self) -> int:
        """Total size of the weight files of :attr:`format`."""
        return sum(w.size for w in self.weights if w.format == self.format)

    def raise_for_errors(self) -> None:
        """Raise :class:`InvalidWeightsFile` naming every problem, if there is any."""
        if self.errors:
            raise InvalidWeightsFile("; ".join(self.errors))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (headers reduced to their summaries)."""
        return {
            "directory": self.directory,
            "format": self.format,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "parameters": self.parameters,
            "size_bytes": self.size_bytes,
            "files": [dict(f) for f in self.files],
            "config": self.config.to_dict() if self.config else None,
            "weights": [
                {"path": w.path, "format": w.format, "size": w.size,
                 "header": w.header.to_dict() if w.header is not None else None}
                for w in self.weights
            ],
            "errors": list(self.errors),
        }


def weight_format(path: str) -> str | None:
    """The weight format a file name suggests (``model-00001-of-00002.safetensors`` -> ``safetensors``)."""
    lower = path.lower()
    if NOT_WEIGHTS.search(lower):
        return None
    for suffix, fmt in WEIGHT_SUFFIXES:
        if lower.endswith(suffix):
            return fmt
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _find_document(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("@@inspect "):
            try:
                document = json.loads(line[len("@@inspect "):])
            except json.JSONDecodeError as exc:
                raise InspectionFailed(f"node sent an unreadable inspection result: {exc.msg}") from None
            if isinstance(document, dict):
                return document
    excerpt = text.strip()[:200] or "nothing"
    raise InspectionFailed(f"node printed no inspection result: {excerpt}")


def _no_weights(directory: str, files: list[FileInfo]) -> NoWeights:
    if not files:
        return NoWeights(f"no weights in {directory}: the directory holds no files")
    names = [f["path"] for f in files[:5]]
    more = f" and {len(files) - 5} more" if len(files) > 5 else ""
    return NoWeights(
        f"no weights in {directory}: found {', '.join(names)}{more} "
        "but no *.safetensors, *.gguf, *.bin, *.pt, *.pth, *.ckpt, *.om, *.mindir or *.onnx file"
    )


def _parse_weight(entry: FileInfo, fmt: str, header: dict[str, Any] | None) -> WeightFile:
    if fmt not in ("safetensors", "gguf"):
        return WeightFile(entry["path"], fmt, entry["size"])
    if not isinstance(header, dict) or not isinstance(header.get("prefix"), str):
        raise InvalidWeightsFile("header was not read")
    try:
        prefix = base64.b64decode(header["prefix"], validate=True)
    except ValueError:
        raise InvalidWeightsFile("header bytes were garbled on the way from the node") from None
    parser = safetensors_header.parse_header if fmt == "safetensors" else gguf_header.parse_header
    try:
        parsed = parser(prefix, entry["size"])
    except NeedMoreBytes:
        raise InvalidWeightsFile(
            f"header is larger than the {len(prefix)} bytes read from the node (or the file changed)"
        ) from None
    return WeightFile(entry["path"], fmt, entry["size"], parsed)


def _check_indexes(texts: dict[str, str], present: set[str]) -> list[str]:
    errors = []
    for name, text in sorted(texts.items()):
        if not name.endswith(".index.json"):
            continue
        try:
            weight_map = json.loads(text).get("weight_map")
        except (json.JSONDecodeError, AttributeError):
            errors.append(f"{name}: not a JSON object with a weight_map")
            continue
        if not isinstance(weight_map, dict):
            continue
        shards = {v for v in weight_map.values() if isinstance(v, str)}
        missing = sorted(shards - present)
        if missing:
            errors.append(f"{name}: references missing shard(s) {', '.join(missing)}")
    return errors


def parse_inspect_output(text: str) -> DirectoryInspection:
    """Turn the standard output of ``inspect_command`` into a :class:`DirectoryInspection`.

    Raises :class:`InspectionFailed` when the program could not inspect the directory (it does not
    exist, no Python on the node, garbage output) and :class:`NoWeights` when the directory holds
    no weight file.  Problems with single files end up in ``errors``.
    """
    document = _find_document(text)
    directory = str(document.get("directory") or "?")
    if document.get("error"):
        raise InspectionFailed(str(document["error"]))
    try:
        files: list[FileInfo] = [
            FileInfo(path=str(f["path"]), size=int(f["size"]), mtime=float(f["mtime"]))
            for f in document.get("files") or []
        ]
    except (TypeError, ValueError, KeyError):
        raise InspectionFailed("node sent a malformed file list") from None
    headers = _mapping(document.get("headers"))
    texts = {k: v for k, v in _mapping(document.get("texts")).items() if isinstance(v, str)}
    errors = [
        f"{e.get('path')}: {e.get('error')}"
        for e in (document.get("errors") if isinstance(document.get("errors"), list) else [])
        if isinstance(e, dict)
    ]

    weights: list[WeightFile] = []
    failed_formats: set[str] = set()
    for entry in files:
        fmt = weight_format(entry["path"])
        if fmt is None:
            continue
        try:
            weights.append(_parse_weight(entry, fmt, headers.get(entry["path"])))
        except InspectionError as exc:
            errors.append(f"{entry['path']}: {exc}")
            failed_formats.add(fmt)
            weights.append(WeightFile(entry["path"], fmt, entry["size"]))
    if not weights:
        raise _no_weights(directory, files)

    present_formats = {w.format for w in weights}
    fmt = next(f for f in FORMAT_PRIORITY if f in present_formats)
    chosen = [w for w in weights if w.format == fmt]
    errors += _check_indexes(texts, {f["path"] for f in files})

    config: ModelArchitecture | None = None
    if "config.json" in texts:
        try:
            config = parse_config(texts["config.json"])
        except InvalidConfig as exc:
            errors.append(f"config.json: {exc}")

    parameters: int | None = None
    if fmt in ("safetensors", "gguf") and fmt not in failed_formats:
        parameters = sum(w.parameters or 0 for w in chosen)

    dtype: str | None = None
    quantization: str | None = None
    if fmt == "safetensors" and fmt not in failed_formats:
        histogram: dict[str, int] = {}
        for w in chosen:
            for name, count in w.header.dtypes.items():  # type: ignore[union-attr]
                histogram[name] = histogram.get(name, 0) + count
        if histogram:
            top = max(histogram, key=lambda k: histogram[k])
            dtype = safetensors_header.DTYPE_NAMES.get(top, top.lower())
    elif fmt == "gguf" and fmt not in failed_formats:
        models = {
            _GGUF_SPLIT.sub(".gguf", posixpath.basename(w.path).lower())
            for w in chosen
            if not posixpath.basename(w.path).lower().startswith("mmproj")
        }
        if len(models) > 1:
            errors.append(
                f"{directory}: holds {len(models)} different GGUF models ({', '.join(sorted(models))}); "
                "register each one from a directory of its own"
            )
        primary = [w.header for w in chosen if isinstance(w.header, gguf_header.GGUFHeader)
                   and w.header.architecture and not posixpath.basename(w.path).lower().startswith("mmproj")]
        if primary:
            head = max(primary, key=lambda h: h.parameters)
            dominant = next(iter(head.tensor_types), None)
            dtype = dominant.lower() if dominant else None
            quantization = head.quantization
            if config is None:
                config = head.to_architecture()

    for name, body in sorted(texts.items()):
        if quantization is None and name.startswith("quant_model_description"):
            try:
                description = json.loads(body)
            except json.JSONDecodeError:
                continue
            if isinstance(description, dict):
                quantization = quantization_from_msmodelslim(description)
    if quantization is None and config is not None:
        quantization = quantization_from_config(config.quantization_config, config.torch_dtype)
        if config.quantization_config is None and dtype in QUANTIZATIONS:
            quantization = dtype
    if quantization is None and dtype in QUANTIZATIONS:
        quantization = dtype

    return DirectoryInspection(
        directory=directory,
        files=files,
        config=config,
        weights=weights,
        parameters=parameters,
        format=fmt,
        dtype=dtype,
        quantization=quantization,
        errors=errors,
    )
