"""A WebSocket-over-HTTP/2 client for the tests: RFC 8441 extended CONNECT with the ``h2``
package, and the WebSocket frames of ``wsproto`` (its ``FrameProtocol``), so that both
layers are peers we did not write.

``H2WebSocketClient(port)`` is one HTTP/2 connection; ``client.open(path)`` sends an
extended CONNECT and returns a ``ClientWebSocket`` for the stream; many can share the
connection, beside ordinary requests (``client.get``). ``raw_frame`` builds frames
byte by byte (masked, with any opcode, bits or payload) for the conformance tests,
where wsproto would refuse to send what a test needs.
"""
from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

TIMEOUT = 10.0


def raw_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
              masked: bool = True, length: int | None = None) -> bytes:
    """One client frame as bytes; ``rsv`` is the 3 RSV bits (4: RSV1), ``length`` may lie."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    masked_payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
                      ).to_bytes(len(payload), "big") if payload else b""
    return head + key + masked_payload


@dataclass
class Closed:
    code: int | None
    reason: str


@dataclass
class ClientWebSocket:
    """One WebSocket stream: the response to its CONNECT, then messages and frames."""

    client: H2WebSocketClient
    stream_id: int
    deflate: PerMessageDeflate | None = None
    protocol: FrameProtocol | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[str | bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    closed: Closed | None = None
    ended: bool = False
    reset: int | None = None
    received_bytes: int = 0
    local_ended: bool = False
    auto_pong: bool = True
    _parts: list = field(default_factory=list)

    # -- sending ---------------------------------------------------------------------

    def send_raw(self, data: bytes, end_stream: bool = False) -> None:
        self.local_ended = self.local_ended or end_stream
        self.client.send_data(self.stream_id, data, end_stream)

    def send(self, message: str | bytes, *, fin: bool = True) -> None:
        assert self.protocol is not None
        self.send_raw(bytes(self.protocol.send_data(message, fin)))

    def ping(self, payload: bytes = b"") -> None:
        assert self.protocol is not None
        self.send_raw(bytes(self.protocol.ping(payload)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        assert self.protocol is not None
        self.send_raw(bytes(self.protocol.close(code, reason)))

    def end(self) -> None:
        """End our side of the stream (like a TCP FIN)."""
        self.local_ended = True
        self.client.send_data(self.stream_id, b"", True)

    # -- receiving -------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        assert self.protocol is not None
        self.received_bytes += len(data)
        self.protocol.receive_bytes(data)
        for frame in self.protocol.received_frames():
            if frame.opcode is Opcode.PING:
                self.pings.append(bytes(frame.payload))
                if self.auto_pong:
                    self.send_raw(bytes(self.protocol.pong(frame.payload)))
            elif frame.opcode is Opcode.PONG:
                self.pongs.append(bytes(frame.payload))
            elif frame.opcode is Opcode.CLOSE:
                code, reason = frame.payload
                self.closed = Closed(int(code) if code is not None else None, reason or "")
            else:
                self._parts.append(frame.payload)
                if frame.message_finished:
                    parts, self._parts = self._parts, []
                    self.messages.append("".join(parts) if isinstance(parts[0], str)
                                         else b"".join(bytes(part) for part in parts))

    def receive(self, count: int = 1) -> list[str | bytes]:
        """Wait for ``count`` more messages and return (and forget) them."""
        self.client.wait(lambda: len(self.messages) >= count or self.ended
                         or self.reset is not None)
        taken, self.messages = self.messages[:count], self.messages[count:]
        assert len(taken) == count, (taken, self.closed, self.ended, self.reset)
        return taken

    def wait_closed(self) -> Closed:
        """Wait for the server's close frame and the end of its side of the stream."""
        self.client.wait(lambda: (self.closed is not None and self.ended)
                         or self.reset is not None)
        assert self.closed is not None, (self.reset, self.ended)
        return self.closed


class H2WebSocketClient:
    """One HTTP/2 connection (cleartext, or TLS with ALPN h2) able to open WebSockets."""

    def __init__(self, port: int, *, tls: bool = False, window: int | None = None,
                 auto_window: bool = True) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.authority = f"127.0.0.1:{port}"
        self.scheme = "https" if tls else "http"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.auto_window = auto_window
        self.websockets: dict[int, ClientWebSocket] = {}
        self.responses: dict[int, dict] = {}
        self.remote_settings_received = False
        self.closed = False
        self.flush()
        self.wait(lambda: self.remote_settings_received)

    def close(self) -> None:
        self.sock.close()

    @property
    def connect_protocol_enabled(self) -> bool:
        return bool(self.conn.remote_settings.enable_connect_protocol)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send ``data`` on the stream, waiting for window as the server grants it."""
        view = memoryview(data)
        while True:
            room = min(self.conn.local_flow_control_window(stream_id),
                       self.conn.max_outbound_frame_size)
            if room >= len(view) or room > 0:
                chunk = view[:room]
                view = view[len(chunk):]
                self.conn.send_data(stream_id, bytes(chunk),
                                    end_stream=end_stream and not view)
                self.flush()
                if not view:
                    return
            else:
                self.read_once()

    def open(self, path: str = "/", *, subprotocols: tuple[str, ...] = (),
             deflate: PerMessageDeflate | None = None, version: str = "13",
             extra: tuple[tuple[str, str], ...] = (), wait: bool = True) -> ClientWebSocket:
        """Send an extended CONNECT for a WebSocket on ``path``; wait for the response."""
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", "CONNECT"), (":protocol", "websocket"),
                   (":scheme", self.scheme), (":path", path), (":authority", self.authority),
                   ("sec-websocket-version", version)]
        if subprotocols:
            headers.append(("sec-websocket-protocol", ", ".join(subprotocols)))
        if deflate is not None:
            offer = deflate.offer()
            headers.append(("sec-websocket-extensions", deflate.name if offer is True
                            else f"{deflate.name}; {offer}"))
        headers.extend(extra)
        ws = ClientWebSocket(self, stream_id, deflate=deflate)
        self.websockets[stream_id] = ws
        self.conn.send_headers(stream_id, headers)
        self.flush()
        if wait:
            self.wait(lambda: ws.status is not None or ws.reset is not None)
        return ws

    def get(self, path: str) -> int:
        """Start an ordinary GET; its response lands in ``responses[stream_id]``."""
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [(":method", "GET"), (":scheme", self.scheme),
                                           (":path", path), (":authority", self.authority)],
                               end_stream=True)
        self.responses[stream_id] = {"status": None, "body": b"", "ended": False}
        self.flush()
        return stream_id

    def wait(self, condition, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.closed:
                raise AssertionError("the server closed the connection")
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            self.read_once(deadline - time.monotonic())

    def read_once(self, timeout: float = TIMEOUT) -> None:
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self.handle(event)
        self.flush()

    def acknowledge(self, stream_id: int, length: int) -> None:
        self.conn.acknowledge_received_data(length, stream_id)
        self.flush()

    def handle(self, event) -> None:
        stream_id = getattr(event, "stream_id", None)
        ws = self.websockets.get(stream_id) if stream_id else None
        response = self.responses.get(stream_id) if stream_id else None
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings_received = True
        elif isinstance(event, h2.events.ResponseReceived):
            headers = {k.decode(): v.decode() for k, v in event.headers}
            if ws is not None:
                ws.status = int(headers[":status"])
                ws.headers = headers
                if ws.status == 200:
                    extensions = []
                    if ws.deflate is not None and "sec-websocket-extensions" in headers:
                        ws.deflate.finalize(headers["sec-websocket-extensions"])
                        extensions.append(ws.deflate)
                    ws.protocol = FrameProtocol(client=True, extensions=extensions)
            elif response is not None:
                response["status"] = int(headers[":status"])
        elif isinstance(event, h2.events.DataReceived):
            if ws is not None:
                if ws.protocol is None:
                    ws.received_bytes += len(event.data)  # a refusal's body
                else:
                    ws.feed(event.data)
            elif response is not None:
                response["body"] += event.data
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            if ws is not None:
                ws.ended = True
                if ws.closed is not None and not ws.local_ended:
                    ws.end()  # the closing handshake is complete: end ours too
            elif response is not None:
                response["ended"] = True
        elif isinstance(event, h2.events.StreamReset):
            if ws is not None:
                ws.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True


__all__ = ["CloseReason", "ClientWebSocket", "H2WebSocketClient", "Opcode",
           "PerMessageDeflate", "raw_frame"]
