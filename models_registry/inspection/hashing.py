"""What the hash program prints (``programs/hash_files.py`` and its shell fallback), line by line.

:func:`parse_hash_line` turns one line into a :class:`HashEvent`; :class:`HashTracker` follows a whole
stream of them (progress while verifying, then which files got no digest, and why). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HashEvent", "HashTracker", "parse_hash_line"]

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
    """Parse one output line of ``hash_command``; ``None`` for noise or a garbled line.

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


class HashTracker:
    """Follows the output of ``hash_command`` line by line, as it streams from the node.

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
