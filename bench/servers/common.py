"""Shared constants and argument parsing for the benchmark servers.

Every server answers:
  * ``/1m``          -> 200, 1 MiB ``application/octet-stream`` body;
  * ``POST`` any     -> read the whole body, then 200 ``hello world``;
  * anything else    -> 200 ``hello world`` (11 bytes, ``text/plain``).
"""
from __future__ import annotations

import argparse
import ssl

HELLO = b"hello world"
ONE_MIB = b"x" * (1 << 20)
BIG_PATH = "/1m"


def parse_args(description: str, loops: bool = False) -> argparse.Namespace:
    """Parse ``PORT [--cert FILE --key FILE] [--loop asyncio|uvloop]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("port", type=int)
    parser.add_argument("--cert", help="PEM certificate (enables TLS)")
    parser.add_argument("--key", help="PEM private key")
    if loops:
        parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    return parser.parse_args()


def server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """Return a server TLS context for cert/key, or None for cleartext."""
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
