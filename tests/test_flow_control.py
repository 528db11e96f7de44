"""Request flow control: the window is given back only as the application consumes data.

``pause_reading()`` holds a stream's data (no ``on_data``, no WINDOW_UPDATE) so the
client stalls at the stream window (``ServerSettings.initial_window_size``) or at
the connection window (``connection_window_size``); ``resume_reading()`` delivers
what was held, in order. The ``h2`` package plays the uploading client and
reports exactly how much it was allowed to send. The 1 GiB proof runs the server
as a subprocess (its RSS alone) against curl.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import textwrap
import threading
import time

import h2.events
import psutil
import pytest

from conftest import H2Connection, digest, require, wait_for
from nghttp2py import BaseRequestHandler, ServerSettings


class Stalled(Exception):
    pass


def read_for(client: H2Connection, seconds: float) -> list:
    """The events that arrive in the next ``seconds``."""
    deadline = time.monotonic() + seconds
    events = []
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            received = client.receive(remaining)
        except socket.timeout:
            break
        assert received is not None, "the server closed the connection"
        events.extend(received)
        client.flush()
    return events


def stream_window_updates(events, stream_id: int) -> int:
    return sum(e.delta for e in events
               if isinstance(e, h2.events.WindowUpdated) and e.stream_id == stream_id)


class RecordingHandler(BaseRequestHandler):
    """Pauses /pause* in on_headers; /hold-in-data after its first chunk.

    Answers with the length and SHA-256 of what on_data got; ``log`` records the
    order of the hooks.
    """

    instances: list = []

    def on_headers(self):
        self.chunks = []
        self.log = ["headers"]
        self.closed = threading.Event()
        if self.path.startswith(b"/pause"):
            self.pause_reading()
        RecordingHandler.instances.append(self)

    def on_data(self, data):
        assert not self.reading_paused
        self.chunks.append(data)
        self.log.append("data")
        if self.path == b"/hold-in-data" and len(self.chunks) == 1:
            self.pause_reading()
            self.paused_at = time.monotonic()
            asyncio.get_running_loop().call_later(0.4, self.resume_reading)

    def on_request_done(self):
        self.log.append("done")
        body = b"".join(self.chunks)
        self.send_response(200, body=digest(body).encode())

    def on_close(self, error_code):
        self.closed.set()


def handler(server, index: int = 0) -> RecordingHandler:
    return server.call(lambda: RecordingHandler.instances[index])


def test_paused_stream_stalls_the_client_at_the_stream_window(serve, h2_client):
    RecordingHandler.instances = []
    server = serve(RecordingHandler, settings=ServerSettings(initial_window_size=100_000))
    client = h2_client(server.port)
    data = os.urandom(400_000)
    stream_id = client.request("/pause", "POST", end_stream=False)
    events: list = []
    sent = client.pump(stream_id, data, 0, events=events)
    assert sent == 100_000  # exactly the stream window, then nothing more
    assert stream_window_updates(events, stream_id) == 0
    paused = handler(server)
    assert server.call(lambda: (paused.reading_paused, len(paused.chunks))) == (True, 0)
    time.sleep(0.2)
    assert client.pump(stream_id, data, sent) == sent  # still held
    server.call(paused.resume_reading)
    assert server.call(lambda: paused.reading_paused) is False
    sent = client.pump(stream_id, data, sent, quiet=5, events=events)
    assert sent == len(data)
    got = client.read_streams(events, stream_id)[stream_id]
    assert (got.status, got.body.decode()) == (200, digest(data))  # in order
    assert stream_window_updates(events, stream_id) >= len(data) - 100_000


def test_paused_streams_stall_the_client_at_the_connection_window(serve, h2_client):
    """Two paused streams: the client may send ``connection_window_size`` bytes in all
    (each stream at most ``initial_window_size``), then no WINDOW_UPDATE comes."""
    RecordingHandler.instances = []
    settings = ServerSettings(initial_window_size=150_000, connection_window_size=200_000)
    server = serve(RecordingHandler, settings=settings)
    client = h2_client(server.port)
    first, second = os.urandom(300_000), os.urandom(300_000)
    a = client.request("/pause-a", "POST", end_stream=False)
    b = client.request("/pause-b", "POST", end_stream=False)
    events: list = []
    sent_a = client.pump(a, first, 0, events=events)
    sent_b = client.pump(b, second, 0, events=events)
    assert sent_a == 150_000
    assert sent_b == 50_000
    assert client.conn.outbound_flow_control_window == 0
    connection_updates = [e for e in events
                          if isinstance(e, h2.events.WindowUpdated) and e.stream_id == 0]
    # Only the initial raise to 200 000; nothing was given back while paused.
    assert sum(e.delta for e in connection_updates) == 200_000 - 65_535
    for h in (handler(server, 0), handler(server, 1)):
        server.call(h.resume_reading)
    deadline = time.monotonic() + 20
    while (sent_a, sent_b) != (len(first), len(second)) and time.monotonic() < deadline:
        sent_a = client.pump(a, first, sent_a, quiet=0.1, events=events)
        sent_b = client.pump(b, second, sent_b, quiet=0.1, events=events)
    assert (sent_a, sent_b) == (len(first), len(second))
    got = client.read_streams(events, a, b)
    assert (got[a].status, got[a].body) == (200, digest(first).encode())
    assert (got[b].status, got[b].body) == (200, digest(second).encode())


def test_request_done_waits_while_reading_is_paused(serve, h2_client):
    RecordingHandler.instances = []
    server = serve(RecordingHandler)
    client = h2_client(server.port)
    data = os.urandom(50_000)
    stream_id = client.request("/pause", "POST", end_stream=False)
    events: list = []
    assert client.pump(stream_id, data, 0, events=events) == len(data)  # with END_STREAM
    time.sleep(0.4)
    paused = handler(server)
    assert server.call(lambda: list(paused.log)) == ["headers"]
    events += read_for(client, 0.3)
    assert not [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    server.call(paused.resume_reading)
    got = client.read_streams(events, stream_id)[stream_id]
    assert (got.status, got.body) == (200, digest(data).encode())
    log = server.call(lambda: list(paused.log))
    assert log[0] == "headers" and log[-1] == "done" and set(log[1:-1]) == {"data"}


def test_request_trailers_set_before_request_done_when_paused(serve, h2_client):
    class TrailerHandler(RecordingHandler):
        def on_request_done(self):
            self.send_response(200, body=repr(self.trailers).encode())

    RecordingHandler.instances = []
    server = serve(TrailerHandler)
    client = h2_client(server.port)
    stream_id = client.request("/pause", "POST", body=b"x" * 1000, end_stream=False)
    client.conn.send_headers(stream_id, [("x-checksum", "abc")], end_stream=True)
    client.flush()
    time.sleep(0.2)
    server.call(handler(server).resume_reading)
    got = client.response(stream_id)
    assert (got.headers[":status"], got.body) == ("200", b"[(b'x-checksum', b'abc')]")


def test_pause_inside_on_data_holds_the_next_chunks(serve, h2_client):
    RecordingHandler.instances = []
    server = serve(RecordingHandler)
    client = h2_client(server.port)
    data = os.urandom(200_000)
    stream_id = client.request("/hold-in-data", "POST", end_stream=False)
    events: list = []
    sent = client.pump(stream_id, data, 0, quiet=5, events=events)
    assert sent == len(data)  # fits the 1 MiB window: the client never stalls
    got = client.read_streams(events, stream_id)[stream_id]
    assert (got.status, got.body) == (200, digest(data).encode())
    h = handler(server)
    chunks = server.call(lambda: len(h.chunks))
    assert chunks > 1


def test_no_on_data_call_while_paused_in_on_data(serve, h2_client):
    """The call_later(0.4) resume is the only way on with /hold-in-data: the time between
    the first and second on_data is at least the pause."""
    class TimingHandler(RecordingHandler):
        def on_data(self, data):
            self.times = getattr(self, "times", []) + [time.monotonic()]
            super().on_data(data)

    RecordingHandler.instances = []
    server = serve(TimingHandler)
    client = h2_client(server.port)
    data = os.urandom(100_000)
    stream_id = client.request("/hold-in-data", "POST", end_stream=False)
    events: list = []
    client.pump(stream_id, data, 0, quiet=5, events=events)
    got = client.read_streams(events, stream_id)[stream_id]
    assert (got.status, got.body) == (200, digest(data).encode())
    h = handler(server)
    times = server.call(lambda: list(h.times))
    assert len(times) >= 2
    assert times[1] - times[0] >= 0.35


def test_sync_on_data_gives_the_window_back_on_return(serve, h2_client):
    """With a 64 KiB window, a 1 MiB upload only completes if every consumed chunk is
    returned to the client by WINDOW_UPDATE."""
    RecordingHandler.instances = []
    server = serve(RecordingHandler, settings=ServerSettings(initial_window_size=65_535))
    client = h2_client(server.port)
    data = os.urandom(1 << 20)
    stream_id = client.request("/upload", "POST", end_stream=False)
    events: list = []
    assert client.pump(stream_id, data, 0, quiet=5, events=events) == len(data)
    got = client.read_streams(events, stream_id)[stream_id]
    assert (got.status, got.body) == (200, digest(data).encode())
    given_back = stream_window_updates(events, stream_id)
    assert len(data) - 65_535 <= given_back <= len(data)


def test_resume_reading_after_the_stream_closed_is_harmless(serve, h2_client):
    RecordingHandler.instances = []
    server = serve(RecordingHandler)
    client = h2_client(server.port)
    stream_id = client.request("/pause", "POST", body=b"x" * 10_000, end_stream=False)
    assert wait_for(lambda: server.call(lambda: len(RecordingHandler.instances)) == 1)
    h = handler(server)
    client.conn.reset_stream(stream_id, 8)
    client.flush()
    assert h.closed.wait(5)
    server.call(h.resume_reading)
    assert server.call(lambda: h.chunks) == []
    # The connection is still fine, and the held bytes were returned to its window.
    data = os.urandom(2 << 20)
    other = client.request("/upload", "POST", end_stream=False)
    events: list = []
    assert client.pump(other, data, 0, quiet=5, events=events) == len(data)
    got = client.read_streams(events, other)[other]
    assert (got.status, got.body) == (200, digest(data).encode())


# -- 1 GiB upload to a slow consumer -------------------------------------------------------

SLOW_CONSUMER_SERVER = textwrap.dedent("""\
    import asyncio, logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    state = {"fast": False, "consumed": 0}

    class Handler(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/fast":
                state["fast"] = True
                self.send_response(200, body=b"fast\\n")
            elif self.path == b"/stats":
                self.send_response(200, body=str(state["consumed"]).encode())

        async def on_data(self, data):
            if not state["fast"]:
                await asyncio.sleep(len(data) / 10e6)  # 10 MB/s
            state["consumed"] += len(data)

        def on_request_done(self):
            if self.path == b"/upload":
                self.send_response(200, body=str(state["consumed"]).encode())

    HTTP2Server(("127.0.0.1", 0), Handler).serve_forever()
    """)

GIB = 1 << 30
MIB = 1 << 20


def control(client: H2Connection, path: str) -> str:
    got = client.response(client.request(path))
    assert got.headers[":status"] == "200"
    return got.body.decode()


@pytest.mark.slow
def test_1gib_upload_to_a_slow_consumer_is_held_by_flow_control(server_process):
    process = server_process(SLOW_CONSUMER_SERVER)
    port = process.port
    server = psutil.Process(process.proc.pid)
    curl = None
    try:
        controls = H2Connection(port)
        assert control(controls, "/stats") == "0"
        baseline = server.memory_info().rss
        curl = subprocess.Popen(
            [require("curl"), "-sS", "--http2-prior-knowledge", "--max-time", "60",
             "-T", "-",
             f"http://127.0.0.1:{port}/upload"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        written = [0]

        def feed():
            block = bytes(64 << 10)
            try:
                while written[0] < GIB:
                    curl.stdin.write(block)
                    written[0] += len(block)
                curl.stdin.close()
            except (BrokenPipeError, ValueError):
                pass

        writer = threading.Thread(target=feed, daemon=True)
        started = time.monotonic()
        writer.start()
        peak = baseline
        while time.monotonic() - started < 3.0:
            time.sleep(0.1)
            peak = max(peak, server.memory_info().rss)
        consumed = int(control(controls, "/stats"))
        sent = written[0]
        slow_elapsed = time.monotonic() - started
        assert peak - baseline < 32 * MIB, f"server RSS grew {(peak - baseline) / MIB:.1f} MiB"
        # Held to the consumer: ~10 MB/s for ~3 s, plus at most the windows in flight
        # (1 MiB stream window, curl's and the pipe's buffers).
        assert 10e6 * (slow_elapsed - 1.5) < consumed < 10e6 * (slow_elapsed + 0.5), consumed
        assert sent <= consumed + 16 * MIB, (sent, consumed)
        assert control(controls, "/fast") == "fast\n"
        fast_started = time.monotonic()
        writer.join(30)  # (communicate() would close curl's stdin early)
        assert not writer.is_alive()
        assert written[0] == GIB
        out, err = curl.stdout.read(), curl.stderr.read()  # curl --max-time bounds these
        curl.wait(10)
        fast_elapsed = time.monotonic() - fast_started
        assert curl.returncode == 0, err
        assert out == str(GIB).encode()
        assert fast_elapsed < 15, f"the rest of the upload took {fast_elapsed:.1f} s"
        controls.close()
    finally:
        if curl is not None and curl.poll() is None:
            curl.kill()
            curl.wait()
