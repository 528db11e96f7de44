"""Response bodies: every body type send_response accepts, checked byte for byte by real peers.

curl (--http2-prior-knowledge) and the ``h2`` package are the oracles: the
body they receive must be exactly what the handler gave, and ``content-length``
must be present (and right) exactly when the length is known in advance.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time

import pytest

from conftest import curl, wait_for
from nghttp2py import DATA_DEFERRED, DATA_EOF, DATA_OK, BaseRequestHandler

MiB = 1 << 20


# -- peers ---------------------------------------------------------------------

def responder(make_body, headers=None, status=200):
    """A handler class that answers every request with ``make_body(handler)``."""
    class Handler(BaseRequestHandler):
        def on_request_done(self):
            self.send_response(status, headers=headers, body=make_body(self))
    return Handler


# -- bytes-like bodies ------------------------------------------------------------

BYTES_BODY = bytes(range(256)) * 7 + b"tail"


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "memoryview-slice"])
def test_bytes_like_body_exact_with_content_length(serve, h2_client, kind):
    make = {
        "bytes": lambda: BYTES_BODY,
        "bytearray": lambda: bytearray(BYTES_BODY),
        "memoryview": lambda: memoryview(bytearray(BYTES_BODY)),
        "memoryview-slice": lambda: memoryview(b"xx" + BYTES_BODY + b"yy")[2:-2],
    }[kind]
    server = serve(responder(lambda h: make()))

    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200
    assert got.body == BYTES_BODY
    assert got.values("content-length") == [str(len(BYTES_BODY))]
    assert got.values("server") == ["nghttp2py"]
    assert len(got.values("date")) == 1

    stream = h2_client(server.port).get()
    assert stream.ended and stream.reset is None
    assert bytes(stream.body) == BYTES_BODY
    assert stream.values("content-length") == [str(len(BYTES_BODY))]


def test_empty_bytes_body_has_content_length_zero(serve, h2_client):
    server = serve(responder(lambda h: b""))
    stream = h2_client(server.port).get()
    assert stream.status == 200 and stream.ended
    assert stream.body == b""
    assert stream.values("content-length") == ["0"]


def test_no_body_gives_empty_response(serve, h2_client):
    server = serve(responder(lambda h: None))
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200 and got.body == b""
    stream = h2_client(server.port).get()
    assert stream.ended and stream.body == b"" and stream.data_frames == 0


def test_str_body_is_utf8_with_byte_content_length(serve, h2_client):
    text = "grüße, 日本語, snow ☃ and clef 𝄞\n" * 50
    encoded = text.encode("utf-8")
    server = serve(responder(lambda h: text,
                             headers=[("content-type", "text/plain; charset=utf-8")]))

    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200
    assert got.body == encoded
    assert got.body.decode("utf-8") == text
    assert got.values("content-length") == [str(len(encoded))]
    assert got.values("content-type") == ["text/plain; charset=utf-8"]

    stream = h2_client(server.port).get()
    assert bytes(stream.body) == encoded
    assert stream.values("content-length") == [str(len(encoded))]


@pytest.fixture(scope="module")
def big_body() -> bytes:
    return os.urandom(5 * MiB + 123)  # not a multiple of any frame or chunk size


def test_large_random_body_intact_via_curl(serve, big_body):
    server = serve(responder(lambda h: big_body))
    got = curl("--http2-prior-knowledge", server.url("/big"))
    assert got.status == 200
    assert len(got.body) == len(big_body)
    assert hashlib.sha256(got.body).hexdigest() == hashlib.sha256(big_body).hexdigest()
    assert got.values("content-length") == [str(len(big_body))]


def test_large_random_body_intact_via_h2(serve, h2_client, big_body):
    server = serve(responder(lambda h: big_body))
    client = h2_client(server.port)
    # A large connection window so the stream window (raised by SETTINGS) governs.
    client.conn.increment_flow_control_window(64 * MiB)
    client.flush()
    stream = client.get("/big")
    assert stream.ended and stream.reset is None
    assert len(stream.body) == len(big_body)
    assert hashlib.sha256(stream.body).hexdigest() == hashlib.sha256(big_body).hexdigest()
    assert stream.values("content-length") == [str(len(big_body))]
    # Framed within the default SETTINGS_MAX_FRAME_SIZE: at least len / 16384 frames.
    assert stream.data_frames >= len(big_body) // 16384


def test_large_body_two_streams_interleaved_intact(serve, h2_client, big_body):
    """Two NO_COPY bodies at once on one connection must not mix their bytes."""
    import h2.events

    other = bytes(reversed(big_body[:MiB * 2]))
    server = serve(responder(lambda h: big_body if h.path == b"/a" else other))
    client = h2_client(server.port)
    client.conn.increment_flow_control_window(64 * MiB)
    a = client.request("/a")
    b = client.request("/b")
    bodies = {a: bytearray(), b: bytearray()}
    ended = set()
    client.sock.settimeout(20)
    deadline = time.monotonic() + 20
    while len(ended) < 2:
        assert time.monotonic() < deadline
        data = client.sock.recv(1 << 20)
        assert data
        for event in client.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                bodies[event.stream_id] += event.data
                client.conn.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                pytest.fail(f"stream {event.stream_id} reset: {event.error_code}")
        client.flush()
    assert hashlib.sha256(bodies[a]).digest() == hashlib.sha256(big_body).digest()
    assert hashlib.sha256(bodies[b]).digest() == hashlib.sha256(other).digest()


# -- file-like bodies ------------------------------------------------------------------

def test_bytesio_body_with_content_length(serve, h2_client):
    payload = os.urandom(100_000)
    server = serve(responder(lambda h: io.BytesIO(payload)))
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200 and got.body == payload
    assert got.values("content-length") == [str(len(payload))]
    stream = h2_client(server.port).get()
    assert bytes(stream.body) == payload
    assert stream.values("content-length") == [str(len(payload))]


def test_bytesio_body_from_current_position(serve, h2_client):
    """A seekable file is sent from where it stands; content-length counts what is left."""
    def make(handler):
        f = io.BytesIO(b"SKIPPED|the rest")
        f.seek(8)
        return f
    server = serve(responder(make))
    stream = h2_client(server.port).get()
    assert stream.body == b"the rest"
    assert stream.values("content-length") == ["8"]


def test_real_file_body_sent_and_closed(serve, h2_client, tmp_path):
    payload = os.urandom(300_000)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    opened: list = []
    closed = threading.Event()

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            f = open(path, "rb")
            opened.append(f)
            self.send_response(body=f)

        def on_close(self, error_code):
            closed.set()

    server = serve(Handler)
    got = curl("--http2-prior-knowledge", server.url("/file"))
    assert got.status == 200 and got.body == payload
    assert got.values("content-length") == [str(len(payload))]
    assert closed.wait(5)
    assert opened[0].closed

    closed.clear()
    stream = h2_client(server.port).get()
    assert bytes(stream.body) == payload
    assert stream.values("content-length") == [str(len(payload))]
    assert closed.wait(5)
    assert opened[1].closed


def test_unseekable_binary_file_has_no_content_length(serve, h2_client):
    payload = os.urandom(70_000)

    class Unseekable(io.RawIOBase):
        def __init__(self):
            self._data = io.BytesIO(payload)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self._data.readinto(buffer)

    server = serve(responder(lambda h: Unseekable()))
    stream = h2_client(server.port).get()
    assert stream.ended and bytes(stream.body) == payload
    assert stream.values("content-length") == []


def test_stringio_text_body_utf8_without_content_length(serve, h2_client):
    # Multi-byte characters across every chunk boundary.
    text = "".join(f"{i}: é ü ß € 中文 🚀 𝄞\n" for i in range(8000))
    encoded = text.encode("utf-8")
    server = serve(responder(lambda h: io.StringIO(text)))

    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200
    assert got.body == encoded
    assert got.values("content-length") == []

    stream = h2_client(server.port).get()
    assert bytes(stream.body).decode("utf-8") == text
    assert stream.values("content-length") == []


@pytest.mark.parametrize("window", [1000, 65535, 1 << 20])
def test_text_body_not_truncated_by_small_flow_control_window(serve, h2_client, window):
    """The text is encoded as the window allows; a window of < 4 bytes left is not EOF."""
    text = "€" * 30000  # 3 bytes each: 90000 bytes, more than the default windows
    server = serve(responder(lambda h: io.StringIO(text)))
    stream = h2_client(server.port, window=window).get()
    assert stream.ended and stream.reset is None
    assert len(stream.body) == len(text.encode("utf-8"))
    assert bytes(stream.body).decode("utf-8") == text


def test_text_file_on_disk_utf8(serve, h2_client, tmp_path):
    text = "ligne %d: façade, naïve, 😀\n"
    text = "".join(text % i for i in range(3000))
    path = tmp_path / "page.txt"
    path.write_text(text, encoding="utf-8")
    opened: list = []

    def make(handler):
        f = open(path, encoding="utf-8")
        opened.append(f)
        return f

    server = serve(responder(make))
    stream = h2_client(server.port).get()
    assert bytes(stream.body) == text.encode("utf-8")
    assert stream.values("content-length") == []
    assert wait_for(lambda: opened[0].closed)


# -- generator bodies --------------------------------------------------------------------

def test_generator_body_several_chunks(serve, h2_client):
    chunks = [b"first,", "zweite-ü,", memoryview(b"view,"), bytearray(b"third,"), b"x" * 40000,
              b"last"]
    expected = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
    sizes: list[int] = []

    def make(handler):
        pending = list(chunks)

        def body(n):
            sizes.append(n)
            data = pending.pop(0)
            return data, DATA_EOF if not pending else DATA_OK
        return body

    server = serve(responder(make))
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200 and got.body == expected
    assert got.values("content-length") == []
    assert all(n > 0 for n in sizes)

    stream = h2_client(server.port).get()
    assert bytes(stream.body) == expected
    assert stream.values("content-length") == []


def test_generator_chunk_larger_than_a_frame_is_split_not_lost(serve, h2_client):
    big = os.urandom(200_000)

    def make(handler):
        state = {"sent": False}

        def body(n):
            if state["sent"]:
                return b"", DATA_EOF
            state["sent"] = True
            return big, DATA_OK
        return body

    server = serve(responder(make))
    stream = h2_client(server.port).get()
    assert bytes(stream.body) == big
    assert stream.data_frames >= len(big) // 16384


def test_generator_eof_with_data(serve, h2_client):
    server = serve(responder(lambda h: (lambda n: (b"only chunk", DATA_EOF))))
    stream = h2_client(server.port).get()
    assert stream.ended and stream.body == b"only chunk"


def test_deferred_generator_resumed_by_call_later(serve, h2_client):
    """DATA_DEFERRED pauses the body; handler.resume() from a timer continues it, many times."""
    pieces = [b"one ", b"two ", b"three ", b"four ", b"five"]
    calls: list[float] = []

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            loop = asyncio.get_running_loop()
            pending = list(pieces)

            def body(n):
                calls.append(time.monotonic())
                data = pending.pop(0)
                if not pending:
                    return data, DATA_EOF
                loop.call_later(0.05, self.resume)
                return data, DATA_DEFERRED
            self.send_response(body=body)

    server = serve(Handler)
    started = time.monotonic()
    stream = h2_client(server.port).get()
    elapsed = time.monotonic() - started
    assert stream.ended and stream.reset is None
    assert stream.body == b"".join(pieces)
    assert stream.values("content-length") == []
    # The generator is not called again while deferred: once per piece.
    assert len(calls) == len(pieces)
    assert elapsed >= 0.05 * (len(pieces) - 1) * 0.9
    assert all(b - a >= 0.04 for a, b in zip(calls, calls[1:]))

    calls.clear()
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200 and got.body == b"".join(pieces)
    assert len(calls) == len(pieces)


def test_deferred_generator_with_empty_chunks_then_data(serve, h2_client):
    """Deferring without data (b'', DATA_DEFERRED) and resuming later: data arrives in order."""
    ready: list[bytes] = []
    script = [b"alpha", b"beta", b"gamma"]

    class Handler(BaseRequestHandler):
        def on_headers(self):
            loop = asyncio.get_running_loop()
            produced = iter(script)

            def produce():
                item = next(produced, None)
                ready.append(item if item is not None else b"")
                if item is not None:
                    loop.call_later(0.03, produce)
                self.resume()

            def body(n):
                if not ready:
                    return b"", DATA_DEFERRED
                item = ready.pop(0)
                if item == b"":
                    return b"", DATA_EOF
                return item, DATA_OK

            self.send_response(body=body)
            loop.call_later(0.03, produce)

    server = serve(Handler)
    stream = h2_client(server.port).get()
    assert stream.ended and stream.body == b"alphabetagamma"


def test_deferred_body_resumed_from_another_thread_via_loop(serve, h2_client):
    """resume() scheduled onto the server loop from a worker thread (call_soon_threadsafe)."""
    class Handler(BaseRequestHandler):
        def on_request_done(self):
            loop = asyncio.get_running_loop()
            result: list[bytes] = []

            def work():
                time.sleep(0.05)
                result.append(b"computed elsewhere")
                loop.call_soon_threadsafe(self.resume)

            def body(n):
                if not result:
                    return None, DATA_DEFERRED
                return result.pop(), DATA_EOF

            self.send_response(body=body)
            threading.Thread(target=work, daemon=True).start()

    server = serve(Handler)
    stream = h2_client(server.port).get()
    assert stream.ended and stream.body == b"computed elsewhere"


# -- HEAD, 204, 304 and explicit content-length ------------------------------------

def test_head_has_content_length_but_no_data(serve, h2_client):
    payload = b"z" * 12345
    server = serve(responder(lambda h: payload))
    stream = h2_client(server.port).get(method="HEAD")
    assert stream.status == 200 and stream.ended
    assert stream.data_frames == 0 and stream.body == b""
    assert stream.values("content-length") == [str(len(payload))]

    got = curl("--http2-prior-knowledge", "-I", server.url("/"))  # -I writes headers as body
    assert got.status == 200
    assert got.values("content-length") == [str(len(payload))]


def test_head_with_file_body_closes_the_file(serve, h2_client, tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"q" * 5000)
    opened: list = []

    def make(handler):
        f = open(path, "rb")
        opened.append(f)
        return f

    server = serve(responder(make))
    stream = h2_client(server.port).get(method="HEAD")
    assert stream.data_frames == 0
    assert stream.values("content-length") == ["5000"]
    assert opened[0].closed


def test_head_with_generator_body_sends_no_data(serve, h2_client):
    called: list[int] = []

    def body(n):
        called.append(n)
        return b"must not be sent", DATA_EOF

    server = serve(responder(lambda h: body))
    stream = h2_client(server.port).get(method="HEAD")
    assert stream.status == 200 and stream.ended and stream.data_frames == 0
    assert called == []


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_statuses_have_no_content_length(serve, h2_client, status):
    server = serve(responder(lambda h: None, status=status))
    stream = h2_client(server.port).get()
    assert stream.status == status and stream.ended
    assert stream.values("content-length") == []
    assert stream.data_frames == 0
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == status and got.body == b""
    assert got.values("content-length") == []


def test_204_with_a_body_sends_no_data(serve, h2_client):
    server = serve(responder(lambda h: b"dropped", status=204))
    stream = h2_client(server.port).get()
    assert stream.status == 204 and stream.ended and stream.data_frames == 0
    assert stream.values("content-length") == []


def test_user_content_length_kept_and_not_duplicated(serve, h2_client):
    res = b"response body from the seed example\n"

    class Handler(BaseRequestHandler):
        def on_headers(self):
            self.send_response(status=200, headers=[("content-length", str(len(res)))],
                               body=res)

    server = serve(Handler)
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert got.status == 200 and got.body == res
    assert got.values("content-length") == [str(len(res))]

    stream = h2_client(server.port).get()
    assert bytes(stream.body) == res
    assert stream.values("content-length") == [str(len(res))]


def test_user_content_length_with_generator_body(serve, h2_client):
    """The length is unknown to the server for a generator; the user's header is sent."""
    server = serve(responder(lambda h: (lambda n: (b"12345", DATA_EOF)),
                             headers=[(b"content-length", b"5")]))
    stream = h2_client(server.port).get()
    assert stream.ended and stream.body == b"12345"
    assert stream.values("content-length") == ["5"]


def test_user_headers_kept_in_order_after_status(serve, h2_client):
    server = serve(responder(lambda h: b"ok", headers=[
        ("x-first", "1"), (b"set-cookie", b"a=1"), ("set-cookie", "b=2"), ("x-last", "é")]))
    stream = h2_client(server.port).get()
    names = [k for k, _ in stream.fields]
    assert names[0] == ":status"
    user = [(k, v) for k, v in stream.fields if k.startswith(("x-", "set-cookie"))]
    assert user == [("x-first", "1"), ("set-cookie", "a=1"), ("set-cookie", "b=2"),
                    ("x-last", "é")]


def test_binary_iobase_with_only_read(serve, h2_client):
    """An io.IOBase that has read(size) but no readinto: chunks of at most ``size``."""
    payload = os.urandom(150_000)
    sizes: list[int] = []

    class ReadOnly(io.IOBase):
        def __init__(self):
            self._data = io.BytesIO(payload)

        def readable(self):
            return True

        def read(self, size=-1):
            sizes.append(size)
            return self._data.read(min(size, 10_000))

    server = serve(responder(lambda h: ReadOnly()))
    stream = h2_client(server.port).get()
    assert stream.ended and bytes(stream.body) == payload
    assert stream.values("content-length") == []
    assert all(0 < n <= 16384 for n in sizes)


@pytest.fixture(scope="module")
def huge_body() -> bytes:
    return os.urandom(32 * MiB)


@pytest.mark.parametrize("kind", ["bytes", "BytesIO", "generator"])
def test_slow_reader_backpressure_and_body_intact(serve, h2_client, huge_body, kind):
    """The client stops reading (windows wide open): the server must stop producing output
    when its transport pauses, not copy the rest of the body into the write buffer; then the
    client reads everything, intact."""
    import h2.events
    import psutil

    def make(handler):
        if kind == "bytes":
            return huge_body
        if kind == "BytesIO":
            return io.BytesIO(huge_body)
        view = memoryview(huge_body)
        offset = [0]

        def body(n):
            chunk = view[offset[0]:offset[0] + n]
            offset[0] += len(chunk)
            return chunk, DATA_EOF if offset[0] >= len(view) else DATA_OK
        return body

    server = serve(responder(make))
    client = h2_client(server.port, window=(1 << 31) - 1)
    client.conn.increment_flow_control_window((1 << 31) - 1 - 65535)
    client.flush()
    process = psutil.Process()
    baseline = process.memory_info().rss
    stream_id = client.request("/slow")
    peak = baseline
    for _ in range(6):  # the server's socket buffer and transport fill up meanwhile
        time.sleep(0.05)
        peak = max(peak, process.memory_info().rss)
    growth = peak - baseline
    assert growth < 8 * MiB, (
        f"{growth / MiB:.1f} MiB of a {len(huge_body) // MiB} MiB body queued in the server "
        "while the client was not reading")

    body = bytearray()
    ended = False
    deadline = time.monotonic() + 20
    client.sock.settimeout(20)
    while not ended:
        assert time.monotonic() < deadline
        data = client.sock.recv(1 << 20)
        assert data
        for event in client.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                ended = event.stream_id == stream_id
            elif isinstance(event, h2.events.StreamReset):
                pytest.fail(f"reset {event.error_code}")
        client.flush()
    assert len(body) == len(huge_body)
    assert hashlib.sha256(body).digest() == hashlib.sha256(huge_body).digest()


@pytest.mark.parametrize("method, status", [("HEAD", 200), ("GET", 304)])
def test_user_content_length_without_body_for_head_and_304(serve, h2_client, method, status):
    """RFC 9110 8.6: a HEAD (or 304) response may carry the content-length a GET would have
    had, without a body; it is not a mismatch."""
    outcome: list = []

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            try:
                self.send_response(status, headers=[("content-length", "1234")])
                outcome.append(None)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                outcome.append(exc)
                self.send_response(500)

    server = serve(Handler)
    stream = h2_client(server.port).get(method=method)
    assert outcome == [None]
    assert stream.status == status and stream.ended and stream.data_frames == 0
    assert stream.values("content-length") == ["1234"]
