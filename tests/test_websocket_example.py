"""examples/websocket_echo.py, run as a script: an h2 client doing extended CONNECT and
the websockets package's client doing the HTTP/1.1 upgrade, headless Chromium opening
``wss://`` over HTTP/2 and (HTTP/2 disabled) over HTTP/1.1, and the WebSockets closed
with 1001 when the server shuts down, on either protocol."""
from __future__ import annotations

import re
import signal

import pytest
from browser import page_texts
from served import EXAMPLES, ServedPrograms
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from wsh2 import H2WebSocketClient, Opcode, raw_frame
from wsproto.frame_protocol import FrameProtocol

from rawh2 import (
    DATA,
    END_STREAM,
    RawH2,
    body_of,
    ended,
    frame,
    is_server_settings,
    kind,
    status_of,
)

CLOSE = 0x8


@pytest.fixture
def example(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield lambda *args, **kwargs: programs([EXAMPLES / "websocket_echo.py", *args], **kwargs)
    programs.kill()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


def test_echo_example_over_h2(example):
    served = example()
    client = H2WebSocketClient(port_of(served.url))
    try:
        ws = client.open("/echo")
        assert ws.status == 200
        ws.send("héllo")
        ws.send(b"\x00\x01")
        assert ws.receive(2) == ["héllo", b"\x00\x01"]
        assert client.open("/elsewhere").status == 403
        page = client.get("/")
        client.wait(lambda: client.responses[page]["ended"])
        assert b"new WebSocket" in client.responses[page]["body"]
        ws.close()
        assert ws.wait_closed().code == 1000
    finally:
        client.close()
    served.stop()


def test_echo_example_over_http1(example):
    """The same handler, reached with the websockets client's HTTP/1.1 upgrade."""
    served = example()
    url = served.url.replace("http://", "ws://").rstrip("/")
    with connect(url + "/echo", proxy=None, open_timeout=10, close_timeout=5) as ws:
        ws.send("héllo")
        ws.send(b"\x00\x01")
        assert [ws.recv(timeout=10), ws.recv(timeout=10)] == ["héllo", b"\x00\x01"]
    assert ws.close_code == 1000
    with pytest.raises(InvalidStatus) as refused:
        connect(url + "/elsewhere", proxy=None, open_timeout=10)
    assert refused.value.response.status_code == 403
    served.stop()


def test_shutdown_closes_http1_websockets_with_1001(example):
    served = example()
    url = served.url.replace("http://", "ws://").rstrip("/")
    with connect(url + "/echo", proxy=None, open_timeout=10, close_timeout=5) as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        served.process.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1001
    assert served.process.wait(5) == 0
    assert "Traceback" not in served.stderr()


def test_shutdown_closes_websockets_with_1001(example):
    """A graceful shutdown sends each open WebSocket a close frame with 1001 (going away),
    and exits once the client has answered. (Raw frames: h2 refuses frames after GOAWAY.)"""
    served = example()
    client = RawH2(port_of(served.url))
    try:
        client.frames_until(is_server_settings)
        client.send(client.headers_frame(1, "/echo", method="CONNECT", end_stream=False, extra=[
            (b":protocol", b"websocket"), (b"sec-websocket-version", b"13")]))
        assert status_of(client.frames_until(lambda f: kind(f) == "HeadersFrame"), 1) == b"200"
        served.process.send_signal(signal.SIGINT)
        frames = client.frames_until(lambda f: kind(f) == "DataFrame")
        decoder = FrameProtocol(client=True, extensions=[])
        decoder.receive_bytes(body_of(frames, 1))
        (close,) = decoder.received_frames()
        assert close.opcode is Opcode.CLOSE and close.payload[0] == 1001
        assert served.process.poll() is None  # waiting for our side of the handshake
        client.send(frame(DATA, END_STREAM, 1, raw_frame(CLOSE, b"\x03\xe9")))
        assert any(ended(1)(f) for f in client.frames_until(ended(1)))
        assert served.process.wait(5) == 0
        assert "Traceback" not in served.stderr()
    finally:
        client.close()


@pytest.mark.parametrize("flags, protocol, opened", [
    ((), "h2", r'"CONNECT /echo HTTP/2" 200'),
    (("--disable-http2",), "http/1.1", r'"GET /echo HTTP/1.1" 101'),
], ids=["http2", "http1"])
def test_echo_example_in_headless_chromium(example, certificate, tmp_path, flags, protocol,
                                           opened):
    """Chromium loads the page over h2 and opens wss:// on the same connection with an
    extended CONNECT (it does when the server announces SETTINGS_ENABLE_CONNECT_PROTOCOL);
    with HTTP/2 disabled, over HTTP/1.1 with the Upgrade handshake. The page writes the
    echo into #status."""
    served = example("--access-log", tls=certificate)
    texts = page_texts(served.url, ("status",), profile=tmp_path / "profile",
                       flags=("--ignore-certificate-errors", *flags),
                       until='text("status") !== "connecting"')
    assert texts["status"] == f"echo: hello over {protocol} €", texts
    served.stop()
    log = served.stderr()
    page = r'"GET / HTTP/2" 200' if protocol == "h2" else r'"GET / HTTP/1.1" 200'
    assert re.search(page, log), log
    assert re.search(opened, log), log
