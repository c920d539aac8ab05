"""The embedded broker: kombu's filesystem transport with an atomic put.

kombu's own ``_put`` creates the message file under its final name and then writes it, while ``_get``
moves files by name without taking the lock: a consumer polling often (we poll every 100 ms) can take a
file before its content is written, read nothing, and the worker dies on a JSON error. Here a message is
written under a name the consumers ignore and renamed into place, which is atomic on one file system.
``console/celery.py`` maps the ``filesystem://`` scheme to this transport.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class FilesystemTransport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make ``filesystem://`` URLs use this transport in this process."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["filesystem"] = "console.broker:FilesystemTransport"
