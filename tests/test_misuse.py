"""Misuse of the handler API raises in the caller, and nothing invalid reaches the wire.

Each case runs inside a real handler hook: the handler catches the exception,
records it and then sends a normal response. The ``h2`` package (which
validates every header block it receives) must see exactly that normal
response: no stray header, no extra HEADERS or PUSH_PROMISE, no reset, no GOAWAY.
"""
from __future__ import annotations

import time

import pytest

from nghttp2py import (
    DATA_DEFERRED,
    DATA_EOF,
    BaseRequestHandler,
    InvalidHeaderError,
    ResponseStateError,
)

NORMAL_BODY = b"normal response"


def send_normal(h):
    h.send_response(200, headers=[("x-normal", "yes")], body=NORMAL_BODY)


def second_response(h):
    send_normal(h)
    h.send_response(500, body=b"second")


def second_response_no_body(h):
    send_normal(h)
    h.send_response()


def second_response_same(h):
    send_normal(h)
    h.send_response(200, body=b"again")


def push_after_response(h):
    send_normal(h)
    h.push("/pushed.css", body=b"late push")


def header_case(headers, body=b"x"):
    return lambda h: h.send_response(200, headers=headers, body=body)


def status_case(status):
    return lambda h: h.send_response(status, body=b"x")


def body_case(body):
    return lambda h: h.send_response(200, body=body)


def push_case(**kwargs):
    def case(h):
        kwargs.setdefault("path", "/pushed")
        h.push(**kwargs)
    return case


# (id, misuse(handler), expected exception class, responds itself first)
CASES = [
    ("second send_response", second_response, ResponseStateError, True),
    ("second send_response without body", second_response_no_body, ResponseStateError, True),
    ("second send_response same args", second_response_same, ResponseStateError, True),
    ("push after send_response", push_after_response, ResponseStateError, True),
    *[(f"status {s}", status_case(s), ValueError, False) for s in (0, 99, 600, 999, -200)],
    *[(f"connection-specific {n}", header_case([(n, "v")]), InvalidHeaderError, False)
      for n in ("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                "upgrade", "te")],
    ("connection-specific as bytes", header_case([(b"transfer-encoding", b"chunked")]),
     InvalidHeaderError, False),
    ("upper-case Connection", header_case([("Connection", "close")]), InvalidHeaderError, False),
    *[(f"upper-case name {n!r}", header_case([(n, "v")]), InvalidHeaderError, False)
      for n in ("Content-Type", "X-Custom", b"X-Bytes", "x-mIxed")],
    *[(f"pseudo-header {n}", header_case([(n, "v")]), InvalidHeaderError, False)
      for n in (":status", ":path", ":custom", b":authority")],
    ("colon inside name", header_case([("x:y", "v")]), InvalidHeaderError, False),
    ("space in name", header_case([("x y", "v")]), InvalidHeaderError, False),
    ("empty name", header_case([("", "v")]), InvalidHeaderError, False),
    *[(f"value with {label}", header_case([("x-bad", value)]), InvalidHeaderError, False)
      for label, value in (("CR", "a\rb"), ("LF", "a\nb"), ("CRLF", "a\r\nset-cookie: x=1"),
                           ("NUL", "a\x00b"), ("bytes CR", b"a\rb"), ("bytes LF", b"a\nb"),
                           ("bytes NUL", b"a\x00b"), ("trailing LF", "value\n"),
                           ("leading space", " v"), ("trailing tab", "v\t"))],
    ("bad header after good ones", header_case([("x-ok", "1"), ("x-ok2", "2"), ("X-Bad", "3")]),
     InvalidHeaderError, False),
    *[(f"non-text {label}", header_case([pair]), TypeError, False)
      for label, pair in (("int value", ("x-n", 1)), ("None value", ("x-n", None)),
                          ("int name", (1, "v")), ("None name", (None, "v")),
                          ("float value", ("x-n", 1.5)))],
    ("content-length mismatch", header_case([("content-length", "3")], body=b"four"),
     InvalidHeaderError, False),
    ("content-length without body on GET 200", header_case([("content-length", "5")], body=None),
     InvalidHeaderError, False),
    ("content-length mismatch str body", header_case([("content-length", "1")], body="€"),
     InvalidHeaderError, False),
    *[(f"body {label}", body_case(body), TypeError, False)
      for label, body in (("int", 123), ("object", object()), ("list", [b"a", b"b"]),
                          ("dict", {"a": 1}))],
    ("push POST", push_case(method="POST"), ValueError, False),
    ("push relative path", push_case(path="relative/path"), ValueError, False),
    ("push bad status", push_case(status=700), ValueError, False),
    ("push upper-case response header", push_case(headers=[("X-Bad", "1")]),
     InvalidHeaderError, False),
    ("push connection request header", push_case(request_headers=[("connection", "close")]),
     InvalidHeaderError, False),
    ("push CRLF in request header", push_case(request_headers=[("x-a", "1\r\nx-b: 2")]),
     InvalidHeaderError, False),
    ("push pseudo-header in request headers", push_case(request_headers=[(":path", "/x")]),
     InvalidHeaderError, False),
    ("push non-text header", push_case(headers=[("x-a", 5)]), TypeError, False),
]


@pytest.fixture
def misuse_server(serve):
    """A server whose handler runs ``Handler.case`` in on_request_done and records the outcome."""
    class Handler(BaseRequestHandler):
        case = None
        responds_first = False
        outcomes: list = []

        def on_request_done(self):
            try:
                type(self).case(self)
            except BaseException as exc:  # noqa: BLE001 - recorded for the test to judge
                type(self).outcomes.append(exc)
            else:
                type(self).outcomes.append(None)
            if not type(self).responds_first:
                send_normal(self)

    return Handler, serve(Handler)


def assert_only_normal_response(response) -> None:
    """``response`` (a conftest.Response) is the normal one, and nothing else came: no
    reset, GOAWAY, push, second HEADERS or trailers (h2 validates every header it gets)."""
    import h2.events

    kinds = [type(e) for e in response.events]
    assert h2.events.ConnectionTerminated not in kinds
    assert h2.events.StreamReset not in kinds
    assert h2.events.PushedStreamReceived not in kinds
    assert kinds.count(h2.events.ResponseReceived) == 1
    assert [k for k, _ in response.fields] == [
        ":status", "x-normal", "content-length", "date", "server"]
    assert response.status == 200
    assert response.headers["content-length"] == str(len(NORMAL_BODY))
    assert response.body == NORMAL_BODY and response.ended
    assert response.trailers is None


@pytest.mark.parametrize("name, case, expected, responds_first", CASES,
                         ids=[c[0] for c in CASES])
def test_misuse_raises_in_caller_and_nothing_invalid_is_sent(
        misuse_server, h2_client, name, case, expected, responds_first):
    handler, server = misuse_server
    handler.case = staticmethod(case)
    handler.responds_first = responds_first
    client = h2_client(server.port)
    sid = client.request("/misuse")
    assert_only_normal_response(client.response(sid, timeout=5))

    assert len(handler.outcomes) == 1
    exc = handler.outcomes[0]
    assert exc is not None, f"{name}: no exception raised"
    assert type(exc) is expected or (expected is ValueError and isinstance(exc, ValueError)), \
        f"{name}: {type(exc).__name__}: {exc}"
    assert str(exc)  # says what is wrong

    # The connection is unharmed: one more request on it, then a clean stream end.
    handler.case = staticmethod(lambda h: None)
    handler.responds_first = False
    sid2 = client.request("/after")
    assert_only_normal_response(client.response(sid2, timeout=5))


def test_invalid_header_error_is_a_value_error():
    assert issubclass(InvalidHeaderError, ValueError)
    assert issubclass(ResponseStateError, RuntimeError)


def test_misuse_inside_on_headers_and_on_data(serve, h2_client):
    """The same checks hold in every hook, not only on_request_done."""
    seen: list = []

    class Handler(BaseRequestHandler):
        def on_headers(self):
            try:
                self.send_response(200, headers=[("Upgrade", "h2c")])
            except InvalidHeaderError as exc:
                seen.append(("on_headers", type(exc)))

        def on_data(self, data):
            try:
                self.send_response(1000)
            except ValueError as exc:
                seen.append(("on_data", type(exc)))

        def on_request_done(self):
            send_normal(self)
            try:
                send_normal(self)
            except ResponseStateError as exc:
                seen.append(("on_request_done", type(exc)))

    server = serve(Handler)
    client = h2_client(server.port)
    sid = client.request("/", method="POST", body=b"data")
    assert_only_normal_response(client.response(sid, timeout=5))
    assert seen == [("on_headers", InvalidHeaderError), ("on_data", ValueError),
                    ("on_request_done", ResponseStateError)]


def test_send_response_after_deferred_body_started(serve, h2_client):
    """A second response while the first body is still deferred: refused, first one intact."""
    import asyncio

    outcome: list = []

    class Handler(BaseRequestHandler):
        def on_request_done(self):
            loop = asyncio.get_running_loop()
            state = {"ready": False}

            def body(n):
                if not state["ready"]:
                    return None, DATA_DEFERRED
                return NORMAL_BODY, DATA_EOF

            self.send_response(200, headers=[("x-normal", "yes"),
                                             ("content-length", str(len(NORMAL_BODY)))],
                               body=body)

            def later():
                try:
                    self.send_response(500, body=b"replaced")
                except ResponseStateError as exc:
                    outcome.append(exc)
                state["ready"] = True
                self.resume()
            loop.call_later(0.05, later)

    server = serve(Handler)
    client = h2_client(server.port)
    sid = client.request("/")
    started = time.monotonic()
    assert_only_normal_response(client.response(sid, timeout=5))
    assert time.monotonic() - started >= 0.04
    assert len(outcome) == 1 and isinstance(outcome[0], ResponseStateError)
