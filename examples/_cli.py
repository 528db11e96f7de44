"""Command line and server start-up shared by the examples.

Every example takes the same options::

    --host HOST        address to bind ('' = every interface, the default)
    --port PORT        port to bind (0 picks a free one)
    --certfile FILE    serve TLS (ALPN h2) with this certificate ...
    --keyfile FILE     ... and this private key (if not inside --certfile)
    --access-log       log one line per request to stderr

and prints one line once it is listening, with the real port, e.g.::

    serving on http://127.0.0.1:8080/ (try: nghttp -nv http://127.0.0.1:8080/)

Ctrl-C (SIGINT) or SIGTERM shuts the server down gracefully: a GOAWAY to every
client, the requests already started run to completion, then the program
exits with status 0. A second signal closes every connection at once.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Sequence

from nghttp2py import BaseRequestHandler, HTTP2Server

__all__ = ["parse_args", "make_ssl_context", "run"]


def parse_args(description: str, default_port: int,
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the options every example takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="",
                        help="address to bind; '' (the default) binds every interface")
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"port to bind, 0 for any free port (default {default_port})")
    parser.add_argument("--certfile", help="PEM certificate: serve HTTP/2 over TLS (ALPN h2)")
    parser.add_argument("--keyfile", help="PEM private key of --certfile")
    parser.add_argument("--access-log", action="store_true",
                        help="log one line per request to stderr")
    args = parser.parse_args(argv)
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")
    return args


def make_ssl_context(certfile: str | None, keyfile: str | None = None) -> ssl.SSLContext | None:
    """A server SSLContext for the certificate, or None for cleartext (h2c).

    HTTP2Server itself offers h2 by ALPN and refuses TLS older than 1.2.
    """
    if not certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _url(host: str, port: int, tls: bool) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"  # every interface: localhost is one of them
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}/"


async def _serve(handler_class: type[BaseRequestHandler], args: argparse.Namespace,
                 try_command: str) -> None:
    context = make_ssl_context(args.certfile, args.keyfile)
    async with HTTP2Server((args.host, args.port), handler_class, ssl=context,
                           access_log=args.access_log) as server:
        stop = asyncio.Event()

        def on_signal() -> None:
            if stop.is_set():
                server.abort()  # second signal: do not wait for busy clients
            stop.set()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        # Print only once the signals are handled: whoever reads this line may
        # send SIGINT at once and expects the graceful shutdown.
        url = _url(args.host, server.port, context is not None)
        print(f"serving on {url} (try: {try_command.format(url=url)})", flush=True)
        await stop.wait()
        # Leaving the block closes the server gracefully (close + wait_closed);
        # the signal handlers stay in place so that a second Ctrl-C aborts.


def run(handler_class: type[BaseRequestHandler], *, description: str, default_port: int,
        try_command: str = "nghttp -nv {url}", argv: Sequence[str] | None = None) -> None:
    """Parse the command line, serve ``handler_class`` until a signal, then exit.

    ``try_command`` is printed after the URL; ``{url}`` is replaced by it.
    """
    args = parse_args(description, default_port, argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.access_log:
        # The access lines carry their own timestamp: print them as they are.
        access = logging.getLogger("nghttp2py.access")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    try:
        asyncio.run(_serve(handler_class, args, try_command))
    except OSError as exc:  # e.g. the port is taken, or the certificate is unreadable
        sys.exit(f"error: {exc}")
