"""Shared constants, argument parsing and event-loop set-up for the benchmark servers.

Every server answers:
  * ``/1m``          -> 200, 1 MiB ``application/octet-stream`` body;
  * ``POST`` any     -> read the whole body, then 200 ``hello world``;
  * anything else    -> 200 ``hello world`` (11 bytes, ``text/plain``);
  * a WebSocket      -> accepted on any path (where the server has WebSockets), every
                        message echoed as it came (scenarios 10 and 11).

Every Python server names the event loop (or reactor) it actually runs on with
one ``LOOP_LINE`` line on stderr; the harness checks it against the row's loop.
"""
from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any

HELLO = b"hello world"
ONE_MIB = b"x" * (1 << 20)
BIG_PATH = "/1m"
LOOP_LINE = "bench-loop:"
LOOPS = ("asyncio", "uvloop")


def parse_args(description: str, loops: bool = False, quic: bool = False
               ) -> argparse.Namespace:
    """Parse ``PORT [--cert FILE --key FILE] [--loop asyncio|uvloop] [--quic]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("port", type=int)
    parser.add_argument("--cert", help="PEM certificate (enables TLS)")
    parser.add_argument("--key", help="PEM private key")
    if loops:
        parser.add_argument("--loop", choices=LOOPS, required=True)
    if quic:
        parser.add_argument("--quic", action="store_true",
                            help="serve HTTP/3 too, on the UDP port of PORT's number")
    return parser.parse_args()


def server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """Return a server TLS context for cert/key, or None for cleartext."""
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def announce_loop(loop: object) -> None:
    """Print which event loop (or reactor) class runs this server, for the harness."""
    kind = type(loop)
    print(f"{LOOP_LINE} {kind.__module__}.{kind.__qualname__}", file=sys.stderr, flush=True)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of the named loop: no policy, no auto-detection."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "asyncio":
        return asyncio.SelectorEventLoop
    raise ValueError(f"unknown event loop {name!r}")


def run(main: Callable[[], Coroutine[Any, Any, None]], loop_name: str) -> None:
    """Run main() to completion on a new loop of the named kind, announced first."""
    loop = loop_factory(loop_name)()
    try:
        asyncio.set_event_loop(loop)
        announce_loop(loop)
        loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
