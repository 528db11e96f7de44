"""serve_forever() runs on uvloop when it is installed; NGHTTP2PY_LOOP or uvloop= overrides."""
from __future__ import annotations

import signal
import textwrap

import pytest

from conftest import curl, run_peer

SERVER = textwrap.dedent("""
    import asyncio, logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

    class LoopName(BaseRequestHandler):
        def on_headers(self):
            self.send_response(200, body=type(asyncio.get_running_loop()).__module__)

    server = HTTP2Server(("127.0.0.1", 0), LoopName)
    choice = {"auto": None, "on": True, "off": False}[sys.argv[1]]
    server.serve_forever(uvloop=choice)
""")


@pytest.mark.parametrize("argument, environment, expected", [
    ("auto", None, "uvloop"),
    ("on", None, "uvloop"),
    ("off", None, "asyncio.unix_events"),
    ("auto", "asyncio", "asyncio.unix_events"),
])
def test_the_event_loop_choice(server_process, argument, environment, expected):
    pytest.importorskip("uvloop")
    server = server_process(SERVER, argument, env={"NGHTTP2PY_LOOP": environment})
    url = f"http://127.0.0.1:{server.port}/"
    assert curl("--http2-prior-knowledge", url).body.decode().startswith(expected)
    load = run_peer("h2load", "-n", "2000", "-c", "4", "-m", "10", url)
    assert "2000 succeeded, 0 failed" in load.stdout, load.stdout
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0, server.stderr
