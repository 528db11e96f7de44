"""Why nghttp2py frames WebSockets in its own Cython code (docs/websockets.md).

Measures, for small messages (32 bytes of text):

1. wsproto's frame layer alone (FrameProtocol, server side): parse one masked client
   frame and build one server frame per message, in process; CPU µs per message;
2. nghttp2py's whole server, echoing over HTTP/2 (RFC 8441) in a subprocess, driven by
   an h2 client: the server process's CPU µs per echoed message, HTTP/2 framing, HPACK-
   free DATA frames, the event loop and the application's on_message hook included.

If (2), the whole server, costs less than (1), the frame layer of the pure-Python
library alone, then no server built on that library can be as cheap per message.

    .venv/bin/python bench/websocket_framing.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

MESSAGE = "x" * 32
COUNT = 20000


def wsproto_frame_layer() -> float:
    from wsh2 import raw_frame
    from wsproto.frame_protocol import FrameProtocol

    server = FrameProtocol(client=False, extensions=[])
    frame = raw_frame(0x1, MESSAGE.encode())
    start = time.process_time()
    for _ in range(COUNT):
        server.receive_bytes(frame)
        for received in server.received_frames():
            server.send_data(received.payload, True)
    return (time.process_time() - start) / COUNT * 1e6


def nghttp2py_server() -> float:
    from wsh2 import H2WebSocketClient

    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "websocket_echo.py"), "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().split()[2]
        client = H2WebSocketClient(int(url.rsplit(":", 1)[1].rstrip("/")))
        ws = client.open("/echo")
        server = psutil.Process(process.pid)
        batch = 100
        ws.send(MESSAGE)
        ws.receive()
        before = server.cpu_times()
        for _ in range(COUNT // batch):
            for _ in range(batch):
                ws.send(MESSAGE)
            ws.receive(batch)
        after = server.cpu_times()
        client.close()
        used = (after.user - before.user) + (after.system - before.system)
        return used / COUNT * 1e6
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    print(f"wsproto frame layer alone:        {wsproto_frame_layer():6.1f} µs CPU per message")
    print(f"nghttp2py whole server over h2:   {nghttp2py_server():6.1f} µs CPU per message")
