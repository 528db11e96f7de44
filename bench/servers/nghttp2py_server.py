"""nghttp2py benchmark server.

Usage: ``nghttp2py_server.py PORT --loop asyncio|uvloop [--cert C --key K [--quic]]``;
``--quic`` serves HTTP/3 too, on the UDP port of the same number.

The loop is created here from the named factory (see ``common.run``), never by
``HTTP2Server.serve_forever``'s default, which picks uvloop whenever it is installed.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BIG_PATH, HELLO, ONE_MIB, parse_args, run, server_ssl_context

from nghttp2py import BaseRequestHandler, HTTP2Server

TEXT = [("content-type", "text/plain")]
OCTETS = [("content-type", "application/octet-stream")]
BIG = BIG_PATH.encode()
# Uvicorn's and Hypercorn's default limit (nghttp2py's is 1 MiB).
WS_MAX_MESSAGE = 16 << 20


class Handler(BaseRequestHandler):
    """Answers hello world, 1 MiB for /1m, and hello world after a POST body; accepts
    every WebSocket (any path) and echoes its messages."""

    def on_headers(self) -> None:
        """Respond at once unless a request body has to be read first."""
        if self.path == BIG:
            self.send_response(200, OCTETS, ONE_MIB)
        elif self.method == b"POST":
            self.total = 0
        elif self.websocket is not None:
            self.websocket.accept(max_message_size=WS_MAX_MESSAGE)
        else:
            self.send_response(200, TEXT, HELLO)

    def on_message(self, message: str | bytes) -> None:
        """Echo a WebSocket message as it came (text as text, bytes as bytes)."""
        self.websocket.send(message)

    def on_data(self, data: bytes) -> None:
        """Count (and drop) request body bytes."""
        self.total += len(data)

    def on_request_done(self) -> None:
        """Answer a POST once its whole body has arrived."""
        if self.method == b"POST":
            self.send_response(200, TEXT, HELLO)


async def serve(server: HTTP2Server) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully (a second signal aborts)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            server.abort()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    async with server:
        await stop.wait()


def main() -> None:
    """Serve on the loop named by --loop."""
    args = parse_args(__doc__, loops=True, quic=True)
    quic = ({"quic_bind": [("127.0.0.1", args.port)], "quic_certfile": args.cert,
             "quic_keyfile": args.key} if args.quic else {})
    server = HTTP2Server(("127.0.0.1", args.port), Handler,
                         ssl=server_ssl_context(args.cert, args.key), **quic)
    run(lambda: serve(server), args.loop)


if __name__ == "__main__":
    main()
