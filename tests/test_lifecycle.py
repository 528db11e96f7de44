"""Connection lifecycle: graceful shutdown (two GOAWAYs, shutdown_ping, shutdown_timeout,
SIGTERM under load) and the connection timeouts (handshake, SETTINGS ack, idle,
keep-alive PING).

Peers: the raw-frame client of rawh2.py (it can leave SETTINGS or PINGs
unacknowledged), the ``h2`` package, and h2load for the shutdown under load.
"""
from __future__ import annotations

import asyncio
import functools
import re
import signal
import socket
import ssl
import subprocess
import textwrap
import time

import pytest
from rawh1 import RawH1

from conftest import require, wait_for
from nghttp2py import BaseRequestHandler, ErrorCode, HTTP2Server, Timeouts
from rawh2 import RawH2, frames_of, goaways, is_goaway, kind, status_of

NOTICE_LAST_STREAM = 2**31 - 1


def is_final_goaway(f) -> bool:
    return is_goaway(f) and f.last_stream_id != NOTICE_LAST_STREAM


def read_until_eof(client: RawH2, timeout: float) -> tuple[list, list[tuple[float, object]]]:
    """Every frame until the server closes, each with its arrival time."""
    deadline = time.monotonic() + timeout
    timed = []
    while True:
        received = client.read_frame(deadline)
        if received is None:
            return [f for _, f in timed], timed
        timed.append((time.monotonic(), received))


# -- handlers --------------------------------------------------------------------------


class HelloHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_response(200, body=b"hello\n")


class LateHandler(BaseRequestHandler):
    """Answers after ``delay`` seconds (from the path: /late/<seconds>); /never never."""

    closed: list = []

    def on_headers(self):
        if self.path == b"/never":
            return
        delay = float(self.path.rsplit(b"/", 1)[1]) if self.path.startswith(b"/late/") else 0
        asyncio.get_running_loop().call_later(delay, self.send_response, 200, None, b"late\n")

    def on_close(self, error_code):
        LateHandler.closed.append((self.path, error_code))


def run_server(handler, main, **kwargs):
    """Run ``main(server, loop)`` (a coroutine function) next to a started server."""
    box: dict = {}

    async def run():
        server = HTTP2Server(("127.0.0.1", 0), handler, **kwargs)
        await server.start()
        try:
            await main(server, asyncio.get_running_loop(), box)
        finally:
            server.close()
            server.abort()
            await asyncio.wait_for(server.wait_closed(), 5)

    asyncio.run(asyncio.wait_for(run(), 30))
    return box


async def close_while_reading(server, loop, client, timeout: float) -> tuple[list, list, float]:
    """Close ``server`` while a thread reads ``client`` until EOF: the frames, the
    frames with their arrival times and how long ``wait_closed`` took."""
    reader = loop.run_in_executor(None, read_until_eof, client, timeout)
    started = time.monotonic()
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)
    elapsed = time.monotonic() - started
    frames, timed = await reader
    return frames, timed, elapsed


# -- graceful shutdown -------------------------------------------------------------------


def test_final_goaway_after_shutdown_ping_when_ping_is_not_acknowledged(raw_client):
    """A client that never answers the shutdown PING gets the final GOAWAY after
    ``Timeouts.shutdown_ping``; its in-flight stream still completes."""
    LateHandler.closed = []

    async def main(server, loop, box):
        client = RawH2(server.port, ack_pings=False)
        try:
            client.request(1, "/late/0.8")
            await asyncio.sleep(0.2)  # the stream is open on the server
            box["frames"], box["timed"], _ = await close_while_reading(server, loop, client, 10)
        finally:
            client.close()

    box = run_server(LateHandler, main, timeouts=Timeouts(shutdown_ping=0.4),
                     shutdown_timeout=10)
    frames, timed = box["frames"], box["timed"]
    notice, final = goaways(frames)
    assert (notice.last_stream_id, notice.error_code) == (NOTICE_LAST_STREAM, ErrorCode.NO_ERROR)
    assert (final.last_stream_id, final.error_code) == (1, ErrorCode.NO_ERROR)
    assert frames_of(frames, "PingFrame")
    arrival = {id(f): t for t, f in timed}
    waited = arrival[id(final)] - arrival[id(notice)]
    assert 0.3 <= waited < 0.75, waited  # shutdown_ping, not the stream's end (0.8 s)
    assert status_of(frames, 1) == b"200"
    assert frames.index(final) < max(i for i, f in enumerate(frames)
                                     if f.stream_id == 1 and "END_STREAM" in f.flags)
    assert LateHandler.closed == [(b"/late/0.8", 0)]


def test_final_goaway_follows_the_ping_ack_at_once(raw_client):
    async def main(server, loop, box):
        client = raw_client(server.port)  # acknowledges PINGs
        client.request(1, "/late/0.5")
        await asyncio.sleep(0.2)
        box["frames"], box["timed"], _ = await close_while_reading(server, loop, client, 10)

    box = run_server(LateHandler, main, timeouts=Timeouts(shutdown_ping=5.0),
                     shutdown_timeout=10)
    notice, final = goaways(box["frames"])
    arrival = {id(f): t for t, f in box["timed"]}
    assert notice.last_stream_id == NOTICE_LAST_STREAM and final.last_stream_id == 1
    assert arrival[id(final)] - arrival[id(notice)] < 0.2  # not the 5 s shutdown_ping
    assert status_of(box["frames"], 1) == b"200"


def test_request_sent_with_the_ping_ack_is_served_and_named(raw_client):
    """The final GOAWAY is decided after the whole read with the PING ACK is
    processed: a request that came in the same packet is served, and the GOAWAY
    names it, so the client never sees an answered stream called unprocessed."""
    from rawh2 import ACK, PING, frame

    async def main(server, loop, box):
        client = raw_client(server.port, ack_pings=False)
        client.request(1, "/late/0.3")
        await asyncio.sleep(0.1)
        server.close()
        frames = await loop.run_in_executor(
            None, client.frames_until, lambda f: type(f).__name__ == "PingFrame", 5)
        ping = frames_of(frames, "PingFrame")[-1]
        client.send(frame(PING, ACK, 0, bytes(ping.opaque_data))
                    + client.headers_frame(3, "/late/0"))
        frames += await loop.run_in_executor(
            None, client.frames_until, lambda f: f.stream_id == 1 and "END_STREAM" in f.flags, 5)
        box["frames"] = frames
        await asyncio.wait_for(server.wait_closed(), 5)

    box = run_server(LateHandler, main, timeouts=Timeouts(shutdown_ping=5.0))
    notice, final = goaways(box["frames"])
    assert notice.last_stream_id == NOTICE_LAST_STREAM
    assert (final.last_stream_id, final.error_code) == (3, ErrorCode.NO_ERROR)
    assert status_of(box["frames"], 3) == b"200"
    assert status_of(box["frames"], 1) == b"200"


def test_idle_connection_gets_the_final_goaway_at_once(raw_client):
    async def main(server, loop, box):
        client = raw_client(server.port)
        client.request(1, "/")
        await loop.run_in_executor(None, client.frames_until,
                                   lambda f: f.stream_id == 1 and "END_STREAM" in f.flags)
        await asyncio.sleep(0.1)
        box["frames"], _, box["elapsed"] = await close_while_reading(server, loop, client, 5)

    box = run_server(HelloHandler, main, timeouts=Timeouts(shutdown_ping=5.0))
    [goaway] = goaways(box["frames"])  # no notice, no PING round trip
    assert (goaway.last_stream_id, goaway.error_code) == (1, ErrorCode.NO_ERROR)
    assert not frames_of(box["frames"], "PingFrame")
    assert box["elapsed"] < 0.5


def test_connection_whose_first_request_is_on_the_way_is_not_refused(raw_client):
    """The drain begins after a new connection's preface but before its first request
    (curl writes them apart): the request is served, and the final GOAWAY names it,
    instead of a GOAWAY naming no stream that refuses it."""
    async def main(server, loop, box):
        client = raw_client(server.port)
        await loop.run_in_executor(None, client.frames_until,
                                   lambda f: kind(f) == "SettingsFrame" and "ACK" in f.flags)
        reader = loop.run_in_executor(None, read_until_eof, client, 5)
        server.close()
        await asyncio.sleep(0.1)
        client.request(1, "/")
        await asyncio.wait_for(server.wait_closed(), 5)
        box["frames"], _ = await reader

    box = run_server(HelloHandler, main, timeouts=Timeouts(shutdown_ping=0.5))
    assert status_of(box["frames"], 1) == b"200", box["frames"]
    final = [goaway.last_stream_id for goaway in goaways(box["frames"]) if is_final_goaway(goaway)]
    assert final == [1], box["frames"]


def test_https1_connection_whose_first_request_is_on_the_way_is_not_refused(server_ssl_context,
                                                                           certificate):
    """The same over TLS with ALPN http/1.1, where the connection is HTTP/1.1 from the
    handshake on: it is not closed under a request that is on its way."""
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    client_context.set_alpn_protocols(["http/1.1"])

    async def main(server, loop, box):
        # The handshake needs the server's loop: the client connects from a thread.
        with await loop.run_in_executor(
                None, functools.partial(RawH1, server.port, tls_context=client_context)) as client:
            assert client.sock.selected_alpn_protocol() == "http/1.1"
            await asyncio.sleep(0.1)  # the server has the connection and its protocol
            server.close()
            await asyncio.sleep(0.1)
            client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            box["responses"] = await loop.run_in_executor(None, client.until_closed)
        await asyncio.wait_for(server.wait_closed(), 5)  # TLS: once the client has closed

    box = run_server(HelloHandler, main, ssl=server_ssl_context,
                     timeouts=Timeouts(shutdown_ping=0.5))
    [response] = box["responses"]
    assert (response.version, response.status, response.body) == ("1.1", 200, b"hello\n")


def test_shutdown_timeout_aborts_what_is_still_running(raw_client):
    LateHandler.closed = []

    async def main(server, loop, box):
        client = raw_client(server.port)
        client.request(1, "/never")
        client.request(3, "/late/0.1")
        await asyncio.sleep(0.3)
        box["frames"], _, box["elapsed"] = await close_while_reading(server, loop, client, 10)
        box["eof"] = client.eof

    box = run_server(LateHandler, main, shutdown_timeout=0.6)
    assert 0.5 <= box["elapsed"] < 1.5, box["elapsed"]
    assert box["eof"]
    assert not any(f.stream_id == 1 and "END_STREAM" in f.flags for f in box["frames"])
    # The finished stream was answered before the shutdown; the hung one was cut off.
    closed = dict(LateHandler.closed)
    assert closed[b"/late/0.1"] == 0
    assert closed[b"/never"] != 0


H2LOAD_SERVER = textwrap.dedent("""\
    import asyncio, logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    counts = {"accepted": 0, "completed": 0, "failed": 0, "during_shutdown": 0}

    class Handler(BaseRequestHandler):
        def on_headers(self):
            counts["accepted"] += 1
            # Answer a little later, so that streams are in flight all the time: every
            # seventh one much later, so that some are whenever the signal comes (h2load
            # keeps its connections in step, and all of them can be between rounds).
            delay = 0.2 if counts["accepted"] % 7 == 0 else 0.005
            asyncio.get_running_loop().call_later(delay, self.send_response, 200, None, b"ok\\n")

        def on_close(self, error_code):
            counts["completed" if error_code == 0 else "failed"] += 1
            if error_code == 0 and self.http2.shutting_down:
                counts["during_shutdown"] += 1

    HTTP2Server(("127.0.0.1", 0), Handler, shutdown_timeout=10).serve_forever()
    print("COUNTS", counts["accepted"], counts["completed"], counts["failed"],
          counts["during_shutdown"], flush=True)
    """)


def test_sigterm_under_h2load_loses_no_started_stream(server_process):
    """SIGTERM to serve_forever() with 100 streams in flight (h2load -c 10 -m 10):
    every stream that reached the server is answered and h2load saw each answer;
    the server exits 0.

    h2load counts as "started" the requests it submits to its nghttp2 session, and
    nghttp2 never sends a request after the server's GOAWAY notice; those (at most
    one round, c x m) never reach the server and are not losses."""
    server = server_process(H2LOAD_SERVER)
    h2load = subprocess.Popen(
        [require("h2load"), "-n", "200000", "-c", "10", "-m", "10",
         f"http://127.0.0.1:{server.port}/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)  # let the load build up
        assert h2load.poll() is None, "h2load finished before the signal"
        server.send_signal(signal.SIGTERM)
        output, _ = h2load.communicate(timeout=30)
        code = server.wait(10)
    finally:
        if h2load.poll() is None:
            h2load.kill()
            h2load.wait()
    stdout, stderr = server.stdout, server.stderr
    assert code == 0, stderr
    assert "Traceback" not in stderr
    match = re.search(r"requests: 200000 total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", output)
    assert match, output
    started, done, succeeded, failed, errored, timeouts = map(int, match.groups())
    counts = re.search(r"COUNTS (\d+) (\d+) (\d+) (\d+)", stdout)
    assert counts, stdout
    accepted, completed, reset, during_shutdown = map(int, counts.groups())
    assert 0 < succeeded < 200000, output
    # Every stream the server accepted was answered, and h2load got every answer.
    assert (accepted, completed, reset) == (succeeded, succeeded, 0), (counts.groups(), output)
    # streams really were in flight at the signal
    assert during_shutdown > 0, (counts.groups(), output, stderr)
    assert timeouts == 0
    assert f"status codes: {succeeded} 2xx, 0 3xx, 0 4xx, 0 5xx" in output
    assert started - succeeded <= 10 * 10, output


# -- timeouts ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"handshake": 0}, {"settings_ack": -1}, {"idle": "1"}, {"keepalive": 0},
    {"keepalive_ack": None}, {"shutdown_ping": 0},
])
def test_timeouts_validation(kwargs):
    with pytest.raises(ValueError):
        Timeouts(**kwargs)


def test_timeouts_none_turns_one_off():
    assert Timeouts(handshake=None, settings_ack=None, idle=None).idle is None


def test_silent_client_closed_after_handshake_timeout(serve):
    """A client that sends nothing: neither HTTP/2 nor HTTP/1.1 is chosen, so the
    server just closes the connection when the handshake timeout is up."""
    server = serve(HelloHandler, timeouts=Timeouts(handshake=0.3))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    started = time.monotonic()
    try:
        received = sock.recv(65536)
    except ConnectionResetError:
        received = b""
    elapsed = time.monotonic() - started
    sock.close()
    assert received == b""
    assert 0.25 <= elapsed < 2.0, elapsed
    assert server.call(lambda: server.server.connections) == 0


def assert_settings_timeout_goaway(client) -> None:
    """The 0.3 s timeout fires: GOAWAY SETTINGS_TIMEOUT in time, then the close."""
    started = time.monotonic()
    frames, timed = read_until_eof(client, 5)
    [goaway] = goaways(frames)
    assert goaway.error_code == ErrorCode.SETTINGS_TIMEOUT
    arrival = {id(f): t for t, f in timed}
    assert 0.25 <= arrival[id(goaway)] - started < 2.0
    assert client.eof


def test_silent_client_of_an_http2_only_server_gets_goaway_settings_timeout(serve,
                                                                             raw_client):
    """HTTP/2 only: no preface in time gets the server's SETTINGS and GOAWAY
    SETTINGS_TIMEOUT, then the close."""
    server = serve(HelloHandler, timeouts=Timeouts(handshake=0.3), http1=False)
    client = raw_client(server.port, preface=False)
    assert_settings_timeout_goaway(client)
    assert wait_for(lambda: server.call(lambda: server.server.connections) == 0)


def test_handshake_timeout_does_not_hit_a_client_that_spoke(serve, raw_client):
    server = serve(HelloHandler, timeouts=Timeouts(handshake=0.3, idle=None))
    client = raw_client(server.port)
    client.request(1, "/")
    frames = client.frames_until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags)
    assert status_of(frames, 1) == b"200"
    with pytest.raises(TimeoutError):  # nothing (no GOAWAY, no close) for 0.8 s
        client.frames_until(lambda f: True, timeout=0.8)
    client.request(3, "/")
    frames = client.frames_until(lambda f: f.stream_id == 3 and "END_STREAM" in f.flags)
    assert status_of(frames, 3) == b"200"
    assert not goaways(frames)


def test_settings_not_acknowledged_gets_goaway_settings_timeout(serve, raw_client, log_records):
    server = serve(HelloHandler, timeouts=Timeouts(settings_ack=0.3))
    client = raw_client(server.port, ack_settings=False)
    assert_settings_timeout_goaway(client)
    assert any("SETTINGS not acknowledged" in r.getMessage() for r in log_records.records)


def test_idle_connection_gets_goaway_and_is_closed(serve, raw_client):
    server = serve(HelloHandler, timeouts=Timeouts(idle=0.4))
    client = raw_client(server.port)
    client.request(1, "/")
    client.frames_until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags)
    answered = time.monotonic()
    frames, timed = read_until_eof(client, 5)
    [goaway] = goaways(frames)
    assert (goaway.last_stream_id, goaway.error_code) == (1, ErrorCode.NO_ERROR)
    arrival = {id(f): t for t, f in timed}
    assert 0.3 <= arrival[id(goaway)] - answered < 1.5
    assert client.eof


def test_idle_timeout_spares_a_long_stream_and_applies_after_it(serve, raw_client):
    """A stream open longer than ``idle`` is not cut; once it is done, the connection
    is idle and is closed ``idle`` seconds later."""
    server = serve(LateHandler, timeouts=Timeouts(idle=0.4))
    client = raw_client(server.port)
    client.request(1, "/late/1.0")
    frames = client.frames_until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags, 5)
    answered = time.monotonic()
    assert status_of(frames, 1) == b"200"
    assert not goaways(frames)
    frames, timed = read_until_eof(client, 3)
    assert goaways(frames), "the connection was never closed for idleness"
    [goaway] = goaways(frames)
    assert (goaway.last_stream_id, goaway.error_code) == (1, ErrorCode.NO_ERROR)
    arrival = {id(f): t for t, f in timed}
    assert arrival[id(goaway)] - answered < 1.5
    assert client.eof


def test_keepalive_ping_answered_keeps_the_connection(serve, raw_client):
    server = serve(HelloHandler, timeouts=Timeouts(keepalive=0.3, keepalive_ack=0.3))
    client = raw_client(server.port)  # acknowledges PINGs
    client.request(1, "/")
    client.frames_until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags)
    deadline = time.monotonic() + 1.5
    pings = []
    while time.monotonic() < deadline:
        frame = client.read_frame(deadline + 0.5)
        assert frame is not None, "the server closed a connection that answers PINGs"
        if type(frame).__name__ == "PingFrame" and "ACK" not in frame.flags:
            pings.append(frame)
    assert len(pings) >= 2
    client.request(3, "/")
    frames = client.frames_until(lambda f: f.stream_id == 3 and "END_STREAM" in f.flags)
    assert status_of(frames, 3) == b"200"


def test_keepalive_ping_unanswered_closes_the_connection(serve):
    server = serve(HelloHandler, timeouts=Timeouts(keepalive=0.3, keepalive_ack=0.3))
    client = RawH2(server.port, ack_pings=False)
    try:
        client.request(1, "/")
        client.frames_until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags)
        answered = time.monotonic()
        frames, timed = read_until_eof(client, 5)
        closed = time.monotonic()
    finally:
        client.close()
    pings = [(t, f) for t, f in timed
             if type(f).__name__ == "PingFrame" and "ACK" not in f.flags]
    assert len(pings) == 1
    assert 0.2 <= pings[0][0] - answered < 1.0
    assert 0.2 <= closed - pings[0][0] < 1.5
    assert client.eof


def test_keepalive_off_by_default(serve, raw_client):
    server = serve(HelloHandler)
    client = raw_client(server.port)
    client.request(1, "/")
    client.frames_until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags)
    with pytest.raises(TimeoutError):
        client.frames_until(lambda f: True, timeout=0.6)
