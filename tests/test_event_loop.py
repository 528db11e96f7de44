"""serve_forever() runs on uvloop when it is installed; NGHTTP2PY_LOOP or uvloop= overrides."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, run_peer

SERVER = textwrap.dedent("""
    import asyncio, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    class LoopName(BaseRequestHandler):
        def on_headers(self):
            self.send_response(200, body=type(asyncio.get_running_loop()).__module__)

    server = HTTP2Server(("127.0.0.1", int(sys.argv[1])), LoopName)
    choice = {"auto": None, "on": True, "off": False}[sys.argv[2]]
    server.serve_forever(uvloop=choice)
""")


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("argument, environment, expected", [
    ("auto", None, "uvloop"),
    ("on", None, "uvloop"),
    ("off", None, "asyncio.unix_events"),
    ("auto", "asyncio", "asyncio.unix_events"),
])
def test_the_event_loop_choice(tmp_path, argument, environment, expected):
    pytest.importorskip("uvloop")
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NGHTTP2PY_LOOP", None)
    if environment:
        env["NGHTTP2PY_LOOP"] = environment
    process = subprocess.Popen([sys.executable, str(script), str(port), argument], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            result = run_peer("curl", "-sS", "--http2-prior-knowledge", "--retry", "0",
                              f"http://127.0.0.1:{port}/")
            if result.returncode == 0:
                break
            assert process.poll() is None, process.stderr.read()
            subprocess.run(["sleep", "0.1"])
        assert result.stdout.startswith(expected), result
        load = run_peer("h2load", "-n", "2000", "-c", "4", "-m", "10",
                        f"http://127.0.0.1:{port}/")
        assert "2000 succeeded, 0 failed" in load.stdout, load.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()
