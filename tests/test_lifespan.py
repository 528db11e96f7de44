"""The ASGI lifespan scope around an AppServer's life."""
from __future__ import annotations

import logging

import httpx
import pytest
from appserver import AppServerThread

from nghttp2py.asgi import LifespanFailure


def lifespan_app(events: list, *, fail_startup: str | None = None):
    """An app that records its lifespan events and puts ``state["started"]`` in scope."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail_startup is not None:
                        await send({"type": "lifespan.startup.failed", "message": fail_startup})
                        return
                    scope["state"]["started"] = "yes"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body",
                    "body": scope.get("state", {}).get("started", "no state").encode()})

    return app


def test_startup_state_and_shutdown(serve_app):
    events: list = []
    server = serve_app(lifespan_app(events))
    assert events == ["lifespan.startup"]
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(server.url()).text == "yes"
    server.stop()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_startup_failure_stops_the_server_with_the_apps_message():
    with pytest.raises(LifespanFailure, match="^database unreachable$"):
        AppServerThread(lifespan_app([], fail_startup="database unreachable")).start()


def test_an_app_without_lifespan_is_served_without_it(serve_app, caplog):
    async def app(scope, receive, send):
        assert scope["type"] == "http", "no lifespan here"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})

    with caplog.at_level(logging.INFO, logger="nghttp2py"):
        server = serve_app(app)
    assert "does not handle the ASGI lifespan scope" in caplog.text
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(server.url()).text == "plain"


def test_lifespan_on_requires_it():
    async def app(scope, receive, send):
        raise RuntimeError("no lifespan")

    with pytest.raises(LifespanFailure, match="no lifespan"):
        AppServerThread(app, lifespan="on").start()


def test_lifespan_off_never_calls_it(serve_app):
    events: list = []
    server = serve_app(lifespan_app(events), lifespan="off")
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(server.url()).text == "no state"
    assert events == []
