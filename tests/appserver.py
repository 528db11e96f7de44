"""An AppServer (ASGI, WSGI or handler app, with lifespan) on its own loop in a thread."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from conftest import new_event_loop
from nghttp2py.app_server import AppServer


class AppServerThread:
    """``AppServer(app, ["127.0.0.1:0"], **options)`` served from a daemon thread.

    ``start()`` raises what ``AppServer.start()`` raised (a lifespan failure,
    say); ``stop()`` closes gracefully and waits for the lifespan shutdown.
    """

    def __init__(self, app: object, **options: object) -> None:
        options.setdefault("shutdown_timeout", 2.0)
        self.server = AppServer(app, ["127.0.0.1:0"], **options)  # type: ignore[arg-type]
        self.loop = new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001 -- raised again by start()
            self._error = exc
            self._started.set()
            self.loop.close()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.close()

    def start(self) -> AppServerThread:
        self._thread.start()
        self._started.wait(20)
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].port

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.server.ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self, timeout: float = 10) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()
            self.loop.stop()

        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(close()))
        self._thread.join(timeout)


@pytest.fixture
def serve_app() -> Iterator:
    """``serve_app(app, **AppServer options)``: started now, stopped after the test."""
    started: list[AppServerThread] = []

    def start(app: object, **options: object) -> AppServerThread:
        thread = AppServerThread(app, **options)
        started.append(thread)
        return thread.start()

    yield start
    for thread in started:
        thread.stop()
