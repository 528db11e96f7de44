"""HTTP2Server: listening sockets, TLS with ALPN, lifecycle and signals."""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl as _ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from . import loops
from ._nghttp2 import GuardBudgets
from .connection import SNI_ATTRIBUTE, ConnectionConfig, ServerConnection
from .handler import BaseRequestHandler
from .memory import MemoryReleaser
from .proxy_protocol import ProxyProtocolReader
from .settings import GuardLimits, ServerSettings, Timeouts

if TYPE_CHECKING:
    from typing_extensions import Self

    from .quic import QuicListener

__all__ = ["HTTP2Server"]

logger = logging.getLogger("nghttp2py")

# Shared by every connection of one server; see ServerConnection.
_READ_BUFFER_SIZE = 256 * 1024
# How long close() waits for connections accepted just before it.
_ACCEPT_SETTLE = 0.05
# New connections set up per turn of the event loop (asyncio's loop; uvloop
# accepts every pending one at once).
_ACCEPT_BATCH = 32


class HTTP2Server:
    """An HTTP/2 and HTTP/1.1 server that creates one ``RequestHandlerClass`` per request.

    ``address`` is ``(host, port)``: host ``''`` binds every interface and port
    ``0`` picks a free port (see :attr:`port` once started). With ``ssl`` (an
    :class:`ssl.SSLContext` holding the certificate) the server offers ``h2``
    and ``http/1.1`` by ALPN (a client offering neither gets HTTP/1.1) and
    requires TLS 1.2 or later; without it, it speaks cleartext HTTP/2 with
    prior knowledge (h2c), HTTP/1.1, and HTTP/1.1 upgraded to h2c, all on
    the same port. ``http1=False`` serves HTTP/2 only: a TLS client without
    ``h2`` is closed, a cleartext HTTP/1 request gets ``505``.

    ``settings`` are the HTTP/2 SETTINGS and windows (:class:`ServerSettings`),
    ``timeouts`` the connection timeouts (:class:`Timeouts`), ``guard`` the
    budgets that stop hostile clients (:class:`GuardLimits`, SECURITY.md). ``sock``, a
    listening socket made elsewhere (a Unix socket, one inherited from systemd,
    one shared by worker processes), replaces ``address``. ``proxy_protocol``
    reads a PROXY protocol (v1 or v2) header at the start of every connection
    and takes the client address from it. ``access_log``
    logs one line per request to the ``nghttp2py.access`` logger.
    ``push_early_hints`` (on by default) answers :meth:`BaseRequestHandler.push`
    to a client that disabled push, as browsers do, with a ``103 Early Hints``
    response carrying ``link: rel=preload`` instead; ``False`` turns that off.
    ``alt_svc`` (e.g. ``'h3=":443"; ma=86400'``) is an ``Alt-Svc`` field value
    (RFC 7838) added to every HTTP/1.1 and HTTP/2 response whose application
    did not set its own ``alt-svc``; over TLS, HTTP/2 clients that sent SNI
    also get it in an ``ALTSVC`` frame right after the server's SETTINGS. With
    ``quic_bind`` and no ``alt_svc``, it is ``h3=":PORT"; ma=86400`` for the
    first QUIC port.

    ``quic_bind``, a list of ``(host, port)``, serves HTTP/3 on those UDP
    addresses too (``pip install nghttp2py[h3]``), with the certificate chain
    in ``quic_certfile`` and its key (``quic_keyfile``, if not in that file);
    ``quic_retry`` validates each client's address with a QUIC Retry first.
    See docs/http3.md.

    Blocking use: :meth:`serve_forever`. In an asyncio program, :meth:`serve`,
    or::

        async with HTTP2Server(("127.0.0.1", 0), Handler) as server:
            ...  # server.port is bound
    """

    def __init__(
        self,
        address: tuple[str, int],
        RequestHandlerClass: type[BaseRequestHandler],
        ssl: _ssl.SSLContext | None = None,
        *,
        settings: ServerSettings | None = None,
        timeouts: Timeouts | None = None,
        guard: GuardLimits | None = None,
        access_log: bool = False,
        push_early_hints: bool = True,
        http1: bool = True,
        backlog: int = 1024,
        shutdown_timeout: float = 30.0,
        sock: socket.socket | None = None,
        proxy_protocol: bool = False,
        quic_bind: Iterable[tuple[str, int]] = (),
        quic_certfile: str | None = None,
        quic_keyfile: str | None = None,
        quic_retry: bool = False,
        alt_svc: str | None = None,
    ) -> None:
        if not (isinstance(RequestHandlerClass, type)
                and issubclass(RequestHandlerClass, BaseRequestHandler)):
            raise TypeError("RequestHandlerClass must be a subclass of BaseRequestHandler")
        self.address = address
        self.RequestHandlerClass = RequestHandlerClass
        self.http1 = http1
        self.ssl = _prepare_ssl_context(ssl, http1) if ssl is not None else None
        self.settings = settings or ServerSettings()
        self.timeouts = timeouts or Timeouts()
        self.guard = guard or GuardLimits()
        self.access_log = access_log
        self.push_early_hints = push_early_hints
        self.backlog = backlog
        self.shutdown_timeout = shutdown_timeout
        self.sock = sock
        self.proxy_protocol = proxy_protocol
        self.quic_bind = list(quic_bind)
        if self.quic_bind and not quic_certfile:
            raise ValueError("HTTP/3 (quic_bind) needs a certificate: give quic_certfile")
        self.quic_certfile = quic_certfile
        self.quic_keyfile = quic_keyfile
        self.quic_retry = quic_retry
        self._quic: list[QuicListener] = []
        alt_svc_value(alt_svc)  # refused here if it cannot be a field value
        self.alt_svc = alt_svc
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[ServerConnection] = set()
        self._read_buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
        self._closing = False
        self._accepts_settled = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Event | None = None
        self._memory: MemoryReleaser | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        self.loop = loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        self._memory = MemoryReleaser(loop)
        await self._start_quic(loop)
        if self.alt_svc is None and self.quic_ports:
            # How browsers learn that HTTP/3 is there (docs/alt-svc.md).
            self.alt_svc = f'h3=":{self.quic_ports[0]}"; ma=86400'
        config = ConnectionConfig(
            handler_class=self.RequestHandlerClass, settings=self.settings.as_dict(),
            timeouts=self.timeouts, access_log=self.access_log,
            push_early_hints=self.push_early_hints, read_buffer=self._read_buffer, loop=loop,
            http1=self.http1, guard=GuardBudgets(self.guard),
            alt_svc=alt_svc_value(self.alt_svc))
        if self.alt_svc is not None and self.ssl is not None:
            _record_server_name(self.ssl)
        new_connection: Callable[[], asyncio.BaseProtocol] = functools.partial(
            ServerConnection, config, self._connection_made, self._connection_lost)
        ssl = self.ssl
        if self.proxy_protocol:
            # The PROXY header comes first, before TLS: the reader starts TLS after it.
            new_connection = functools.partial(
                ProxyProtocolReader, new_connection, ssl, loop)  # type: ignore[arg-type]
            ssl = None
        host, port = self.address
        # asyncio accepts up to `backlog` connections per wakeup and sets them
        # all up before it polls again: a burst of new connections would hold
        # every open one for as long. It gets a small batch; the kernel's
        # queue gets the full backlog (below).
        batch = min(self.backlog, _ACCEPT_BATCH)
        if self.sock is not None:
            self._server = await loop.create_server(
                new_connection, sock=self.sock, ssl=ssl, backlog=batch)
        elif host:
            self._server = await loop.create_server(
                new_connection, host, port, ssl=ssl, backlog=batch, reuse_address=True)
        else:
            # One socket for every interface, so that port 0 means one port.
            self._server = await loop.create_server(
                new_connection, sock=_any_address_socket(port, self.backlog), ssl=ssl,
                backlog=batch)
        for listening in self._server.sockets:
            with socket.socket(fileno=os.dup(listening.fileno())) as same:
                same.listen(self.backlog)
        logger.info("serving HTTP/2 (%s) on %s, on the %s event loop%s",
                    "TLS" if self.ssl else "h2c",
                    ", ".join(_format_address(s.getsockname()) for s in self._server.sockets),
                    type(loop).__module__.partition(".")[0],
                    " (and HTTP/1.1)" if self.http1 else "")

    async def _start_quic(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.quic_bind:
            return
        try:
            from .quic import H3Config, listen
        except ImportError as exc:
            raise RuntimeError(str(exc)) from None
        assert self.quic_certfile is not None
        # Absent and None are the same to the engine: no limit.
        settings = {name: value for name, value in self.settings.as_dict().items()
                    if value is not None}
        config = H3Config(
            handler_class=self.RequestHandlerClass, settings=settings,
            timeouts=self.timeouts, access_log=self.access_log,
            push_early_hints=self.push_early_hints, certfile=self.quic_certfile,
            keyfile=self.quic_keyfile, retry=self.quic_retry)
        for host, port in self.quic_bind:
            for listener in await listen(config, loop, host, port):
                self._quic.append(listener)
                logger.info("serving HTTP/3 on %s", _format_address(listener.address))

    def close(self) -> None:
        """Stop accepting and shut connections down gracefully (GOAWAY).

        Streams already started run to completion; connections still busy
        after ``shutdown_timeout`` seconds are closed. Await :meth:`wait_closed`.
        """
        if self._server is None or self._closing:
            return
        self._closing = True
        self._server.close()
        for connection in list(self._connections):
            connection.shutdown()
        for listener in self._quic:
            listener.close(self.shutdown_timeout)
        assert self.loop is not None
        self._abort_timer = self.loop.call_later(self.shutdown_timeout, self.abort)
        # A connection the kernel handed over just before close() reaches
        # _connection_made a few loop iterations later: wait for it.
        self.loop.call_later(_ACCEPT_SETTLE, self._settled)

    def _settled(self) -> None:
        self._accepts_settled = True
        self._check_closed()

    def abort(self) -> None:
        """Close every connection at once."""
        for connection in list(self._connections):
            connection.abort()
        for listener in self._quic:
            listener.abort()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection has ended."""
        if self._server is None or self._closed is None:
            return
        await self._closed.wait()
        await self._server.wait_closed()
        for listener in self._quic:
            await listener.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def serve_forever(self, *, loop: str | None = None, uvloop: bool | None = None) -> None:
        """Run an event loop and :meth:`serve` on it until SIGINT or SIGTERM.

        ``loop`` names the event loop: ``"asyncio"`` (asyncio's own) or
        ``"uvloop"`` (``pip install nghttp2py[uvloop]``). Without it, the
        environment variable ``NGHTTP2PY_LOOP`` names it, else asyncio's own
        runs: an installed uvloop is never picked on its own. ``uvloop=True``
        and ``uvloop=False`` are the older spelling of ``loop="uvloop"`` and
        ``loop="asyncio"``.
        """
        if uvloop is not None:
            if loop is not None:
                raise TypeError("give loop= or uvloop=, not both")
            loop = "uvloop" if uvloop else "asyncio"
        loops.run(self.serve(), loop)

    async def serve(self, *, ready: Callable[[], object] | None = None) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully, and return.

        Starts the server unless it is started. The first signal starts a
        graceful shutdown (:meth:`close`), a second one closes every
        connection at once (:meth:`abort`). ``ready`` is called once the
        server listens and the signals are handled: whoever it tells may
        signal at once.
        """
        if self._server is None:
            await self.start()
        loop = asyncio.get_running_loop()
        loops.handle_shutdown_signals(loop, lambda: self._closing, self.close, self.abort)
        try:
            if ready is not None:
                ready()
            await self.wait_closed()
        finally:
            loops.remove_shutdown_signals(loop)

    # -- introspection ----------------------------------------------------------

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before :meth:`start`)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The bound port, e.g. the one picked for port 0."""
        if not self.sockets:
            raise RuntimeError("the server is not started")
        port: int = self.sockets[0].getsockname()[1]
        return port

    @property
    def quic_ports(self) -> list[int]:
        """The UDP ports serving HTTP/3 (empty before :meth:`start`, or without ``quic_bind``)."""
        return [listener.address[1] for listener in self._quic]

    @property
    def connections(self) -> int:
        """How many client connections are open (HTTP/3 ones included)."""
        return len(self._connections) + sum(listener.connections for listener in self._quic)

    # -- given to each ServerConnection ----------------------------------------------

    def _connection_made(self, connection: ServerConnection) -> None:
        self._connections.add(connection)
        if self._closing:
            connection.shutdown()

    def _connection_lost(self, connection: ServerConnection) -> None:
        self._connections.discard(connection)
        if self._memory is not None:
            self._memory.connection_closed()
        self._check_closed()

    def _check_closed(self) -> None:
        if self._accepts_settled and not self._connections and self._closed is not None:
            self._closed.set()
            if self._abort_timer is not None:
                self._abort_timer.cancel()


def _prepare_ssl_context(context: _ssl.SSLContext, http1: bool) -> _ssl.SSLContext:
    """Offer h2 (and http/1.1) by ALPN; refuse TLS older than 1.2 (RFC 9113 section 9.2)."""
    if not isinstance(context, _ssl.SSLContext):
        raise TypeError("ssl must be an ssl.SSLContext")
    context.set_alpn_protocols(["h2", "http/1.1"] if http1 else ["h2"])
    context.minimum_version = max(context.minimum_version, _ssl.TLSVersion.TLSv1_2)
    return context


def alt_svc_value(text: str | None) -> bytes | None:
    """``text`` as the bytes of an alt-svc field value; ValueError if it cannot be one."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"alt_svc must be a str, not {type(text).__name__}")
    value = text.strip()
    # RFC 7838 section 3: ASCII; the HTTP/2 ALTSVC frame must hold it with an origin.
    if not value or not value.isascii() or not value.isprintable() or len(value) > 8192:
        raise ValueError(f"alt_svc must be a printable ASCII Alt-Svc value (e.g. "
                         f"'h3=\":443\"; ma=86400'), not {text!r}")
    return value.encode("ascii")


def _record_server_name(context: _ssl.SSLContext) -> None:
    """Have ``context`` note each client's SNI host name on its SSLObject (for ALTSVC).

    An SNI callback the application set keeps running, first.
    """
    previous = context.sni_callback
    if getattr(previous, "_records_server_name", False):
        return

    def record(ssl_object: _ssl.SSLObject, server_name: str,  # None without SNI
               ctx: _ssl.SSLContext) -> int | None:
        result = previous(ssl_object, server_name, ctx) if previous is not None else None
        if server_name:
            setattr(ssl_object, SNI_ATTRIBUTE, server_name)
        return result

    record._records_server_name = True  # type: ignore[attr-defined]
    context.sni_callback = record


def _any_address_socket(port: int, backlog: int) -> socket.socket:
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, backlog=backlog,
                                    dualstack_ipv6=True)
    return socket.create_server(("", port), backlog=backlog)


def _format_address(sockname: str | tuple[str, int] | tuple[str, int, int, int]) -> str:
    if isinstance(sockname, str):
        return f"unix:{sockname}"
    host, port = sockname[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
