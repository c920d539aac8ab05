"""The load generator and servers that drop keep-alive connections (llama.cpp's server does).

A pooled connection the server has closed fails before any answer; the generator sends that request
once more. The flake this pins (tests/jobs/test_benchmarks_llamacpp.py, 7 of 8 completed, "ClientOSError:
Can not write request body") came from the second attempt taking another pooled connection that
the server had closed at the same moment.
"""

from __future__ import annotations

import asyncio
import json

from jobs.benchmarks import generator

CHUNK = {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
ANSWER = f"data: {json.dumps(CHUNK)}\n\ndata: [DONE]\n\n".encode()


class OneRequestPerConnection:
    """An OpenAI-ish streaming server that answers the first request of each connection (keeping the
    connection open, as HTTP/1.1 allows) and drops the connection when a second request comes on it."""

    def __init__(self):
        self.connections = 0
        self.answered = 0
        self.dropped = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                if served:
                    self.dropped += 1
                    return
                served += 1
                self.answered += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode() + ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def _send_after_warming_two_connections() -> tuple[generator.RequestResult, OneRequestPerConnection]:
    server = OneRequestPerConnection()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    spec = generator.LoadSpec(endpoints=(f"http://127.0.0.1:{port}/v1",), model="m")
    prompt = generator.Prompt(text="hello", max_tokens=1, input_tokens=1)
    try:
        async with generator._session(spec, 2) as session:
            # Two requests at once: the pool now holds two idle connections, each already used once.
            warm = await asyncio.gather(*(generator.send_one(session, spec, i, prompt) for i in range(2)))
            assert all(r.ok for r in warm), [r.error for r in warm]
            assert server.connections == 2
            result = await generator.send_one(session, spec, 2, prompt)
    finally:
        listener.close()
        await listener.wait_closed()
    return result, server


def test_a_request_on_a_dropped_keepalive_connection_is_sent_again_on_a_connection_of_its_own():
    result, server = asyncio.run(_send_after_warming_two_connections())
    assert result.ok, (result.error_kind, result.error)
    assert server.dropped == 1  # the first attempt went to a pooled connection and was dropped
    assert server.answered == 3  # the retry was answered on a third, fresh connection
    assert server.connections == 3
