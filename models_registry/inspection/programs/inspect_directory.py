# ruff: noqa: UP004, UP024, UP031, UP036 - runs on the node's Python, 2.7 included: no f-strings, no pathlib
"""Inspect a model directory on a node; prints one line ``@@inspect <json>``.

Usage: ``python inspect_directory.py <directory>`` (in practice the console sends this file base64
encoded, see ``models_registry/inspection/remote.py``). Stdlib only, Python 2.7 and 3.x. The JSON
holds every regular file under the directory (size, mtime), the header bytes of safetensors and
GGUF files, and the text of config.json, *.index.json and quant_model_description*.json; it is
parsed by ``models_registry.inspection.directory.parse_inspect_output``.
"""
import base64
import json
import os
import stat
import struct
import sys

MAX_FILES = 100000
MAX_SAFETENSORS_HEADER = 100000000
GGUF_FALLBACK = 1 << 20
GGUF_MAX = 64 << 20
TEXT_MAX = 16 << 20
HEADER_BUDGET = 1 << 30
GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def clean(name):
    try:
        if isinstance(name, bytes):
            return name.decode("utf-8")
        name.encode("utf-8")
        return name
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None


def b64(data):
    return base64.b64encode(data).decode("ascii")


class Buffer(object):
    def __init__(self, f, limit):
        self.f = f
        self.limit = limit
        self.data = b""

    def ensure(self, end):
        if end <= len(self.data):
            return
        if end > self.limit:
            raise ValueError("header larger than %d bytes" % self.limit)
        want = min(self.limit, max(end, 2 * len(self.data), 1 << 16)) - len(self.data)
        self.data += self.f.read(want)
        if len(self.data) < end:
            raise ValueError("file ends inside its header")


def gguf_header(f):
    """Return the bytes of a GGUF header (through the tensor table), or raise ValueError."""
    buf = Buffer(f, GGUF_MAX)
    buf.ensure(24)
    if buf.data[:4] != b"GGUF":
        raise ValueError("bad magic")
    e = "<"
    version = struct.unpack_from("<I", buf.data, 4)[0]
    if version & 0xFFFF == 0:
        e = ">"
        version = struct.unpack_from(">I", buf.data, 4)[0]
    if version not in (2, 3):
        raise ValueError("unsupported version")
    n_tensors, n_kv = struct.unpack_from(e + "QQ", buf.data, 8)
    if n_tensors > (1 << 24) or n_kv > (1 << 20):
        raise ValueError("implausible counts")
    state = {"pos": 24}

    def take(n):
        pos = state["pos"]
        buf.ensure(pos + n)
        state["pos"] = pos + n
        return pos

    def unpack(fmt, size):
        pos = take(size)  # first: take() may grow buf.data
        return struct.unpack_from(e + fmt, buf.data, pos)

    def skip_string():
        n = unpack("Q", 8)[0]
        if n > (256 << 20):
            raise ValueError("implausible string")
        take(n)

    def skip_value(kind, depth):
        if kind in GGUF_SIZES:
            take(GGUF_SIZES[kind])
        elif kind == 8:
            skip_string()
        elif kind == 9 and depth < 5:
            item, count = unpack("IQ", 12)
            if item in GGUF_SIZES:
                take(GGUF_SIZES[item] * count)
            else:
                for _ in range(count):
                    skip_value(item, depth + 1)
        else:
            raise ValueError("unknown value type")

    for _ in range(n_kv):
        skip_string()
        skip_value(unpack("I", 4)[0], 0)
    for _ in range(n_tensors):
        skip_string()
        n_dims = unpack("I", 4)[0]
        if n_dims > 8:
            raise ValueError("implausible dimensions")
        take(8 * n_dims + 12)
    return buf.data[:state["pos"]]


def read_prefix(path, kind, size):
    f = open(path, "rb")
    try:
        if kind == "safetensors":
            data = f.read(8)
            if len(data) == 8:
                n = struct.unpack("<Q", data)[0]
                if n <= MAX_SAFETENSORS_HEADER and 8 + n <= size:
                    data += f.read(n)
            return data
        try:
            return gguf_header(f)
        except (ValueError, struct.error):
            f.seek(0)
            return f.read(GGUF_FALLBACK)
    finally:
        f.close()


def read_text(path, size):
    if size > TEXT_MAX:
        return None
    f = open(path, "rb")
    try:
        return f.read(TEXT_MAX).decode("utf-8", "replace")
    finally:
        f.close()


def is_text_wanted(rel):
    if "/" in rel:
        return False
    return (rel == "config.json" or rel.endswith(".index.json")
            or (rel.startswith("quant_model_description") and rel.endswith(".json")))


def main():
    root = sys.argv[1]
    out = {"directory": clean(root), "files": [], "headers": {}, "texts": {}, "errors": [],
           "truncated": False}
    if not os.path.isdir(root):
        out["error"] = ("%s does not exist" if not os.path.exists(root) else "%s is not a directory") % (
            clean(root) or repr(root))
        return out
    if not os.access(root, os.R_OK | os.X_OK):
        out["error"] = "%s is not readable" % (clean(root) or repr(root))
        return out
    errors = out["errors"]

    def walk_error(exc):
        errors.append({"path": clean(getattr(exc, "filename", "") or "") or "?",
                       "error": exc.strerror or str(exc)})

    budget = [HEADER_BUDGET]
    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = clean(os.path.relpath(full, root).replace(os.sep, "/"))
            if rel is None:
                errors.append({"path": repr(full), "error": "file name is not UTF-8; skipped"})
                continue
            try:
                st = os.stat(full)
            except OSError as exc:
                reason = "broken symbolic link" if os.path.islink(full) else (exc.strerror or str(exc))
                errors.append({"path": rel, "error": reason})
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if len(out["files"]) >= MAX_FILES:
                out["truncated"] = True
                errors.append({"path": rel, "error": "more than %d files; listing stopped" % MAX_FILES})
                return out
            out["files"].append({"path": rel, "size": st.st_size, "mtime": st.st_mtime})
            lower = rel.lower()
            kind = "safetensors" if lower.endswith(".safetensors") else (
                "gguf" if lower.endswith(".gguf") else None)
            try:
                if kind:
                    if budget[0] <= 0:
                        errors.append({"path": rel, "error": "header budget exhausted; not read"})
                        continue
                    data = read_prefix(full, kind, st.st_size)
                    budget[0] -= len(data)
                    out["headers"][rel] = {"format": kind, "prefix": b64(data)}
                elif is_text_wanted(rel):
                    text = read_text(full, st.st_size)
                    if text is None:
                        errors.append({"path": rel, "error": "larger than %d bytes; not read" % TEXT_MAX})
                    else:
                        out["texts"][rel] = text
            except (IOError, OSError) as exc:
                errors.append({"path": rel, "error": exc.strerror or str(exc)})
    return out


result = main()
sys.stdout.write("@@inspect " + json.dumps(result, sort_keys=True) + "\n")
sys.stdout.flush()
sys.exit(1 if result.get("error") else 0)
