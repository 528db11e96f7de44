"""serve_forever() runs on the event loop it is told, never on uvloop because it is installed.

``loop=`` names it, else the environment variable NGHTTP2PY_LOOP, else it is
asyncio's own; the old ``uvloop=True/False`` still works. The loop that runs
is the one named in the INFO line the server logs when it starts.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, run_peer
from nghttp2py import loops

SERVER = textwrap.dedent("""
    import ast, asyncio, logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, format="%(message)s")

    class LoopName(BaseRequestHandler):
        def on_headers(self):
            self.send_response(200, body=type(asyncio.get_running_loop()).__module__)

    if sys.argv[2] == "uvloop-policy":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    server = HTTP2Server(("127.0.0.1", 0), LoopName)
    server.serve_forever(**ast.literal_eval(sys.argv[1]))
""")


@pytest.mark.parametrize("arguments, environment, expected", [
    ({}, None, "asyncio"),  # uvloop is installed, and not picked
    ({}, "uvloop", "uvloop"),
    ({}, "asyncio", "asyncio"),
    ({"loop": "uvloop"}, None, "uvloop"),
    ({"loop": "asyncio"}, "uvloop", "asyncio"),  # the argument wins
    ({"loop": "uvloop"}, "asyncio", "uvloop"),
    ({"uvloop": True}, None, "uvloop"),
    ({"uvloop": False}, "uvloop", "asyncio"),
    ({"loop": "asyncio", "policy": True}, None, "asyncio"),  # an installed policy is not asked
])
def test_the_event_loop_choice(tmp_path, arguments, environment, expected):
    pytest.importorskip("uvloop")
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NGHTTP2PY_LOOP", None)
    if environment:
        env["NGHTTP2PY_LOOP"] = environment
    policy = "uvloop-policy" if arguments.pop("policy", False) else "-"
    process = subprocess.Popen([sys.executable, str(script), repr(arguments), policy], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        started = re.search(
            r"serving HTTP/2 \(h2c\) on 127\.0\.0\.1:(\d+), on the (\w+) event loop", line)
        assert started, line + process.stderr.read()
        assert started.group(2) == expected
        url = f"http://127.0.0.1:{started.group(1)}/"
        result = run_peer("curl", "-sS", "--http2-prior-knowledge", url)
        assert result.stdout.partition(".")[0] == expected, result
        load = run_peer("h2load", "-n", "2000", "-c", "4", "-m", "10", url)
        assert "2000 succeeded, 0 failed" in load.stdout, load.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()


def test_loop_and_uvloop_together_are_refused():
    from nghttp2py import BaseRequestHandler, HTTP2Server

    with pytest.raises(TypeError, match="not both"):
        HTTP2Server(("127.0.0.1", 0), BaseRequestHandler).serve_forever(loop="asyncio",
                                                                       uvloop=True)


def test_an_unknown_loop_name_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="loop must be one of asyncio, uvloop, not 'trio'"):
        loops.choose_loop("trio")
    monkeypatch.setenv("NGHTTP2PY_LOOP", "trio")
    with pytest.raises(ValueError, match="NGHTTP2PY_LOOP must be one of"):
        loops.choose_loop()
    monkeypatch.setenv("NGHTTP2PY_LOOP", "")
    assert loops.choose_loop() == "asyncio"


def test_run_closes_the_coroutine_it_cannot_run():
    async def never() -> None:
        raise AssertionError("ran")

    coroutine = never()
    with pytest.raises(ValueError):
        loops.run(coroutine, "trio")
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning


def test_run_uses_the_named_loop():
    pytest.importorskip("uvloop")
    seen = []

    async def record() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.partition(".")[0])

    loops.run(record(), "uvloop")
    loops.run(record(), "asyncio")
    assert seen == ["uvloop", "asyncio"]
