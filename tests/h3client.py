"""An HTTP/3 test client on aioquic's client (a peer we did not write).

``async with h3_connect(port) as client:`` then ``await client.request(...)``;
each answer is an :class:`H3Response` with its informational responses,
final status, headers, body, trailers, and the reset code if the server
reset the stream. The server's control stream is read too, so that a test
can see its GOAWAY frames (aioquic's H3Connection skips them).
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset
from wsh2 import raw_frame
from wsproto.frame_protocol import FrameProtocol

# RFC 9114 section 7.2.6 and 6.2.1.
GOAWAY = 0x7
CONTROL_STREAM_TYPE = 0x0
# The server's first unidirectional stream (RFC 9000 section 2.1) is its control stream.
SERVER_CONTROL_STREAM = 3


@dataclass
class H3Response:
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] | None = None
    reset: int | None = None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key == name]
        return values[0] if values else None

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class H3Client(QuicConnectionProtocol):
    """aioquic's QUIC client with its H3Connection; one H3Response per request stream."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, H3Response] = {}
        self.goaways: list[int] = []
        self.terminated: ConnectionTerminated | None = None
        self._control = bytearray()

    def quic_event_received(self, event) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == SERVER_CONTROL_STREAM:
            self._control += event.data
            self._read_control()
        if isinstance(event, StreamReset) and event.stream_id in self.responses:
            response = self.responses[event.stream_id]
            response.reset = event.error_code
            response.finish()
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for response in self.responses.values():
                response.finish()
        for h3_event in self.h3.handle_event(event):
            response = self.responses.get(h3_event.stream_id)
            if response is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                headers = list(h3_event.headers)
                fields = [(name, value) for name, value in headers if not name.startswith(b":")]
                status = dict(headers).get(b":status")
                if status is None:
                    response.trailers = fields
                elif int(status) < 200:
                    response.informational.append((int(status), fields))
                else:
                    response.status = int(status)
                    response.headers = fields
            elif isinstance(h3_event, DataReceived):
                response.body += h3_event.data
            if h3_event.stream_ended:
                response.finish()

    def _read_control(self) -> None:
        """GOAWAY frames on the server's control stream (after its type byte)."""
        buf = Buffer(data=bytes(self._control))
        try:
            if buf.pull_uint_var() != CONTROL_STREAM_TYPE:
                return
            while not buf.eof():
                start = buf.tell()
                try:
                    frame_type = buf.pull_uint_var()
                    length = buf.pull_uint_var()
                    payload = buf.pull_bytes(length)
                except BufferReadError:
                    self._control = bytearray(self._control[start:])
                    self._control[:0] = bytes([CONTROL_STREAM_TYPE])
                    return
                if frame_type == GOAWAY:
                    self.goaways.append(Buffer(data=payload).pull_uint_var())
            self._control = bytearray([CONTROL_STREAM_TYPE])
        except BufferReadError:
            return

    def start_request(self, method: str = "GET", path: str = "/", headers=(),
                      body: bytes | None = None, end: bool = True, trailers=None) -> int:
        """Send a request's head (and body) on a new stream; its id."""
        stream_id = self._quic.get_next_available_stream_id()
        self.responses[stream_id] = H3Response()
        fields = [(b":method", method.encode()), (b":scheme", b"https"),
                  (b":authority", b"localhost"), (b":path", path.encode()),
                  *[(name.encode() if isinstance(name, str) else name,
                     value.encode() if isinstance(value, str) else value)
                    for name, value in headers]]
        self.h3.send_headers(stream_id, fields, end_stream=body is None and end
                             and trailers is None)
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=end and trailers is None)
        if trailers is not None:
            self.h3.send_headers(stream_id, trailers, end_stream=True)
        self.transmit()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self.h3.send_data(stream_id, data, end_stream=end)
        self.transmit()

    def reset(self, stream_id: int, error_code: int = 0x10C) -> None:
        """Cancel a request: RESET_STREAM and STOP_SENDING (H3_REQUEST_CANCELLED)."""
        self._quic.reset_stream(stream_id, error_code)
        self._quic.stop_stream(stream_id, error_code)
        self.transmit()

    async def response(self, stream_id: int, timeout: float = 10) -> H3Response:
        response = self.responses[stream_id]
        await asyncio.wait_for(asyncio.shield(response.done), timeout)
        return response

    async def request(self, method: str = "GET", path: str = "/", headers=(),
                      body: bytes | None = None, trailers=None, timeout: float = 10
                      ) -> H3Response:
        stream_id = self.start_request(method, path, headers, body, trailers=trailers)
        return await self.response(stream_id, timeout)


@contextlib.asynccontextmanager
async def h3_connect(port: int, host: str = "127.0.0.1", **options) -> AsyncIterator[H3Client]:
    """An HTTP/3 connection to ``host:port`` (the test certificate is not verified)."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                      verify_mode=ssl.CERT_NONE, server_name="localhost",
                                      **options)
    async with connect(host, port, configuration=configuration,
                       create_protocol=H3Client) as client:
        yield client  # type: ignore[misc]


async def websocket_echo(client, path: str = "/echo") -> tuple[list, object]:
    """Open a WebSocket with extended CONNECT, send one text message and a close;
    the frames the server sent back, and the stream's response."""
    stream_id = client.start_request(
        "CONNECT", path, headers=[(b":protocol", b"websocket"),
                                  (b"sec-websocket-version", b"13")], end=False)
    response = client.responses[stream_id]
    while response.status is None and not response.done.done():
        await asyncio.sleep(0.01)
    assert response.status == 200, response
    client.send_body(stream_id, raw_frame(0x1, "héllo €".encode()))
    while not response.body:
        await asyncio.sleep(0.01)
    client.send_body(stream_id, raw_frame(0x8, (1000).to_bytes(2, "big")), end=True)
    await client.response(stream_id)
    frames = FrameProtocol(client=True, extensions=[])
    frames.receive_bytes(bytes(response.body))
    return [(frame.opcode, frame.payload) for frame in frames.received_frames()], response
