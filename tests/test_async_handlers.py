"""Async hooks: any ``on_*`` hook may be ``async def``; it runs as a task, a stream's hooks
keep their order, request data is acknowledged only when ``on_data`` finished with
it, the task is cancelled when the stream or connection goes, and a raising
coroutine is handled like a raising sync hook.

The ``h2`` package is the client; it shows the WINDOW_UPDATEs (backpressure),
statuses and resets the server really sent.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import time

import h2.events

from conftest import digest, wait_for
from nghttp2py import BaseRequestHandler, ErrorCode, ServerSettings


def error_records(log_records) -> list:
    return [r for r in log_records.records
            if r.name == "nghttp2py" and r.levelno == logging.ERROR]


# -- order and send_response from async hooks ----------------------------------------------


class OrderedHandler(BaseRequestHandler):
    """Every hook async, with random awaits; records overlaps and the event order."""

    instances: list = []

    async def on_headers(self):
        self.log = ["headers-start"]
        self.active = 0
        self.max_active = 0
        self.chunks = []
        OrderedHandler.instances.append(self)
        await asyncio.sleep(0.05)
        self.log.append("headers-end")

    async def on_data(self, data):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.log.append("data")
        await asyncio.sleep(random.random() * 0.004)
        self.chunks.append(data)
        self.active -= 1

    async def on_request_done(self):
        self.log.append("done")
        await asyncio.sleep(0.01)
        self.send_response(200, body=digest(b"".join(self.chunks)).encode())


def test_async_hooks_keep_order_and_respond_after_awaits(serve, h2_client):
    OrderedHandler.instances = []
    server = serve(OrderedHandler)
    client = h2_client(server.port)
    data = os.urandom(300_000)
    stream_id = client.request("/", "POST", end_stream=False)
    events: list = []
    assert client.pump(stream_id, data, quiet=5, events=events) == len(data)
    result = client.read_streams(events, stream_id)[stream_id]
    assert (result.status, result.body.decode()) == (200, digest(data))
    h = OrderedHandler.instances[0]
    log = server.call(lambda: list(h.log))
    assert log[:2] == ["headers-start", "headers-end"]  # on_data waited for on_headers
    assert log[-1] == "done" and set(log[2:-1]) == {"data"}
    assert server.call(lambda: h.max_active) == 1  # one on_data at a time


class HeldDataHandler(BaseRequestHandler):
    """The first on_data awaits an event the test sets: nothing is consumed meanwhile."""

    instances: list = []

    def on_headers(self):
        self.release = asyncio.Event()
        self.received = 0
        HeldDataHandler.instances.append(self)

    async def on_data(self, data):
        await self.release.wait()
        self.received += len(data)

    def on_request_done(self):
        self.send_response(200, body=str(self.received).encode())


def test_async_on_data_is_backpressure(serve, h2_client):
    HeldDataHandler.instances = []
    server = serve(HeldDataHandler, settings=ServerSettings(initial_window_size=80_000))
    client = h2_client(server.port)
    data = os.urandom(500_000)
    stream_id = client.request("/", "POST", end_stream=False)
    events: list = []
    sent = client.pump(stream_id, data, events=events)
    assert sent == 80_000  # the stream window, and no byte of it given back
    assert not [e for e in events
                if isinstance(e, h2.events.WindowUpdated) and e.stream_id == stream_id]
    h = HeldDataHandler.instances[0]
    server.call(h.release.set)
    assert client.pump(stream_id, data, sent, quiet=5, events=events) == len(data)
    result = client.read_streams(events, stream_id)[stream_id]
    assert (result.status, result.body) == (200, str(len(data)).encode())


# -- cancellation -------------------------------------------------------------------------------


class ForeverHandler(BaseRequestHandler):
    """An async hook that never finishes by itself; records its cancellation."""

    events: list = []
    started: list = []

    async def on_headers(self):
        ForeverHandler.started.append(self.stream_id)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ForeverHandler.events.append(("cancelled", self.stream_id))
            raise

    def on_close(self, error_code):
        ForeverHandler.events.append(("closed", self.stream_id, error_code))


def test_async_hook_cancelled_when_the_client_resets(serve, h2_client):
    ForeverHandler.events, ForeverHandler.started = [], []
    server = serve(ForeverHandler)
    client = h2_client(server.port)
    stream_id = client.request("/")
    assert wait_for(lambda: stream_id in ForeverHandler.started)
    client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
    client.flush()
    assert wait_for(lambda: len(ForeverHandler.events) == 2)
    assert sorted(ForeverHandler.events, key=str) == sorted(
        [("cancelled", stream_id), ("closed", stream_id, ErrorCode.CANCEL)], key=str)
    # The connection carries on.
    other = client.request("/")
    assert wait_for(lambda: other in ForeverHandler.started)
    assert server.call(lambda: server.server.connections) == 1
    client.conn.reset_stream(other, ErrorCode.CANCEL)
    client.flush()


def test_async_hook_cancelled_when_the_connection_is_lost(serve, h2_client):
    ForeverHandler.events, ForeverHandler.started = [], []
    server = serve(ForeverHandler)
    client = h2_client(server.port)
    stream_id = client.request("/")
    assert wait_for(lambda: stream_id in ForeverHandler.started)
    client.sock.close()
    assert wait_for(lambda: ("cancelled", stream_id) in ForeverHandler.events)
    assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)


class SlowOnDataHandler(BaseRequestHandler):
    finished: list = []

    async def on_data(self, data):
        if self.path == b"/slow":
            await asyncio.sleep(0.5)
            SlowOnDataHandler.finished.append(len(data))

    def on_request_done(self):
        if self.path != b"/slow":
            self.send_response(200, body=b"done")


def test_reset_streams_give_their_unconsumed_bytes_back_to_the_connection(serve, h2_client):
    """Data held by a cancelled async on_data (or queued behind it) still counts against
    the connection window: when the stream is reset, it must be given back, or each reset
    upload shrinks the connection window until every upload stalls."""
    SlowOnDataHandler.finished = []
    settings = ServerSettings(connection_window_size=65_535, initial_window_size=65_535)
    server = serve(SlowOnDataHandler, settings=settings)
    client = h2_client(server.port)
    for _ in range(6):  # 6 x 20 000 bytes > the 65 535-byte connection window
        stream_id = client.request("/slow", "POST", end_stream=False)
        assert client.pump(stream_id, os.urandom(20_000), quiet=1) == 20_000
        time.sleep(0.05)  # the server has it; its on_data is running
        client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
        client.flush()
    assert SlowOnDataHandler.finished == []  # every slow on_data was cancelled
    data = os.urandom(200_000)
    other = client.request("/fast", "POST", end_stream=False)
    events: list = []
    assert client.pump(other, data, quiet=2, events=events) == len(data)
    assert client.read_streams(events, other)[other].body == b"done"


# -- exceptions ------------------------------------------------------------------------------


class RaisingHandler(BaseRequestHandler):
    """Raises from the async hook named by the path, after an await."""

    async def on_headers(self):
        await asyncio.sleep(0.01)
        if self.path == b"/headers":
            raise RuntimeError("async on_headers failed")
        if self.path == b"/data-after-response":
            self.ready = False
            self.send_response(200, body=lambda n: (None, 2))  # DATA_DEFERRED

    async def on_data(self, data):
        await asyncio.sleep(0.01)
        if self.path in (b"/data", b"/data-after-response"):
            raise RuntimeError("async on_data failed")

    async def on_request_done(self):
        await asyncio.sleep(0.01)
        if self.path == b"/done":
            raise RuntimeError("async on_request_done failed")
        self.send_response(200, body=b"fine")


def test_async_on_headers_raising_gives_500_and_one_error_record(serve, h2_client, log_records):
    server = serve(RaisingHandler)
    client = h2_client(server.port)
    events: list = []
    stream_id = client.request("/headers")
    result = client.read_streams(events, stream_id)[stream_id]
    assert result.status == 500
    assert wait_for(lambda: error_records(log_records))
    time.sleep(0.1)
    [record] = error_records(log_records)
    assert "on_headers" in record.getMessage()
    assert record.exc_info and "async on_headers failed" in str(record.exc_info[1])


def test_async_on_data_raising_gives_500(serve, h2_client, log_records):
    server = serve(RaisingHandler)
    client = h2_client(server.port)
    events: list = []
    stream_id = client.request("/data", "POST", end_stream=False)
    client.pump(stream_id, b"x" * 1000, events=events)
    result = client.read_streams(events, stream_id)[stream_id]
    assert result.status == 500
    time.sleep(0.1)
    [record] = error_records(log_records)
    assert "on_data" in record.getMessage() and record.exc_info


def test_async_on_request_done_raising_gives_500(serve, h2_client, log_records):
    server = serve(RaisingHandler)
    client = h2_client(server.port)
    events: list = []
    stream_id = client.request("/done")
    result = client.read_streams(events, stream_id)[stream_id]
    assert result.status == 500
    time.sleep(0.1)
    [record] = error_records(log_records)
    assert "on_request_done" in record.getMessage() and record.exc_info


def test_async_hook_raising_after_the_response_started_resets_the_stream(
        serve, h2_client, log_records):
    server = serve(RaisingHandler)
    client = h2_client(server.port)
    events: list = []
    stream_id = client.request("/data-after-response", "POST", end_stream=False)
    client.pump(stream_id, b"x" * 1000, events=events)
    result = client.read_streams(events, stream_id)[stream_id]
    assert result.status == 200
    assert result.reset == ErrorCode.INTERNAL_ERROR
    time.sleep(0.1)
    [record] = error_records(log_records)
    assert "on_data" in record.getMessage()
    # The connection survives.
    other = client.request("/fine")
    assert client.read_streams(events, other)[other].status == 200


class AsyncCloseHandler(BaseRequestHandler):
    closed: list = []

    def on_headers(self):
        self.send_response(200, body=b"bye")

    async def on_close(self, error_code):
        await asyncio.sleep(0.05)
        if self.path == b"/raise":
            raise RuntimeError("async on_close failed")
        AsyncCloseHandler.closed.append((self.path, error_code))


def test_async_on_close_runs_and_its_exception_is_logged(serve, h2_client, log_records):
    AsyncCloseHandler.closed = []
    server = serve(AsyncCloseHandler)
    client = h2_client(server.port)
    events: list = []
    for path in ("/ok", "/raise"):
        stream_id = client.request(path)
        assert client.read_streams(events, stream_id)[stream_id].body == b"bye"
    assert wait_for(lambda: AsyncCloseHandler.closed == [(b"/ok", 0)])
    assert wait_for(lambda: error_records(log_records))
    time.sleep(0.1)
    [record] = error_records(log_records)
    assert "on_close" in record.getMessage()
    assert record.exc_info and "async on_close failed" in str(record.exc_info[1])


class TrailerReadingHandler(BaseRequestHandler):
    async def on_data(self, data):
        await asyncio.sleep(0.02)

    async def on_request_done(self):
        self.send_response(200, body=repr(self.trailers).encode())


def test_request_trailers_visible_in_async_on_request_done(serve, h2_client):
    server = serve(TrailerReadingHandler)
    client = h2_client(server.port)
    stream_id = client.request("/", "POST", end_stream=False)
    client.conn.send_data(stream_id, b"y" * 5000)
    client.conn.send_headers(stream_id, [("x-sum", "42"), ("x-more", "yes")], end_stream=True)
    client.flush()
    events: list = []
    result = client.read_streams(events, stream_id)[stream_id]
    assert (result.status, result.body) == (
        200, b"[(b'x-sum', b'42'), (b'x-more', b'yes')]")


# -- a cancelled hook or body is a handler failure ------------------------------------------


class CancelledHookHandler(BaseRequestHandler):
    """``/self``: the hook cancels itself; ``/other``: it awaits a future cancelled
    elsewhere; ``/after``: the same after the response has started."""

    async def on_headers(self):
        if self.path == b"/after":
            self.send_response(200, body=self.slow_body())
            return
        if self.path == b"/self":
            await asyncio.sleep(0)
            raise asyncio.CancelledError()
        waiter = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, waiter.cancel)
        await waiter

    async def slow_body(self):
        yield b"first chunk"
        waiter = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, waiter.cancel)
        await waiter
        yield b"never sent"


def test_a_cancelled_async_hook_gets_a_500_and_one_log_line(serve, h2_client, log_records):
    server = serve(CancelledHookHandler)
    client = h2_client(server.port)
    for path in ("/self", "/other"):
        assert client.get(path).status == 500, path
    errors = [r.getMessage() for r in error_records(log_records)]
    assert len(errors) == 2 and all("on_headers was cancelled on stream" in e for e in errors)
    assert not [r for r in log_records.records if "Exception in callback" in r.getMessage()]


def test_a_cancelled_async_body_resets_the_stream_with_cancel(serve, h2_client, log_records):
    server = serve(CancelledHookHandler)
    client = h2_client(server.port)
    result = client.get("/after")
    assert (result.status, bytes(result.body), result.reset) == (
        200, b"first chunk", ErrorCode.CANCEL)
    errors = [r.getMessage() for r in error_records(log_records)]
    assert len(errors) == 1 and "body was cancelled on stream" in errors[0]
    # The connection carries on.
    assert client.get("/self").status == 500
