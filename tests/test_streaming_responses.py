"""Streaming responses: async iterator / async generator bodies, response trailers, and a
1 GiB generated body to a client that stops reading (the server's memory stays flat).

The ``h2`` package is the client (it reports trailers and resets); the 1 GiB
proof runs the server as a subprocess to measure its own RSS.
"""
from __future__ import annotations

import asyncio
import logging
import re
import textwrap
import time

import h2.events
import psutil
import pytest

from conftest import run_peer, wait_for
from nghttp2py import DATA_EOF, BaseRequestHandler, ErrorCode

MIB = 1 << 20
GIB = 1 << 30


# -- async bodies ---------------------------------------------------------------------------


class Countdown:
    """An async iterator (not a generator): str and bytes chunks with awaits between."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.n == 0:
            raise StopAsyncIteration
        await asyncio.sleep(0.001)
        self.n -= 1
        return f"{self.n}\n" if self.n % 2 else f"{self.n}\n".encode()


class AsyncBodyHandler(BaseRequestHandler):
    finalized: list = []

    def on_headers(self):
        if self.path == b"/generator":
            self.send_response(200, [("content-type", "text/plain")], self.generator())
        elif self.path == b"/iterator":
            self.send_response(200, body=Countdown(50))
        elif self.path == b"/big-chunks":
            self.send_response(200, body=self.big_chunks())
        elif self.path == b"/empty":
            self.send_response(200, body=self.empty())
        elif self.path == b"/raise":
            self.send_response(200, body=self.raising())
        elif self.path == b"/forever":
            self.send_response(200, body=self.forever())

    async def generator(self):
        for i in range(100):
            if i % 10 == 0:
                await asyncio.sleep(0.001)
            yield f"line {i} é\n" if i % 2 else f"line {i} é\n".encode()

    async def big_chunks(self):
        for i in range(8):
            await asyncio.sleep(0)
            yield bytes([65 + i]) * 100_000

    async def empty(self):
        return
        yield  # pragma: no cover

    async def raising(self):
        yield b"first part\n"
        await asyncio.sleep(0.01)
        raise RuntimeError("async body failed")

    async def forever(self):
        try:
            yield b"start\n"
            await asyncio.sleep(3600)
            yield b"never\n"
        finally:
            AsyncBodyHandler.finalized.append(self.stream_id)


def test_async_generator_body_str_and_bytes_chunks(serve, h2_client):
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port)
    result = client.response(client.request("/generator"))
    expected = "".join(f"line {i} é\n" for i in range(100)).encode()
    assert (result.status, result.body) == (200, expected)
    assert "content-length" not in result.headers
    assert result.reset is None


def test_async_iterator_body(serve, h2_client):
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port)
    result = client.response(client.request("/iterator"))
    assert result.body == "".join(f"{n}\n" for n in range(49, -1, -1)).encode()


@pytest.mark.parametrize("window", [1000, 4096, 65535])
def test_async_body_chunks_larger_than_the_window_arrive_whole(serve, h2_client, window):
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port, window=window)
    result = client.response(client.request("/big-chunks"), timeout=30)
    assert result.body == b"".join(bytes([65 + i]) * 100_000 for i in range(8))


def test_empty_async_body(serve, h2_client):
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port)
    result = client.response(client.request("/empty"))
    assert (result.status, result.body, result.reset) == (200, b"", None)


def test_async_body_raising_resets_the_stream_and_logs(serve, h2_client, log_records):
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port)
    result = client.response(client.request("/raise"))
    assert result.status == 200
    assert result.body == b"first part\n"
    assert result.reset == ErrorCode.INTERNAL_ERROR
    assert wait_for(lambda: [r for r in log_records.records if r.levelno == logging.ERROR])
    time.sleep(0.1)
    [record] = [r for r in log_records.records
                if r.name == "nghttp2py" and r.levelno == logging.ERROR]
    assert record.exc_info and "async body failed" in str(record.exc_info[1])
    # The connection carries on.
    assert client.response(client.request("/generator")).status == 200


def test_async_body_finalized_when_the_client_resets(serve, h2_client):
    AsyncBodyHandler.finalized = []
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port)
    stream_id = client.request("/forever")
    client.events_until(lambda e: isinstance(e, h2.events.DataReceived))
    client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
    client.flush()
    assert wait_for(lambda: AsyncBodyHandler.finalized == [stream_id])


def test_async_body_finalized_when_the_connection_is_lost(serve, h2_client):
    AsyncBodyHandler.finalized = []
    server = serve(AsyncBodyHandler)
    client = h2_client(server.port)
    stream_id = client.request("/forever")
    client.events_until(lambda e: isinstance(e, h2.events.DataReceived))
    client.sock.close()
    assert wait_for(lambda: AsyncBodyHandler.finalized == [stream_id])


# -- trailers -----------------------------------------------------------------------------


class TrailersHandler(BaseRequestHandler):
    TRAILERS = [("x-checksum", "abc123"), ("x-rows", "3")]

    def on_headers(self):
        kind = self.path.decode()
        if kind == "/bytes":
            body = b"a,b,c\n"
        elif kind == "/none":
            body = None
        elif kind == "/generator":
            chunks = [b"one\n", b"two\n"]
            body = lambda n: (chunks.pop(0), 0) if len(chunks) > 1 else (chunks.pop(0), DATA_EOF)  # noqa: E731
        elif kind == "/async":
            async def body_gen():
                for part in (b"x" * 40_000, "y" * 40_000):
                    await asyncio.sleep(0)
                    yield part
            body = body_gen()
        else:
            body = b"big" * 100_000
        self.send_response(200, [("trailer", "x-checksum, x-rows")], body,
                           trailers=self.TRAILERS)


@pytest.mark.parametrize("path,body", [
    ("/bytes", b"a,b,c\n"), ("/none", b""), ("/generator", b"one\ntwo\n"),
    ("/async", b"x" * 40_000 + b"y" * 40_000), ("/large", b"big" * 100_000),
])
def test_trailers_follow_the_body(serve, h2_client, path, body):
    server = serve(TrailersHandler)
    client = h2_client(server.port)
    result = client.response(client.request(path))
    assert (result.status, result.body) == (200, body)
    assert result.trailers == TrailersHandler.TRAILERS
    assert result.reset is None


def test_trailers_via_nghttp(serve):
    server = serve(TrailersHandler)
    result = run_peer("nghttp", "-v", server.url("/bytes"), timeout=20)
    assert result.returncode == 0, result.stderr
    tail = result.stdout[result.stdout.index("a,b,c"):]
    assert "x-checksum: abc123" in tail and "x-rows: 3" in tail
    assert re.search(r"recv HEADERS frame <length=\d+, flags=0x05, stream_id=\d+>", tail)


class BadTrailersHandler(BaseRequestHandler):
    def on_headers(self):
        try:
            self.send_response(200, body=b"x", trailers=[(":status", "200")])
        except Exception as exc:  # reported to the client
            self.send_response(200, body=type(exc).__name__.encode())


def test_pseudo_header_in_trailers_is_refused(serve, h2_client):
    server = serve(BadTrailersHandler)
    client = h2_client(server.port)
    result = client.response(client.request("/"))
    assert result.body in (b"InvalidHeaderError", b"ValueError")
    assert result.trailers is None


# -- 1 GiB response to a client that stops reading ---------------------------------------------

GIB_SERVER = textwrap.dedent("""\
    import asyncio, logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    produced = [0]
    CHUNK = bytes(64 << 10)

    class Handler(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/stats":
                self.send_response(200, body=str(produced[0]).encode())
            else:
                self.send_response(200, body=self.gib())

        async def gib(self):
            for _ in range((1 << 30) // len(CHUNK)):
                produced[0] += len(CHUNK)
                yield CHUNK

    HTTP2Server(("127.0.0.1", 0), Handler).serve_forever()
    """)


@pytest.mark.slow
def test_1gib_async_body_to_a_client_that_stops_reading(server_process, h2_client):
    process = server_process(GIB_SERVER)
    port = process.port
    server = psutil.Process(process.proc.pid)
    controls = h2_client(port)
    assert controls.response(controls.request("/stats")).body == b"0"
    baseline = server.memory_info().rss
    # Windows wide open: only TCP backpressure can hold the server back.
    client = h2_client(port, window=2**31 - 1)
    client.conn.increment_flow_control_window(2**31 - 1 - 65535)
    client.flush()
    stream_id = client.request("/gib")
    started = time.monotonic()
    peak = baseline
    while time.monotonic() - started < 3.0:
        time.sleep(0.1)
        peak = max(peak, server.memory_info().rss)
    produced = int(controls.response(controls.request("/stats")).body)
    assert peak - baseline < 32 * MIB, f"server RSS grew {(peak - baseline) / MIB:.1f} MiB"
    assert produced < 64 * MIB, f"{produced} bytes generated for a client reading nothing"
    # Now read everything, counting, not keeping.
    received = 0
    ended = False
    client.sock.settimeout(10)
    deadline = time.monotonic() + 40
    while not ended and time.monotonic() < deadline:
        data = client.sock.recv(4 << 20)
        assert data, "the server closed the connection"
        for event in client.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                received += len(event.data)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                ended = True
            elif isinstance(event, h2.events.StreamReset):
                raise AssertionError(f"stream reset: {event}")
        client.flush()
    assert ended and received == GIB, received
