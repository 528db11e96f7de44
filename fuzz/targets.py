"""Fuzz targets: the server's receive path (one Session per input) and HDInflater.

Each target takes the fuzzer's bytes and must never raise, crash or leak a
stream: whatever a client sends, the engine answers with frames or closes.
``seeds()`` gives valid traffic for a target to start from. fuzz/run.py runs a
target under atheris; tests/test_fuzz_targets.py runs each one for a bounded
time and replays every input in fuzz/regressions/.
"""
from __future__ import annotations

import asyncio
import logging
import struct

from nghttp2py import BaseRequestHandler, HDInflater, ServerSettings
from nghttp2py._nghttp2 import Session
from nghttp2py.errors import HTTP2Error

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SETTINGS = ServerSettings(max_header_list_size=8192).as_dict()
_loop = asyncio.new_event_loop()

logging.getLogger("nghttp2py").setLevel(logging.CRITICAL)


class Transport:
    """Takes what the Session writes; closing is remembered, nothing is sent."""

    def __init__(self) -> None:
        self.closing = False
        self.written = 0

    def write(self, data) -> None:
        self.written += len(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Handler(BaseRequestHandler):
    """Exercises the response paths: pushes, trailers, 1xx, bodies, early answers."""

    live = 0

    def __init__(self, *args) -> None:
        super().__init__(*args)
        Handler.live += 1

    def on_headers(self) -> None:
        path = self.path or b""
        if path.startswith(b"/push"):
            self.push("/pushed.css", body=b"p" * 100)
        if path.startswith(b"/early"):
            self.send_response(200, body=b"early")

    def on_data(self, data: bytes) -> None:
        if len(data) > 1000:
            self.pause_reading()

    def on_request_done(self) -> None:
        if not self.reading_paused:
            self.send_response(200, [("x-len", "1")], b"r" * 3000, trailers=[("x-t", "1")])

    def on_close(self, error_code) -> None:
        Handler.live -= 1


def _run_ready_callbacks() -> None:
    for _ in range(3):
        _loop.call_soon(_loop.stop)
        _loop.run_forever()


def session_target(data: bytes) -> None:
    """Feed ``data`` after the preface, split where its first bytes say."""
    transport = Transport()
    session = Session(transport, Handler, _SETTINGS, loop=_loop)
    body = PREFACE + data[1:] if not data or data[0] & 0x80 == 0 else data[1:]
    chunk = 1 + (data[0] & 0x7f) * 97 if data else len(body)
    for start in range(0, len(body), chunk):
        if transport.closing:
            break
        piece = body[start:start + chunk]
        session.feed(piece, len(piece))
        _run_ready_callbacks()
    session.connection_lost()
    _run_ready_callbacks()
    if Handler.live:
        raise AssertionError(f"{Handler.live} handlers left after the connection closed")


def inflater_target(data: bytes) -> None:
    inflater = HDInflater()
    for start in range(0, len(data), 64):
        try:
            inflater.inflate(data[start:start + 64])
        except HTTP2Error:
            return


def _frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((type_, flags)) \
        + struct.pack(">I", stream_id) + payload


def seeds(target: str) -> list[bytes]:
    """Valid traffic to start from (for the session target: after the preface)."""
    import hpack

    encoder = hpack.Encoder()

    def block(path: str, method: str = "GET", extra=()) -> bytes:
        return encoder.encode([(":method", method), (":scheme", "https"),
                               (":authority", "fuzz.test"), (":path", path), *extra])

    if target == "inflater":
        return [block("/"), block("/a", extra=[("cookie", "a=1"), ("x-y", "z" * 50)])]
    settings = _frame(4, 0, 0, struct.pack(">HI", 4, 1 << 20))
    return [b"\x00" + settings + _frame(1, 0x5, 1, block("/")),
            b"\x05" + settings + _frame(1, 0x4, 1, block("/up", "POST"))
            + _frame(0, 0, 1, b"d" * 2000) + _frame(1, 0x5, 1, block("/t", extra=[("x", "t")])),
            b"\x10" + settings + _frame(1, 0x5, 1, block("/push"))
            + _frame(8, 0, 0, struct.pack(">I", 1000)) + _frame(6, 0, 0, b"pingping")
            + _frame(1, 0x1, 3, block("/early")[:4])
            + _frame(9, 0x4, 3, block("/early")[4:]) + _frame(3, 0, 3, struct.pack(">I", 8)),
            b"\x01" + settings + _frame(1, 0x25, 1, struct.pack(">IB", 0, 15) + block("/p"))
            + _frame(2, 0, 3, struct.pack(">IB", 1, 200)) + _frame(0x10, 0, 0, b"\0\0\0\1u=1")]


TARGETS = {"session": session_target, "inflater": inflater_target}
