"""Telemetry streams come through the node's transport: a transport that can hold a long-lived
session (``session_identity`` and ``open_stream``) gets the collector's sampling stream, whatever its
kind, without the collector or the sources naming it."""

from __future__ import annotations

import queue
import subprocess
import threading

import pytest

from nodes.probes.sampler import sampler_argv
from nodes.telemetry import SourceSpec, StreamSource, make_source
from nodes.transports.base import Transport


class PipeStream:
    """The ``readline(wait)`` / ``close()`` stream of a local process, as the SSH pool gives one."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def readline(self, wait: float):
        try:
            return self.lines.get(timeout=wait)
        except queue.Empty:
            return None

    def close(self):
        self.proc.kill()
        self.proc.wait()


class PipeTransport(Transport):
    """A made-up transport: runs the node programs on this machine through a pipe."""

    kind = "pipe"

    def __init__(self):
        super().__init__(connect_host="127.0.0.1", instance_dir="/tmp")
        self.opened = []

    @classmethod
    def for_node(cls, node):
        return cls()

    def run(self, command, *, stdin=None, timeout=None):
        raise NotImplementedError

    def stream(self, command, on_line, *, stdin=None, timeout=None):
        raise NotImplementedError

    def session_identity(self, node):
        return (self.kind, node.pk)

    def open_stream(self, command, *, timeout=30.0):
        self.opened.append(list(command))
        return PipeStream(list(command))


def test_a_transport_that_opens_streams_gets_the_sampling_session_without_the_collector_naming_it():
    transport = PipeTransport()
    seen = []
    got_node_reading = threading.Event()

    def emit(node_id, kind, reading, t):
        seen.append((node_id, kind))
        if kind == "node":
            got_node_reading.set()

    spec = SourceSpec(7, transport.kind, 0.2, transport=transport, identity=transport.session_identity(
        type("N", (), {"pk": 7})()))
    source = make_source(spec, emit)
    assert isinstance(source, StreamSource)
    source.start()
    try:
        # Counted, not timed: the first node reading arrives once the script has sampled twice.
        assert got_node_reading.wait(60), source.last_error
    finally:
        source.stop()
        source.join(10)
    assert transport.opened == [sampler_argv(0.2, "node")]
    assert seen[0][0] == 7


def test_a_transport_without_sessions_is_not_streamed_from():
    class Plain(PipeTransport):
        session_identity = Transport.session_identity
        open_stream = Transport.open_stream

    assert Plain().session_identity(object()) is None
    with pytest.raises(NotImplementedError, match="pipe transport does not stream"):
        Plain().open_stream(["true"])
