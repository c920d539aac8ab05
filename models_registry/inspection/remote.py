"""Programs that inspect and hash a model directory *on a node*, and parsers for what they print.

The console never copies weights: it runs a small program where the files are (locally, or over SSH
on a cluster node) and reads its standard output.  This module only builds argv lists and parses
text; running them is the caller's business (``subprocess.run(argv)`` locally, or
``remote_command_line(argv)`` as the command of an SSH exec channel).

Both programs are stdlib-only Python that runs on Python 2.7 and 3.x (nodes often carry an old
interpreter and no packages).  They travel base64-encoded as argv elements, started by a one-line
POSIX ``sh`` wrapper that picks ``python3`` or ``python``; the directory and the file names are
*always* separate argv elements, never spliced into shell text, so a directory called
``models/$(reboot)`` is just a directory.

``inspect_command(directory)`` prints one line ``@@inspect <json>``: every regular file under the
directory (recursively; dot-directories skipped; file symlinks followed, so Hugging Face cache
snapshots work) with size and mtime, the first ``8 + N`` bytes of every ``*.safetensors`` file, the
header of every ``*.gguf`` file (walked on the node so that only the metadata and tensor table travel;
at most 1 MiB when the walk fails), and the text of ``config.json``, ``*.index.json`` and msModelSlim's
``quant_model_description*.json``.  :func:`parse_inspect_output` applies the header parsers.

``hash_command(directory, files)`` streams sha256 over each file and prints line-oriented progress
(see :func:`parse_hash_line`).
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
import shlex
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

# ------------------------------------------------------------------------------------------------
# Node-side programs (Python 2.7 / 3.x, stdlib only: no f-strings, no pathlib)
# ------------------------------------------------------------------------------------------------

INSPECT_PROGRAM = r'''
import base64, json, os, stat, struct, sys

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
'''

HASH_PROGRAM = r'''
import errno, hashlib, os, stat, subprocess, sys, time

CHUNK = 1 << 20
INTERVAL = 0.5
CALIBRATE_ABOVE = 256 << 20


def esc(path):
    return path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def native(data):
    """bytes -> the native str type (bytes stay bytes on Python 2, so paths never mix encodings)."""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def which(name):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def hash_python(path, report):
    h = hashlib.sha256()
    done = 0
    last = time.time()
    f = open(path, "rb")
    try:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            h.update(block)
            done += len(block)
            now = time.time()
            if now - last >= INTERVAL:
                report(done)
                last = now
    finally:
        f.close()
    return h.hexdigest(), done


def proc_position(pid, target, cache):
    try:
        if "fd" not in cache:
            base = "/proc/%d/fd" % pid
            for fd in os.listdir(base):
                if os.path.realpath(os.path.join(base, fd)) == target:
                    cache["fd"] = fd
                    break
            else:
                return None
        f = open("/proc/%d/fdinfo/%s" % (pid, cache["fd"]))
        try:
            for line in f:
                if line.startswith("pos:"):
                    return int(line.split()[1])
        finally:
            f.close()
    except (OSError, IOError, ValueError):
        return None
    return None


def wait(proc, seconds):
    if sys.version_info[0] >= 3:
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.02)
    return proc.poll() is not None


def hash_tool(tool, path, size, report):
    proc = subprocess.Popen([tool, "-b", "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = os.path.realpath(path)
    cache = {}
    while not wait(proc, INTERVAL):
        pos = proc_position(proc.pid, target, cache)
        if pos is not None:
            report(min(pos, size))
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise IOError(native(err).strip() or "sha256sum failed")
    digest = native(out.split()[0]).lstrip("\\")
    return digest, None


def calibrate(tool):
    """Return the faster way to hash on this node: the sha256sum tool or Python's hashlib."""
    data = b"\0" * (32 << 20)
    start = time.time()
    hashlib.sha256(data).hexdigest()
    python_seconds = time.time() - start
    start = time.time()
    proc = subprocess.Popen([tool], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.communicate(data)
    tool_seconds = time.time() - start
    return "python" if python_seconds * 1.1 < tool_seconds else "sha256sum"


def fingerprint(st):
    return (st.st_size, st.st_mtime, st.st_ino, st.st_dev)


def main():
    method, root, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    if not os.path.isdir(root):
        emit("@@fatal " + esc("%s is not a directory" % root))
        return 2
    sizes = {}
    for name in names:
        try:
            sizes[name] = os.stat(os.path.join(root, name)).st_size
        except OSError:
            sizes[name] = 0
    total = sum(sizes.values())
    tool = which("sha256sum")
    if method == "auto":
        if tool is None:
            method = "python"
        elif total >= CALIBRATE_ABOVE:
            method = calibrate(tool)
        else:
            method = "python"
    if method == "sha256sum" and tool is None:
        method = "python"
    emit("@@plan %d %d" % (total, len(names)))
    emit("@@method " + method)
    ok = failed = 0
    for name in names:
        parts = name.split("/")
        if not name or name.startswith("/") or ".." in parts:
            emit("@@error %s\t%s" % (esc(name), "refused: path leaves the directory"))
            failed += 1
            continue
        path = os.path.join(root, name)
        try:
            before = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                emit("@@missing " + esc(name))
            else:
                emit("@@error %s\t%s" % (esc(name), exc.strerror or str(exc)))
            failed += 1
            continue
        if not stat.S_ISREG(before.st_mode):
            emit("@@error %s\t%s" % (esc(name), "not a regular file"))
            failed += 1
            continue
        size = before.st_size

        def report(done, name=name, size=size):
            emit("@@progress %s %d %d" % (esc(name), done, size))

        report(0)
        try:
            if method == "sha256sum":
                digest, done = hash_tool(tool, path, size, report)
            else:
                digest, done = hash_python(path, report)
            after = os.stat(path)
        except (IOError, OSError) as exc:
            emit("@@error %s\t%s" % (esc(name), getattr(exc, "strerror", None) or str(exc)))
            failed += 1
            continue
        if fingerprint(before) != fingerprint(after) or (done is not None and done != size):
            emit("@@changed %s\tchanged while it was hashed: size %d -> %d bytes, mtime %.6f -> %.6f%s" % (
                esc(name), before.st_size, after.st_size, before.st_mtime, after.st_mtime,
                "" if (before.st_ino, before.st_dev) == (after.st_ino, after.st_dev) else ", file replaced"))
            failed += 1
            continue
        report(size)
        emit("@@sha256 %s %s" % (digest, esc(name)))
        ok += 1
    emit("@@done %d %d" % (ok, failed))
    return 0 if failed == 0 else 1


sys.exit(main())
'''

#: Used by the ``sh`` wrapper when neither ``python3`` nor ``python`` exists: ``sha256sum`` + GNU ``stat``.
#: Arguments: method, directory, files...  (paths with newlines are not escaped on this path).
HASH_SHELL_FALLBACK = r"""shift
dir=$1
shift
if ! cd -- "$dir" 2>/dev/null; then printf '@@fatal %s is not a directory\n' "$dir"; exit 2; fi
total=0
for f in "$@"; do s=$(stat -L -c %s -- "$f" 2>/dev/null || echo 0); total=$((total + s)); done
printf '@@plan %s %s\n@@method sha256sum\n' "$total" "$#"
ok=0
failed=0
for f in "$@"; do
  case "/$f/" in */../*)
    printf '@@error %s\trefused: path leaves the directory\n' "$f"; failed=$((failed + 1)); continue;;
  esac
  if [ ! -e "$f" ]; then printf '@@missing %s\n' "$f"; failed=$((failed + 1)); continue; fi
  if [ ! -f "$f" ]; then printf '@@error %s\tnot a regular file\n' "$f"; failed=$((failed + 1)); continue; fi
  before=$(stat -L -c '%s %Y %i %d' -- "$f")
  size=${before%% *}
  printf '@@progress %s 0 %s\n' "$f" "$size"
  if ! out=$(sha256sum -b -- "$f" 2>&1); then
    printf '@@error %s\t%s\n' "$f" "$out"; failed=$((failed + 1)); continue
  fi
  after=$(stat -L -c '%s %Y %i %d' -- "$f" 2>/dev/null)
  if [ "$before" != "$after" ]; then
    printf '@@changed %s\tchanged while it was hashed: size/mtime/inode %s -> %s\n' "$f" "$before" "$after"
    failed=$((failed + 1)); continue
  fi
  digest=${out%% *}
  digest=${digest#\\}
  printf '@@progress %s %s %s\n@@sha256 %s %s\n' "$f" "$size" "$size" "$digest" "$f"
  ok=$((ok + 1))
done
printf '@@done %s %s\n' "$ok" "$failed"
[ "$failed" -eq 0 ]
"""

#: ``python -c`` text that decodes and runs the base64 program passed as the next argument.
_BOOTSTRAP = "import base64,sys;exec(compile(base64.b64decode(sys.argv.pop(1)),'<boom>','exec'))"

#: One-line POSIX sh wrappers: no newlines, backslashes or ``!`` so they survive any login shell.
_INSPECT_WRAPPER = (
    'b=$1; p=$2; shift 2; for py in python3 python; do if command -v "$py" >/dev/null 2>&1; '
    'then exec "$py" -c "$b" "$p" "$@"; fi; done; '
    "echo '@@inspect {\"error\": \"neither python3 nor python is installed on this node\"}'; exit 127"
)
_HASH_WRAPPER = (
    'b=$1; p=$2; s=$3; shift 3; for py in python3 python; do if command -v "$py" >/dev/null 2>&1; '
    'then exec "$py" -c "$b" "$p" "$@"; fi; done; exec sh -c "$s" boom-hash-sh "$@"'
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


_INSPECT_B64 = _b64(INSPECT_PROGRAM)
_HASH_B64 = _b64(HASH_PROGRAM)

HASH_METHODS = ("auto", "python", "sha256sum")


def _check_directory(directory: str) -> str:
    if not isinstance(directory, str) or not directory or "\0" in directory:
        raise ValueError("directory must be a non-empty path without NUL bytes")
    return directory


def inspect_command(directory: str) -> list[str]:
    """argv that inspects ``directory`` on the machine that runs it; prints one ``@@inspect`` line.

    The directory is the last argv element, verbatim.  Locally: ``subprocess.run(argv)``; over SSH:
    send ``remote_command_line(argv)``.
    """
    directory = _check_directory(directory)
    return ["sh", "-c", _INSPECT_WRAPPER, "boom-inspect", _BOOTSTRAP, _INSPECT_B64, directory]


def check_relative_path(path: str) -> str:
    """Return ``path`` if it names a file inside a directory (relative, no ``..``), else raise ValueError."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"invalid file name {path!r}")
    if path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"file name {path!r} must be relative to the directory and stay inside it")
    return path


def hash_command(directory: str, files: list[str], method: str = "auto") -> list[str]:
    """argv that streams sha256 over each of ``files`` (relative paths) inside ``directory``.

    ``method``: ``auto`` (``sha256sum`` or hashlib, whichever is faster on the node; measured once
    when more than 256 MiB are to be hashed), ``python`` (hashlib, 1 MiB reads) or ``sha256sum``.
    Without any Python on the node a POSIX-shell loop over ``sha256sum`` is used.  Output lines are
    described at :func:`parse_hash_line`.
    """
    if method not in HASH_METHODS:
        raise ValueError(f"method must be one of {', '.join(HASH_METHODS)}")
    names = [check_relative_path(f) for f in files]
    return [
        "sh", "-c", _HASH_WRAPPER, "boom-hash", _BOOTSTRAP, _HASH_B64, HASH_SHELL_FALLBACK,
        method, _check_directory(directory), *names,
    ]


def remote_command_line(argv: list[str]) -> str:
    """The single command string an SSH exec request needs: each element quoted for a POSIX shell."""
    return shlex.join(argv)


# ------------------------------------------------------------------------------------------------
# Hash output
# ------------------------------------------------------------------------------------------------

_UNESCAPE = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}
_ESCAPED = re.compile(r"\\[\\nrt]")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _unescape(path: str) -> str:
    return _ESCAPED.sub(lambda m: _UNESCAPE[m.group(0)], path)


@dataclass(frozen=True)
class HashEvent:
    """One line of hash output; ``kind`` says which, and which fields are set:

    * ``@@plan <total_bytes> <file_count>`` -> ``total``, ``files``;
    * ``@@method <python|sha256sum>`` -> ``detail``;
    * ``@@progress <path> <bytes_done> <total>`` -> ``path``, ``bytes_done``, ``total``;
    * ``@@sha256 <hex> <path>`` -> ``sha256``, ``path``;
    * ``@@missing <path>``; ``@@changed <path>\\t<detail>``; ``@@error <path>\\t<detail>``;
    * ``@@fatal <detail>`` (the directory is unusable; no file was hashed);
    * ``@@done <ok> <failed>`` -> ``files`` (ok) and ``failed``: the program finished.

    Paths escape backslash, newline, carriage return and tab as ``\\\\``, ``\\n``, ``\\r``, ``\\t``.
    """

    kind: str
    path: str | None = None
    sha256: str | None = None
    bytes_done: int | None = None
    total: int | None = None
    files: int | None = None
    failed: int | None = None
    detail: str | None = None


def parse_hash_line(line: str) -> HashEvent | None:
    """Parse one output line of :func:`hash_command`; ``None`` for noise or a garbled line.

    A caller treats every requested file without a ``sha256`` event as failed, so a garbled line can
    never make a file look verified.
    """
    line = line.rstrip("\r\n")
    if not line.startswith("@@"):
        return None
    kind, _, rest = line[2:].partition(" ")
    try:
        if kind == "progress":
            path, done, total = rest.rsplit(" ", 2)
            return HashEvent("progress", path=_unescape(path), bytes_done=int(done), total=int(total))
        if kind == "sha256":
            digest, path = rest.split(" ", 1)
            if not _HEX64.fullmatch(digest) or not path:
                return None
            return HashEvent("sha256", path=_unescape(path), sha256=digest)
        if kind == "missing" and rest:
            return HashEvent("missing", path=_unescape(rest), detail="file is missing")
        if kind in ("changed", "error") and rest:
            path, _, detail = rest.partition("\t")
            return HashEvent(kind, path=_unescape(path), detail=detail or kind)
        if kind == "fatal":
            return HashEvent("fatal", detail=_unescape(rest))
        if kind == "plan":
            total, count = rest.split()
            return HashEvent("plan", total=int(total), files=int(count))
        if kind == "method" and rest:
            return HashEvent("method", detail=rest)
        if kind == "done":
            ok, failed = rest.split()
            return HashEvent("done", files=int(ok), failed=int(failed))
    except ValueError:
        return None
    return None


# ------------------------------------------------------------------------------------------------
# Inspect output
# ------------------------------------------------------------------------------------------------

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
    """Turn the standard output of :func:`inspect_command` into a :class:`DirectoryInspection`.

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


class HashTracker:
    """Follows the output of :func:`hash_command` line by line, as it streams from the node.

    ``progress`` (0..1, by bytes) is what the API shows while verifying; once the stream ends,
    :meth:`failures` names every expected file that did not get a digest, and why.
    """

    def __init__(self, expected: list[str]):
        self.expected = list(expected)
        self.sha256: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.total_bytes: int | None = None
        self.method: str | None = None
        self.fatal: str | None = None
        self.finished = False
        self._finished_bytes = 0
        self._current: tuple[str, int, int] | None = None

    def feed(self, line: str) -> HashEvent | None:
        """Take one output line; return its event (``None`` for noise)."""
        event = parse_hash_line(line)
        if event is None:
            return None
        if event.kind == "plan":
            self.total_bytes = event.total
        elif event.kind == "method":
            self.method = event.detail
        elif event.kind == "progress":
            self._current = (event.path, event.bytes_done, event.total)
        elif event.kind == "sha256":
            self.sha256[event.path] = event.sha256
            self._close(event.path)
        elif event.kind in ("missing", "changed", "error"):
            self.problems[event.path] = event.detail
            self._close(event.path)
        elif event.kind == "fatal":
            self.fatal = event.detail
        elif event.kind == "done":
            self.finished = True
        return event

    def _close(self, path: str) -> None:
        if self._current and self._current[0] == path:
            self._finished_bytes += self._current[2]
        self._current = None

    @property
    def progress(self) -> float:
        """Fraction of the planned bytes hashed so far (1.0 once finished)."""
        if self.finished:
            return 1.0
        if not self.total_bytes:
            done = len(self.sha256) + len(self.problems)
            return min(1.0, done / len(self.expected)) if self.expected else 0.0
        current = self._current[1] if self._current else 0
        return min(1.0, (self._finished_bytes + current) / self.total_bytes)

    def failures(self) -> dict[str, str]:
        """Every expected file without a digest, with the reason (to call once the stream ended)."""
        result = dict(self.problems)
        for path in self.expected:
            if path not in self.sha256 and path not in result:
                result[path] = self.fatal or "no result: the hash program stopped before this file"
        return result
