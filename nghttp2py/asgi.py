"""ASGI 3 applications: the handler class, server push through the app, and lifespan.

:func:`asgi_handler` turns an ASGI application into a
:class:`~nghttp2py.BaseRequestHandler` subclass that any ``HTTP2Server``
serves; :class:`Lifespan` runs the app's ``lifespan`` scope around the
server's life. :class:`nghttp2py.AppServer` puts the two together (see
docs/asgi.md).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote

# ClientDisconnected is raised by the extension's send() and public here; it is not
# in the extension's stub, whose test would want every attribute OSError has.
from ._nghttp2 import (  # type: ignore[attr-defined]
    ASGIConfig,
    ASGIHandler,
    ClientDisconnected,
)

__all__ = ["ASGIApp", "ClientDisconnected", "Lifespan", "LifespanFailure", "asgi_handler"]

logger = logging.getLogger("nghttp2py")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The extensions every http scope announces (the tls one is added per TLS connection).
EXTENSIONS = ("http.response.push", "http.response.trailers", "http.response.early_hint",
              "http.response.pathsend")
# The extensions every websocket scope announces (and tls, like http scopes).
WEBSOCKET_EXTENSIONS = ("websocket.http.response",)
LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}


def asgi_handler(app: ASGIApp, *, root_path: str = "", server: tuple[str, int | None] | None = None,
                 state: dict[str, Any] | None = None, tls: bool = False,
                 websocket_options: dict[str, Any] | None = None) -> type[ASGIHandler]:
    """A handler class that runs the ASGI 3 application ``app`` for every request.

    ``root_path`` is the scope's ``root_path`` (the app is mounted below it),
    ``server`` its ``server`` (the listening address), ``state`` the lifespan
    state copied into each request's scope, ``tls`` whether the connections
    are TLS (then the scope carries the ``tls`` extension).
    ``websocket_options`` are the :meth:`WebSocket.accept` options
    (``max_message_size``, ``ping_interval``, ``compression``, ...) every
    ``websocket.accept`` uses. The class's
    ``asgi_config`` holds them; ``server`` and ``state`` may be set there
    once known.
    """
    if not callable(app):
        raise TypeError(f"an ASGI app is a callable, not {type(app).__name__}")
    config = ASGIConfig(app, root_path=root_path, server=server, state=state,
                        extensions={name: {} for name in EXTENSIONS},
                        websocket_extensions={name: {} for name in WEBSOCKET_EXTENSIONS},
                        websocket_options=websocket_options, push_runner=push_through_app,
                        tls=tls)
    return type("ASGIApp", (ASGIHandler,),
                {"__slots__": (), "__module__": __name__, "asgi_config": config})


# -- http.response.push: the pushed request goes through the app too -------------------


async def push_through_app(parent: ASGIHandler, path: str,
                           headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Handle ``http.response.push``: promise ``path`` and answer it with the app itself.

    The parent's ``send()`` waits until the app has started the pushed
    response, so the promise goes out before the parent's own response. A
    client that refuses push gets the path as a 103 Early Hints preload link.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"http.response.push needs a path starting with '/', not {path!r}")
    request_headers = [(bytes(name).lower(), bytes(value)) for name, value in headers]
    if not parent.can_push():
        parent.push(path)  # recorded as an early hint, sent with the response
        return
    config = type(parent).asgi_config
    target = path
    path, _, query = target.partition("?")
    scope = dict(parent.scope or {})
    authority = next((value for name, value in scope.get("headers", ()) if name == b"host"),
                     None)
    scope.update(method="GET", path=unquote(path), raw_path=path.encode(),
                 query_string=query.encode(),
                 headers=([(b"host", authority)] if authority else []) + request_headers)
    if config.state is not None:
        scope["state"] = config.state.copy()
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    pushed = _PushedResponse(parent, target, request_headers, started)
    task = loop.create_task(config.app(scope, pushed.receive, pushed.send))
    task.add_done_callback(pushed.app_done)
    await started


class _PushedResponse:
    """The ASGI side of one pushed request: its response becomes ``parent.push(...)``."""

    def __init__(self, parent: ASGIHandler, path: str,
                 request_headers: list[tuple[bytes, bytes]],
                 started: asyncio.Future[None]) -> None:
        self.parent = parent
        self.path = path
        self.request_headers = request_headers
        self.started = started
        self.status = 200
        self.headers: list[tuple[bytes, Any]] = []
        # The streamed body: bytes, then None at its end, or the app's exception.
        self.chunks: asyncio.Queue[bytes | BaseException | None] | None = None
        self.request_sent = False
        self.finished = asyncio.Event()

    async def receive(self) -> Message:
        if not self.request_sent:
            self.request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(bytes(name).lower(), value)
                            for name, value in message.get("headers", ())]
        elif kind == "http.response.body":
            body, more = message.get("body", b""), message.get("more_body", False)
            if self.chunks is None:
                if not more:
                    self._promise(body)
                    self.finished.set()
                    return
                self.chunks = asyncio.Queue()
                self._promise(self._stream())
            if body:
                self.chunks.put_nowait(bytes(body))
            if not more:
                self.chunks.put_nowait(None)
                self.finished.set()

    async def _stream(self) -> AsyncIterator[bytes]:
        assert self.chunks is not None
        while (chunk := await self.chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk  # the engine resets the pushed stream
            yield chunk

    def _promise(self, body: Any) -> None:
        if self.started.done():
            return
        try:
            self.parent.push(self.path, request_headers=self.request_headers, status=self.status,
                             headers=self.headers, body=body)
        except Exception as exc:  # noqa: BLE001 -- a bad pushed response is only skipped
            logger.warning("could not push %s on stream %d: %s", self.path,
                           self.parent.stream_id, exc)
        self.started.set_result(None)

    def app_done(self, task: asyncio.Task[None]) -> None:
        self.finished.set()
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.error("ASGI app raised on pushed %s", self.path, exc_info=error)
        if not self.started.done():
            self.started.set_result(None)  # nothing to push: the parent goes on
        if self.chunks is not None:
            self.chunks.put_nowait(error)


# -- lifespan ---------------------------------------------------------------------------


class LifespanFailure(Exception):
    """The app reported ``lifespan.startup.failed`` (or raised during startup): stop the server."""


class Lifespan:
    """The app's ``lifespan`` scope: :meth:`startup` before serving, :meth:`shutdown` after.

    ``mode`` is ``"auto"`` (an app that raises or returns before answering
    the startup event does not do lifespan: go on without it, with a log
    line), ``"on"`` (then that is a failure) or ``"off"`` (never call the
    app with a lifespan scope). ``state`` is the scope's ``state``, to be
    copied into every request's scope; None when lifespan did not run.
    """

    def __init__(self, app: ASGIApp, mode: str = "auto") -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode is auto, on or off, not {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Message] | None = None
        self._waiting: asyncio.Future[None] | None = None
        self._phase = ""

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer; raises LifespanFailure."""
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {}
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_ASGI), "state": state}
        self._events = asyncio.Queue()
        self._task = loop.create_task(self._run(scope))
        if await self._exchange("startup"):
            self.state = state

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app to finish it."""
        if self._task is None or self.state is None:
            return
        try:
            await self._exchange("shutdown")
        except LifespanFailure as exc:
            logger.error("the app's lifespan shutdown failed: %s", exc)
        self.state = None

    async def _exchange(self, phase: str) -> bool:
        """Send ``lifespan.<phase>``; True once the app completed it."""
        assert self._task is not None and self._events is not None
        self._phase = phase
        self._waiting = asyncio.get_running_loop().create_future()
        self._events.put_nowait({"type": f"lifespan.{phase}"})
        await asyncio.wait([self._waiting, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._waiting.done():
            self._waiting.result()  # raises LifespanFailure for lifespan.<phase>.failed
            return True
        # The app's lifespan task ended without answering.
        error = self._task.exception() if not self._task.cancelled() else None
        if phase == "startup" and self.mode == "auto":
            logger.info("the app does not handle the ASGI lifespan scope (%s); going on "
                        "without it", f"it raised {error!r}" if error else "it returned")
            return False
        if error is not None:
            raise LifespanFailure(f"the app raised during lifespan {phase}: {error!r}") from error
        raise LifespanFailure(f"the app returned during lifespan {phase} without answering")

    async def _run(self, scope: Scope) -> None:
        await self.app(scope, self._receive, self._send)

    async def _receive(self) -> Message:
        assert self._events is not None
        return await self._events.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        waiting = self._waiting
        if waiting is None or waiting.done() or not kind.startswith(f"lifespan.{self._phase}."):
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
        if kind.endswith(".complete"):
            waiting.set_result(None)
        elif kind.endswith(".failed"):
            waiting.set_exception(LifespanFailure(message.get("message", "") or
                                                  f"lifespan.{self._phase}.failed"))
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
