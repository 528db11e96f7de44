"""Hostile and broken clients: the server answers per RFC 9113, logs one line per
incident and keeps serving every other connection.

Frames are written byte by byte (``h2`` refuses to produce most of these) and
read back with ``hyperframe``/``hpack``.
"""
from __future__ import annotations

import io
import logging
import socket
import struct
import threading
import time

import pytest

from conftest import wait_for
from nghttp2py import DATA_EOF, DATA_OK, BaseRequestHandler, ErrorCode, ServerSettings
from rawh2 import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawH2,
    body_of,
    frame,
    frames_of,
    is_end,
    is_goaway,
    is_server_settings,
    kind,
    settings_payload,
    status_of,
    until_streams_done,
)

BODY = b"hello, world\n"

# -- handlers ----------------------------------------------------------------------


class RecordingHandler(BaseRequestHandler):
    """Answers every request; records which paths reached the application and every close."""

    seen: list = []
    stream_ids: list = []
    closed: list = []

    def on_headers(self):
        RecordingHandler.seen.append(self.path)
        RecordingHandler.stream_ids.append(self.stream_id)
        self.send_response(200, [("content-type", "text/plain")], BODY)

    def on_close(self, error_code):
        RecordingHandler.closed.append((self.stream_id, error_code))


@pytest.fixture
def recording_server(serve):
    RecordingHandler.seen = []
    RecordingHandler.stream_ids = []
    RecordingHandler.closed = []
    return serve(RecordingHandler)


def assert_still_serving(server, h2_client) -> None:
    """A fresh connection gets a normal response."""
    client = h2_client(server.port)
    got = client.response(client.request("/still-there"), timeout=5)
    assert (got.headers.get(":status"), got.body) == ("200", BODY)


def nghttp2py_lines(log_records) -> list[str]:
    return [r.getMessage() for r in log_records.records
            if r.name == "nghttp2py" and not r.getMessage().startswith("serving ")]


def assert_one_log_line(log_records, *words: str) -> str:
    assert wait_for(lambda: nghttp2py_lines(log_records), 1.5), "nothing logged"
    time.sleep(0.05)
    lines = nghttp2py_lines(log_records)
    assert len(lines) == 1, lines
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


# -- the connection preface ---------------------------------------------------------------

GARBAGE = {
    "binary": bytes(range(256)) * 4,
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500,
    "bad-preface-tail": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 9,
}


@pytest.mark.parametrize("garbage", ["binary", "tls-client-hello", "bad-preface-tail"])
def test_garbage_instead_of_preface_closes_connection(serve, h2_client, log_records, garbage):
    """RFC 9113 3.4: an invalid preface is a connection error; the connection is closed.

    On an HTTP/2-only server: with HTTP/1.1 on, garbage is a bad HTTP/1 request
    (test_http1.py)."""
    RecordingHandler.seen = []
    server = serve(RecordingHandler, http1=False)
    other = h2_client(server.port)  # an established connection, to prove it is unaffected
    log_records.clear()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(GARBAGE[garbage])
        reply = b""
        deadline = time.monotonic() + 5
        while True:
            assert time.monotonic() < deadline, "connection left open"
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    if garbage != "bad-preface-tail":  # "PRI * HTTP/2.0" may pass for an HTTP/1 request line
        assert not reply.startswith(b"HTTP/1.1"), reply
        assert_one_log_line(log_records, "preface")
    else:
        assert_one_log_line(log_records)
    got = other.response(other.request("/other"), timeout=5)
    assert (got.headers[":status"], got.body) == ("200", BODY)
    assert_still_serving(server, h2_client)
    assert RecordingHandler.seen == [b"/other", b"/still-there"]


# -- connection errors: GOAWAY with the right code ------------------------------------------------


def _data_on_stream_zero(client):
    return frame(DATA, 0, 0, b"oops")


def _invalid_hpack_index(client):
    # Indexed header field, index 126: past the static table and the empty dynamic one.
    return frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xfe")


def _hpack_index_zero(client):
    return frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80")


def _frame_larger_than_max_frame_size(client):
    return client.headers_frame(1, end_stream=False) + frame(DATA, 0, 1, b"x" * 16385)


def _settings_bad_length(client):
    return frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00")


def _ping_bad_length(client):
    return frame(PING, 0, 0, b"1234567")


def _ping_on_a_stream(client):
    return frame(PING, 0, 1, b"12345678")


def _window_update_zero(client):
    return frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00")


def _headers_on_even_stream(client):
    return client.headers_frame(2)


def _continuation_without_headers(client):
    return frame(CONTINUATION, END_HEADERS, 1, client.header_block())


def _settings_ack_with_payload(client):
    return frame(SETTINGS, ACK, 0, settings_payload(max_concurrent_streams=1))


def _enable_push_invalid(client):
    return frame(SETTINGS, 0, 0, settings_payload(enable_push=2))


def _window_too_large(client):
    return frame(SETTINGS, 0, 0, settings_payload(initial_window_size=2**31))


def _data_on_idle_stream(client):
    return frame(DATA, END_STREAM, 7, b"x")


def _goaway_on_a_stream(client):
    return frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0))


CONNECTION_ERRORS = [
    (_data_on_stream_zero, ErrorCode.PROTOCOL_ERROR),
    (_invalid_hpack_index, ErrorCode.COMPRESSION_ERROR),
    (_hpack_index_zero, ErrorCode.COMPRESSION_ERROR),
    (_frame_larger_than_max_frame_size, ErrorCode.FRAME_SIZE_ERROR),
    (_settings_bad_length, ErrorCode.FRAME_SIZE_ERROR),
    (_ping_bad_length, ErrorCode.FRAME_SIZE_ERROR),
    (_ping_on_a_stream, ErrorCode.PROTOCOL_ERROR),
    (_window_update_zero, ErrorCode.PROTOCOL_ERROR),
    (_headers_on_even_stream, ErrorCode.PROTOCOL_ERROR),
    (_continuation_without_headers, ErrorCode.PROTOCOL_ERROR),
    (_settings_ack_with_payload, ErrorCode.FRAME_SIZE_ERROR),
    (_enable_push_invalid, ErrorCode.PROTOCOL_ERROR),
    (_window_too_large, ErrorCode.FLOW_CONTROL_ERROR),
    (_data_on_idle_stream, ErrorCode.PROTOCOL_ERROR),
    (_goaway_on_a_stream, ErrorCode.PROTOCOL_ERROR),
]


def send_after_handshake(client: RawH2, make_frames, log_records) -> RawH2:
    """Read the handshake first, so the frames ``make_frames(client)`` are the only thing
    that goes wrong (and the only thing logged from now on), then send them."""
    client.frames_until(is_server_settings, 5)
    log_records.clear()
    client.send(make_frames(client))
    return client


@pytest.mark.parametrize("make_frames, error_code", CONNECTION_ERRORS,
                         ids=[f.__name__.lstrip("_") for f, _ in CONNECTION_ERRORS])
def test_malformed_frame_gets_goaway(recording_server, raw_client, h2_client, log_records,
                                     make_frames, error_code):
    server = recording_server
    client = send_after_handshake(raw_client(server.port), make_frames, log_records)
    frames = client.frames_until(is_goaway, 5)
    goaways = frames_of(frames, "GoAwayFrame")
    assert goaways, f"no GOAWAY, got {[kind(f) for f in frames]}"
    assert goaways[-1].error_code == error_code
    # Then the server closes the connection.
    rest = client.frames_until(lambda f: False, 5)
    assert client.eof
    assert not frames_of(rest, "HeadersFrame")
    assert_still_serving(server, h2_client)


@pytest.mark.parametrize("make_frames, error_code", CONNECTION_ERRORS[:4],
                         ids=[f.__name__.lstrip("_") for f, _ in CONNECTION_ERRORS[:4]])
def test_connection_error_is_logged_once(recording_server, raw_client, log_records,
                                         make_frames, error_code):
    """One INFO line on the ``nghttp2py`` logger per connection error, naming the client."""
    server = recording_server
    client = send_after_handshake(raw_client(server.port), make_frames, log_records)
    client.frames_until(lambda f: False, 5)
    assert client.eof
    port = client.sock.getsockname()[1]
    assert_one_log_line(log_records, str(port))


def test_goaway_last_stream_id_covers_processed_streams(recording_server, raw_client):
    server = recording_server
    client = raw_client(server.port)
    client.request(1, "/first")
    client.frames_until(lambda f: is_end(f) and f.stream_id == 1, 5)
    client.send(frame(DATA, 0, 0, b"oops"))
    goaway = frames_of(client.frames_until(is_goaway, 5), "GoAwayFrame")[-1]
    assert (goaway.last_stream_id, goaway.error_code) == (1, ErrorCode.PROTOCOL_ERROR)


# -- stream errors: RST_STREAM on that stream only -------------------------------------------------

MALFORMED_REQUESTS = {
    "uppercase-name": [(b"X-Upper", b"1")],
    "connection-header": [(b"connection", b"keep-alive")],
    "keep-alive-header": [(b"keep-alive", b"timeout=5")],
    "transfer-encoding": [(b"transfer-encoding", b"chunked")],
    "upgrade-header": [(b"upgrade", b"h2c")],
    "te-not-trailers": [(b"te", b"gzip")],
    "unknown-pseudo-header": [(b":foo", b"bar")],
}


@pytest.mark.parametrize("name", list(MALFORMED_REQUESTS))
def test_malformed_request_resets_only_its_stream(recording_server, raw_client, log_records,
                                                   name):
    server = recording_server
    client = raw_client(server.port)
    client.frames_until(is_server_settings, 5)
    client.send(client.headers_frame(1, "/ok-before")
                + client.headers_frame(3, "/bad", extra=MALFORMED_REQUESTS[name])
                + client.headers_frame(5, "/ok-after"))
    frames = client.frames_until(until_streams_done({1, 3, 5}), 5)
    assert not frames_of(frames, "GoAwayFrame")
    resets = frames_of(frames, "RstStreamFrame")
    assert [(f.stream_id, f.error_code) for f in resets] == [(3, ErrorCode.PROTOCOL_ERROR)]
    assert not frames_of(frames, "HeadersFrame", 3)
    for stream_id in (1, 5):
        assert status_of(frames, stream_id) == b"200"
        assert body_of(frames, stream_id) == BODY
    assert wait_for(lambda: len(RecordingHandler.seen) == 2)
    assert sorted(RecordingHandler.seen) == [b"/ok-after", b"/ok-before"]
    # The connection is still usable.
    client.request(7, "/later")
    frames = client.frames_until(lambda f: is_end(f) and f.stream_id == 7, 5)
    assert body_of(frames, 7) == BODY


def _without(name: bytes):
    def make(client):
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", client.authority),
                  (b":path", b"/")]
        return [f for f in fields if f[0] != name]
    return make


MALFORMED_PSEUDO = {
    "no-path": _without(b":path"),
    "no-method": _without(b":method"),
    "no-scheme": _without(b":scheme"),
    "pseudo-after-regular": lambda c: [(b":method", b"GET"), (b":scheme", b"http"),
                                       (b"accept", b"*/*"), (b":path", b"/"),
                                       (b":authority", c.authority)],
    "duplicate-path": lambda c: [(b":method", b"GET"), (b":scheme", b"http"),
                                 (b":authority", c.authority), (b":path", b"/"),
                                 (b":path", b"/again")],
    "empty-path": lambda c: [(b":method", b"GET"), (b":scheme", b"http"),
                             (b":authority", c.authority), (b":path", b"")],
}


@pytest.mark.parametrize("name", list(MALFORMED_PSEUDO))
def test_malformed_pseudo_headers_reset_only_their_stream(recording_server, raw_client, name):
    server = recording_server
    client = raw_client(server.port)
    client.frames_until(is_server_settings, 5)
    # Encode in sending order: the HPACK dynamic table is shared.
    first = client.headers_frame(1, "/ok-before")
    bad = frame(HEADERS, END_HEADERS | END_STREAM, 3,
                client.encoder.encode(MALFORMED_PSEUDO[name](client)))
    client.send(first + bad + client.headers_frame(5, "/ok-after"))
    frames = client.frames_until(until_streams_done({1, 3, 5}), 5)
    assert not frames_of(frames, "GoAwayFrame")
    assert [(f.stream_id, f.error_code) for f in frames_of(frames, "RstStreamFrame")] \
        == [(3, ErrorCode.PROTOCOL_ERROR)]
    assert (body_of(frames, 1), body_of(frames, 5)) == (BODY, BODY)


def test_content_length_mismatch_resets_stream(recording_server, raw_client):
    """RFC 9113 8.1.1: DATA that disagrees with content-length makes the request malformed."""
    server = recording_server
    client = raw_client(server.port)
    client.frames_until(is_server_settings, 5)
    client.send(client.headers_frame(1, "/post", "POST", extra=[(b"content-length", b"10")],
                                     end_stream=False)
                + frame(DATA, END_STREAM, 1, b"12345"))
    frames = client.frames_until(until_streams_done({1}), 5)
    assert not frames_of(frames, "GoAwayFrame")
    assert [(f.stream_id, f.error_code) for f in frames_of(frames, "RstStreamFrame")] \
        == [(1, ErrorCode.PROTOCOL_ERROR)]
    client.request(3, "/after")
    assert body_of(client.frames_until(lambda f: is_end(f) and f.stream_id == 3, 5), 3) == BODY


# -- request headers larger than max_header_list_size ----------------------------------------


class HeaderSizeHandler(BaseRequestHandler):
    seen: list = []

    def on_headers(self):
        HeaderSizeHandler.seen.append(self.path)
        total = sum(len(n) + len(v) for n, v in self.headers)
        self.send_response(200, [("content-type", "text/plain")], str(total))


@pytest.mark.parametrize("extra", [
    [(b"x-big", b"a" * 8192)],
    [(f"x-h{i}".encode(), b"v" * 500) for i in range(16)],
], ids=["one-8k-header", "many-headers"])
def test_header_list_too_large_gets_431(serve, raw_client, extra):
    HeaderSizeHandler.seen = []
    server = serve(HeaderSizeHandler, settings=ServerSettings(max_header_list_size=4096))
    client = raw_client(server.port)
    frames = client.frames_until(is_server_settings, 5)
    assert dict(frames[-1].settings)[6] == 4096  # SETTINGS_MAX_HEADER_LIST_SIZE announced
    client.send(client.headers_frame(1, "/too-big", extra=extra)
                + client.headers_frame(3, "/fine", extra=[(b"x-small", b"s" * 1000)]))
    frames = client.frames_until(until_streams_done({1, 3}), 5)
    assert not frames_of(frames, "GoAwayFrame")
    assert status_of(frames, 1) == b"431"
    assert any(is_end(f) for f in frames if f.stream_id == 1)
    assert status_of(frames, 3) == b"200"
    assert body_of(frames, 3) == str(len(b"x-small") + 1000).encode()
    assert HeaderSizeHandler.seen == [b"/fine"]  # the application never saw the big one


def test_header_list_just_under_the_limit_is_accepted(serve, raw_client):
    HeaderSizeHandler.seen = []
    server = serve(HeaderSizeHandler, settings=ServerSettings(max_header_list_size=4096))
    client = raw_client(server.port)
    # RFC 9113 6.5.2: each field counts name + value + 32 octets; leave room for the
    # pseudo-headers (about 4 x 32 + 50 octets).
    client.request(1, "/near", extra=[(b"x-big", b"a" * 3500)])
    frames = client.frames_until(until_streams_done({1}), 5)
    assert status_of(frames, 1) == b"200"


# -- a client that vanishes mid-response ----------------------------------------------------------

TEN_MIB = 10 << 20


class BigResponseHandler(BaseRequestHandler):
    closed: list = []
    kind = "bytes"

    def on_headers(self):
        if self.path == b"/small":
            self.send_response(200, body=BODY)
            return
        if BigResponseHandler.kind == "bytes":
            body = b"z" * TEN_MIB
        elif BigResponseHandler.kind == "file":
            body = io.BytesIO(b"z" * TEN_MIB)
        else:
            remaining = [TEN_MIB]

            def body(n):
                n = min(n, remaining[0])
                remaining[0] -= n
                return b"z" * n, DATA_EOF if remaining[0] == 0 else DATA_OK
        self.send_response(200, [("content-type", "application/octet-stream")], body)

    def on_close(self, error_code):
        BigResponseHandler.closed.append((self.path, error_code))


def _big_window_client(port: int, raw_client) -> RawH2:
    """A raw client with a small receive buffer and a huge flow-control window, so
    that only TCP backpressure (not HTTP/2 flow control) holds the server back."""
    client = raw_client(port, settings=settings_payload(initial_window_size=2**31 - 1),
                        rcvbuf=65536)
    client.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65535)))
    return client


@pytest.mark.parametrize("body_kind", ["bytes", "file", "generator"])
@pytest.mark.parametrize("abort", [True, False], ids=["reset", "close"])
@pytest.mark.parametrize("held_by", ["tcp", "window"])
def test_client_vanishing_mid_response(serve, raw_client, h2_client, log_records, body_kind,
                                       abort, held_by):
    BigResponseHandler.closed = []
    BigResponseHandler.kind = body_kind
    server = serve(BigResponseHandler)
    if held_by == "tcp":
        client = _big_window_client(server.port, raw_client)
    else:  # 1 MiB of window: the server stops there and waits for WINDOW_UPDATE
        client = raw_client(server.port, settings=settings_payload(initial_window_size=1 << 20))
        client.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 20) - 65535)))
    client.request(1, "/big")
    received = 0

    def got_enough(f) -> bool:
        nonlocal received
        if kind(f) == "DataFrame":
            received += len(f.data)
        return received >= 512 * 1024 or is_end(f)

    frames = client.frames_until(got_enough, 5)
    assert status_of(frames, 1) == b"200"
    assert 0 < received < TEN_MIB
    # Backpressure: while the client is not reading, the server must not have
    # handed the whole body over (to nghttp2 that would make the stream complete).
    assert BigResponseHandler.closed == [], "the whole body was buffered despite backpressure"
    if abort:  # RST instead of FIN
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()
    assert wait_for(lambda: BigResponseHandler.closed, 5), "on_close was not called"
    [(path, error_code)] = BigResponseHandler.closed
    assert path == b"/big"
    assert error_code != ErrorCode.NO_ERROR, "the stream was reported complete"
    assert wait_for(lambda: server.call(lambda: server.server.connections) == 0, 5)
    # A new connection is served.
    other = h2_client(server.port)
    got = other.response(other.request("/small"), timeout=5)
    assert (got.headers[":status"], got.body) == ("200", BODY)
    # Writing on after the transport broke makes asyncio warn once per write.
    noise = [r.getMessage() for r in log_records.records
             if r.levelno >= logging.WARNING and r.name in ("asyncio", "nghttp2py")]
    assert noise == [], f"{len(noise)} warnings, first: {noise[:1]}"


def test_client_reset_stream_mid_response_keeps_connection(serve, h2_client):
    """RST_STREAM(CANCEL) from the client: on_close(CANCEL), the connection stays usable."""
    import h2.errors
    import h2.events

    BigResponseHandler.closed = []
    BigResponseHandler.kind = "bytes"
    server = serve(BigResponseHandler)
    client = h2_client(server.port)
    stream_id = client.request("/big")
    events = client.events_until(lambda e: isinstance(e, h2.events.DataReceived), timeout=5)
    # Like any client, give back the connection window for the DATA it has read
    # (h2 does so by itself only for DATA arriving after the reset).
    for event in events + client.pending:
        if isinstance(event, h2.events.DataReceived):
            client.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
    client.pending = []
    client.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    assert wait_for(lambda: BigResponseHandler.closed, 5)
    assert BigResponseHandler.closed == [(b"/big", ErrorCode.CANCEL)]
    got = client.response(client.request("/small"), timeout=5)
    assert (got.headers[":status"], got.body) == ("200", BODY)


# -- rapid reset (CVE-2023-44487) ----------------------------------------------------------------


def test_rapid_reset_flood_leaves_server_responsive(recording_server, raw_client, h2_client):
    server = recording_server
    client = raw_client(server.port)
    client.frames_until(is_server_settings, 5)
    pairs = 5000
    flood = b"".join(client.headers_frame(2 * i + 1, "/flood")
                     + frame(RST_STREAM, 0, 2 * i + 1, struct.pack(">I", ErrorCode.CANCEL))
                     for i in range(pairs))
    frames: list = []
    # Send from a thread while this one reads, so neither side's buffers can fill up.
    sender_error: list = []

    def send():
        try:
            client.send(flood)
        except OSError as exc:  # the server may hang up on the flood
            sender_error.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    started = time.monotonic()
    # Meanwhile another client is served promptly.
    assert_still_serving(server, h2_client)
    sender.join(10)
    assert not sender.is_alive()
    # The flooding connection ends with GOAWAY, or else it still answers a PING.
    frames = client.frames_until(lambda f: is_goaway(f), 2) if not sender_error else []
    goaways = frames_of(frames, "GoAwayFrame")
    if goaways or client.eof or sender_error:
        if goaways:
            last = goaways[-1].last_stream_id
            assert goaways[-1].error_code in (ErrorCode.ENHANCE_YOUR_CALM,
                                              ErrorCode.PROTOCOL_ERROR,
                                              ErrorCode.INTERNAL_ERROR, ErrorCode.NO_ERROR)
            # RFC 9113 6.8: streams above last_stream_id were not processed (the client
            # may retry them), so the application must not have seen any of them.
            flood_ids = [i for i, path in zip(RecordingHandler.stream_ids, RecordingHandler.seen)
                         if path == b"/flood"]
            beyond = [i for i in flood_ids if i > last]
            assert not beyond, (f"GOAWAY last_stream_id={last} but on_headers ran for "
                                f"{len(beyond)} later streams (up to {max(beyond)})")
    else:
        client.send(frame(PING, 0, 0, b"pingpong"))
        pong = client.frames_until(lambda f: kind(f) == "PingFrame" and "ACK" in f.flags, 5)
        assert pong and bytes(pong[-1].opaque_data) == b"pingpong"
    assert time.monotonic() - started < 15
    # Afterwards the server is still fine, and the flood's handlers were not kept.
    assert_still_serving(server, h2_client)
    assert wait_for(lambda: server.call(lambda: server.server.connections) <= 2, 5)
