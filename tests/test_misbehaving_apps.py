"""Applications that misbehave in ways the other handler tests do not cover: bodies of
the wrong type and handlers that never answer. Each gives the client a RST_STREAM (or
nothing, once it has gone), the application one log line, and leaks nothing."""
from __future__ import annotations

import asyncio
import gc
import logging
import weakref

import pytest

from conftest import wait_for
from nghttp2py import DATA_EOF, DATA_OK, BaseRequestHandler, ErrorCode


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
