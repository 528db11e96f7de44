"""HTTP2Server lifecycle and API: binding, closing, signals, access log, ALPN/TLS policy,
HTTP/1 clients, argument validation and SETTINGS_MAX_CONCURRENT_STREAMS.

Peers are real clients (curl, h2load, Python ssl sockets) or the small raw-frame
client of rawh2.py (``hyperframe``/``hpack``), used where ``h2`` would refuse to send
what the test needs or cannot read what the server legitimately sends (``h2``
treats any frame after a GOAWAY as a protocol error).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import signal
import socket
import ssl
import subprocess
import textwrap
import threading
import time
import warnings

import pytest

from conftest import curl, run_peer, wait_for
from nghttp2py import (
    DATA_DEFERRED,
    DATA_EOF,
    BaseRequestHandler,
    ErrorCode,
    HTTP2Server,
    ServerSettings,
)
from rawh2 import body_of, ended, frames_of, status_of

BODY = b"hello, world\n"

# -- handlers ----------------------------------------------------------------------


class HelloHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_response(200, [("content-type", "text/plain")], BODY)


class ClosingHandler(HelloHandler):
    """Records every on_close, to know the stream (and its access-log line) is done."""

    closed: list = []

    def on_close(self, error_code):
        ClosingHandler.closed.append((self.path, error_code))


class HeldHandler(BaseRequestHandler):
    """Answers only when the test calls ``release_all`` (on the server's loop)."""

    held: list = []

    def on_headers(self):
        HeldHandler.held.append(self)

    @staticmethod
    def release_all():
        for handler in HeldHandler.held:
            handler.send_response(200, [("content-type", "text/plain")], b"released\n")
        HeldHandler.held = []


class DeferredBodyHandler(BaseRequestHandler):
    """Sends headers at once; the body waits (DATA_DEFERRED) until ``finish()``."""

    started: list = []

    def on_headers(self):
        self.ready = False

        def body(n):
            if not self.ready:
                return None, DATA_DEFERRED
            return b"finished late\n", DATA_EOF

        self.send_response(200, [("content-type", "text/plain")], body)
        DeferredBodyHandler.started.append(self)

    def finish(self):
        self.ready = True
        self.resume()


async def async_wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


# curl over h2c, for a thread of the loop's executor
h2c_get = functools.partial(curl, "--http2-prior-knowledge")


def connection_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# -- binding -----------------------------------------------------------------------


def test_port_zero_binds_a_real_port(serve):
    server = serve(HelloHandler)
    assert server.port > 0
    assert server.server.sockets
    assert server.server.sockets[0].getsockname() == ("127.0.0.1", server.port)
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert (got.status, got.body) == (200, BODY)


def test_port_before_start_raises():
    server = HTTP2Server(("127.0.0.1", 0), HelloHandler)
    assert server.sockets == ()
    with pytest.raises(RuntimeError):
        _ = server.port


def test_empty_host_binds_every_interface():
    """``('', 0)``: every listener (IPv4 and, if present, IPv6) on the one port ``server.port``."""
    async def main():
        async with HTTP2Server(("", 0), HelloHandler) as server:
            names = [s.getsockname() for s in server.sockets]
            loop = asyncio.get_running_loop()
            ipv4 = await loop.run_in_executor(
                None, h2c_get, f"http://127.0.0.1:{server.port}/")
            ipv6 = None
            if any(":" in name[0] for name in names):
                ipv6 = await loop.run_in_executor(
                    None, h2c_get, f"http://[::1]:{server.port}/")
            return server.port, names, ipv4, ipv6

    port, names, ipv4, ipv6 = asyncio.run(asyncio.wait_for(main(), 20))
    assert {name[0] for name in names} & {"0.0.0.0", "::"}, names
    assert {name[1] for name in names} == {port}, f"listeners on different ports: {names}"
    assert (ipv4.status, ipv4.body) == (200, BODY)
    assert ipv6 is None or (ipv6.status, ipv6.body) == (200, BODY)


def test_async_with_serves_then_refuses_after_exit():
    async def main():
        async with HTTP2Server(("127.0.0.1", 0), HelloHandler) as server:
            port = server.port
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, h2c_get, f"http://127.0.0.1:{port}/")
        return port, result

    port, result = asyncio.run(asyncio.wait_for(main(), 20))
    assert (result.status, result.body) == (200, BODY)
    assert connection_refused(port)


def test_start_twice_raises():
    async def main():
        async with HTTP2Server(("127.0.0.1", 0), HelloHandler) as server:
            with pytest.raises(RuntimeError):
                await server.start()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_close_without_connections_is_prompt():
    async def main():
        server = HTTP2Server(("127.0.0.1", 0), HelloHandler, shutdown_timeout=30)
        await server.start()
        port = server.port
        started = time.monotonic()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        return port, time.monotonic() - started

    port, elapsed = asyncio.run(main())
    assert elapsed < 1.0
    assert connection_refused(port)


def test_close_with_idle_connection_is_prompt(raw_client):
    """An idle client gets GOAWAY(NO_ERROR) and is closed; wait_closed does not wait for it."""
    box: dict = {}

    async def main():
        server = HTTP2Server(("127.0.0.1", 0), HelloHandler, shutdown_timeout=30)
        await server.start()
        loop = asyncio.get_running_loop()
        client = await loop.run_in_executor(None, lambda: raw_client(server.port))
        # One full request first, so the connection is established on both sides.
        client.request(1)
        box["first"] = await loop.run_in_executor(None, client.frames_until, ended(1))
        assert await async_wait_for(lambda: server.connections == 1)
        started = time.monotonic()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        box["elapsed"] = time.monotonic() - started
        box["rest"] = await loop.run_in_executor(None, client.frames_until, lambda f: False, 5)
        box["eof"] = client.eof

    asyncio.run(asyncio.wait_for(main(), 20))
    assert status_of(box["first"], 1) == b"200"
    assert box["elapsed"] < 1.0
    goaways = frames_of(box["rest"], "GoAwayFrame")
    assert goaways and goaways[-1].error_code == ErrorCode.NO_ERROR
    assert goaways[-1].last_stream_id == 1
    assert box["eof"]


def test_graceful_close_finishes_in_flight_stream(raw_client):
    DeferredBodyHandler.started = []
    box: dict = {}

    async def main():
        server = HTTP2Server(("127.0.0.1", 0), DeferredBodyHandler, shutdown_timeout=30)
        await server.start()
        port = server.port
        loop = asyncio.get_running_loop()
        client = await loop.run_in_executor(None, lambda: raw_client(port))
        client.request(1, "/slow")
        assert await async_wait_for(lambda: DeferredBodyHandler.started)
        server.close()
        # The listening socket is gone at once: new connections are refused.
        box["refused"] = await loop.run_in_executor(None, connection_refused, port)
        reader = loop.run_in_executor(None, client.frames_until, lambda f: False, 10)
        await asyncio.sleep(0.3)
        box["before_finish"] = server.connections
        loop.call_later(0.05, DeferredBodyHandler.started[0].finish)
        started = time.monotonic()
        await asyncio.wait_for(server.wait_closed(), 5)
        box["wait_closed"] = time.monotonic() - started
        box["frames"] = await reader
        box["eof"] = client.eof

    asyncio.run(asyncio.wait_for(main(), 20))
    frames = box["frames"]
    assert box["refused"]
    assert box["before_finish"] == 1  # still serving the in-flight stream
    assert status_of(frames, 1) == b"200"
    assert body_of(frames, 1) == b"finished late\n"
    assert any(ended(1)(f) for f in frames)
    assert not frames_of(frames, "RstStreamFrame")
    goaways = frames_of(frames, "GoAwayFrame")
    assert goaways and all(g.error_code == ErrorCode.NO_ERROR for g in goaways)
    assert goaways[-1].last_stream_id >= 1
    assert box["eof"]  # closed once the stream was done
    assert box["wait_closed"] < 2.0


def test_graceful_close_refuses_new_streams_on_open_connection(raw_client):
    """Graceful shutdown is two GOAWAYs (RFC 9113 6.8): a notice (last stream 2^31-1),
    then, once the PING sent with it is acknowledged, the final one; streams the
    client opens after the final GOAWAY are not processed."""
    DeferredBodyHandler.started = []
    box: dict = {}

    async def main():
        server = HTTP2Server(("127.0.0.1", 0), DeferredBodyHandler, shutdown_timeout=30)
        await server.start()
        loop = asyncio.get_running_loop()
        client = await loop.run_in_executor(None, lambda: raw_client(server.port))
        client.request(1, "/slow")
        assert await async_wait_for(lambda: DeferredBodyHandler.started)
        server.close()
        box["goaway"] = await loop.run_in_executor(
            None, client.frames_until,
            lambda f: type(f).__name__ == "GoAwayFrame" and f.last_stream_id < 2**31 - 1, 5)
        client.request(3, "/late")
        await asyncio.sleep(0.2)
        box["handlers"] = len(DeferredBodyHandler.started)
        DeferredBodyHandler.started[0].finish()
        await asyncio.wait_for(server.wait_closed(), 5)
        box["frames"] = await loop.run_in_executor(None, client.frames_until, lambda f: False, 5)

    asyncio.run(asyncio.wait_for(main(), 20))
    notice, goaway = frames_of(box["goaway"], "GoAwayFrame")
    assert (notice.last_stream_id, notice.error_code) == (2**31 - 1, ErrorCode.NO_ERROR)
    assert frames_of(box["goaway"], "PingFrame")
    assert (goaway.last_stream_id, goaway.error_code) == (1, ErrorCode.NO_ERROR)
    assert box["handlers"] == 1  # stream 3 never reached the application
    assert body_of(box["frames"], 1) == b"finished late\n"
    assert not frames_of(box["frames"], "HeadersFrame", 3)


def test_connections_counts_open_clients(serve, h2_client):
    server = serve(HelloHandler)
    assert server.call(lambda: server.server.connections) == 0
    client = h2_client(server.port)
    got = client.response(client.request("/"))
    assert (got.headers[":status"], got.body) == ("200", BODY)
    assert server.call(lambda: server.server.connections) == 1
    client.close()
    assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)


# -- serve_forever and signals ------------------------------------------------------

SERVE_FOREVER_SCRIPT = textwrap.dedent("""\
    import logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

    class Handler(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/hang":
                print("hanging", flush=True)
                return
            self.send_response(200, body=b"forever\\n")

    HTTP2Server(("127.0.0.1", 0), Handler, shutdown_timeout=30).serve_forever()
    print("serve_forever returned", flush=True)
    """)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_exits_on_signal(server_process, signum):
    server = server_process(SERVE_FOREVER_SCRIPT)
    got = curl("--http2-prior-knowledge", f"http://127.0.0.1:{server.port}/")
    assert (got.status, got.body) == (200, b"forever\n")
    started = time.monotonic()
    server.send_signal(signum)
    assert server.wait(timeout=5) == 0, server.stderr
    assert time.monotonic() - started < 3
    assert "serve_forever returned" in server.stdout
    assert "shutting down gracefully" in server.stderr
    assert "Traceback" not in server.stderr
    assert connection_refused(server.port)


def test_serve_forever_second_sigint_aborts_in_flight(server_process, raw_client):
    server = server_process(SERVE_FOREVER_SCRIPT)
    client = raw_client(server.port)
    client.request(1, "/hang")
    server.wait_output("stdout", "hanging")
    server.send_signal(signal.SIGINT)
    # Graceful: the client is told (GOAWAY, NO_ERROR) but its stream may finish.
    goaway = client.frames_until(lambda f: type(f).__name__ == "GoAwayFrame", 5)
    assert frames_of(goaway, "GoAwayFrame")[-1].error_code == ErrorCode.NO_ERROR
    with pytest.raises(subprocess.TimeoutExpired):  # no exit with a stream in flight
        server.proc.wait(0.3)
    server.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert server.wait(timeout=5) == 0, server.stderr
    assert time.monotonic() - started < 3
    assert "second SIGINT" in server.stderr
    assert "Traceback" not in server.stderr
    client.frames_until(lambda f: False, 5)
    assert client.eof


# -- access log ----------------------------------------------------------------------

ACCESS_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[\d{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}'
    r':\d{2}:\d{2}:\d{2} \+0000\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-)$')


def access_records(log_records) -> list[str]:
    return [r.getMessage() for r in log_records.records if r.name == "nghttp2py.access"]


def test_access_log_common_log_format(serve, log_records):
    server = serve(HelloHandler, access_log=True)
    got = curl("--http2-prior-knowledge", server.url("/some/path?q=1"))
    assert (got.status, got.body) == (200, BODY)
    assert wait_for(lambda: access_records(log_records))
    [line] = access_records(log_records)
    match = ACCESS_LINE.match(line)
    assert match, line
    assert match.group("request") == "GET /some/path?q=1 HTTP/2"
    assert match.group("status") == "200"
    assert match.group("size") == str(len(BODY))
    record = [r for r in log_records.records if r.name == "nghttp2py.access"][0]
    assert record.levelname == "INFO"


def test_access_log_one_line_per_stream(serve, log_records):
    server = serve(HelloHandler, access_log=True)
    result = run_peer("h2load", "-n", "20", "-c", "2", "-m", "5", server.url("/x"), timeout=30)
    assert "20 succeeded" in result.stdout, result.stdout
    assert wait_for(lambda: len(access_records(log_records)) >= 20)
    time.sleep(0.1)
    lines = access_records(log_records)
    assert len(lines) == 20
    assert all(ACCESS_LINE.match(line) and '"GET /x HTTP/2" 200 ' in line for line in lines)


def test_access_log_off_by_default(serve, log_records):
    ClosingHandler.closed = []
    server = serve(ClosingHandler)
    got = curl("--http2-prior-knowledge", server.url("/quiet"))
    assert (got.status, got.body) == (200, BODY)
    assert wait_for(lambda: ClosingHandler.closed)  # the stream is fully done
    assert ClosingHandler.closed == [(b"/quiet", 0)]
    assert access_records(log_records) == []


# -- HTTP/1 clients on an HTTP/2-only port (http1=False; HTTP/1.1 itself: test_http1*.py) --


def nghttp2py_records(log_records) -> list:
    return [r for r in log_records.records if r.name == "nghttp2py"]


def test_http11_curl_gets_505(serve, log_records):
    server = serve(HelloHandler, http1=False)
    log_records.clear()
    got = curl("--http1.1", server.url("/"))
    assert (got.http_version, got.status) == ("1.1", 505)
    assert got.header("connection") == "close"
    assert b"HTTP/2" in got.body and got.body.endswith(b"\n")
    assert got.header("content-length") == str(len(got.body))
    assert wait_for(lambda: nghttp2py_records(log_records))
    time.sleep(0.1)
    records = nghttp2py_records(log_records)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "HTTP/1" in records[0].getMessage()


def test_http11_raw_socket_gets_505_and_close(serve, log_records):
    server = serve(HelloHandler, http1=False)
    log_records.clear()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: raw\r\n\r\n")
        reply = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        else:
            pytest.fail("the server did not close the HTTP/1 connection")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 505 "), reply
    assert b"HTTP/2" in body
    assert wait_for(lambda: nghttp2py_records(log_records))
    time.sleep(0.1)
    assert len(nghttp2py_records(log_records)) == 1
    # And the server still serves HTTP/2.
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert (got.status, got.body) == (200, BODY)


# -- TLS: ALPN and protocol versions ------------------------------------------------------


def tls_client_context(alpn=None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


@pytest.mark.parametrize("alpn", [["http/1.1"], None], ids=["http1.1", "no-alpn"])
def test_tls_without_h2_alpn_is_closed(serve, server_ssl_context, certificate, log_records,
                                       alpn):
    server = serve(HelloHandler, ssl=server_ssl_context, http1=False)
    log_records.clear()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            tls_client_context(alpn).wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() is None
        tls.settimeout(5)
        try:
            data = tls.recv(4096)
        except ssl.SSLZeroReturnError:
            data = b""
        assert data == b""
    assert wait_for(lambda: nghttp2py_records(log_records))
    messages = [r.getMessage() for r in nghttp2py_records(log_records)]
    assert len(messages) == 1 and "ALPN" in messages[0], messages
    # Others are still served over TLS.
    got = curl("--http2", "--cacert", str(certificate[0]), server.url("/"))
    assert (got.http_version, got.body) == ("2", BODY)


def test_tls_context_gets_alpn_h2(serve, server_ssl_context):
    server = serve(HelloHandler, ssl=server_ssl_context)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            tls_client_context(["h2", "http/1.1"]).wrap_socket(
                raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def _tls11_contexts(certificate):
    """A server context that would allow TLS 1.0/1.1 and a client that offers only those."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(*map(str, certificate))
        server.minimum_version = ssl.TLSVersion.TLSv1
        server.set_ciphers("DEFAULT:@SECLEVEL=0")
        client = tls_client_context(["h2"])
        client.minimum_version = ssl.TLSVersion.TLSv1
        client.maximum_version = ssl.TLSVersion.TLSv1_1
        client.set_ciphers("DEFAULT:@SECLEVEL=0")
    return server, client


def test_tls_minimum_version_is_1_2(serve, certificate):
    server_context, client_context = _tls11_contexts(certificate)
    # Control: without HTTP2Server, these two contexts agree on TLS 1.1.
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list = []

    def accept_one():
        conn, _ = listener.accept()
        with contextlib.suppress(OSError):
            accepted.append(server_context.wrap_socket(conn, server_side=True))

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    with socket.create_connection(listener.getsockname(), timeout=5) as raw, \
            client_context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.1"
    thread.join(5)
    listener.close()
    for sock in accepted:
        sock.close()

    server = serve(HelloHandler, ssl=server_context)
    assert server_context.minimum_version == ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLError):
        client_context.wrap_socket(raw, server_hostname="localhost")
    # A TLS 1.2 client is fine.
    client12 = tls_client_context(["h2"])
    client12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            client12.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.selected_alpn_protocol() == "h2"


# -- argument validation ----------------------------------------------------------------


class NotAHandler:
    def on_headers(self):
        pass


@pytest.mark.parametrize("handler_class", [NotAHandler, object, None, "HelloHandler", 42])
def test_rejects_a_non_handler_class(handler_class):
    with pytest.raises(TypeError):
        HTTP2Server(("127.0.0.1", 0), handler_class)


def test_rejects_a_handler_instance():
    with pytest.raises(TypeError):
        HTTP2Server(("127.0.0.1", 0), BaseRequestHandler.__new__(BaseRequestHandler))


def test_rejects_a_non_context_ssl():
    with pytest.raises(TypeError):
        HTTP2Server(("127.0.0.1", 0), HelloHandler, ssl=True)


@pytest.mark.parametrize("kwargs", [
    {"max_concurrent_streams": -1},
    {"max_concurrent_streams": 2**32},
    {"initial_window_size": 2**31},
    {"initial_window_size": -1},
    {"connection_window_size": 1000},
    {"max_frame_size": 16383},
    {"max_frame_size": 2**24},
    {"max_header_list_size": -5},
    {"header_table_size": 2**32},
    {"max_concurrent_streams": 1.5},
    {"max_frame_size": "16384"},
])
def test_server_settings_validation(kwargs):
    with pytest.raises(ValueError):
        ServerSettings(**kwargs)


def test_server_settings_are_announced(serve, raw_client):
    settings = ServerSettings(max_concurrent_streams=7, initial_window_size=100_000,
                              max_frame_size=32768, max_header_list_size=9000,
                              header_table_size=2048)
    server = serve(HelloHandler, settings=settings)
    client = raw_client(server.port)
    client.request(1)
    frames = client.frames_until(ended(1))
    announced = {}
    for f in frames_of(frames, "SettingsFrame"):
        if "ACK" not in f.flags:
            announced.update(f.settings)
    # RFC 9113 6.5.2: MAX_CONCURRENT_STREAMS=3, INITIAL_WINDOW_SIZE=4, MAX_FRAME_SIZE=5,
    # MAX_HEADER_LIST_SIZE=6, HEADER_TABLE_SIZE=1; a server never sends ENABLE_PUSH=2;
    # NO_RFC7540_PRIORITIES=9 (RFC 9218) is 1, ENABLE_CONNECT_PROTOCOL=8 (RFC 8441) is 1.
    assert announced == {3: 7, 4: 100_000, 5: 32768, 6: 9000, 1: 2048, 9: 1, 8: 1}
    assert status_of(frames, 1) == b"200"


# -- SETTINGS_MAX_CONCURRENT_STREAMS ------------------------------------------------------


def test_streams_over_the_limit_before_settings_ack_are_refused(serve, raw_client):
    """Streams over the announced limit that arrive before the client has acknowledged
    our SETTINGS get RST_STREAM ErrorCode.REFUSED_STREAM (RFC 9113 5.1.2); the others carry on."""
    HeldHandler.held = []
    server = serve(HeldHandler, settings=ServerSettings(max_concurrent_streams=5))
    client = raw_client(server.port, ack_settings=False)
    client.send(b"".join(client.headers_frame(stream_id) for stream_id in range(1, 16, 2)))
    rejected = client.frames_until(
        lambda f: type(f).__name__ == "RstStreamFrame" and f.stream_id == 15)
    assert wait_for(lambda: server.call(lambda: len(HeldHandler.held)) == 5)
    resets = {f.stream_id: f.error_code for f in frames_of(rejected, "RstStreamFrame")}
    assert resets == dict.fromkeys((11, 13, 15), ErrorCode.REFUSED_STREAM)
    assert frames_of(rejected, "GoAwayFrame") == []
    server.call(HeldHandler.release_all)
    frames = []
    done: set = set()
    while done != {1, 3, 5, 7, 9}:
        more = client.frames_until(lambda f: ended(f.stream_id)(f), 5)
        assert more, f"only {done} completed"
        frames += more
        done |= {f.stream_id for f in more if ended(f.stream_id)(f)}
    for stream_id in (1, 3, 5, 7, 9):
        assert status_of(frames, stream_id) == b"200"
        assert body_of(frames, stream_id) == b"released\n"


def test_streams_over_an_acknowledged_limit_end_the_connection(serve, raw_client, log_records):
    """Once the client has acknowledged SETTINGS_MAX_CONCURRENT_STREAMS, going over it
    is treated by libnghttp2 1.52 as a connection error: GOAWAY ErrorCode.PROTOCOL_ERROR naming
    the last stream it processed, and one log line. (RFC 9113 5.1.2 asks for a stream
    error; nghttp2 is stricter with a peer that ignores a limit it acknowledged.)"""
    HeldHandler.held = []
    server = serve(HeldHandler, settings=ServerSettings(max_concurrent_streams=5))
    client = raw_client(server.port)
    client.frames_until(lambda f: type(f).__name__ == "SettingsFrame" and "ACK" in f.flags)
    client.send(b"".join(client.headers_frame(stream_id) for stream_id in range(1, 16, 2)))
    frames = client.frames_until(lambda f: type(f).__name__ == "GoAwayFrame")
    [goaway] = frames_of(frames, "GoAwayFrame")
    assert (goaway.last_stream_id, goaway.error_code) == (9, ErrorCode.PROTOCOL_ERROR)
    assert wait_for(lambda: any("GOAWAY PROTOCOL_ERROR" in r.getMessage()
                                for r in log_records.records))
    assert server.call(lambda: len(HeldHandler.held)) == 5


def test_h2load_respects_max_concurrent_streams(serve):
    """h2load keeps to the limit once it has the server's SETTINGS.

    Its first flight (up to ``-m`` streams per client) may go out before the
    SETTINGS arrive, which RFC 9113 5.1.2 allows the server to refuse
    (ErrorCode.REFUSED_STREAM, counted by h2load as errored); every later request must
    succeed, so at most 2 x (50 - 5) requests may be lost and none may fail.
    """
    server = serve(HelloHandler, settings=ServerSettings(max_concurrent_streams=5))
    result = run_peer("h2load", "-n", "2000", "-c", "2", "-m", "50", server.url("/"), timeout=60)
    match = re.search(r"requests: 2000 total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", result.stdout)
    assert match, result.stdout + result.stderr
    started, done, succeeded, failed, errored, timeout = map(int, match.groups())
    assert (done, failed, timeout) == (2000, errored, 0), result.stdout
    assert succeeded + errored == 2000
    assert errored <= 2 * (50 - 5), result.stdout
    assert f"status codes: {succeeded} 2xx, 0 3xx, 0 4xx, 0 5xx" in result.stdout


def test_h2load_within_max_concurrent_streams_has_no_failures(serve):
    server = serve(HelloHandler, settings=ServerSettings(max_concurrent_streams=5))
    result = run_peer("h2load", "-n", "2000", "-c", "2", "-m", "5", server.url("/"), timeout=60)
    assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in result.stdout, result.stdout
    assert "status codes: 2000 2xx" in result.stdout
