"""Helpers of the attack tests (test_attacks.py): the server and the honest client in
processes of their own, hand-made HPACK, and an attacker that floods from one thread
while it reads the server's answer in another.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import ROOT, TEST_LOOP, H2Connection
from rawh2 import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PRIORITY,
    RST_STREAM,
    WINDOW_UPDATE,
    RawH2,
    ended,
    frame,
    is_goaway,
    is_server_settings,
)

AUTHORITY = b"attack.test"

HERE = Path(__file__).resolve().parent
# The checkout whose nghttp2py the attack server runs (another one: to compare).
PACKAGE_ROOT = Path(os.environ.get("NGHTTP2PY_ATTACK_ROOT", ROOT))


def _env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.lower().endswith("_proxy")}
    env.update(PYTHONPATH=f"{PACKAGE_ROOT}{os.pathsep}{HERE}", NGHTTP2PY_LOOP=TEST_LOOP)
    return env


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0]:
        raise AssertionError(f"no line from {process.args} within {timeout} s")
    return lines[0].decode().strip()


class AttackServer:
    """tests/attack_server.py in a subprocess: ``port``, ``rss_kib()``, ``log()``."""

    def __init__(self, tmp_path: Path, settings: dict | None = None,
                 timeouts: dict | None = None) -> None:
        config = {"settings": settings or {}, "timeouts": timeouts or {}}
        self.log_path = tmp_path / f"attack-server-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 -- closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "attack_server.py"), json.dumps(config)],
            stdout=subprocess.PIPE, stderr=self._log, env=_env(), cwd=ROOT)
        self.port = int(_read_line(self.process, 15))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._log.close()


class HonestClient:
    """tests/honest_client.py against ``port``: a GET every 10 ms until ``finish()``."""

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "honest_client.py"), str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env())
        assert _read_line(self.process, 15) == "ready"

    def finish(self, linger: float = 0.2) -> dict:
        """Stop after ``linger`` more seconds; the response times (ms) and any error."""
        time.sleep(linger)
        assert self.process.stdin is not None
        self.process.stdin.close()
        result = json.loads(_read_line(self.process, 15))
        self.process.wait(5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return result

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- HPACK by hand (RFC 7541), so that a test says exactly what goes on the wire --------

def hpack_int(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """An HPACK integer with a ``prefix_bits`` prefix, OR-ed with ``flags``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes, *, indexed: bool = False) -> bytes:
    """A literal field with a new name; ``indexed`` adds it to the dynamic table."""
    first = hpack_int(0, 6, 0x40) if indexed else b"\x00"
    return first + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def request_block(authority: bytes, method: bytes = b"GET", path: bytes = b"/") -> bytes:
    """The four pseudo-headers, without touching the dynamic table."""
    method_field = {b"GET": b"\x82", b"POST": b"\x83"}[method]
    path_field = b"\x84" if path == b"/" else b"\x04" + hpack_int(len(path), 7) + path
    return (method_field + b"\x86" + path_field
            + b"\x01" + hpack_int(len(authority), 7) + authority)


# -- the attacks: each gives (setup frames, flood frames, the frame that ends the setup) -----


def hpack_bomb():
    """One 4,000-byte field in the dynamic table, then 50 header blocks of 16 KB that
    name it 16,000 times each (64 MB decoded per block)."""
    big = literal(b"x-bomb", b"a" * 4000, indexed=True)
    setup = frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(AUTHORITY) + big)
    bomb = request_block(AUTHORITY) + hpack_int(62, 7, 0x80) * 16000
    flood = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 3 + 2 * i, bomb)
                     for i in range(50))
    return setup, flood, ended(1)


def empty_data_flood():
    setup = frame(HEADERS, END_HEADERS, 1, request_block(AUTHORITY, b"POST"))
    return setup, frame(DATA, 0, 1) * 100_000, ended(1)


def priority_flood():
    setup = frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(AUTHORITY))
    flood = frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 15)) * 100_000
    return setup, flood, ended(1)


def window_update_on_closed_stream_flood():
    setup = frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(AUTHORITY))
    return setup, frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1)) * 100_000, ended(1)


def continuation_flood():
    """CVE-2024-27316 style: a header block that never ends."""
    start = frame(HEADERS, 0, 1, request_block(AUTHORITY))
    flood = frame(CONTINUATION, 0, 1, literal(b"x-more", b"m" * 100)) * 20_000
    return b"", start + flood, None


ATTACKS = {
    "hpack-bomb": hpack_bomb,
    "empty-data-flood": empty_data_flood,
    "priority-flood": priority_flood,
    "window-update-on-closed-stream-flood": window_update_on_closed_stream_flood,
    "continuation-flood": continuation_flood,
}


def rapid_reset(pairs: int = 5000):
    """CVE-2023-44487: HEADERS and RST_STREAM(CANCEL) pairs."""
    flood = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1,
                           request_block(AUTHORITY, path=b"/flood"))
                     + frame(RST_STREAM, 0, 2 * i + 1, struct.pack(">I", 0x8))
                     for i in range(pairs))
    return b"", flood, None


# -- the attacker --------------------------------------------------------------------------


@dataclass
class AttackResult:
    frames: list = field(default_factory=list)
    goaway: object | None = None
    # Seconds from the flood's first byte to the GOAWAY's arrival.
    goaway_after: float | None = None
    closed: bool = False


def attack(port: int, setup: bytes, flood: bytes, *, settle=None,
           timeout: float = 10) -> AttackResult:
    """Open a connection, send ``setup`` (then read until ``settle(frame)``, if given), then
    send ``flood`` from a thread while reading the server's frames until GOAWAY and EOF."""
    client = RawH2(port)
    try:
        client.frames_until(is_server_settings, 5)
        if setup:
            client.send(setup)
        if settle is not None:
            # A server that answers a request only once its body is in (nghttpd)
            # never ends the setup's stream: go on after a while.
            with contextlib.suppress(TimeoutError):
                client.frames_until(settle, 2)
        result = AttackResult()

        def send() -> None:
            with contextlib.suppress(OSError):  # the server may hang up on the flood
                client.sock.sendall(flood)

        started = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = started + timeout
        while time.monotonic() < deadline:
            try:
                received = client.read_frame(deadline)
            except (TimeoutError, OSError):
                break
            if received is None:
                result.closed = True
                break
            result.frames.append(received)
            if is_goaway(received) and result.goaway is None:
                result.goaway = received
                result.goaway_after = time.monotonic() - started
        sender.join(timeout)
        return result
    finally:
        client.close()


def server_stats(port: int) -> dict:
    """attack_server.py's ``/stats``, asked on a connection of its own."""
    client = H2Connection(port)
    try:
        response = client.response(client.request("/stats"), timeout=5)
    finally:
        client.close()
    return json.loads(bytes(response.body))
