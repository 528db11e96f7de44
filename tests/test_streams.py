"""Stream lifecycle: client resets, on_close codes, server push, many concurrent streams.

The ``h2`` package plays the client at frame level (small windows, RST_STREAM,
SETTINGS_ENABLE_PUSH); h2load checks the concurrent case as a second peer.
"""
from __future__ import annotations

import asyncio
import io
import re
import threading
import time

import pytest

from conftest import StreamReader, run_peer
from nghttp2py import DATA_DEFERRED, DATA_EOF, BaseRequestHandler, ErrorCode, ServerSettings


class Closes:
    """Thread-safe record of on_close calls, waitable from the test thread."""

    def __init__(self) -> None:
        self.codes: dict[int, list[int]] = {}
        self.condition = threading.Condition()

    def add(self, stream_id: int, code: int) -> None:
        with self.condition:
            self.codes.setdefault(stream_id, []).append(code)
            self.condition.notify_all()

    def wait(self, stream_id: int, timeout: float = 5) -> list[int]:
        with self.condition:
            self.condition.wait_for(lambda: stream_id in self.codes, timeout)
            return list(self.codes.get(stream_id, []))


# -- on_close ------------------------------------------------------------------------

def test_on_close_zero_after_normal_completion_and_hook_order(serve, h2_client):
    calls: list = []
    closes = Closes()

    class Handler(BaseRequestHandler):
        def on_headers(self):
            calls.append((self.stream_id, "headers"))

        def on_data(self, data):
            calls.append((self.stream_id, "data"))

        def on_request_done(self):
            calls.append((self.stream_id, "done"))
            self.send_response(body=b"x" * 50_000)

        def on_close(self, error_code):
            calls.append((self.stream_id, "close"))
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    get = client.request("/")
    assert reader.response(get) == (200, b"x" * 50_000)
    post = client.request("/", method="POST", body=b"payload")
    assert reader.response(post)[0] == 200
    assert closes.wait(get) == [0]
    assert closes.wait(post) == [0]
    assert [c for s, c in calls if s == get] == ["headers", "done", "close"]
    assert [c for s, c in calls if s == post] == ["headers", "data", "done", "close"]


def test_on_close_zero_for_head_and_204(serve, h2_client):
    closes = Closes()

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            self.send_response(204 if self.path == b"/none" else 200, body=b"body")

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    head = client.request("/", method="HEAD")
    none = client.request("/none")
    assert reader.response(head) == (200, b"")
    assert reader.response(none) == (204, b"")
    assert closes.wait(head) == [0] and closes.wait(none) == [0]


# -- client resets ------------------------------------------------------------------

def test_client_reset_mid_response_calls_on_close_with_its_code(serve, h2_client):
    closes = Closes()
    bodies: dict[int, io.BytesIO] = {}

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            if self.path == b"/big":
                bodies[self.stream_id] = io.BytesIO(b"B" * (1 << 20))
                self.send_response(body=bodies[self.stream_id])
            else:
                self.send_response(body=b"small")

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    # A small window: the server's body stalls after 1000 bytes.
    client = h2_client(server.port, window=1000)
    reader = StreamReader(client, ack=False)
    sid = client.request("/big")
    reader.wait(lambda: len(reader.body.get(sid, b"")) >= 1000)
    time.sleep(0.05)
    assert len(reader.body[sid]) == 1000  # stalled on flow control, as intended
    assert sid not in reader.ended
    client.conn.reset_stream(sid, error_code=ErrorCode.CANCEL)
    client.flush()
    assert closes.wait(sid) == [ErrorCode.CANCEL]
    assert bodies[sid].closed

    reader.ack = True
    other = client.request("/small")
    assert reader.response(other) == (200, b"small")
    assert closes.wait(other) == [0]
    assert reader.terminated is None


@pytest.mark.parametrize("code", [0, 1, 8, 0xd])
def test_on_close_gets_the_clients_reset_code(serve, h2_client, code):
    closes = Closes()
    started = threading.Event()

    class Handler(BaseRequestHandler):
        def on_headers(self):
            started.set()

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port)
    sid = client.request("/upload", method="POST", end_stream=False)
    assert started.wait(5)
    client.conn.reset_stream(sid, error_code=code)
    client.flush()
    assert closes.wait(sid) == [code]


def test_reset_before_response_then_late_send_response_is_harmless(serve, h2_client):
    """The handler answers after the client has gone: nothing is sent, nothing breaks."""
    closes = Closes()
    late: list = []

    class Handler(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/slow":
                loop = asyncio.get_running_loop()
                loop.call_later(0.1, self.answer_late)

        def answer_late(self):
            try:
                self.send_response(body=b"too late")
                late.append(None)
            except Exception as exc:  # noqa: BLE001
                late.append(exc)

        def on_request_done(self):
            if self.path != b"/slow":
                self.send_response(body=b"ok")

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/slow")
    time.sleep(0.02)
    client.conn.reset_stream(sid, error_code=ErrorCode.CANCEL)
    client.flush()
    assert closes.wait(sid) == [ErrorCode.CANCEL]
    deadline = time.monotonic() + 5
    while not late and time.monotonic() < deadline:
        time.sleep(0.01)
    assert late == [None]  # silently dropped, no exception in the application
    other = client.request("/other")
    assert reader.response(other) == (200, b"ok")
    assert sid not in reader.headers


def test_reset_while_deferred_then_resume_is_harmless(serve, h2_client):
    closes = Closes()
    resumed = threading.Event()

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            if self.path != b"/deferred":
                return self.send_response(body=b"ok")
            loop = asyncio.get_running_loop()

            def body(n):
                return b"", DATA_DEFERRED

            def resume_later():
                self.resume()  # after the reset: must be a no-op
                resumed.set()

            self.send_response(body=body)
            loop.call_later(0.15, resume_later)

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/deferred")
    reader.wait(lambda: sid in reader.headers)
    client.conn.reset_stream(sid, error_code=ErrorCode.CANCEL)
    client.flush()
    assert closes.wait(sid) == [ErrorCode.CANCEL]
    assert resumed.wait(5)
    other = client.request("/other")
    assert reader.response(other) == (200, b"ok")


def test_connection_drop_mid_response_closes_open_streams(serve, h2_client):
    closes = Closes()
    bodies: list = []

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            f = io.BytesIO(b"D" * (1 << 20))
            bodies.append(f)
            self.send_response(body=f)

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port, window=500)
    reader = StreamReader(client, ack=False)
    sids = [client.request(f"/{i}") for i in range(3)]
    reader.wait(lambda: all(len(reader.body.get(s, b"")) >= 500 for s in sids))
    client.sock.close()
    for sid in sids:
        codes = closes.wait(sid)
        assert len(codes) == 1 and codes[0] != 0
    assert all(f.closed for f in bodies)


# -- server push ------------------------------------------------------------------------

class Pusher(BaseRequestHandler):
    """Pushes /style.css (and /app.js) then answers; records what push() returned."""

    results: list = []

    def on_request_done(self):
        type(self).results.append(self.push(
            "/style.css", request_headers=[("accept", "text/css")], status=200,
            headers=[("content-type", "text/css")], body=b"body { color: red }"))
        type(self).results.append(self.push(
            b"/app.js", body=lambda n: (b"console.log(1)", DATA_EOF)))
        self.send_response(body=b"<html>main</html>")


def test_push_disabled_by_client_returns_false(serve, h2_client):
    class Handler(Pusher):
        results: list = []

    server = serve(Handler)
    client = h2_client(server.port, enable_push=False)
    reader = StreamReader(client)
    sid = client.request("/")
    assert reader.response(sid) == (200, b"<html>main</html>")
    assert Handler.results == [False, False]
    assert reader.pushes == {}
    time.sleep(0.05)
    assert reader.terminated is None


def test_push_enabled_delivers_promise_and_pushed_response(serve, h2_client):
    import h2.events

    class Handler(Pusher):
        results: list = []

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/")
    assert reader.response(sid) == (200, b"<html>main</html>")
    reader.wait(lambda: len(reader.pushes) == 2 and all(
        p in reader.ended or p in reader.reset for p in reader.pushes))
    assert Handler.results == [True, True]

    by_path = {dict(e.headers)[b":path"]: e for e in reader.pushes.values()}
    assert set(by_path) == {b"/style.css", b"/app.js"}
    css = by_path[b"/style.css"]
    assert css.parent_stream_id == sid
    promise = dict(css.headers)
    assert promise[b":method"] == b"GET"
    assert promise[b":scheme"] == b"http"
    assert promise[b":authority"] == f"127.0.0.1:{server.port}".encode()
    assert promise[b"accept"] == b"text/css"
    pushed = css.pushed_stream_id
    assert pushed % 2 == 0
    assert reader.headers[pushed][":status"] == "200"
    assert reader.headers[pushed]["content-type"] == "text/css"
    assert reader.headers[pushed]["content-length"] == str(len(b"body { color: red }"))
    assert bytes(reader.body[pushed]) == b"body { color: red }"
    assert pushed in reader.ended

    js = by_path[b"/app.js"].pushed_stream_id
    assert bytes(reader.body[js]) == b"console.log(1)"
    assert "content-length" not in reader.headers[js]

    # Each PUSH_PROMISE precedes the end of its parent stream (RFC 9113 8.4).
    kinds = [(type(e), getattr(e, "stream_id", None)) for e in reader.events]
    parent_end = kinds.index((h2.events.StreamEnded, sid))
    promises = [i for i, e in enumerate(reader.events)
                if isinstance(e, h2.events.PushedStreamReceived)]
    assert all(i < parent_end for i in promises)


def test_push_head_and_on_close_of_parent(serve, h2_client):
    closes = Closes()

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            assert self.push("/head-only", method="HEAD", body=b"12345")
            self.send_response(body=b"parent")

        def on_close(self, error_code):
            closes.add(self.stream_id, error_code)

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/")
    assert reader.response(sid) == (200, b"parent")
    reader.wait(lambda: reader.pushes and all(p in reader.ended for p in reader.pushes))
    (pushed, event), = reader.pushes.items()
    assert dict(event.headers)[b":method"] == b"HEAD"
    assert reader.headers[pushed]["content-length"] == "5"
    assert reader.body.get(pushed, b"") == b""
    assert closes.wait(sid) == [0]


def test_push_via_nghttp_client(serve):
    """nghttp (the libnghttp2 client) receives the pushed resource."""
    class Handler(Pusher):
        results: list = []

    server = serve(Handler)
    result = run_peer("nghttp", "-nv", "--timeout=10", server.url("/"), timeout=20)
    assert result.returncode == 0, result.stderr
    assert "PUSH_PROMISE" in result.stdout
    assert ":path: /style.css" in result.stdout
    assert Handler.results == [True, True]


# -- many streams ------------------------------------------------------------------------

def expected_body(i: int) -> bytes:
    return (f"stream {i};".encode() * (i * 37 + 1))[: i * 1000 + 7]


class ManyHandler(BaseRequestHandler):
    """/n -> expected_body(n); odd n answer later from a timer (out of order)."""

    def on_request_done(self):
        i = int(self.path[1:])
        headers = [("x-index", str(i))]
        if i % 2:
            loop = asyncio.get_running_loop()
            loop.call_later(0.001 * (50 - i), lambda: self.send_response(
                headers=headers, body=expected_body(i)))
        else:
            self.send_response(headers=headers, body=expected_body(i))


def test_50_parallel_streams_on_one_connection(serve, h2_client):
    server = serve(ManyHandler)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sids = {}
    for i in range(50):
        sids[i] = client.request(f"/{i}")
    reader.wait(lambda: all(s in reader.ended or s in reader.reset for s in sids.values()))
    assert not reader.reset
    for i, sid in sids.items():
        assert reader.headers[sid][":status"] == "200"
        assert reader.headers[sid]["x-index"] == str(i)
        assert reader.headers[sid]["content-length"] == str(len(expected_body(i)))
        assert bytes(reader.body[sid]) == expected_body(i)
    # Responses really were concurrent: some completed out of request order.
    ends = [e.stream_id for e in reader.events if type(e).__name__ == "StreamEnded"]
    assert ends != sorted(ends)


def test_50_parallel_streams_h2load(serve):
    server = serve(ManyHandler)
    result = run_peer("h2load", "-n", "200", "-c", "2", "-m", "50",
                      *[server.url(f"/{i}") for i in range(50)], timeout=30)
    assert result.returncode == 0, result.stderr
    match = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", result.stdout)
    assert match, result.stdout
    assert match.groups() == ("200", "200", "200", "200", "0", "0")
    assert "status codes: 200 2xx" in result.stdout


class HeldResponses(BaseRequestHandler):
    """Answers once ``held`` streams are open at the same time, so they all are at once."""

    held = 0
    waiting: list = []

    def on_headers(self):
        HeldResponses.waiting.append(self)
        if len(HeldResponses.waiting) == HeldResponses.held:
            for handler in HeldResponses.waiting:
                handler.send_response(200, body=str(handler.stream_id).encode())


def test_many_concurrent_streams_grow_the_stream_map(serve):
    """nghttp2 grows its stream map (a large calloc, which the session's allocator maps
    from the kernel) as streams pile up; each growth replaces the block. 1500 streams
    open at once on one connection, answered only when all are open, checked with h2load."""
    HeldResponses.held, HeldResponses.waiting = 1500, []
    server = serve(HeldResponses, settings=ServerSettings(max_concurrent_streams=2000))
    result = run_peer("h2load", "-n", "1500", "-c", "1", "-m", "1500", server.url("/"))
    assert "1500 succeeded" in result.stdout, result.stdout
