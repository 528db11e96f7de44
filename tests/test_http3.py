"""HTTP/3 (``quic_bind``), checked with aioquic's HTTP/3 client (tests/h3client.py).

The server runs in its own thread and loop (uvloop on the uvloop pass), the
client with asyncio in the test's thread. Everything a handler can do over
HTTP/2 is done here over HTTP/3: bodies both ways under flow control,
trailers, 1xx, failures, resets, graceful shutdown, an ASGI app.
"""
from __future__ import annotations

import asyncio
import gc
import hashlib
import importlib
import importlib.util
import logging
import re
import socket
import threading
import time

import pytest
from appserver import AppServerThread
from served import EXAMPLES, PEER_ENV, ServedPrograms
from wsproto.frame_protocol import Opcode

from conftest import ServerThread, run_peer, wait_for
from nghttp2py import DATA_EOF, DATA_OK, BaseRequestHandler, HTTP2Server, ServerSettings, Timeouts
from nghttp2py._nghttp2 import HTTP3Connection

pytest.importorskip("aioquic", reason="HTTP/3 needs aioquic (pip install nghttp2py[h3])")
h3_connect = importlib.import_module("h3client").h3_connect
websocket_echo = importlib.import_module("h3client").websocket_echo
encode_uint_var = importlib.import_module("aioquic.buffer").encode_uint_var
QuicConfiguration = importlib.import_module("aioquic.quic.configuration").QuicConfiguration
QuicConnection = importlib.import_module("aioquic.quic.connection").QuicConnection

H3_NO_ERROR = 0x100
H3_INTERNAL_ERROR = 0x102
H3_REQUEST_REJECTED = 0x10B
H3_REQUEST_CANCELLED = 0x10C


def pattern(size: int) -> bytes:
    """``size`` bytes that are not all alike, so that a misplaced chunk shows."""
    block = bytes(range(251)) * 64
    return (block * (size // len(block) + 1))[:size]


class Echo(BaseRequestHandler):
    """GET /size/N answers N bytes; any other request gets its body back, with
    ``x-http`` (the protocol), the request trailers echoed as response trailers."""

    def on_headers(self):
        self.chunks = []

    def on_data(self, data):
        self.chunks.append(data)

    def on_request_done(self):
        if self.path.startswith(b"/size/"):
            body = pattern(int(self.path[6:]))
        else:
            body = b"".join(self.chunks)
        self.send_response(200, [("x-http", self.http_version),
                                 ("x-sha", hashlib.sha256(body).hexdigest())],
                           body=body, trailers=self.trailers)


@pytest.fixture
def h3(serve, certificate):
    """``h3(Handler, **HTTP2Server options)``: a server with HTTP/3 on a free UDP port."""

    def start(handler_class, **options) -> ServerThread:
        thread = serve(handler_class, quic_bind=[("127.0.0.1", 0)],
                       quic_certfile=str(certificate[0]), quic_keyfile=str(certificate[1]),
                       **options)
        thread.quic_port = thread.server.quic_ports[0]
        return thread

    return start


def run(coroutine):
    return asyncio.run(coroutine)


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- requests and bodies ------------------------------------------------------------------


def test_get_and_post_bodies_from_0_bytes_to_a_megabyte(h3):
    server = h3(Echo, access_log=True)
    sizes = [0, 1, 1200, 16383, 65536 + 7, 1 << 20]

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            for size in sizes:
                response = await client.request("GET", f"/size/{size}")
                assert response.status == 200
                assert response.header(b"x-http") == b"3"
                assert bytes(response.body) == pattern(size)
                assert response.header(b"content-length") == str(size).encode()
                response = await client.request("POST", "/echo", body=pattern(size))
                assert response.status == 200
                assert bytes(response.body) == pattern(size), size
    run(exchange())


def test_ten_mebibytes_each_way(h3):
    server = h3(Echo)
    size = 10 << 20

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            down = client.start_request("GET", f"/size/{size}")
            up = client.start_request("POST", "/up", body=pattern(size))
            for stream_id in (down, up):
                response = await client.response(stream_id, timeout=60)
                assert response.status == 200
                assert len(response.body) == size
                assert hashlib.sha256(response.body).hexdigest() == \
                    hashlib.sha256(pattern(size)).hexdigest()
    run(exchange())


def test_a_hundred_concurrent_streams(h3):
    server = h3(Echo)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_ids = [client.start_request("GET", f"/size/{1000 + n}") for n in range(100)]
            responses = await asyncio.gather(*(client.response(i) for i in stream_ids))
            assert [len(r.body) for r in responses] == [1000 + n for n in range(100)]
            assert all(r.status == 200 for r in responses)
    run(exchange())


def test_every_interface_ipv4_and_ipv6(serve, certificate):
    server = serve(Echo, quic_bind=[("", 0)], quic_certfile=str(certificate[0]),
                   quic_keyfile=str(certificate[1]))
    port = server.server.quic_ports[0]

    async def exchange(host):
        async with h3_connect(port, host=host) as client:
            return await client.request("GET", "/size/7")
    for host in ("127.0.0.1", "::1"):
        assert bytes(run(exchange(host)).body) == pattern(7)


def test_localhost_is_both_loopback_addresses_on_one_port(serve, certificate):
    server = serve(Echo, quic_bind=[("localhost", 0)], quic_certfile=str(certificate[0]),
                   quic_keyfile=str(certificate[1]))
    ports = server.server.quic_ports
    assert len(ports) == 2 and ports[0] == ports[1], ports

    async def exchange(host):
        async with h3_connect(ports[0], host=host) as client:
            return await client.request("GET", "/size/7")
    for host in ("127.0.0.1", "::1"):
        assert bytes(run(exchange(host)).body) == pattern(7)


def test_a_response_before_the_request_body_ends_the_stream(h3):
    class Refusing(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/upload":
                self.send_response(413, body=b"too large\n")
            else:
                self.send_response(200, body=b"ok")

    server = h3(Refusing)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_id = client.start_request("POST", "/upload", body=pattern(1 << 20), end=False)
            response = await client.response(stream_id)
            assert (response.status, bytes(response.body)) == (413, b"too large\n")
            # The client was told to stop sending (STOP_SENDING): its stream is over.
            for _ in range(100):
                if client._quic._streams.get(stream_id) is None \
                        or client._quic._streams[stream_id].sender._reset_error_code is not None:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the client was not told to stop sending")
            assert bytes((await client.request("GET", "/next")).body) == b"ok"
    run(exchange())


def test_max_concurrent_streams_bounds_the_requests_in_progress(h3):
    active, peak = [0], [0]

    class Counting(BaseRequestHandler):
        async def on_headers(self):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            await asyncio.sleep(0.02)
            self.send_response(200, body=b"ok")

        def on_close(self, error_code):
            active[0] -= 1

    server = h3(Counting, settings=ServerSettings(max_concurrent_streams=3))

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            responses = await asyncio.gather(*(client.request("GET", f"/{n}", timeout=20)
                                               for n in range(12)))
            assert [bytes(r.body) for r in responses] == [b"ok"] * 12
    run(exchange())
    assert peak[0] == 3


def test_max_request_body_size_gets_413(h3, caplog):
    caplog.set_level(logging.INFO, logger="nghttp2py")
    server = h3(Echo, settings=ServerSettings(max_request_body_size=1000))

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            declared = await client.request("POST", "/", headers=[("content-length", "5000")],
                                            body=pattern(5000))
            undeclared = await client.request("POST", "/", body=pattern(5000))
            within = await client.request("POST", "/", body=pattern(1000))
            return declared, undeclared, within
    declared, undeclared, within = run(exchange())
    assert (declared.status, undeclared.status, within.status) == (413, 413, 200)
    assert bytes(within.body) == pattern(1000)
    lines = [r.getMessage() for r in caplog.records if "request body over" in r.getMessage()]
    assert len(lines) == 2, lines


def test_trailers_both_ways(h3):
    server = h3(Echo)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            response = await client.request("POST", "/t", body=b"payload",
                                            trailers=[(b"x-checksum", b"abc")])
            assert bytes(response.body) == b"payload"
            assert response.trailers == [(b"x-checksum", b"abc")]
    run(exchange())


def test_a_header_block_over_the_limit_gets_431(h3):
    server = h3(Echo, settings=ServerSettings(max_header_list_size=1024))

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            large = await client.request("GET", "/size/1", headers=[("x-large", "a" * 2000)])
            small = await client.request("GET", "/size/1", headers=[("x-small", "a" * 200)])
            return large, small
    large, small = run(exchange())
    assert (large.status, small.status) == (431, 200)


# -- flow control: bounded memory both ways -------------------------------------------------


class Paused(BaseRequestHandler):
    """Takes no request data until released; counts what it got."""

    instances: list[Paused] = []

    def on_headers(self):
        self.received = 0
        self.pause_reading()
        Paused.instances.append(self)

    def on_data(self, data):
        self.received += len(data)

    def on_request_done(self):
        self.send_response(200, body=str(self.received))


def test_request_credit_follows_what_the_handler_takes(h3):
    Paused.instances = []
    window = 64 << 10
    server = h3(Paused, settings=ServerSettings(initial_window_size=window))
    size = 2 << 20

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_id = client.start_request("POST", "/", body=pattern(size))
            await asyncio.sleep(0.5)
            sent = client._quic._streams[stream_id].sender.highest_offset
            # What the client could send: the window, and the frame headers in it.
            assert 0 < sent <= window + 1024, sent
            server.call(lambda: Paused.instances[0].resume_reading())
            response = await client.response(stream_id, timeout=30)
            assert bytes(response.body) == str(size).encode()
    run(exchange())


def test_an_endless_header_block_gets_no_more_credit_than_its_first(h3):
    server = h3(Echo)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_id = client._quic.get_next_available_stream_id()
            # A HEADERS frame (type 1) that announces 10 MB, then its bytes.
            client._quic.send_stream_data(
                stream_id, encode_uint_var(1) + encode_uint_var(10_000_000) + bytes(1 << 20))
            client.transmit()
            await asyncio.sleep(0.5)
            sent = client._quic._streams[stream_id].sender.highest_offset
            assert 0 < sent <= 64 << 10, sent  # max_header_list_size
            # The connection serves on.
            response = await client.request("GET", "/size/3")
            assert bytes(response.body) == pattern(3)
    run(exchange())


def test_a_response_body_is_pulled_only_as_the_stream_takes_it(h3):
    pulled = []

    class Generated(BaseRequestHandler):
        def on_headers(self):
            total = 4 << 20

            def body(n):
                sent = sum(pulled)
                n = min(n, total - sent)
                pulled.append(n)
                return pattern(n), DATA_EOF if sent + n == total else DATA_OK
            self.send_response(200, body=body)

    server = h3(Generated)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_id = client.start_request("GET", "/")
            while not client.responses[stream_id].body:
                await asyncio.sleep(0.01)
            time.sleep(0.5)  # this client reads nothing, acknowledges nothing
            held = server.call(lambda: sum(pulled))
            assert held <= 512 << 10, held  # the send buffer and what is in flight
            response = await client.response(stream_id, timeout=60)
            assert len(response.body) == 4 << 20
    run(exchange())


# -- informational responses, push ----------------------------------------------------------


def test_early_hints_and_push_answered_as_disabled(h3):
    results = []

    class Hinting(BaseRequestHandler):
        def on_headers(self):
            self.send_info(103, [("link", "</a.css>; rel=preload; as=style")])
            results.append(self.push("/b.js", body=b"pushed"))
            self.send_response(200, body=b"page")

    server = h3(Hinting)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            return await client.request("GET", "/")
    response = run(exchange())
    assert results == [False]
    assert bytes(response.body) == b"page"
    assert [status for status, _ in response.informational] == [103, 103]
    assert response.informational[0][1] == [(b"link", b"</a.css>; rel=preload; as=style")]
    assert response.informational[1][1] == [(b"link", b"</b.js>; rel=preload; as=script")]


# -- failures and resets ----------------------------------------------------------------------


class Failing(BaseRequestHandler):
    def on_headers(self):
        if self.path == b"/before":
            raise RuntimeError("boom before the response")

        def body(n):
            raise RuntimeError("boom in the body")
        self.send_response(200, body=body)


def test_a_failing_handler_gets_500_or_h3_internal_error_and_one_log_line(h3, caplog):
    server = h3(Failing)
    caplog.set_level(logging.ERROR, logger="nghttp2py")

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            before = await client.request("GET", "/before")
            during = await client.request("GET", "/during")
            after = await client.request("GET", "/before")
            return before, during, after
    before, during, after = run(exchange())
    assert before.status == 500 and after.status == 500
    assert during.reset == H3_INTERNAL_ERROR
    errors = [r.getMessage() for r in caplog.records if r.name == "nghttp2py"]
    assert len([m for m in errors if "Failing.on_headers raised" in m]) == 2, errors
    assert len([m for m in errors if "Failing.body raised" in m]) == 1, errors


def test_a_client_reset_closes_the_stream_with_cancel(h3):
    closed = []
    started = threading.Event()

    class Endless(BaseRequestHandler):
        def on_headers(self):
            if self.path != b"/endless":
                self.send_response(200, body=b"ok")
                return
            started.set()
            self.send_response(200, body=lambda n: (b"x" * min(n, 1000), DATA_OK))

        def on_close(self, error_code):
            if self.path == b"/endless":
                closed.append(error_code)

    server = h3(Endless)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_id = client.start_request("GET", "/endless")
            while len(client.responses[stream_id].body) < 10000:
                await asyncio.sleep(0.01)
            client.reset(stream_id, H3_REQUEST_CANCELLED)
            for _ in range(200):
                if closed:
                    break
                await asyncio.sleep(0.01)
            assert client.responses[stream_id].status == 200
            # The connection serves on.
            response = await client.request("GET", "/next")
            assert bytes(response.body) == b"ok"
    run(exchange())
    assert started.is_set()
    assert [int(code) for code in closed] == [0x8]  # ErrorCode.CANCEL


# -- lifecycle --------------------------------------------------------------------------------


def test_close_sends_goaway_finishes_started_streams_and_refuses_new_ones(h3):
    release = threading.Event()

    class Slow(BaseRequestHandler):
        async def on_headers(self):
            while not release.is_set():
                await asyncio.sleep(0.01)
            self.send_response(200, body=b"finished")

    server = h3(Slow)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            first = client.start_request("GET", "/slow")
            await asyncio.sleep(0.2)
            server.call(server.server.close)
            for _ in range(200):
                if client.goaways:
                    break
                await asyncio.sleep(0.01)
            assert client.goaways == [first + 4]
            late = await client.request("GET", "/late")
            assert late.reset == H3_REQUEST_REJECTED
            release.set()
            response = await client.response(first)
            assert bytes(response.body) == b"finished", (response, client.terminated)
            await asyncio.wait_for(client.wait_closed(), 5)
            assert client.terminated.error_code == H3_NO_ERROR
    run(exchange())
    # Every connection has ended: the server is closed.
    asyncio.run_coroutine_threadsafe(server.server.wait_closed(), server.loop).result(5)


def test_idle_connections_are_closed(h3):
    server = h3(Echo, timeouts=Timeouts(idle=0.3))

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            await client.request("GET", "/size/10")
            assert server.call(lambda: server.server.connections) == 1
            for _ in range(300):
                if server.call(lambda: server.server.connections) == 0:
                    return
                await asyncio.sleep(0.01)
            pytest.fail("the idle connection is still open")
    run(exchange())


def test_a_handshake_not_finished_in_time_is_dropped(h3, caplog):
    caplog.set_level(logging.INFO, logger="nghttp2py")
    server = h3(Echo, timeouts=Timeouts(handshake=0.3))
    quic = QuicConnection(configuration=QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], server_name="localhost"))
    quic.connect(("127.0.0.1", server.quic_port), now=time.monotonic())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data, address in quic.datagrams_to_send(now=time.monotonic()):
            sock.sendto(data, address)  # the first flight, and nothing more
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 1)
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)
    assert any("no QUIC handshake in time" in r.getMessage() for r in caplog.records)


def test_stateless_retry_validates_the_address(h3):
    server = h3(Echo, quic_retry=True)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            response = await client.request("GET", "/size/5")
            assert bytes(response.body) == pattern(5)
            # The handshake went through a Retry: the client took its token.
            assert client._quic._retry_source_connection_id is not None
    run(exchange())


def test_handlers_and_connections_are_freed_without_the_collector(h3):
    server = h3(Echo)

    def counted():
        return sum(1 for obj in gc.get_objects() if type(obj) in (Echo, HTTP3Connection))

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            await asyncio.gather(*(client.request("POST", "/", body=b"x" * 100)
                                   for _ in range(20)))
            stream_id = client.start_request("GET", f"/size/{4 << 20}")
            client.reset(stream_id)
            assert server.call(counted) > baseline  # the connection, at least

    gc.collect()
    baseline = server.call(counted)
    gc.disable()
    try:
        run(exchange())
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)
        assert wait_for(lambda: server.call(counted) == baseline)
    finally:
        gc.enable()


def test_a_retry_only_under_a_load_of_handshakes(h3, monkeypatch):
    server = h3(Echo)

    async def retried():
        async with h3_connect(server.quic_port) as client:
            assert bytes((await client.request("GET", "/size/5")).body) == pattern(5)
            return client._quic._retry_source_connection_id is not None
    assert not run(retried())
    # As if many handshakes were in progress: the next client must prove its address.
    monkeypatch.setattr(importlib.import_module("nghttp2py.quic"), "_RETRY_ABOVE", 0)
    assert run(retried())


# -- logs, applications, command line ---------------------------------------------------------


def test_access_log_lines_say_http_3(h3, caplog):
    caplog.set_level(logging.INFO, logger="nghttp2py.access")
    server = h3(Echo, access_log=True)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            await client.request("GET", "/size/12")
    run(exchange())
    lines = [r.getMessage() for r in caplog.records if r.name == "nghttp2py.access"]
    assert any(re.fullmatch(r'127\.0\.0\.1 - - \[.+\] "GET /size/12 HTTP/3" 200 12', line)
               for line in lines), lines


async def hello_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"hello over HTTP/{scope['http_version']} ({scope['scheme']})".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def test_an_asgi_app_over_http3(certificate):
    thread = AppServerThread(hello_app, quic_bind=[("127.0.0.1", 0)], lifespan="off",
                             quic_certfile=str(certificate[0]),
                             quic_keyfile=str(certificate[1])).start()
    try:
        port = thread.server.servers[0].quic_ports[0]

        async def exchange():
            async with h3_connect(port) as client:
                return await client.request("GET", "/")
        response = run(exchange())
        assert (response.status, bytes(response.body)) == (200, b"hello over HTTP/3 (https)")
    finally:
        thread.stop()


def hello_wsgi(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} over {environ['SERVER_PROTOCOL']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body, b" " + environ["wsgi.input"].read()]


def test_a_wsgi_app_over_http3(certificate):
    thread = AppServerThread(hello_wsgi, quic_bind=[("127.0.0.1", 0)],
                             quic_certfile=str(certificate[0]),
                             quic_keyfile=str(certificate[1])).start()
    try:
        port = thread.server.servers[0].quic_ports[0]

        async def exchange():
            async with h3_connect(port) as client:
                return await client.request("POST", "/", body=b"posted")
        response = run(exchange())
        assert (response.status, bytes(response.body)) == (200, b"POST over HTTP/3 posted")
    finally:
        thread.stop()


def test_abort_closes_http3_connections_at_once(h3):
    class Hanging(BaseRequestHandler):
        def on_headers(self):
            pass  # never answers

    server = h3(Hanging)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            stream_id = client.start_request("GET", "/hang")
            await asyncio.sleep(0.1)
            server.call(server.server.abort)
            await asyncio.wait_for(client.wait_closed(), 5)
            assert client.terminated.error_code == H3_NO_ERROR
            assert client.responses[stream_id].status is None
    run(exchange())
    assert server.call(lambda: server.server.connections) == 0


def test_quic_bind_in_a_config_file(tmp_path, certificate):
    config = tmp_path / "server.toml"
    config.write_text('quic_bind = ["127.0.0.1:0"]\naccess_log = "-"\n')
    programs = ServedPrograms(tmp_path)
    try:
        server = programs(["-m", "nghttp2py", "examples.hello:Handler", "--config",
                           str(config)], tls=certificate)
        found = re.search(r"serving HTTP/3 on 127\.0\.0\.1:(\d+)", server.stderr())
        assert found, server.stderr()

        async def exchange():
            async with h3_connect(int(found.group(1))) as client:
                return await client.request("GET", "/")
        assert bytes(run(exchange()).body) == b"nghttp2 FTW\n"
        server.stop()
    finally:
        programs.kill()


def test_the_example_serves_http3_http2_and_http1_from_the_command_line(tmp_path,
                                                                         certificate):
    programs = ServedPrograms(tmp_path)
    try:
        server = programs([EXAMPLES / "http3.py", "--access-log",
                           "--quic-bind", "127.0.0.1:0"], tls=certificate)
        found = re.search(r"serving HTTP/3 on 127\.0\.0\.1:(\d+)", server.stderr())
        assert found, server.stderr()

        async def exchange():
            async with h3_connect(int(found.group(1))) as client:
                return await client.request("GET", "/h3")
        response = run(exchange())
        assert bytes(response.body) == b"hello over HTTP/3\n"
        for option, version in (("--http2", "2"), ("--http1.1", "1.1")):
            result = run_peer("curl", "-sS", option, "--cacert", str(certificate[0]),
                              server.url.replace("127.0.0.1", "localhost"),
                              "--resolve", f"localhost:{server.url.split(':')[2][:-1]}:127.0.0.1",
                              env=PEER_ENV)
            assert result.stdout == f"hello over HTTP/{version}\n", result.stderr
        server.stop()
        assert re.search(r'"GET /h3 HTTP/3" 200 18', server.stderr()), server.stderr()
    finally:
        programs.kill()


# -- WebSockets over HTTP/3 (RFC 9220) ------------------------------------------------------


def test_a_websocket_handler_over_http3(h3):
    server = h3(load_example("websocket_echo").Handler)

    async def exchange():
        async with h3_connect(server.quic_port) as client:
            return await websocket_echo(client)
    frames, response = run(exchange())
    assert frames[0] == (Opcode.TEXT, "héllo €")
    assert frames[1][0] == Opcode.CLOSE and frames[1][1][0] == 1000
    assert response.reset is None


async def asgi_websocket_echo(scope, receive, send):
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send",
                "text": f"{message['text']} over HTTP/{scope['http_version']}"})
    assert (await receive())["type"] == "websocket.disconnect"


def test_an_asgi_websocket_over_http3(certificate):
    thread = AppServerThread(asgi_websocket_echo, quic_bind=[("127.0.0.1", 0)],
                             lifespan="off", quic_certfile=str(certificate[0]),
                             quic_keyfile=str(certificate[1])).start()
    try:
        port = thread.server.servers[0].quic_ports[0]

        async def exchange():
            async with h3_connect(port) as client:
                return await websocket_echo(client)
        frames, _ = run(exchange())
        assert frames[0] == (Opcode.TEXT, "héllo € over HTTP/3")
        assert frames[1][0] == Opcode.CLOSE
    finally:
        thread.stop()


def test_quic_bind_needs_a_certificate():
    with pytest.raises(ValueError, match="quic_certfile"):
        HTTP2Server(("127.0.0.1", 0), Echo, quic_bind=[("127.0.0.1", 0)])

