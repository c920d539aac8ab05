"""The embedded broker never hands a consumer a message that is still being written."""

import os

from kombu import Connection

from console.broker import FilesystemTransport


def test_filesystem_urls_use_the_atomic_transport(tmp_path):
    import console.celery  # noqa: F401  (installs the transport alias)

    with Connection("filesystem://", transport_options={"data_folder_in": str(tmp_path),
                                                        "data_folder_out": str(tmp_path)}) as conn:
        assert isinstance(conn.transport, FilesystemTransport)


def test_a_message_appears_only_once_complete_and_partial_files_are_ignored(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "store_processed": False}
    (tmp_path / ".deadbeef.partial").write_text("")  # a writer caught half-way: never consumed
    with Connection(transport=FilesystemTransport, transport_options=options) as conn:
        queue = conn.SimpleQueue("q")
        for number in range(200):
            queue.put({"n": number})
        assert all(not name.endswith(".partial") or name == ".deadbeef.partial" for name in os.listdir(tmp_path))
        received = [queue.get(timeout=1).payload["n"] for _ in range(200)]
        assert sorted(received) == list(range(200))
        queue.close()
