"""HTTP2Client: the callback API of the old nghttp2 binding, one handler per request."""
from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Iterable
from typing import Any

from .._nghttp2 import BaseResponseHandler
from .connection import ClientConnection, Origin, client_settings, path_of

__all__ = ["HTTP2Client"]


class HTTP2Client:
    """An HTTP/2 connection to ``address`` (``(host, port)``) that sends requests.

    With ``ssl`` (an :class:`ssl.SSLContext`; ``h2`` is set as its ALPN
    protocol) the connection is TLS, else cleartext HTTP/2 with prior
    knowledge. Connecting starts at once on ``loop`` (default: the running
    loop); requests sent meanwhile wait for it. Each response goes to the
    :class:`BaseResponseHandler` given to :meth:`send_request`.
    ``enable_push=False`` tells the server not to push at all.
    """

    def __init__(self, address: tuple[str, int], loop: asyncio.AbstractEventLoop | None = None,
                 ssl: _ssl.SSLContext | None = None, *, enable_push: bool = True,
                 connect_timeout: float | None = 10.0) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError("HTTP2Client needs loop=, or to be created while the event "
                                   "loop runs") from None
        if ssl is not None:
            ssl.set_alpn_protocols(["h2"])
        host, port = address
        self.loop = loop
        self.origin = Origin("https" if ssl is not None else "http", host, port)
        self.connection = ClientConnection(
            self.origin, ssl_context=ssl, loop=loop, settings=client_settings(enable_push),
            connect_timeout=connect_timeout)

    def send_request(self, method: str | bytes = "GET", url: str | bytes = "/",
                     headers: Iterable[tuple[Any, Any]] | None = None, body: Any = None,
                     handler: BaseResponseHandler | type[BaseResponseHandler] | None = None,
                     ) -> BaseResponseHandler:
        """Send a request; return the handler that receives its response.

        ``url`` is a path (``/index.html``) or a URL on this client's server
        (scheme and host are then taken from it). ``headers`` are ``(name,
        value)`` pairs with lower-case names; ``body`` is ``None``, ``str``,
        bytes-like, a file object or an async iterable of bytes, sent as the
        server's flow control allows. ``handler`` is an instance or a class
        (instantiated with no arguments); by default a plain
        :class:`BaseResponseHandler`, which ignores the response. Raises the
        connection's error once it has failed or closed.
        """
        if handler is None:
            handler = BaseResponseHandler()
        elif isinstance(handler, type):
            handler = handler()
        if isinstance(url, bytes):
            url = url.decode("ascii")
        connection = self.connection
        if connection.error is not None:
            raise connection.error
        connection.session.request(handler, method,
                                   url if url.startswith("/") else path_of(url, self.origin),
                                   headers, body)
        return handler

    def close(self) -> None:
        """Close gracefully: the requests already sent get their responses, then GOAWAY."""
        self.connection.close()

    async def wait_closed(self) -> None:
        """Wait until the connection has closed."""
        await self.connection.wait_closed()

    @property
    def server_address(self) -> Any:
        """The server's socket address once connected, else ``None``."""
        return self.connection.session.client_address

