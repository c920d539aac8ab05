"""Programs that inspect and hash a model directory *on a node*: the argv that runs them.

The console never copies weights: it runs a small program where the files are (locally, or over SSH
on a cluster node) and reads its standard output.  This module only builds argv lists; running them
is the node's transport's business (``transport_for(node).run(argv)``), and what they print is
parsed by :mod:`.directory` (inspection) and :mod:`.hashing` (hashes).

The programs are files in ``programs/``: stdlib-only Python that runs on Python 2.7 and 3.x (nodes
often carry an old interpreter and no packages), read once at import.  They travel base64-encoded as
argv elements, started by a one-line POSIX ``sh`` wrapper that picks ``python3`` or ``python``; the
directory and the file names are *always* separate argv elements, never spliced into shell text, so
a directory called ``models/$(reboot)`` is just a directory.

``inspect_command(directory)`` (``programs/inspect_directory.py``) prints one line
``@@inspect <json>``: every regular file under the directory (recursively; dot-directories skipped;
file symlinks followed, so Hugging Face cache snapshots work) with size and mtime, the first
``8 + N`` bytes of every ``*.safetensors`` file, the header of every ``*.gguf`` file (walked on the
node so that only the metadata and tensor table travel; at most 1 MiB when the walk fails), and the
text of ``config.json``, ``*.index.json`` and msModelSlim's ``quant_model_description*.json``.

``hash_command(directory, files)`` (``programs/hash_files.py``, or ``programs/hash_files.sh`` on a
node without Python) streams sha256 over each file and prints line-oriented progress (see
:func:`~models_registry.inspection.hashing.parse_hash_line`).
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

__all__ = [
    "HASH_METHODS",
    "HASH_PROGRAM",
    "HASH_SHELL_FALLBACK",
    "INSPECT_PROGRAM",
    "check_relative_path",
    "copy_files_command",
    "manifest_text",
    "receive_command",
    "send_command",
    "hash_command",
    "inspect_command",
    "remote_command_line",
]

_PROGRAMS = Path(__file__).resolve().parent / "programs"
#: The node-side programs, as they are sent.
INSPECT_PROGRAM = (_PROGRAMS / "inspect_directory.py").read_text(encoding="utf-8")
HASH_PROGRAM = (_PROGRAMS / "hash_files.py").read_text(encoding="utf-8")
COPY_PROGRAM = (_PROGRAMS / "copy_files.py").read_text(encoding="utf-8")
STREAM_PROGRAM = (_PROGRAMS / "stream_file.py").read_text(encoding="utf-8")
#: Writes stdin into ``<path>.boom-part`` and renames it once it has the expected size (plain sh).
RECEIVE_PROGRAM = (_PROGRAMS / "receive_file.sh").read_text(encoding="utf-8")
#: Used by the ``sh`` wrapper when neither ``python3`` nor ``python`` exists: ``sha256sum`` + GNU ``stat``.
#: Arguments: method, directory, files...  (paths with newlines are not escaped on this path).
HASH_SHELL_FALLBACK = (_PROGRAMS / "hash_files.sh").read_text(encoding="utf-8")

#: ``python -c`` text that decodes and runs the base64 program passed as the next argument.
_BOOTSTRAP = "import base64,sys;exec(compile(base64.b64decode(sys.argv.pop(1)),'<boom>','exec'))"

#: One-line POSIX sh wrappers: no newlines, backslashes or ``!`` so they survive any login shell.
_INSPECT_WRAPPER = (
    'b=$1; p=$2; shift 2; for py in python3 python; do if command -v "$py" >/dev/null 2>&1; '
    'then exec "$py" -c "$b" "$p" "$@"; fi; done; '
    "echo '@@inspect {\"error\": \"neither python3 nor python is installed on this node\"}'; exit 127"
)
#: A program with a shell fallback: arguments bootstrap, program, fallback shell text, then the program's own;
#: without Python the fallback runs with the program's arguments as $1... (hash_files.sh, cat, receive_file.sh).
_PYTHON_OR_SH_WRAPPER = (
    'b=$1; p=$2; s=$3; shift 3; for py in python3 python; do if command -v "$py" >/dev/null 2>&1; '
    'then exec "$py" -c "$b" "$p" "$@"; fi; done; exec sh -c "$s" "$0" "$@"'
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


_INSPECT_B64 = _b64(INSPECT_PROGRAM)
_COPY_B64 = _b64(COPY_PROGRAM)
_COPY_WRAPPER = (
    'b=$1; p=$2; shift 2; for py in python3 python; do if command -v "$py" >/dev/null 2>&1; '
    'then exec "$py" -c "$b" "$p" "$@"; fi; done; '
    "echo '@@fatal neither python3 nor python is installed on this node'; exit 127"
)
_HASH_B64 = _b64(HASH_PROGRAM)
_STREAM_B64 = _b64(STREAM_PROGRAM)
#: receive_file.sh reading its path and size as $2 and $3 (after stream_file.py's mode), as its fallback.
RECEIVE_PROGRAM_SHIFTED = 'shift; ' + RECEIVE_PROGRAM
#: Files this large or larger go through stream_file.py: Python's start (tens of milliseconds on a node) is
#: repaid many times over by the copies it saves.
STREAM_PROGRAM_MIN_BYTES = 64 << 20

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
        "sh", "-c", _PYTHON_OR_SH_WRAPPER, "boom-hash", _BOOTSTRAP, _HASH_B64, HASH_SHELL_FALLBACK,
        method, _check_directory(directory), *names,
    ]


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def manifest_text(files: list[tuple[str, int]]) -> str:
    """The manifest ``copy_files.py`` reads on its standard input: ``<size> <escaped path>`` lines."""
    return "".join(f"{int(size)} {_escape(check_relative_path(path))}\n" for path, size in files)


def copy_files_command(action: str, directory: str) -> list[str]:
    """argv of ``programs/copy_files.py``: ``plan`` (free space and the files already there) or
    ``remove`` (delete the manifest's files, then empty directories) in ``directory``; send
    :func:`manifest_text` as its standard input."""
    if action not in ("plan", "remove"):
        raise ValueError("action must be plan or remove")
    return ["sh", "-c", _COPY_WRAPPER, "boom-copy", _BOOTSTRAP, _COPY_B64, action, _check_directory(directory)]


def send_command(path: str, size: int) -> list[str]:
    """argv that writes one file's bytes to standard output (the source side of a copy): ``cat``, or for a
    file of STREAM_PROGRAM_MIN_BYTES or more ``programs/stream_file.py`` (the kernel moves the pages into
    sshd's pipe), ``cat`` again on a node without Python."""
    path = _check_directory(path)
    if int(size) < STREAM_PROGRAM_MIN_BYTES:
        return ["cat", "--", path]
    return ["sh", "-c", _PYTHON_OR_SH_WRAPPER, "boom-send", _BOOTSTRAP, _STREAM_B64, 'exec cat -- "$2"', "send", path]


def receive_command(path: str, size: int) -> list[str]:
    """argv that writes standard input to ``path`` (through ``path.boom-part``, renamed once ``size`` bytes
    arrived): the target side of a copy. ``programs/receive_file.sh``, or for a file of
    STREAM_PROGRAM_MIN_BYTES or more ``programs/stream_file.py`` (the kernel moves the pages from sshd's
    pipe into the file), that shell program again on a node without Python."""
    path, size = _check_directory(path), int(size)
    if size < STREAM_PROGRAM_MIN_BYTES:
        return ["sh", "-c", RECEIVE_PROGRAM, "boom-receive", path, str(size)]
    return ["sh", "-c", _PYTHON_OR_SH_WRAPPER, "boom-receive", _BOOTSTRAP, _STREAM_B64, RECEIVE_PROGRAM_SHIFTED,
            "receive", path, str(size)]


def remote_command_line(argv: list[str]) -> str:
    """The single command string an SSH exec request needs: each element quoted for a POSIX shell."""
    return shlex.join(argv)
