"""A WebSocket-over-HTTP/1.1 client for the tests: the RFC 6455 opening handshake of
``wsproto`` (its ``H11Handshake``, which checks ``Sec-WebSocket-Accept``), then the frames
of wsproto's ``FrameProtocol`` on a plain socket, so that both layers are peers we did not
write.

``H1WebSocketClient(port)`` opens WebSockets, each on its own connection, with the
interface of tests/wsh2.py's ``H2WebSocketClient``: ``client.open(path)`` returns the same
``ClientWebSocket`` (``send``/``send_raw``/``receive``/``wait_closed``...), so tests can run
over either protocol. Its ``ended`` is the server's TCP FIN, and ``end()`` shuts our side.
"""
from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable

from wsh2 import TIMEOUT, ClientWebSocket, PerMessageDeflate
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.frame_protocol import FrameProtocol
from wsproto.handshake import H11Handshake


class H1WebSocketClient:
    """WebSockets over HTTP/1.1 to one server: one TCP (or TLS) connection each."""

    def __init__(self, port: int, *, tls: bool = False) -> None:
        self.port = port
        self.tls = tls
        self.sockets: dict[int, socket.socket] = {}
        self.websockets: dict[int, ClientWebSocket] = {}
        self.handshakes: dict[int, H11Handshake] = {}
        self.response_heads: dict[int, bytes] = {}
        self.next_id = 1
        self.closed = False  # what H2WebSocketClient.wait looks at; never set here

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
        return sock

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()

    def open(self, path: str = "/", *, subprotocols: tuple[str, ...] = (),
             deflate: PerMessageDeflate | None = None,
             extra: tuple[tuple[str, str], ...] = (), wait: bool = True,
             after: bytes = b"") -> ClientWebSocket:
        """Connect and send the opening handshake for ``path`` (then ``after``, bytes
        pipelined behind it); wait for the response."""
        stream_id, self.next_id = self.next_id, self.next_id + 2
        handshake = H11Handshake(ConnectionType.CLIENT)
        request = handshake.send(Request(
            host=f"127.0.0.1:{self.port}", target=path, subprotocols=list(subprotocols),
            extensions=[deflate] if deflate is not None else [],
            extra_headers=[(k.encode(), v.encode()) for k, v in extra]))
        sock = self.connect()
        self.sockets[stream_id] = sock
        self.handshakes[stream_id] = handshake
        ws = ClientWebSocket(self, stream_id, deflate=deflate)  # type: ignore[arg-type]
        self.websockets[stream_id] = ws
        sock.sendall(request + after)
        if wait:
            self.wait(lambda: ws.status is not None or ws.ended)
        return ws

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        sock = self.sockets[stream_id]
        if data:
            sock.sendall(data)
        if end_stream:
            sock.shutdown(socket.SHUT_WR)

    def wait(self, condition, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            open_ = {sock: sid for sid, sock in self.sockets.items()
                     if not self.websockets[sid].ended}
            if not open_:
                raise AssertionError("every connection is closed")
            readable, _, _ = select.select(list(open_), [], [], min(
                max(deadline - time.monotonic(), 0.01), 0.1))
            for sock in readable:
                self.read(open_[sock], sock)

    def read(self, stream_id: int, sock: socket.socket) -> None:
        ws = self.websockets[stream_id]
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        if not data:
            ws.ended = True
            if not ws.local_ended:
                ws.end()  # the server has closed first: close ours
            return
        handshake = self.handshakes.get(stream_id)
        if handshake is None:
            ws.feed(data)
            return
        handshake.receive_data(data)
        head = self.response_heads[stream_id] = self.response_heads.get(stream_id, b"") + data
        for event in handshake.events():
            if isinstance(event, AcceptConnection):
                del self.handshakes[stream_id]
                ws.status = 101
                # (wsproto's event leaves the WebSocket fields out: from the head.)
                end = head.index(b"\r\n\r\n")
                ws.headers = {name.decode().strip().lower(): value.decode().strip()
                              for name, _, value in (line.partition(b":") for line
                                                     in head[:end].split(b"\r\n")[1:])}
                ws.protocol = FrameProtocol(client=True, extensions=list(event.extensions))
                # Frames the server sent right behind its 101.
                trailing = head[end + 4:]
                if trailing:
                    ws.feed(trailing)
            elif isinstance(event, RejectConnection):
                ws.status = event.status_code
                ws.headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, RejectData):
                ws.received_bytes += len(event.data)


__all__ = ["H1WebSocketClient"]


def send_until_stalled(send: Callable[[], None], total: int) -> tuple[list[int], threading.Thread]:
    """Call ``send`` ``total`` times from a thread until the sends stop progressing for
    0.5 s (the server no longer reads); the indexes sent so far, and the thread."""
    sent: list[int] = []

    def send_all() -> None:
        for i in range(total):
            send()
            sent.append(i)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    last, stalled_since = -1, time.monotonic()
    while time.monotonic() - stalled_since < 0.5:
        if len(sent) != last:
            last, stalled_since = len(sent), time.monotonic()
        time.sleep(0.05)
    return sent, sender
