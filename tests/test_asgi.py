"""The ASGI 3 adapter, message by message, against clients we did not write (httpx, h2, curl).

Each app here is a few lines of raw ASGI, so that every scope field and
every message the spec defines is checked on its own; real frameworks are in
test_asgi_frameworks.py.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import ssl
import threading

import h2.events
import httpx

from conftest import response_of, run_peer
from nghttp2py import ErrorCode
from nghttp2py.asgi import ClientDisconnected, asgi_handler

MiB = 1 << 20


def reply(status: int = 200, body: bytes = b"ok", headers=()):
    """The two messages of a whole response."""
    return [{"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"text/plain"), *headers]},
            {"type": "http.response.body", "body": body}]


async def read_body(receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        more = message["more_body"]
    return body


def h2c(client_kwargs=None) -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10, **(client_kwargs or {}))


# -- the scope ----------------------------------------------------------------------


def test_scope_has_every_field_the_spec_defines(serve):
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope)
        for message in reply():
            await send(message)

    server = serve(asgi_handler(app, server=("127.0.0.1", 1234)))
    with h2c() as client:
        response = client.get(server.url("/caf%C3%A9/a%2Fb?x=1&y=%20"),
                              headers=[("X-One", "1"), ("x-two", "2"), ("Cookie", "a=1"),
                                       ("cookie", "b=2")])
    assert response.status_code == 200 and response.http_version == "HTTP/2"
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "2"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    headers = scope["headers"]
    assert headers[0] == (b"host", f"127.0.0.1:{server.port}".encode())
    names = [name for name, _ in headers]
    assert all(name == name.lower() and isinstance(name, bytes) for name in names)
    assert not any(name.startswith(b":") for name in names)
    assert names.index(b"x-one") < names.index(b"x-two")
    assert (b"cookie", b"a=1; b=2") in headers
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ("127.0.0.1", 1234)
    assert set(scope["extensions"]) >= {"http.response.push", "http.response.trailers",
                                        "http.response.early_hint", "http.response.pathsend"}
    assert "state" not in scope


def test_root_path_prefixes_path_and_raw_path(serve):
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope)
        for message in reply():
            await send(message)

    server = serve(asgi_handler(app, root_path="/mount/"))
    with h2c() as client:
        client.get(server.url("/x"))
    assert scopes[0]["root_path"] == "/mount"
    assert scopes[0]["path"] == "/mount/x"
    assert scopes[0]["raw_path"] == b"/mount/x"


def test_each_request_gets_its_own_scope_and_state_copy(serve):
    scopes = []

    async def app(scope, receive, send):
        scope["state"]["seen"] = True
        scopes.append(scope)
        for message in reply():
            await send(message)

    handler = asgi_handler(app, state={"db": "connection"})
    server = serve(handler)
    with h2c() as client:
        client.get(server.url("/a"))
        client.get(server.url("/b"))
    assert scopes[0] is not scopes[1]
    assert scopes[0]["state"] == {"db": "connection", "seen": True}
    assert handler.asgi_config.state == {"db": "connection"}


# -- request bodies -----------------------------------------------------------------


def test_request_body_streams_whole(serve):
    async def app(scope, receive, send):
        body = await read_body(receive)
        for message in reply(body=hashlib.sha256(body).hexdigest().encode()):
            await send(message)

    server = serve(asgi_handler(app))
    data = bytes(range(256)) * (5 * MiB // 256)
    with h2c() as client:
        response = client.post(server.url("/upload"), content=data)
    assert response.text == hashlib.sha256(data).hexdigest()


def test_get_gets_one_empty_request_message(serve):
    messages = []

    async def app(scope, receive, send):
        messages.append(await receive())
        for message in reply():
            await send(message)

    server = serve(asgi_handler(app))
    with h2c() as client:
        client.get(server.url())
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


def test_client_is_held_back_while_the_app_does_not_receive(serve, h2_client):
    """The window is given back only as the app receives: the upload stalls, then resumes."""
    go = threading.Event()
    received = []

    async def app(scope, receive, send):
        await asyncio.get_running_loop().run_in_executor(None, go.wait, 10)
        body = await read_body(receive)
        received.append(len(body))
        for message in reply(body=str(len(body)).encode()):
            await send(message)

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/upload", method="POST", end_stream=False)
    data = b"x" * (8 * MiB)
    sent = client.pump(stream_id, data, quiet=0.5)
    # The stream window (1 MiB) and a little read-ahead, no more.
    assert 512 * 1024 <= sent < 2 * MiB
    go.set()
    events: list = []
    sent = client.pump(stream_id, data, sent, events=events)
    assert sent == len(data)
    body = bytes(client.response(stream_id).body)
    assert body == str(len(data)).encode()
    assert received == [len(data)]


# -- http.disconnect ------------------------------------------------------------------


def test_disconnect_when_the_client_resets(serve, h2_client):
    messages: queue.Queue = queue.Queue()

    async def app(scope, receive, send):
        while True:
            message = await receive()
            messages.put(message)
            if message["type"] == "http.disconnect":
                return

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/", method="POST", body=b"abc", end_stream=False)
    assert messages.get(timeout=5) == {"type": "http.request", "body": b"abc",
                                       "more_body": True}
    client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
    client.flush()
    assert messages.get(timeout=5) == {"type": "http.disconnect"}


def test_disconnect_only_after_the_response(serve):
    order: queue.Queue = queue.Queue()

    async def app(scope, receive, send):
        await receive()
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0.2)
        order.put(("before response", waiting.done()))
        for message in reply():
            await send(message)
        order.put(("after response", await waiting))

    server = serve(asgi_handler(app))
    with h2c() as client:
        assert client.get(server.url()).text == "ok"
    assert order.get(timeout=5) == ("before response", False)
    assert order.get(timeout=5) == ("after response", {"type": "http.disconnect"})


def test_send_after_the_client_went_raises_oserror(serve, h2_client):
    outcome: queue.Queue = queue.Queue()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"
        try:
            await send({"type": "http.response.body", "body": b"late", "more_body": True})
        except OSError as exc:
            outcome.put(exc)

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/")
    client.events_until(lambda e: isinstance(e, h2.events.DataReceived))
    client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
    client.flush()
    assert isinstance(outcome.get(timeout=5), ClientDisconnected)


# -- failures -------------------------------------------------------------------------


def test_app_raising_before_the_response_gets_500(serve, caplog):
    async def app(scope, receive, send):
        raise ValueError("broken app")

    server = serve(asgi_handler(app))
    with caplog.at_level(logging.ERROR, logger="nghttp2py"), h2c() as client:
        response = client.get(server.url())
    assert response.status_code == 500
    assert "broken app" in caplog.text


def test_app_raising_after_the_response_started_resets_the_stream(serve, h2_client):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.sleep(0.05)
        raise ValueError("broken halfway")

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/")
    events = client.response(stream_id).events
    result = response_of(events, stream_id)
    assert result.status == 200
    assert result.reset == ErrorCode.INTERNAL_ERROR


def test_app_returning_without_a_response_gets_500_and_a_log_line(serve, caplog):
    async def app(scope, receive, send):
        return None

    server = serve(asgi_handler(app))
    with caplog.at_level(logging.ERROR, logger="nghttp2py"), h2c() as client:
        assert client.get(server.url()).status_code == 500
    assert "returned without sending a response" in caplog.text


def test_bad_message_is_an_app_error(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.body", "body": b"no start"})

    server = serve(asgi_handler(app))
    with h2c() as client:
        assert client.get(server.url()).status_code == 500


# -- responses ------------------------------------------------------------------------


def test_streamed_response_with_backpressure(serve, h2_client):
    """A slow reader holds send() back: the app never gets far ahead of the client."""
    ahead = []
    chunk = b"y" * 16384

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(256):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        ahead.append(True)

    server = serve(asgi_handler(app))
    client = h2_client(server.port, window=65535)
    stream_id = client.request("/")
    first = [e for e in client.events_until(lambda e: isinstance(e, h2.events.DataReceived))
             if isinstance(e, h2.events.DataReceived)]
    assert ahead == []  # 4 MiB cannot all be queued behind a 64 KiB window
    for event in first:
        client.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
    body = bytes(client.response(stream_id).body)
    assert b"".join(e.data for e in first) + body == chunk * 256
    assert ahead == [True]


def test_uppercase_and_connection_headers_are_cleaned(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"Content-Type", b"text/plain"), (b"Connection", b"close"),
                                (b"X-Custom", b"yes")]})
        await send({"type": "http.response.body", "body": b"made"})

    server = serve(asgi_handler(app))
    with h2c() as client:
        response = client.get(server.url())
    assert response.status_code == 201
    assert response.headers["x-custom"] == "yes"
    assert "connection" not in response.headers
    assert response.text == "made"


def test_head_response_has_no_body(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    server = serve(asgi_handler(app))
    with h2c() as client:
        response = client.head(server.url())
    assert response.status_code == 200 and response.content == b""


def test_curl_gets_the_response(serve):
    async def app(scope, receive, send):
        for message in reply(body=scope["method"].encode() + b" " + scope["path"].encode()):
            await send(message)

    server = serve(asgi_handler(app))
    result = run_peer("curl", "-s", "--http2-prior-knowledge", server.url("/from-curl"))
    assert result.stdout == "GET /from-curl"


# -- extensions -----------------------------------------------------------------------


def test_trailers(serve, h2_client):
    async def app(scope, receive, send):
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"te-ignored", b"x")]})
        await send({"type": "http.response.body", "body": b"body", "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
                    "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-done", b"1")]})

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/", headers=[("te", "trailers")])
    response = client.response(stream_id)
    body, events = bytes(response.body), response.events
    assert body == b"body!"
    trailers = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert trailers and dict(trailers[0].headers) == {b"x-checksum": b"abc", b"x-done": b"1"}


def test_early_hint_comes_before_the_response(serve, h2_client):
    async def app(scope, receive, send):
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style"]})
        for message in reply():
            await send(message)

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/")
    response = client.response(stream_id)
    body, events = bytes(response.body), response.events
    informational = [e for e in events if isinstance(e, h2.events.InformationalResponseReceived)]
    assert dict(informational[0].headers)[b":status"] == b"103"
    assert dict(informational[0].headers)[b"link"] == b"</style.css>; rel=preload; as=style"
    assert body == b"ok"


def test_push_runs_the_pushed_request_through_the_app(serve, h2_client):
    async def app(scope, receive, send):
        if scope["path"] == "/style.css":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/css")]})
            await send({"type": "http.response.body", "body": b"body {}", "more_body": True})
            await send({"type": "http.response.body", "body": b" /* pushed */"})
            return
        await send({"type": "http.response.push", "path": "/style.css",
                    "headers": [(b"accept", b"text/css")]})
        for message in reply(body=b"<html>"):
            await send(message)

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/")
    events: list = []
    promised = client.events_until(lambda e: isinstance(e, h2.events.PushedStreamReceived))
    push = promised[-1]
    assert dict(push.headers)[b":path"] == b"/style.css"
    assert dict(push.headers)[b"accept"] == b"text/css"
    events.extend(promised)
    client.read_streams(events, stream_id, push.pushed_stream_id)
    assert bytes(response_of(events, push.pushed_stream_id).body) == b"body {} /* pushed */"
    assert bytes(response_of(events, stream_id).body) == b"<html>"


def test_push_to_a_client_without_push_becomes_an_early_hint(serve, h2_client):
    async def app(scope, receive, send):
        await send({"type": "http.response.push", "path": "/app.js", "headers": []})
        for message in reply():
            await send(message)

    server = serve(asgi_handler(app))
    client = h2_client(server.port, enable_push=False)
    stream_id = client.request("/")
    events = client.response(stream_id).events
    informational = [e for e in events if isinstance(e, h2.events.InformationalResponseReceived)]
    assert dict(informational[0].headers)[b"link"] == b"</app.js>; rel=preload; as=script"
    assert not any(isinstance(e, h2.events.PushedStreamReceived) for e in events)


def test_pathsend(serve, tmp_path):
    file = tmp_path / "data.bin"
    file.write_bytes(bytes(range(256)) * 4096)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend", "path": str(file)})

    server = serve(asgi_handler(app))
    with h2c() as client:
        response = client.get(server.url())
    assert response.content == file.read_bytes()
    assert response.headers["content-length"] == str(file.stat().st_size)


def test_tls_extension(serve, server_ssl_context, certificate):
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope)
        for message in reply():
            await send(message)

    server = serve(asgi_handler(app, tls=True), ssl=server_ssl_context)
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with httpx.Client(http2=True, verify=context) as client:
        response = client.get(f"https://localhost:{server.port}/")
    assert response.http_version == "HTTP/2"
    tls = scopes[0]["extensions"]["tls"]
    assert scopes[0]["scheme"] == "https"
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


def test_two_receivers_at_once_and_one_cancelled(serve):
    """A disconnect listener beside the body reader; cancelling one leaves the other waiting."""
    seen: queue.Queue = queue.Queue()

    async def app(scope, receive, send):
        body = await read_body(receive)
        listener = asyncio.ensure_future(receive())
        other = asyncio.ensure_future(receive())
        await asyncio.sleep(0.05)
        listener.cancel()
        for message in reply(body=body):
            await send(message)
        seen.put(await asyncio.wait_for(other, 5))

    server = serve(asgi_handler(app))
    with h2c() as client:
        assert client.post(server.url(), content=b"data").text == "data"
    assert seen.get(timeout=5) == {"type": "http.disconnect"}


def test_answering_before_reading_an_upload_does_not_stall_the_client(serve):
    """Once the response is whole, the rest of the body is taken (and dropped)."""
    async def app(scope, receive, send):
        for message in reply(413, b"too large"):
            await send(message)

    server = serve(asgi_handler(app))
    with h2c() as client:
        response = client.post(server.url(), content=b"x" * (5 * MiB))
    assert (response.status_code, response.text) == (413, "too large")


def test_a_pushed_response_that_fails_halfway_is_reset(serve, h2_client):
    async def app(scope, receive, send):
        if scope["path"] == "/broken.css":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise ValueError("pushed app broke")
        await send({"type": "http.response.push", "path": "/broken.css", "headers": []})
        for message in reply(body=b"<html>"):
            await send(message)

    server = serve(asgi_handler(app))
    client = h2_client(server.port)
    stream_id = client.request("/")
    events = client.events_until(lambda e: isinstance(e, h2.events.PushedStreamReceived))
    pushed_id = events[-1].pushed_stream_id
    responses = client.read_streams(events, stream_id, pushed_id)
    assert bytes(responses[stream_id].body) == b"<html>"
    assert responses[pushed_id].reset == ErrorCode.INTERNAL_ERROR
