"""Where a model version's weights lie: parsing and validating ``source_uri``.

Accepted forms (docs/models.md):

* ``/abs/path/to/dir`` -- a directory on a node (the version's ``node``; ``local`` by default), or on
  storage that node mounts; the console can inspect and verify it;
* ``file:///abs/path`` -- the same, spelled as a URL (host empty or ``localhost``);
* ``hf://org/name[@revision]`` -- a Hugging Face Hub repository, optionally pinned to a revision;
* ``modelscope://org/name[@revision]`` -- a ModelScope repository;
* ``s3://bucket/key`` -- an object-store prefix.

Only the two path forms have files the console can reach; the others are references (catalog
entries, or weights an engine downloads itself). Pure: no Django, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_LENGTH = 1024

# Hub ids: an owner and a repository name of letters, digits, ``-``, ``_`` and ``.`` (Hugging Face's
# rule; ModelScope's is the same), not starting with a separator and without ``..``.
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REVISION = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}"
_HUB = re.compile(rf"^(?P<org>{_HUB_PART})/(?P<name>{_HUB_PART})(?:@(?P<revision>{_REVISION}))?$")
# S3 bucket names: 3-63 characters, lower-case letters, digits, dots and hyphens, starting and
# ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SCHEMES = ("path", "file", "hf", "modelscope", "s3")


class InvalidSourceURI(ValueError):
    """A ``source_uri`` that is not one of the accepted forms; the message says what is wrong."""


@dataclass(frozen=True)
class SourceURI:
    """A parsed ``source_uri``. ``path`` is set for the forms with files on a node."""

    scheme: str  # one of SCHEMES
    uri: str  # the normalised text to store
    path: str | None = None
    repository: str | None = None  # org/name (hub) or bucket (s3)
    revision: str | None = None
    key: str | None = None

    @property
    def on_node(self) -> bool:
        """True when the weights are a directory the console can inspect on a node."""
        return self.path is not None


def _check_path(path: str, original: str) -> str:
    if not path.startswith("/"):
        raise InvalidSourceURI(f"{original!r} is not an absolute path")
    parts = path.split("/")
    if ".." in parts or "." in parts:
        raise InvalidSourceURI(f"{original!r}: write the path without '.' or '..' components")
    normalised = re.sub(r"/{2,}", "/", path)
    return normalised.rstrip("/") or "/"


def parse_source_uri(value: str) -> SourceURI:
    """Parse and validate ``value``; raise :class:`InvalidSourceURI` with a readable reason."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidSourceURI("a source URI is required")
    if len(value) > MAX_LENGTH:
        raise InvalidSourceURI(f"a source URI is at most {MAX_LENGTH} characters")
    if value != value.strip():
        raise InvalidSourceURI("a source URI has no leading or trailing blanks")
    if _CONTROL.search(value):
        raise InvalidSourceURI("a source URI may not contain control characters (newlines, tabs, NUL)")

    if value.startswith("/"):
        path = _check_path(value, value)
        if path == "/":
            raise InvalidSourceURI("the root directory is not a model directory")
        return SourceURI("path", path, path=path)

    scheme, sep, rest = value.partition("://")
    if not sep:
        raise InvalidSourceURI(
            f"{value!r} is neither an absolute path nor a URI; use /path/on/node, file:///path, "
            "hf://org/name@revision, modelscope://org/name or s3://bucket/key"
        )
    scheme = scheme.lower()
    if scheme == "file":
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost"):
            raise InvalidSourceURI(f"{value!r}: a file:// URI names a path on the version's node, not a host "
                                   "(write file:///path)")
        if parts.query or parts.fragment:
            raise InvalidSourceURI(f"{value!r}: a file:// URI has no query or fragment")
        path = _check_path(unquote(parts.path), value)
        if path == "/":
            raise InvalidSourceURI("the root directory is not a model directory")
        return SourceURI("file", f"file://{path}", path=path)
    if scheme in ("hf", "modelscope"):
        match = _HUB.match(rest)
        if not match or ".." in rest:
            example = "hf://deepseek-ai/DeepSeek-R1@main" if scheme == "hf" else "modelscope://Qwen/Qwen2.5-7B-Instruct"
            raise InvalidSourceURI(f"{value!r} is not a {scheme}:// repository; write {scheme}://org/name"
                                   f"[@revision], e.g. {example}")
        repository = f"{match['org']}/{match['name']}"
        revision = match["revision"]
        uri = f"{scheme}://{repository}" + (f"@{revision}" if revision else "")
        return SourceURI(scheme, uri, repository=repository, revision=revision)
    if scheme == "s3":
        bucket, slash, key = rest.partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise InvalidSourceURI(f"{value!r}: {bucket!r} is not a valid S3 bucket name "
                                   "(3-63 lower-case letters, digits, dots or hyphens)")
        if not slash or not key.strip("/"):
            raise InvalidSourceURI(f"{value!r}: name the object prefix too, s3://bucket/key")
        return SourceURI("s3", f"s3://{bucket}/{key}", repository=bucket, key=key)
    raise InvalidSourceURI(
        f"unsupported scheme {scheme!r}; use an absolute path, file://, hf://, modelscope:// or s3://"
    )
