"""No object outlives its request or connection, and none waits for the cycle collector.

Every handler, Session and ServerConnection must be freed by reference
counting alone once its stream or connection ends: a cycle per request would
leave memory to the garbage collector under load.
"""
from __future__ import annotations

import asyncio
import gc

import pytest

from conftest import run_peer, wait_for
from nghttp2py import DATA_DEFERRED, DATA_EOF, BaseRequestHandler
from nghttp2py._nghttp2 import Session
from nghttp2py.connection import ServerConnection


async def chunks():
    for _ in range(3):
        await asyncio.sleep(0)
        yield b"x" * 5000


class Mixed(BaseRequestHandler):
    """Sync and async hooks, every kind of body, and a deferred one."""

    def on_headers(self):
        path = self.path
        if path == b"/async-body":
            self.send_response(200, body=chunks())
        elif path == b"/deferred":
            state = {"sent": False}

            def body(n):
                if state["sent"]:
                    return b"done", DATA_EOF
                state["sent"] = True
                asyncio.get_running_loop().call_soon(self.resume)
                return b"first ", DATA_DEFERRED

            self.send_response(200, body=body)
        elif path != b"/async-hook":
            self.send_response(200, [("x-path", path)], b"hello " * 100, trailers=[("x-t", "1")])

    async def on_request_done(self):
        if self.path == b"/async-hook":
            await asyncio.sleep(0)
            self.send_response(200, body=b"later")


def live(cls) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is cls)


@pytest.mark.parametrize("collector", ["on", "off"])
def test_handlers_sessions_and_connections_are_freed(serve, h2_client, tmp_path, collector):
    server = serve(Mixed)
    uris = tmp_path / "uris.txt"
    base = server.url("")
    uris.write_text("".join(f"{base}{p}\n" for p in
                            ("/", "/async-body", "/deferred", "/async-hook", "/x")))
    # Other tests in this process may still hold objects of their own: compare
    # with what was alive before.
    counted = lambda: (live(Mixed), live(Session), live(ServerConnection))  # noqa: E731
    gc.collect()
    baseline = server.call(counted)
    if collector == "off":
        gc.disable()
    try:
        result = run_peer("h2load", "-n", "2000", "-c", "8", "-m", "10", "-i", str(uris))
        assert "2000 succeeded, 0 failed" in result.stdout, result.stdout
        # Streams the client resets mid-response, and a connection it drops, too.
        client = h2_client(server.port)
        for _ in range(20):
            client.conn.reset_stream(client.request("/async-body"), 8)
        client.flush()
        client.request("/deferred", end_stream=False)
        client.close()
        assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)
        if collector == "on":
            gc.collect()
        # A cancelled task lets go of its handler on a later turn of the loop: wait
        # for that, not for the collector (which stays off in the "off" case).
        wait_for(lambda: server.call(counted) == baseline)
        counts = server.call(counted)
    finally:
        gc.enable()
    assert counts == baseline
