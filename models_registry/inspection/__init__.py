"""Pure readers for model directories: weight-file headers, config.json and node-side programs.

Nothing in this package touches Django, the database or the network.  The submodules are:

* :mod:`.safetensors_header` -- validate and summarise the JSON header of a ``.safetensors`` file;
* :mod:`.gguf_header` -- read the metadata and tensor table of a GGUF v2/v3 file;
* :mod:`.config` -- turn a Hugging Face ``config.json`` into a :class:`~.config.ModelArchitecture`;
* :mod:`.memory` -- estimate accelerator memory (weights + KV cache + overhead);
* :mod:`.remote` -- argv for the programs (``programs/``) that inspect and hash a directory on a node;
* :mod:`.directory` -- parse what the inspection program prints into a ``DirectoryInspection``;
* :mod:`.hashing` -- parse what the hash program prints, and follow a verification's progress.

The exceptions live here so that every submodule (and the views that map them to HTTP answers)
shares one hierarchy.  All of them are :class:`ValueError` subclasses and carry a message that does not
name the file: callers prefix the path they know (``f"{path}: {exc}"``).
"""


class InspectionError(ValueError):
    """Base class of everything this package raises about bad input."""


class InvalidWeightsFile(InspectionError):
    """A weights file whose header is malformed, truncated or inconsistent with the file size."""


class NeedMoreBytes(InspectionError):
    """The prefix handed to a parser ends before the header does.

    ``needed`` is a lower bound of the prefix length (counted from the start of the file) that the
    parser needs to make progress; callers usually fetch ``max(needed, 2 * len(prefix))`` bytes,
    capped at the file size, and call the parser again.
    """

    def __init__(self, needed: int, message: str | None = None):
        self.needed = needed
        super().__init__(message or f"need at least {needed} bytes of the file to read its header")


class InvalidConfig(InspectionError):
    """A ``config.json`` that is not a JSON object."""


class NoWeights(InspectionError):
    """A directory that holds no weight files."""


class InspectionFailed(InspectionError):
    """The node-side inspection could not run (missing directory, no Python, unreadable output)."""


__all__ = [
    "InspectionError",
    "InspectionFailed",
    "InvalidConfig",
    "InvalidWeightsFile",
    "NeedMoreBytes",
    "NoWeights",
]
