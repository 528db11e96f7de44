"""WebSocket echo load generator for the benchmark: many WebSockets, every echo checked.

    ws_load.py PORT --http 1|2 --connections C --in-flight W --size BYTES [--binary]
               [--path /ws] [--loop uvloop|asyncio]

It opens C connections to 127.0.0.1:PORT, each with one WebSocket: an RFC 6455
upgrade over HTTP/1.1 (``--http 1``) or an RFC 8441 extended CONNECT over HTTP/2
cleartext (``--http 2``, after the server announced SETTINGS_ENABLE_CONNECT_PROTOCOL),
and prints ``READY C``. The harness then drives it on stdin, one command a line:

* ``RUN N`` sends N messages spread over the WebSockets, each keeping W messages in
  flight (a new one goes out as each echo comes back), and prints one JSON line
  ``{"messages": N, "seconds": ..., "bytes": ...}`` once every echo is back;
* ``QUIT`` (or the end of stdin) closes every WebSocket with a close frame and exits.

Every echo is checked: it must be a message of the opcode sent (text or binary) whose
payload is exactly the message this WebSocket sent (each WebSocket sends its own
payload), and no more echoes than messages may come back. Pings are answered;
fragmented echoes are reassembled. Any error (a refused handshake, a wrong echo, a
close frame or a closed connection, ten seconds without an echo) prints
``{"error": "..."}`` and exits with status 1: a broken server cannot look fast.

It is built to cost the server's CPU core nothing and its own little: each
WebSocket's frame is masked once and re-sent as the same bytes (one masking key
per WebSocket, a simplification no server can tell), HTTP/2 frames are built by
hand (one DATA frame per message, as browsers send them; hpack decodes the one
response header block), and echoes are checked by comparing whole runs of bytes
against the expected echo frames, falling back to parsing frames one by one only
when the bytes differ (pings, fragments, coalesced or split frames).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, cast

READY, RUN, QUIT = "READY", "RUN", "QUIT"
STALL_SECONDS = 10.0
CLOSE_SECONDS = 2.0
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class LoadError(RuntimeError):
    """The server did not behave as an echo server should."""


# -- WebSocket frames -----------------------------------------------------------------


def _length_field(length: int, mask_bit: int) -> bytes:
    if length < 126:
        return bytes([mask_bit | length])
    if length < 1 << 16:
        return bytes([mask_bit | 126]) + struct.pack(">H", length)
    return bytes([mask_bit | 127]) + struct.pack(">Q", length)


def client_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 section 5.3)."""
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
              ).to_bytes(len(payload), "little")
    return bytes([0x80 | opcode]) + _length_field(len(payload), 0x80) + key + masked


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame: the echo a server sends for a whole message."""
    return bytes([0x80 | opcode]) + _length_field(len(payload), 0) + payload


def payload_for(index: int, size: int, binary: bool) -> bytes:
    """The message WebSocket ``index`` sends: its own, so that crossed echoes show."""
    tag = b"%08d:" % index
    if binary:
        body = bytes(range(256)) * (size // 256 + 1)
    else:
        body = b"abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1)
    return (tag + body)[:size]


class EchoReader:
    """Counts the echoes in one WebSocket's stream of server bytes, checking each.

    ``feed`` returns how many whole echoes the bytes completed. The fast path compares
    the bytes with a run of expected echo frames; anything else is parsed frame by frame.
    """

    def __init__(self, opcode: int, payload: bytes, in_flight: int,
                 on_ping: Callable[[bytes], None]) -> None:
        self.opcode, self.payload, self.on_ping = opcode, payload, on_ping
        self.echo = server_frame(opcode, payload)
        self.run = self.echo * max(1, min(in_flight, (1 << 20) // len(self.echo)))
        self.parts: list[bytes] = []
        self.size = 0
        self.need = 2  # bytes to wait for before looking (a whole frame once its header is in)
        self.fragments: list[bytes] | None = None  # a fragmented echo being reassembled

    def feed(self, data: bytes) -> int:
        self.parts.append(data)
        self.size += len(data)
        if self.size < self.need:
            return 0
        data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        self.parts.clear()
        count, pos = 0, 0
        echo_len, run = len(self.echo), self.run
        while self.fragments is None and len(data) - pos >= echo_len:
            whole = min((len(data) - pos) // echo_len * echo_len, len(run))
            if data[pos:pos + whole] != run[:whole]:
                break
            count += whole // echo_len
            pos += whole
        if pos < len(data):
            more, pos, self.need = self._parse(data, pos)
            count += more
        else:
            self.need = 2  # any frame: a close frame is shorter than an echo
        rest = data[pos:]
        self.size = len(rest)
        if rest:
            self.parts.append(rest)
        return count

    def _parse(self, data: bytes, pos: int) -> tuple[int, int, int]:
        """Frames one by one from pos: (echoes completed, end of the last whole frame,
        bytes needed before the next whole frame)."""
        count, end = 0, len(data)
        while True:
            if end - pos < 2:
                return count, pos, 2  # the next frame's header
            first, second = data[pos], data[pos + 1]
            if second & 0x80:
                raise LoadError("the server sent a masked frame")
            length, head = second & 0x7F, 2
            if length == 126:
                head = 4
            elif length == 127:
                head = 10
            if end - pos < head:
                return count, pos, head
            if head == 4:
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
            elif head == 10:
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
            if end - pos < head + length:
                return count, pos, head + length
            payload = data[pos + head:pos + head + length]
            pos += head + length
            count += self._frame(first & 0x80, first & 0x0F, payload)

    def _frame(self, fin: int, opcode: int, payload: bytes) -> int:
        """Handle one whole frame; 1 if it completed a correct echo."""
        if opcode == PING:
            self.on_ping(payload)
            return 0
        if opcode == PONG:
            return 0
        if opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            raise LoadError(f"the server closed the WebSocket (code {code}, "
                            f"{payload[2:].decode(errors='replace')!r})")
        if opcode not in (0x0, TEXT, BINARY) or (opcode == 0x0) == (self.fragments is None):
            raise LoadError(f"unexpected frame (opcode {opcode:#x})")
        if opcode:
            if opcode != self.opcode:
                raise LoadError(f"echo of opcode {opcode:#x}, sent {self.opcode:#x}")
            self.fragments = []
        assert self.fragments is not None
        self.fragments.append(payload)
        if not fin:
            return 0
        message, self.fragments = b"".join(self.fragments), None
        if message != self.payload:
            raise LoadError(f"the echo differs from the message sent ({len(message)} bytes "
                            f"back for {len(self.payload)}: {message[:40]!r})")
        return 1


# -- connections ----------------------------------------------------------------------


class Run:
    """One RUN command: how many echoes are still due, and when they were all back."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: int) -> None:
        self.pending = connections
        self.done = loop.create_future()
        self.echoes = 0
        self.finished = 0.0

    def connection_done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.done.done():
            self.finished = time.perf_counter()
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class EchoConnection(asyncio.Protocol):
    """One connection carrying one WebSocket that sends its message and counts echoes."""

    def __init__(self, index: int, opts: argparse.Namespace, failed: Callable[[str], None]
                 ) -> None:
        loop = asyncio.get_running_loop()
        self.index, self.port, self.path = index, opts.port, opts.path
        self.in_flight = opts.in_flight
        self.failed = failed
        opcode = BINARY if opts.binary else TEXT
        payload = payload_for(index, opts.size, opts.binary)
        self.key = os.urandom(4)
        self.frame = client_frame(opcode, payload, self.key)
        self.reader = EchoReader(opcode, payload, opts.in_flight, self.pong)
        self.opened = loop.create_future()
        self.closed = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.run: Run | None = None
        self.quota = self.sent = self.received = 0
        self.closing = False

    # The transport-specific part: framing of the upgrade and of the WebSocket bytes.

    def send_ws(self, data: bytes) -> None:
        raise NotImplementedError

    def send_messages(self, count: int) -> None:
        self.send_ws(self.frame * count)

    def pong(self, payload: bytes) -> None:
        self.send_ws(client_frame(PONG, payload, self.key))

    # Driving a run.

    def start(self, run: Run, quota: int) -> None:
        self.run, self.quota, self.sent, self.received = run, quota, 0, 0
        if quota == 0:
            run.connection_done()
            return
        first = min(self.in_flight, quota)
        self.sent = first
        self.send_messages(first)

    def ws_bytes(self, data: bytes) -> None:
        """Bytes of the WebSocket from the server: count the echoes, send the next messages."""
        if self.closing:
            return self._closing_bytes(data)
        try:
            count = self.reader.feed(data)
        except LoadError as exc:
            return self.fail(f"WebSocket {self.index}: {exc}")
        if not count:
            return
        run = self.run
        if run is None or self.received + count > self.sent:
            return self.fail(f"WebSocket {self.index}: more echoes than messages sent")
        self.received += count
        run.echoes += count
        more = min(count, self.quota - self.sent)
        if more > 0:
            self.sent += more
            self.send_messages(more)
        elif self.received == self.quota:
            run.connection_done()

    def _closing_bytes(self, data: bytes) -> None:
        # After our close frame: wait for the server's (anything else is ignored).
        try:
            self.reader.feed(data)
        except LoadError:
            if not self.closed.done():
                self.closed.set_result(None)

    def fail(self, message: str) -> None:
        self.failed(message)
        if self.run is not None:
            self.run.fail(LoadError(message))
        if not self.opened.done():
            self.opened.set_exception(LoadError(message))
            self.opened.exception()  # reported through `failed`, not as "never retrieved"
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.closing:
            self.fail(f"connection {self.index} closed by the server ({exc or 'EOF'})")

    def close(self) -> None:
        """Start the closing handshake (code 1000)."""
        self.closing = True
        self.send_ws(client_frame(CLOSE, struct.pack(">H", 1000), self.key))


class H1EchoConnection(EchoConnection):
    """RFC 6455: the HTTP/1.1 upgrade, then frames on the connection itself."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.handshake = b""
        key = base64.b64encode(os.urandom(16))
        self.accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.transport.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n"
                        % (self.path.encode(), self.port, key))

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return self.ws_bytes(data)
        self.handshake += data
        head, sep, rest = self.handshake.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        headers = {name.strip().lower(): value.strip() for name, sep, value in
                   (line.partition(b":") for line in lines[1:]) if sep}
        if len(status) < 2 or status[1] != b"101":
            return self.fail(f"the upgrade was answered {lines[0].decode(errors='replace')!r}")
        if headers.get(b"sec-websocket-accept") != self.accept:
            return self.fail("the 101 has no valid Sec-WebSocket-Accept")
        self.opened.set_result(None)
        if rest:
            self.ws_bytes(rest)
        return None

    def send_ws(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


# HTTP/2 frame types and flags (RFC 9113), and the settings this client uses.
DATA, HEADERS, RST_STREAM, SETTINGS, PING_FRAME, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_ENABLE_CONNECT_PROTOCOL = (
    0x4, 0x5, 0x8)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
RECEIVE_WINDOW = 16 << 20  # ours, per stream and for the connection
STREAM = 1  # the one WebSocket of each connection


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman (< 127 bytes)."""
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


class H2EchoConnection(EchoConnection):
    """RFC 8441: an extended CONNECT on stream 1, the WebSocket's bytes in its DATA frames."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import hpack

        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.decoder = hpack.Decoder()
        self.buffer = bytearray()
        self.header_block = b""
        self.settings_seen = False
        self.max_frame = 16384
        self.peer_initial_window = 65535
        self.send_window = self.stream_window = 65535
        self.pending = bytearray()  # WebSocket bytes waiting for the server's window
        self.unacked = 0  # received DATA bytes not yet given back with WINDOW_UPDATE
        self.stream_ended = False
        self.data_message = b""  # one message's DATA frame, once the frame size is known
        self.transport.write(PREFACE + h2_frame(SETTINGS, 0, 0, struct.pack(
            ">HIHI", 0x2, 0, SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW))
            + h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", RECEIVE_WINDOW - 65535)))

    def open_stream(self) -> None:
        block = b"".join(_literal(name, value) for name, value in (
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
            (":path", self.path), (":authority", f"127.0.0.1:{self.port}"),
            ("sec-websocket-version", "13")))
        assert self.transport is not None
        self.transport.write(h2_frame(HEADERS, END_HEADERS, STREAM, block))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if end - pos < 9 + length:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(buf[pos + 9:pos + 9 + length])
            pos += 9 + length
            if kind == DATA:
                self.on_data(stream, flags, payload)
            else:
                self.on_frame(kind, flags, stream, payload)
            if self.transport is None or self.transport.is_closing():
                return
        del buf[:pos]

    def on_data(self, stream: int, flags: int, payload: bytes) -> None:
        self.unacked += len(payload)
        if self.unacked >= RECEIVE_WINDOW // 2:
            increment = struct.pack(">I", self.unacked)
            self.unacked = 0
            assert self.transport is not None
            self.transport.write(h2_frame(WINDOW_UPDATE, 0, 0, increment)
                                 + h2_frame(WINDOW_UPDATE, 0, STREAM, increment))
        if stream != STREAM or not self.opened.done():
            return self.fail(f"connection {self.index}: DATA on stream {stream} before a 200")
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        if flags & END_STREAM:
            self.stream_ended = True
        if payload:
            self.ws_bytes(payload)
        if self.stream_ended and not self.closing:
            self.fail(f"WebSocket {self.index}: the server ended the stream")
        return None

    def on_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        assert self.transport is not None
        if kind == SETTINGS and not flags & ACK:
            self.on_settings(payload)
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream == 0:
                self.send_window += increment
            else:
                self.stream_window += increment
            self.flush()
        elif kind == PING_FRAME and not flags & ACK:
            self.transport.write(h2_frame(PING_FRAME, ACK, 0, payload))
        elif kind in (HEADERS, CONTINUATION):
            self.header_block += payload if kind == CONTINUATION else self._fragment(flags,
                                                                                     payload)
            if flags & END_HEADERS:
                self.on_headers(flags)
        elif kind == RST_STREAM:
            self.fail(f"WebSocket {self.index}: stream reset (error "
                      f"{int.from_bytes(payload, 'big')})")
        elif kind == GOAWAY and not self.closing:
            self.fail(f"connection {self.index}: GOAWAY (error "
                      f"{int.from_bytes(payload[4:8], 'big')})")

    @staticmethod
    def _fragment(flags: int, payload: bytes) -> bytes:
        """A HEADERS frame's header block fragment, without padding and priority."""
        start, end = 0, len(payload)
        if flags & PADDED:
            start, end = 1, end - payload[0]
        if flags & 0x20:  # PRIORITY
            start += 5
        return payload[start:end]

    def on_settings(self, payload: bytes) -> None:
        enabled = False
        for offset in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack_from(">HI", payload, offset)
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                self.stream_window += value - self.peer_initial_window
                self.peer_initial_window = value
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                self.max_frame = value
            elif ident == SETTINGS_ENABLE_CONNECT_PROTOCOL:
                enabled = value == 1
        assert self.transport is not None
        self.transport.write(h2_frame(SETTINGS, ACK, 0))
        if not self.settings_seen:
            self.settings_seen = True
            if not enabled:
                return self.fail("the server does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL "
                                 "(no WebSockets over HTTP/2, RFC 8441)")
            self.open_stream()
        self.flush()
        return None

    def on_headers(self, flags: int) -> None:
        headers = dict(self.decoder.decode(self.header_block, raw=True))
        self.header_block = b""
        if self.opened.done():
            return None  # trailers
        status = headers.get(b":status", b"none").decode()
        if status != "200":
            return self.fail(f"the extended CONNECT was answered {status}")
        if flags & END_STREAM:
            return self.fail("the 200 ended the stream")
        if len(self.frame) <= self.max_frame:
            self.data_message = h2_frame(DATA, 0, STREAM, self.frame)
        self.opened.set_result(None)
        return None

    def send_messages(self, count: int) -> None:
        """count messages, one DATA frame each, when the server's windows have room."""
        size = count * len(self.frame)
        if self.data_message and not self.pending and size <= min(self.send_window,
                                                                  self.stream_window):
            self.send_window -= size
            self.stream_window -= size
            assert self.transport is not None
            self.transport.write(self.data_message * count)
        else:
            self.send_ws(self.frame * count)

    def send_ws(self, data: bytes) -> None:
        self.pending += data
        self.flush()

    def flush(self) -> None:
        """Send waiting WebSocket bytes as far as the windows and the frame size allow."""
        if not self.pending or self.transport is None or not self.opened.done():
            return
        frames = []
        view = memoryview(self.pending)
        sent = 0
        while sent < len(view):
            room = min(self.send_window, self.stream_window, self.max_frame, len(view) - sent)
            if room <= 0:
                break
            frames.append(h2_frame(DATA, 0, STREAM, bytes(view[sent:sent + room])))
            sent += room
            self.send_window -= room
            self.stream_window -= room
        view.release()
        del self.pending[:sent]
        if frames:
            self.transport.write(b"".join(frames))

    def close(self) -> None:
        super().close()
        self.flush()


# -- the driver -----------------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    """total spread over parts as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def serve_commands(opts: argparse.Namespace) -> int:
    """Open the WebSockets, then obey RUN/QUIT lines from stdin."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    cls = H1EchoConnection if opts.http == 1 else H2EchoConnection
    connections: list[EchoConnection] = []

    async def connect(index: int) -> None:
        _, protocol = await loop.create_connection(lambda: cls(index, opts, errors.append),
                                                   "127.0.0.1", opts.port)
        connections.append(protocol)
        await asyncio.wait_for(protocol.opened, STALL_SECONDS)

    try:
        await asyncio.gather(*(connect(i) for i in range(opts.connections)))
    except (OSError, LoadError, asyncio.TimeoutError) as exc:
        return report({"error": errors[0] if errors else f"connecting: {exc!r}"})
    print(f"{READY} {len(connections)}", flush=True)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == QUIT:
            break
        if line[0] != RUN:
            return report({"error": f"unknown command {line!r}"})
        result = await run_messages(loop, connections, int(line[1]), errors)
        if "error" in result:
            return report(result)
        print(json.dumps(result), flush=True)
    for connection in connections:
        connection.close()
    await asyncio.wait([c.closed for c in connections], timeout=CLOSE_SECONDS)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return 0


async def run_messages(loop: asyncio.AbstractEventLoop, connections: list[EchoConnection],
                       total: int, errors: list[str]) -> dict[str, Any]:
    """Send total messages over the connections; wait for every echo (or an error)."""
    if errors:
        return {"error": errors[0]}
    run = Run(loop, len(connections))
    started = time.perf_counter()
    for connection, quota in zip(connections, split(total, len(connections))):
        connection.start(run, quota)
    last = -1
    while not run.done.done():
        if run.echoes == last:
            return {"error": f"stalled: {run.echoes} of {total} echoes back, none in the last "
                             f"{STALL_SECONDS:.0f} s"}
        last = run.echoes
        await asyncio.wait([run.done], timeout=STALL_SECONDS)
    if run.done.exception() is not None:
        return {"error": errors[0] if errors else str(run.done.exception())}
    size = len(connections[0].reader.payload)
    return {"messages": total, "seconds": run.finished - started, "bytes": total * size}


def report(result: dict[str, Any]) -> int:
    """Print the error line; exit status 1."""
    print(json.dumps(result), flush=True)
    return 1


# -- the harness's side ---------------------------------------------------------------


class LoadProcess:
    """ws_load.py in a subprocess, driven by the harness: ``with LoadProcess(cmd) as load:
    load.run(n)``. Every error of the load generator is raised as LoadError."""

    def __init__(self, command: list[str], timeout: float) -> None:
        self.command, self.timeout = command, timeout
        self.lines: queue.Queue[str] = queue.Queue()
        self.noise: list[str] = []  # stray output (tracebacks), for the error message
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LoadProcess:
        self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                       daemon=True)
        self.reader.start()
        try:
            line = self._answer()
            if not line.startswith(READY):
                raise LoadError(json.loads(line).get("error", line))
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def run(self, count: int) -> dict[str, Any]:
        """Send count messages; the load generator's result (messages, seconds, bytes)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{RUN} {count}\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._answer())
        if "error" in result:
            raise LoadError(result["error"])
        return result

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            if line.startswith((READY, "{")):
                self.lines.put(line.strip())
            else:
                self.noise = (self.noise + [line.rstrip()])[-5:]
        self.lines.put("")

    def _answer(self) -> str:
        """The next protocol line (a JSON error line when the load generator died)."""
        try:
            line = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            raise LoadError(f"ws_load.py did not answer within {self.timeout:.0f} s") from None
        if not line:
            raise LoadError("ws_load.py exited: " + (" / ".join(self.noise) or "no output"))
        return line

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(OSError):  # it may have exited already
            proc.stdin.write(f"{QUIT}\n")
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=CLOSE_SECONDS + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.reader.join(timeout=5)
        proc.stdout.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--http", type=int, choices=(1, 2), required=True)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=1,
                        help="messages each WebSocket keeps in flight")
    parser.add_argument("--size", type=int, default=32, help="message size in bytes")
    parser.add_argument("--binary", action="store_true", help="binary messages (default text)")
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    return parser.parse_args(argv)


def main() -> int:
    opts = parse_args()
    if opts.loop == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop
    loop = factory()
    try:
        return loop.run_until_complete(serve_commands(opts))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
