"""A Starlette app: lifespan state, streaming responses, streamed and multipart uploads,
background tasks, a WebSocket echo and a WebSocket refused with an HTTP response."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

# What background tasks did, for the tests to look at.
background_log: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    yield {"greeting": "hello from lifespan"}
    background_log.append("shutdown")


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.state.greeting} over HTTP/{request.scope['http_version']}")


async def numbers(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("count", "5"))

    async def lines():
        for number in range(count):
            yield f"{number}\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(lines(), media_type="text/plain")


async def upload(request: Request) -> JSONResponse:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


async def form(request: Request) -> JSONResponse:
    async with request.form() as data:
        file = data["file"]
        content = await file.read()
        return JSONResponse({"field": data["field"], "filename": file.filename,
                             "size": len(content), "sha256": hashlib.sha256(content).hexdigest()})


async def record(name: str) -> None:
    await asyncio.sleep(0.05)
    background_log.append(name)


async def later(request: Request) -> PlainTextResponse:
    task = BackgroundTask(record, request.query_params["id"])
    return PlainTextResponse("queued", background=task)


async def pid(request: Request) -> PlainTextResponse:
    """Which worker process answered."""
    return PlainTextResponse(str(os.getpid()))


async def slow(request: Request) -> PlainTextResponse:
    """Answers after a second: a request still in flight when the worker is told to go."""
    await asyncio.sleep(1.0)
    return PlainTextResponse(f"slow from {os.getpid()}")


async def echo_socket(websocket: WebSocket) -> None:
    """Greets with the lifespan state, then echoes; takes the "chat" subprotocol if offered."""
    chat = "chat" if "chat" in websocket.scope["subprotocols"] else None
    await websocket.accept(subprotocol=chat, headers=[(b"x-served-by", b"starlette")])
    await websocket.send_text(f"{websocket.state.greeting} over HTTP/"
                              f"{websocket.scope['http_version']}")
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            background_log.append(f"disconnect {message['code']}")
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


async def members_socket(websocket: WebSocket) -> None:
    """Members only: refused with a 401 and a body (the websocket.http.response extension)."""
    await websocket.send_denial_response(PlainTextResponse("members only", status_code=401))


app = Starlette(routes=[
    WebSocketRoute("/ws", echo_socket),
    WebSocketRoute("/members", members_socket),
    Route("/pid", pid),
    Route("/slow", slow),
    Route("/", home),
    Route("/numbers", numbers),
    Route("/upload", upload, methods=["POST"]),
    Route("/form", form, methods=["POST"]),
    Route("/later", later),
], lifespan=lifespan)
