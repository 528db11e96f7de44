"""GuardLimits: the frame guard's budgets, set per server (SECURITY.md, "Tuning").

Each budget is tried at a value the default lets through: the same frames get
GOAWAY ENHANCE_YOUR_CALM from a server whose GuardLimits lower it, and nothing
from one with the defaults.
"""
from __future__ import annotations

import struct

import pytest
from attacks import request_block

from nghttp2py import BaseRequestHandler, ErrorCode, GuardLimits
from rawh2 import (
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PRIORITY,
    RST_STREAM,
    ended,
    frame,
    frames_of,
    is_server_settings,
    status_of,
)


class Hello(BaseRequestHandler):
    def on_request_done(self):
        self.send_response(200, body=b"hello")


def priorities(authority: bytes) -> bytes:
    return frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 15)) * 100


def resets(authority: bytes) -> bytes:
    return b"".join(frame(HEADERS, END_HEADERS, stream_id, request_block(authority))
                    + frame(RST_STREAM, 0, stream_id, struct.pack(">I", 8))
                    for stream_id in range(3, 43, 2))


def continuations(authority: bytes) -> bytes:
    block = request_block(authority, path=b"/" + b"c" * 40)
    return (frame(HEADERS, END_STREAM, 3, block[:10]) + frame(CONTINUATION, 0, 3, block[10:20])
            + frame(CONTINUATION, 0, 3, block[20:30])
            + frame(CONTINUATION, END_HEADERS, 3, block[30:]))


CASES = {
    "idle-frames": (GuardLimits(idle_frame_burst=20, idle_frame_rate=1), priorities),
    "resets": (GuardLimits(reset_burst=5, reset_rate=1), resets),
    "continuations": (GuardLimits(max_continuations=2), continuations),
}


@pytest.mark.parametrize("lowered", [True, False], ids=["lowered", "default"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_lowered_budget_ends_what_the_default_lets_through(serve, raw_client, case, lowered):
    limits, build = CASES[case]
    server = serve(Hello, guard=limits if lowered else None)
    client = raw_client(server.port)
    client.frames_until(is_server_settings, 5)
    client.send(build(client.authority)
                + frame(HEADERS, END_HEADERS | END_STREAM, 101, request_block(client.authority)))
    received = client.frames_until(
        lambda f: ended(101)(f) or type(f).__name__ == "GoAwayFrame", 5)
    goaways = frames_of(received, "GoAwayFrame")
    if lowered:
        assert [ErrorCode(g.error_code) for g in goaways] == [ErrorCode.ENHANCE_YOUR_CALM]
    else:
        assert not goaways
        assert status_of(received, 101) == b"200"


@pytest.mark.parametrize("field, value", [
    ("reset_burst", 0), ("idle_frame_rate", -1), ("max_continuations", 9),
    ("slice_bytes", 10), ("abandon_factor", 0), ("max_oversized_blocks", 1.5),
])
def test_invalid_limits_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        GuardLimits(**{field: value})
