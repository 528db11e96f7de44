"""ServerSettings.max_request_body_size: 413 before the body is read, or as it passes the limit.

The engine enforces it where body bytes arrive (HTTP/1.1 and HTTP/2 alike), so
a native handler, an ASGI app and a WSGI app all see the same: the tests send
with curl, the h2 package, raw HTTP/2 frames and raw HTTP/1.1 bytes.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import h2.events
import httpx
import pytest
from rawh1 import RawH1

from conftest import curl, require, response_of
from nghttp2py import BaseRequestHandler, ErrorCode, ServerSettings
from nghttp2py.asgi import asgi_handler
from nghttp2py.wsgi import wsgi_handler
from rawh2 import DATA, END_STREAM, RawH2, body_of, ended, frame, frames_of, kind, status_of

LIMIT = 1000
LIMITED = ServerSettings(max_request_body_size=LIMIT)


class Counting(BaseRequestHandler):
    """Counts the body; answers with the count. Records every hook that ran."""

    seen: list[str] = []

    def on_headers(self):
        self.seen.append("headers")
        self.received = 0

    def on_data(self, data):
        self.received += len(data)

    def on_request_done(self):
        self.seen.append("done")
        self.send_response(body=f"{self.received}\n")


async def asgi_count(scope, receive, send):
    """The ASGI app of the tests: the body's length, read to its end."""
    received, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{received}\n".encode()})


def wsgi_count(environ, start_response):
    """The WSGI app of the tests: the body's length, read to its end."""
    received = len(environ["wsgi.input"].read())
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"{received}\n".encode()]


@pytest.fixture(params=["handler", "asgi", "wsgi"])
def limited(request, serve):
    """A server with the limit, serving a native handler, an ASGI app or a WSGI app."""
    Counting.seen = []
    if request.param == "handler":
        return serve(Counting, settings=LIMITED)
    if request.param == "asgi":
        return serve(asgi_handler(asgi_count), settings=LIMITED)
    executor = ThreadPoolExecutor(4)
    request.addfinalizer(executor.shutdown)
    return serve(wsgi_handler(wsgi_count, executor=executor), settings=LIMITED)


def post(length: int, body: bytes = b"", extra: bytes = b"") -> bytes:
    return (b"POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%b\r\n%b"
            % (length, extra, body))


def chunked(size: int) -> bytes:
    return b"%x\r\n%b\r\n" % (size, b"c" * size)


CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"


# -- HTTP/1.1 ---------------------------------------------------------------------


def test_http1_content_length_over_the_limit_is_413_before_the_body(limited, caplog):
    caplog.set_level(logging.INFO, logger="nghttp2py")
    with RawH1(limited.port) as client:
        client.send(post(LIMIT + 1))  # the head alone: the answer does not wait for the body
        response = client.response()
        assert response.status == 413
        assert response.headers["connection"] == "close"
        assert client.is_closed()
    assert Counting.seen == []  # no hook ran
    logged = [r.getMessage() for r in caplog.records if "413" in r.getMessage()]
    assert len(logged) == 1 and logged[0].startswith("bad HTTP/1 request from"), logged
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_http1_body_at_the_limit_is_served(limited):
    with RawH1(limited.port) as client:
        client.send(post(LIMIT, b"b" * LIMIT))
        response = client.response()
        assert (response.status, response.body) == (200, b"%d\n" % LIMIT)
        client.send(CHUNKED_HEAD + chunked(LIMIT) + b"0\r\n\r\n")  # keep-alive, chunked
        response = client.response()
        assert (response.status, response.body) == (200, b"%d\n" % LIMIT)


def test_http1_expect_continue_gets_413_instead_of_100(limited):
    with RawH1(limited.port) as client:
        client.send(post(LIMIT + 1, extra=b"expect: 100-continue\r\n"))
        responses = client.until_closed()
        assert [r.status for r in responses] == [413]


def test_http1_chunked_body_passing_the_limit_is_413_and_close(limited):
    with RawH1(limited.port) as client:
        client.send(CHUNKED_HEAD + chunked(600))
        client.send(chunked(600))  # 1,200 bytes: past the limit mid-way
        responses = client.until_closed()
        assert [r.status for r in responses] == [413]


def test_http1_pipelined_request_over_the_limit_waits_its_turn(serve):
    server = serve(Counting, settings=LIMITED)
    with RawH1(server.port) as client:
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n" + post(LIMIT + 1))
        assert [r.status for r in client.until_closed()] == [200, 413]


def test_http1_body_past_the_limit_after_a_response_started_closes(serve):
    class Early(BaseRequestHandler):
        def on_headers(self):
            self.send_response(body=b"early\n")

    server = serve(Early, settings=LIMITED)
    with RawH1(server.port) as client:
        client.send(CHUNKED_HEAD + chunked(LIMIT + 1))
        assert client.is_closed()  # HTTP/1.1 has no other way to refuse the rest


def test_curl_over_the_limit_http1_upgrade_and_prior_knowledge(limited, tmp_path):
    require("curl")
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * (LIMIT + 1))
    fits = tmp_path / "fits.bin"
    fits.write_bytes(b"f" * LIMIT)
    for mode in ("--http1.1", "--http2", "--http2-prior-knowledge"):
        result = curl(mode, "--data-binary", f"@{upload}", limited.url("/up"), check=False)
        assert result.status == 413, (mode, result)
        result = curl(mode, "--data-binary", f"@{fits}", limited.url("/up"))
        assert (result.status, result.body) == (200, b"%d\n" % LIMIT), mode


def test_httpx_gets_413_over_http1_and_http2(limited):
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2) as client:
            response = client.post(limited.url("/up"), content=b"x" * (LIMIT + 1))
            assert response.status_code == 413
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            response = client.post(limited.url("/up"), content=b"x" * LIMIT)
            assert (response.status_code, response.content) == (200, b"%d\n" % LIMIT)


# -- HTTP/2 -----------------------------------------------------------------------


def rst_codes(frames, stream_id: int) -> list[int]:
    return [f.error_code for f in frames_of(frames, "RstStreamFrame", stream_id)]


def test_http2_content_length_over_the_limit_is_413_then_rst_no_error(limited, raw_client):
    client: RawH2 = raw_client(limited.port)
    client.request(1, path="/up", method="POST",
                   extra=[(b"content-length", str(LIMIT + 1).encode())], end_stream=False)
    frames = client.frames_until(ended(1))  # before any of the body is sent
    assert status_of(frames, 1) == b"413"
    assert body_of(frames, 1) == b"Content Too Large\n"
    assert Counting.seen == []  # the handler never ran
    # More of the body after the 413: the client is told to stop sending it.
    client.send(frame(DATA, 0, 1, b"x" * 100))
    frames = client.frames_until(lambda f: kind(f) == "RstStreamFrame")
    assert rst_codes(frames, 1) == [ErrorCode.NO_ERROR]
    # The connection goes on: a request that fits is served.
    client.request(3, path="/up", method="POST", end_stream=False)
    client.send(frame(DATA, END_STREAM, 3, b"x" * LIMIT))
    frames = client.frames_until(ended(3))
    assert (status_of(frames, 3), body_of(frames, 3)) == (b"200", b"%d\n" % LIMIT)


def test_http2_body_passing_the_limit_mid_way_other_streams_unaffected(limited, h2_client,
                                                                       caplog):
    caplog.set_level(logging.INFO, logger="nghttp2py")
    client = h2_client(limited.port)
    big = client.request("/up", method="POST", end_stream=False)
    small = client.request("/up", method="POST", end_stream=False)
    client.conn.send_data(big, b"a" * 600)
    client.conn.send_data(small, b"s" * 10, end_stream=True)
    client.conn.send_data(big, b"a" * 600)  # past the limit, without a content-length
    client.flush()
    ended: set[int] = set()

    def both_ended(event) -> bool:
        if isinstance(event, h2.events.StreamEnded):
            ended.add(event.stream_id)
        return ended == {big, small}

    events = client.events_until(both_ended)
    response = response_of(events, big)
    assert (response.status, bytes(response.body)) == (413, b"Content Too Large\n")
    response = response_of(events, small)
    assert (response.status, bytes(response.body)) == (200, b"10\n")
    client.conn.send_data(big, b"a" * 100)
    client.flush()
    events = client.events_until(lambda e: isinstance(e, h2.events.StreamReset))
    assert (events[-1].stream_id, events[-1].error_code) == (big, ErrorCode.NO_ERROR)
    assert [r.getMessage().partition(" from ")[0] for r in caplog.records
            if r.levelno >= logging.INFO] == [f"request body over {LIMIT} bytes on stream 1"]


def test_http2_body_past_the_limit_after_a_started_response_is_cancelled(serve, raw_client):
    class Streaming(BaseRequestHandler):
        def on_headers(self):
            async def forever():
                yield b"started\n"
                await asyncio.sleep(30)

            self.send_response(body=forever())

    server = serve(Streaming, settings=LIMITED)
    client: RawH2 = raw_client(server.port)
    client.request(1, path="/up", method="POST", end_stream=False)
    client.frames_until(lambda f: kind(f) == "DataFrame")  # the response is under way
    client.send(frame(DATA, 0, 1, b"x" * (LIMIT + 1)))
    frames = client.frames_until(lambda f: kind(f) == "RstStreamFrame")
    assert rst_codes(frames, 1) == [ErrorCode.CANCEL]


def test_http2_body_past_the_limit_after_a_complete_response_is_rst_no_error(serve,
                                                                            raw_client):
    class Early(BaseRequestHandler):
        def on_headers(self):
            self.send_response(body=b"early\n")

    server = serve(Early, settings=LIMITED)
    client: RawH2 = raw_client(server.port)
    client.request(1, path="/up", method="POST", end_stream=False)
    frames = client.frames_until(ended(1))
    assert body_of(frames, 1) == b"early\n"
    client.send(frame(DATA, 0, 1, b"x" * (LIMIT + 1)))
    frames = client.frames_until(lambda f: kind(f) == "RstStreamFrame")
    assert rst_codes(frames, 1) == [ErrorCode.NO_ERROR]


def test_no_limit_by_default(serve):
    assert ServerSettings().max_request_body_size is None
    server = serve(Counting)
    with RawH1(server.port) as client:
        client.send(post(1 << 20, b"b" * (1 << 20)))
        assert client.response().body == b"%d\n" % (1 << 20)


@pytest.mark.parametrize("value", [-1, 2**53 + 1, 1.5, "10"])
def test_bad_limits_are_refused(value):
    with pytest.raises(ValueError, match="max_request_body_size"):
        ServerSettings(max_request_body_size=value)
