"""WebSocket handshakes: RFC 6455 (HTTP/1.1), RFC 8441 (HTTP/2 extended CONNECT) and the
permessage-deflate negotiation of RFC 7692.

A handshake happens once per WebSocket, so it is plain Python here; the frames
themselves are read and written by the engine (src/websocket.pxi), whose
:class:`WebSocket` class this module re-exports.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["DeflateParameters", "HandshakeError", "WebSocketClosed", "accept_key",
           "handshake", "negotiate_deflate", "offered_subprotocols"]

# RFC 6455 section 1.3: appended to Sec-WebSocket-Key before hashing it.
_KEY_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The deflate window the server compresses with, and asks the client to
# compress with when the client lets it choose: 2**12 bytes of history instead
# of zlib's 2**15, so that each WebSocket's zlib state stays small (about
# 20 KiB to compress and 5 KiB to decompress, against 260 KiB and 40 KiB).
DEFAULT_WINDOW_BITS = 12
# zlib cannot make raw deflate streams with a 2**8 window (it uses 2**9).
_MIN_WINDOW_BITS = 9


class WebSocketClosed(Exception):
    """The WebSocket is closed: raised by ``send()`` and ``receive()`` once it is.

    ``code`` is the close code (RFC 6455 section 7.4: 1000 normal, 1001 going
    away, 1002 protocol error, 1006 closed without a close frame, 1007
    invalid UTF-8, 1009 message too big, 1011 server error); ``reason`` the
    text sent with it.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed with code {self.code}" + (f": {self.reason}" if self.reason
                                                            else "")


class HandshakeError(Exception):
    """The request is not a valid WebSocket opening handshake: answer ``status``."""

    def __init__(self, status: int, message: str,
                 headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


@dataclass(frozen=True)
class DeflateParameters:
    """The permessage-deflate parameters agreed with one client (RFC 7692 section 7).

    ``server_*`` apply to the messages the server compresses, ``client_*`` to
    those it decompresses; ``*_window_bits`` are zlib window sizes (9-15).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_window_bits: int = DEFAULT_WINDOW_BITS
    client_window_bits: int = 15
    # Whether the response names the window sizes (only where the offer did).
    announce_server_bits: bool = False
    announce_client_bits: bool = False

    def response(self) -> bytes:
        """The ``sec-websocket-extensions`` value that accepts the offer."""
        parts = [b"permessage-deflate"]
        if self.server_no_context_takeover:
            parts.append(b"server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append(b"client_no_context_takeover")
        if self.announce_server_bits:
            parts.append(b"server_max_window_bits=%d" % self.server_window_bits)
        if self.announce_client_bits:
            parts.append(b"client_max_window_bits=%d" % self.client_window_bits)
        return b"; ".join(parts)


def accept_key(key: bytes) -> bytes:
    """The ``sec-websocket-accept`` value for a client's ``sec-websocket-key``."""
    return base64.b64encode(hashlib.sha1(key.strip() + _KEY_GUID).digest())


def _header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every comma-separated element of the header fields called ``name``."""
    return [item.strip() for field, value in headers if field == name
            for item in value.split(b",") if item.strip()]


def offered_subprotocols(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The subprotocols a client offers in ``sec-websocket-protocol``, in its order."""
    return [value.decode("latin-1") for value in _header_values(headers,
                                                                 b"sec-websocket-protocol")]


def _extension_offers(headers: Iterable[tuple[bytes, bytes]]
                      ) -> list[tuple[bytes, list[tuple[bytes, bytes | None]]]]:
    """The client's extension offers, in its order of preference, as (name, params)."""
    offers = []
    for element in _header_values(headers, b"sec-websocket-extensions"):
        name, *params = (part.strip() for part in element.split(b";"))
        parsed: list[tuple[bytes, bytes | None]] = []
        for param in params:
            key, sep, value = param.partition(b"=")
            parsed.append((key.strip().lower(),
                           value.strip().strip(b'"') if sep else None))
        offers.append((name.lower(), parsed))
    return offers


def _window_bits(value: bytes | None) -> int | None:
    if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
        return None
    return int(value)


def negotiate_deflate(headers: Iterable[tuple[bytes, bytes]],
                      window_bits: int = DEFAULT_WINDOW_BITS) -> DeflateParameters | None:
    """The first permessage-deflate offer the server can accept, or None.

    An offer is declined if a parameter is unknown, repeated or out of range,
    or if it limits the server's window to 2**8 (which zlib cannot produce).
    """
    for name, params in _extension_offers(headers):
        if name != b"permessage-deflate":
            continue
        seen: dict[bytes, bytes | None] = {}
        valid = True
        for key, value in params:
            if key in seen or key not in (b"server_no_context_takeover",
                                          b"client_no_context_takeover",
                                          b"server_max_window_bits", b"client_max_window_bits"):
                valid = False
                break
            seen[key] = value
        if not valid:
            continue
        if any(seen.get(key) is not None for key in (b"server_no_context_takeover",
                                                           b"client_no_context_takeover")):
            continue
        server_bits = window_bits
        announce_server = b"server_max_window_bits" in seen
        if announce_server:
            limit = _window_bits(seen[b"server_max_window_bits"])
            if limit is None or limit < _MIN_WINDOW_BITS:
                continue
            server_bits = min(server_bits, limit)
        client_bits = 15
        announce_client = b"client_max_window_bits" in seen
        if announce_client:
            offered = seen[b"client_max_window_bits"]
            limit = 15 if offered is None else _window_bits(offered)
            if limit is None:
                continue
            client_bits = min(max(window_bits, _MIN_WINDOW_BITS), limit)
        return DeflateParameters(
            server_no_context_takeover=b"server_no_context_takeover" in seen,
            client_no_context_takeover=b"client_no_context_takeover" in seen,
            server_window_bits=server_bits, client_window_bits=client_bits,
            announce_server_bits=announce_server, announce_client_bits=announce_client)
    return None


def handshake(http_version: str, method: bytes | None, headers: list[tuple[bytes, bytes]],
              subprotocol: str | bytes | None, compression: bool
              ) -> tuple[int, list[tuple[bytes, bytes]], DeflateParameters | None]:
    """Check a WebSocket opening request and build the response that accepts it.

    Returns the status (``200`` on HTTP/2 and HTTP/3, ``101`` on HTTP/1.1), the response
    header fields (for HTTP/1.1 without ``upgrade``/``connection``, which the
    protocol adds to a 101 itself) and the permessage-deflate parameters if
    compression was offered and is wanted. Raises :class:`HandshakeError`
    with the status to answer instead, and ``ValueError`` if ``subprotocol``
    is not one the client offered.
    """
    if http_version in ("2", "3"):  # RFC 8441, RFC 9220: extended CONNECT
        if method != b"CONNECT":
            raise HandshakeError(
                400, f"a WebSocket over HTTP/{http_version} is opened with CONNECT")
        status = 200
    else:
        if method != b"GET":
            raise HandshakeError(400, "a WebSocket over HTTP/1.1 is opened with GET")
        status = 101
    versions = _header_values(headers, b"sec-websocket-version")
    if versions != [b"13"]:
        raise HandshakeError(426, "only WebSocket version 13 is supported",
                             [(b"sec-websocket-version", b"13")])
    response: list[tuple[bytes, bytes]] = []
    if status == 101:
        keys = [value for field, value in headers if field == b"sec-websocket-key"]
        try:
            valid_key = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
        except binascii.Error:
            valid_key = False
        if not valid_key:
            raise HandshakeError(400, "missing or invalid sec-websocket-key")
        response.append((b"sec-websocket-accept", accept_key(keys[0])))
    if subprotocol is not None:
        chosen = subprotocol.encode("ascii") if isinstance(subprotocol, str) else subprotocol
        if chosen not in _header_values(headers, b"sec-websocket-protocol"):
            raise ValueError(f"the client did not offer the subprotocol {subprotocol!r}")
        response.append((b"sec-websocket-protocol", chosen))
    deflate = negotiate_deflate(headers) if compression else None
    if deflate is not None:
        response.append((b"sec-websocket-extensions", deflate.response()))
    return status, response, deflate
