"""Minimal ASGI app shared by the ASGI servers; names its event loop at start-up.

HTTP as in common.py; a ``websocket`` scope (any path) is accepted and echoes every
message back as it came (text as text, bytes as bytes) until the client disconnects.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Callable

from .common import BIG_PATH, HELLO, ONE_MIB, announce_loop

TEXT = [(b"content-type", b"text/plain"), (b"content-length", b"11")]
OCTETS = [(b"content-type", b"application/octet-stream"),
          (b"content-length", str(len(ONE_MIB)).encode())]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def lifespan_naming_loop(receive: Receive, send: Send) -> None:
    """The lifespan protocol, announcing the event loop at start-up for the harness."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            announce_loop(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Serve hello world, 1 MiB on /1m, and drain POST bodies first."""
    if scope["type"] == "lifespan":
        await lifespan_naming_loop(receive, send)
        return
    if scope["type"] == "websocket":
        await websocket_echo(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
    if scope["path"] == BIG_PATH:
        headers, body = OCTETS, ONE_MIB
    else:
        headers, body = TEXT, HELLO
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def websocket_echo(receive: Receive, send: Send) -> None:
    """Accept the WebSocket, then send every message back until the client disconnects."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
