"""Applications that misbehave in ways the other handler tests do not cover: bodies of
the wrong type and handlers that never answer (each gives the client a RST_STREAM, or
nothing once it has gone, the application one log line, and leaks nothing), and one
slow on every request (one connection's burst of requests must not hold the others)."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref

import pytest
from attacks import request_block

from conftest import wait_for
from nghttp2py import DATA_EOF, DATA_OK, BaseRequestHandler, ErrorCode
from rawh2 import (
    END_HEADERS,
    END_STREAM,
    HEADERS,
    body_of,
    ended,
    frame,
    is_server_settings,
    status_of,
)

PADDED = 0x8


class WrongBody(BaseRequestHandler):
    def on_headers(self):
        if self.path == b"/generator":
            calls = []

            def body(n):
                calls.append(n)
                return (b"fine", DATA_OK) if len(calls) == 1 else (12345, DATA_EOF)

            self.send_response(200, body=body)
        else:
            async def chunks():
                yield b"fine"
                await asyncio.sleep(0)
                yield 12345

            self.send_response(200, body=chunks())


@pytest.mark.parametrize("path", ["/generator", "/async"])
def test_a_body_of_the_wrong_type_resets_the_stream(serve, h2_client, log_records, path):
    """An int from a body: never bytes of zeros on the wire, but RST_STREAM INTERNAL_ERROR
    and one line naming the type."""
    server = serve(WrongBody)
    client = h2_client(server.port)
    response = client.response(client.request(path), timeout=5)
    assert response.status == 200
    assert response.body == b"fine"
    assert response.reset == ErrorCode.INTERNAL_ERROR
    assert wait_for(lambda: any("raised" in r.getMessage() for r in log_records.records))
    lines = [r for r in log_records.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1 and "int" in str(lines[0].exc_info[1]), lines
    assert client.response(client.request("/generator"), timeout=5).body == b"fine"


class Silent(BaseRequestHandler):
    """Never answers; remembers itself weakly and how it was closed."""

    alive: list = []
    closed: list = []

    def on_headers(self):
        Silent.alive.append(weakref.ref(self))

    def on_close(self, error_code):
        Silent.closed.append(error_code)


@pytest.mark.parametrize("how", ["reset", "disconnect"])
def test_a_handler_that_never_answers_is_released_when_the_client_gives_up(serve, h2_client,
                                                                           how):
    Silent.alive, Silent.closed = [], []
    server = serve(Silent)
    client = h2_client(server.port)
    stream_id = client.request("/wait")
    assert wait_for(lambda: Silent.alive)
    if how == "reset":
        client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
        client.flush()
    else:
        client.close()
    assert wait_for(lambda: Silent.closed)
    assert Silent.closed == [ErrorCode.CANCEL]
    server.call(gc.collect)
    assert wait_for(lambda: Silent.alive[0]() is None), "the handler was kept"
    if how == "reset":  # the connection stays
        assert server.call(lambda: server.server.connections) == 1
    else:
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)


# -- a slow application and a long read: processed in slices (SECURITY.md, work per read) --


class Slow(BaseRequestHandler):
    """Takes 3 ms per request, as a heavy application would."""

    answered: list = []

    def on_headers(self):
        time.sleep(0.003)
        Slow.answered.append(self.path)
        self.send_response(200, body=self.path)


def test_a_long_read_yields_to_other_connections_and_loses_nothing(serve, raw_client):
    """50 requests in one write (150 ms of application work): the server takes them in
    slices, letting another connection's request through in between, and answers all
    50, in order."""
    Slow.answered = []
    server = serve(Slow)
    busy, other = raw_client(server.port), raw_client(server.port)
    for client in (busy, other):
        client.frames_until(is_server_settings, 5)
    padding = 200
    burst = b"".join(
        frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 2 * i + 1,
              bytes((padding,)) + request_block(busy.authority, path=f"/{i}".encode())
              + b"\0" * padding)
        for i in range(50))
    busy.send(burst)
    assert wait_for(lambda: Slow.answered)  # the server is into the burst
    other.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     request_block(other.authority, path=b"/other")))
    assert status_of(other.frames_until(ended(1), 5), 1) == b"200"
    assert Slow.answered.index(b"/other") < 50, "the other connection waited for the burst"
    frames = busy.frames_until(ended(99), 10)
    assert [body_of(frames, 2 * i + 1) for i in range(50)] == [f"/{i}".encode()
                                                               for i in range(50)]
