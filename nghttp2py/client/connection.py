"""One client connection: an asyncio protocol that binds a ClientSession to a socket."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl as _ssl
from typing import NamedTuple
from urllib.parse import urlsplit

from .._nghttp2 import ClientSession
from ..settings import ServerSettings
from .errors import (
    ALPNError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    GoAwayError,
)

__all__ = ["ClientConnection", "Origin", "client_settings", "client_ssl_context"]

logger = logging.getLogger("nghttp2py")

_READ_BUFFER_SIZE = 256 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    """Where requests go: ``scheme`` (``http`` or ``https``), ``host`` and ``port``."""

    scheme: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Origin:
        """The origin of ``url``; raises ValueError unless it is an http or https URL."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme])

    @property
    def authority(self) -> str:
        """The ``:authority`` of requests: host, and the port unless it is the scheme's own."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"


def client_settings(enable_push: bool) -> dict[str, int]:
    """The client's SETTINGS and windows: the server's defaults, plus ENABLE_PUSH."""
    settings = {name: value for name, value in ServerSettings().as_dict().items()
                if value is not None}  # not max_request_body_size, a server's limit
    return dict(settings, enable_push=int(enable_push))


def client_ssl_context(cafile: str | None = None) -> _ssl.SSLContext:
    """A context that verifies the server (against ``cafile`` if given) and offers ``h2``."""
    context = _ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    return context


def path_of(url: str, origin: Origin) -> str:
    """The ``:path`` of a path, or of a URL on ``origin`` (ValueError for another origin)."""
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.scheme and Origin.from_url(url) != origin:
        raise ValueError(f"{url!r} is not on {origin}")
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


class ClientConnection(asyncio.BufferedProtocol):
    """One HTTP/2 connection to ``origin``, opened at once in the background.

    Requests go straight to its ``session`` (``session.request(handler,
    method, path, headers, body)``) as long as ``error`` is None, even before
    it is up: they wait in the session. If connecting fails, or the
    connection ends, every request still open ends with ``error`` (a
    :class:`ConnectError`, :class:`GoAwayError` or
    :class:`ConnectionClosedError`).
    """

    def __init__(self, origin: Origin, *, ssl_context: _ssl.SSLContext | None,
                 loop: asyncio.AbstractEventLoop, settings: dict[str, int],
                 connect_timeout: float | None) -> None:
        self.origin = origin
        self.loop = loop
        self.session = ClientSession(settings, scheme=origin.scheme.encode(),
                                     authority=origin.authority.encode(), loop=loop)
        self.error: BaseException | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
        self._closed = loop.create_future()
        self._opening = loop.create_task(self._open(ssl_context, connect_timeout))

    async def _open(self, ssl_context: _ssl.SSLContext | None,
                    timeout: float | None) -> None:
        host, port = self.origin.host, self.origin.port
        try:
            await asyncio.wait_for(self.loop.create_connection(
                lambda: self, host, port, ssl=ssl_context,
                server_hostname=host if ssl_context is not None else None), timeout)
        except asyncio.TimeoutError:
            self._lost(ConnectTimeoutError(
                f"could not connect to {self.origin} within {timeout} s"))
        except asyncio.CancelledError:
            self._lost(ConnectError(f"connecting to {self.origin} was cancelled"))
        except _ssl.SSLError as exc:
            self._lost(ConnectError(f"TLS with {self.origin} failed: {exc}"))
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            self._lost(ConnectError(f"could not connect to {self.origin}: {reason}"))

    async def wait_connected(self) -> None:
        """Wait until the connection is up; raise its error if it could not be opened."""
        await asyncio.shield(self._opening)
        if self._transport is None and self.error is not None:
            raise self.error

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    @property
    def connected(self) -> bool:
        """Whether the connection is up (TCP, TLS and ALPN done) and not lost."""
        return self._transport is not None

    @property
    def accepting_requests(self) -> bool:
        """Whether a new request may go on this connection."""
        return self.error is None and self.session.accepting_requests

    @property
    def open_streams(self) -> int:
        return self.session.open_streams

    def close(self) -> None:
        """Close gracefully: streams already open finish first."""
        if self._transport is None and not self.session.open_streams:
            self._opening.cancel()
        self.session.shutdown()

    def abort(self) -> None:
        """Close at once; open streams end with a ConnectionClosedError."""
        if self._transport is not None:
            self.error = ConnectionClosedError("the connection was aborted")
            self._transport.abort()
        else:
            self._opening.cancel()

    # -- asyncio.BufferedProtocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            self.error = ALPNError(
                f"{self.origin} does not speak HTTP/2: TLS negotiated "
                f"{ssl_object.selected_alpn_protocol() or 'no protocol'} by ALPN, not h2")
            transport.close()
            return
        self._transport = transport
        self.session.connection_made(transport, transport.get_extra_info("peername"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.session.feed(self._buffer, nbytes)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = self._closed_error(exc)
        self._lost(self.error)

    def _lost(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._transport = None
        self.session.connection_lost(self.error)
        if not self._closed.done():
            self._closed.set_result(None)

    def _closed_error(self, exc: Exception | None) -> ConnectionClosedError:
        goaway = self.session.goaway
        if goaway is not None:
            return GoAwayError.from_frame(goaway)
        reason = f": {exc}" if exc is not None else ""
        return ConnectionClosedError(f"{self.origin} closed the connection{reason}")
