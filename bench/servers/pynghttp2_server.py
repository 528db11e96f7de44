"""pynghttp2 benchmark server: ``pynghttp2_server.py PORT --loop asyncio|uvloop`` (h2c only).

pynghttp2 0.3 has no TLS support on the server side.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BIG_PATH, HELLO, ONE_MIB, parse_args, run
from pynghttp2 import ServerSession, nghttp2

TEXT = [("content-type", "text/plain")]
OCTETS = [("content-type", "application/octet-stream")]
SETTINGS = [(nghttp2.settings_id.MAX_CONCURRENT_STREAMS, 100)]


async def answer(req) -> None:
    """Read the request body (if any) and send the response."""
    if req.method == "POST":
        await req.read()
    if req.path == BIG_PATH:
        req.response(200, ONE_MIB, OCTETS)
    else:
        req.response(200, HELLO, TEXT)


async def accept(session: ServerSession, tasks: set[asyncio.Task]) -> None:
    """Hand every incoming request to its own task."""
    loop = asyncio.get_running_loop()
    while True:
        req = await session
        task = loop.create_task(answer(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def serve(port: int) -> None:
    """Accept requests until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: set[asyncio.Task] = set()
    async with ServerSession("127.0.0.1", port, settings=SETTINGS, loop=loop) as session:
        acceptor = loop.create_task(accept(session, tasks))
        await stop.wait()
        acceptor.cancel()


def main() -> None:
    """Entry point."""
    args = parse_args(__doc__, loops=True)
    if args.cert:
        sys.exit("pynghttp2 has no server-side TLS")
    run(lambda: serve(args.port), args.loop)


if __name__ == "__main__":
    main()
