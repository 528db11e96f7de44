"""The asyncio protocol that binds one client connection to one engine Session."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ._nghttp2 import Session

if TYPE_CHECKING:
    from .server import HTTP2Server

__all__ = ["ServerConnection"]

logger = logging.getLogger("nghttp2py")


class ServerConnection(asyncio.BufferedProtocol):
    """One HTTP/2 server connection: bytes in to the Session, frames out to the transport.

    Reads land in the server's shared buffer (``get_buffer``/``buffer_updated``
    run back to back and the Session consumes every byte before returning), so
    an idle connection holds no read buffer of its own.
    """

    __slots__ = ("_server", "_transport", "_session")

    def __init__(self, server: HTTP2Server) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = None
        if ssl_object is not None:
            protocol = ssl_object.selected_alpn_protocol()
            if protocol != "h2":
                logger.info("closing TLS connection from %s: client offered no h2 in ALPN "
                            "(negotiated %r)", peer, protocol)
                transport.close()
                return
            certificate = transport.get_extra_info("peercert")
        server = self._server
        self._session = Session(
            transport, server.RequestHandlerClass, server.settings_dict,
            client_address=peer, client_certificate=certificate,
            scheme=b"https" if ssl_object is not None else b"http",
            access_log=server.access_log, loop=server.loop)
        server._connection_made(self)
        if ssl_object is not None:
            # On cleartext the preface waits for the client's first bytes, so
            # that an HTTP/1 client can be answered in HTTP/1 (see Session.feed).
            self._session.start()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._server._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        session = self._session
        if session is not None:
            session.feed(self._server._read_buffer, nbytes)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        if self._session is not None:
            self._session.pause_writing()

    def resume_writing(self) -> None:
        if self._session is not None:
            self._session.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.connection_lost()
            self._server._connection_lost(self)
        self._transport = None

    @property
    def open_streams(self) -> int:
        """Streams still open on this connection."""
        return self._session.open_streams if self._session is not None else 0

    def shutdown(self) -> None:
        """Graceful GOAWAY: finish the streams already started, then close."""
        if self._session is not None:
            self._session.shutdown()
        if self._transport is not None and self.open_streams == 0:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping whatever is in flight."""
        if self._transport is not None:
            self._transport.abort()
