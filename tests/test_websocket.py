"""WebSockets over HTTP/2 (RFC 8441), checked with the h2 package doing extended CONNECT
and wsproto's frame layer as the client (tests/wsh2.py): the handshake, echo in the three
styles of the native API, fragmentation, ping/pong, closing, limits, permessage-deflate,
multiplexing and flow control both ways."""
from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from wsh2 import H2WebSocketClient, PerMessageDeflate, raw_frame

from nghttp2py import BaseRequestHandler, ServerSettings, Timeouts
from nghttp2py.websocket import WebSocketClosed, accept_key, negotiate_deflate

TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9


class SyncEcho(BaseRequestHandler):
    """Accepts every WebSocket and echoes each message from a plain on_message hook."""

    def on_headers(self):
        if self.websocket is None:
            self.send_response(200, body=b"plain " + self.path)
            return
        options = getattr(type(self), "options", {})
        self.accept_websocket(**options)

    def on_message(self, message):
        if message == "close please":
            self.websocket.close(4000, "asked to")
        else:
            self.websocket.send(message)


class AsyncHookEcho(SyncEcho):
    async def on_message(self, message):
        await asyncio.sleep(0)
        await self.websocket.send(message)


class ReceiveLoopEcho(BaseRequestHandler):
    """The coroutine style: one async on_headers serving the WebSocket to its end."""

    ended: list = []

    async def on_headers(self):
        ws = self.accept_websocket()
        async for message in ws:
            await ws.send(message)
        type(self).ended.append((ws.close_code, ws.close_reason))


@pytest.fixture
def client():
    opened: list[H2WebSocketClient] = []

    def connect(port: int, **kwargs) -> H2WebSocketClient:
        opened.append(H2WebSocketClient(port, **kwargs))
        return opened[-1]

    yield connect
    for c in opened:
        c.close()


def test_server_announces_extended_connect_and_sees_the_request(serve, client):
    seen = {}

    class Handler(BaseRequestHandler):
        def on_headers(self):
            seen.update(method=self.method, path=self.path, protocol=self.upgrade_protocol,
                        scheme=self.scheme, ws=self.websocket is not None,
                        version=self.http_version)
            self.accept_websocket()

    server = serve(Handler)
    c = client(server.port)
    assert c.connect_protocol_enabled  # SETTINGS_ENABLE_CONNECT_PROTOCOL = 1
    ws = c.open("/chat?room=1")
    assert ws.status == 200
    assert seen == {"method": b"CONNECT", "path": b"/chat?room=1", "protocol": b"websocket",
                    "scheme": b"http", "ws": True, "version": "2"}
    assert "content-length" not in ws.headers
    assert not ws.ended  # the stream stays open for frames


@pytest.mark.parametrize("handler", [SyncEcho, AsyncHookEcho, ReceiveLoopEcho])
def test_echo_in_each_style(serve, client, handler):
    server = serve(handler)
    ws = client(server.port).open("/echo")
    assert ws.status == 200
    messages = ["", "hello", "é" * 70, "x" * 125, "y" * 126, b"", b"\x00\xff" * 40000,
                bytes(range(256)) * 4096]  # up to 1 MiB
    for message in messages:
        ws.send(message)
    assert ws.receive(len(messages)) == messages
    ws.close(1000, "done")
    assert ws.wait_closed().code == 1000
    if handler is ReceiveLoopEcho:
        ws.client.wait(lambda: ReceiveLoopEcho.ended)
        assert ReceiveLoopEcho.ended.pop() == (1000, "done")


def test_ordinary_requests_are_untouched(serve, client):
    server = serve(SyncEcho)
    c = client(server.port)
    stream = c.get("/plain")
    c.wait(lambda: c.responses[stream]["ended"])
    assert c.responses[stream]["status"] == 200
    assert c.responses[stream]["body"] == b"plain /plain"


def test_fragmented_messages_with_pings_between_fragments(serve, client):
    server = serve(SyncEcho)
    ws = client(server.port).open("/")
    ws.send("frag", fin=False)
    ws.ping(b"in between")
    ws.send("ment", fin=False)
    ws.send("ed", fin=True)
    ws.send(b"\x01", fin=False)
    ws.send(b"\x02" * 70000, fin=True)
    assert ws.receive(2) == ["fragmented", b"\x01" + b"\x02" * 70000]
    assert ws.pongs == [b"in between"]
    # A multi-byte character split across fragments is valid UTF-8.
    euro = "€".encode()
    ws.send_raw(raw_frame(TEXT, euro[:1], fin=False) + raw_frame(0x0, euro[1:], fin=True))
    assert ws.receive() == ["€"]


def test_server_keepalive_pings_and_closes_without_pong(serve, client):
    class Handler(SyncEcho):
        options = {"ping_interval": 0.2, "ping_timeout": 0.3, "close_timeout": 0.3}

    server = serve(Handler)
    c = client(server.port)
    alive = c.open("/")
    c.wait(lambda: len(alive.pings) >= 2)  # answered: the pings go on
    assert alive.closed is None

    silent = c.open("/")
    silent.auto_pong = False
    c.wait(lambda: silent.closed is not None, timeout=5)
    assert silent.closed.code == 1011
    c.wait(lambda: silent.ended)
    assert alive.closed is None
    alive.send("still here")
    assert alive.receive() == ["still here"]


def test_client_close_codes_are_echoed(serve, client):
    server = serve(SyncEcho)
    c = client(server.port)
    for code, reason in ((1000, ""), (1001, "going"), (3001, "app"), (4999, "é" * 10)):
        ws = c.open("/")
        ws.close(code, reason)
        assert ws.wait_closed().code == code


def test_close_frame_without_code(serve, client):
    server = serve(SyncEcho)
    ws = client(server.port).open("/")
    ws.send_raw(raw_frame(CLOSE))
    closed = ws.wait_closed()
    assert closed.code in (None, 1005)  # an empty close frame back


def test_server_initiated_close(serve, client):
    server = serve(SyncEcho)
    ws = client(server.port).open("/")
    ws.send("close please")
    ws.client.wait(lambda: ws.closed is not None)
    assert (ws.closed.code, ws.closed.reason) == (4000, "asked to")
    assert not ws.ended  # the server waits for our close frame
    ws.close(4000)
    ws.client.wait(lambda: ws.ended)


def test_client_ending_the_stream_without_close(serve, client):
    class Handler(ReceiveLoopEcho):
        ended: list = []

    server = serve(Handler)
    ws = client(server.port).open("/")
    ws.send("x")
    assert ws.receive() == ["x"]
    ws.end()
    ws.client.wait(lambda: Handler.ended and ws.ended)
    assert Handler.ended == [(1006, "")]


@pytest.mark.parametrize("payload, code", [
    (b"\x03\xe8" + b"\xff", 1007),   # invalid UTF-8 reason
    (b"\x03", 1002),                 # 1-byte payload
    (b"\x03\xed", 1002),             # 1005 may not be sent
    (b"\x03\xee", 1002),             # 1006 may not be sent
    (b"\x03\xec", 1002),             # 1004 is reserved
    (b"\x03\xe7", 1002),             # 999
    (b"\x07\xd0", 1002),             # 2000
    (b"\x13\x88", 1002),             # 5000
])
def test_invalid_close_frames(serve, client, payload, code):
    server = serve(SyncEcho)
    ws = client(server.port).open("/")
    ws.send_raw(raw_frame(CLOSE, payload))
    assert ws.wait_closed().code == code


def test_close_before_accept_is_403(serve, client):
    class Refuse(BaseRequestHandler):
        def on_headers(self):
            self.websocket.close()

    server = serve(Refuse)
    ws = client(server.port).open("/")
    assert ws.status == 403
    ws.client.wait(lambda: ws.ended)


def test_handshake_checks(serve, client):
    chosen = []

    class Handler(BaseRequestHandler):
        async def on_headers(self):
            ws = self.accept_websocket(subprotocol="superchat")
            chosen.append(ws.subprotocol if ws.state == "OPEN" else ws.close_code)
            async for _ in ws:
                pass
            with pytest.raises(WebSocketClosed):
                await ws.receive()

    server = serve(Handler)
    c = client(server.port)
    ws = c.open("/", subprotocols=("chat", "superchat"))
    assert ws.status == 200
    assert ws.headers["sec-websocket-protocol"] == "superchat"
    bad = c.open("/", version="8", subprotocols=("superchat",))
    assert bad.status == 426
    assert bad.headers["sec-websocket-version"] == "13"
    assert chosen == ["superchat", 1002]
    ws.close()
    assert ws.wait_closed().code == 1000


def test_close_timeout_resets_a_silent_client(serve, client):
    class Handler(SyncEcho):
        options = {"close_timeout": 0.2}

    server = serve(Handler)
    ws = client(server.port).open("/")
    ws.send("close please")
    ws.client.wait(lambda: ws.closed is not None)
    # No close frame back, no END_STREAM: the server resets the stream.
    ws.client.wait(lambda: ws.reset is not None)
    assert ws.reset == 8  # CANCEL


def test_a_failing_hook_closes_with_1011(serve, client):
    class Handler(SyncEcho):
        def on_message(self, message):
            if message == "boom":
                raise RuntimeError("boom")
            self.websocket.send(message)

    server = serve(Handler)
    c = client(server.port)
    ws = c.open("/")
    ws.send("fine")
    assert ws.receive() == ["fine"]
    ws.send("boom")
    assert ws.wait_closed().code == 1011
    other = c.open("/")  # the connection is unharmed
    other.send("still fine")
    assert other.receive() == ["still fine"]


def test_accept_key_and_deflate_negotiation():
    # RFC 6455 section 1.3's example.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    offer = [(b"sec-websocket-extensions",
              b"permessage-deflate; client_max_window_bits, permessage-deflate")]
    params = negotiate_deflate(offer)
    assert params.response() == b"permessage-deflate; client_max_window_bits=12"
    assert negotiate_deflate([(b"sec-websocket-extensions", b"x-other")]) is None
    # Unknown or repeated parameters decline an offer; the next one is taken.
    assert negotiate_deflate([(b"sec-websocket-extensions",
                               b"permessage-deflate; foo, permessage-deflate; "
                               b"server_no_context_takeover")]
                             ).response() == b"permessage-deflate; server_no_context_takeover"
    assert negotiate_deflate([(b"sec-websocket-extensions",
                               b"permessage-deflate; server_max_window_bits=8")]) is None


@pytest.mark.parametrize("client_bits", [None, 10, 15])
def test_permessage_deflate(serve, client, client_bits):
    server = serve(SyncEcho)
    deflate = PerMessageDeflate(client_max_window_bits=client_bits) if client_bits \
        else PerMessageDeflate()
    ws = client(server.port).open("/", deflate=deflate)
    assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate")
    text = "the quick brown fox jumps over the lazy dog " * 2000
    before = ws.received_bytes
    ws.send(text)
    ws.send(b"\x00" * 500000)
    ws.send("short")
    assert ws.receive(3) == [text, b"\x00" * 500000, "short"]
    assert ws.received_bytes - before < 20000  # the server compressed its answers


def test_compression_bomb_is_1009(serve, client):
    class Handler(SyncEcho):
        options = {"max_message_size": 100000}

    server = serve(Handler)
    ws = client(server.port).open("/", deflate=PerMessageDeflate())
    ws.send(b"\x00" * 99000)
    assert ws.receive() == [b"\x00" * 99000]
    ws.send(b"\x00" * 10_000_000)  # 10 kB on the wire
    assert ws.wait_closed().code == 1009


def test_message_size_limit(serve, client):
    class Handler(SyncEcho):
        options = {"max_message_size": 1000}

    server = serve(Handler)
    c = client(server.port)
    ws = c.open("/")
    ws.send(b"x" * 1000)
    assert ws.receive() == [b"x" * 1000]
    # A frame header announcing too much is refused before its payload comes.
    ws.send_raw(raw_frame(BINARY, b"", length=5000)[:8])
    assert ws.wait_closed().code == 1009
    # Fragments adding up to too much.
    ws = c.open("/")
    ws.send(b"y" * 600, fin=False)
    ws.send(b"y" * 600, fin=True)
    assert ws.wait_closed().code == 1009


def test_many_websockets_and_requests_on_one_connection(serve, client):
    server = serve(AsyncHookEcho)
    c = client(server.port)
    sockets = [c.open(f"/ws/{i}") for i in range(20)]
    gets = [c.get(f"/get/{i}") for i in range(20)]
    for round_ in range(3):
        for i, ws in enumerate(sockets):
            ws.send(f"{i}:{round_}")
    for i, ws in enumerate(sockets):
        assert ws.receive(3) == [f"{i}:{r}" for r in range(3)]
    c.wait(lambda: all(c.responses[s]["ended"] for s in gets))
    assert [c.responses[s]["body"] for s in gets] == [f"plain /get/{i}".encode()
                                                      for i in range(20)]
    for ws in sockets:
        ws.close()
        assert ws.wait_closed().code == 1000


def test_an_app_that_does_not_receive_stops_only_its_stream(serve, client):
    """Flow control in: the credit of a message comes back once the app takes it."""
    taken = threading.Event()
    waiting: list = []

    class Handler(BaseRequestHandler):
        async def on_headers(self):
            ws = self.accept_websocket()
            if self.path == b"/slow":
                waiting.append(ws)
                await asyncio.get_running_loop().run_in_executor(None, taken.wait)
            async for message in ws:
                await ws.send(message if self.path != b"/slow" else str(len(message)))

    server = serve(Handler, settings=ServerSettings(initial_window_size=65535))
    c = client(server.port)
    slow = c.open("/slow")
    fast = c.open("/fast")
    chunk = b"z" * 16000
    for _ in range(3):
        slow.send(chunk)
    c.wait(lambda: c.conn.local_flow_control_window(slow.stream_id) < 20000)
    # Nothing taken: the server grants no more on that stream...
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        c.read_once(0.05)
    assert c.conn.local_flow_control_window(slow.stream_id) < 20000
    # ... while the other WebSocket on the connection goes on.
    for _ in range(50):
        fast.send(chunk)
        assert fast.receive() == [chunk]
    taken.set()
    for _ in range(5):
        slow.send(chunk)
    assert slow.receive(8) == [str(len(chunk))] * 8


def test_a_quiet_websocket_is_not_a_slow_request_body(serve, client):
    """The minimum-rate guard is for request bodies: a WebSocket may stay silent."""
    server = serve(SyncEcho, timeouts=Timeouts(request_header=0.2, min_rate=100))
    c = client(server.port)
    ws = c.open("/")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        c.read_once(0.05)
    ws.send("still here")
    assert ws.receive() == ["still here"]


def test_a_client_that_does_not_read_pauses_send(serve, client):
    """Flow control out: ``await ws.send()`` waits while the client's window is shut."""
    progress: list[int] = []
    done = threading.Event()

    class Handler(BaseRequestHandler):
        async def on_headers(self):
            ws = self.accept_websocket(write_limit=32768)
            for i in range(100):
                await ws.send(b"m" * 16384)
                progress.append(i)
            done.set()

    server = serve(Handler)
    c = client(server.port, window=65535, auto_window=False)
    ws = c.open("/")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        c.read_once(0.05)
    stalled = len(progress)
    assert stalled < 10, stalled  # 64 KiB window + 32 KiB buffered, not 1.6 MB
    assert not done.is_set()
    # Reading (acknowledging) lets it go on to the end.
    while not done.is_set() or ws.received_bytes < 100 * 16388:
        c.read_once(0.05)
        c.acknowledge(ws.stream_id, ws.received_bytes - getattr(ws, "acked", 0))
        ws.acked = ws.received_bytes
    assert len(progress) == 100
    assert len(ws.messages) == 100


# Small frames around large messages, whose payloads the server sends from the
# application's own str/bytes (one at a time; the next large one is copied).
BURST = ["a", bytes(range(256)) * 800, "é€" * 30000, b"C" * 100_000, b"d",
         bytearray(b"E" * 70_000), "f" * 70_000, random.Random(11).randbytes(90_000),
         bytes(range(255, -1, -1)) * 300]


class Burst(BaseRequestHandler):
    """Answers any message with BURST and a ping, then closes with 4001."""

    def on_headers(self):
        self.accept_websocket(compression=getattr(type(self), "compression", False))

    def on_message(self, message):
        for m in BURST:
            self.websocket.send(m)
        self.websocket.ping(b"p")
        self.websocket.close(4001, "done")


@pytest.mark.parametrize("compression", [False, True])
def test_large_messages_among_small_frames_through_a_small_window(serve, client, compression):
    """Large payloads (sent without a copy) keep their place among the other frames,
    however the client's flow control cuts them."""
    server = serve(type("Handler", (Burst,), {"compression": compression}))
    c = client(server.port, window=20000, auto_window=False)
    ws = c.open("/", deflate=PerMessageDeflate() if compression else None)
    ws.send("go")
    acked = 0
    deadline = time.monotonic() + 30
    while ws.closed is None and time.monotonic() < deadline:
        c.read_once(0.05)
        if ws.received_bytes > acked:
            c.acknowledge(ws.stream_id, ws.received_bytes - acked)
            acked = ws.received_bytes
    assert ws.messages == [bytes(m) if isinstance(m, bytearray) else m for m in BURST]
    assert ws.pings == [b"p"]
    assert (ws.closed.code, ws.closed.reason) == (4001, "done")
