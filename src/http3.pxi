# HTTP3Connection: HTTP/3 as an HTTPProtocol, one per QUIC connection.
#
# QUIC, HTTP/3 framing and QPACK belong to an engine (nghttp2py.quic, over
# aioquic). It decodes each request stream and calls headers_received,
# data_received and stream_reset here; this class turns them into calls on
# the stream's handler, as Session does for HTTP/2, and implements the stream
# interface downwards with the engine's small API:
#
#   engine.send_headers(stream_id, [(name, value), ...], end_stream)
#   engine.send_data(stream_id, data, end_stream)
#   engine.send_room(stream_id)          bytes the stream's send buffer may still take
#   engine.consume(stream_id, length)    request bytes taken: credit for the client
#   engine.reset_stream(stream_id, code) abort both directions (an H3 error code); done
#   engine.stream_closed(stream_id, request_complete)   the response is complete; done
#   engine.request_transmit()            output is waiting: pump once this loop turn
#
# Nothing here knows aioquic: another engine (ngtcp2/nghttp3) offering the same
# calls serves the same handlers (see docs/http3.md).
#
# Output is pulled, never pushed: the engine calls flush() once per loop turn
# before it builds datagrams, and a response body is read only while its
# stream's send buffer has room, so a large body never sits whole in memory.

# RFC 9114 section 8.1: HTTP/3 error codes.
cdef enum:
    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_EXCESSIVE_LOAD = 0x107
    H3_REQUEST_REJECTED = 0x10b
    H3_REQUEST_CANCELLED = 0x10c
    H3_REQUEST_INCOMPLETE = 0x10d
    # The largest body chunk pulled for one DATA frame.
    H3_BODY_CHUNK = 65536
    # Handlers keep HTTP/2's 31-bit stream ids.
    H3_MAX_STREAM_ID = 0x7fffffff


cdef uint64_t h3_error_code(uint32_t code) noexcept:
    """The HTTP/3 error code for an HTTP/2 one (what handlers and process_failures use)."""
    if code == NGHTTP2_NO_ERROR:
        return H3_NO_ERROR
    if code == NGHTTP2_CANCEL:
        return H3_REQUEST_CANCELLED
    if code == NGHTTP2_REFUSED_STREAM:
        return H3_REQUEST_REJECTED
    if code == NGHTTP2_PROTOCOL_ERROR:
        return H3_GENERAL_PROTOCOL_ERROR
    if code == NGHTTP2_ENHANCE_YOUR_CALM:
        return H3_EXCESSIVE_LOAD
    return H3_INTERNAL_ERROR


cdef uint32_t http2_error_code(uint64_t code) noexcept:
    """The ErrorCode a handler's on_close sees for an HTTP/3 (or QUIC) error code."""
    if code == H3_NO_ERROR:
        return NGHTTP2_NO_ERROR
    if code == H3_REQUEST_REJECTED:
        return NGHTTP2_REFUSED_STREAM
    if code == H3_GENERAL_PROTOCOL_ERROR:
        return NGHTTP2_PROTOCOL_ERROR
    if code == H3_EXCESSIVE_LOAD:
        return NGHTTP2_ENHANCE_YOUR_CALM
    if code == H3_INTERNAL_ERROR:
        return NGHTTP2_INTERNAL_ERROR
    return NGHTTP2_CANCEL


cdef list header_list(HeaderBlock block):
    """The block's fields as the engine takes them: (name, value) bytes pairs."""
    cdef list fields = []
    cdef const nghttp2_nv *nv
    cdef size_t i
    for i in range(block.length):
        nv = &block.nva[i]
        fields.append((PyBytes_FromStringAndSize(<char *>nv.name, nv.namelen),
                       PyBytes_FromStringAndSize(<char *>nv.value, nv.valuelen)))
    return fields


cdef class HTTP3Connection(HTTPProtocol):
    """The HTTP/3 server side of one QUIC connection, over an engine (see nghttp2py.quic).

    ``settings`` are :class:`nghttp2py.ServerSettings` as a dict; of them
    ``max_header_list_size`` (a larger request header block gets ``431``) and
    ``max_request_body_size`` (``413``) apply here, the windows and stream
    count in the engine.
    """

    def __init__(self, engine, handler_class, dict settings, *, client_address=None,
                 client_certificate=None, bint access_log=False, bint push_early_hints=True,
                 loop=None):
        HTTPProtocol.__init__(
            self, None, handler_class, max_header_list_size=settings["max_header_list_size"],
            max_request_body_size=settings.get("max_request_body_size"),
            client_address=client_address, client_certificate=client_certificate,
            scheme=b"https", access_log=access_log, push_early_hints=push_early_hints,
            loop=loop)
        self.http_version = "3"
        self.engine = engine
        self.sending = {}
        self.goaway_id = -1
        self.last_stream_id = -1
        self.last_activity = monotonic()

    # -- from the engine -------------------------------------------------------------

    def headers_received(self, int64_t stream_id, list headers, bint end_stream):
        """A header block on request stream ``stream_id``: the request's, or its trailers."""
        cdef BaseRequestHandler handler = self.streams.get(stream_id)
        cdef nghttp2_vec name, value
        cdef bytes field_name, field_value
        self.last_activity = monotonic()
        if handler is not None:
            # A second block: trailers (the engine has checked the order).
            for field_name, field_value in headers:
                _vec(&name, field_name)
                _vec(&value, field_value)
                handler.add_trailer(&name, &value)
            if end_stream:
                handler.request_received()
            return
        if stream_id > H3_MAX_STREAM_ID or (0 <= self.goaway_id <= stream_id):
            # After GOAWAY: the client may retry it elsewhere (RFC 9114 section 5.2).
            self.engine.reset_stream(stream_id, H3_REQUEST_REJECTED)
            return
        handler = self.new_handler(<int32_t>stream_id)
        if handler is None:
            self.engine.reset_stream(stream_id, H3_INTERNAL_ERROR)
            return
        if stream_id > self.last_stream_id:
            self.last_stream_id = stream_id
        for field_name, field_value in headers:
            _vec(&name, field_name)
            _vec(&value, field_value)
            if name.len and name.base[0] == b':':
                if handler.within_limit(name.len + value.len):
                    set_pseudo_header(handler, &name, &value)
            else:
                handler.add_header(&name, &value)
                if name.len == 14 and memcmp(name.base, b"content-length", 14) == 0 \
                        and over_length(value.base, value.len, self.max_request_body_size):
                    handler.state |= BODY_TOO_LARGE
        if handler.scheme is None:
            handler.scheme = self.scheme
        if handler.state & BODY_TOO_LARGE and not (handler.state & HEADERS_TOO_LARGE):
            self.refuse_body(handler)  # before any of the body is read
            return
        handler.headers_received(end_stream)
        if end_stream and not (handler.state & STREAM_CLOSED):
            handler.request_received()

    def data_received(self, int64_t stream_id, bytes data, bint end_stream):
        """Request body bytes on ``stream_id`` (the engine has counted them as held)."""
        cdef BaseRequestHandler handler = self.streams.get(stream_id)
        cdef Py_ssize_t length = PyBytes_GET_SIZE(data)
        if handler is not None and length:
            handler.body_bytes_received += length
            if handler.body_bytes_received > self.max_request_body_size:
                if not (handler.state & BODY_TOO_LARGE):
                    self.refuse_body(handler)
                handler = None
        if handler is None:
            if length:
                self.engine.consume(stream_id, length)
            return
        if length:
            handler.data_received(<const uint8_t *>PyBytes_AS_STRING(data), length)
        if end_stream and not (handler.state & STREAM_CLOSED):
            handler.request_received()

    def stream_reset(self, int64_t stream_id, uint64_t error_code):
        """The client reset the stream (RESET_STREAM or STOP_SENDING)."""
        cdef BaseRequestHandler handler = self.streams.pop(stream_id, None)
        if handler is None:
            return
        self.sending.pop(stream_id, None)
        self.engine.reset_stream(stream_id, H3_REQUEST_CANCELLED)
        handler.closed(http2_error_code(error_code))

    def flush(self):
        """Answer failed handlers, then pull every response body that has room to go."""
        cdef BaseRequestHandler handler
        try:
            if self.failures:
                self.process_failures()
            if self.sending:
                for handler in list(self.sending.values()):
                    if not (handler.state & STREAM_CLOSED):
                        self.pull_body(handler)
                if self.failures:
                    self.process_failures()
        finally:
            self.raise_escape()

    def stop_accepting(self, int64_t goaway_id):
        """A GOAWAY naming ``goaway_id`` is sent: refuse streams from there on."""
        self.shutting_down = True
        self.goaway_id = goaway_id
        self.close_websockets()

    def connection_lost(self):
        """The QUIC connection has ended: close every open stream."""
        cdef BaseRequestHandler handler
        streams, self.streams = self.streams, {}
        self.sending.clear()
        for handler in streams.values():
            handler.closed(NGHTTP2_CANCEL)
        self.engine = None
        try:
            if self.failures:
                self.process_failures()
        finally:
            self.raise_escape()

    # -- the stream interface ----------------------------------------------------------

    cdef int submit_response(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        if self.engine is None:
            return 0
        self.engine.send_headers(stream.stream_id, header_list(block), stream.body is None)
        # Closed by the next flush, once send_response has returned; a body
        # is pulled from there too.
        self.sending[stream.stream_id] = stream
        self.request_flush()
        return 0

    cdef int submit_info(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        if self.engine is not None:
            self.engine.send_headers(stream.stream_id, header_list(block), False)
            self.request_flush()
        return 0

    cdef void resume_body(self, BaseRequestHandler stream):
        if self.engine is not None and stream.body is not None:
            self.sending[stream.stream_id] = stream
            self.request_flush()

    cdef void consume(self, BaseRequestHandler stream, size_t length) noexcept:
        try:
            if self.engine is not None:
                self.engine.consume(stream.stream_id, length)
        except Exception as exc:
            _logger.error("HTTP/3 engine failed to take back credit: %r", exc)

    cdef void reset_stream(self, BaseRequestHandler stream, uint32_t error_code):
        if self.streams.pop(stream.stream_id, None) is None:
            return
        self.sending.pop(stream.stream_id, None)
        if self.engine is not None:
            self.engine.reset_stream(stream.stream_id, h3_error_code(error_code))
        stream.closed(error_code)

    cdef void request_flush(self):
        if self.engine is not None:
            self.engine.request_transmit()

    # -- its own -------------------------------------------------------------------------

    cdef void refuse_body(self, BaseRequestHandler handler) except *:
        """A request body over ``max_request_body_size``: its hooks get no more of it.

        ``413`` if no response has started, else the stream is reset
        (``H3_REQUEST_CANCELLED``); a complete response closes the stream and
        tells the client to stop sending (finish_stream).
        """
        handler.state |= BODY_TOO_LARGE | HANDLER_FAILED
        _logger.info("request body over %d bytes on stream %d from %s: %s",
                     self.max_request_body_size, handler.stream_id, self.client_address,
                     "reset" if handler.state & RESPONSE_STARTED else "413")
        if handler.state & STREAM_CLOSED:
            return
        if not (handler.state & RESPONSE_STARTED):
            handler.respond_error(413, _CONTENT_TOO_LARGE_BODY)
        elif handler.body is not None:
            self.reset_stream(handler, NGHTTP2_CANCEL)

    cdef int pull_body(self, BaseRequestHandler stream) except -1:
        """Move the stream's body into the engine while its send buffer has room."""
        cdef int32_t stream_id = stream.stream_id
        cdef Py_ssize_t room, size
        cdef ssize_t n
        cdef uint32_t flags
        cdef object chunk
        cdef bint end
        if stream.body is None:
            self.sending.pop(stream_id, None)
            self.finish_stream(stream)
            return 0
        room = self.engine.send_room(stream_id)
        while room > 0:
            size = room if room < H3_BODY_CHUNK else H3_BODY_CHUNK
            chunk = PyBytes_FromStringAndSize(NULL, size)
            flags = 0
            try:
                n = stream.read_body(<uint8_t *>PyBytes_AS_STRING(chunk), size, &flags)
            except BaseException as exc:
                self.sending.pop(stream_id, None)
                stream.fail("body", exc)
                return 0
            if n == NGHTTP2_ERR_DEFERRED:
                self.sending.pop(stream_id, None)  # resume_body() brings it back
                return 0
            if flags & NGHTTP2_DATA_FLAG_NO_COPY:
                memcpy(PyBytes_AS_STRING(chunk), stream.body.take(n), n)
            if n < size:
                chunk = chunk[:n]
            end = flags & NGHTTP2_DATA_FLAG_EOF
            if n or (end and stream.trailer_block is None):
                self.engine.send_data(stream_id, chunk, end and stream.trailer_block is None)
            if end:
                if stream.trailer_block is not None:
                    self.engine.send_headers(stream_id, header_list(stream.trailer_block), True)
                self.sending.pop(stream_id, None)
                self.finish_stream(stream)
                return 0
            if n == 0:
                return 0  # nothing yet, and no DATA_DEFERRED: looked at again next flush
            room -= n
        return 0

    cdef void finish_stream(self, BaseRequestHandler stream) except *:
        """The response is complete: the stream closes. The rest of a request body
        is not read (RFC 9114 section 4.1: the engine sends STOP_SENDING)."""
        if self.streams.pop(stream.stream_id, None) is None:
            return
        self.engine.stream_closed(stream.stream_id, stream.state & REQUEST_DONE)
        stream.closed(NGHTTP2_NO_ERROR)


cdef inline void _vec(nghttp2_vec *vec, bytes text) noexcept:
    vec.base = <uint8_t *>PyBytes_AS_STRING(text)
    vec.len = PyBytes_GET_SIZE(text)
