"""The callback client (HTTP2Client, BaseResponseHandler) against our own server."""
from __future__ import annotations

import asyncio
import logging

import pytest
from clientkit import free_port, run

from conftest import digest
from nghttp2py import (
    BaseRequestHandler,
    BaseResponseHandler,
    ErrorCode,
    HTTP2Client,
    ResponseStateError,
)
from nghttp2py.client import ConnectError

BIG = bytes(range(256)) * (16 << 10)  # 4 MiB


class Server(BaseRequestHandler):
    def on_headers(self):
        self.received = bytearray()
        if self.path == b"/big":
            self.send_response(200, body=BIG)
            return
        if self.path == b"/push":
            self.push("/a.css", body=b"a{}")
            self.push("/b.js", body=b"b()")
        if self.method == b"GET":
            self.send_response(200, [("content-type", "text/plain")], b"hello " + self.path,
                               trailers=[("x-checksum", "42")] if self.path == b"/t" else None)

    def on_data(self, data):
        self.received += data

    def on_request_done(self):
        if self.method == b"POST":
            self.send_response(200, body=digest(bytes(self.received)))


class Recorder(BaseResponseHandler):
    """Keeps every event in ``events`` and sets ``closed`` (an asyncio.Event)."""

    def __init__(self):
        self.events = []
        self.body = bytearray()
        self.closed = asyncio.Event()

    def on_headers(self):
        self.events.append(("headers", self.status))

    def on_data(self, data):
        self.body += data

    def on_response_done(self):
        self.events.append(("done",))

    def on_close(self, error_code):
        self.events.append(("close", error_code))
        self.closed.set()


@pytest.fixture
def server(serve):
    return serve(Server)


def test_requests_and_their_handlers(server):
    async def main():
        client = HTTP2Client(("127.0.0.1", server.port))
        get = client.send_request(url="/x", handler=Recorder)
        post = client.send_request("POST", f"http://127.0.0.1:{server.port}/up",
                                   headers=[("x-a", "1")], body=b"data" * 1000,
                                   handler=Recorder())
        trailers = client.send_request(url="/t", handler=Recorder)
        await asyncio.gather(get.closed.wait(), post.closed.wait(), trailers.closed.wait())
        assert get.events == [("headers", 200), ("done",), ("close", ErrorCode.NO_ERROR)]
        assert bytes(get.body) == b"hello /x"
        assert (get.method, get.scheme, get.path) == (b"GET", b"http", b"/x")
        assert get.host == f"127.0.0.1:{server.port}".encode()
        assert get.stream_id == 1 and not get.pushed and get.response_done
        assert get.server_address[:2] == ("127.0.0.1", server.port)
        assert (b"content-type", b"text/plain") in get.headers
        assert bytes(post.body).decode() == digest(b"data" * 1000)
        assert trailers.trailers == [(b"x-checksum", b"42")]
        client.close()
        await client.wait_closed()
    run(main())


def test_push_promises_accepted_and_rejected(server):
    class Page(Recorder):
        def on_push_promise(self, push_promise):
            self.events.append(("promise", push_promise.path, push_promise.parent is self))
            self.promises = [*getattr(self, "promises", []), push_promise]
            if push_promise.path == b"/a.css":
                self.pushed_handler = self.accept_push(push_promise)
            # /b.js: neither accepted nor rejected, so rejected.

    async def main():
        client = HTTP2Client(("127.0.0.1", server.port))
        page = client.send_request(url="/push", handler=Page)
        await page.closed.wait()
        pushed = page.pushed_handler
        await pushed.closed.wait()
        assert ("promise", b"/a.css", True) in page.events
        assert ("promise", b"/b.js", True) in page.events
        assert type(pushed) is Page and pushed.pushed and pushed.path == b"/a.css"
        assert (pushed.status, bytes(pushed.body)) == (200, b"a{}")
        assert pushed.stream_id % 2 == 0
        for promise in page.promises:
            with pytest.raises(ResponseStateError):
                page.accept_push(promise)
        client.close()
        await client.wait_closed()
    run(main())


def test_push_disabled_tells_the_server(serve):
    results = []

    class Pusher(BaseRequestHandler):
        def on_headers(self):
            results.append(self.push("/x.css", body=b""))
            self.send_response(200, body=b"")

    server = serve(Pusher, push_early_hints=False)

    async def main():
        client = HTTP2Client(("127.0.0.1", server.port), enable_push=False)
        handler = client.send_request(handler=Recorder)
        await handler.closed.wait()
        client.close()
    run(main())
    assert results == [False]


def test_a_failing_hook_resets_only_its_stream(server, log_records):
    class Failing(Recorder):
        def on_headers(self):
            raise ValueError("broken hook")

    async def main():
        client = HTTP2Client(("127.0.0.1", server.port))
        failing = client.send_request(url="/big", handler=Failing)  # still open: reset
        fine = client.send_request(url="/y", handler=Recorder)
        await asyncio.gather(failing.closed.wait(), fine.closed.wait())
        assert failing.events[-1] == ("close", ErrorCode.CANCEL)
        assert isinstance(failing.error, ValueError)
        assert fine.events[-1] == ("close", ErrorCode.NO_ERROR) and fine.error is None
        client.close()
    run(main())
    assert any("Failing.on_headers raised" in r.getMessage() for r in log_records.records
               if r.levelno == logging.ERROR)


def test_a_failing_request_body_resets_its_stream(server):
    async def broken():
        yield b"part"
        raise OSError("disk gone")

    async def main():
        client = HTTP2Client(("127.0.0.1", server.port))
        handler = client.send_request("POST", "/up", body=broken(), handler=Recorder)
        await handler.closed.wait()
        assert isinstance(handler.error, OSError)
        assert handler.events[-1][0] == "close" and handler.events[-1][1] != ErrorCode.NO_ERROR
        client.close()
    run(main())


def test_pause_reading_holds_the_server_at_the_stream_window(server):
    async def main():
        client = HTTP2Client(("127.0.0.1", server.port))
        handler = Recorder()
        handler.pause_reading()
        client.send_request(url="/big", handler=handler)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(handler.body) >= 1 << 20:
                break
        await asyncio.sleep(0.3)
        # The client's stream window is 1 MiB: the server stops there.
        assert len(handler.body) == 1 << 20
        assert not handler.closed.is_set() and handler.reading_paused
        handler.resume_reading()
        await handler.closed.wait()
        assert bytes(handler.body) == BIG
        client.close()
    run(main())


def test_connection_refused_ends_every_request_with_the_error():
    async def main(port):
        client = HTTP2Client(("127.0.0.1", port))
        handler = client.send_request(handler=Recorder)
        await handler.closed.wait()
        assert handler.events == [("close", ErrorCode.CANCEL)]
        assert isinstance(handler.error, ConnectError) and "refused" in str(handler.error)
        with pytest.raises(ConnectError):
            client.send_request()
    run(main(free_port()))


def test_needs_a_loop():
    with pytest.raises(RuntimeError, match="loop"):
        HTTP2Client(("127.0.0.1", 1))


def test_a_handler_receives_one_response_only(server):
    async def main():
        client = HTTP2Client(("127.0.0.1", server.port))
        handler = client.send_request(handler=Recorder)
        with pytest.raises(ResponseStateError):
            client.send_request(handler=handler)
        await handler.closed.wait()
        client.close()
    run(main())
