"""``--proxy-protocol``: the PROXY protocol (v1 text, v2 binary) in front of each connection.

A load balancer that speaks it (nghttpx, HAProxy, AWS NLB) starts every
connection with a header naming the real client, before TLS or HTTP/2. The
header is read here, byte-exactly (a buffered protocol that asks the transport
for no more than the header's remaining length), so nothing after it is
consumed; then TLS is started if the server has a certificate, and the
connection is handed to the HTTP/2 protocol with the client address the header
named. A connection whose first bytes are not a valid header is closed.

Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl as _ssl
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["ProxyProtocolError", "ProxyProtocolReader", "parse_v1", "parse_v2"]

logger = logging.getLogger("nghttp2py")

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_LENGTH = 107
HEADER_TIMEOUT = 10.0

Address = tuple[str, int]


class ProxyProtocolError(ValueError):
    """A PROXY protocol header that is malformed."""


def parse_v1(line: bytes) -> Address | None:
    """The source address of a v1 header line (``PROXY TCP4 ...\\r\\n``); None for UNKNOWN."""
    if not line.startswith(b"PROXY ") or not line.endswith(b"\r\n"):
        raise ProxyProtocolError("not a PROXY protocol v1 line")
    parts = line[:-2].decode("ascii", "replace").split(" ")
    if parts[1] == "UNKNOWN":
        return None
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyProtocolError(f"bad PROXY v1 line {line!r}")
    try:
        address = ipaddress.ip_address(parts[2])
        port = int(parts[4])
    except ValueError:
        raise ProxyProtocolError(f"bad PROXY v1 line {line!r}") from None
    if (address.version == 4) != (parts[1] == "TCP4") or not 0 <= port <= 65535:
        raise ProxyProtocolError(f"bad PROXY v1 line {line!r}")
    return str(address), port


def parse_v2(header: bytes) -> Address | None:
    """The source address of a whole v2 header; None for LOCAL or a non-IP family."""
    if not header.startswith(V2_SIGNATURE) or len(header) < 16:
        raise ProxyProtocolError("not a PROXY protocol v2 header")
    version_command, family, length = struct.unpack("!BBH", header[12:16])
    if version_command >> 4 != 2 or (version_command & 0xF) not in (0, 1):
        raise ProxyProtocolError("bad PROXY v2 version or command")
    body = header[16:16 + length]
    if version_command & 0xF == 0:  # LOCAL: the proxy's own connection (health checks)
        return None
    if family >> 4 == 1 and len(body) >= 12:
        source = socket.inet_ntop(socket.AF_INET, body[0:4])
        return source, struct.unpack("!H", body[8:10])[0]
    if family >> 4 == 2 and len(body) >= 36:
        source = socket.inet_ntop(socket.AF_INET6, body[0:16])
        return source, struct.unpack("!H", body[32:34])[0]
    return None


class _Readdressed(asyncio.Transport):
    """A transport whose ``peername`` is the client the PROXY header named."""

    def __init__(self, transport: asyncio.Transport, peer: Address | None) -> None:
        super().__init__()
        self._transport = transport
        self._peer = peer
        self.write = transport.write  # type: ignore[method-assign]
        self.is_closing = transport.is_closing  # type: ignore[method-assign]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername" and self._peer is not None:
            return self._peer
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class ProxyProtocolReader(asyncio.BufferedProtocol):
    """Reads one PROXY header, then hands the connection to ``make_protocol()``.

    ``ssl``: start TLS after the header (the certificate is the server's).
    """

    def __init__(self, make_protocol: Callable[[], asyncio.BufferedProtocol],
                 ssl: _ssl.SSLContext | None, loop: asyncio.AbstractEventLoop) -> None:
        self._make_protocol = make_protocol
        self._ssl = ssl
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._buffer = bytearray(V1_MAX_LENGTH)
        self._wanted = 8  # enough to tell v1 ("PROXY ") from v2's signature
        self._timer: asyncio.TimerHandle | None = None
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = self._loop.call_later(HEADER_TIMEOUT, self._fail,
                                            "no PROXY protocol header in time")

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never more than the header still needs: what follows is not ours.
        return memoryview(self._buffer)[:self._wanted - len(self._received)]

    def buffer_updated(self, nbytes: int) -> None:
        self._received += self._buffer[:nbytes]
        try:
            self._advance()
        except ProxyProtocolError as exc:
            self._fail(str(exc))

    def _advance(self) -> None:
        received = bytes(self._received)
        if len(received) < self._wanted:
            return
        if received.startswith(V2_SIGNATURE[:8]):
            if len(received) < 16:
                self._wanted = 16
                return
            total = 16 + struct.unpack("!H", received[14:16])[0]
            if len(self._buffer) < total:
                self._buffer = bytearray(total)
            if len(received) < total:
                self._wanted = total
                return
            self._finish(parse_v2(received))
        elif received.startswith(b"PROXY "):
            if received.endswith(b"\r\n"):
                self._finish(parse_v1(received))
            elif len(received) >= V1_MAX_LENGTH:
                raise ProxyProtocolError("PROXY v1 line too long")
            else:
                self._wanted = len(received) + 1  # one byte at a time, up to CRLF
        else:
            raise ProxyProtocolError("the connection did not start with a PROXY header")

    def _finish(self, peer: Address | None) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
        transport = self._transport
        assert transport is not None
        protocol = self._make_protocol()
        if self._ssl is None:
            transport.set_protocol(protocol)
            protocol.connection_made(_Readdressed(transport, peer))
            return
        transport.pause_reading()
        self._loop.create_task(self._start_tls(transport, protocol, peer))

    async def _start_tls(self, transport: asyncio.Transport, protocol: asyncio.BufferedProtocol,
                         peer: Address | None) -> None:
        try:
            tls = await self._loop.start_tls(transport, protocol, self._ssl,  # type: ignore[arg-type]
                                             server_side=True)
        except (OSError, _ssl.SSLError, ConnectionError) as exc:
            logger.info("TLS handshake after the PROXY header from %s failed: %s", peer, exc)
            transport.close()
            return
        if tls is None:
            return
        protocol.connection_made(_Readdressed(tls, peer))

    def _fail(self, reason: str) -> None:
        if self._done or self._transport is None:
            return
        self._done = True
        logger.info("closing connection from %s: %s",
                    self._transport.get_extra_info("peername"), reason)
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
