"""The WSGI app through Uvicorn's own WSGI interface, with a lifespan that names the loop.

``uvicorn --interface wsgi`` wraps the app in ``uvicorn.middleware.wsgi.WSGIMiddleware``
(its thread pool) and has no lifespan, so nothing could name the loop it serves on.
This is the same middleware around the same app, behind a lifespan handler that
announces the loop as asgi_app.py does: one comparison per request more.
Loaded by Uvicorn only (it imports uvicorn, which only bench/.venv has).
"""
from __future__ import annotations

import warnings
from typing import Any

from uvicorn.middleware.wsgi import WSGIMiddleware

from .asgi_app import Receive, Send, lifespan_naming_loop
from .wsgi_app import app as wsgi_app

with warnings.catch_warnings():  # its native WSGI support is deprecated, not gone
    warnings.simplefilter("ignore", DeprecationWarning)
    _wsgi = WSGIMiddleware(wsgi_app)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The WSGI app for ``http``; the lifespan names the loop."""
    if scope["type"] == "http":
        await _wsgi(scope, receive, send)  # type: ignore[arg-type]
        return
    if scope["type"] == "lifespan":
        await lifespan_naming_loop(receive, send)
