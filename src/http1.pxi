# HTTP1Connection: HTTP/1.1 (and 1.0) as an HTTPProtocol, one per connection.
#
# llhttp, through httptools.HttpRequestParser, parses the requests; its
# callbacks land on the on_* methods below, which hand each request to its
# handler as Session does for an HTTP/2 stream (stream ids 1, 3, 5...).
#
# Pipelining: requests are answered one at a time, in order. A request that
# arrives while an earlier one is being answered is parsed, but waits: its
# handler is created and its header fields stored, its events (headers, body
# chunks, end) are queued and only replayed to the handler once every earlier
# response has been sent in full. No application code runs early, so a
# pipelined POST never overtakes the GET before it (RFC 9112 section 9.3.2).
#
# Output is batched as Session batches it: one buffer, one transport.write
# per batch; a body is pulled into it only while the transport is not paused.
#
# WebSockets (RFC 6455 section 4): a GET with "Upgrade: websocket" ends the
# parsing. Its handler sees upgrade_protocol b"websocket", as on HTTP/2; if it
# answers 101 (WebSocket.accept), the connection becomes a tunnel for its
# stream: every byte read is the stream's data, the response body (the
# WebSocket's frames) is written as it is, and the end of that body half-closes
# the connection, which closes when the client closes its side. Any other
# answer closes the connection after it.

import base64 as _base64
import binascii as _binascii

# A chunk of a chunked response body: at most 0xffff bytes, so that its size
# line is at most 4 hex digits and CRLF; then the body's CRLF.
cdef enum:
    MAX_CHUNK = 0xffff
    CHUNK_HEADER = 6
    CHUNK_OVERHEAD = CHUNK_HEADER + 2
    # Header names up to this long are lower-cased on the stack.
    SHORT_NAME = 64
    # A bytes body with at least this much left is handed to the transport
    # as a memoryview instead of being copied into the output.
    LEND_THRESHOLD = 16384


cdef list _status_texts(str form):
    """``form`` filled with each status 100-599 and its reason phrase, as bytes."""
    from http import HTTPStatus
    cdef list texts = [None] * 600
    cdef dict phrases = {status.value: status.phrase for status in HTTPStatus}
    for code in range(100, 600):
        # No reason phrase for a code HTTPStatus does not name: allowed (RFC 9112 4).
        texts[code] = form.format(code=code, phrase=phrases.get(code, "")).encode("latin-1")
    return texts


# httptools; "HTTP/1.1 404 Not Found\r\n", and the body of an error the server
# answers itself: made with the first HTTP/1.1 connection (a client never needs them).
cdef object _httptools = None
cdef list _STATUS_LINES = None
cdef list _ERROR_BODIES = None


cdef object load_http1():
    """httptools, once the status lines are made."""
    global _httptools, _STATUS_LINES, _ERROR_BODIES
    if _httptools is None:
        import httptools
        _STATUS_LINES = _status_texts("HTTP/1.1 {code} {phrase}\r\n")
        _ERROR_BODIES = _status_texts("{phrase}\n")
        _httptools = httptools
    return _httptools

cdef bytes _CHUNKED = b"transfer-encoding: chunked\r\n"
cdef bytes _CLOSE = b"connection: close\r\n"
cdef bytes _KEEP_ALIVE = b"connection: keep-alive\r\n"
cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes _SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n")
cdef bytes _CONNECT = b"CONNECT"
cdef bytes _WEBSOCKET = b"websocket"
cdef bytes _UPGRADE_WEBSOCKET = b"upgrade: websocket\r\n"
cdef bytes _CONNECTION_UPGRADE = b"connection: Upgrade\r\n"
cdef const char *_HEX_DIGITS = b"0123456789abcdef"


class _StopParsing(Exception):
    """Raised by a parser callback to stop llhttp; the status is in error_status."""


cdef class HTTP1Connection(HTTPProtocol):
    """The HTTP/1.1 server side of one connection (llhttp, through httptools).

    Takes the arguments of :class:`Session`. Of ``settings`` it applies
    ``max_header_list_size`` (a longer request target gets ``414``, a larger
    header block ``431``), ``initial_window_size`` (request body bytes held for
    handlers before the socket is no longer read) and
    ``max_concurrent_streams`` (pipelined requests held before the same) and
    ``max_request_body_size`` (a larger body gets ``413`` and the connection
    closes); an h2c upgrade hands all of them to the :class:`Session` that
    takes over.
    """

    def __init__(self, transport, handler_class, dict settings, *, client_address=None,
                 client_certificate=None, bytes scheme=b"http", bint access_log=False,
                 bint push_early_hints=True, loop=None):
        HTTPProtocol.__init__(
            self, transport, handler_class,
            max_header_list_size=settings["max_header_list_size"],
            max_request_body_size=settings.get("max_request_body_size"),
            client_address=client_address, client_certificate=client_certificate,
            scheme=scheme, access_log=access_log, push_early_hints=push_early_hints,
            loop=loop)
        self.http_version = "1.1"
        self.settings = settings
        self.max_unconsumed = settings["initial_window_size"]
        self.max_waiting = max(settings["max_concurrent_streams"], 1)
        self.parser = load_http1().HttpRequestParser(self)
        self.next_stream_id = 1
        self.waiting = _deque()
        self.content_length = -1
        self.response_remaining = -1
        # The first request's head is due within the handshake timeout of the accept.
        self.last_activity = self.head_started = monotonic()

    # -- the connection's side ----------------------------------------------

    def feed(self, data, Py_ssize_t length):
        """Process ``length`` bytes received at the start of ``data``; then flush.

        Returns the :class:`Session` that takes the connection over after an
        h2c upgrade (it has been given what followed the upgrade request),
        else None.
        """
        cdef object session = None
        cdef bint head_in_progress
        if self.transport is None:
            return None
        self.last_activity = monotonic()
        if self.upgrade_remaining:
            return self.read_upgrade_body(data, length)
        if self.tunnel is not None:
            try:
                self.feed_tunnel(data, length)
            finally:
                self.raise_escape()
            return None
        if self.stopped:
            return None  # after the last request this connection parses
        self.feeds += 1
        view = data if length == len(data) else data[:length]
        self.in_feed = True
        try:
            self.parser.feed_data(view)
        except _httptools.HttpParserUpgrade as upgrade:
            self.in_feed = False
            session = self.take_upgrade(bytes(view[upgrade.args[0]:]))
        except _httptools.HttpParserError as exc:
            self.in_feed = False
            self.parse_failed(exc)
        finally:
            self.in_feed = False
        if session is not None:
            return session
        try:
            head_in_progress = (self.reading is not None and not self.stopped
                                and not (self.reading_flags & REQ_HEADERS_DONE))
            if head_in_progress and self.head_feed != self.feeds:
                # The read ended inside a head that began in an earlier read:
                # httptools holds the field being received whole, so the bytes
                # of the reads since then count against the limit.
                self.head_bytes += length
                if self.head_bytes > <Py_ssize_t>self.max_header_list_size:
                    self.fail_request(431, "request header block too large")
            self.flush()
        finally:
            self.raise_escape()
        return None

    def pause_writing(self):
        self.writing_paused = True

    def resume_writing(self):
        self.writing_paused = False
        self.flush()

    def flush(self):
        """Answer in turn: pull the current response's body, retire finished requests."""
        self.flush_scheduled = False
        if self.transport is None:
            return
        try:
            # Responses submitted meanwhile are sent by this same call: no
            # other flush needs scheduling (request_flush looks at in_feed).
            self.in_feed = True
            try:
                if self.tunnel_input is not None and self.response_state & RESP_TUNNEL:
                    self.deliver_tunnel_input()
                self.advance()
            finally:
                self.in_feed = False
            if self.transport is not None:
                self.write_output()
                if not self.streams:
                    self.release_output()
                self.update_reading()
        finally:
            self.raise_escape()

    @property
    def request_received(self):
        """Whether the head of a request has begun to arrive yet."""
        return self.next_stream_id > 1

    def shutdown(self):
        """Graceful shutdown: answer the requests already received, then close."""
        if self.shutting_down or self.transport is None:
            return
        self.shutting_down = True
        if not self.streams:
            self.close_connection()
        else:
            self.close_websockets()
            self.update_reading()

    def eof_received(self):
        """The client has shut its side: answer what has arrived, then close.

        Returns whether the transport is to stay open meanwhile (False: a
        request was cut short, or nothing is left to answer).
        """
        if self.tunnel is not None:
            return self.tunnel_input_ended()
        if self.reading is not None or not self.streams or self.transport is None:
            return False
        self.shutdown()
        return True

    def request_timeout(self):
        """A request head did not arrive in time: ``408`` if nothing is being answered; close."""
        cdef BaseRequestHandler handler = self.reading
        _logger.info("closing HTTP/1.1 connection from %s: request head not received in time",
                     self.client_address)
        if handler is not None and handler is self.active \
                and not (handler.state & (RESPONSE_STARTED | STREAM_CLOSED)):
            self.stopped = True
            self.reading = None
            self.answer_error(handler, 408)
            self.flush()
        else:
            self.close_connection()

    def connection_lost(self):
        """The transport is gone: close every open stream."""
        cdef BaseRequestHandler handler
        streams, self.streams = self.streams, {}
        self.transport = None
        # The parser holds bound methods of this object: let the cycle go.
        self.parser = None
        self.active = self.reading = self.tunnel = None
        self.deferred = None
        self.tunnel_input = None
        self.waiting.clear()
        for handler in streams.values():
            handler.closed(NGHTTP2_CANCEL)
        try:
            if self.failures:
                self.process_failures()
        finally:
            self.raise_escape()

    # -- llhttp's callbacks (through httptools) ----------------------------------

    def on_message_begin(self):
        cdef BaseRequestHandler handler
        cdef list entry
        cdef int32_t stream_id = self.next_stream_id
        if self.stopped:
            raise _StopParsing()
        if self.active is not None and self.response_state & RESP_HEAD:
            self.advance()  # if the previous answer can be finished, this request goes next
        self.next_stream_id += 2
        handler = self.new_handler(stream_id)
        if handler is None:
            # The handler class raised (logged): a stand-in answers 500.
            handler = BaseRequestHandler.__new__(BaseRequestHandler)
            handler.attach(self, stream_id)
            handler.callbacks = 0
            self.streams[stream_id] = handler
            self.error_status = 500
        handler.scheme = self.scheme
        self.reading = handler
        self.reading_flags = 0
        self.content_length = -1
        self.http2_settings = None
        self.head_bytes = 0
        self.head_feed = self.feeds
        self.head_started = monotonic()
        if self.active is None:
            self.active = handler
            self.active_flags = 0
            self.response_state = 0
            self.response_remaining = -1
        else:
            entry = [handler]
            self.waiting.append(entry)
            self.deferred = entry
        if self.error_status:
            raise _StopParsing()

    def on_url(self, bytes url):
        cdef BaseRequestHandler handler = self.reading
        handler.path = url if handler.path is None else handler.path + url
        if PyBytes_GET_SIZE(handler.path) > <Py_ssize_t>self.max_header_list_size:
            self.stop_parsing(414)

    def on_header(self, bytes name, bytes value):
        cdef BaseRequestHandler handler = self.reading
        cdef nghttp2_vec field_name, field_value
        cdef char lower[SHORT_NAME]
        cdef Py_ssize_t size = PyBytes_GET_SIZE(name), i
        cdef const char *text = PyBytes_AS_STRING(name)
        cdef char c
        # HTTP/2 names arrive in lower case, and handlers see them so.
        if size > SHORT_NAME:
            name = name.lower()
            text = PyBytes_AS_STRING(name)
        else:
            for i in range(size):
                c = text[i]
                lower[i] = c + 32 if b'A' <= c <= b'Z' else c
            text = lower
        field_name.base = <uint8_t *>text
        field_name.len = size
        field_value.base = <uint8_t *>PyBytes_AS_STRING(value)
        field_value.len = PyBytes_GET_SIZE(value)
        if self.reading_flags & REQ_HEADERS_DONE:
            handler.add_trailer(&field_name, &field_value)
            return
        if size == 4 and handler.host is not None and memcmp(text, b"host", 4) == 0:
            self.stop_parsing(400)  # RFC 9112 section 3.2: exactly one Host
        elif size == 14:
            if memcmp(text, b"content-length", 14) == 0:
                self.content_length = int(value)  # llhttp has checked it is digits
            elif memcmp(text, b"http2-settings", 14) == 0:
                # A second one makes the upgrade invalid.
                self.http2_settings = value if self.http2_settings is None else b"!"
        elif size == 17 and memcmp(text, b"transfer-encoding", 17) == 0:
            # llhttp accepts a request's Transfer-Encoding only with chunked last;
            # RFC 9112 section 6.1: a coding before it we cannot undo gets 501.
            if value.strip().lower() != b"chunked":
                self.stop_parsing(501)
            self.reading_flags |= REQ_CHUNKED
        elif size == 7 and memcmp(text, b"upgrade", 7) == 0:
            self.reading_flags |= REQ_UPGRADE_FIELD
            tokens = [token.strip().lower() for token in value.split(b",")]
            if b"h2c" in tokens:
                self.reading_flags |= REQ_UPGRADE_H2C
            if _WEBSOCKET in tokens:
                self.reading_flags |= REQ_UPGRADE_WEBSOCKET
        handler.add_header(&field_name, &field_value)

    def on_headers_complete(self):
        cdef BaseRequestHandler handler = self.reading
        cdef int flags = self.reading_flags | REQ_HEADERS_DONE
        cdef nghttp2_vec method
        parser = self.parser
        name = parser.get_method()
        method.base = <uint8_t *>PyBytes_AS_STRING(name)
        method.len = PyBytes_GET_SIZE(name)
        handler.method = known_method(&method)
        version = parser.get_http_version()
        if version == "1.0":
            flags |= REQ_HTTP10
        elif version != "1.1":
            self.stop_parsing(505)
        # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing,
        # so the connection closes after this request.
        if parser.should_keep_alive() and not (flags & REQ_HTTP10 and flags & REQ_CHUNKED):
            flags |= REQ_KEEP_ALIVE
        if handler.host is None and not (flags & REQ_HTTP10):
            self.stop_parsing(400)  # RFC 9112 section 3.2: HTTP/1.1 requires Host
        if PyBytes_AS_STRING(handler.path)[0] != b'/':
            _origin_form(self, handler)
        if self.content_length > self.max_request_body_size:
            self.stop_parsing(413)  # before any of the body is read, and instead of a 100
        if (flags & REQ_UPGRADE_FIELD or handler.method == _CONNECT) and parser.should_upgrade():
            flags |= REQ_UPGRADE
        self.reading_flags = flags
        self.head_started = 0
        if not (flags & REQ_UPGRADE):  # else llhttp stops here: see take_upgrade
            self.headers_event(handler, flags,
                               not (flags & REQ_CHUNKED) and self.content_length <= 0)

    def on_body(self, bytes body):
        cdef BaseRequestHandler handler = self.reading
        cdef Py_ssize_t length = PyBytes_GET_SIZE(body)
        handler.body_bytes_received += length
        if handler.body_bytes_received > self.max_request_body_size:
            self.stop_parsing(413)  # a chunked body: 413 (or a close) and no more of it
        if self.deferred is not None:
            self.deferred.append((EVENT_DATA, body))
            self.unconsumed += length
        elif not (handler.state & STREAM_CLOSED):
            self.unconsumed += length
            handler.data_received(<const uint8_t *>PyBytes_AS_STRING(body), length)

    def on_message_complete(self):
        cdef BaseRequestHandler handler = self.reading
        if self.reading_flags & REQ_UPGRADE:
            return  # the parser stops after this: see take_upgrade
        self.reading = None
        self.done_event(handler)
        if not (self.reading_flags & REQ_KEEP_ALIVE):
            self.stopped = True  # llhttp refuses anything after this request

    # -- requests to handlers, in turn -------------------------------------------

    cdef int headers_event(self, BaseRequestHandler handler, int flags,
                           bint end_stream) except -1:
        if self.deferred is not None:
            self.deferred.append((EVENT_HEADERS, flags, end_stream))
            return 0
        self.active_flags = flags
        if handler.state & HEADERS_TOO_LARGE:
            self.active_flags |= REQ_CLOSE  # its 431 ends the connection
        handler.headers_received(end_stream)
        return 0

    cdef int done_event(self, BaseRequestHandler handler) except -1:
        if self.deferred is not None:
            self.deferred.append((EVENT_DONE, None))
            self.deferred = None
            return 0
        self.active_flags |= REQ_DONE
        if not (handler.state & STREAM_CLOSED):
            handler.request_received()
        return 0

    cdef int replay(self, list entry) except -1:
        """A waiting request's turn: its handler gets what arrived for it so far."""
        cdef BaseRequestHandler handler = entry[0]
        cdef tuple item
        cdef bytes data
        for item in entry[1:]:
            if self.transport is None:
                return 0
            if item[0] == EVENT_HEADERS:
                self.active_flags = item[1]
                if handler.state & HEADERS_TOO_LARGE:
                    self.active_flags |= REQ_CLOSE
                handler.headers_received(item[2])
            elif item[0] == EVENT_DATA:
                data = item[1]
                if handler.state & STREAM_CLOSED:
                    self.unconsumed -= PyBytes_GET_SIZE(data)
                else:
                    handler.data_received(<const uint8_t *>PyBytes_AS_STRING(data),
                                          PyBytes_GET_SIZE(data))
            elif item[0] == EVENT_DONE:
                self.active_flags |= REQ_DONE
                if not (handler.state & STREAM_CLOSED):
                    handler.request_received()
            else:
                self.answer_error(handler, item[1])
        return 0

    cdef void advance(self) except *:
        """Send what the current response has ready; once it and its request are
        complete, close its stream and give the next request its turn."""
        cdef BaseRequestHandler handler
        cdef list entry
        while self.transport is not None:
            if self.failures:
                self.process_failures()
                continue
            handler = self.active
            if handler is None:
                return
            if not (self.response_state & RESP_DONE):
                if not (self.response_state & RESP_HEAD) or self.writing_paused:
                    return
                self.pull_body()
                if self.failures:
                    continue
                if not (self.response_state & RESP_DONE):
                    return
            if not (handler.state & STREAM_CLOSED):
                if self.response_state & RESP_TUNNEL and not (self.active_flags & REQ_DONE):
                    # The tunnel's output has ended, not its input: half-close
                    # (RFC 6455 section 7.1.1: the server closes TCP first) and
                    # read on until the client closes, or its stream times out.
                    # Without a half-close (TLS), close now.
                    if self.response_state & RESP_HALF_CLOSED:
                        return
                    if self.transport.can_write_eof():
                        self.write_output()
                        self.transport.write_eof()
                        self.response_state |= RESP_HALF_CLOSED
                        return
                self.streams.pop(handler.stream_id, None)
                handler.closed(NGHTTP2_NO_ERROR)
                continue
            if self.response_state & RESP_CLOSE:
                self.close_connection()
                return
            if not (self.active_flags & REQ_DONE):
                return  # the rest of its request body is read and dropped
            self.active = None
            self.response_state = 0
            self.response_remaining = -1
            if self.waiting:
                entry = self.waiting.popleft()
                self.active = entry[0]
                self.active_flags = 0
                if entry is self.deferred:
                    self.deferred = None  # still arriving: straight to its handler now
                self.replay(entry)
            elif self.shutting_down and self.reading is None:
                self.close_connection()
                return

    # -- errors ----------------------------------------------------------------

    cdef int stop_parsing(self, int status) except -1:
        self.error_status = status
        raise _StopParsing()

    cdef int parse_failed(self, object exc) except -1:
        """llhttp stopped on an error, or a callback stopped it."""
        cdef int status = self.error_status or 400
        cdef object cause = exc.__context__
        self.error_status = 0
        if self.stopped and self.reading is None:
            return 0  # bytes after the last request: the connection closes after it
        if isinstance(cause, _StopParsing):
            reason = _ERROR_BODIES[status].decode().strip().lower()
        elif cause is not None:
            if not isinstance(cause, (ValueError, OverflowError)):  # not the client's doing
                _logger.error("internal error parsing a request from %s", self.client_address,
                              exc_info=cause)
            reason = f"{type(cause).__name__}: {cause}"
        else:
            reason = str(exc)
        self.fail_request(status, reason)
        return 0

    cdef int fail_request(self, int status, str reason) except -1:
        """Stop parsing; answer the request being parsed with ``status`` in its turn, then close."""
        cdef BaseRequestHandler handler = self.reading
        _logger.info("bad HTTP/1 request from %s: %d %s", self.client_address, status, reason)
        self.stopped = True
        self.reading = None
        if handler is None:
            if self.active is None:
                self.close_connection()
            else:
                self.active_flags |= REQ_CLOSE
                self.response_state |= RESP_CLOSE
        elif self.deferred is not None:
            self.deferred.append((EVENT_PARSE_ERROR, status))
            self.deferred = None
        else:
            self.answer_error(handler, status)
        return 0

    cdef int answer_error(self, BaseRequestHandler handler, int status) except -1:
        """``status`` for a request that will get no further: then the connection closes."""
        self.active_flags |= REQ_CLOSE | REQ_DONE
        if handler.state & (RESPONSE_STARTED | STREAM_CLOSED):
            self.close_connection()  # a response under way cannot be mended
        else:
            handler.respond_error(status, <bytes>_ERROR_BODIES[status])
        return 0

    cdef void close_connection(self) except *:
        """Write what is ready and close; the streams close with connection_lost."""
        self.stopped = True
        if self.transport is not None:
            self.write_output()
            self.transport.close()
        self.writing_paused = True  # nothing more goes out

    cdef void update_reading(self) except *:
        """Read the socket only while requests and their bodies (or a tunnel's data)
        are being taken."""
        cdef bint pause
        if self.tunnel is not None:
            pause = self.unconsumed > self.max_unconsumed
        else:
            pause = (self.stopped or self.unconsumed > self.max_unconsumed
                     or len(self.waiting) >= self.max_waiting
                     or (self.shutting_down and self.reading is None))
        if pause == self.reading_paused or self.transport is None \
                or self.transport.is_closing():
            return
        self.reading_paused = pause
        if pause:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- h2c upgrade (RFC 7540 section 3.2) ------------------------------------------

    cdef object take_upgrade(self, bytes rest):
        """llhttp stopped after a request with Upgrade (or CONNECT); ``rest`` follows it.

        llhttp leaves such a request's body unparsed: a content-length body
        is read here, then the request is upgraded or served as HTTP/1.1.
        """
        if self.reading_flags & REQ_CHUNKED:
            self.fail_request(400, "chunked body on an Upgrade request")
            self.flush()
            return None
        if self.content_length > 0:
            if self.content_length > self.max_unconsumed:
                self.fail_request(413, "Upgrade request body too large")
                self.flush()
                return None
            self.upgrade_body = bytearray()
            self.upgrade_remaining = self.content_length
            if self.reading.state & EXPECT_CONTINUE and self.reading is self.active \
                    and len(rest) < self.content_length:
                # The body is read here, not by a handler: ask for it now.
                self.write_raw(_CONTINUE)
                self.write_output()
            return self.read_upgrade_body(rest, len(rest))
        return self.finish_upgrade(b"", rest)

    cdef object read_upgrade_body(self, object data, Py_ssize_t length):
        """The next bytes of an upgrade request's body; then finish_upgrade."""
        cdef Py_ssize_t take = min(length, self.upgrade_remaining)
        self.upgrade_body += data[:take]
        self.upgrade_remaining -= take
        if self.upgrade_remaining:
            return None
        body, self.upgrade_body = bytes(self.upgrade_body), None
        return self.finish_upgrade(body, bytes(data[take:length]))

    cdef object finish_upgrade(self, bytes body, bytes rest):
        cdef BaseRequestHandler handler = self.reading
        cdef int flags = self.reading_flags & ~REQ_UPGRADE
        cdef bytes payload = None
        cdef Session session
        self.reading = None
        self.reading_flags = flags
        if flags & REQ_UPGRADE_H2C and self.scheme == b"http" and handler is self.active \
                and not self.waiting and self.http2_settings:
            try:
                payload = _base64.urlsafe_b64decode(
                    self.http2_settings + b"=" * (-len(self.http2_settings) % 4))
            except (_binascii.Error, ValueError):
                payload = None
        if payload is not None:
            session = Session(
                self.transport, self.handler_class, self.settings,
                client_address=self.client_address, client_certificate=self.client_certificate,
                scheme=self.scheme, access_log=self.access_log,
                push_early_hints=self.push_early_hints, loop=self.loop)
            session.alt_svc = self.alt_svc
            stream_id = handler.stream_id
            try:
                session.accept_upgrade(payload, handler)
            except Exception as exc:
                _logger.info("h2c upgrade from %s refused: %s", self.client_address, exc)
            else:
                del self.streams[stream_id]
                self.active = None
                self.stopped = True
                self.write_raw(_SWITCHING_PROTOCOLS)
                self.write_output()
                if self.reading_paused:
                    self.transport.resume_reading()
                self.transport = None
                self.parser = None
                session.start_upgraded(handler, body)
                if rest:
                    session.feed(rest, len(rest))
                return session
        if flags & REQ_UPGRADE_WEBSOCKET and handler.method == _GET \
                and not (flags & REQ_HTTP10):
            self.open_tunnel(handler, flags, rest)
            self.flush()
            return None
        # Served over HTTP/1.1, as if there were no Upgrade.
        if not (flags & REQ_KEEP_ALIVE):
            self.stopped = True
        if handler.method == _CONNECT:
            flags |= REQ_CLOSE  # what follows is a tunnel's, not HTTP
            self.stopped = True
        # (The body is all here: no 100 Continue is due any more.)
        self.headers_event(handler, flags, True)
        if body:
            if self.deferred is not None:
                self.deferred.append((EVENT_DATA, body))
                self.unconsumed += len(body)
            else:
                self.unconsumed += len(body)
                handler.data_received(<const uint8_t *>PyBytes_AS_STRING(body), len(body))
        self.done_event(handler)
        if rest and not self.stopped:
            return self.feed(rest, len(rest))
        self.flush()
        return None

    # -- WebSocket upgrade (RFC 6455 section 4) ---------------------------------------

    cdef int open_tunnel(self, BaseRequestHandler handler, int flags, bytes rest) except -1:
        """A GET with Upgrade: websocket: its handler decides, and no request follows it.

        What the client sent after the request waits for the 101 (counted
        against the read limit, like a request body); any other answer closes
        the connection after it.
        """
        handler.upgrade_protocol = _WEBSOCKET
        self.tunnel = handler
        self.tunnel_input = bytearray(rest)
        self.unconsumed += len(rest)
        self.stopped = True
        self.headers_event(handler, flags | REQ_CLOSE, False)
        return 0

    cdef int feed_tunnel(self, object data, Py_ssize_t length) except -1:
        """Bytes read after an Upgrade to websocket: the tunnel stream's data."""
        cdef BaseRequestHandler handler = self.tunnel
        cdef Py_buffer view
        if handler.state & STREAM_CLOSED:
            return 0  # the connection is closing
        self.unconsumed += length
        if self.tunnel_input is not None:
            self.tunnel_input += data[:length]  # the 101 is not out yet
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            self.in_feed = True
            try:
                handler.data_received(<const uint8_t *>view.buf, length)
            except Exception as exc:
                handler.fail("websocket", exc)
            finally:
                self.in_feed = False
                PyBuffer_Release(&view)
        self.flush()
        return 0

    cdef int deliver_tunnel_input(self) except -1:
        """The 101 is out: the bytes that came before it go to the stream."""
        cdef BaseRequestHandler handler = self.tunnel
        cdef bytes data = bytes(self.tunnel_input)
        self.tunnel_input = None
        if handler.state & STREAM_CLOSED:
            self.unconsumed -= PyBytes_GET_SIZE(data)
        elif data:
            try:
                handler.data_received(<const uint8_t *>PyBytes_AS_STRING(data),
                                      PyBytes_GET_SIZE(data))
            except Exception as exc:
                handler.fail("websocket", exc)
        return 0

    cdef bint tunnel_input_ended(self) except *:
        """The client shut its side of a tunnel: the end of the stream's input (as
        END_STREAM on HTTP/2). Returns whether the transport stays open meanwhile."""
        cdef BaseRequestHandler handler = self.tunnel
        if self.transport is None or handler.state & STREAM_CLOSED \
                or handler is not self.active or not (self.response_state & RESP_TUNNEL):
            return False  # not switched yet: nothing more to say
        try:
            self.in_feed = True
            try:
                if self.tunnel_input is not None:
                    self.deliver_tunnel_input()
                self.active_flags |= REQ_DONE
                handler.request_received()
            except Exception as exc:
                handler.fail("websocket", exc)
            finally:
                self.in_feed = False
            self.flush()
        finally:
            self.raise_escape()
        return True

    # -- the stream interface ------------------------------------------------------

    cdef int submit_response(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        cdef BodySource body = stream.body
        cdef int flags = self.active_flags
        cdef int state = RESP_HEAD
        cdef Py_ssize_t remaining = -1
        cdef bytes connection = None
        if stream is not self.active or self.transport is None:
            return 0
        if stream is self.tunnel and _block_status(block) == 101:
            # Switching protocols: the body is the new protocol's, as it is.
            self.write_head(block, True, _UPGRADE_WEBSOCKET, _CONNECTION_UPGRADE)
            self.response_state = RESP_HEAD | RESP_TUNNEL | RESP_CLOSE
            self.response_remaining = -1
            self.request_flush()
            return 0
        # send_response has dropped the body of HEAD, 204 and 304 already.
        if body is not None:
            if body.length >= 0:
                remaining = body.length
            elif block.content_length != NULL:
                remaining = _declared_length(block)
            if flags & REQ_HTTP10:
                if remaining < 0:
                    state |= RESP_CLOSE  # no chunked coding: the close ends the body
            elif remaining < 0 or stream.trailer_block is not None:
                state |= RESP_CHUNKED
                remaining = -1
        if not (flags & REQ_KEEP_ALIVE) or flags & REQ_CLOSE \
                or (self.shutting_down and not self.waiting) \
                or (stream.state & EXPECT_CONTINUE and not (flags & REQ_DONE)):
            # (Expect: 100-continue unanswered: the client will not send the body.)
            state |= RESP_CLOSE
        if state & RESP_CLOSE:
            connection = _CLOSE
        elif flags & REQ_HTTP10:
            connection = _KEEP_ALIVE
        self.add_alt_svc(block)
        self.write_head(block, state & RESP_CHUNKED, _CHUNKED if state & RESP_CHUNKED else None,
                        connection)
        if body is None:
            state |= RESP_DONE
        self.response_state = state
        self.response_remaining = remaining
        self.request_flush()
        return 0

    cdef int submit_info(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        # RFC 9110 section 15.2: never a 1xx to an HTTP/1.0 client.
        if stream is not self.active or self.transport is None \
                or self.response_state & RESP_HEAD or self.active_flags & REQ_HTTP10:
            return 0
        self.write_head(block, False, None, None)
        self.request_flush()
        return 0

    cdef void resume_body(self, BaseRequestHandler stream):
        if stream is self.active:
            self.request_flush()

    cdef void consume(self, BaseRequestHandler stream, size_t length) noexcept:
        self.unconsumed -= length
        if self.reading_paused and not self.in_feed:
            self.request_flush()  # flush() resumes reading

    cdef void discard(self, size_t length) noexcept:
        self.unconsumed -= length

    cdef void reset_stream(self, BaseRequestHandler stream, uint32_t error_code):
        # A response cut short can only be told by closing the connection.
        if self.streams.pop(stream.stream_id, None) is not None:
            stream.closed(error_code)
        self.close_connection()

    cdef void request_flush(self):
        if self.in_feed or self.flush_scheduled or self.transport is None:
            return
        self.flush_scheduled = True
        self.loop.call_soon(self.flush)

    # -- output ------------------------------------------------------------------

    cdef int write_head(self, HeaderBlock block, bint skip_length, bytes framing,
                        bytes connection) except -1:
        """A status line and header fields from ``block`` (its ``:status`` first)."""
        cdef int status = _block_status(block)
        cdef bytes line = <bytes>_STATUS_LINES[status]
        cdef size_t size = PyBytes_GET_SIZE(line) + _fields_size(block, 1) + 2
        cdef char *p
        if framing is not None:
            size += PyBytes_GET_SIZE(framing)
        if connection is not None:
            size += PyBytes_GET_SIZE(connection)
        if self.reserve_output(size) < 0:
            raise MemoryError()
        p = bytes_data(self.output) + self.output_length
        p = _append(p, line)
        p = _write_fields(p, block, 1, skip_length)
        if framing is not None:
            p = _append(p, framing)
        if connection is not None:
            p = _append(p, connection)
        p[0] = b'\r'
        p[1] = b'\n'
        self.output_length = p + 2 - bytes_data(self.output)
        return 0

    cdef int write_raw(self, bytes data) except -1:
        if self.reserve_output(PyBytes_GET_SIZE(data)) < 0:
            raise MemoryError()
        _append(bytes_data(self.output) + self.output_length, data)
        self.output_length += PyBytes_GET_SIZE(data)
        return 0

    cdef int pull_body(self) except -1:
        """Move the current response's body into the output, as long as it has data
        and the transport is not paused."""
        cdef BaseRequestHandler stream = self.active
        cdef bint chunked = self.response_state & RESP_CHUNKED
        cdef char *start
        cdef uint8_t *data
        cdef ssize_t n
        cdef uint32_t flags
        cdef Py_ssize_t size
        cdef Py_ssize_t overhead = CHUNK_OVERHEAD if chunked else 0
        while not self.writing_paused and not (self.response_state & RESP_DONE):
            if stream.body is None:
                self.response_state |= RESP_DONE | RESP_CLOSE
                return 0
            if not chunked and type(stream.body) is BytesBody \
                    and (<BytesBody>stream.body).length - (<BytesBody>stream.body).offset \
                    >= LEND_THRESHOLD:
                self.lend_body(stream)
                continue
            # What fills the batch up to WRITE_BATCH_SIZE (so that the buffer
            # never grows), at most a chunk, at most what the head announced;
            # once that is all sent, one byte more to see that the body ends.
            size = WRITE_BATCH_SIZE - <Py_ssize_t>self.output_length - overhead
            if size < SMALL_WRITE:
                self.write_output()
                size = WRITE_BATCH_SIZE - <Py_ssize_t>self.output_length - overhead
            if chunked and size > MAX_CHUNK:
                size = MAX_CHUNK
            if self.response_remaining >= 0 and size > self.response_remaining:
                size = self.response_remaining or 1
            if self.reserve_output(size + overhead) < 0:
                raise MemoryError()
            start = bytes_data(self.output) + self.output_length
            data = <uint8_t *>start + (CHUNK_HEADER if chunked else 0)
            flags = 0
            try:
                n = stream.read_body(data, size, &flags)
            except BaseException as exc:
                stream.fail("body", exc)
                return 0
            if n == NGHTTP2_ERR_DEFERRED:
                return 0  # resume_body() brings it back
            if n > 0:
                if flags & NGHTTP2_DATA_FLAG_NO_COPY:
                    memcpy(data, stream.body.take(n), n)
                if chunked:
                    self.output_length += _frame_chunk(start, n)
                else:
                    if self.response_remaining >= 0:
                        if n > self.response_remaining:
                            stream.fail("body", ValueError(
                                "the body is longer than its content-length"))
                            return 0
                        self.response_remaining -= n
                    self.output_length += n
            if flags & NGHTTP2_DATA_FLAG_EOF:
                self.end_body(stream)
            if self.output_length >= WRITE_BATCH_SIZE:
                self.write_output()
        return 0

    cdef int lend_body(self, BaseRequestHandler stream) except -1:
        """The rest of a large bytes body goes to the transport as it is, not copied:
        it is in memory already, and the transport holds it while it sends."""
        cdef BytesBody body = <BytesBody>stream.body
        cdef Py_ssize_t start = body.offset
        cdef uint32_t flags = 0
        # A read this large never copies (NO_COPY): it only counts what is sent.
        cdef ssize_t n = stream.read_body(NULL, body.length - start, &flags)
        body.take(n)
        self.response_remaining -= n
        self.write_output()
        self.transport.write(memoryview(body.data)[start:start + n])
        self.end_body(stream)
        return 0

    cdef int end_body(self, BaseRequestHandler stream) except -1:
        cdef HeaderBlock trailers = stream.trailer_block
        cdef char *p
        self.response_state |= RESP_DONE
        if self.response_state & RESP_CHUNKED:
            if self.reserve_output(5 + (_fields_size(trailers, 0) if trailers is not None
                                        else 0)) < 0:
                raise MemoryError()
            p = bytes_data(self.output) + self.output_length
            memcpy(p, b"0\r\n", 3)
            p += 3
            if trailers is not None:
                p = _write_fields(p, trailers, 0, False)
            p[0] = b'\r'
            p[1] = b'\n'
            self.output_length = p + 2 - bytes_data(self.output)
        elif self.response_remaining > 0:
            # Fewer bytes than announced: only the close tells the client.
            _logger.warning("response body on stream %d from %s ended %d bytes short of "
                            "its content-length", stream.stream_id, self.client_address,
                            self.response_remaining)
            self.response_state |= RESP_CLOSE
        return 0


# -- helpers ---------------------------------------------------------------------

cdef int _origin_form(HTTP1Connection connection, BaseRequestHandler handler) except -1:
    """The request target in absolute form (``http://host/path``) as host and path.

    RFC 9112 section 3.2.2: the target's authority replaces Host. ``*``
    (OPTIONS) and a CONNECT's authority form stay as they are.
    """
    cdef bytes target = handler.path
    if target == b"*" or handler.method == _CONNECT:
        return 0
    scheme, separator, rest = target.partition(b"://")
    if not separator or scheme.lower() not in (b"http", b"https") or not rest:
        connection.stop_parsing(400)
    authority, slash, path = rest.partition(b"/")
    handler.host = authority
    handler.path = b"/" + path
    return 0


cdef inline int _block_status(HeaderBlock block) noexcept:
    """The status of a response header block (its first field, ``:status``)."""
    cdef const uint8_t *value = block.nva[0].value
    return (value[0] - 48) * 100 + (value[1] - 48) * 10 + (value[2] - 48)


cdef Py_ssize_t _declared_length(HeaderBlock block) except -2:
    """The application's own content-length, for a body of unknown length."""
    cdef bytes text = block.content_length[:block.content_length_size]
    if not text.isdigit():
        raise InvalidHeaderError(f"content-length must be a decimal number, not {text!r}")
    return int(text)


cdef size_t _fields_size(HeaderBlock block, size_t first) noexcept:
    cdef size_t size = 0, i
    for i in range(first, block.length):
        size += block.nva[i].namelen + block.nva[i].valuelen + 4
    return size


cdef char *_write_fields(char *p, HeaderBlock block, size_t first, bint skip_length) noexcept:
    """``name: value`` lines for the block's fields from ``first`` on (nothing checked:
    the block was validated as it was built)."""
    cdef const nghttp2_nv *nv
    cdef size_t i
    for i in range(first, block.length):
        nv = &block.nva[i]
        if skip_length and nv.namelen == 14 and memcmp(nv.name, b"content-length", 14) == 0:
            continue
        memcpy(p, nv.name, nv.namelen)
        p += nv.namelen
        p[0] = b':'
        p[1] = b' '
        memcpy(p + 2, nv.value, nv.valuelen)
        p += 2 + nv.valuelen
        p[0] = b'\r'
        p[1] = b'\n'
        p += 2
    return p


cdef inline char *_append(char *p, bytes text) noexcept:
    memcpy(p, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))
    return p + PyBytes_GET_SIZE(text)


cdef Py_ssize_t _frame_chunk(char *start, Py_ssize_t n) noexcept:
    """Frame the ``n`` bytes at ``start + CHUNK_HEADER`` as a chunk starting at ``start``.

    Returns the chunk's length. A chunk of 4096 bytes or more has a 4-digit
    size, which fills CHUNK_HEADER exactly; a smaller one is moved up to its
    shorter size line.
    """
    cdef char digits[4]
    cdef int count = 0, i
    cdef Py_ssize_t rest = n
    while True:
        digits[count] = _HEX_DIGITS[rest & 15]
        count += 1
        rest >>= 4
        if rest == 0:
            break
    for i in range(count):
        start[i] = digits[count - 1 - i]
    start[count] = b'\r'
    start[count + 1] = b'\n'
    if count + 2 != CHUNK_HEADER:
        memmove(start + count + 2, start + CHUNK_HEADER, n)
    start[count + 2 + n] = b'\r'
    start[count + 3 + n] = b'\n'
    return count + 4 + n
