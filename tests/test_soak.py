"""Soak: one million requests through one server (tests/attack_server.py, a process of
its own), with pushes, uploads, client resets and readers that stop reading mixed in.
After a warm-up, the server's resident memory must grow by less than 5%; once every
client has gone, no handler may be left."""
from __future__ import annotations

import re
import subprocess
import threading
import time

import h2.errors
import h2.events
import pytest
from attacks import AttackServer, server_stats

from conftest import H2Connection, require, wait_for
from rawh2 import RawH2, is_server_settings

pytestmark = pytest.mark.slow

WARM_UP = 100_000
GETS = 700_000
UPLOADS = 200_000


def h2load(port: int, requests: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [require("h2load"), "-n", str(requests), "-c", "4", "-m", "10", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def succeeded(process: subprocess.Popen, requests: int) -> None:
    output, _ = process.communicate(timeout=600)
    match = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", output)
    assert match and int(match.group(1)) == requests, output


def reset_big_responses(port: int, stop: threading.Event, done: list) -> None:
    """Ask for 1 MiB and reset the stream at its first DATA, over and over."""
    client = H2Connection(port)
    try:
        while not stop.is_set():
            stream_id = client.request("/big")

            def first_data(event, sid=stream_id) -> bool:
                if not isinstance(event, h2.events.DataReceived):
                    return False
                # Give the connection window back, for the DATA of reset streams too.
                client.conn.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
                return event.stream_id == sid

            client.events_until(first_data, timeout=10)
            client.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            client.flush()
            done.append(stream_id)
    finally:
        client.close()


def test_a_million_requests_leave_memory_flat_and_no_handler_behind(tmp_path):
    server = AttackServer(tmp_path)
    try:
        base = f"http://127.0.0.1:{server.port}"
        uris = tmp_path / "uris.txt"
        uris.write_text("".join(f"{base}{path}\n" for path in ["/"] * 8 + ["/push", "/x?q=1"]))
        upload = tmp_path / "upload.bin"
        upload.write_bytes(b"u" * 1024)
        succeeded(h2load(server.port, WARM_UP, "-i", str(uris)), WARM_UP)
        warm = server.rss_kib()

        # Readers that stop reading: a 1 MiB response each, held by flow control.
        slow = [RawH2(server.port) for _ in range(4)]
        for client in slow:
            client.frames_until(is_server_settings, 5)
            client.request(1, "/big")
        stop, resets = threading.Event(), []
        resetter = threading.Thread(target=reset_big_responses,
                                    args=(server.port, stop, resets), daemon=True)
        resetter.start()
        gets = h2load(server.port, GETS, "-i", str(uris))
        uploads = h2load(server.port, UPLOADS, "-d", str(upload), f"{base}/upload")
        succeeded(gets, GETS)
        succeeded(uploads, UPLOADS)
        stop.set()
        resetter.join(30)
        assert len(resets) > 100, len(resets)
        end = server.rss_kib()
        for client in slow:
            client.close()
        assert wait_for(lambda: server_stats(server.port)["connections"] == 1, 30)
        time.sleep(1.5)
        stats = server_stats(server.port)
        assert stats["live"] == 1, stats  # the handler answering this very request
        assert end < warm * 1.05, (warm, end)
    finally:
        server.stop()
