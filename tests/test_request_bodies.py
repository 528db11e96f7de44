"""Request bodies and request headers as the handler sees them.

Bodies are sent by curl (--data-binary @file) and by the ``h2`` package, which
obeys the server's flow-control windows: a body larger than the stream window
only completes if the server gives the window back as on_data consumes data.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time

import psutil
import pytest

from conftest import StreamReader, curl
from nghttp2py import DATA_DEFERRED, DATA_EOF, DATA_OK, BaseRequestHandler

MiB = 1 << 20
MAX_FRAME_SIZE = 16384


def start_request(client, path="/upload", method="POST", headers=()) -> int:
    """HEADERS without END_STREAM: the body follows."""
    return client.request(path, method=method, headers=headers, end_stream=False)


class CountingHandler(BaseRequestHandler):
    """Counts the request body in on_data; answers with the counts as JSON."""

    def on_headers(self):
        self.received = 0
        self.chunks = 0
        self.largest = 0
        self.empty_chunks = 0
        self.digest = hashlib.sha256()

    def on_data(self, data):
        assert type(data) is bytes
        self.received += len(data)
        self.chunks += 1
        self.empty_chunks += not data
        self.largest = max(self.largest, len(data))
        self.digest.update(data)

    def on_request_done(self):
        self.send_response(headers=[("content-type", "application/json")], body=json.dumps({
            "bytes": self.received, "chunks": self.chunks, "largest": self.largest,
            "empty_chunks": self.empty_chunks, "sha256": self.digest.hexdigest(),
            "method": self.method.decode(), "path": self.path.decode()}))


def write_random_file(path, size: int) -> str:
    """Write ``size`` random bytes without holding them; return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, MiB))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def curl_upload(url: str, path) -> dict:
    """POST the file at ``path`` with curl; the server's statistics of what it received."""
    return json.loads(curl("--http2-prior-knowledge", "--data-binary", f"@{path}",
                           "-H", "content-type: application/octet-stream", url, timeout=30).body)


# -- sizes via curl -----------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, MiB])
def test_request_body_sizes_via_curl(serve, tmp_path, size):
    path = tmp_path / "body.bin"
    digest = write_random_file(path, size)
    server = serve(CountingHandler)
    stats = curl_upload(server.url(f"/upload?size={size}"), path)
    assert stats["bytes"] == size
    assert stats["sha256"] == digest
    assert stats["method"] == "POST" and stats["path"] == f"/upload?size={size}"
    assert stats["empty_chunks"] == 0
    assert stats["largest"] <= MAX_FRAME_SIZE
    if size == 0:
        assert stats["chunks"] == 0
    elif size == 1:
        assert stats["chunks"] == 1
    else:
        assert stats["chunks"] >= size // MAX_FRAME_SIZE


def test_100_mib_request_body_streamed_not_buffered(serve, tmp_path):
    size = 100 * MiB
    path = tmp_path / "big.bin"
    digest = write_random_file(path, size)
    process = psutil.Process()
    peak = [0]

    class Sampling(CountingHandler):
        def on_data(self, data):
            super().on_data(data)
            if self.chunks % 128 == 0:  # about every 2 MiB
                peak[0] = max(peak[0], process.memory_info().rss)

    server = serve(Sampling)
    baseline = process.memory_info().rss
    started = time.monotonic()
    stats = curl_upload(server.url("/big"), path)
    elapsed = time.monotonic() - started
    after = process.memory_info().rss

    assert stats["bytes"] == size
    assert stats["sha256"] == digest
    assert 0 < stats["largest"] <= MAX_FRAME_SIZE
    assert stats["chunks"] >= size // MAX_FRAME_SIZE
    assert peak[0] > 0, "RSS was never sampled during the upload"
    growth = max(peak[0], after) - baseline
    assert growth < 50 * MiB, f"the server grew by {growth / MiB:.1f} MiB during a 100 MiB upload"
    assert elapsed < 15


# -- sizes via h2, with flow control -------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, MiB, 3 * MiB + 7])
def test_request_body_sizes_via_h2_flow_controlled(serve, h2_client, size):
    """3 MiB is more than the 1 MiB stream window: it only completes with WINDOW_UPDATEs."""
    payload = os.urandom(size)
    server = serve(CountingHandler)
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    sid = start_request(client)
    reader.send_body(sid, payload)
    status, body = reader.response(sid)
    assert status == 200
    stats = json.loads(body)
    assert stats["bytes"] == size
    assert stats["sha256"] == hashlib.sha256(payload).hexdigest()
    assert stats["largest"] <= MAX_FRAME_SIZE
    assert stats["empty_chunks"] == 0
    if size:
        assert stats["chunks"] >= -(-size // MAX_FRAME_SIZE)
    else:
        assert stats["chunks"] == 0


def test_request_without_body_never_calls_on_data(serve, h2_client):
    calls: list[str] = []

    class Handler(BaseRequestHandler):
        def on_data(self, data):
            calls.append("data")

        def on_request_done(self):
            calls.append("done")
            self.send_response(body=b"ok")

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    status, body = reader.response(client.request("/"))
    assert (status, body) == (200, b"ok")
    assert calls == ["done"]


def test_several_uploads_in_parallel_on_one_connection(serve, h2_client):
    payloads = {i: os.urandom(200_000 + i * 1111) for i in range(4)}
    server = serve(CountingHandler)
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    sids = {i: start_request(client, path=f"/up/{i}") for i in payloads}
    # Interleave the four bodies frame by frame.
    views = {i: memoryview(p) for i, p in payloads.items()}
    offsets = dict.fromkeys(payloads, 0)
    deadline = time.monotonic() + 20
    while any(offsets[i] < len(views[i]) for i in payloads):
        progressed = False
        for i, sid in sids.items():
            left = len(views[i]) - offsets[i]
            if not left:
                continue
            n = min(left, 8000, client.conn.local_flow_control_window(sid))
            if n <= 0:
                continue
            client.conn.send_data(sid, views[i][offsets[i]:offsets[i] + n].tobytes(),
                                  end_stream=n == left)
            offsets[i] += n
            progressed = True
        client.flush()
        if not progressed:
            assert time.monotonic() < deadline
            reader.read_once(deadline - time.monotonic())
    for i, sid in sids.items():
        status, body = reader.response(sid)
        stats = json.loads(body)
        assert status == 200 and stats["path"] == f"/up/{i}"
        assert stats["bytes"] == len(payloads[i])
        assert stats["sha256"] == hashlib.sha256(payloads[i]).hexdigest()


def test_request_body_delivered_while_it_arrives(serve, h2_client):
    """A duplex echo: each chunk must reach on_data (and come back) before the next is sent."""
    class Echo(BaseRequestHandler):
        def on_headers(self):
            self.pending: list[bytes] = []
            self.done = False

            def body(n):
                if self.pending:
                    return self.pending.pop(0), DATA_OK
                if self.done:
                    return b"", DATA_EOF
                return b"", DATA_DEFERRED

            self.send_response(body=body)

        def on_data(self, data):
            self.pending.append(data.upper())
            self.resume()

        def on_request_done(self):
            self.done = True
            self.resume()

    server = serve(Echo)
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    sid = start_request(client, path="/echo")
    echoed = 0
    for word in (b"first ", b"second ", b"third"):
        client.conn.send_data(sid, word)
        client.flush()
        echoed += len(word)
        reader.wait(lambda n=echoed: len(reader.body.get(sid, b"")) >= n, timeout=5)
    client.conn.end_stream(sid)
    client.flush()
    status, body = reader.response(sid)
    assert status == 200
    assert body == b"FIRST SECOND THIRD"


# -- request headers --------------------------------------------------------------------

class RecordingHandler(BaseRequestHandler):
    """Records the request's attributes on the class; answers 200."""

    seen: list = []

    def on_request_done(self):
        type(self).seen.append({
            "method": self.method, "path": self.path, "scheme": self.scheme, "host": self.host,
            "headers": list(self.headers), "stream_id": self.stream_id,
            "client_address": self.client_address,
        })
        self.send_response(body=b"recorded")


@pytest.fixture
def recording(serve):
    class Handler(RecordingHandler):
        seen: list = []
    return Handler, serve(Handler)


def test_cookies_joined_and_header_order_kept(recording, h2_client):
    handler, server = recording
    client = h2_client(server.port)
    sid = client.request("/c", headers=[
        ("x-b", "2"), ("cookie", "a=1"), ("x-a", "1"), ("cookie", "b=2"), ("x-c", "3"),
        ("x-a", "again"), ("cookie", "c=3")])
    assert StreamReader(client, timeout=20).response(sid) == (200, b"recorded")
    headers = handler.seen[0]["headers"]
    assert all(type(k) is bytes and type(v) is bytes for k, v in headers)
    cookies = [v for k, v in headers if k == b"cookie"]
    assert cookies == [b"a=1; b=2; c=3"]
    others = [(k, v) for k, v in headers if k.startswith(b"x-")]
    assert others == [(b"x-b", b"2"), (b"x-a", b"1"), (b"x-c", b"3"), (b"x-a", b"again")]
    assert not any(k.startswith(b":") for k, _ in headers)


def test_single_cookie_unchanged(recording, h2_client):
    handler, server = recording
    client = h2_client(server.port)
    sid = client.request("/", headers=[("cookie", "session=abc; theme=dark")])
    StreamReader(client, timeout=20).response(sid)
    assert [v for k, v in handler.seen[0]["headers"] if k == b"cookie"] == \
        [b"session=abc; theme=dark"]


def test_pseudo_headers_become_attributes(recording, h2_client):
    handler, server = recording
    client = h2_client(server.port)
    sid = client.request("/path/x?q=%20&y=1", method="PUT", body=b"abc")
    StreamReader(client, timeout=20).response(sid)
    seen = handler.seen[0]
    assert seen["method"] == b"PUT"
    assert seen["path"] == b"/path/x?q=%20&y=1"
    assert seen["scheme"] == b"http"
    assert seen["host"] == f"127.0.0.1:{server.port}".encode()
    assert seen["stream_id"] == sid
    assert seen["client_address"][0] == "127.0.0.1"
    assert seen["client_address"][1] == client.sock.getsockname()[1]


def test_host_from_host_header_without_authority(recording, h2_client):
    handler, server = recording
    client = h2_client(server.port)
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", "/h"),
                                   ("host", "example.test:8443"), ("x-after", "1")],
                             end_stream=True)
    client.flush()
    assert StreamReader(client, timeout=20).response(sid) == (200, b"recorded")
    seen = handler.seen[0]
    assert seen["host"] == b"example.test:8443"
    assert (b"host", b"example.test:8443") in seen["headers"]


def test_authority_wins_over_host_header(recording, h2_client):
    handler, server = recording
    client = h2_client(server.port)
    sid = client.request("/", headers=[("host", f"127.0.0.1:{server.port}")])
    StreamReader(client, timeout=20).response(sid)
    assert handler.seen[0]["host"] == f"127.0.0.1:{server.port}".encode()


def test_request_headers_via_curl(recording):
    handler, server = recording
    got = curl("--http2-prior-knowledge", "-H", "X-Custom: Value With Spaces",
               "-b", "k1=v1; k2=v2", "-A", "tester/1.0", server.url("/curl?x=1"))
    assert got.body == b"recorded"
    seen = handler.seen[0]
    headers = dict(seen["headers"])
    assert seen["method"] == b"GET" and seen["path"] == b"/curl?x=1"
    assert seen["host"] == f"127.0.0.1:{server.port}".encode()
    assert headers[b"x-custom"] == b"Value With Spaces"  # names lower-cased by HTTP/2
    assert headers[b"user-agent"] == b"tester/1.0"
    assert headers[b"cookie"] == b"k1=v1; k2=v2"


def test_headers_of_concurrent_requests_do_not_mix(recording, h2_client):
    handler, server = recording
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    sids = [client.request(f"/r{i}", headers=[("x-index", str(i)), ("cookie", f"i={i}")])
            for i in range(10)]
    for sid in sids:
        reader.response(sid)
    by_path = {s["path"]: s for s in handler.seen}
    for i, sid in enumerate(sids):
        seen = by_path[f"/r{i}".encode()]
        assert seen["stream_id"] == sid
        assert dict(seen["headers"])[b"x-index"] == str(i).encode()
        assert dict(seen["headers"])[b"cookie"] == f"i={i}".encode()


def test_headers_readable_when_first_read_after_the_stream_closed(serve, h2_client):
    """Work deferred past the end of the stream still sees the request's headers."""
    seen: list = []
    done = threading.Event()

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            self.send_response(body=b"answered first")
            asyncio.get_running_loop().call_later(0.05, self.later)

        def later(self):
            seen.append((self.method, self.path, list(self.headers)))
            done.set()

    server = serve(Handler)
    client = h2_client(server.port)
    sid = client.request("/later", headers=[("x-kept", "yes"), ("cookie", "a=1")])
    assert StreamReader(client, timeout=20).response(sid) == (200, b"answered first")
    assert done.wait(5)
    method, path, headers = seen[0]
    assert (method, path) == (b"GET", b"/later")
    assert headers == [(b"x-kept", b"yes"), (b"cookie", b"a=1")]


def test_headers_readable_in_on_close(serve, h2_client):
    seen: list = []
    done = threading.Event()

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            self.send_response(body=b"ok")

        def on_close(self, error_code):
            seen.append(list(self.headers))
            done.set()

    server = serve(Handler)
    client = h2_client(server.port)
    sid = client.request("/", headers=[("x-in-close", "1")])
    StreamReader(client, timeout=20).response(sid)
    assert done.wait(5)
    assert seen == [[(b"x-in-close", b"1")]]


def test_request_trailers_end_the_request_once(serve, h2_client):
    calls: list = []

    class Handler(CountingHandler):
        def on_headers(self):
            calls.append("headers")
            super().on_headers()

        def on_request_done(self):
            calls.append("done")
            super().on_request_done()

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    sid = start_request(client, headers=[("te", "trailers")])
    reader.send_body(sid, b"body before trailers", end_stream=False)
    client.conn.send_headers(sid, [("x-checksum", "abc")], end_stream=True)
    client.flush()
    status, body = reader.response(sid)
    assert status == 200
    assert json.loads(body)["bytes"] == len(b"body before trailers")
    assert calls == ["headers", "done"]


def test_window_returned_when_handler_ignores_the_body(serve, h2_client):
    """A handler without on_data: the body is discarded, but the window still comes back."""
    class Handler(BaseRequestHandler):
        def on_request_done(self):
            self.send_response(body=b"ignored")

    server = serve(Handler)
    client = h2_client(server.port)
    reader = StreamReader(client, timeout=20)
    sid = start_request(client)
    reader.send_body(sid, os.urandom(3 * MiB))
    assert reader.response(sid) == (200, b"ignored")
