"""The ASGI ``websocket`` scope, over HTTP/2 (the h2 package doing extended CONNECT, RFC
8441: tests/wsh2.py) and over HTTP/1.1 (wsproto's RFC 6455 handshake: tests/wsh1.py), with
wsproto's frame layer as the client, and the ``websockets`` package's client: the scope,
connect/accept/receive/send/close/disconnect, refusals (403, websocket.http.response, an
invalid handshake), apps that fail or return, flow control both ways; then the seed's Quart
echo from the command line, a Starlette and a FastAPI endpoint."""
from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import threading
import time

import pytest
from asgiref.typing import WebSocketDisconnectEvent, WebSocketReceiveEvent, WebSocketScope
from served import ServedPrograms
from test_cli_apps import APPS_ENV, TESTS
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect
from wsh1 import H1WebSocketClient, send_until_stalled
from wsh2 import H2WebSocketClient, PerMessageDeflate, raw_frame

from nghttp2py import ServerSettings, Timeouts

# What the app saw, per test: (path, message or note).
seen: list[tuple[str, object]] = []
# Set by a test to let a waiting app go on.
release = threading.Event()


async def app(scope, receive, send):
    """An ASGI app whose behaviour is chosen by the path of the WebSocket it is opened on."""
    if scope["type"] == "lifespan":
        message = await receive()
        scope["state"]["motto"] = "from lifespan"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain " + scope["raw_path"]})
        return
    path = scope["path"]
    connect = await receive()
    seen.append((path, connect))
    if path.startswith("/scope"):
        await send({"type": "websocket.accept"})
        shown = {key: value for key, value in scope.items() if key != "asgi"}
        shown["asgi"] = dict(scope["asgi"])
        shown["headers"] = [[name.decode(), value.decode()] for name, value in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode()
        shown["query_string"] = scope["query_string"].decode()
        shown["extensions"] = sorted(scope["extensions"])
        await send({"type": "websocket.send", "text": json.dumps(shown)})
        seen.append((path, await receive()))
    elif path.startswith("/echo"):
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept",
                    "subprotocol": offered[-1] if offered else None,
                    "headers": [(b"x-accepted", b"yes"), (b"X-Mixed-Case", b"ok")]})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                seen.append((path, message))
                return
            if message["text"] == "close please":
                await send({"type": "websocket.close", "code": 4000, "reason": "asked to"})
                continue
            seen.append((path, message))
            await send({"type": "websocket.send", "bytes": message["bytes"],
                        "text": message["text"]})
    elif path == "/forbidden":
        await send({"type": "websocket.close", "code": 1008})
        seen.append((path, await receive()))
    elif path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]})
        await send({"type": "websocket.http.response.body", "body": b"not ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"you"})
    elif path == "/raise-before":
        raise RuntimeError("failing before accept")
    elif path == "/raise-after":
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("failing after accept")
    elif path == "/return-before":
        return
    elif path == "/return-after":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})
    elif path == "/wrong-subprotocol":
        await send({"type": "websocket.accept", "subprotocol": "never-offered"})
    elif path == "/wait":
        # Accepts, then does not receive until the test says so.
        await send({"type": "websocket.accept"})
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": str(len(message["bytes"]))})
        seen.append((path, message))
    elif path == "/accept-later":
        # Asks for the next message before accepting: it comes once a task accepts.
        async def accept_soon():
            await asyncio.sleep(0.1)
            seen.append((path, "accepting"))
            await send({"type": "websocket.accept"})

        task = asyncio.get_running_loop().create_task(accept_soon())
        message = await receive()
        seen.append((path, message))
        await task
        await send({"type": "websocket.send", "text": message["text"]})
        seen.append((path, await receive()))
    elif path == "/flood":
        await send({"type": "websocket.accept"})
        for i in range(int(scope["query_string"] or b"100")):
            await send({"type": "websocket.send", "bytes": b"m" * 16384})
            seen.append((path, i))
        seen.append((path, "done"))
    elif path == "/send-after-disconnect":
        await send({"type": "websocket.accept"})
        message = await receive()
        seen.append((path, message))
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            seen.append((path, type(exc).__name__))
            raise


@pytest.fixture
def served(serve_app):
    seen.clear()
    release.clear()
    server = serve_app(app)
    yield server
    release.set()


def connector():
    """``connect(port, protocol="2", **options)`` for the test; closed after it."""
    opened: list = []

    def connect(port: int, protocol: str = "2", **kwargs):
        client_class = H2WebSocketClient if protocol == "2" else H1WebSocketClient
        opened.append(client_class(port, **kwargs))
        return opened[-1]

    return opened, connect


@pytest.fixture(params=["2", "1.1"], ids=["h2", "h1"])
def client(request):
    """A WebSocket client over HTTP/2 and, in a second run, over HTTP/1.1."""
    opened, connect = connector()
    yield lambda port, **kwargs: connect(port, request.param, **kwargs)
    for c in opened:
        c.close()


@pytest.fixture
def h2client():
    """A WebSocket client over HTTP/2 only (stream windows, requests beside WebSockets)."""
    opened, connect = connector()
    yield connect
    for c in opened:
        c.close()


def http_version(c) -> str:
    return "2" if isinstance(c, H2WebSocketClient) else "1.1"


def opened(c) -> int:
    """The status that accepts a WebSocket: 200 on HTTP/2, 101 on HTTP/1.1."""
    return 200 if isinstance(c, H2WebSocketClient) else 101


def seen_on(path: str, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [item for where, item in seen if where == path]
        if found and (found[-1] == "done" or not isinstance(found[-1], int)):
            return found
        time.sleep(0.01)
    return [item for where, item in seen if where == path]


def wait_seen(path: str, predicate, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [item for where, item in seen if where == path]
        if predicate(found):
            return found
        time.sleep(0.01)
    raise AssertionError(f"not seen on {path}: {seen}")


def server_closes(ws):
    """The server's close frame, answered as RFC 6455 says; then its side of the stream ends."""
    ws.client.wait(lambda: ws.closed is not None)
    closed = ws.closed
    if not ws.local_ended:  # (a failed WebSocket ends its side at once: so did the client)
        ws.close(closed.code or 1000)
    ws.client.wait(lambda: ws.ended)
    return closed


# -- the scope and the messages ----------------------------------------------------------


def test_scope_has_every_field_of_the_spec(served, client):
    c = client(served.port)
    ws = c.open("/scope%20x?a=1&b=%20", subprotocols=("one", "two"),
                extra=(("x-custom", "A"), ("x-custom", "B")))
    assert ws.status == opened(c)
    scope = json.loads(ws.receive()[0])
    # Exactly the keys of asgiref's WebSocketScope (the spec's own types).
    assert WebSocketScope.__required_keys__ <= set(scope) <= (
        WebSocketScope.__required_keys__ | WebSocketScope.__optional_keys__)
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == http_version(c)
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope x"
    assert scope["raw_path"] == "/scope%20x"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["headers"][0] == ["host", f"127.0.0.1:{served.port}"]
    assert ["sec-websocket-version", "13"] in scope["headers"]
    assert [value for name, value in scope["headers"] if name == "x-custom"] == ["A", "B"]
    assert not any(name.startswith(":") for name, _ in scope["headers"])
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", served.port]
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["state"] == {"motto": "from lifespan"}
    assert scope["extensions"] == ["websocket.http.response"]
    assert "method" not in scope
    assert seen_on("/scope%20x".replace("%20", " "))[0] == {"type": "websocket.connect"}
    ws.close(1000)
    assert ws.wait_closed().code == 1000


def test_scope_over_tls_is_wss_with_the_tls_extension(serve_app, client, server_ssl_context):
    seen.clear()
    server = serve_app(app, ssl=server_ssl_context)
    c = client(server.port, tls=True)
    ws = c.open("/scope")
    scope = json.loads(ws.receive()[0])
    assert scope["scheme"] == "wss"
    assert scope["extensions"] == ["tls", "websocket.http.response"]
    ws.close()
    ws.wait_closed()


def test_proxy_headers_make_the_scheme_wss(serve_app, client):
    seen.clear()
    server = serve_app(app, proxy_headers=True)
    c = client(server.port)
    ws = c.open("/scope", extra=(("x-forwarded-proto", "https"),
                                 ("x-forwarded-for", "192.0.2.7")))
    scope = json.loads(ws.receive()[0])
    assert scope["scheme"] == "wss"
    assert scope["client"] == ["192.0.2.7", 0]
    ws.close()
    ws.wait_closed()


def test_echo_text_and_bytes_with_subprotocol_and_headers(served, client):
    c = client(served.port)
    ws = c.open("/echo", subprotocols=("chat", "superchat"))
    assert ws.status == opened(c)
    assert ws.headers["sec-websocket-protocol"] == "superchat"
    assert ws.headers["x-accepted"] == "yes"
    assert ws.headers["x-mixed-case"] == "ok"  # names lower-cased for the app
    ws.send("héllo")
    ws.send(b"\x00\x01binary")
    ws.send(b"")
    assert ws.receive(3) == ["héllo", b"\x00\x01binary", b""]
    received = seen_on("/echo")
    assert all(set(message) == WebSocketReceiveEvent.__required_keys__
               for message in received[1:])
    assert received[1:] == [
        {"type": "websocket.receive", "bytes": None, "text": "héllo"},
        {"type": "websocket.receive", "bytes": b"\x00\x01binary", "text": None},
        {"type": "websocket.receive", "bytes": b"", "text": None}]
    ws.close(4321, "done here")
    assert ws.wait_closed().code == 4321
    disconnect = wait_seen("/echo",
                           lambda found: found[-1]["type"] == "websocket.disconnect")[-1]
    assert set(disconnect) == WebSocketDisconnectEvent.__required_keys__
    assert disconnect == {"type": "websocket.disconnect", "code": 4321, "reason": "done here"}


def test_app_closes_with_code_and_reason(served, client):
    c = client(served.port)
    ws = c.open("/echo")
    assert "sec-websocket-protocol" not in ws.headers
    ws.send("close please")
    closed = server_closes(ws)
    assert (closed.code, closed.reason) == (4000, "asked to")
    # The app's receive() gets the disconnect once the closing handshake is done.
    assert wait_seen("/echo", lambda found: found[-1]["type"] == "websocket.disconnect")[-1] \
        == {"type": "websocket.disconnect", "code": 4000, "reason": "asked to"}


def test_a_close_frame_without_a_code_is_1005(served, client):
    c = client(served.port)
    ws = c.open("/echo")
    ws.send_raw(b"\x88\x80" + b"\x00\x00\x00\x00")  # masked, empty close frame
    ws.wait_closed()
    assert wait_seen("/echo", lambda found: found[-1]["type"] == "websocket.disconnect")[-1] \
        == {"type": "websocket.disconnect", "code": 1005, "reason": ""}


def test_receive_before_accept_waits_for_the_accept(served, client):
    c = client(served.port)
    ws = c.open("/accept-later", wait=False)
    c.wait(lambda: ws.status is not None)
    ws.send("first")
    assert ws.receive() == ["first"]
    found = seen_on("/accept-later")
    assert found[:3] == [{"type": "websocket.connect"}, "accepting",
                         {"type": "websocket.receive", "bytes": None, "text": "first"}]
    ws.close()
    ws.wait_closed()


def test_frames_pipelined_behind_the_upgrade_reach_the_app(served):
    """HTTP/1.1: frames sent before the 101 wait for the app's accept, none lost."""
    c = H1WebSocketClient(served.port)
    try:
        frames = b"".join(raw_frame(0x1, f"m{i}".encode()) for i in range(20))
        ws = c.open("/echo", after=frames)
        assert ws.status == 101
        assert ws.receive(20) == [f"m{i}" for i in range(20)]
    finally:
        c.close()


def test_permessage_deflate_under_asgi(served, client):
    c = client(served.port)
    ws = c.open("/echo", deflate=PerMessageDeflate())
    assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate")
    big = "compress me " * 1000
    ws.send(big)
    assert ws.receive() == [big]
    ws.close()
    ws.wait_closed()


# -- refusals ------------------------------------------------------------------------------


def test_close_before_accept_is_403(served, client):
    c = client(served.port)
    ws = c.open("/forbidden")
    assert ws.status == 403
    # receive() after the refusal: the WebSocket never opened.
    assert wait_seen("/forbidden", lambda found: len(found) == 2)[1] == \
        {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_deny_with_an_http_response(served, client):
    c = client(served.port)
    ws = c.open("/deny")
    assert ws.status == 401
    assert ws.headers["x-denied"] == "yes"
    c.wait(lambda: ws.received_bytes >= len(b"not you"))
    assert ws.received_bytes == len(b"not you")


def test_an_invalid_handshake_is_refused_without_the_app(served, h2client):
    c = h2client(served.port)
    ws = c.open("/echo", version="8")
    assert ws.status == 426
    assert ws.headers["sec-websocket-version"] == "13"
    time.sleep(0.1)
    assert seen_on("/echo", timeout=0.1) == []


def test_ordinary_requests_still_get_the_http_scope(served, h2client):
    c = h2client(served.port)
    stream_id = c.get("/plain")
    c.wait(lambda: c.responses[stream_id]["ended"])
    assert c.responses[stream_id]["body"] == b"plain /plain"


# -- apps that fail or return ----------------------------------------------------------------


def test_app_raising_before_accept_is_a_500(served, client, log_records):
    c = client(served.port)
    ws = c.open("/raise-before")
    assert ws.status == 500
    assert any("failing before accept" in str(r.exc_info[1]) for r in log_records.records
               if r.exc_info)


def test_app_raising_after_accept_closes_1011(served, client, log_records):
    c = client(served.port)
    ws = c.open("/raise-after")
    assert ws.status == opened(c)
    ws.send("go")
    assert server_closes(ws).code == 1011
    assert any("failing after accept" in str(r.exc_info[1]) for r in log_records.records
               if r.exc_info)


def test_app_returning_before_accept_is_a_500(served, client, log_records):
    c = client(served.port)
    ws = c.open("/return-before")
    assert ws.status == 500
    assert any("without accepting or refusing" in str(r.exc_info[1])
               for r in log_records.records if r.exc_info)


def test_app_returning_after_accept_closes_1000(served, client):
    c = client(served.port)
    ws = c.open("/return-after")
    assert ws.receive() == ["bye"]
    assert server_closes(ws).code == 1000


def test_accepting_a_subprotocol_not_offered_fails_the_app(served, client):
    c = client(served.port)
    ws = c.open("/wrong-subprotocol", subprotocols=("chat",))
    assert ws.status == 500


def test_disconnect_reaches_the_app_when_the_client_goes_away(served, client):
    c = client(served.port)
    ws = c.open("/echo")
    ws.send("hi")
    assert ws.receive() == ["hi"]
    c.close()  # the whole connection goes, without a close frame
    assert wait_seen("/echo", lambda found: found[-1]["type"] == "websocket.disconnect")[-1] \
        == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_send_after_the_client_left_raises_an_oserror(served, client, log_records):
    c = client(served.port)
    ws = c.open("/send-after-disconnect")
    ws.close(1001)
    ws.wait_closed()
    found = wait_seen("/send-after-disconnect", lambda found: len(found) == 3)
    assert found[1] == {"type": "websocket.disconnect", "code": 1001, "reason": ""}
    assert found[2] == "ClientDisconnected"
    time.sleep(0.1)
    # The spec: the server does not log the OSError it raised as an error.
    assert not [r for r in log_records.records if r.levelname == "ERROR"]


def test_graceful_shutdown_closes_with_1001_and_the_app_sees_it(serve_app):
    """Over HTTP/1.1 (the h2 package refuses frames after GOAWAY; the native tests check
    the 1001 on HTTP/2 with raw frames, and the adapter does not know the protocol)."""
    seen.clear()
    server = serve_app(app)
    c = H1WebSocketClient(server.port)
    ws = c.open("/echo")
    ws.send("before")
    assert ws.receive() == ["before"]
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    try:
        assert server_closes(ws).code == 1001
        assert wait_seen("/echo", lambda found: found[-1]["type"] == "websocket.disconnect"
                         )[-1]["code"] == 1001
    finally:
        stopping.join(10)
        c.close()


# -- flow control ------------------------------------------------------------------------------


def test_an_app_that_does_not_receive_stops_only_its_stream(serve_app, h2client):
    seen.clear()
    release.clear()
    server = serve_app(app, settings=ServerSettings(initial_window_size=65535))
    try:
        c = h2client(server.port)
        slow = c.open("/wait")
        fast = c.open("/echo")
        chunk = b"z" * 16000
        for _ in range(3):
            slow.send(chunk)
        c.wait(lambda: c.conn.local_flow_control_window(slow.stream_id) < 20000)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            c.read_once(0.05)
        # Nothing received by the app: no more window on that stream...
        assert c.conn.local_flow_control_window(slow.stream_id) < 20000
        # ... while another WebSocket and a request on the connection go on.
        for _ in range(30):
            fast.send(chunk)
            assert fast.receive() == [chunk]
        stream_id = c.get("/plain")
        c.wait(lambda: c.responses[stream_id]["ended"])
        release.set()
        for _ in range(5):
            slow.send(chunk)
        assert slow.receive(8) == ["16000"] * 8
    finally:
        release.set()


def test_a_quiet_websocket_is_not_a_slow_request_body(serve_app, h2client):
    """The minimum-rate guard is for request bodies: a WebSocket may stay silent."""
    seen.clear()
    server = serve_app(app, timeouts=Timeouts(request_header=0.2, min_rate=100))
    c = h2client(server.port)
    ws = c.open("/echo")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        c.read_once(0.05)
    ws.send("still here")
    assert ws.receive() == ["still here"]


def test_http1_an_app_that_does_not_receive_stops_reading_only_its_socket(served):
    """Over HTTP/1.1 the server stops reading that WebSocket's connection; the client's
    sends stall in the kernel's buffers, while another WebSocket goes on."""
    c = H1WebSocketClient(served.port)
    try:
        slow, fast = c.open("/wait"), c.open("/echo")
        frame, total = raw_frame(0x2, b"z" * 16000), 2000  # 32 MB
        sent, sender = send_until_stalled(lambda: slow.send_raw(frame), total)
        assert len(sent) < total // 2, len(sent)
        for n in range(20):
            fast.send(f"still going {n}")
            assert fast.receive() == [f"still going {n}"]
        release.set()
        assert slow.receive(total) == ["16000"] * total
        sender.join(10)
        assert len(sent) == total
    finally:
        release.set()
        c.close()


def test_http1_a_client_that_does_not_read_pauses_send(served):
    c = H1WebSocketClient(served.port)
    try:
        ws = c.open("/flood?1000")  # 16 MB
        time.sleep(1.0)
        stalled = len(seen_on("/flood", timeout=0))
        assert stalled < 500, stalled  # the kernel's buffers and write_limit: a fraction
        c.wait(lambda: len(ws.messages) == 1000, timeout=30)
        assert seen_on("/flood")[-1] == "done"
    finally:
        c.close()


def test_a_client_that_does_not_read_pauses_send(served, h2client):
    c = h2client(served.port, window=65535, auto_window=False)
    ws = c.open("/flood")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        c.read_once(0.05)
    stalled = len(seen_on("/flood", timeout=0))
    assert stalled < 10, stalled  # 64 KiB window + 64 KiB write_limit, not 1.6 MB
    # Reading (acknowledging) lets it go on to the end.
    acked = 0
    deadline = time.monotonic() + 10
    while ws.received_bytes < 100 * 16388 and time.monotonic() < deadline:
        c.read_once(0.05)
        c.acknowledge(ws.stream_id, ws.received_bytes - acked)
        acked = ws.received_bytes
    assert seen_on("/flood")[-1] == "done"
    assert len(ws.messages) == 100


# -- real apps from the command line and frameworks ------------------------------------------


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


def test_seed_quart_echo_over_http2_from_the_command_line(program, certificate, h2client):
    """Seed 001: ``hypercorn --certfile cert.pem --keyfile key.pem ws_run:app``, our name."""
    site = program(["-m", "nghttp2py", "--certfile", str(certificate[0]), "--keyfile",
                    str(certificate[1]), "ws_run:app"], env=APPS_ENV, cwd=TESTS / "apps")
    port = int(site.url.rsplit(":", 1)[1].strip("/"))
    c = h2client(port, tls=True)
    sockets = [c.open("/ws") for _ in range(3)]
    for n, ws in enumerate(sockets):
        assert ws.status == 200
        ws.send(f"text {n}")
        ws.send(bytes([n]) * 10)
    for n, ws in enumerate(sockets):
        assert ws.receive(2) == [f"text {n}", bytes([n]) * 10]
    for ws in sockets:
        ws.close()
        assert ws.wait_closed().code == 1000
    c.close()
    site.stop()


def test_websocket_options_from_the_command_line(program, h2client):
    site = program(["-m", "nghttp2py", "--ws-max-size", "1000", "--no-ws-compression",
                    "--ws-ping-interval", "0.2", "ws_run:app"], env=APPS_ENV,
                   cwd=TESTS / "apps")
    c = h2client(int(site.url.rsplit(":", 1)[1].strip("/")))
    ws = c.open("/ws", deflate=PerMessageDeflate())
    assert "sec-websocket-extensions" not in ws.headers
    c.wait(lambda: ws.pings)  # the keep-alive ping, answered by the client
    ws.send("x" * 1000)
    assert ws.receive() == ["x" * 1000]
    ws.send("x" * 1001)
    assert server_closes(ws).code == 1009
    c.close()
    site.stop()


def test_bad_websocket_options_are_one_line(program, tmp_path):
    result = subprocess.run([sys.executable, "-m", "nghttp2py", "--ws-ping-interval", "-1",
                             "ws_run:app"], cwd=TESTS / "apps", env=APPS_ENV,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "'-1' is not a positive number of seconds" in result.stderr


def websockets_client(url: str, **kwargs):
    """The websockets package's client (what Uvicorn serves with): HTTP/1.1, no proxy."""
    return ws_connect(url, proxy=None, open_timeout=10, close_timeout=5, **kwargs)


def test_seed_quart_echo_over_http1_with_the_websockets_client(program, certificate):
    """Seed 001 again, the way Uvicorn's and Hypercorn's users reach it: RFC 6455 upgrade."""
    site = program(["-m", "nghttp2py", "--certfile", str(certificate[0]), "--keyfile",
                    str(certificate[1]), "ws_run:app"], env=APPS_ENV, cwd=TESTS / "apps")
    port = int(site.url.rsplit(":", 1)[1].strip("/"))
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with websockets_client(f"wss://localhost:{port}/ws", ssl=context) as ws:
        ws.send("text")
        assert ws.recv() == "text"
        ws.send(b"\x00bytes")
        assert ws.recv() == b"\x00bytes"
    site.stop()


def test_quart_site_example_serves_its_echo_beside_the_page(program, certificate, h2client):
    site = program(["-m", "nghttp2py", "examples.quart_site.app:app"], tls=certificate,
                   env=APPS_ENV)
    c = h2client(int(site.url.rsplit(":", 1)[1].strip("/")), tls=True)
    ws = c.open("/ws")
    page = c.get("/")
    ws.send("over the page's connection")
    assert ws.receive() == ["over the page's connection"]
    c.wait(lambda: c.responses[page]["ended"])
    assert b"Served by Quart on nghttp2py" in c.responses[page]["body"]
    ws.close()
    ws.wait_closed()
    c.close()
    site.stop()


@pytest.fixture
def starlette(serve_app):
    from apps import starlette_app
    starlette_app.background_log.clear()
    server = serve_app(starlette_app.app)
    yield server, starlette_app


def test_starlette_websocket_endpoint(starlette, client):
    server, module = starlette
    c = client(server.port)
    ws = c.open("/ws", subprotocols=("json", "chat"))
    assert ws.status == opened(c)
    assert ws.headers["sec-websocket-protocol"] == "chat"
    assert ws.headers["x-served-by"] == "starlette"
    assert ws.receive() == [f"hello from lifespan over HTTP/{http_version(c)}"]
    ws.send("text")
    ws.send(b"bytes")
    assert ws.receive(2) == ["text", b"bytes"]
    ws.close(4004, "bye")
    ws.wait_closed()
    deadline = time.monotonic() + 5
    while "disconnect 4004" not in module.background_log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "disconnect 4004" in module.background_log


def test_starlette_denial_response(starlette, client):
    server, _ = starlette
    c = client(server.port)
    ws = c.open("/members")
    assert ws.status == 401
    c.wait(lambda: ws.ended or ws.reset is not None)
    assert ws.received_bytes == len(b"members only")


def test_starlette_with_the_websockets_client(starlette):
    server, module = starlette
    with websockets_client(f"ws://127.0.0.1:{server.port}/ws", subprotocols=["chat"],
                           additional_headers={"x-client": "websockets"}) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["x-served-by"] == "starlette"
        assert ws.recv() == "hello from lifespan over HTTP/1.1"
        ws.send("héllo")
        assert ws.recv() == "héllo"
    with pytest.raises(InvalidStatus) as refused:
        websockets_client(f"ws://127.0.0.1:{server.port}/members")
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b"members only"


def test_fastapi_websocket_endpoint(serve_app, client):
    from apps import fastapi_app
    server = serve_app(fastapi_app.app)
    c = client(server.port)
    ws = c.open("/rooms/lobby?token=secret")
    assert ws.status == opened(c)
    ws.send("hi all")
    assert json.loads(ws.receive()[0]) == {"room": "lobby", "text": "hi all"}
    ws.close()
    assert ws.wait_closed().code == 1000
    refused = c.open("/rooms/lobby")
    assert refused.status == 403
    with websockets_client(f"ws://127.0.0.1:{server.port}/rooms/attic?token=secret") as ws:
        ws.send("up here")
        assert json.loads(ws.recv()) == {"room": "attic", "text": "up here"}


def test_seed_quart_echo_over_h3_h2_and_http1_at_once(program, certificate):
    """Seed 001 as the article serves it, with ``--quic-bind`` beside the TCP bind: the same
    echo over HTTP/3 (RFC 9220, aioquic's client), HTTP/2 (RFC 8441) and HTTP/1.1."""
    h3client = pytest.importorskip("h3client", reason="HTTP/3 needs aioquic")
    from h3peers import free_udp_port

    quic_port = free_udp_port()
    site = program(["-m", "nghttp2py", "--certfile", str(certificate[0]), "--keyfile",
                    str(certificate[1]), "--quic-bind", f"127.0.0.1:{quic_port}",
                    "ws_run:app", "--access-log"], env=APPS_ENV, cwd=TESTS / "apps")
    port = int(site.url.rsplit(":", 1)[1].strip("/"))

    async def over_h3():
        async with h3client.h3_connect(quic_port) as client:
            return await h3client.websocket_echo(client, "/ws")
    frames, _ = asyncio.run(over_h3())
    assert frames[0] == (0x1, "héllo €") and frames[1][0] == 0x8
    c = H2WebSocketClient(port, tls=True)
    ws = c.open("/ws")
    ws.send("over h2")
    assert ws.receive() == ["over h2"]
    c.close()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with websockets_client(f"wss://localhost:{port}/ws", ssl=context) as h1:
        h1.send("over http/1.1")
        assert h1.recv() == "over http/1.1"
    site.stop()
    log = site.stderr()
    for line in ('"CONNECT /ws HTTP/3" 200', '"CONNECT /ws HTTP/2" 200', '"GET /ws HTTP/1.1" 101'):
        assert line in log, log
