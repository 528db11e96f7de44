"""HTTP/1.1 beside HTTP/2 on one port: keep-alive, pipelining, framing, limits, smuggling.

The requests are raw bytes (rawh1.py) or Python's http.client; the responses
are parsed by llhttp (httptools' response parser) or http.client.
"""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import logging
import random
import socket
import time

import pytest
from rawh1 import RawH1

from conftest import digest, wait_for
from nghttp2py import BaseRequestHandler, ServerSettings, Timeouts


class EchoHandler(BaseRequestHandler):
    """Answers with what it saw of the request, as JSON."""

    def on_headers(self):
        self.received = bytearray()
        if self.path.startswith(b"/early"):
            self.send_response(200, body=b"early\n")

    def on_data(self, data):
        self.received += data

    def on_request_done(self):
        if self.path.startswith(b"/early"):
            return
        info = {
            "method": self.method.decode(), "path": self.path.decode(),
            "host": self.host.decode() if self.host else None,
            "scheme": self.scheme.decode(), "version": self.http_version,
            "stream": self.stream_id, "body": digest(bytes(self.received)),
            "headers": [[n.decode(), v.decode()] for n, v in self.headers],
            "trailers": [[n.decode(), v.decode()] for n, v in self.trailers or ()],
        }
        self.send_response(200, headers=[("content-type", "application/json")],
                           body=json.dumps(info))


@pytest.fixture
def client():
    opened: list[RawH1] = []

    def connect(port: int, **kwargs) -> RawH1:
        opened.append(RawH1(port, **kwargs))
        return opened[-1]

    yield connect
    for one in opened:
        one.close()


def get(path: str = "/", host: str = "localhost", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


# -- the basics ------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    for n in range(5):
        conn.send(get(f"/n{n}", extra="User-Agent: Raw\r\n"))
        response = conn.response()
        assert response.status == 200 and response.version == "1.1"
        info = json.loads(response.body)
        assert info["path"] == f"/n{n}" and info["method"] == "GET"
        assert info["host"] == "localhost" and info["scheme"] == "http"
        assert info["version"] == "1.1"
        # Stream ids count as on HTTP/2: 1, 3, 5...
        assert info["stream"] == 2 * n + 1
        # Names arrive in lower case, as over HTTP/2.
        assert ["user-agent", "Raw"] in info["headers"]
        assert response.headers["content-length"] == str(len(response.body))
        assert "date" in response.headers and response.headers["server"] == "nghttp2py"
        assert "transfer-encoding" not in response.headers
        assert response.keep_alive
    assert not conn.is_closed(0.2)


def test_http_client_keep_alive_post_head_and_chunked_upload(serve):
    server = serve(EchoHandler)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/form", body=b"a=1&b=2",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    info = json.loads(response.read())
    assert response.status == 200 and info["body"] == digest(b"a=1&b=2")
    payload = [b"x" * 70000, b"y" * 10, b"z" * 5000]
    conn.request("PUT", "/chunks", body=iter(payload), encode_chunked=True)
    response = conn.getresponse()
    info = json.loads(response.read())
    assert info["body"] == digest(b"".join(payload))
    assert ["transfer-encoding", "chunked"] in info["headers"]
    conn.request("HEAD", "/head")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    conn.request("GET", "/again")
    response = conn.getresponse()
    assert json.loads(response.read())["path"] == "/again"
    conn.close()


def test_absolute_form_target_gives_host_and_path(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(get("http://example.test:8080/a/b?c=d", host="other"))
    info = json.loads(conn.response().body)
    assert (info["host"], info["path"]) == ("example.test:8080", "/a/b?c=d")


# -- pipelining ---------------------------------------------------------------------------------


class SlowFirstHandler(BaseRequestHandler):
    """``/slow`` answers after a delay; every request records when its hook ran."""

    started: list[bytes] = []

    async def on_request_done(self):
        SlowFirstHandler.started.append(self.path)
        if self.path == b"/slow":
            await asyncio.sleep(0.3)
        self.send_response(200, body=self.path)


def test_pipelined_responses_come_in_request_order(serve, client):
    SlowFirstHandler.started = []
    server = serve(SlowFirstHandler)
    conn = client(server.port)
    conn.send(get("/slow") + get("/fast1") + get("/fast2"))
    time.sleep(0.15)
    # A pipelined request waits its turn: its handler has not run yet.
    assert SlowFirstHandler.started == [b"/slow"]
    responses = conn.responses(3)
    assert [r.body for r in responses] == [b"/slow", b"/fast1", b"/fast2"]
    assert SlowFirstHandler.started == [b"/slow", b"/fast1", b"/fast2"]


def test_many_pipelined_requests_in_one_write(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"".join(get(f"/{n}") for n in range(300)))
    responses = conn.responses(300)
    assert [json.loads(r.body)["path"] for r in responses] == [f"/{n}" for n in range(300)]


def test_pipelined_posts_with_bodies(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    bodies = [b"first", b"x" * 100000, b""]
    requests = b"".join(
        b"POST /p%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (n, len(b), b)
        for n, b in enumerate(bodies))
    conn.send(requests)
    responses = conn.responses(3)
    assert [json.loads(r.body)["body"] for r in responses] == [digest(b) for b in bodies]


# -- connection management ------------------------------------------------------------------


def test_connection_close_is_answered_then_closed(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(get("/bye", extra="Connection: close\r\n") + get("/never"))
    responses = conn.until_closed()
    assert len(responses) == 1 and responses[0].headers["connection"] == "close"
    assert not responses[0].keep_alive


def test_http10_client_closes_unless_keep_alive(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"GET /ten HTTP/1.0\r\n\r\n")
    responses = conn.until_closed()
    assert [r.status for r in responses] == [200]
    assert responses[0].version == "1.1"  # a server answers with its own version
    assert json.loads(responses[0].body)["host"] is None
    conn = client(server.port)
    conn.send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response = conn.response()
    assert response.headers["connection"] == "keep-alive"
    conn.send(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert json.loads(conn.response().body)["path"] == "/b"


class StreamingHandler(BaseRequestHandler):
    """Bodies of unknown length, trailers, 204 and 304, 100 Continue."""

    def on_request_done(self):
        path = self.path
        if path == b"/generator":
            chunks = [b"a" * 10, b"b" * 5000, b"c" * 70000]

            def body(n):
                return (chunks.pop(0), 0) if chunks else (b"", 1)
            self.send_response(200, body=body)
        elif path == b"/trailers":
            self.send_response(200, body=b"with trailers", trailers=[("x-checksum", "abc")])
        elif path == b"/no-content":
            self.send_response(204, headers=[("x-note", "none")])
        elif path == b"/not-modified":
            self.send_response(304, body=b"ignored")
        elif path == b"/declared":
            chunks = [b"12345", b"67890"]
            self.send_response(200, headers=[("content-length", "10")],
                               body=lambda n: (chunks.pop(0), 0) if chunks else (b"", 1))
        else:
            self.send_response(200, body=f"{len(self.trailers or ())} trailers\n")


def test_unknown_length_body_is_chunked_and_trailers_follow(serve, client):
    server = serve(StreamingHandler)
    conn = client(server.port)
    conn.send(get("/generator") + get("/trailers"))
    generator, trailers = conn.responses(2)
    assert generator.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in generator.headers
    assert generator.body == b"a" * 10 + b"b" * 5000 + b"c" * 70000
    assert trailers.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in trailers.headers
    assert trailers.body == b"with trailers" and trailers.trailers == {"x-checksum": "abc"}
    # The chunk framing on the wire, exactly.
    assert b"\r\n\r\nd\r\nwith trailers\r\n0\r\nx-checksum: abc\r\n\r\n" in conn.received


def test_declared_length_frames_a_generator_body(serve, client):
    server = serve(StreamingHandler)
    conn = client(server.port)
    conn.send(get("/declared"))
    response = conn.response()
    assert response.headers["content-length"] == "10" and response.body == b"1234567890"
    assert "transfer-encoding" not in response.headers


def test_http10_unknown_length_body_ends_with_the_connection(serve, client):
    server = serve(StreamingHandler)
    conn = client(server.port)
    conn.send(b"GET /generator HTTP/1.0\r\n\r\n")
    assert conn.is_closed(5)
    head, _, body = conn.received.partition(b"\r\n\r\n")
    assert b"chunked" not in head and b"connection: close" in head
    assert body == b"a" * 10 + b"b" * 5000 + b"c" * 70000


def test_204_and_304_have_no_body(serve, client):
    server = serve(StreamingHandler)
    conn = client(server.port)
    conn.send(get("/no-content") + get("/not-modified") + get("/after"))
    no_content, not_modified, after = conn.responses(3)
    assert (no_content.status, no_content.body) == (204, b"")
    assert "content-length" not in no_content.headers
    assert "transfer-encoding" not in no_content.headers
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert after.body == b"0 trailers\n"


def test_request_trailers_reach_the_handler(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n")
    info = json.loads(conn.response().body)
    assert info["body"] == digest(b"hello") and info["trailers"] == [["x-sum", "42"]]


def test_expect_100_continue(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\n\r\n")
    interim = conn.response()
    assert interim.status == 100
    conn.send(b"hello")
    info = json.loads(conn.response().body)
    assert info["body"] == digest(b"hello")


def test_early_response_to_expect_continue_closes(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\n\r\n")
    responses = conn.until_closed()
    assert [(r.status, r.body) for r in responses] == [(200, b"early\n")]
    assert responses[0].headers["connection"] == "close"


def test_early_response_drops_the_rest_of_the_body_and_keeps_alive(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n")
    assert conn.response().body == b"early\n"
    conn.send(b"z" * 100000 + get("/next"))
    assert json.loads(conn.response().body)["path"] == "/next"


class PushingHandler(BaseRequestHandler):
    pushed: list[bool] = []

    def on_headers(self):
        PushingHandler.pushed.append(self.push("/style.css"))
        self.send_response(200, body=b"page")


def test_push_falls_back_to_103_early_hints(serve, client, log_records):
    PushingHandler.pushed = []
    server = serve(PushingHandler, access_log=True)
    conn = client(server.port)
    conn.send(get("/page"))
    hints, page = conn.responses(2)
    assert hints.status == 103 and hints.headers["link"] == "</style.css>; rel=preload; as=style"
    assert (page.status, page.body) == (200, b"page")
    assert PushingHandler.pushed == [False]
    # HTTP/1.0 clients get no 1xx.
    conn = client(server.port)
    conn.send(b"GET /old HTTP/1.0\r\n\r\n")
    assert [r.status for r in conn.until_closed()] == [200]
    assert wait_for(lambda: any('"GET /page HTTP/1.1" 200 4' in r.getMessage()
                                for r in log_records.records))


# -- bad requests: smuggling and garbage ----------------------------------------------------------

SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "te-and-cl": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 6\r\n\r\n0\r\n\r\nG",
    "duplicate-cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                    b"Content-Length: 3\r\n\r\nabc",
    "cl-list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    "cl-plus": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
    "cl-hex": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc",
    "te-not-chunked-last": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip"
                           b"\r\n\r\n0\r\n\r\n",
    "te-duplicate": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: h\n\n",
    "bare-lf-in-headers": b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "binary": bytes(range(1, 256)),
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500,
}


@pytest.mark.parametrize("attempt", sorted(SMUGGLING))
def test_malformed_and_smuggling_requests_get_400_and_close(serve, client, attempt):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(SMUGGLING[attempt] + get("/smuggled"))
    assert conn.is_closed(5), conn.received
    assert conn.received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), conn.received
    assert conn.received.count(b"HTTP/1.1") == 1  # nothing after it was served
    assert b"connection: close" in conn.received


@pytest.mark.parametrize("chunk", [b"5x\r\nhello\r\n", b"5 \r\nhello\r\n", b"-5\r\nhello\r\n",
                                   b"fffffffffffffffff\r\n", b"5\r\nhelloXX0\r\n\r\n"],
                         ids=["letter", "space", "negative", "overflow", "missing-crlf"])
def test_bad_chunk_size_gets_400_and_close(serve, client, chunk):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk
              + get("/smuggled"))
    assert conn.is_closed(5), conn.received
    assert conn.received.startswith(b"HTTP/1.1 400 "), conn.received
    assert b"/smuggled" not in conn.received


@pytest.mark.parametrize("version, status", [(b"2.0", b"505"), (b"0.9", b"505"),
                                             (b"1.2", b"400"), (b"3.0", b"400")])
def test_unsupported_version(serve, client, version, status):
    # llhttp itself refuses a minor version it does not know.
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"GET / HTTP/" + version + b"\r\nHost: h\r\n\r\n")
    assert conn.is_closed(5)
    assert conn.received.startswith(b"HTTP/1.1 " + status + b" ")


def test_http10_with_transfer_encoding_is_answered_then_closed(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /old HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked"
              b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + b"GET /smuggled HTTP/1.0\r\n\r\n")
    responses = conn.until_closed()
    assert [json.loads(r.body)["body"] for r in responses] == [digest(b"hello")]
    assert responses[0].headers["connection"] == "close"


def test_transfer_coding_other_than_chunked_gets_501(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
              b"0\r\n\r\n")
    assert conn.is_closed(5)
    assert conn.received.startswith(b"HTTP/1.1 501 ")


def test_broken_http2_preface_gets_goaway_protocol_error(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 9)
    assert conn.is_closed(5)
    # An empty SETTINGS, then GOAWAY(last stream 0, PROTOCOL_ERROR).
    assert conn.received == (b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                             b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                             b"\x00\x00\x00\x01")


def test_preface_split_across_reads_is_still_http2(serve, h2_client):
    import h2.connection
    server = serve(EchoHandler)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    data = conn.data_to_send()
    for piece in (data[:1], data[1:3], data[3:]):
        sock.sendall(piece)
        time.sleep(0.05)
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                            (":authority", "h"), (":path", "/two")], end_stream=True)
    sock.sendall(conn.data_to_send())
    body = b""
    ended = False
    while not ended:
        for event in conn.receive_data(sock.recv(65536)):
            if type(event).__name__ == "DataReceived":
                body += event.data
            ended = ended or type(event).__name__ == "StreamEnded"
        sock.sendall(conn.data_to_send())
    sock.close()
    assert json.loads(body)["version"] == "2"


# -- limits and timeouts -----------------------------------------------------------------------


def test_long_request_target_gets_414(serve, client):
    server = serve(EchoHandler, settings=ServerSettings(max_header_list_size=4096))
    conn = client(server.port)
    conn.send(get("/" + "a" * 5000))
    assert conn.is_closed(5)
    assert conn.received.startswith(b"HTTP/1.1 414 ")


def test_large_header_block_gets_431(serve, client):
    server = serve(EchoHandler, settings=ServerSettings(max_header_list_size=4096))
    conn = client(server.port)
    conn.send(get("/", extra="X-Big: " + "b" * 5000 + "\r\n"))
    responses = conn.until_closed()
    assert [r.status for r in responses] == [431]


def test_many_small_header_fields_get_431(serve, client):
    server = serve(EchoHandler, settings=ServerSettings(max_header_list_size=4096))
    conn = client(server.port)
    conn.send(get("/", extra="".join(f"X{n}: v\r\n" for n in range(200))))
    assert [r.status for r in conn.until_closed()] == [431]


def test_endless_header_line_is_cut_off(serve, client):
    server = serve(EchoHandler, settings=ServerSettings(max_header_list_size=4096))
    conn = client(server.port)
    conn.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Endless: ")
    sent = 0
    with pytest.raises(OSError):  # the server closed: the writes fail
        while sent < 50_000_000:
            time.sleep(0.001)
            conn.send(b"v" * 8192)
            sent += 8192
    # What the server took before it gave up: its limit and a read or two, plus
    # what the kernel buffers held.
    assert sent < 8_000_000, sent


def test_trickled_request_head_gets_408(serve, client, log_records):
    server = serve(EchoHandler, timeouts=Timeouts(handshake=0.5))
    conn = client(server.port)
    started = time.monotonic()
    conn.send(b"GET / HTTP/1.1\r\n")
    with pytest.raises(OSError):
        for _ in range(50):
            time.sleep(0.1)
            conn.send(b"X")
    assert conn.is_closed(5)
    assert time.monotonic() - started < 3
    assert conn.received.startswith(b"HTTP/1.1 408 ")


def test_idle_keep_alive_connection_is_closed(serve, client):
    server = serve(EchoHandler, timeouts=Timeouts(idle=0.4))
    conn = client(server.port)
    conn.send(get("/"))
    assert conn.response().status == 200
    started = time.monotonic()
    assert conn.is_closed(5)
    assert 0.3 < time.monotonic() - started < 3


def test_silent_connection_is_closed_after_the_handshake_timeout(serve, client):
    server = serve(EchoHandler, timeouts=Timeouts(handshake=0.3))
    conn = client(server.port)
    assert conn.is_closed(5) and conn.received == b""


# -- flow control ----------------------------------------------------------------------------


class PausingHandler(BaseRequestHandler):
    """Takes no body until resumed from the test (through ``instances``)."""

    instances: list = []

    def on_headers(self):
        self.received = 0
        self.pause_reading()
        PausingHandler.instances.append(self)

    def on_data(self, data):
        self.received += len(data)

    def on_request_done(self):
        self.send_response(200, body=str(self.received))


def test_request_body_not_taken_stops_reading_the_socket(serve, client):
    PausingHandler.instances = []
    window = 256 * 1024
    server = serve(PausingHandler, settings=ServerSettings(initial_window_size=window))
    conn = client(server.port)
    total = 64 << 20
    conn.send(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % total)
    conn.sock.setblocking(False)
    sent = 0
    chunk = b"u" * 65536
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and sent < total:
        try:
            sent += conn.sock.send(chunk[:total - sent])
        except BlockingIOError:
            time.sleep(0.01)
    # The server stopped reading: far less than the body got through.
    assert sent < total // 2, sent
    conn.sock.setblocking(True)
    conn.sock.settimeout(10)
    server.call(lambda: PausingHandler.instances[0].resume_reading())
    conn.send(b"u" * (total - sent))
    assert conn.response(timeout=30).body == str(total).encode()


class BigBodyHandler(BaseRequestHandler):
    pulls = 0
    sent = 0

    def on_headers(self):
        BigBodyHandler.pulls = BigBodyHandler.sent = 0

        def body(n):
            BigBodyHandler.pulls += 1
            if BigBodyHandler.pulls == 1000:
                return b"", 1
            BigBodyHandler.sent += n
            return b"w" * n, 0
        self.send_response(200, body=body)


def test_slow_reader_pauses_the_response_body(serve, client):
    server = serve(BigBodyHandler)
    conn = client(server.port)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    conn.send(get("/big"))
    time.sleep(0.5)
    # Paused by the transport: nowhere near the 1,000 chunks (65 MB) of the body.
    assert BigBodyHandler.pulls < 400, BigBodyHandler.pulls
    response = conn.response(timeout=60)
    assert BigBodyHandler.pulls == 1000 and BigBodyHandler.sent > 999 * 60000
    assert response.body == b"w" * BigBodyHandler.sent


# -- HTTP/2 only --------------------------------------------------------------------------------


def test_http1_off_answers_505(serve, client):
    server = serve(EchoHandler, http1=False)
    conn = client(server.port)
    conn.send(get("/"))
    assert conn.is_closed(5)
    assert conn.received.startswith(b"HTTP/1.1 505 ")


def test_hashes_match_for_a_large_download(serve, client):
    payload = hashlib.sha256(b"seed").digest() * 40000

    class Download(BaseRequestHandler):
        def on_headers(self):
            self.send_response(200, body=payload)

    server = serve(Download)
    conn = client(server.port)
    conn.send(get("/a") + get("/b"))
    first, second = conn.responses(2)
    assert first.body == payload and second.body == payload
    assert first.headers["content-length"] == str(len(payload))


# -- handlers that fail, stream closes, graceful shutdown -----------------------------------------


class FailingHandler(BaseRequestHandler):
    """``/raise`` raises before answering, ``/late`` after its response started."""

    closed: list = []

    def on_headers(self):
        if self.path == b"/raise":
            raise RuntimeError("boom")
        if self.path == b"/late":
            self.send_response(200, body=lambda n: (_ for _ in ()).throw(RuntimeError("late")))
            return
        self.send_response(200, body=b"fine")

    def on_close(self, error_code):
        FailingHandler.closed.append((self.path, int(error_code)))


def test_failing_handler_gets_500_and_the_connection_goes_on(serve, client, log_records):
    FailingHandler.closed = []
    server = serve(FailingHandler)
    conn = client(server.port)
    conn.send(get("/raise") + get("/ok"))
    failed, fine = conn.responses(2)
    assert (failed.status, fine.status, fine.body) == (500, 200, b"fine")
    assert wait_for(lambda: len(FailingHandler.closed) == 2)
    assert FailingHandler.closed == [(b"/raise", 0), (b"/ok", 0)]


def test_body_failing_after_the_head_closes_the_connection(serve, client):
    FailingHandler.closed = []
    server = serve(FailingHandler)
    conn = client(server.port)
    conn.send(get("/late") + get("/ok"))
    assert conn.is_closed(5)
    head, _, rest = bytes(conn.received).partition(b"\r\n\r\n")
    # The head went out, the chunked body never ended: the client sees it cut short.
    assert head.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in head
    assert not rest.endswith(b"0\r\n\r\n") and b"fine" not in rest
    assert wait_for(lambda: FailingHandler.closed)
    assert FailingHandler.closed[0] == (b"/late", 2)  # INTERNAL_ERROR


def test_client_gone_mid_request_closes_the_stream_with_cancel(serve, client):
    FailingHandler.closed = []
    server = serve(FailingHandler)
    conn = client(server.port)
    conn.send(b"POST /partial HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
    assert conn.response().status == 200  # answered early, from on_headers
    conn.close()
    assert wait_for(lambda: FailingHandler.closed)
    # Its response was complete: a clean close, though the body never came.
    assert FailingHandler.closed == [(b"/partial", 0)]


class SlowHandler(BaseRequestHandler):
    async def on_request_done(self):
        await asyncio.sleep(0.3)
        self.send_response(200, body=b"slow done")


def test_graceful_shutdown_finishes_the_request_then_closes(serve, client):
    server = serve(SlowHandler)
    busy = client(server.port)
    idle = client(server.port)
    idle.send(get("/warm"))
    assert idle.response().body == b"slow done"
    busy.send(get("/slow"))
    time.sleep(0.1)
    server.loop.call_soon_threadsafe(server.server.close)
    assert idle.is_closed(2)  # idle: closed at once
    responses = busy.until_closed(5)
    assert [(r.status, r.body) for r in responses] == [(200, b"slow done")]
    assert responses[0].headers["connection"] == "close"


def test_client_that_shuts_its_side_still_gets_its_answers(serve, client):
    server = serve(SlowFirstHandler)
    conn = client(server.port)
    conn.send(get("/slow") + get("/then"))
    conn.sock.shutdown(socket.SHUT_WR)
    responses = conn.until_closed()
    assert [r.body for r in responses] == [b"/slow", b"/then"]
    assert responses[-1].headers["connection"] == "close"


def test_pipelining_beyond_the_waiting_limit_is_answered_in_order(serve, client):
    SlowFirstHandler.started = []
    server = serve(SlowFirstHandler, settings=ServerSettings(max_concurrent_streams=4))
    conn = client(server.port)
    conn.send(get("/slow") + b"".join(get(f"/{n}") for n in range(50)))
    responses = conn.responses(51)
    assert [r.body for r in responses] == [b"/slow"] + [f"/{n}".encode() for n in range(50)]


# -- no leaks, no wedges ---------------------------------------------------------------------------


def test_http1_objects_are_freed_by_reference_counting(serve, client, tmp_path):
    """As for HTTP/2 (test_leaks.py): nothing of a request or a connection waits for the
    cycle collector, the parser's callbacks into its connection included."""
    import gc

    from test_leaks import Mixed, live

    from conftest import run_peer
    from nghttp2py._nghttp2 import HTTP1Connection
    from nghttp2py.connection import ServerConnection

    server = serve(Mixed)
    uris = tmp_path / "uris.txt"
    base = server.url("")
    uris.write_text("".join(f"{base}{p}\n" for p in
                            ("/", "/async-body", "/deferred", "/async-hook", "/x")))
    def counted() -> tuple[int, int, int]:
        return live(Mixed), live(HTTP1Connection), live(ServerConnection)

    gc.collect()
    baseline = server.call(counted)
    gc.disable()
    try:
        result = run_peer("h2load", "--h1", "-n", "2000", "-c", "8", "-m", "10", "-i", str(uris))
        assert "2000 succeeded, 0 failed" in result.stdout, result.stdout
        # Connections dropped mid-request, mid-body, and with requests waiting.
        for request in (b"GET /async-body HTTP/1.1\r\nHost: h\r\n\r\n",
                        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc",
                        get("/async-hook") * 5, b"GET / HTTP/1.1\r\nHo"):
            conn = client(server.port)
            conn.send(request)
            time.sleep(0.05)
            conn.close()
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)
        counts = server.call(counted)
    finally:
        gc.enable()
    assert counts == baseline


class Counted(BaseRequestHandler):
    live = 0

    def __init__(self, *args):
        super().__init__(*args)
        Counted.live += 1

    def on_data(self, data):
        pass

    def on_request_done(self):
        self.send_response(200, body=b"fine", trailers=[("x-done", "1")]
                           if self.method == b"POST" else None)

    def on_close(self, error_code):
        Counted.live -= 1


def mangled_requests(rng) -> bytes:
    """Legal requests, pipelined, some of them cut, doubled or with bytes changed."""
    out = bytearray()
    for _ in range(rng.randrange(1, 12)):
        method = rng.choice([b"GET", b"POST", b"HEAD", b"BREW", b"OPTIONS"])
        request = bytearray(method + b" /" + rng.choice([b"", b"x?q=1", b"%00", b"a" * 300])
                            + rng.choice([b" HTTP/1.1", b" HTTP/1.0", b" HTTP/1.1"]) + b"\r\n")
        request += b"Host: fuzz\r\n" + b"X-H: v\r\n" * rng.randrange(3)
        if method == b"POST":
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            if rng.random() < 0.5:
                request += b"Content-Length: %d\r\n\r\n" % len(body) + body
            else:
                request += (b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body) + body
                            + b"\r\n0\r\n" + rng.choice([b"", b"X-T: 1\r\n"]) + b"\r\n")
        else:
            request += b"\r\n"
        roll = rng.random()
        if roll < 0.15:
            position = rng.randrange(len(request))
            request[position] = rng.randrange(256)
        elif roll < 0.2:
            del request[rng.randrange(len(request)):]
        elif roll < 0.25:
            request.insert(rng.randrange(len(request)), rng.choice(b"\r\n :\t\x00"))
        out += request
    return bytes(out)


def test_mangled_requests_never_wedge_the_server(serve, log_records):
    Counted.live = 0
    server = serve(Counted, timeouts=Timeouts(handshake=1))
    rng = random.Random(1234)
    for _ in range(150):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            data = mangled_requests(rng)
            piece = rng.choice([len(data), 7, 100])
            try:
                for start in range(0, len(data), piece):
                    sock.sendall(data[start:start + piece])
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(3)
                while sock.recv(65536):
                    pass
            except socket.timeout:
                raise AssertionError(f"no close after {data!r}") from None
            except OSError:  # not a timeout: the server answered a bad request and closed
                pass
    with RawH1(server.port) as conn:
        conn.send(get("/after"))
        assert conn.response().body == b"fine"
    assert wait_for(lambda: Counted.live == 0)
    errors = [r for r in log_records.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# -- upgrades that are not taken ------------------------------------------------------------------

H2C_UPGRADE = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: {}\r\n"


@pytest.mark.parametrize("settings", ["", "not base64!", "AAMAAA", "AAMAAABkAA"],
                         ids=["empty", "garbage", "truncated", "bad-length"])
def test_h2c_upgrade_with_bad_settings_is_served_as_http1(serve, client, settings):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(get("/up", extra=H2C_UPGRADE.format(settings)) + get("/next"))
    first, second = conn.responses(2)
    assert (first.status, json.loads(first.body)["version"]) == (200, "1.1")
    assert json.loads(second.body)["path"] == "/next"


def test_h2c_upgrade_behind_a_pending_request_is_served_as_http1(serve, client):
    server = serve(SlowFirstHandler)
    conn = client(server.port)
    conn.send(get("/slow") + get("/up", extra=H2C_UPGRADE.format("AAMAAABkAAQCAAAAAAIAAAAA")))
    first, second = conn.responses(2)
    assert (first.body, second.body) == (b"/slow", b"/up")
    assert b" 101 " not in conn.received


def test_h2c_upgrade_after_an_answered_request_is_taken(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(get("/first"))
    assert json.loads(conn.response().body)["version"] == "1.1"
    conn.send(get("/up", extra=H2C_UPGRADE.format("AAMAAABkAAQCAAAAAAIAAAAA")))
    conn.sock.settimeout(5)
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += conn.sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


def test_h2c_upgrade_over_tls_is_ignored(serve, client, server_ssl_context):
    import ssl
    server = serve(EchoHandler, ssl=server_ssl_context)
    context = ssl._create_unverified_context()
    context.set_alpn_protocols(["http/1.1"])
    conn = client(server.port, tls_context=context)
    conn.send(get("/up", extra=H2C_UPGRADE.format("AAMAAABkAAQCAAAAAAIAAAAA")))
    info = json.loads(conn.response().body)
    assert (info["version"], info["scheme"]) == ("1.1", "https")


def test_websocket_upgrade_on_a_post_is_served_as_http1(serve, client):
    """Only a GET opens a WebSocket (RFC 6455 section 4.1): this is an ordinary request."""
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"POST /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Content-Length: 5\r\n\r\nhello" + get("/next"))
    first, second = conn.responses(2)
    assert json.loads(first.body)["body"] == digest(b"hello")
    assert json.loads(second.body)["path"] == "/next"


def test_connect_is_answered_then_the_connection_closes(serve, client):
    server = serve(EchoHandler)
    conn = client(server.port)
    conn.send(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"
              b"\x16\x03\x01 tunnel bytes")
    responses = conn.until_closed()
    assert [(r.status, json.loads(r.body)["method"]) for r in responses] == [(200, "CONNECT")]
