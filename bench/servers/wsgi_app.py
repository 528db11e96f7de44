"""Minimal WSGI app for the WSGI benchmarks (the same answers as asgi_app.py).

A WSGI app has no lifespan to name its event loop from: nghttp2py's WSGI
server (nghttp2py_wsgi_server.py) names the loop it creates, Uvicorn's row
serves this app behind a lifespan that does (uvicorn_wsgi.py), and Granian
runs a WSGI app on threads of its own, with no Python event loop.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .common import BIG_PATH, HELLO, ONE_MIB

TEXT = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
OCTETS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(ONE_MIB)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Serve hello world, 1 MiB on /1m, and drain POST bodies first."""
    if environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"]
        while body.read(65536):
            pass
    if environ["PATH_INFO"] == BIG_PATH:
        start_response("200 OK", OCTETS)
        return [ONE_MIB]
    start_response("200 OK", TEXT)
    return [HELLO]

