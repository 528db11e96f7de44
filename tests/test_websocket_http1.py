"""WebSockets over HTTP/1.1 (the RFC 6455 upgrade), checked with clients we did not write:
the ``websockets`` package's client (what Uvicorn serves with) and wsproto (its handshake
and frame layer, through tests/wsh1.py, for what a polite client would not send), beside
raw requests for the refusals. The same WebSocket object serves HTTP/2 (tests/
test_websocket.py); here: the handshake and its refusals, echo in each style of the native
API, fragmentation, ping/pong, closing, limits, deflate, pipelining and flow control."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import os
import ssl
import threading
import time

import pytest
from rawh1 import RawH1
from test_leaks import live
from test_websocket import BURST, AsyncHookEcho, Burst, ReceiveLoopEcho, SyncEcho
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from wsh1 import H1WebSocketClient, send_until_stalled
from wsh2 import PerMessageDeflate, raw_frame

from conftest import wait_for
from nghttp2py import BaseRequestHandler, ServerSettings, Timeouts
from nghttp2py._nghttp2 import HTTP1Connection, WebSocket
from nghttp2py.connection import ServerConnection
from nghttp2py.websocket import accept_key

TEXT, BINARY, CONT, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9


def ws_connect(port: int, path: str = "/", **kwargs):
    """The websockets package's client (no proxy from the environment, short timeouts)."""
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 5)
    return connect(f"ws://127.0.0.1:{port}{path}", proxy=None, **kwargs)


def upgrade_request(path: str = "/", key: bytes | None = None, version: bytes = b"13",
                    extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16)) if key is None else key
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")


@pytest.fixture
def client():
    opened: list[H1WebSocketClient] = []

    def start(port: int, **kwargs) -> H1WebSocketClient:
        opened.append(H1WebSocketClient(port, **kwargs))
        return opened[-1]

    yield start
    for c in opened:
        c.close()


# -- the handshake -----------------------------------------------------------------------


def test_the_upgrade_is_a_websocket_request_like_extended_connect(serve):
    seen = {}

    class Handler(BaseRequestHandler):
        def on_headers(self):
            seen.update(method=self.method, path=self.path, protocol=self.upgrade_protocol,
                        ws=self.websocket is not None, version=self.http_version)
            self.accept_websocket()

    server = serve(Handler)
    key = base64.b64encode(os.urandom(16))
    with RawH1(server.port) as raw:
        raw.send(upgrade_request("/chat?room=1", key))
        response = raw.response()
    assert response.status == 101
    assert response.headers["sec-websocket-accept"] == accept_key(key).decode()
    assert response.headers["upgrade"].lower() == "websocket"
    assert response.headers["connection"].lower() == "upgrade"
    assert "content-length" not in response.headers
    assert "transfer-encoding" not in response.headers
    assert seen == {"method": b"GET", "path": b"/chat?room=1", "protocol": b"websocket",
                    "ws": True, "version": "1.1"}


@pytest.mark.parametrize("handler", [SyncEcho, AsyncHookEcho, ReceiveLoopEcho])
def test_echo_in_each_style_with_the_websockets_client(serve, handler):
    server = serve(handler)
    with ws_connect(server.port, "/echo") as ws:
        for message in ["héllo", b"\x00\x01\x02", "", b"", "x" * 70000, os.urandom(200000)]:
            ws.send(message)
            assert ws.recv(timeout=10) == message
    assert ws.close_code == 1000


def test_echo_with_wsproto(serve, client):
    server = serve(SyncEcho)
    ws = client(server.port).open("/")
    assert ws.status == 101
    ws.send("text ✓")
    ws.send(b"\xff" * 300)
    assert ws.receive(2) == ["text ✓", b"\xff" * 300]
    ws.close(1000, "done")
    assert ws.wait_closed().code == 1000


@pytest.mark.parametrize("version", [b"12", b"8", b"13, 8"])
def test_other_versions_get_426_naming_13(serve, version):
    server = serve(SyncEcho)
    with RawH1(server.port) as raw:
        raw.send(upgrade_request(version=version))
        (response,) = raw.until_closed()
    assert response.status == 426
    assert response.headers["sec-websocket-version"] == "13"


@pytest.mark.parametrize("key", [b"", b"not base64!", base64.b64encode(b"15 bytes only..")])
def test_a_missing_or_invalid_key_is_400(serve, key):
    server = serve(SyncEcho)
    request = upgrade_request(key=key)
    if not key:
        request = request.replace(b"Sec-WebSocket-Key: \r\n", b"")
    with RawH1(server.port) as raw:
        raw.send(request)
        (response,) = raw.until_closed()
    assert response.status == 400


def test_close_before_accept_is_403_and_other_answers_refuse_too(serve):
    class Handler(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/no":
                self.websocket.close()
            else:
                self.send_response(404, body=b"nothing here")

    server = serve(Handler)
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(server.port, "/no")
    assert refused.value.response.status_code == 403
    for path in ("/no", "/elsewhere"):
        with RawH1(server.port) as raw:
            # Frames sent too early are never read as requests: the connection closes.
            raw.send(upgrade_request(path) + raw_frame(TEXT, b"early"))
            (response,) = raw.until_closed()
            assert response.status == (403 if path == "/no" else 404)
            assert not response.keep_alive


def test_upgrade_without_connection_upgrade_is_a_plain_request(serve):
    server = serve(SyncEcho)
    with RawH1(server.port) as raw:
        raw.send(b"GET /p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                 b"GET /q HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [r.body for r in raw.responses(2)] == [b"plain /p", b"plain /q"]


def test_keep_alive_requests_then_an_upgrade_on_the_same_connection(serve):
    server = serve(SyncEcho)
    with RawH1(server.port) as raw:
        raw.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [r.body for r in raw.responses(2)] == [b"plain /a", b"plain /b"]
        raw.send(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n" + upgrade_request("/ws")
                 + raw_frame(TEXT, b"pipelined"))
        first, upgraded = raw.responses(2)
        assert (first.body, upgraded.status) == (b"plain /c", 101)
        # The echo follows the 101; llhttp stops there, the rest is frames.
        deadline = time.monotonic() + 10
        while b"pipelined" not in raw.received:
            raw._read(deadline)
        assert raw.received.endswith(b"\x81\x09pipelined")


def test_bytes_pipelined_after_the_handshake_reach_the_websocket(serve, client):
    class Slow(SyncEcho):
        async def on_headers(self):
            await asyncio.sleep(0.2)  # the frames arrive before the 101 goes out
            self.accept_websocket()

    server = serve(Slow)
    frames = b"".join(raw_frame(TEXT, f"m{i}".encode()) for i in range(50))
    ws = client(server.port).open("/", after=frames + raw_frame(PING, b"p"))
    assert ws.status == 101
    assert ws.receive(50) == [f"m{i}" for i in range(50)]
    ws.client.wait(lambda: ws.pongs == [b"p"])


# -- messages, control frames, closing -------------------------------------------------------


def test_fragmented_messages_and_pings_between_fragments(serve, client):
    server = serve(SyncEcho)
    with ws_connect(server.port) as ws:
        ws.send(["frag", "ment", "ed"])
        ws.send([b"\x01", b"\x02"])
        assert [ws.recv(timeout=10) for _ in range(2)] == ["fragmented", b"\x01\x02"]
        assert ws.ping(b"are you there").wait(10)
    raw = client(server.port).open("/")
    raw.send_raw(raw_frame(TEXT, b"one", fin=False) + raw_frame(PING, b"between")
                 + raw_frame(CONT, b" two", fin=False) + raw_frame(CONT, b" three"))
    assert raw.receive() == ["one two three"]
    assert raw.pongs == [b"between"]


def test_server_keepalive_pings_and_closes_without_pong(serve, client):
    class Handler(SyncEcho):
        options = {"ping_interval": 0.2, "ping_timeout": 0.3, "close_timeout": 0.5}

    server = serve(Handler)
    with ws_connect(server.port) as ws:  # answers pings: stays open
        time.sleep(0.8)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
    silent = client(server.port).open("/")
    silent.auto_pong = False
    started = time.monotonic()
    assert silent.wait_closed().code == 1011
    assert len(silent.pings) >= 1
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("code, reason", [(1000, ""), (1001, "away"), (4001, "bye ✓")])
def test_client_close_codes_are_echoed_and_seen_by_the_server(serve, code, reason):
    seen: list = []

    class Handler(SyncEcho):
        def on_close(self, error_code):
            seen.append((self.websocket.close_code, self.websocket.close_reason))

    server = serve(Handler)
    with ws_connect(server.port) as ws:
        ws.send("x")
        ws.recv(timeout=5)
        started = time.monotonic()
        ws.close(code, reason)
    assert ws.close_code == code  # the server answers with the code alone
    assert time.monotonic() - started < 3  # the server closed TCP, not the client's timeout
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == [(code, reason)]


def test_server_initiated_close(serve):
    server = serve(SyncEcho)
    with ws_connect(server.port) as ws:
        ws.send("close please")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 4000 and closed.value.rcvd.reason == "asked to"


def test_the_close_timeout_closes_a_silent_client(serve, client):
    class Handler(BaseRequestHandler):
        def on_headers(self):
            self.accept_websocket(close_timeout=0.3).close(1000)

    server = serve(Handler)
    ws = client(server.port).open("/")
    started = time.monotonic()
    ws.client.wait(lambda: ws.closed is not None)
    ws.local_ended = True  # do not answer, not even with our FIN
    ws.client.wait(lambda: ws.ended)
    assert 0.2 < time.monotonic() - started < 3


def test_a_client_vanishing_is_1006(serve, client):
    seen: list = []
    closed = threading.Event()

    class Handler(BaseRequestHandler):
        async def on_headers(self):
            ws = self.accept_websocket()
            async for message in ws:
                await ws.send(message)
            seen.append(ws.close_code)
            closed.set()

    server = serve(Handler)
    c = client(server.port)
    ws = c.open("/")
    ws.send("hi")
    assert ws.receive() == ["hi"]
    c.sockets[ws.stream_id].close()
    assert closed.wait(5)
    assert seen == [1006]


@pytest.mark.parametrize("frame, code", [
    (raw_frame(TEXT, b"unmasked", masked=False), 1002),
    (raw_frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),
    (raw_frame(BINARY, b"", rsv=2), 1002),
    (raw_frame(CLOSE, b"\x03\xe8\xff"), 1007),
], ids=["unmasked", "invalid-utf8", "rsv", "close-reason-utf8"])
def test_protocol_errors_close_with_their_code(serve, client, frame, code):
    server = serve(SyncEcho)
    ws = client(server.port).open("/")
    ws.send_raw(frame)
    assert ws.wait_closed().code == code


def test_message_size_limit_is_1009(serve):
    class Handler(SyncEcho):
        options = {"max_message_size": 1000}

    server = serve(Handler)
    with ws_connect(server.port) as ws:
        ws.send("a" * 1000)
        assert ws.recv(timeout=5) == "a" * 1000
        ws.send(os.urandom(1001))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009


# -- negotiation ---------------------------------------------------------------------------


def test_subprotocol_negotiation(serve):
    class Handler(SyncEcho):
        def on_headers(self):
            self.accept_websocket("superchat")

    server = serve(Handler)
    with ws_connect(server.port, subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "superchat"
        ws.send("x")
        assert ws.recv(timeout=5) == "x"


@pytest.mark.parametrize("compression", [True, False])
def test_permessage_deflate_with_the_websockets_client(serve, compression):
    class Handler(SyncEcho):
        options = {"compression": compression}

    server = serve(Handler)
    with ws_connect(server.port) as ws:  # offers permessage-deflate
        extensions = ws.response.headers.get("sec-websocket-extensions")
        assert (extensions or "").startswith("permessage-deflate") == compression
        for message in ["tiny", "compress me " * 5000, os.urandom(5000)]:
            ws.send(message)
            assert ws.recv(timeout=10) == message


def test_permessage_deflate_with_wsproto(serve, client):
    server = serve(SyncEcho)
    ws = client(server.port).open("/", deflate=PerMessageDeflate(client_max_window_bits=10))
    assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate")
    ws.send("z" * 20000)
    ws.send(b"bytes " * 1000)
    assert ws.receive(2) == ["z" * 20000, b"bytes " * 1000]


# -- many, and flow control ----------------------------------------------------------------


def test_many_websockets_on_one_server(serve):
    server = serve(AsyncHookEcho)
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(ws_connect(server.port, f"/ws/{i}")) for i in range(30)]
        for round_ in range(3):
            for i, ws in enumerate(sockets):
                ws.send(f"{i}:{round_}")
        for i, ws in enumerate(sockets):
            assert [ws.recv(timeout=10) for _ in range(3)] == [f"{i}:{r}" for r in range(3)]
    assert {ws.close_code for ws in sockets} == {1000}


def test_an_app_that_does_not_receive_stops_reading_the_socket(serve, client):
    """Flow control in: past its read limit the server stops reading, so the client's
    sends stall (in the kernel's buffers), until the application receives again."""
    taken = threading.Event()

    class Handler(BaseRequestHandler):
        async def on_headers(self):
            ws = self.accept_websocket()
            await asyncio.get_running_loop().run_in_executor(None, taken.wait)
            async for message in ws:
                await ws.send(str(len(message)))

    server = serve(Handler, settings=ServerSettings(initial_window_size=65535))
    c = client(server.port)
    ws = c.open("/")
    frame, total = raw_frame(BINARY, b"z" * 16000), 2000  # 32 MB
    sent, sender = send_until_stalled(lambda: ws.send_raw(frame), total)
    # Stalled: what the server holds is bounded by its read limit; the rest of
    # what was sent sits in the kernel's socket buffers.
    assert len(sent) < total // 2, len(sent)
    taken.set()
    assert ws.receive(total) == ["16000"] * total
    sender.join(10)
    assert len(sent) == total


def test_a_client_that_does_not_read_pauses_send(serve, client):
    """Flow control out: ``await ws.send()`` waits while the transport cannot write."""
    progress: list[int] = []
    done = threading.Event()
    buffered: list[int] = []

    class Handler(BaseRequestHandler):
        async def on_headers(self):
            ws = self.accept_websocket(write_limit=32768, compression=False)
            for i in range(1000):
                await ws.send(b"m" * 16384)
                buffered.append(ws.buffered_amount)
                progress.append(i)
            done.set()

    server = serve(Handler)
    c = client(server.port)
    ws = c.open("/")
    time.sleep(1.0)
    stalled = len(progress)
    # 16 MB to send: the kernel's buffers and write_limit take a fraction of it.
    assert stalled < 500, stalled
    assert not done.is_set()
    assert max(buffered) <= 32768 + 16384 + 4
    c.wait(lambda: len(ws.messages) == 1000, timeout=30)
    assert done.is_set() and len(progress) == 1000


def test_over_tls_the_server_closes_after_the_closing_handshake(serve, server_ssl_context):
    """TLS has no half-close: the connection closes once the close frames are exchanged,
    without the client waiting for its close timeout."""
    server = serve(SyncEcho, ssl=server_ssl_context)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with connect(f"wss://127.0.0.1:{server.port}/", ssl=context, proxy=None,
                 open_timeout=10, close_timeout=5) as ws:
        ws.send("secret")
        assert ws.recv(timeout=5) == "secret"
        started = time.monotonic()
        ws.close()
    assert ws.close_code == 1000
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("style", [SyncEcho, AsyncHookEcho, ReceiveLoopEcho])
def test_websockets_and_their_connections_are_freed_without_the_collector(serve, client,
                                                                          style):
    """Closed cleanly, failed, refused or dropped: every handler, WebSocket and
    connection goes by reference counting alone (a handler holds its WebSocket and
    its connection, the connection its tunnel's handler: no cycle may outlive them)."""
    class Handler(style):  # type: ignore[valid-type,misc]
        def on_headers(self):
            if self.path == b"/refuse":
                return self.websocket.close()
            return style.on_headers(self)

    server = serve(Handler)
    counted = lambda: (live(Handler), live(WebSocket), live(HTTP1Connection),  # noqa: E731
                       live(ServerConnection))
    gc.collect()
    baseline = server.call(counted)
    gc.disable()
    try:
        for i in range(10):
            with ws_connect(server.port) as ws:
                ws.send(f"m{i}")
                assert ws.recv(timeout=5) == f"m{i}"
        c = client(server.port)
        failed = c.open("/")
        failed.send_raw(raw_frame(TEXT, b"x", masked=False))
        assert failed.wait_closed().code == 1002
        assert c.open("/refuse").status == 403
        dropped = c.open("/")
        dropped.send("bye")
        assert dropped.receive() == ["bye"]
        c.close()
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)
        wait_for(lambda: server.call(counted) == baseline)
        counts = server.call(counted)
    finally:
        gc.enable()
    assert counts == baseline


def test_an_idle_websocket_outlives_the_connection_timeouts(serve):
    """An open WebSocket is a request in progress: neither the keep-alive idle
    timeout nor the request-head timeout closes its connection."""
    server = serve(SyncEcho, timeouts=Timeouts(idle=0.2, handshake=0.2))
    with ws_connect(server.port, ping_interval=None) as ws:
        time.sleep(1.0)
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"
    assert ws.close_code == 1000


def test_bytes_before_the_101_are_held_within_the_read_limit(serve, client):
    """A client that floods before its WebSocket is accepted is held back like a
    request body: the server stops reading past its read limit, then delivers it all."""
    decide = threading.Event()

    class Handler(SyncEcho):
        async def on_headers(self):
            await asyncio.get_running_loop().run_in_executor(None, decide.wait)
            self.accept_websocket(compression=False)

    server = serve(Handler, settings=ServerSettings(initial_window_size=65535))
    c = client(server.port)
    ws = c.open("/", wait=False)
    frame, total = raw_frame(BINARY, b"f" * 16000), 2000  # 32 MB
    sent, sender = send_until_stalled(lambda: c.sockets[ws.stream_id].sendall(frame), total)
    assert len(sent) < total // 2, len(sent)
    decide.set()
    c.wait(lambda: len(ws.messages) == total, timeout=60)
    sender.join(10)
    assert ws.messages == [b"f" * 16000] * total


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_large_messages_among_small_frames(serve, compression):
    """Large payloads (sent without a copy) keep their place among the other frames."""
    server = serve(type("Handler", (Burst,), {"compression": compression is not None}))
    with ws_connect(server.port, compression=compression, max_size=None) as ws:
        ws.send("go")
        for expected in BURST:
            assert ws.recv(timeout=10) == (bytes(expected) if isinstance(expected, bytearray)
                                           else expected)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert (ws.close_code, ws.close_reason) == (4001, "done")
