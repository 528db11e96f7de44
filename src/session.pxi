# Session: one nghttp2_session per connection, bound to an asyncio transport.
#
# Input arrives through feed(); every C callback is a module-level trampoline
# that catches all exceptions, records them on the Session and returns an
# nghttp2 error code. The Session acts on what was recorded once
# nghttp2_session_mem_recv / mem_send has returned. Output is batched into one
# buffer and written with one transport.write per batch.

from libc.string cimport memcmp
from posix.time cimport timespec, clock_gettime, CLOCK_MONOTONIC
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.object cimport PyObject, PyTypeObject

import functools
import logging as _logging
import time as _time

_logger = _logging.getLogger("nghttp2py")
_access_logger = _logging.getLogger("nghttp2py.access")

# One write to the transport at least every this many bytes of output, so that
# a large body never sits whole in memory and backpressure is seen in time.
cdef enum:
    WRITE_BATCH_SIZE = 65536
    INITIAL_OUTPUT_CAPACITY = 16384

# Rapid-reset protection (CVE-2023-44487): a token bucket over received
# RST_STREAM frames, with nghttp2's default numbers. nghttp2's own limiter only
# queues a GOAWAY, and the rest of the same read would still open streams;
# ours terminates the session so that nothing after it is processed. nghttp2's
# limiter stays on, looser, as a backstop.
cdef double RESET_BURST = 1000
cdef double RESET_RATE = 33

cdef tuple _EMPTY_TUPLE = ()
cdef bytes _INTERNAL_ERROR_BODY = b"Internal Server Error\n"
cdef bytes _HEADERS_TOO_LARGE_BODY = b"Request Header Fields Too Large\n"
cdef bytes _HTTP1_REPLY_BODY = (
    b"This server speaks HTTP/2 only. Use an HTTP/2 client, e.g. "
    b"curl --http2-prior-knowledge, or https with ALPN h2.\n")
cdef bytes _HTTP1_REPLY = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_HTTP1_REPLY_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _HTTP1_REPLY_BODY)


# The callbacks and options every session is created with; nghttp2 copies both
# into each session, so they are built once.
cdef nghttp2_session_callbacks *_callbacks = NULL
cdef nghttp2_option *_option = NULL


cdef int _init_session_templates() except -1:
    global _callbacks, _option
    cdef nghttp2_session_callbacks *callbacks = NULL
    cdef nghttp2_option *option = NULL
    check(nghttp2_session_callbacks_new(&callbacks))
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers)
    nghttp2_session_callbacks_set_on_header_callback2(callbacks, on_header)
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close)
    nghttp2_session_callbacks_set_send_data_callback(callbacks, send_data)
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send)
    nghttp2_session_callbacks_set_error_callback2(callbacks, on_error)
    if nghttp2_option_new(&option) != 0:
        nghttp2_session_callbacks_del(callbacks)
        raise MemoryError()
    # The window is given back as the application consumes request data.
    nghttp2_option_set_no_auto_window_update(option, 1)
    nghttp2_option_set_stream_reset_rate_limit(
        option, <uint64_t>(2 * RESET_BURST), <uint64_t>(2 * RESET_RATE))
    # RFC 9218 priorities (announced in SETTINGS), RFC 7540 for clients that
    # do not announce SETTINGS_NO_RFC7540_PRIORITIES themselves.
    nghttp2_option_set_server_fallback_rfc7540_priorities(option, 1)
    nghttp2_option_set_builtin_recv_extension_type(option, NGHTTP2_PRIORITY_UPDATE)
    _callbacks, _option = callbacks, option
    return 0


cdef class Session:
    """The HTTP/2 server side of one connection (libnghttp2 session).

    ``settings`` is a mapping with the SETTINGS to announce and the limits to
    apply (see :class:`nghttp2py.ServerSettings`).
    """
    cdef nghttp2_session *session
    cdef object transport
    cdef object loop
    cdef type handler_class
    cdef int handler_callbacks
    cdef dict streams
    cdef readonly object client_address
    cdef object client_certificate
    cdef bytes scheme
    cdef bint access_log
    cdef size_t max_header_list_size
    cdef list failures
    cdef object fatal
    cdef bint in_feed
    cdef bint flush_scheduled
    cdef bint writing_paused
    cdef bint received_data
    cdef double reset_tokens
    cdef double reset_stamp
    cdef readonly bint push_early_hints
    cdef readonly bint preface_received
    cdef readonly bint settings_acked
    cdef readonly double last_activity
    cdef readonly bint shutting_down
    cdef readonly bint ping_outstanding
    cdef bint shutdown_ping_acked
    cdef bint final_goaway_sent
    cdef uint8_t *output
    cdef size_t output_length
    cdef size_t output_capacity

    def __cinit__(self):
        self.session = NULL
        self.output = NULL

    def __init__(self, transport, handler_class, settings, *, client_address=None,
                 client_certificate=None, bytes scheme=b"http", bint access_log=False,
                 bint push_early_hints=False, loop=None):
        self.transport = transport
        self.loop = loop
        self.handler_class = handler_class
        self.handler_callbacks = callback_flags(handler_class)
        self.streams = {}
        self.failures = []
        self.client_address = client_address
        self.client_certificate = client_certificate
        self.scheme = scheme
        self.access_log = access_log
        self.push_early_hints = push_early_hints
        self.last_activity = monotonic()
        self.max_header_list_size = settings["max_header_list_size"]
        self.reset_tokens = RESET_BURST
        self._create(settings)

    cdef int _create(self, dict settings) except -1:
        cdef nghttp2_settings_entry entries[6]
        if _callbacks == NULL:
            _init_session_templates()
        check(nghttp2_session_server_new2(&self.session, _callbacks, <void *>self, _option))
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
        check(nghttp2_submit_settings(self.session, NGHTTP2_FLAG_NONE, entries, 6))
        check(nghttp2_session_set_local_window_size(
            self.session, NGHTTP2_FLAG_NONE, 0, settings["connection_window_size"]))
        return 0

    def __dealloc__(self):
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL
        free(self.output)

    # -- the connection's side ----------------------------------------------

    def feed(self, data, Py_ssize_t length):
        """Process ``length`` bytes received at the start of ``data``; then flush."""
        cdef Py_buffer view
        cdef ssize_t rv
        if self.session == NULL:
            return
        self.last_activity = monotonic()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if length > view.len:
                raise ValueError("length exceeds the buffer")
            self.in_feed = True
            rv = nghttp2_session_mem_recv(self.session, <const uint8_t *>view.buf, length)
            self.in_feed = False
            if rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC:
                self._reject_preface(<const char *>view.buf, length)
                return
        finally:
            self.in_feed = False
            PyBuffer_Release(&view)
        self.received_data = True
        self._after_callbacks()
        if rv < 0:
            self._fail_session(rv)
            return
        if self.shutdown_ping_acked:
            self.shutdown_ping_acked = False
            self.finish_shutdown()
        self.flush()

    def start(self):
        """Send the server's connection preface (SETTINGS)."""
        self.flush()

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
        if not self.preface_received or not self.streams:
            # Idle: a request racing this GOAWAY is reported unprocessed, so the
            # client can retry it; no need to wait for a PING round trip.
            self.finish_shutdown()
            return
        nghttp2_submit_shutdown_notice(self.session)
        nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, NULL)
        self.ping_outstanding = True
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
        if self.transport is not None and not self.streams and not self.received_data:
            self.transport.close()

    def ping(self):
        """Send a PING (keep-alive); ``ping_outstanding`` until it is acknowledged."""
        if self.session != NULL and not self.ping_outstanding:
            nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, NULL)
            self.ping_outstanding = True
            self.flush()

    def connection_lost(self):
        """The transport is gone: close every open stream and free the session."""
        cdef BaseRequestHandler handler
        streams, self.streams = self.streams, {}
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL
        self.transport = None
        for handler in streams.values():
            self._stream_closed(handler, NGHTTP2_CANCEL)
        if self.failures:
            self._log_failures()

    @property
    def open_streams(self):
        """How many streams are open."""
        return len(self.streams)

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
                    self._write_output()
                    self._after_callbacks()
                    self._fail_session(n)
                    return
                if n == 0:
                    break
                if self._reserve(n) < 0:
                    raise MemoryError()
                memcpy(self.output + self.output_length, data, n)
                self.output_length += n
                if self.output_length >= WRITE_BATCH_SIZE:
                    self._write_output()
            self._write_output()
            if not self.failures and self.fatal is None:
                break
            # Failed handlers get their 500 or RST_STREAM in a second pass.
            self._after_callbacks()
            if self.session == NULL or self.transport is None:
                return
        if not nghttp2_session_want_read(self.session) \
                and not nghttp2_session_want_write(self.session):
            self.transport.close()
        elif not self.streams and self.output != NULL:
            # An idle connection keeps no output buffer: most connections are
            # idle most of the time, and malloc hands the buffer to the next.
            free(self.output)
            self.output = NULL
            self.output_capacity = 0

    cdef int _reserve(self, size_t n) noexcept:
        cdef size_t capacity
        cdef uint8_t *grown
        if self.output_length + n <= self.output_capacity:
            return 0
        capacity = self.output_capacity or INITIAL_OUTPUT_CAPACITY
        while capacity < self.output_length + n:
            capacity *= 2
        grown = <uint8_t *>realloc(self.output, capacity)
        if grown == NULL:
            return -1
        self.output = grown
        self.output_capacity = capacity
        return 0

    cdef void _write_output(self):
        if self.output_length:
            data = PyBytes_FromStringAndSize(<char *>self.output, self.output_length)
            self.output_length = 0
            self.transport.write(data)
            self.last_activity = monotonic()
            if self.transport.is_closing():
                # The peer is gone (asyncio drops further writes): pull no more
                # DATA, so streams end with connection_lost, not as complete.
                self.writing_paused = True

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
            self._log_failures()
        if self.fatal is not None:
            fatal, self.fatal = self.fatal, None
            if isinstance(fatal, (KeyboardInterrupt, SystemExit)):
                raise fatal
            _logger.error("internal error in a callback on connection %s; closing it",
                          self.client_address, exc_info=fatal)

    cdef void _log_failures(self):
        cdef BaseRequestHandler handler
        failures, self.failures = self.failures, []
        for handler, where, exc in failures:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise exc
            _logger.error("%s.%s raised on stream %d from %s", type(handler).__name__, where,
                          handler.stream_id, self.client_address, exc_info=exc)
            if not (handler.state & STREAM_CLOSED) and self.session != NULL:
                if handler.state & RESPONSE_STARTED:
                    nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE,
                                              handler.stream_id, NGHTTP2_INTERNAL_ERROR)
                else:
                    self._send_error_response(handler, 500, _INTERNAL_ERROR_BODY)

    cdef void _send_error_response(self, BaseRequestHandler handler, int status, bytes body):
        cdef HeaderBlock block = response_header_block(
            status, ((b"content-type", b"text/plain; charset=utf-8"),), len(body))
        self.submit_response(handler, status, block, body_source(body))

    cdef void _fail_session(self, ssize_t code):
        """A fatal nghttp2 error: the session is unusable, close the connection."""
        _logger.info("closing connection from %s: %s", self.client_address,
                     nghttp2_strerror(<int>code).decode("ascii", "replace"))
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL
        if self.transport is not None:
            self.transport.close()

    cdef void _reject_preface(self, const char *data, Py_ssize_t length):
        """Not an HTTP/2 client: tell an HTTP/1 client why, then close."""
        cdef Py_ssize_t i = 0
        while i < length and b'A' <= data[i] <= b'Z':
            i += 1
        looks_http1 = not self.received_data and 0 < i < length and data[i] == b' '
        _logger.info("closing connection from %s: %s", self.client_address,
                      "HTTP/1 request on an HTTP/2-only port" if looks_http1
                      else "bad HTTP/2 connection preface")
        if looks_http1 and self.scheme == b"http":
            self.transport.write(_HTTP1_REPLY)
        self.transport.close()

    # -- submissions from handlers -------------------------------------------------

    cdef bint push_enabled(self):
        return self.session != NULL and nghttp2_session_get_remote_settings(
            self.session, NGHTTP2_SETTINGS_ENABLE_PUSH) != 0

    cdef int submit_response(self, BaseRequestHandler handler, int status, HeaderBlock block,
                             BodySource source) except -1:
        cdef nghttp2_data_provider provider
        cdef int rv
        if self.session == NULL:
            return 0
        handler.body = source
        if isinstance(source, AsyncIterBody):
            (<AsyncIterBody>source).handler = handler
        if source is None:
            rv = nghttp2_submit_response(self.session, handler.stream_id, block.nva,
                                         block.length, NULL)
        else:
            provider.source.ptr = <void *>handler
            provider.read_callback = data_source_read
            rv = nghttp2_submit_response(self.session, handler.stream_id, block.nva,
                                         block.length, &provider)
        if rv < 0:
            handler.body = None
            if source is not None:
                source.close()
            check(rv)
        handler.state |= RESPONSE_STARTED
        handler.status = status
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
        cdef BaseRequestHandler pushed = BaseRequestHandler.__new__(BaseRequestHandler)
        pushed.session = self
        pushed.stream_id = promised_id
        pushed.state = PUSHED
        pushed.method = method
        pushed.path = path
        pushed.scheme = parent.scheme
        pushed.host = parent.host
        pushed.client_address = parent.client_address
        pushed.client_certificate = parent.client_certificate
        pushed._headers = []
        pushed.callbacks = 0
        self.streams[promised_id] = pushed
        nghttp2_session_set_stream_user_data(self.session, promised_id, <void *>pushed)
        self.submit_response(pushed, status, response, source)
        return True

    cdef int submit_info(self, BaseRequestHandler handler, int status, object headers) except -1:
        cdef HeaderBlock block = informational_header_block(status, headers)
        if self.session == NULL:
            return 0
        check(nghttp2_submit_headers(self.session, NGHTTP2_FLAG_NONE, handler.stream_id, NULL,
                                     block.nva, block.length, NULL))
        self.request_flush()
        return 0

    cdef int continue_request(self, BaseRequestHandler handler) except -1:
        """``100 Continue`` once on_headers is done, unless it has answered already."""
        if handler.state & EXPECT_CONTINUE:
            handler.state &= ~EXPECT_CONTINUE
            if not (handler.state & (RESPONSE_STARTED | STREAM_CLOSED)):
                self.submit_info(handler, 100, None)
        return 0

    cdef void consume(self, int32_t stream_id, size_t length) noexcept:
        """The application has taken ``length`` request bytes: reopen the window."""
        if self.session != NULL:
            nghttp2_session_consume(self.session, stream_id, length)

    cdef void after_async_work(self) except *:
        """After application code ran outside feed(): act on failures, then flush."""
        if self.in_feed:
            return
        if self.failures:
            self._log_failures()
        self.request_flush()

    cdef void body_failed(self, BaseRequestHandler handler, exc) except *:
        """An asynchronous body source raised: reset the stream."""
        self.handler_failed(handler, "body", exc)
        handler.state |= RESPONSE_STARTED
        self.after_async_work()

    cdef void resume_data(self, int32_t stream_id):
        if self.session != NULL:
            nghttp2_session_resume_data(self.session, stream_id)
            self.request_flush()

    # -- callback bodies ---------------------------------------------------------

    cdef inline void handler_failed(self, BaseRequestHandler handler, str where, exc):
        handler.state |= HANDLER_FAILED
        self.failures.append((handler, where, exc))

    cdef int begin_headers(self, const nghttp2_frame *frame) except -1:
        cdef BaseRequestHandler handler
        cdef int32_t stream_id = frame.hd.stream_id
        if frame.hd.type != NGHTTP2_HEADERS or frame.headers.cat != NGHTTP2_HCAT_REQUEST:
            return 0
        try:
            if self.handler_callbacks & HAS_CONSTRUCTOR:
                handler = self.handler_class(self, stream_id)
            else:
                # BaseRequestHandler.__init__ only stores what is stored below.
                handler = (<PyTypeObject *>self.handler_class).tp_new(
                    self.handler_class, <PyObject *>_EMPTY_TUPLE, NULL)
        except Exception as exc:
            _logger.error("%s() raised on stream %d from %s", self.handler_class.__name__,
                          stream_id, self.client_address, exc_info=exc)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE  # nghttp2 resets the stream
        handler.session = self
        handler.stream_id = stream_id
        handler.callbacks = self.handler_callbacks
        handler.client_address = self.client_address
        handler.client_certificate = self.client_certificate
        self.streams[stream_id] = handler
        nghttp2_session_set_stream_user_data(self.session, stream_id, <void *>handler)
        return 0

    cdef int header(self, const nghttp2_frame *frame, nghttp2_rcbuf *name_buf,
                    nghttp2_rcbuf *value_buf) except -1:
        cdef void *user_data = nghttp2_session_get_stream_user_data(
            self.session, frame.hd.stream_id)
        if user_data == NULL:
            return 0
        cdef BaseRequestHandler handler = <BaseRequestHandler>user_data
        cdef nghttp2_vec name = nghttp2_rcbuf_get_buf(name_buf)
        cdef nghttp2_vec value = nghttp2_rcbuf_get_buf(value_buf)
        handler.header_list_size += name.len + value.len + 32
        if handler.header_list_size > self.max_header_list_size:
            handler.state |= HEADERS_TOO_LARGE
            handler.release_raw_headers()
            return 0
        if handler.state & HEADERS_TOO_LARGE:
            return 0
        if frame.headers.cat != NGHTTP2_HCAT_REQUEST:
            if handler.trailers is None:
                handler.trailers = []
            handler.trailers.append((PyBytes_FromStringAndSize(<char *>name.base, name.len),
                                     PyBytes_FromStringAndSize(<char *>value.base, value.len)))
            return 0
        if name.len and name.base[0] == b':':
            if name.len == 7 and memcmp(name.base, b":method", 7) == 0:
                handler.method = known_method(&value)
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
            return 0
        if name.len == 4 and handler.host is None and memcmp(name.base, b"host", 4) == 0:
            handler.host = PyBytes_FromStringAndSize(<char *>value.base, value.len)
        elif name.len == 6 and value.len == 12 and memcmp(name.base, b"expect", 6) == 0 \
                and _ascii_lower_equals(value.base, b"100-continue", 12):
            handler.state |= EXPECT_CONTINUE
        handler.add_raw_header(&name, &value)
        return 0

    cdef int frame_recv(self, const nghttp2_frame *frame) except -1:
        cdef void *user_data
        cdef BaseRequestHandler handler
        cdef uint8_t frame_type = frame.hd.type
        if frame_type != NGHTTP2_HEADERS and frame_type != NGHTTP2_DATA:
            self._connection_frame_recv(frame)
            return 0
        user_data = nghttp2_session_get_stream_user_data(self.session, frame.hd.stream_id)
        if user_data == NULL:
            return 0
        handler = <BaseRequestHandler>user_data
        if frame_type == NGHTTP2_HEADERS and frame.headers.cat == NGHTTP2_HCAT_REQUEST:
            if handler.state & HEADERS_TOO_LARGE:
                handler.state |= HANDLER_FAILED
                self._send_error_response(handler, 431, _HEADERS_TOO_LARGE_BODY)
                return 0
            if frame.hd.flags & NGHTTP2_FLAG_END_STREAM:
                handler.state &= ~EXPECT_CONTINUE
            if handler.callbacks & HAS_ON_HEADERS:
                self.deliver(handler, EVENT_HEADERS, None)
            if handler.task is None:
                self.continue_request(handler)
        if frame.hd.flags & NGHTTP2_FLAG_END_STREAM:
            handler.state |= REQUEST_DONE
            if handler.callbacks & HAS_ON_REQUEST_DONE:
                self.deliver(handler, EVENT_DONE, None)
        return 0

    cdef void _connection_frame_recv(self, const nghttp2_frame *frame) except *:
        cdef uint8_t frame_type = frame.hd.type
        if frame_type == NGHTTP2_RST_STREAM:
            self._take_reset_token()
        elif frame_type == NGHTTP2_SETTINGS:
            if frame.hd.flags & NGHTTP2_FLAG_ACK:
                self.settings_acked = True
            else:
                self.preface_received = True
        elif frame_type == NGHTTP2_PING and frame.hd.flags & NGHTTP2_FLAG_ACK:
            self.ping_outstanding = False
            # The final GOAWAY goes out once this read is processed (feed), so
            # that it names every stream the read opened; never from in here.
            self.shutdown_ping_acked = self.shutting_down

    cdef void _take_reset_token(self) noexcept:
        cdef double now = monotonic()
        self.reset_tokens = min(RESET_BURST,
                                self.reset_tokens + (now - self.reset_stamp) * RESET_RATE)
        self.reset_stamp = now
        if self.reset_tokens >= 1:
            self.reset_tokens -= 1
        else:
            # Queues GOAWAY and makes nghttp2 ignore every new stream from here
            # on, the rest of this read included (no handler runs for them).
            nghttp2_session_terminate_session(self.session, NGHTTP2_ENHANCE_YOUR_CALM)

    cdef int data_chunk_recv(self, int32_t stream_id, const uint8_t *data,
                             size_t length) except -1:
        cdef void *user_data = nghttp2_session_get_stream_user_data(self.session, stream_id)
        cdef BaseRequestHandler handler
        if user_data != NULL:
            handler = <BaseRequestHandler>user_data
            if handler.callbacks & HAS_ON_DATA and not (handler.state & HANDLER_FAILED):
                # The window reopens when the handler has taken the data.
                self.deliver(handler, EVENT_DATA,
                             PyBytes_FromStringAndSize(<const char *>data, length))
                return 0
        nghttp2_session_consume(self.session, stream_id, length)
        return 0

    # -- request events, in order, with async hooks and paused reading ---------------

    cdef void deliver(self, BaseRequestHandler handler, int event, object data) except *:
        if handler.task is not None or handler.events \
                or (event == EVENT_DATA and handler.state & READING_PAUSED):
            if handler.events is None:
                handler.events = _deque()
            handler.events.append((event, data))
            return
        self.run_event(handler, event, data)

    cdef void run_event(self, BaseRequestHandler handler, int event, object data) except *:
        cdef object result
        cdef Py_ssize_t length = len(data) if event == EVENT_DATA else 0
        if handler.state & HANDLER_FAILED:
            result = None
        else:
            try:
                if event == EVENT_DATA:
                    result = handler.on_data(data)
                elif event == EVENT_HEADERS:
                    result = handler.on_headers()
                else:
                    result = handler.on_request_done()
            except Exception as exc:
                self.handler_failed(handler, _HOOK_NAMES[event], exc)
                result = None
        if result is not None and _iscoroutine(result):
            handler.task = self.loop.create_task(result)
            handler.task_event = event
            handler.task_bytes = length
            handler.task.add_done_callback(handler._hook_done)
        elif length:
            self.consume(handler.stream_id, length)

    cdef void drain_events(self, BaseRequestHandler handler) except *:
        """Deliver queued events until an async hook runs or reading is paused."""
        cdef tuple item
        events = handler.events
        while events and handler.task is None and not (handler.state & STREAM_CLOSED):
            item = events[0]
            if item[0] == EVENT_DATA and handler.state & READING_PAUSED:
                break
            events.popleft()
            self.run_event(handler, item[0], item[1])

    # -- stream close ----------------------------------------------------------------

    cdef int stream_close(self, int32_t stream_id, uint32_t error_code) except -1:
        cdef object handler = self.streams.pop(stream_id, None)
        if handler is not None:
            self._stream_closed(<BaseRequestHandler>handler, error_code)
        return 0

    cdef void _stream_closed(self, BaseRequestHandler handler, uint32_t error_code):
        cdef object result = None
        handler.state |= STREAM_CLOSED
        if handler.task is not None:
            handler.task.cancel()
            handler.task = None
            if handler.task_bytes and self.session != NULL:
                nghttp2_session_consume_connection(self.session, handler.task_bytes)
            handler.task_bytes = 0
        if handler.events:
            # Data never delivered still counts against the connection window.
            for event, data in handler.events:
                if event == EVENT_DATA and self.session != NULL:
                    nghttp2_session_consume_connection(self.session, len(data))
            handler.events.clear()
        if handler.body is not None:
            handler.body.close()
            # A body often refers back to its handler (a closure over self):
            # let go here so that no cycle outlives the stream.
            handler.body = None
        handler.trailer_block = None
        handler.events = None
        if self.access_log:
            self._log_access(handler)
        if handler.callbacks & HAS_ON_CLOSE:
            try:
                result = handler.on_close(error_code)
            except Exception as exc:
                self.handler_failed(handler, "on_close", exc)
            if result is not None and _iscoroutine(result):
                self.loop.create_task(result).add_done_callback(
                    functools.partial(_log_on_close_failure, handler))

    cdef void log_goaway(self, const nghttp2_frame *frame):
        debug = PyBytes_FromStringAndSize(<char *>frame.goaway.opaque_data,
                                          frame.goaway.opaque_data_len)
        _logger.info("sent GOAWAY %s to %s (last stream %d)%s",
                     nghttp2_http2_strerror(frame.goaway.error_code).decode("ascii"),
                     self.client_address, frame.goaway.last_stream_id,
                     ": " + debug.decode("utf-8", "replace") if debug else "")

    cdef void _log_access(self, BaseRequestHandler handler):
        host = self.client_address[0] if self.client_address else "-"
        _access_logger.info(
            '%s - - [%s] "%s %s HTTP/2" %s %d', host,
            _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime()),
            (handler.method or b"-").decode("latin-1"), (handler.path or b"-").decode("latin-1"),
            handler.status or "-", handler.body_bytes_sent)


cdef inline double monotonic() noexcept:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


cdef bint _ascii_lower_equals(const uint8_t *text, const char *lower, size_t length) noexcept:
    cdef size_t i
    cdef uint8_t c
    for i in range(length):
        c = text[i]
        if b'A' <= c <= b'Z':
            c += 32
        if c != <uint8_t>lower[i]:
            return False
    return True


def _log_on_close_failure(handler, task):
    if not task.cancelled() and task.exception() is not None:
        _logger.error("%s.on_close raised on stream %d", type(handler).__name__,
                      handler.stream_id, exc_info=task.exception())

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

cdef int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self.begin_headers(frame)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                   nghttp2_rcbuf *name, nghttp2_rcbuf *value, uint8_t flags,
                   void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self.header(frame, name, value)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self.frame_recv(frame)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                            const uint8_t *data, size_t length,
                            void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self.data_chunk_recv(stream_id, data, length)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                         void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        return self.stream_close(stream_id, error_code)
    except BaseException as exc:
        self.fatal = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data) noexcept:
    if frame.hd.type != NGHTTP2_GOAWAY or frame.goaway.error_code == NGHTTP2_NO_ERROR:
        return 0
    cdef Session self = <Session>user_data
    try:
        self.log_goaway(frame)
    except BaseException as exc:
        self.fatal = exc
    return 0


cdef int on_error(nghttp2_session *session, int lib_error_code, const char *msg,
                  size_t length, void *user_data) noexcept:
    cdef Session self = <Session>user_data
    try:
        if _logger.isEnabledFor(_logging.INFO):
            _logger.info("protocol error from %s: %s", self.client_address,
                         msg[:length].decode("utf-8", "replace"))
    except BaseException as exc:
        self.fatal = exc
    return 0


cdef ssize_t data_source_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                              size_t length, uint32_t *data_flags,
                              nghttp2_data_source *source, void *user_data) noexcept:
    cdef Session self = <Session>user_data
    cdef BaseRequestHandler handler = <BaseRequestHandler>source.ptr
    cdef ssize_t n
    try:
        n = handler.body.read(buf, length, data_flags)
        if n > 0:
            handler.body_bytes_sent += n
        if data_flags[0] & NGHTTP2_DATA_FLAG_EOF and handler.trailer_block is not None:
            data_flags[0] |= NGHTTP2_DATA_FLAG_NO_END_STREAM
            nghttp2_submit_trailer(session, stream_id, handler.trailer_block.nva,
                                   handler.trailer_block.length)
        return n
    except BaseException as exc:
        self.handler_failed(handler, "body", exc)
        handler.state |= RESPONSE_STARTED
        # nghttp2 resets the stream with INTERNAL_ERROR.
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE


cdef int send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                   size_t length, nghttp2_data_source *source,
                   void *user_data) noexcept:
    # Only bodies that set NGHTTP2_DATA_FLAG_NO_COPY (large BytesBody chunks)
    # come here; no padding is ever requested, so the frame is header + data.
    cdef Session self = <Session>user_data
    cdef BaseRequestHandler handler = <BaseRequestHandler>source.ptr
    if self.writing_paused:
        return NGHTTP2_ERR_WOULDBLOCK  # called again with the same frame on resume
    if self._reserve(9 + length) < 0:
        return NGHTTP2_ERR_CALLBACK_FAILURE
    memcpy(self.output + self.output_length, framehd, 9)
    memcpy(self.output + self.output_length + 9, handler.body.take(length), length)
    self.output_length += 9 + length
    if self.output_length >= WRITE_BATCH_SIZE:
        try:
            self._write_output()
        except BaseException as exc:
            self.fatal = exc
            return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0
