"""Random frames after a valid preface never crash or wedge the server.

Seeded, so a failure is reproducible: each connection sends a burst of frames
with random types, flags, stream ids and payloads, mixed with valid request
HEADERS (so streams and handlers exist for the random frames to hit). The
server may answer with anything RFC 9113 allows; afterwards it must still
serve a normal request, log no internal error, and have no handler left.
"""
from __future__ import annotations

import logging
import random
import socket

import hpack

from conftest import wait_for
from nghttp2py import BaseRequestHandler
from rawh2 import PREFACE, frame

BODY = b"fuzzed but fine\n"


class Echo(BaseRequestHandler):
    live = 0

    def __init__(self, *args):
        super().__init__(*args)
        Echo.live += 1

    def on_data(self, data):
        pass

    def on_request_done(self):
        self.send_response(200, [("content-type", "text/plain")], BODY,
                           trailers=[("x-done", "1")])

    def on_close(self, error_code):
        Echo.live -= 1


def random_burst(rng: random.Random, encoder: hpack.Encoder) -> bytes:
    """Mostly legal frames on increasing stream ids, some random ones among them."""
    frames, streams, next_id = [], [], 1
    for _ in range(rng.randrange(1, 60)):
        roll = rng.random()
        recent = rng.choice(streams) if streams else 1
        if roll < 0.3 or not streams:
            block = encoder.encode([(":method", rng.choice(["GET", "POST", "HEAD", "BREW"])),
                                    (":scheme", "http"), (":authority", "fuzz"),
                                    (":path", rng.choice(["/", "/x", "/?q=1", "", "*"]))]
                                   + [("x-h", "v" * rng.randrange(0, 50))] * rng.randrange(3))
            end_stream = 0x1 if rng.random() < 0.5 else 0
            frames.append(frame(1, 0x4 | end_stream, next_id, block))
            streams.append(next_id)
            next_id += 2
        elif roll < 0.5:
            end_stream = 0x1 if rng.random() < 0.4 else 0
            frames.append(frame(0, end_stream, recent, rng.randbytes(rng.randrange(0, 2000))))
        elif roll < 0.57:
            frames.append(frame(1, 0x5, recent, encoder.encode([("x-trailer", "t")])))
        elif roll < 0.65:
            frames.append(frame(3, 0, recent, rng.randbytes(4)))          # RST_STREAM
        elif roll < 0.73:
            frames.append(frame(8, 0, rng.choice([0, recent]),            # WINDOW_UPDATE
                                rng.randrange(0, 2**31).to_bytes(4, "big")))
        elif roll < 0.8:
            frames.append(frame(rng.choice([2, 0x10]), 0, rng.choice([0, recent]),
                                rng.randbytes(rng.choice([4, 5, 9]))))    # PRIORITY(_UPDATE)
        elif roll < 0.85:
            frames.append(frame(6, 0, 0, rng.randbytes(8)))              # PING
        else:
            frames.append(frame(rng.randrange(0, 12), rng.randrange(0, 256),
                                rng.choice([0, recent, rng.randrange(1, 2**31)]),
                                rng.randbytes(rng.choice([0, 1, 4, 8, 9, rng.randrange(300)]))))
    return b"".join(frames)


def test_random_frames_leave_the_server_serving(serve, h2_client, caplog):
    caplog.set_level(logging.INFO, logger="nghttp2py")
    Echo.live = 0
    server = serve(Echo)
    rng = random.Random(20261121)
    for _ in range(300):
        encoder = hpack.Encoder()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(PREFACE + frame(4, 0, 0) + random_burst(rng, encoder))
            sock.settimeout(0.05)
            try:
                while sock.recv(65536):
                    pass
            except (socket.timeout, ConnectionError):
                pass
    client = h2_client(server.port)
    got = client.response(client.request("/"))
    assert (got.headers[":status"], got.body) == ("200", BODY)
    client.close()
    assert wait_for(lambda: server.call(lambda: (server.server.connections, Echo.live)) == (0, 0))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors[0].getMessage() if errors else ""
