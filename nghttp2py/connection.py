"""The asyncio protocol that binds one client connection to its engine protocol:
a Session (HTTP/2) or an HTTP1Connection (HTTP/1.1), chosen per connection."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, Union

from ._nghttp2 import BaseRequestHandler, GuardBudgets, HTTP1Connection, Session
from .errors import ErrorCode
from .settings import Timeouts

__all__ = ["ConnectionConfig", "ServerConnection"]

logger = logging.getLogger("nghttp2py")

# After a GOAWAY for cause, how long the client has to take it before the
# connection is aborted.
_CLOSE_GRACE = 2.0

# The client connection preface of HTTP/2 with prior knowledge starts so; an
# HTTP/1 request line never does (RFC 9113 section 3.4).
_PREFACE_START = b"PRI "

_Protocol = Union[Session, HTTP1Connection]
_P = TypeVar("_P", Session, HTTP1Connection)


@dataclass(frozen=True)
class ConnectionConfig:
    """What every connection of one server needs, built once when the server starts.

    ``read_buffer`` is shared by all of the server's connections (see
    :class:`ServerConnection`); ``loop`` is the loop the server runs on.
    """

    handler_class: type[BaseRequestHandler]
    settings: dict[str, int | None]  # ServerSettings.as_dict(), as the Session takes it
    timeouts: Timeouts
    access_log: bool
    push_early_hints: bool
    read_buffer: memoryview
    loop: asyncio.AbstractEventLoop
    http1: bool = True  # serve HTTP/1.1 too (else HTTP/2 only)
    guard: GuardBudgets | None = None  # the server's GuardLimits (else the defaults)
    # The alt-svc field value added to every response; see HTTP2Server.
    alt_svc: bytes | None = None


class ServerConnection(asyncio.BufferedProtocol):
    """One server connection: bytes in to its protocol, responses out to the transport.

    The protocol is HTTP/2 (a Session) or HTTP/1.1 (an HTTP1Connection): by
    ALPN over TLS (a client offering neither ``h2`` nor ``http/1.1`` gets
    HTTP/1.1); on cleartext by the first bytes, the HTTP/2 preface or an
    HTTP/1.1 request (which may upgrade to h2c). With ``config.http1`` false,
    every connection is HTTP/2.

    Reads land in the server's shared buffer (``get_buffer``/``buffer_updated``
    run back to back and the Session consumes every byte before returning), so
    an idle connection holds no read buffer of its own. One timer per
    connection enforces the :class:`~nghttp2py.Timeouts`; it is re-armed
    lazily, never per request.

    ``on_made`` is called once the connection is accepted, ``on_lost`` once
    it has ended (neither for a TLS connection refused for its ALPN).
    """

    __slots__ = ("_certificate", "_config", "_made", "_on_lost", "_on_made", "_peer",
                 "_ping_sent", "_prefix", "_session", "_shutdown_timer", "_started", "_transport",
                 "_watchdog")

    def __init__(self, config: ConnectionConfig,
                 on_made: Callable[[ServerConnection], object],
                 on_lost: Callable[[ServerConnection], object]) -> None:
        self._config = config
        self._on_made = on_made
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._session: _Protocol | None = None
        self._made = False
        self._peer: object = None
        self._certificate: dict[str, object] | None = None
        # The first bytes of a cleartext connection, while too few to tell its protocol.
        self._prefix = b""
        self._started = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None
        self._ping_sent = 0.0
        self._shutdown_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._transport = transport
        self._peer = transport.get_extra_info("peername")
        ssl_object = transport.get_extra_info("ssl_object")
        config = self._config
        alpn = None
        if ssl_object is not None:
            alpn = ssl_object.selected_alpn_protocol()
            if alpn != "h2" and not config.http1:
                logger.info("closing TLS connection from %s: client offered no h2 in ALPN "
                            "(negotiated %r)", self._peer, alpn)
                transport.close()
                return
            self._certificate = transport.get_extra_info("peercert")
        self._made = True
        self._on_made(self)
        if alpn == "h2":
            session = self._start(Session)
            if config.alt_svc is not None:
                _announce_alt_svc(session, ssl_object, transport)
            session.start()
        elif alpn == "http/1.1":
            self._start(HTTP1Connection)
        elif not config.http1:
            # Cleartext: the preface waits for the client's first bytes, so that
            # an HTTP/1 client can be told in HTTP/1 that this port speaks HTTP/2 only.
            self._start(Session)
        # else: the first bytes tell (buffer_updated), over TLS without ALPN too.
        self._check_timeouts()

    def _start(self, protocol_class: type[_P]) -> _P:
        config = self._config
        assert self._transport is not None
        protocol = protocol_class(
            self._transport, config.handler_class, config.settings,
            client_address=self._peer, client_certificate=self._certificate,
            scheme=b"https" if self._transport.get_extra_info("ssl_object") is not None
            else b"http",
            access_log=config.access_log, push_early_hints=config.push_early_hints,
            loop=config.loop)
        self._session = protocol
        protocol.alt_svc = config.alt_svc
        if isinstance(protocol, Session):
            self._guard(protocol)
        return protocol

    def _guard(self, session: Session) -> None:
        """Hand an HTTP/2 session the timeouts its frame guard enforces."""
        session.header_timeout = self._config.timeouts.request_header or 0.0
        session.min_rate = self._config.timeouts.min_rate or 0.0
        if self._config.guard is not None:
            session.set_guard_budgets(self._config.guard)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._config.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        protocol = self._session
        data: bytes | memoryview = self._config.read_buffer
        if protocol is None:
            if self._transport is None:
                return
            # Not chosen yet: the HTTP/2 preface, or anything else for HTTP/1.1.
            first = self._prefix + bytes(self._config.read_buffer[:min(nbytes, 4)])
            if len(first) < len(_PREFACE_START) and _PREFACE_START.startswith(first):
                self._prefix = first
                return
            if self._prefix:
                data = self._prefix + bytes(self._config.read_buffer[:nbytes])
                nbytes = len(data)
                self._prefix = b""
            if first.startswith(_PREFACE_START):
                protocol = self._start(Session)
            else:
                protocol = self._start(HTTP1Connection)
            self._rearm()  # that protocol's timeouts
        upgraded = protocol.feed(data, nbytes)
        if upgraded is not None:
            # h2c: HTTP/2 from now on, with HTTP/2's timeouts from now.
            self._session = upgraded
            self._guard(upgraded)
            self._started = time.monotonic()
            self._rearm()

    def _rearm(self) -> None:
        # A timer already set that fires first stays (it re-arms then): most
        # connections keep the one set on accept, one timer fewer to make and cancel.
        self._check_timeouts()

    def eof_received(self) -> bool:
        # An HTTP/1.1 client may shut its side once its requests are sent.
        protocol = self._session
        return isinstance(protocol, HTTP1Connection) and protocol.eof_received()

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
        if self._made:
            self._made = False
            self._on_lost(self)
        self._transport = None

    @property
    def open_streams(self) -> int:
        """Streams still open on this connection."""
        return self._session.open_streams if self._session is not None else 0

    def shutdown(self) -> None:
        """Graceful shutdown: finish the streams already started, then close."""
        session = self._session
        young = time.monotonic() - self._started
        waiting = session is None or not session.request_received
        if waiting and young < self._config.timeouts.shutdown_ping and self._transport is not None:
            # Accepted a moment ago (just before a worker was told to drain): its
            # client's first request is on the way, perhaps after the preface (curl
            # writes them apart), and closing now, or a GOAWAY, would refuse it. Let
            # it arrive first.
            if self._shutdown_timer is None:
                self._shutdown_timer = self._config.loop.call_later(
                    self._config.timeouts.shutdown_ping - young, self._shutdown_later)
            return
        if session is None:
            if self._transport is not None:
                self._transport.close()  # no request yet
            return
        if session.shutting_down:
            return
        session.shutdown()
        if isinstance(session, Session) and session.shutting_down \
                and self._transport is not None and not self._transport.is_closing():
            self._shutdown_timer = self._config.loop.call_later(
                self._config.timeouts.shutdown_ping, session.finish_shutdown)

    def _shutdown_later(self) -> None:
        self._shutdown_timer = None
        self.shutdown()

    def abort(self) -> None:
        """Close at once, dropping whatever is in flight."""
        if self._transport is not None:
            self._transport.abort()

    def _on_watchdog(self) -> None:
        self._watchdog = None
        self._check_timeouts()

    def _check_timeouts(self) -> None:
        """Act on whichever timeout has expired, then re-arm for the next deadline."""
        session = self._session
        if self._transport is None or self._transport.is_closing():
            return
        timeouts = self._config.timeouts
        now = time.monotonic()
        if not isinstance(session, Session):
            deadline = self._http1_deadline(session, timeouts, now)
            if deadline is not None:
                self._arm(deadline, now)
            return
        deadlines = []
        if not session.preface_received and timeouts.handshake is not None:
            deadline = self._started + timeouts.handshake
            if now >= deadline:
                self._close_for("no HTTP/2 connection preface in time",
                                ErrorCode.SETTINGS_TIMEOUT)
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
            self._arm(min(deadlines), now)

    def _http1_deadline(self, protocol: HTTP1Connection | None, timeouts: Timeouts,
                        now: float) -> float | None:
        """HTTP/1.1 (or a protocol not chosen yet): act on an expired timeout; the next deadline.

        ``handshake`` bounds the wait from the accept, or from a request's
        first byte, to the end of its head (a trickling client gets ``408``);
        ``idle`` closes a keep-alive connection with no request in progress.
        """
        if protocol is None:  # no byte yet
            if timeouts.handshake is None:
                return None
            deadline = self._started + timeouts.handshake
            if now >= deadline:
                self._close_for("no request in time")
                return None
            return deadline
        deadlines = []
        if protocol.head_started and timeouts.handshake is not None:
            deadline = protocol.head_started + timeouts.handshake
            if now >= deadline:
                protocol.request_timeout()
                return None
            deadlines.append(deadline)
        if timeouts.idle is not None:
            if protocol.open_streams or protocol.head_started:
                deadlines.append(now + timeouts.idle)  # busy: look again later
            else:
                deadline = protocol.last_activity + timeouts.idle
                if now >= deadline:
                    logger.debug("closing idle connection from %s", self._peer)
                    protocol.shutdown()
                    return None
                deadlines.append(deadline)
        if timeouts.handshake is not None and not protocol.head_started:
            # A request may begin any time: look at least this often, so that
            # one trickled in gets its 408 within twice the timeout.
            deadlines.append(now + timeouts.handshake)
        return min(deadlines) if deadlines else None

    def _arm(self, deadline: float, now: float) -> None:
        loop = self._config.loop
        when = loop.time() + max(deadline - now, 0.01)
        if self._watchdog is not None:
            if self._watchdog.when() <= when:
                return  # it fires first, and looks again then
            self._watchdog.cancel()
        self._watchdog = loop.call_at(when, self._on_watchdog)

    def _close_for(self, reason: str, error_code: int | None = None) -> None:
        """Close for ``reason``: HTTP/2 first sends GOAWAY ``error_code``. A client that
        does not take it in time is aborted."""
        logger.info("closing connection from %s: %s", self._peer, reason)
        if error_code is not None and isinstance(self._session, Session):
            self._session.terminate(error_code)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._watchdog = self._config.loop.call_later(_CLOSE_GRACE, self.abort)


# Set on an SSLObject by the server's SNI callback (see HTTP2Server): the host
# name the client asked for.
SNI_ATTRIBUTE = "nghttp2py_server_name"


def _announce_alt_svc(session: Session, ssl_object: object,
                      transport: asyncio.Transport) -> None:
    """The HTTP/2 ALTSVC frame on stream 0, for the origin the client connected to.

    RFC 7838 section 4: a client ignores a stream-0 ALTSVC frame for an origin
    it does not consider authoritative for the connection, so the origin is
    ``https://`` and the host name the client sent in SNI, with the port it
    connected to. A client that sent no SNI (it connected by IP address) gets
    no frame: its origin is not known here, and the alt-svc field of each
    response names it for the client.
    """
    server_name = getattr(ssl_object, SNI_ATTRIBUTE, None)
    sockname = transport.get_extra_info("sockname")
    if not server_name or not isinstance(sockname, tuple):
        return
    port = sockname[1]
    origin = f"https://{server_name}" + ("" if port == 443 else f":{port}")
    if origin.isascii():  # SNI carries IDNA A-labels: always, from a sound client
        session.announce_alt_svc(origin.encode("ascii"))
