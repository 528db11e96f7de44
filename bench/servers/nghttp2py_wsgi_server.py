"""nghttp2py serving the benchmark's WSGI app (bench/servers/wsgi_app.py).

Usage: ``nghttp2py_wsgi_server.py PORT --loop asyncio|uvloop [--cert C --key K]``.

The same ``AppServer`` as ``python -m nghttp2py wsgi_app:app --interface wsgi``
(HTTP/2 and HTTP/1.1 on one port, the app on its bounded thread pool), on the
loop created here from the named factory and announced (``common.run``): a
WSGI app has no lifespan to announce it from, as the ASGI app does.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import parse_args, run, server_ssl_context

from bench.servers.wsgi_app import app
from nghttp2py import AppServer


def main() -> None:
    """Serve the WSGI app on the loop named by --loop until SIGINT/SIGTERM."""
    args = parse_args(__doc__, loops=True)
    server = AppServer(app, [f"127.0.0.1:{args.port}"], interface="wsgi",
                       ssl=server_ssl_context(args.cert, args.key))
    run(server.serve, args.loop)


if __name__ == "__main__":
    main()
