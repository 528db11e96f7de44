"""HTTP/3: UDP listeners and the QUIC engine under HTTP3Connection, on aioquic.

Needs the ``h3`` extra (``pip install nghttp2py[h3]``). aioquic does QUIC
(packets, TLS 1.3, loss recovery, congestion control), HTTP/3 framing and
QPACK. This module is the thin layer between it and the engine's
:class:`~nghttp2py._nghttp2.HTTP3Connection`, which serves the same handlers
and adapters as HTTP/2 and HTTP/1.1:

- :class:`QuicListener`: one UDP socket. It routes datagrams to connections by
  connection id, answers version negotiation, and validates client
  addresses with a stateless Retry while many handshakes are in progress
  (always, as an option). It reads every datagram waiting, and output is
  batched: a connection with something to send is pumped once per
  event-loop turn, however many datagrams and application calls asked for it.
- :class:`QuicSession`: one QUIC connection. It turns aioquic's events into
  calls on its HTTP3Connection, and offers it the engine API documented in
  ``src/http3.pxi`` (``send_headers``, ``send_data``, ``send_room``...). Its
  timer is aioquic's (loss recovery, idle timeout).

aioquic keeps no bound on what it buffers, in either direction, so some of
its private parts are used here, in :class:`_Connection` almost only (and
the aioquic versions are bounded in pyproject.toml): a request stream's
credit (MAX_STREAM_DATA) is given back only as the application takes the
data, and a response body is pulled only while the stream's send buffer
holds less than ``_SEND_BUFFER`` bytes. The GOAWAY frame, which aioquic has
no call for, is written on its control stream. See docs/http3.md.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

try:
    from aioquic._buffer import Buffer
    from aioquic.buffer import encode_uint_var
    from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
    from aioquic.quic.connection import (
        MAX_STREAM_DATA_FRAME_CAPACITY,
        NetworkAddress,
        QuicConnection,
    )
    from aioquic.quic.events import (
        ConnectionIdIssued,
        ConnectionIdRetired,
        ConnectionTerminated,
        HandshakeCompleted,
        ProtocolNegotiated,
        QuicEvent,
        StopSendingReceived,
        StreamDataReceived,
        StreamReset,
    )
    from aioquic.quic.packet import (
        QuicFrameType,
        QuicPacketType,
        encode_quic_retry,
        encode_quic_version_negotiation,
        pull_quic_header,
    )
    from aioquic.quic.packet_builder import QuicPacketBuilder
    from aioquic.quic.recovery import QuicPacketSpace
    from aioquic.quic.retry import QuicRetryTokenHandler
    from aioquic.quic.stream import QuicStream
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("HTTP/3 needs aioquic: pip install 'nghttp2py[h3]'") from exc

from ._nghttp2 import BaseRequestHandler, HTTP3Connection
from .settings import Timeouts

__all__ = ["H3Config", "QuicListener", "QuicSession", "listen"]

logger = logging.getLogger("nghttp2py")

# aioquic logs each connection's handshake steps at INFO on the "quic" logger:
# debugging detail for a server. Quiet unless the program set a level itself.
_aioquic_logger = logging.getLogger("quic")
if _aioquic_logger.level == logging.NOTSET:
    _aioquic_logger.setLevel(logging.WARNING)

# RFC 9114 section 8.1.
H3_NO_ERROR = 0x100
H3_REQUEST_REJECTED = 0x10B

# The most a response body may have in a stream's send buffer (sent or not,
# until acknowledged) before pulling more of it waits.
_SEND_BUFFER = 256 * 1024
# The least credit a new request stream gets before its header block is read.
_FIRST_CREDIT = 16384
# Datagrams read per turn of the event loop beyond the one it hands over,
# and the largest one read (a UDP payload).
_READ_BATCH = 63
_MAX_DATAGRAM = 65527
# Handshakes in progress past which a new client must answer a Retry first (a
# flood of spoofed Initial packets then costs the server no connection).
_RETRY_ABOVE = 64
# The QUIC idle timeout when Timeouts.idle is off.
_DEFAULT_IDLE = 3600.0


@dataclass(frozen=True)
class H3Config:
    """What every HTTP/3 connection of one server needs, built once when it starts."""

    handler_class: type[BaseRequestHandler]
    settings: dict[str, int]  # ServerSettings.as_dict()
    timeouts: Timeouts
    access_log: bool
    push_early_hints: bool
    certfile: str
    keyfile: str | None = None
    retry: bool = False


class _Connection(QuicConnection):
    """aioquic's server connection, with the two bounds it leaves out.

    Request streams (client-initiated bidirectional) get credit back only as
    their bytes are used up: the limit moves to what was received, minus
    what handlers still ``held`` and what the HTTP/3 layer still buffers (a
    frame not yet whole), plus the window; by half a window at a time. A
    stream has only its first credit until its request's header block is
    read (``held`` has no entry before, nor once the stream is closed). Every
    other stream keeps aioquic's own policy.
    """

    def __init__(self, *, window: int, held: dict[int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.held = held
        # The HTTP/3 layer's streams (H3Connection._stream), once it exists.
        self.h3_streams: dict[int, Any] = {}
        self._step = max(window // 2, 1)

    def set_max_streams(self, count: int) -> None:
        """Allow ``count`` concurrent request streams (before the handshake)."""
        limit = self._local_max_streams_bidi
        limit.value = limit.sent = count

    def send_room(self, stream_id: int) -> int:
        """How many more bytes the stream's send buffer takes now (0: none, or gone)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        if sender._reset_error_code is not None:
            return 0
        return _SEND_BUFFER - (sender._buffer_stop - sender._buffer_start)

    def responses_delivered(self) -> bool:
        """Whether every request stream's output has been acknowledged (or reset)."""
        return all(stream.sender.is_finished for stream_id, stream in self._streams.items()
                   if not stream_id & 3)

    def _write_stream_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace,
                             stream: QuicStream) -> None:
        stream_id = stream.stream_id
        assert stream_id is not None
        if stream_id & 3:
            super()._write_stream_limits(builder, space, stream)
            return
        held = self.held.get(stream_id)
        if held is None or stream.receiver.is_finished:
            return
        h3_stream = self.h3_streams.get(stream_id)
        limit = (stream.receiver.highest_offset - held + self.window
                 - (len(h3_stream.buffer) if h3_stream is not None else 0))
        if limit >= stream.max_stream_data_local + self._step:
            stream.max_stream_data_local = limit
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA, capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery, handler_args=(stream,))
            buf.push_uint_var(stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


class QuicSession:
    """One QUIC connection: aioquic's events in, its datagrams out, HTTP/3 on top."""

    __slots__ = ("cids", "_h3", "_handshake_timer", "_held", "_listener", "_loop", "_peer",
                 "_quic", "_timer", "_timer_at", "ended", "handshaking", "protocol",
                 "shutting_down")

    def __init__(self, listener: QuicListener, quic: _Connection, held: dict[int, int],
                 peer: NetworkAddress) -> None:
        self._listener = listener
        self._loop = listener.loop
        self._quic = quic
        self._held = held
        self._peer = peer
        self._h3: H3Connection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.cids: set[bytes] = set()
        self.protocol: HTTP3Connection | None = None
        self.shutting_down = False
        self.ended = False
        self.handshaking = True
        listener.handshaking += 1
        handshake = listener.config.timeouts.handshake
        self._handshake_timer = (self._loop.call_later(handshake, self._handshake_timeout)
                                 if handshake is not None else None)

    # -- datagrams in, datagrams out ------------------------------------------------

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        self._quic.receive_datagram(data, addr, now=self._loop.time())
        self._process_events()
        self._listener.schedule(self)

    def transmit(self) -> None:
        """Pull the responses that have room, send every datagram ready, re-arm the timer."""
        protocol = self.protocol
        if protocol is not None:
            protocol.flush()
            if self.shutting_down and not protocol.open_streams \
                    and self._quic.responses_delivered():
                # (Closing drops whatever aioquic has not sent yet.)
                self._quic.close(error_code=H3_NO_ERROR)
        sendto = self._listener.sendto
        for data, addr in self._quic.datagrams_to_send(now=self._loop.time()):
            sendto(data, addr)
        timer_at = self._quic.get_timer()
        if timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = (self._loop.call_at(timer_at, self._on_timer)
                           if timer_at is not None else None)
            self._timer_at = timer_at

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            self._quic.handle_timer(now=self._loop.time())
            self._process_events()
            if not self.ended:
                self.transmit()
        except Exception:
            self.failed()

    def failed(self) -> None:
        """An exception escaped this connection's own code: log it, close the connection.

        (Application errors never get here: handlers answer their own.)
        """
        logger.exception("internal error on the HTTP/3 connection from %s; closing it",
                         self._peer)
        self.abort()

    def _process_events(self) -> None:
        quic = self._quic
        event = quic.next_event()
        while event is not None:
            self._event(event)
            event = quic.next_event()

    def _event(self, event: QuicEvent) -> None:
        kind = type(event)
        h3 = self._h3
        if kind is StreamDataReceived:
            if h3 is not None:
                for h3_event in h3.handle_event(event):
                    self._h3_event(h3_event)
        elif kind is StreamReset or kind is StopSendingReceived:
            assert isinstance(event, (StreamReset, StopSendingReceived))
            if self.protocol is not None and not event.stream_id & 3:
                self.protocol.stream_reset(event.stream_id, event.error_code)
            if h3 is not None:
                h3.handle_event(event)
        elif kind is ProtocolNegotiated:
            self._start_http3()
        elif kind is HandshakeCompleted:
            self._handshake_done()
        elif kind is ConnectionIdIssued:
            assert isinstance(event, ConnectionIdIssued)
            self.cids.add(event.connection_id)
            self._listener.route(event.connection_id, self)
        elif kind is ConnectionIdRetired:
            assert isinstance(event, ConnectionIdRetired)
            self.cids.discard(event.connection_id)
            self._listener.unroute(event.connection_id)
        elif kind is ConnectionTerminated:
            assert isinstance(event, ConnectionTerminated)
            if event.error_code not in (0, H3_NO_ERROR):
                logger.info("HTTP/3 connection from %s closed: error 0x%x%s", self._peer,
                            event.error_code,
                            f" ({event.reason_phrase})" if event.reason_phrase else "")
            self._end()

    def _h3_event(self, event: object) -> None:
        protocol = self.protocol
        assert protocol is not None
        if type(event) is DataReceived:
            held = self._held.get(event.stream_id)
            if held is not None:  # (None: a stream closed or refused, given no credit)
                self._held[event.stream_id] = held + len(event.data)
            protocol.data_received(event.stream_id, event.data, event.stream_ended)
        elif type(event) is HeadersReceived:
            self._held.setdefault(event.stream_id, 0)
            protocol.headers_received(event.stream_id, event.headers, event.stream_ended)

    def _start_http3(self) -> None:
        config = self._listener.config
        self._h3 = H3Connection(self._quic)
        self._quic.h3_streams = self._h3._stream
        self.protocol = HTTP3Connection(
            self, config.handler_class, config.settings, client_address=self._peer,
            access_log=config.access_log, push_early_hints=config.push_early_hints,
            loop=self._loop)

    def _handshake_done(self) -> None:
        if self.handshaking:
            self.handshaking = False
            self._listener.handshaking -= 1
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _handshake_timeout(self) -> None:
        """Timeouts.handshake: a client that starts a handshake must finish it
        (a spoofed Initial costs the server a connection until then)."""
        self._handshake_timer = None
        logger.info("closing HTTP/3 connection from %s: no QUIC handshake in time", self._peer)
        self.abort()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._handshake_done()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        protocol, self.protocol = self.protocol, None
        self._held.clear()
        try:
            if protocol is not None:
                protocol.connection_lost()
        finally:
            self._listener.session_ended(self, self.cids)

    # -- lifecycle ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY, finish the streams already started, then close."""
        if self.shutting_down or self.ended:
            return
        self.shutting_down = True
        protocol, h3 = self.protocol, self._h3
        if protocol is None or h3 is None or h3._local_control_stream_id is None:
            self._quic.close(error_code=H3_NO_ERROR)  # no HTTP/3 yet
        else:
            # RFC 9114 section 5.2: the first request stream not processed.
            goaway_id = (protocol.last_stream_id // 4 + 1) * 4
            self._quic.send_stream_data(h3._local_control_stream_id, encode_frame(
                FrameType.GOAWAY, encode_uint_var(goaway_id)))
            protocol.stop_accepting(goaway_id)
        self._listener.schedule(self)

    def abort(self) -> None:
        """Close at once (CONNECTION_CLOSE), dropping whatever is in flight."""
        if self.ended:
            return
        try:
            self._quic.close(error_code=H3_NO_ERROR, reason_phrase="server closing")
            for data, addr in self._quic.datagrams_to_send(now=self._loop.time()):
                self._listener.sendto(data, addr)
        except Exception as exc:  # a connection that failed already: it ends all the same
            logger.debug("no CONNECTION_CLOSE to %s: %r", self._peer, exc)
        finally:
            self._end()

    # -- the engine API (what HTTP3Connection calls; see src/http3.pxi) --------------------

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                     end_stream: bool) -> None:
        assert self._h3 is not None
        try:
            self._h3.send_headers(stream_id, headers, end_stream)
        except (ValueError, RuntimeError) as exc:  # the stream is gone (reset)
            logger.debug("HTTP/3 headers on stream %d not sent: %s", stream_id, exc)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        assert self._h3 is not None
        try:
            self._h3.send_data(stream_id, data, end_stream)
        except (ValueError, RuntimeError) as exc:
            logger.debug("HTTP/3 data on stream %d not sent: %s", stream_id, exc)

    def send_room(self, stream_id: int) -> int:
        return self._quic.send_room(stream_id)

    def consume(self, stream_id: int, length: int) -> None:
        held = self._held.get(stream_id)
        if held is not None:
            self._held[stream_id] = held - length

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._held.pop(stream_id, None)
        quic = self._quic
        quic.reset_stream(stream_id, error_code)
        stream = quic._streams.get(stream_id)
        if stream is not None and not stream.receiver.is_finished:
            quic.stop_stream(stream_id, error_code)
        self._listener.schedule(self)

    def stream_closed(self, stream_id: int, request_complete: bool) -> None:
        self._held.pop(stream_id, None)
        if not request_complete:
            # RFC 9114 section 4.1: the response is complete; the rest of the
            # request is not wanted.
            stream = self._quic._streams.get(stream_id)
            if stream is not None and not stream.receiver.is_finished:
                self._quic.stop_stream(stream_id, H3_NO_ERROR)

    def request_transmit(self) -> None:
        self._listener.schedule(self)


class QuicListener(asyncio.DatagramProtocol):
    """HTTP/3 on one UDP address: connections routed by id, output batched per loop turn."""

    def __init__(self, config: H3Config, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        settings = config.settings
        # A new stream's first credit need only carry its header block: the
        # full window follows once it is read (see _Connection).
        configuration = QuicConfiguration(
            is_client=False, alpn_protocols=H3_ALPN,
            idle_timeout=config.timeouts.idle or _DEFAULT_IDLE,
            max_data=settings["connection_window_size"],
            max_stream_data=max(min(settings["initial_window_size"],
                                    settings["max_header_list_size"]), _FIRST_CREDIT))
        configuration.load_cert_chain(config.certfile, config.keyfile)
        self._configuration = configuration
        self._retry = QuicRetryTokenHandler()
        # Connections whose handshake has not completed yet: past _RETRY_ABOVE,
        # every new client is asked to prove its address (config.retry: always).
        self.handshaking = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._routes: dict[bytes, QuicSession] = {}
        self._sessions: set[QuicSession] = set()
        self._dirty: dict[QuicSession, None] = {}
        self._pump_scheduled = False
        self._closing = False
        self._closed = asyncio.Event()
        self._abort_timer: asyncio.TimerHandle | None = None
        self.sendto: Callable[[bytes, NetworkAddress], None] = _not_started
        self._recvfrom: Callable[[int], tuple[bytes, Any]] = _not_reading

    async def start(self, family: int, address: tuple[Any, ...]) -> None:
        """Bind the UDP socket to ``address`` (port 0: a free one); see :func:`listen`."""
        sock = _udp_socket(family, address)
        try:
            transport, _ = await self.loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._recvfrom = sock.recvfrom
        self.connection_made(transport)  # asyncio calls it only later

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return (name[0], name[1])

    @property
    def connections(self) -> int:
        """How many QUIC connections are open."""
        return len(self._sessions)

    # -- asyncio's side ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._transport is transport:
            return
        # (uvloop's UDP transport is no asyncio.DatagramTransport subclass.)
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.sendto = self._transport.sendto

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        """A datagram, and those behind it: the event loop hands over one per turn,
        so the rest are read here, and their connections pumped once for all."""
        self._receive(data, addr)
        recvfrom = self._recvfrom
        for _ in range(_READ_BATCH):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            self._receive(data, addr)

    def _receive(self, data: bytes, addr: NetworkAddress) -> None:
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self._configuration.connection_id_length)
        except ValueError:
            return
        session = self._routes.get(header.destination_cid)
        if session is None:
            session = self._accept(data, addr, header)
            if session is None:
                return
        try:
            session.datagram_received(data, addr)
        except Exception:
            # Not out of here: asyncio would close the socket, and every connection with it.
            session.failed()

    def error_received(self, exc: Exception) -> None:
        logger.debug("HTTP/3 socket error: %s", exc)

    def _accept(self, data: bytes, addr: NetworkAddress, header: Any) -> QuicSession | None:
        """A new connection for a client's first Initial packet (None: not one)."""
        versions = self._configuration.supported_versions
        if header.version is not None and header.version not in versions \
                and header.packet_type != QuicPacketType.VERSION_NEGOTIATION:
            self.sendto(encode_quic_version_negotiation(
                source_cid=header.destination_cid, destination_cid=header.source_cid,
                supported_versions=versions), addr)
            return None
        if header.packet_type != QuicPacketType.INITIAL \
                or len(data) < SMALLEST_MAX_DATAGRAM_SIZE or self._closing:
            return None
        original_cid = header.destination_cid
        retry_cid = None
        want_retry = self.config.retry or self.handshaking >= _RETRY_ABOVE
        if header.token:
            try:
                original_cid = self._retry.validate_token(
                    address=addr, destination_cid=header.destination_cid, token=header.token,
                    now=self.loop.time())
                retry_cid = header.destination_cid
            except ValueError:
                if want_retry:
                    return None  # a bad token: dropped (RFC 9000 section 8.1.3 allows it)
                # Not one of ours (another server's, or too old): as if there were none.
        elif want_retry:
            # RFC 9000 section 8.1.2: the client proves its address first.
            retry_cid = os.urandom(8)
            self.sendto(encode_quic_retry(
                version=header.version, source_cid=retry_cid,
                destination_cid=header.source_cid, original_destination_cid=original_cid,
                retry_token=self._retry.create_token(
                    address=addr, original_destination_connection_id=original_cid,
                    retry_source_connection_id=retry_cid, now=self.loop.time())), addr)
            return None
        held: dict[int, int] = {}
        quic = _Connection(
            window=self.config.settings["initial_window_size"], held=held,
            configuration=self._configuration,
            original_destination_connection_id=original_cid,
            retry_source_connection_id=retry_cid)
        quic.set_max_streams(max(self.config.settings["max_concurrent_streams"], 1))
        session = QuicSession(self, quic, held, addr)
        self._sessions.add(session)
        for cid in (header.destination_cid, quic.host_cid):
            session.cids.add(cid)
            self._routes[cid] = session
        return session

    # -- given to each QuicSession ---------------------------------------------------------

    def route(self, cid: bytes, session: QuicSession) -> None:
        self._routes[cid] = session

    def unroute(self, cid: bytes) -> None:
        self._routes.pop(cid, None)

    def schedule(self, session: QuicSession) -> None:
        """``session`` has output: pump it once, later this loop turn."""
        self._dirty[session] = None
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        dirty, self._dirty = self._dirty, {}
        for session in dirty:
            if session.ended:
                continue
            try:
                session.transmit()
            except Exception:
                session.failed()

    def session_ended(self, session: QuicSession, cids: set[bytes]) -> None:
        for cid in cids:
            if self._routes.get(cid) is session:
                del self._routes[cid]
        self._sessions.discard(session)
        self._dirty.pop(session, None)
        self._check_closed()

    # -- lifecycle ------------------------------------------------------------------------

    def close(self, timeout: float) -> None:
        """Accept no new connection; shut the others down gracefully (GOAWAY).

        Connections still open after ``timeout`` seconds are closed at once.
        """
        if self._closing:
            return
        self._closing = True
        for session in list(self._sessions):
            session.shutdown()
        self._abort_timer = self.loop.call_later(timeout, self.abort)
        self._check_closed()

    def abort(self) -> None:
        """Close every connection at once."""
        self._closing = True
        for session in list(self._sessions):
            session.abort()
        self._check_closed()

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` (or :meth:`abort`) has ended every connection."""
        await self._closed.wait()

    def _check_closed(self) -> None:
        if self._closing and not self._sessions and not self._closed.is_set():
            if self._abort_timer is not None:
                self._abort_timer.cancel()
            if self._transport is not None:
                self._transport.close()
            self._closed.set()


def _not_started(data: bytes, addr: NetworkAddress) -> None:
    raise RuntimeError("the HTTP/3 listener is not started")


def _not_reading(size: int) -> tuple[bytes, Any]:
    raise BlockingIOError


async def listen(config: H3Config, loop: asyncio.AbstractEventLoop, host: str,
                 port: int) -> list[QuicListener]:
    """HTTP/3 on ``host:port``: a listener per UDP address it names.

    Host ``""`` is every interface (one dual-stack socket); ``localhost`` both
    loopback addresses (browsers try ``::1`` first); any other name every
    address it resolves to. Port 0 picks a free port, the same for all.
    """
    if not host:
        addresses: list[tuple[int, tuple[Any, ...]]] = [(socket.AF_INET6, ("::", port))]
    else:
        addresses = []
        for name in (("127.0.0.1", "::1") if host == "localhost" and socket.has_ipv6
                     else (host,)):
            for found, _, _, _, address in socket.getaddrinfo(name, port,
                                                              type=socket.SOCK_DGRAM):
                if (found, address) not in addresses:
                    addresses.append((int(found), address))
    listeners: list[QuicListener] = []
    try:
        for family, address in addresses:
            if listeners and port == 0:
                address = (address[0], listeners[0].address[1], *address[2:])
            listener = QuicListener(config, loop)
            await listener.start(family, address)
            listeners.append(listener)
    except BaseException:
        for listener in listeners:
            listener.abort()
        raise
    return listeners


def _udp_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A bound, non-blocking UDP socket; ``::`` is every interface, IPv6 and IPv4."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and address[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
