"""Informational (1xx) responses: ``expect: 100-continue``, ``send_info`` (e.g. 103 Early
Hints) and ``push_early_hints`` for clients that disabled server push.

The ``h2`` package is the client: it reports every 1xx as an
``InformationalResponseReceived`` event, in order with the final response.
"""
from __future__ import annotations

import asyncio

import h2.events
import pytest

from conftest import curl
from nghttp2py import BaseRequestHandler, ResponseStateError

EXPECT = ("expect", "100-continue")


def informational(events, stream_id: int) -> list[tuple[str, dict]]:
    """(status, headers) of each 1xx on the stream, in order."""
    found = []
    for event in events:
        if isinstance(event, h2.events.InformationalResponseReceived) \
                and event.stream_id == stream_id:
            headers = [(k.decode(), v.decode()) for k, v in event.headers]
            found.append((dict(headers)[":status"], headers))
    return found


def event_kinds(events, stream_id: int) -> list[str]:
    return [type(e).__name__ for e in events if getattr(e, "stream_id", None) == stream_id]


def link_values(headers) -> list[str]:
    return [v for k, v in headers if k == "link"]


# -- expect: 100-continue -------------------------------------------------------------


class EchoLengthHandler(BaseRequestHandler):
    """Counts the request body; rejects /too-big (413) and /refuse (417) in on_headers."""

    seen: list = []

    def on_headers(self):
        self.received = 0
        if self.path == b"/too-big":
            self.send_response(413, body=b"too big\n")
        elif self.path == b"/refuse":
            self.send_response(417, body=b"no\n")

    def on_data(self, data):
        self.received += len(data)

    def on_request_done(self):
        EchoLengthHandler.seen.append((self.path, self.received))
        if self.path not in (b"/too-big", b"/refuse"):
            self.send_response(200, body=str(self.received).encode())


def test_expect_100_continue_gets_100_before_the_body_is_sent(serve, h2_client):
    server = serve(EchoLengthHandler)
    client = h2_client(server.port)
    stream_id = client.request("/upload", "POST", headers=[EXPECT], end_stream=False)
    # The client waits for the 100 before it sends any of the body.
    events = client.events_until(
        lambda e: isinstance(e, (h2.events.InformationalResponseReceived,
                                 h2.events.ResponseReceived)), timeout=5)
    assert informational(events, stream_id) == [("100", [(":status", "100")])]
    client.conn.send_data(stream_id, b"x" * 5000, end_stream=True)
    client.flush()
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"5000")
    assert informational(got.events, stream_id) == []  # exactly one 100


@pytest.mark.parametrize("path,status", [("/too-big", "413"), ("/refuse", "417")])
def test_final_response_in_on_headers_suppresses_the_100(serve, h2_client, path, status):
    EchoLengthHandler.seen = []
    server = serve(EchoLengthHandler)
    client = h2_client(server.port)
    stream_id = client.request(path, "POST", headers=[EXPECT], end_stream=False)
    # The client sends no body: the final response must come without a 100.
    got = client.response(stream_id, timeout=5)
    assert got.headers[":status"] == status
    assert informational(got.events, stream_id) == []
    assert EchoLengthHandler.seen == []  # the request never completed


def test_expect_without_a_body_gets_no_100(serve, h2_client):
    server = serve(EchoLengthHandler)
    client = h2_client(server.port)
    stream_id = client.request("/empty", "POST", headers=[EXPECT])
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"0")
    assert informational(got.events, stream_id) == []


def test_expect_100_continue_via_curl(serve, tmp_path):
    server = serve(EchoLengthHandler)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"y" * 200_000)
    got = curl("--http2-prior-knowledge", "-H", "Expect: 100-continue",
               "--data-binary", f"@{upload}", server.url("/upload"))
    assert (got.informational, got.status, got.body) == ([100], 200, b"200000")


class AsyncRefusingHandler(BaseRequestHandler):
    """An async on_headers that decides (after an await) to refuse the upload."""

    received: list = []

    async def on_headers(self):
        await asyncio.sleep(0.2)
        self.send_response(417, body=b"refused after a look-up\n")

    def on_data(self, data):
        AsyncRefusingHandler.received.append(len(data))


def test_async_on_headers_refusal_suppresses_the_100(serve, h2_client):
    """``100`` is sent after on_headers, and an async on_headers has not finished until
    its coroutine has: a refusal made after an await must not be preceded by a 100
    (which would invite the client to upload the body it is about to refuse)."""
    server = serve(AsyncRefusingHandler)
    client = h2_client(server.port)
    stream_id = client.request("/upload", "POST", headers=[EXPECT], end_stream=False)
    got = client.response(stream_id, timeout=5)
    assert got.headers[":status"] == "417"
    assert informational(got.events, stream_id) == []


class AsyncAcceptingHandler(EchoLengthHandler):
    async def on_headers(self):
        self.received = 0
        await asyncio.sleep(0.05)


def test_async_on_headers_accepting_gets_100(serve, h2_client):
    server = serve(AsyncAcceptingHandler)
    client = h2_client(server.port)
    stream_id = client.request("/upload", "POST", headers=[EXPECT], end_stream=False)
    events = client.events_until(
        lambda e: isinstance(e, (h2.events.InformationalResponseReceived,
                                 h2.events.ResponseReceived)), timeout=5)
    assert [status for status, _ in informational(events, stream_id)] == ["100"]
    client.conn.send_data(stream_id, b"z" * 1000, end_stream=True)
    client.flush()
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"1000")


# -- send_info ---------------------------------------------------------------------------


class EarlyHintsHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_info(103, [("link", "</style.css>; rel=preload; as=style")])
        self.send_info(103, [("link", "</app.js>; rel=preload; as=script")])
        self.send_response(200, [("content-type", "text/html")], b"<html></html>")


def test_send_info_103_precedes_the_final_response(serve, h2_client):
    server = serve(EarlyHintsHandler)
    client = h2_client(server.port)
    stream_id = client.request("/")
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"<html></html>")
    hints = informational(got.events, stream_id)
    assert [status for status, _ in hints] == ["103", "103"]
    assert link_values(hints[0][1]) == ["</style.css>; rel=preload; as=style"]
    assert link_values(hints[1][1]) == ["</app.js>; rel=preload; as=script"]
    kinds = event_kinds(got.events, stream_id)
    assert kinds.index("ResponseReceived") > max(
        i for i, k in enumerate(kinds) if k == "InformationalResponseReceived")


class AsyncEarlyHintsHandler(BaseRequestHandler):
    async def on_headers(self):
        self.send_info(103, [("link", "</a.css>; rel=preload; as=style")])
        await asyncio.sleep(0.1)
        self.send_response(200, body=b"after hints")


def test_send_info_from_an_async_hook_arrives_before_the_response(serve, h2_client):
    server = serve(AsyncEarlyHintsHandler)
    client = h2_client(server.port)
    stream_id = client.request("/")
    # The 103 is on the wire while the handler still awaits.
    first = client.events_until(
        lambda e: isinstance(e, (h2.events.InformationalResponseReceived,
                                 h2.events.ResponseReceived)), timeout=5)
    assert [s for s, _ in informational(first, stream_id)] == ["103"]
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"after hints")


class MisuseHandler(BaseRequestHandler):
    """Tries one misuse (named by the path) and reports the exception in the body."""

    def on_headers(self):
        path = self.path.decode()
        outcome = "no error"
        try:
            if path == "/info-101":
                self.send_info(101)
            elif path == "/info-200":
                self.send_info(200)
            elif path == "/info-99":
                self.send_info(99)
            elif path == "/response-100":
                self.send_response(100)
            elif path == "/response-103":
                self.send_response(103)
        except Exception as exc:  # reported to the client
            outcome = type(exc).__name__
        self.send_response(200, body=outcome.encode())


@pytest.mark.parametrize("path,error", [
    ("/info-101", "ValueError"), ("/info-200", "ValueError"), ("/info-99", "ValueError"),
    ("/response-100", "ValueError"), ("/response-103", "ValueError"),
])
def test_invalid_informational_statuses_raise(serve, h2_client, path, error):
    server = serve(MisuseHandler)
    client = h2_client(server.port)
    stream_id = client.request(path)
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body.decode()) == ("200", error)
    assert informational(got.events, stream_id) == []


class InfoAfterResponseHandler(BaseRequestHandler):
    errors: list = []

    def on_headers(self):
        self.send_response(200, body=b"final")
        try:
            self.send_info(103, [("link", "</x.css>; rel=preload")])
        except ResponseStateError as exc:
            InfoAfterResponseHandler.errors.append(exc)


def test_send_info_after_send_response_raises_response_state_error(serve, h2_client):
    InfoAfterResponseHandler.errors = []
    server = serve(InfoAfterResponseHandler)
    client = h2_client(server.port)
    stream_id = client.request("/")
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"final")
    assert informational(got.events, stream_id) == []
    assert len(InfoAfterResponseHandler.errors) == 1


# -- push_early_hints ---------------------------------------------------------------------


class PushingHandler(BaseRequestHandler):
    results: list = []

    def on_headers(self):
        pushed = [self.push(path, body=b"asset")
                  for path in ("/style.css", "/app.js", "/font.woff2", "/data.bin")]
        PushingHandler.results.append(pushed)
        self.send_response(200, [("content-type", "text/html")], b"<html></html>")


EXPECTED_LINKS = [
    "</style.css>; rel=preload; as=style",
    "</app.js>; rel=preload; as=script",
    "</font.woff2>; rel=preload; as=font; crossorigin",
    "</data.bin>; rel=preload",
]


def test_push_early_hints_when_the_client_disabled_push(serve, h2_client):
    PushingHandler.results = []
    server = serve(PushingHandler, push_early_hints=True)
    client = h2_client(server.port, enable_push=False)
    stream_id = client.request("/")
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"<html></html>")
    assert PushingHandler.results == [[False, False, False, False]]
    hints = informational(got.events, stream_id)
    assert [status for status, _ in hints] == ["103"]
    assert link_values(hints[0][1]) == EXPECTED_LINKS
    assert not [e for e in got.events if isinstance(e, h2.events.PushedStreamReceived)]
    kinds = event_kinds(got.events, stream_id)
    assert kinds.index("InformationalResponseReceived") < kinds.index("ResponseReceived")


@pytest.mark.parametrize("options, expected_hints", [
    ({}, [EXPECTED_LINKS]),  # browsers refuse push: by default they get preload links
    ({"push_early_hints": False}, []),
])
def test_early_hints_are_on_by_default(serve, h2_client, options, expected_hints):
    PushingHandler.results = []
    server = serve(PushingHandler, **options)
    client = h2_client(server.port, enable_push=False)
    stream_id = client.request("/")
    got = client.response(stream_id)
    assert got.headers[":status"] == "200"
    assert PushingHandler.results == [[False, False, False, False]]
    hints = informational(got.events, stream_id)
    assert [status for status, _ in hints] == ["103"] * len(expected_hints)
    assert [link_values(fields) for _, fields in hints] == expected_hints


def test_push_early_hints_still_pushes_when_the_client_allows_push(serve, h2_client):
    PushingHandler.results = []
    server = serve(PushingHandler, push_early_hints=True)
    client = h2_client(server.port, enable_push=True)
    stream_id = client.request("/")
    got = client.response(stream_id)
    assert got.headers[":status"] == "200"
    assert PushingHandler.results == [[True, True, True, True]]
    assert informational(got.events, stream_id) == []
    promised = [e for e in got.events if isinstance(e, h2.events.PushedStreamReceived)]
    assert [dict(e.headers)[b":path"] for e in promised] == [
        b"/style.css", b"/app.js", b"/font.woff2", b"/data.bin"]


class NoPushHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_response(200, body=b"plain")


def test_push_early_hints_no_103_when_nothing_pushed(serve, h2_client):
    server = serve(NoPushHandler, push_early_hints=True)
    client = h2_client(server.port, enable_push=False)
    stream_id = client.request("/")
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"plain")
    assert informational(got.events, stream_id) == []
