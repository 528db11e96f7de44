"""An AppServer (ASGI, WSGI or handler app, with lifespan) on its own loop in a thread."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import ServerThread
from nghttp2py.app_server import AppServer


class AppServerThread(ServerThread):
    """``AppServer(app, ["127.0.0.1:0"], **options)`` served from a daemon thread.

    ``start()`` raises what ``AppServer.start()`` raised (a lifespan failure,
    say); ``stop()`` closes gracefully and waits for the lifespan shutdown.
    """

    def __init__(self, app: object, **options: object) -> None:
        options.setdefault("shutdown_timeout", 2.0)
        super().__init__(AppServer(app, ["127.0.0.1:0"], **options))  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return self.server.servers[0].port


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
