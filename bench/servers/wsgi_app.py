"""Minimal WSGI app for the WSGI benchmarks (the same answers as asgi_app.py)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"hello world"
ONE_MIB = b"x" * (1 << 20)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Serve hello world, 1 MiB on /1m, and drain POST bodies first."""
    if environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"]
        while body.read(65536):
            pass
    data = ONE_MIB if environ["PATH_INFO"] == "/1m" else HELLO
    start_response("200 OK", [("Content-Type", "application/octet-stream" if data is ONE_MIB
                                else "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
