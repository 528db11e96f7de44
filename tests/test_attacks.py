"""Attacks from issue 13, each run next to an honest client on another connection.

The server (tests/attack_server.py) and the honest client (tests/honest_client.py,
a GET every 10 ms) run in processes of their own; the attacker runs here. Each test
asserts what SECURITY.md documents: the attacker gets the named GOAWAY within
``GOAWAY_WITHIN`` seconds, the honest client's slowest response stays under
``HONEST_MAX_MS`` and it is never disconnected, and the server's resident memory
grows by less than ``RSS_GROWTH_KIB``.

The bounds leave room for a loaded 2-core machine: unfixed, these attacks blew
them by far (the HPACK bomb held the loop for 540 ms; the floods and the
CONTINUATION flood never got a GOAWAY at all).
"""
from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import time

import pytest
from attacks import (
    ATTACKS,
    AUTHORITY,
    AttackServer,
    HonestClient,
    attack,
    literal,
    rapid_reset,
    request_block,
    server_stats,
)

from conftest import wait_for
from nghttp2py import ErrorCode
from rawh2 import ACK, DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS, frame

GOAWAY_WITHIN = 1.0
# Typically under 3 ms; the rest is room for a shared 2-core machine.
HONEST_MAX_MS = 150.0
# While thousands of connections open and close at once: 200-300 ms on a quiet
# machine (nghttpd: 135 ms), up to 700 ms seen while others' tests load it.
IDLE_HONEST_MAX_MS = 1000.0
RSS_GROWTH_KIB = 32 * 1024


@pytest.fixture(autouse=True)
def one_attack_at_a_time():
    """Attacks measure latency: never two at once, whichever xdist worker runs them."""
    with open(os.path.join(tempfile.gettempdir(), "nghttp2py-attack-tests.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
        fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def attack_server(tmp_path):
    """``attack_server(settings=..., timeouts=...)`` starts one; stopped after the test."""
    started: list[AttackServer] = []

    def start(**kwargs) -> AttackServer:
        started.append(AttackServer(tmp_path, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def honest():
    """``honest(port)`` starts an honest client; killed after the test if still running."""
    started: list[HonestClient] = []

    def start(port: int) -> HonestClient:
        started.append(HonestClient(port))
        return started[-1]

    yield start
    for client in started:
        client.kill()


def assert_fair(result, error_code: int, honest_stats: dict, rss_growth_kib: int) -> None:
    assert result.goaway is not None, \
        f"no GOAWAY; got {[type(f).__name__ for f in result.frames[:10]]}"
    assert ErrorCode(result.goaway.error_code) == ErrorCode(error_code)
    assert result.goaway_after < GOAWAY_WITHIN, result.goaway_after
    assert honest_stats["error"] is None, honest_stats
    assert honest_stats["max_ms"] < HONEST_MAX_MS, honest_stats
    assert rss_growth_kib < RSS_GROWTH_KIB, rss_growth_kib


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_gets_enhance_your_calm_and_honest_client_is_served(attack_server, honest, name):
    setup, flood, settle = ATTACKS[name]()
    server = attack_server()
    client = honest(server.port)
    rss_before = server.rss_kib()
    result = attack(server.port, setup, flood, settle=settle)
    # A second and a third attacker: the server must not have been worn down by the first.
    results = [result] + [attack(server.port, setup, flood, settle=settle) for _ in range(2)]
    stats = client.finish()
    for each in results:
        assert_fair(each, ErrorCode.ENHANCE_YOUR_CALM, stats, server.rss_kib() - rss_before)
    assert "closing connection from" in server.log()


def test_rapid_reset_reaches_no_handler(attack_server, honest):
    """CVE-2023-44487: HEADERS + RST_STREAM pairs. GOAWAY ENHANCE_YOUR_CALM within the
    reset budget, and the application never sees a stream reset in the same read as it
    was opened (a fair client's cancelled request costs no more)."""
    server = attack_server()
    client = honest(server.port)
    rss_before = server.rss_kib()
    setup, flood, settle = rapid_reset()
    result = attack(server.port, setup, flood, settle=settle)
    stats = client.finish()
    assert_fair(result, ErrorCode.ENHANCE_YOUR_CALM, stats, server.rss_kib() - rss_before)
    # The honest client's requests, this test's and a few pairs split across reads.
    created = server_stats(server.port)["created"]
    assert created - stats["count"] < 50, (created, stats["count"])


def test_preface_never_finished_gets_settings_timeout(attack_server, honest):
    """200 connections each send half the preface: each gets SETTINGS and GOAWAY
    SETTINGS_TIMEOUT once the handshake timeout (here 1 s) is up, then the close."""
    server = attack_server(timeouts={"handshake": 1.0})
    client = honest(server.port)
    sockets = []
    started = time.monotonic()
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(PREFACE[:12])
        sockets.append(sock)
    try:
        for sock in sockets:
            data = read_until_eof(sock, deadline=started + 4)
            assert goaway_codes(data) == [ErrorCode.SETTINGS_TIMEOUT]
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 1.0 + 2 * GOAWAY_WITHIN, elapsed
    finally:
        for sock in sockets:
            sock.close()
    stats = client.finish()
    assert stats["error"] is None and stats["max_ms"] < HONEST_MAX_MS, stats


def read_until_eof(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError(f"not closed in time; got {data!r}") from None
        if not chunk:
            return data
        data += chunk


def goaway_codes(data: bytes) -> list[int]:
    codes = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if data[3] == 0x7:
            codes.append(int.from_bytes(data[13:17], "big"))
        data = data[9 + length:]
    return codes


def trickle(sock: socket.socket, data: bytes, interval: float, deadline: float) -> bytes:
    """Send ``data`` one byte per ``interval`` until the server answers or closes."""
    sock.setblocking(False)
    received = b""
    for byte in data:
        if time.monotonic() > deadline:
            break
        try:
            sock.send(bytes((byte,)))
        except OSError:
            break
        time.sleep(interval)
        try:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
        except BlockingIOError:
            pass
        except OSError:
            return received
    sock.setblocking(True)
    return received + read_until_eof(sock, deadline)


def test_trickled_header_block_gets_goaway_after_request_header_timeout(attack_server,
                                                                         honest):
    """A header block sent one byte every 50 ms: GOAWAY ENHANCE_YOUR_CALM once the
    request-header timeout (here 1 s) is up, though each byte is traffic."""
    server = attack_server(timeouts={"request_header": 1.0})
    client = honest(server.port)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        block = request_block(AUTHORITY) + literal(b"x-slow", b"s" * 200)
        started = time.monotonic()
        received = trickle(sock, frame(HEADERS, END_HEADERS | END_STREAM, 1, block), 0.05,
                           started + 5)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert ErrorCode.ENHANCE_YOUR_CALM in goaway_codes(received)
    assert 1.0 <= elapsed < 1.0 + 2 * GOAWAY_WITHIN, elapsed
    stats = client.finish()
    assert stats["error"] is None and stats["max_ms"] < HONEST_MAX_MS, stats


def test_trickled_request_body_gets_goaway_below_the_minimum_rate(attack_server, honest):
    """A request body sent one byte every 50 ms (20 B/s, under min_rate=100 B/s):
    GOAWAY ENHANCE_YOUR_CALM after one rate period (request_header, here 1 s)."""
    server = attack_server(timeouts={"request_header": 1.0, "min_rate": 100})
    client = honest(server.port)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0)
                     + frame(HEADERS, END_HEADERS, 1, request_block(AUTHORITY, b"POST")))
        started = time.monotonic()
        received = trickle(sock, frame(DATA, 0, 1, b"b" * 200), 0.05, started + 5)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert ErrorCode.ENHANCE_YOUR_CALM in goaway_codes(received)
    assert elapsed < 2 * 1.0 + 2 * GOAWAY_WITHIN, elapsed
    stats = client.finish()
    assert stats["error"] is None and stats["max_ms"] < HONEST_MAX_MS, stats


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that finish the handshake, then say nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        sockets.append(sock)
    for sock in sockets:
        sock.recv(65536)  # the server's SETTINGS (and WINDOW_UPDATE)
        sock.sendall(frame(SETTINGS, ACK, 0))
    return sockets


@pytest.mark.parametrize("count", [
    pytest.param(2000, id="2000"),
    pytest.param(10_000, id="10000", marks=pytest.mark.slow),
])
def test_idle_connections_in_waves(attack_server, honest, count):
    """Two waves of idle connections, opened and closed next to the honest client: it
    stays served, at least half the memory a wave took is given back once it has
    closed, and the second wave leaves the server no bigger than the first."""
    server = attack_server()
    client = honest(server.port)
    before = server.rss_kib()
    peaks, after = [], []
    for _ in range(2):
        sockets = open_idle_connections(server.port, count)
        # The honest client's connection and the one asking.
        assert wait_for(lambda: server_stats(server.port)["connections"] == count + 2, 30)
        peaks.append(server.rss_kib())
        for sock in sockets:
            sock.close()
        assert wait_for(lambda: server_stats(server.port)["connections"] == 2, 30)
        time.sleep(1.5)  # memory is given back a second after a burst of closes
        after.append(server.rss_kib())
    stats = client.finish()
    assert stats["error"] is None and stats["max_ms"] < IDLE_HONEST_MAX_MS, stats
    assert after[0] - before < (peaks[0] - before) / 2, (before, peaks, after)
    assert after[1] < after[0] * 1.05 + 1024, (before, peaks, after)
