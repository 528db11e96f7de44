"""A raw-frame HTTP/2 client for the tests, built on ``hyperframe``/``hpack``.

Used where ``h2`` would refuse to send what a test needs (malformed or hostile
frames, unacknowledged SETTINGS or PINGs) or cannot read what the server
legitimately sends (``h2`` treats any frame after a GOAWAY as a protocol error).
The ``raw_client`` fixture (conftest.py) opens these and closes them after the test.
"""
from __future__ import annotations

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((type_, flags)) \
        + struct.pack(">I", stream_id) + payload


def settings_payload(**values: int) -> bytes:
    ids = {"header_table_size": 1, "enable_push": 2, "max_concurrent_streams": 3,
           "initial_window_size": 4, "max_frame_size": 5, "max_header_list_size": 6}
    return b"".join(struct.pack(">HI", ids[name], value) for name, value in values.items())


class RawH2:
    """A client that writes frames byte by byte and reads them with hyperframe.

    Received frames are ``hyperframe`` objects; HEADERS frames get ``.fields``
    (decoded with ``hpack``). Server SETTINGS and PINGs are acknowledged at once
    unless ``ack_settings`` / ``ack_pings`` is false. ``preface=False`` sends
    nothing on connect; ``rcvbuf`` sets the socket's SO_RCVBUF.
    """

    def __init__(self, port: int, settings: bytes = b"", *, preface: bool = True,
                 rcvbuf: int | None = None, ack_settings: bool = True,
                 ack_pings: bool = True) -> None:
        import hpack

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buffer = b""
        self.eof = False
        self.authority = f"127.0.0.1:{port}".encode()
        self.ack_settings = ack_settings
        self.ack_pings = ack_pings
        if preface:
            self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def header_block(self, path: str = "/", method: str = "GET", extra=()) -> bytes:
        return self.encoder.encode([
            (b":method", method.encode()), (b":scheme", b"http"),
            (b":authority", self.authority), (b":path", path.encode()), *extra])

    def headers_frame(self, stream_id: int, path: str = "/", method: str = "GET",
                      extra=(), end_stream: bool = True) -> bytes:
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id,
                     self.header_block(path, method, extra))

    def request(self, stream_id: int, path: str = "/", **kwargs) -> None:
        self.send(self.headers_frame(stream_id, path, **kwargs))

    def read_frame(self, deadline: float):
        """The next frame, or None once the server has closed (``eof`` is then set)."""
        from hyperframe.frame import Frame, HeadersFrame, PingFrame, SettingsFrame

        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    header, body = self.buffer[:9], self.buffer[9:9 + length]
                    self.buffer = self.buffer[9 + length:]
                    received, _ = Frame.parse_frame_header(memoryview(header))
                    received.parse_body(memoryview(body))
                    if isinstance(received, HeadersFrame):
                        received.fields = self.decoder.decode(bytes(received.data), raw=True)
                    elif (isinstance(received, SettingsFrame) and "ACK" not in received.flags
                          and self.ack_settings):
                        self.send(frame(SETTINGS, ACK, 0))
                    elif (isinstance(received, PingFrame) and "ACK" not in received.flags
                          and self.ack_pings):
                        self.send(frame(PING, ACK, 0, bytes(received.opaque_data)))
                    return received
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(262144)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return None
            self.buffer += data

    def frames_until(self, predicate, timeout: float = 10) -> list:
        """Frames read until one matches ``predicate`` or the server closes."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                received = self.read_frame(deadline)
            except BrokenPipeError:
                received = None
            if received is None:
                return seen
            seen.append(received)
            if predicate(received):
                return seen

    def close(self) -> None:
        self.sock.close()


def kind(f) -> str:
    return type(f).__name__


def frames_of(frames, type_name: str, stream_id: int | None = None) -> list:
    return [f for f in frames if kind(f) == type_name
            and (stream_id is None or f.stream_id == stream_id)]


def status_of(frames, stream_id: int) -> bytes | None:
    for f in frames_of(frames, "HeadersFrame", stream_id):
        return dict(f.fields).get(b":status")
    return None


def body_of(frames, stream_id: int) -> bytes:
    return b"".join(bytes(f.data) for f in frames_of(frames, "DataFrame", stream_id))


def is_end(f) -> bool:
    return kind(f) in ("DataFrame", "HeadersFrame") and "END_STREAM" in f.flags


def is_goaway(f) -> bool:
    return kind(f) == "GoAwayFrame"


def is_server_settings(f) -> bool:
    """The server's own SETTINGS (not an ACK): the handshake has been read."""
    return kind(f) == "SettingsFrame" and "ACK" not in f.flags


def goaways(frames) -> list:
    return frames_of(frames, "GoAwayFrame")


def ended(stream_id: int):
    """A predicate true for the frame that ends ``stream_id``."""
    def predicate(f) -> bool:
        return f.stream_id == stream_id and is_end(f)
    return predicate


def until_streams_done(stream_ids):
    """A predicate true once every stream in ``stream_ids`` has ended or been reset."""
    pending = set(stream_ids)

    def predicate(f) -> bool:
        if f.stream_id in pending and (is_end(f) or kind(f) == "RstStreamFrame"):
            pending.discard(f.stream_id)
        return not pending or is_goaway(f)
    return predicate
