"""nghttp2py benchmark server: ``nghttp2py_server.py PORT [--cert C --key K] [--loop L]``."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import HELLO, ONE_MIB, parse_args, server_ssl_context  # noqa: E402

from nghttp2py import BaseRequestHandler, HTTP2Server  # noqa: E402

TEXT = [("content-type", "text/plain")]
OCTETS = [("content-type", "application/octet-stream")]


class Handler(BaseRequestHandler):
    """Answers hello world, 1 MiB for /1m, and hello world after a POST body."""

    def on_headers(self) -> None:
        """Respond at once unless a request body has to be read first."""
        if self.path == b"/1m":
            self.send_response(200, OCTETS, ONE_MIB)
        elif self.method == b"POST":
            self.total = 0
        else:
            self.send_response(200, TEXT, HELLO)

    def on_data(self, data: bytes) -> None:
        """Count (and drop) request body bytes."""
        self.total += len(data)

    def on_request_done(self) -> None:
        """Answer a POST once its whole body has arrived."""
        if self.method == b"POST":
            self.send_response(200, TEXT, HELLO)


def main() -> None:
    """Install the requested event loop policy and serve until signalled."""
    args = parse_args(__doc__, loops=True)
    if args.loop == "uvloop":
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    server = HTTP2Server(("127.0.0.1", args.port), Handler,
                         ssl=server_ssl_context(args.cert, args.key))
    server.serve_forever()


if __name__ == "__main__":
    main()
