"""The server the attack tests hit, in a process of its own, so that its latency, CPU
and memory are its own.

``python attack_server.py CONFIG``, CONFIG a JSON object with optional ``settings``
(ServerSettings fields) and ``timeouts`` (Timeouts fields). Prints the bound port,
then serves until SIGTERM; logs the ``nghttp2py`` logger to stderr. ``GET /stats``
answers JSON: handlers created, hooks run, open connections and the resident memory.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

from nghttp2py import BaseRequestHandler, HTTP2Server, ServerSettings, Timeouts, loops


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


BIG = b"b" * (1 << 20)


class Handler(BaseRequestHandler):
    """``ok`` for every request, at once whatever the body; ``/push`` pushes a file
    first, ``/big`` is 1 MiB; ``/stats`` for the tests."""

    created = 0
    closed = 0
    hooks = 0
    server: HTTP2Server | None = None

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        Handler.created += 1

    def on_headers(self) -> None:
        Handler.hooks += 1
        body = b"ok\n"
        if self.path == b"/stats":
            assert Handler.server is not None
            body = json.dumps({"created": Handler.created, "hooks": Handler.hooks,
                               "live": Handler.created - Handler.closed,
                               "rss_kib": rss_kib(),
                               "connections": Handler.server.connections}).encode()
        elif self.path == b"/big":
            body = BIG
        elif self.path == b"/push":
            self.push("/pushed.css", body=b"p" * 2000)
        self.send_response(200, [("content-type", "text/plain")], body)

    def on_close(self, error_code: int) -> None:
        Handler.closed += 1


async def serve(config: dict) -> None:
    server = HTTP2Server(("127.0.0.1", 0), Handler,
                         settings=ServerSettings(**config.get("settings", {})),
                         timeouts=Timeouts(**config.get("timeouts", {})),
                         backlog=4096, shutdown_timeout=1.0)
    Handler.server = server
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(created).3f %(name)s %(message)s")
    loops.run(serve(json.loads(sys.argv[1])), os.environ.get("NGHTTP2PY_LOOP"))
