"""The asyncio protocol that binds one client connection to one engine Session."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._nghttp2 import BaseRequestHandler, Session
from .errors import ErrorCode
from .settings import Timeouts

__all__ = ["ConnectionConfig", "ServerConnection"]

logger = logging.getLogger("nghttp2py")

# After a GOAWAY for cause, how long the client has to take it before the
# connection is aborted.
_CLOSE_GRACE = 2.0


@dataclass(frozen=True)
class ConnectionConfig:
    """What every connection of one server needs, built once when the server starts.

    ``read_buffer`` is shared by all of the server's connections (see
    :class:`ServerConnection`); ``loop`` is the loop the server runs on.
    """

    handler_class: type[BaseRequestHandler]
    settings: dict[str, int]  # ServerSettings.as_dict(), as the Session takes it
    timeouts: Timeouts
    access_log: bool
    push_early_hints: bool
    read_buffer: memoryview
    loop: asyncio.AbstractEventLoop


class ServerConnection(asyncio.BufferedProtocol):
    """One HTTP/2 server connection: bytes in to the Session, frames out to the transport.

    Reads land in the server's shared buffer (``get_buffer``/``buffer_updated``
    run back to back and the Session consumes every byte before returning), so
    an idle connection holds no read buffer of its own. One timer per
    connection enforces the :class:`~nghttp2py.Timeouts`; it is re-armed
    lazily, never per request.

    ``on_made`` is called once the connection has its Session, ``on_lost``
    once it has ended (not for a TLS connection refused for its ALPN).
    """

    __slots__ = ("_config", "_on_lost", "_on_made", "_ping_sent", "_session", "_shutdown_timer",
                 "_started", "_transport", "_watchdog")

    def __init__(self, config: ConnectionConfig,
                 on_made: Callable[[ServerConnection], object],
                 on_lost: Callable[[ServerConnection], object]) -> None:
        self._config = config
        self._on_made = on_made
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._started = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None
        self._ping_sent = 0.0
        self._shutdown_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._transport = transport
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
        config = self._config
        self._session = Session(
            transport, config.handler_class, config.settings,
            client_address=peer, client_certificate=certificate,
            scheme=b"https" if ssl_object is not None else b"http",
            access_log=config.access_log, push_early_hints=config.push_early_hints,
            loop=config.loop)
        self._session.header_timeout = config.timeouts.request_header or 0.0
        self._session.min_rate = config.timeouts.min_rate or 0.0
        self._on_made(self)
        if ssl_object is not None:
            # On cleartext the preface waits for the client's first bytes, so
            # that an HTTP/1 client can be answered in HTTP/1 (see Session.feed).
            self._session.start()
        self._check_timeouts()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._config.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        session = self._session
        if session is not None:
            session.feed(self._config.read_buffer, nbytes)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        if self._session is not None:
            self._session.pause_writing()

    def resume_writing(self) -> None:
        if self._session is not None:
            self._session.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._watchdog, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        session, self._session = self._session, None
        if session is not None:
            session.connection_lost()
            self._on_lost(self)
        self._transport = None

    @property
    def open_streams(self) -> int:
        """Streams still open on this connection."""
        return self._session.open_streams if self._session is not None else 0

    def shutdown(self) -> None:
        """Graceful shutdown: finish the streams already started, then close."""
        session = self._session
        if session is None or session.shutting_down:
            return
        session.shutdown()
        if session.shutting_down and self._transport is not None \
                and not self._transport.is_closing():
            self._shutdown_timer = self._config.loop.call_later(
                self._config.timeouts.shutdown_ping, session.finish_shutdown)

    def abort(self) -> None:
        """Close at once, dropping whatever is in flight."""
        if self._transport is not None:
            self._transport.abort()

    def _check_timeouts(self) -> None:
        """Act on whichever timeout has expired, then re-arm for the next deadline."""
        self._watchdog = None
        session = self._session
        if session is None or self._transport is None or self._transport.is_closing():
            return
        timeouts = self._config.timeouts
        now = time.monotonic()
        deadlines = []
        if not session.preface_received and timeouts.handshake is not None:
            deadline = self._started + timeouts.handshake
            if now >= deadline:
                self._close_for("no HTTP/2 connection preface in time", ErrorCode.SETTINGS_TIMEOUT)
                return
            deadlines.append(deadline)
        if not session.settings_acked and timeouts.settings_ack is not None:
            deadline = self._started + timeouts.settings_ack
            if now >= deadline:
                if not session.preface_received:
                    self._close_for("no HTTP/2 connection preface in time",
                                    ErrorCode.SETTINGS_TIMEOUT)
                    return
                logger.info("closing connection from %s: SETTINGS not acknowledged in time",
                            session.client_address)
                session.terminate(ErrorCode.SETTINGS_TIMEOUT)
                return
            deadlines.append(deadline)
        if timeouts.idle is not None:
            if session.open_streams:
                deadlines.append(now + timeouts.idle)  # busy: look again later
            else:
                deadline = session.last_activity + timeouts.idle
                if now >= deadline:
                    logger.debug("closing idle connection from %s", session.client_address)
                    self.shutdown()
                    return
                deadlines.append(deadline)
        if timeouts.keepalive is not None and not session.shutting_down:
            if session.ping_outstanding and self._ping_sent:
                deadline = self._ping_sent + timeouts.keepalive_ack
                if now >= deadline:
                    self._close_for("keep-alive PING not acknowledged", ErrorCode.NO_ERROR)
                    return
                deadlines.append(deadline)
            elif session.preface_received and now >= session.last_activity + timeouts.keepalive:
                session.ping()
                self._ping_sent = now
                deadlines.append(now + timeouts.keepalive_ack)
            else:
                self._ping_sent = 0.0
                deadlines.append(max(session.last_activity, now) + timeouts.keepalive)
        if deadlines:
            loop = self._config.loop
            self._watchdog = loop.call_at(loop.time() + max(min(deadlines) - now, 0.01),
                                          self._check_timeouts)

    def _close_for(self, reason: str, error_code: int) -> None:
        """GOAWAY ``error_code`` and close; abort if the client does not take it in time."""
        session = self._session
        logger.info("closing connection from %s: %s",
                    session.client_address if session else None, reason)
        if session is not None:
            session.terminate(error_code)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._watchdog = self._config.loop.call_later(_CLOSE_GRACE, self.abort)
