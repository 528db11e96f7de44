# Session: HTTP/2 (libnghttp2) as an HTTPProtocol, one per connection.
#
# Input arrives through feed(); every C callback is a module-level cb_on_*
# trampoline that catches all exceptions, records them and returns an nghttp2
# error code; the Session's _on_* method does the work. The Session acts on
# what was recorded once nghttp2_session_mem_recv / mem_send has returned.
# Output is batched into one buffer and written with one transport.write per
# batch.

cdef bytes _HTTP1_REPLY_BODY = (
    b"This server speaks HTTP/2 only. Use an HTTP/2 client, e.g. "
    b"curl --http2-prior-knowledge, or https with ALPN h2.\n")
cdef bytes _HTTP1_REPLY = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_HTTP1_REPLY_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _HTTP1_REPLY_BODY)
# RFC 9113 section 3.4: an invalid preface is a connection error of type
# PROTOCOL_ERROR. The server's preface (an empty SETTINGS) comes first, then
# GOAWAY (last stream 0): written as bytes, past the session that failed.
cdef bytes _BAD_PREFACE_REPLY = (
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" b"\x00\x00\x00\x00" b"\x00\x00\x00\x01")


# The callbacks and options every session is created with; nghttp2 copies both
# into each session, so they are built once.
cdef nghttp2_session_callbacks *_callbacks = NULL
cdef nghttp2_option *_option = NULL


cdef nghttp2_session_callbacks *new_session_callbacks() except NULL:
    """Callbacks with every cb_on_* trampoline set (ClientSession's start from these too)."""
    cdef nghttp2_session_callbacks *callbacks = NULL
    check(nghttp2_session_callbacks_new(&callbacks))
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, cb_on_begin_headers)
    nghttp2_session_callbacks_set_on_header_callback2(callbacks, cb_on_header)
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, cb_on_frame_recv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, cb_on_data_chunk_recv)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, cb_on_stream_close)
    nghttp2_session_callbacks_set_send_data_callback(callbacks, cb_send_data)
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, cb_on_frame_send)
    nghttp2_session_callbacks_set_error_callback2(callbacks, cb_on_error)
    return callbacks


cdef int _init_session_templates() except -1:
    global _callbacks, _option
    cdef nghttp2_option *option = NULL
    cdef nghttp2_session_callbacks *callbacks = new_session_callbacks()
    if nghttp2_option_new(&option) != 0:
        nghttp2_session_callbacks_del(callbacks)
        raise MemoryError()
    # The window is given back as the application consumes request data.
    nghttp2_option_set_no_auto_window_update(option, 1)
    # Rapid reset: guard.pxi's limiter acts first (and before handlers run);
    # nghttp2's, looser, stays on as a backstop.
    nghttp2_option_set_stream_reset_rate_limit(
        option, <uint64_t>(2 * _default_budgets.reset_burst),
        <uint64_t>(2 * _default_budgets.reset_rate))
    # RFC 9218 priorities (announced in SETTINGS), RFC 7540 for clients that
    # do not announce SETTINGS_NO_RFC7540_PRIORITIES themselves.
    nghttp2_option_set_server_fallback_rfc7540_priorities(option, 1)
    nghttp2_option_set_builtin_recv_extension_type(option, NGHTTP2_PRIORITY_UPDATE)
    _callbacks, _option = callbacks, option
    return 0


cdef class Session(HTTPProtocol):
    """The HTTP/2 server side of one connection (a libnghttp2 session).

    ``settings`` is a mapping with the SETTINGS to announce and the limits to
    apply (see :class:`nghttp2py.ServerSettings`).
    """

    def __cinit__(self):
        self.session = NULL
        self.budgets = _default_budgets

    def __init__(self, transport, handler_class, settings, *, client_address=None,
                 client_certificate=None, bytes scheme=b"http", bint access_log=False,
                 bint push_early_hints=True, loop=None):
        HTTPProtocol.__init__(
            self, transport, handler_class,
            max_header_list_size=settings["max_header_list_size"],
            max_request_body_size=settings.get("max_request_body_size"),
            client_address=client_address, client_certificate=client_certificate,
            scheme=scheme, access_log=access_log, push_early_hints=push_early_hints,
            loop=loop)
        self.http_version = "2"
        self.last_activity = monotonic()
        guard_init(self, settings["header_table_size"])
        self._create(settings)

    cdef int _create(self, dict settings) except -1:
        if _callbacks == NULL:
            _init_session_templates()
        cdef nghttp2_mem mem
        mem.mem_user_data = &self.page_blocks
        mem.malloc = mem_malloc
        mem.free = mem_free
        mem.calloc = mem_calloc
        mem.realloc = mem_realloc
        check(nghttp2_session_server_new3(&self.session, _callbacks, <void *>self, _option,
                                          &mem))
        return self._submit_settings(settings)

    cdef int _submit_settings(self, dict settings) except -1:
        """Announce ``settings`` and open the connection's receive window to its size."""
        cdef nghttp2_settings_entry entries[7]
        entries[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        entries[0].value = settings["max_concurrent_streams"]
        entries[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        entries[1].value = settings["initial_window_size"]
        entries[2].settings_id = NGHTTP2_SETTINGS_MAX_FRAME_SIZE
        entries[2].value = settings["max_frame_size"]
        entries[3].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        entries[3].value = settings["max_header_list_size"]
        entries[4].settings_id = NGHTTP2_SETTINGS_HEADER_TABLE_SIZE
        entries[4].value = settings["header_table_size"]
        entries[5].settings_id = NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES
        entries[5].value = 1
        if "enable_push" in settings:  # a client's
            entries[6].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH
            entries[6].value = settings["enable_push"]
        else:
            # RFC 8441: extended CONNECT (WebSockets over HTTP/2). Submitting it
            # makes nghttp2 accept :protocol in requests at once, as the RFC allows.
            entries[6].settings_id = NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL
            entries[6].value = 1
        check(nghttp2_submit_settings(self.session, NGHTTP2_FLAG_NONE, entries, 7))
        check(nghttp2_session_set_local_window_size(
            self.session, NGHTTP2_FLAG_NONE, 0, settings["connection_window_size"]))
        return 0

    def __dealloc__(self):
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL

    cdef int accept_upgrade(self, bytes settings_payload, BaseRequestHandler handler) except -1:
        """Take over from HTTP/1.1 (h2c upgrade): ``handler``'s request becomes stream 1.

        ``settings_payload`` is the decoded HTTP2-Settings field. Raises if
        nghttp2 refuses it; then nothing has changed.
        """
        check(nghttp2_session_upgrade2(
            self.session, <const uint8_t *>PyBytes_AS_STRING(settings_payload),
            PyBytes_GET_SIZE(settings_payload), handler.method == _HEAD, <void *>handler))
        handler.attach(self, 1)
        self.streams[1] = handler
        guard_upgraded(self)
        return 0

    cdef int start_upgraded(self, BaseRequestHandler handler, bytes body) except -1:
        """Hand the upgraded request (read whole, ``body`` included) to its handler;
        send the server preface and what the handler answers."""
        self.in_feed = True
        try:
            handler.headers_received(True)
            if body:
                handler.data_received(<const uint8_t *>PyBytes_AS_STRING(body),
                                      PyBytes_GET_SIZE(body))
            handler.request_received()
        finally:
            self.in_feed = False
        try:
            self._after_callbacks()
            self.flush()
        finally:
            self.raise_escape()
        return 0

    # -- the connection's side ----------------------------------------------

    def feed(self, data, Py_ssize_t length):
        """Process ``length`` bytes received at the start of ``data``; then flush."""
        if self.session == NULL:
            return
        self.received_bytes += length
        if self.backlog is not None:
            # Reading is paused while earlier bytes wait; what still arrives joins them.
            self.backlog += bytes(memoryview(data)[:length])
            return
        self._feed(data, length)

    def _drain_backlog(self):
        """Process the bytes a long read left for this turn of the loop, then read again."""
        backlog, self.backlog = self.backlog, None
        if backlog is None or self.session == NULL or self.transport is None:
            return
        self._feed(backlog, len(backlog))
        if self.backlog is None and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.resume_reading()

    cdef void _feed(self, object data, Py_ssize_t length) except *:
        """What feed() and _drain_backlog() do: scan and receive, act on the callbacks, flush.

        When the read took too long (guard_receive stopped early), the rest is
        kept as ``backlog``, reading pauses, and the next turn of the loop goes on.
        """
        cdef Py_buffer view
        cdef ssize_t rv
        self.last_activity = monotonic()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if length > view.len:
                raise ValueError("length exceeds the buffer")
            self.in_feed = True
            rv = guard_receive(self, <const uint8_t *>view.buf, length)
            self.in_feed = False
            if rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC:
                self._reject_preface(<const char *>view.buf, length)
                return
            if 0 <= rv < length:
                self.backlog = PyBytes_FromStringAndSize(<const char *>view.buf + rv, length - rv)
        finally:
            self.in_feed = False
            PyBuffer_Release(&view)
        self.received_data = True
        try:
            self._after_callbacks()
            if rv < 0:
                self._fail_session(rv)
                return
            if self.shutdown_ping_acked:
                self.shutdown_ping_acked = False
                self.finish_shutdown()
            self.flush()
            if self.backlog is not None and self.transport is not None \
                    and not self.transport.is_closing():
                self.transport.pause_reading()
                # Not call_soon: a short timer lets the loop poll first (uvloop runs
                # due timers and call_soon callbacks before it polls), so that the
                # other connections go first.
                self.loop.call_later(BACKLOG_DELAY, self._drain_backlog)
            if self.header_stall_since and self.header_timeout > 0 and self.stall_timer is None:
                self.stall_timer = self.loop.call_at(
                    self.loop.time() + self.header_timeout, _check_header_stall, self)
            if self.min_rate > 0 and self.rate_timer is None and self.streams:
                self.rate_mark_bytes = self.received_bytes
                self.rate_timer = self.loop.call_at(
                    self.loop.time() + rate_period(self), _check_rate, self, monotonic())
        finally:
            self.raise_escape()

    def set_guard_budgets(self, GuardBudgets budgets not None):
        """Guard this connection with a server's budgets (its GuardLimits)."""
        if self.guarded:
            guard_set_budgets(self, budgets)

    def start(self):
        """Send the server's connection preface (SETTINGS)."""
        self.flush()

    def announce_alt_svc(self, bytes origin):
        """Queue an ALTSVC frame (RFC 7838 section 4) on stream 0: ``alt_svc`` for ``origin``.

        Called before :meth:`start`, so that it follows the server's SETTINGS.
        """
        if self.session == NULL or self.alt_svc is None:
            return
        check(nghttp2_submit_altsvc(
            self.session, NGHTTP2_FLAG_NONE, 0, <const uint8_t *>PyBytes_AS_STRING(origin),
            PyBytes_GET_SIZE(origin), <const uint8_t *>PyBytes_AS_STRING(self.alt_svc),
            PyBytes_GET_SIZE(self.alt_svc)))

    def pause_writing(self):
        self.writing_paused = True

    def resume_writing(self):
        self.writing_paused = False
        self.flush()

    def terminate(self, int error_code=NGHTTP2_NO_ERROR):
        """Send GOAWAY with ``error_code`` and close once it is written."""
        if self.session == NULL:
            return
        nghttp2_session_terminate_session(self.session, error_code)
        self.flush()

    def shutdown(self):
        """Start a graceful shutdown (RFC 9113 6.8): GOAWAY notice and a PING.

        An idle connection gets the final GOAWAY at once.

        The final GOAWAY, naming the last stream processed, follows the PING's
        acknowledgement (or :meth:`finish_shutdown`); streams already started
        finish, then the connection closes.
        """
        if self.session == NULL or self.shutting_down:
            return
        self.shutting_down = True
        if not self.preface_received or not self.open_stream_count():
            # Idle: a request racing this GOAWAY is reported unprocessed, so the
            # client can retry it; no need to wait for a PING round trip.
            self.finish_shutdown()
            return
        nghttp2_submit_shutdown_notice(self.session)
        nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, NULL)
        self.ping_outstanding = True
        self.close_websockets()
        self.flush()

    def finish_shutdown(self):
        """The final GOAWAY of a graceful shutdown (sent once)."""
        if self.session == NULL or self.final_goaway_sent:
            return
        self.shutting_down = True
        self.final_goaway_sent = True
        nghttp2_submit_goaway(
            self.session, NGHTTP2_FLAG_NONE,
            nghttp2_session_get_last_proc_stream_id(self.session), NGHTTP2_NO_ERROR, NULL, 0)
        self.flush()
        if self.transport is not None and not self.open_stream_count() and not self.received_data:
            self.transport.close()

    @property
    def request_received(self):
        """Whether the client has opened a stream yet (an upgraded request counts)."""
        return self.session != NULL and nghttp2_session_get_last_proc_stream_id(self.session) > 0

    def ping(self):
        """Send a PING (keep-alive); ``ping_outstanding`` until it is acknowledged."""
        if self.session != NULL and not self.ping_outstanding:
            nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, NULL)
            self.ping_outstanding = True
            self.flush()

    def connection_lost(self):
        """The transport is gone: close every open stream and free the session."""
        self.backlog = self.capture = None
        for timer in (self.stall_timer, self.rate_timer):
            if timer is not None:
                timer.cancel()
        self.stall_timer = self.rate_timer = None
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL
        self.transport = None
        self.close_open_streams()
        try:
            if self.failures:
                self.process_failures()
        finally:
            self.raise_escape()

    # -- output ----------------------------------------------------------------

    def flush(self):
        """Write every frame nghttp2 has ready, in batches, until paused or done."""
        cdef const uint8_t *data
        cdef ssize_t n
        self.flush_scheduled = False
        if self.session == NULL or self.transport is None or self.transport.is_closing():
            return
        while True:
            while not self.writing_paused:
                n = nghttp2_session_mem_send(self.session, &data)
                if n < 0:
                    self.write_output()
                    self._after_callbacks()
                    self._fail_session(n)
                    return
                if n == 0:
                    break
                if self.reserve_output(n) < 0:
                    raise MemoryError()
                memcpy(bytes_data(self.output) + self.output_length, data, n)
                self.output_length += n
                if self.output_length >= WRITE_BATCH_SIZE:
                    self.write_output()
            self.write_output()
            if not self.failures and self.fatal is None:
                break
            # Failed handlers get their 500 or RST_STREAM in a second pass.
            self._after_callbacks()
            if self.session == NULL or self.transport is None:
                return
        if not nghttp2_session_want_read(self.session) \
                and not nghttp2_session_want_write(self.session):
            self.transport.close()
        elif not self.open_stream_count():
            self.release_output()

    cdef void request_flush(self):
        """Frames were submitted outside feed(): flush once, later this loop turn."""
        if self.in_feed or self.flush_scheduled:
            return
        self.flush_scheduled = True
        self.loop.call_soon(self.flush)

    # -- after the C calls return -------------------------------------------------

    cdef void _after_callbacks(self) except *:
        cdef object fatal
        if self.failures:
            self.process_failures()
        if self.fatal is not None:
            fatal, self.fatal = self.fatal, None
            if isinstance(fatal, (KeyboardInterrupt, SystemExit)):
                if self.escape is None:
                    self.escape = fatal
            else:
                _logger.error("internal error in a callback on connection %s; closing it",
                              self.client_address, exc_info=fatal)

    cdef void _fail_session(self, ssize_t code):
        """A fatal nghttp2 error: the session is unusable; GOAWAY, then close."""
        cdef int32_t last_stream_id = 0
        cdef uint32_t error_code = NGHTTP2_INTERNAL_ERROR
        _logger.info("closing connection from %s: %s", self.client_address,
                     nghttp2_strerror(<int>code).decode("ascii", "replace"))
        if code == NGHTTP2_ERR_FLOODED or code == ERR_TOO_MANY_CONTINUATIONS:
            error_code = NGHTTP2_ENHANCE_YOUR_CALM
        if self.session != NULL:
            last_stream_id = nghttp2_session_get_last_proc_stream_id(self.session)
            nghttp2_session_del(self.session)
            self.session = NULL
        if self.transport is not None:
            # nghttp2 cannot send any more: the GOAWAY is built here.
            self.write_output()
            if not self.transport.is_closing():
                self.transport.write(goaway_frame(last_stream_id, error_code))
            self.transport.close()

    cdef void _reject_preface(self, const char *data, Py_ssize_t length):
        """Not an HTTP/2 client: tell an HTTP/1 client why, anyone else GOAWAY; then close."""
        cdef Py_ssize_t i = 0
        while i < length and b'A' <= data[i] <= b'Z':
            i += 1
        looks_http1 = (not self.received_data and 0 < i < length and data[i] == b' '
                       and not (i == 3 and memcmp(data, b"PRI", 3) == 0))
        _logger.info("closing connection from %s: %s", self.client_address,
                     "HTTP/1 request on an HTTP/2-only port" if looks_http1
                     else "bad HTTP/2 connection preface")
        if looks_http1 and self.scheme == b"http":
            self.transport.write(_HTTP1_REPLY)
        else:
            self.transport.write(_BAD_PREFACE_REPLY)
        self.transport.close()

    # -- the stream interface ------------------------------------------------------

    cdef bint push_enabled(self):
        return self.session != NULL and nghttp2_session_get_remote_settings(
            self.session, NGHTTP2_SETTINGS_ENABLE_PUSH) != 0

    cdef int submit_response(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        cdef nghttp2_data_provider provider
        if self.session == NULL:
            return 0
        self.add_alt_svc(block)
        if stream.body is None:
            check(nghttp2_submit_response(self.session, stream.stream_id, block.nva,
                                          block.length, NULL))
        else:
            provider.source.ptr = <void *>stream
            provider.read_callback = cb_data_source_read
            check(nghttp2_submit_response(self.session, stream.stream_id, block.nva,
                                          block.length, &provider))
        self.request_flush()
        return 0

    cdef object submit_push(self, BaseRequestHandler parent, HeaderBlock request,
                            bytes method, bytes path, int status, HeaderBlock response,
                            BodySource source):
        cdef int32_t promised_id = nghttp2_submit_push_promise(
            self.session, NGHTTP2_FLAG_NONE, parent.stream_id, request.nva, request.length,
            NULL)
        if promised_id < 0:
            if source is not None:
                source.close()
            if promised_id == NGHTTP2_ERR_PUSH_DISABLED \
                    or promised_id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE \
                    or promised_id == NGHTTP2_ERR_STREAM_CLOSED:
                return False
            check(promised_id)
        cdef BaseRequestHandler pushed = new_pushed_handler(parent, promised_id, method, path)
        self.streams[promised_id] = pushed
        nghttp2_session_set_stream_user_data(self.session, promised_id, <void *>pushed)
        pushed.start_response(status, response, source)
        return True

    cdef int submit_info(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        if self.session == NULL:
            return 0
        check(nghttp2_submit_headers(self.session, NGHTTP2_FLAG_NONE, stream.stream_id, NULL,
                                     block.nva, block.length, NULL))
        self.request_flush()
        return 0

    cdef void consume(self, BaseRequestHandler stream, size_t length) noexcept:
        if self.session != NULL:
            nghttp2_session_consume(self.session, stream.stream_id, length)

    cdef void discard(self, size_t length) noexcept:
        if self.session != NULL:
            nghttp2_session_consume_connection(self.session, length)

    cdef void resume_body(self, BaseRequestHandler stream):
        if self.session != NULL:
            nghttp2_session_resume_data(self.session, stream.stream_id)
            self.request_flush()

    cdef void reset_stream(self, BaseRequestHandler stream, uint32_t error_code):
        if self.session != NULL:
            nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, stream.stream_id,
                                      error_code)
            self.request_flush()

    # -- callback bodies ---------------------------------------------------------

    cdef int _on_begin_headers(self, const nghttp2_frame *frame) except -1:
        cdef BaseRequestHandler handler
        if frame.hd.type != NGHTTP2_HEADERS or frame.headers.cat != NGHTTP2_HCAT_REQUEST:
            return 0
        if guard_reset_by_client(self, frame.hd.stream_id):
            return 0  # reset in the same read: no handler runs (rapid reset)
        handler = self.new_handler(frame.hd.stream_id)
        if handler is None:
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE  # nghttp2 resets the stream
        nghttp2_session_set_stream_user_data(self.session, frame.hd.stream_id, <void *>handler)
        return 0

    cdef int _on_header(self, const nghttp2_frame *frame, nghttp2_rcbuf *name_buf,
                        nghttp2_rcbuf *value_buf) except -1:
        cdef void *user_data = nghttp2_session_get_stream_user_data(
            self.session, frame.hd.stream_id)
        if user_data == NULL:
            return 0
        cdef BaseRequestHandler handler = <BaseRequestHandler>user_data
        cdef nghttp2_vec name = nghttp2_rcbuf_get_buf(name_buf)
        cdef nghttp2_vec value = nghttp2_rcbuf_get_buf(value_buf)
        if frame.headers.cat != NGHTTP2_HCAT_REQUEST:
            if frame.hd.stream_id != self.oversized_field_stream:
                handler.add_trailer(&name, &value)  # (else a field was too long: none kept)
        elif not name.len or name.base[0] != b':':
            handler.add_header(&name, &value)
            if name.len == 14 and memcmp(name.base, b"content-length", 14) == 0 \
                    and over_length(value.base, value.len, self.max_request_body_size):
                handler.state |= BODY_TOO_LARGE  # answered once the block is complete
        elif handler.within_limit(name.len + value.len):
            # Pseudo-headers: nghttp2 has checked that each appears once, first.
            set_pseudo_header(handler, &name, &value)
        if handler.state & HEADERS_TOO_LARGE:
            return guard_oversized_header(self, handler, frame)
        return 0

    cdef int _on_frame_recv(self, const nghttp2_frame *frame) except -1:
        cdef void *user_data
        cdef BaseRequestHandler handler
        cdef uint8_t frame_type = frame.hd.type
        if frame_type != NGHTTP2_HEADERS and frame_type != NGHTTP2_DATA:
            self._on_connection_frame_recv(frame)
            return 0
        user_data = nghttp2_session_get_stream_user_data(self.session, frame.hd.stream_id)
        if user_data == NULL:
            return 0
        handler = <BaseRequestHandler>user_data
        cdef bint end_stream = frame.hd.flags & NGHTTP2_FLAG_END_STREAM
        if frame_type == NGHTTP2_HEADERS and frame.headers.cat == NGHTTP2_HCAT_REQUEST:
            if frame.hd.stream_id == self.oversized_field_stream:
                handler.within_limit(self.max_header_list_size)  # a field too long to decode
            if handler.state & BODY_TOO_LARGE and not (handler.state & HEADERS_TOO_LARGE):
                self._refuse_body(handler)
                return 0
            handler.headers_received(end_stream)
            if handler.state & HEADERS_TOO_LARGE:
                guard_count_oversized(self)
                return 0  # answered with 431
        if end_stream:
            handler.request_received()
        elif handler.state & BODY_TOO_LARGE and self._response_complete(handler):
            # More of a refused body after its 413 went out: ask the client to
            # stop sending it (RFC 9113 section 8.1). Not sooner: a body that
            # arrives whole meanwhile needs no reset (some clients, curl 7.88
            # among them, drop the response they were sent when it comes).
            self.reset_stream(handler, NGHTTP2_NO_ERROR)
        return 0

    cdef void _on_connection_frame_recv(self, const nghttp2_frame *frame) except *:
        cdef uint8_t frame_type = frame.hd.type
        if frame_type == NGHTTP2_SETTINGS:
            if frame.hd.flags & NGHTTP2_FLAG_ACK:
                self.settings_acked = True
            else:
                self.preface_received = True
        elif frame_type == NGHTTP2_PING and frame.hd.flags & NGHTTP2_FLAG_ACK:
            self.ping_outstanding = False
            # The final GOAWAY goes out once this read is processed (feed), so
            # that it names every stream the read opened; never from in here.
            self.shutdown_ping_acked = self.shutting_down

    cdef int _on_data_chunk_recv(self, int32_t stream_id, const uint8_t *data,
                                 size_t length) except -1:
        cdef void *user_data = nghttp2_session_get_stream_user_data(self.session, stream_id)
        cdef BaseRequestHandler handler
        if user_data != NULL:
            handler = <BaseRequestHandler>user_data
            handler.body_bytes_received += length
            if handler.body_bytes_received <= self.max_request_body_size:
                return handler.data_received(data, length)
            if not (handler.state & BODY_TOO_LARGE):
                self._refuse_body(handler)
        nghttp2_session_consume(self.session, stream_id, length)
        return 0

    cdef void _refuse_body(self, BaseRequestHandler handler) except *:
        """A request body over ``max_request_body_size``: its hooks get no more of it.

        ``413`` if no response has started (then RST_STREAM NO_ERROR if more
        of the body comes after it, see _on_frame_recv); else the stream is
        reset: NO_ERROR if the response is complete (RFC 9113 section 8.1),
        CANCEL if it is cut short. The connection's other streams go on.
        """
        handler.state |= BODY_TOO_LARGE | HANDLER_FAILED
        _logger.info("request body over %d bytes on stream %d from %s: %s",
                     self.max_request_body_size, handler.stream_id, self.client_address,
                     "reset" if handler.state & RESPONSE_STARTED else "413")
        if handler.state & STREAM_CLOSED:
            return
        if handler.state & RESPONSE_STARTED:
            self.reset_stream(handler, NGHTTP2_NO_ERROR if self._response_complete(handler)
                              else NGHTTP2_CANCEL)
            return
        handler.respond_error(413, _CONTENT_TOO_LARGE_BODY)

    cdef bint _response_complete(self, BaseRequestHandler handler) noexcept:
        """Whether the stream's response has been sent whole (its END_STREAM is out)."""
        cdef nghttp2_stream *stream = nghttp2_session_find_stream(self.session,
                                                                  handler.stream_id)
        return stream != NULL and (nghttp2_stream_get_state(stream)
                                   == NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL)

    cdef int _on_stream_close(self, int32_t stream_id, uint32_t error_code) except -1:
        cdef object handler = self.streams.pop(stream_id, None)
        if handler is not None:
            (<BaseRequestHandler>handler).closed(error_code)
        return 0

    cdef void close_open_streams(self) except *:
        """The connection is gone: every stream still open closes (``CANCEL``)."""
        for stream_id in list(self.streams):
            self._on_stream_close(stream_id, NGHTTP2_CANCEL)

    cdef ssize_t _on_data_source_read(self, BaseRequestHandler stream, uint8_t *buf,
                                      size_t length, uint32_t *flags) noexcept:
        cdef ssize_t n
        try:
            n = stream.read_body(buf, length, flags)
            if flags[0] & NGHTTP2_DATA_FLAG_EOF and stream.trailer_block is not None:
                flags[0] |= NGHTTP2_DATA_FLAG_NO_END_STREAM
                check(nghttp2_submit_trailer(self.session, stream.stream_id,
                                             stream.trailer_block.nva,
                                             stream.trailer_block.length))
            return n
        except BaseException as exc:
            stream.fail("body", exc)
            # nghttp2 resets the stream with INTERNAL_ERROR.
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE

    cdef int _on_send_data(self, BodySource body, const uint8_t *framehd,
                           size_t length) noexcept:
        # Only bodies that set NGHTTP2_DATA_FLAG_NO_COPY (large BytesBody chunks)
        # come here; no padding is ever requested, so the frame is header + data.
        cdef char *end
        if self.writing_paused:
            return NGHTTP2_ERR_WOULDBLOCK  # called again with the same frame on resume
        if self.reserve_output(FRAME_HEADER_LENGTH + length) < 0:
            return NGHTTP2_ERR_CALLBACK_FAILURE
        end = bytes_data(self.output) + self.output_length
        memcpy(end, framehd, FRAME_HEADER_LENGTH)
        memcpy(end + FRAME_HEADER_LENGTH, body.take(length), length)
        self.output_length += FRAME_HEADER_LENGTH + length
        if self.output_length >= WRITE_BATCH_SIZE:
            try:
                self.write_output()
            except BaseException as exc:
                self.fatal = exc
                return NGHTTP2_ERR_CALLBACK_FAILURE
        return 0

    cdef void _log_goaway(self, const nghttp2_frame *frame):
        debug = PyBytes_FromStringAndSize(<char *>frame.goaway.opaque_data,
                                          frame.goaway.opaque_data_len)
        _logger.info("sent GOAWAY %s to %s (last stream %d)%s",
                     nghttp2_http2_strerror(frame.goaway.error_code).decode("ascii"),
                     self.client_address, frame.goaway.last_stream_id,
                     ": " + debug.decode("utf-8", "replace") if debug else "")


cdef bytes _HTTP = b"http"
cdef bytes _HTTPS = b"https"
cdef bytes _GET = b"GET"
cdef bytes _POST = b"POST"
cdef bytes _HEAD = b"HEAD"


cdef inline bytes known_method(const nghttp2_vec *value):
    """The request method, shared for the common ones."""
    if value.len == 3 and memcmp(value.base, b"GET", 3) == 0:
        return _GET
    if value.len == 4 and memcmp(value.base, b"POST", 4) == 0:
        return _POST
    if value.len == 4 and memcmp(value.base, b"HEAD", 4) == 0:
        return _HEAD
    return PyBytes_FromStringAndSize(<char *>value.base, value.len)


# -- C trampolines: no Python exception ever unwinds into libnghttp2 --------------
#
# They run with the GIL already held (see include/nghttp2.pxd), so they do not
# take it again: PyGILState_Ensure/Release cost more than the smaller bodies.

cdef void set_pseudo_header(BaseRequestHandler handler, const nghttp2_vec *name,
                            const nghttp2_vec *value):
    """A request pseudo-header field as the handler's attribute (HTTP/2 and HTTP/3)."""
    if name.len == 7 and memcmp(name.base, b":method", 7) == 0:
        handler.method = known_method(value)
    elif name.len == 5 and memcmp(name.base, b":path", 5) == 0:
        handler.path = PyBytes_FromStringAndSize(<char *>value.base, value.len)
    elif name.len == 7 and memcmp(name.base, b":scheme", 7) == 0:
        if value.len == 4 and memcmp(value.base, b"http", 4) == 0:
            handler.scheme = _HTTP
        elif value.len == 5 and memcmp(value.base, b"https", 5) == 0:
            handler.scheme = _HTTPS
        else:
            handler.scheme = PyBytes_FromStringAndSize(<char *>value.base, value.len)
    elif name.len == 10 and memcmp(name.base, b":authority", 10) == 0:
        handler.host = PyBytes_FromStringAndSize(<char *>value.base, value.len)
    elif name.len == 9 and memcmp(name.base, b":protocol", 9) == 0:
        handler.upgrade_protocol = PyBytes_FromStringAndSize(<char *>value.base, value.len)


cdef int cb_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                             void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self._on_begin_headers(frame)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int cb_on_header(nghttp2_session *session, const nghttp2_frame *frame,
                      nghttp2_rcbuf *name, nghttp2_rcbuf *value, uint8_t flags,
                      void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self._on_header(frame, name, value)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int cb_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self._on_frame_recv(frame)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int cb_on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                               const uint8_t *data, size_t length,
                               void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self._on_data_chunk_recv(stream_id, data, length)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int cb_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                            void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self._on_stream_close(stream_id, error_code)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int cb_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data) noexcept:
    if frame.hd.type == NGHTTP2_RST_STREAM:
        guard_frame_sent(<Session>user_data, frame)
        return 0
    if frame.hd.type != NGHTTP2_GOAWAY or frame.goaway.error_code == NGHTTP2_NO_ERROR:
        return 0
    cdef Session self = <Session>user_data
    try:
        self._log_goaway(frame)
    except BaseException as exc:
        self.fatal = exc
    return 0


cdef int cb_on_error(nghttp2_session *session, int lib_error_code, const char *msg,
                     size_t length, void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        if _logger.isEnabledFor(_logging.INFO):
            _logger.info("protocol error from %s: %s", self.client_address,
                         msg[:length].decode("utf-8", "replace"))
    except BaseException as exc:
        self.fatal = exc
    return 0


cdef ssize_t cb_data_source_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                 size_t length, uint32_t *data_flags,
                                 nghttp2_data_source *source, void *user_data) noexcept:
    return (<Session>user_data)._on_data_source_read(
        <BaseRequestHandler>source.ptr, buf, length, data_flags)


cdef int cb_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                      size_t length, nghttp2_data_source *source,
                      void *user_data) noexcept:
    return (<Session>user_data)._on_send_data((<BaseRequestHandler>source.ptr).body, framehd,
                                              length)
