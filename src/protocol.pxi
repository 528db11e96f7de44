# HTTPProtocol: what every protocol offers the streams it carries, and the
# work that is the same for all of them (creating handlers, answering failed
# ones, the access log). A protocol subclass (Session for HTTP/2) turns bytes
# into calls on its handlers and implements the submit_* operations.

import logging as _logging
import time as _time

_logger = _logging.getLogger("nghttp2py")
_access_logger = _logging.getLogger("nghttp2py.access")

cdef tuple _EMPTY_TUPLE = ()
cdef bytes _INTERNAL_ERROR_BODY = b"Internal Server Error\n"
cdef bytes _HEADERS_TOO_LARGE_BODY = b"Request Header Fields Too Large\n"
cdef bytes _CONTENT_TOO_LARGE_BODY = b"Content Too Large\n"
cdef bytes _ALT_SVC = b"alt-svc"


def _raise(exc):
    raise exc


cdef class HTTPProtocol:
    """The protocol side of one connection, as its request handlers see it.

    Not used directly: :class:`Session` is the HTTP/2 protocol.
    """

    def __init__(self, transport, type handler_class, *, size_t max_header_list_size,
                 max_request_body_size=None, client_address=None, client_certificate=None,
                 bytes scheme=b"http", bint access_log=False, bint push_early_hints=True,
                 loop=None):
        self.transport = transport
        self.loop = loop
        self.handler_class = handler_class
        self.handler_callbacks = callback_flags(handler_class)
        self.streams = {}
        self.failures = []
        self.max_header_list_size = max_header_list_size
        self.max_request_body_size = (PY_SSIZE_T_MAX if max_request_body_size is None
                                      else max_request_body_size)
        self.client_address = client_address
        self.client_certificate = client_certificate
        self.scheme = scheme
        self.access_log = access_log
        self.push_early_hints = push_early_hints

    def __dealloc__(self):
        Py_XDECREF(self.output)
        self.output = NULL

    @property
    def open_streams(self):
        """How many streams are open."""
        return self.open_stream_count()

    cdef Py_ssize_t open_stream_count(self) noexcept:
        return len(self.streams)

    # -- the stream interface: what a protocol implements ------------------------------

    cdef int submit_response(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        """Send the response header block, then ``stream.body`` (None: no body)."""
        raise NotImplementedError

    cdef int submit_info(self, BaseRequestHandler stream, HeaderBlock block) except -1:
        """Send an informational (1xx) header block."""
        raise NotImplementedError

    cdef object submit_push(self, BaseRequestHandler parent, HeaderBlock request,
                            bytes method, bytes path, int status, HeaderBlock response,
                            BodySource source):
        """Promise ``request`` and send ``response``; False where push is not possible."""
        if source is not None:
            source.close()
        return False

    cdef bint push_enabled(self):
        """Whether the peer accepts pushed responses (a protocol without push: never)."""
        return False

    cdef void resume_body(self, BaseRequestHandler stream):
        """The stream's body has more data: pull it again."""

    cdef void consume(self, BaseRequestHandler stream, size_t length) noexcept:
        """The application has taken ``length`` request bytes: let the peer send more."""

    cdef void discard(self, size_t length) noexcept:
        """``length`` request bytes of a closed stream will never be taken."""

    cdef void reset_stream(self, BaseRequestHandler stream, uint32_t error_code):
        """Abort the stream's response with ``error_code``."""

    cdef void request_flush(self):
        """Output was queued outside a read: write it out soon."""

    cdef void add_alt_svc(self, HeaderBlock block) noexcept:
        """Add the server's alt-svc to a final response block, unless the application set one.

        response_header_block leaves the entry free; nghttp2 and the HTTP/1.1
        writer copy the value at submission.
        """
        if self.alt_svc is not None and not block.has_alt_svc \
                and block.length < block.capacity:
            block.add_bytes(_ALT_SVC, self.alt_svc)

    # -- output: one buffer, one transport.write per batch --------------------------

    cdef int reserve_output(self, size_t n) noexcept:
        """Room for ``n`` more bytes of output; -1 if memory ran out (output lost)."""
        cdef size_t needed = self.output_length + n
        cdef size_t capacity
        if needed <= self.output_capacity:
            return 0
        if self.output == NULL:
            # A large chunk of body is the start of a batch of them: room for
            # a whole batch at once, so that the buffer is never copied to grow.
            capacity = (WRITE_BATCH_SIZE + NO_COPY_CAPACITY if n >= NO_COPY_THRESHOLD
                        else INITIAL_OUTPUT_CAPACITY)
            while capacity < needed:
                capacity *= 2
            self.output = new_bytes(NULL, capacity)
        else:
            capacity = self.output_capacity * 2
            while capacity < needed:
                capacity *= 2
            if _PyBytes_Resize(&self.output, capacity) < 0:
                self.output = NULL  # freed by _PyBytes_Resize
        if self.output == NULL:
            PyErr_Clear()
            self.output_capacity = self.output_length = 0
            return -1
        self.output_capacity = capacity
        return 0

    cdef void write_output(self) except *:
        """Hand the batched output to the transport.

        A small batch is copied out. A large one is lent as a memoryview of
        the buffer itself; if the transport still holds it afterwards (it
        could not send it all at once), the buffer is left to it and the next
        batch gets a new one.
        """
        cdef object data
        if not self.output_length:
            return
        if self.output_length < SMALL_WRITE:
            data = PyBytes_FromStringAndSize(bytes_data(self.output), self.output_length)
        else:
            data = memoryview(<object>self.output)[:self.output_length]
        self.output_length = 0
        self.transport.write(data)
        data = None
        if Py_REFCNT(self.output) > 1:
            Py_XDECREF(self.output)
            self.output = NULL
            self.output_capacity = 0
        self.last_activity = monotonic()
        if self.transport.is_closing():
            # The peer is gone (asyncio drops further writes): pull no more
            # body, so streams end with connection_lost, not as complete.
            self.writing_paused = True

    cdef void release_output(self) noexcept:
        """Drop the output buffer: most connections are idle most of the time,
        and malloc hands the buffer to the next one that needs it."""
        if self.output != NULL and not self.output_length:
            Py_XDECREF(self.output)
            self.output = NULL
            self.output_capacity = 0

    # -- shared by every protocol ---------------------------------------------------

    cdef BaseRequestHandler new_handler(self, int32_t stream_id):
        """A new request's handler, registered as an open stream; None if its class raised."""
        cdef BaseRequestHandler handler
        try:
            if self.handler_callbacks & HAS_CONSTRUCTOR:
                handler = self.handler_class(self, stream_id)
            else:
                # BaseRequestHandler.__init__ only stores what attach() stores.
                handler = (<PyTypeObject *>self.handler_class).tp_new(
                    self.handler_class, <PyObject *>_EMPTY_TUPLE, NULL)
        except Exception as exc:
            _logger.error("%s() raised on stream %d from %s", self.handler_class.__name__,
                          stream_id, self.client_address, exc_info=exc)
            return None
        handler.attach(self, stream_id)
        self.streams[stream_id] = handler
        return handler

    cdef void close_websockets(self) except *:
        """A graceful shutdown: close every open WebSocket with 1001 (going away)."""
        cdef BaseRequestHandler handler
        for handler in list(self.streams.values()):
            if handler._websocket is not None and handler._websocket.state == WS_OPEN:
                handler._websocket.close(1001, "server shutting down")

    cdef void stream_failed(self, BaseRequestHandler stream, str where, object exc):
        self.failures.append((stream, where, exc))

    cdef void process_failures(self) except *:
        """Answer every failed handler: ``500`` before its response, else reset the stream.

        A KeyboardInterrupt or SystemExit from a hook is kept in ``escape``,
        to be raised again once every failure is answered and flushed.
        """
        cdef BaseRequestHandler handler
        cdef bint cancelled
        while self.failures:
            failures, self.failures = self.failures, []
            for handler, where, exc in failures:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)) and self.escape is None:
                    self.escape = exc
                cancelled = isinstance(exc, _CancelledError)
                if cancelled:
                    _logger.error("%s.%s was cancelled on stream %d from %s",
                                  type(handler).__name__, where, handler.stream_id,
                                  self.client_address)
                else:
                    _logger.error("%s.%s raised on stream %d from %s", type(handler).__name__,
                                  where, handler.stream_id, self.client_address, exc_info=exc)
                if handler.state & STREAM_CLOSED:
                    continue
                if handler.state & RESPONSE_STARTED:
                    self.reset_stream(handler, NGHTTP2_CANCEL if cancelled
                                      else NGHTTP2_INTERNAL_ERROR)
                else:
                    try:
                        handler.respond_error(500, _INTERNAL_ERROR_BODY)
                    except Exception as error:
                        _logger.info("could not send a 500 on stream %d: %s",
                                     handler.stream_id, error)
                        self.reset_stream(handler, NGHTTP2_INTERNAL_ERROR)

    cdef void after_app_work(self) except *:
        """After application code ran outside a read: answer failures, then flush."""
        if self.in_feed:
            return
        if self.failures:
            self.process_failures()
        self.request_flush()
        self.raise_escape()

    cdef void raise_escape(self) except *:
        """Let a KeyboardInterrupt or SystemExit from a hook stop the event loop.

        Raised from a loop callback of its own: uvloop turns an exception out
        of a protocol method into a transport error and goes on.
        """
        cdef object escape = self.escape
        if escape is not None:
            self.escape = None
            self.loop.call_soon(_raise, escape)

    cdef void log_access(self, BaseRequestHandler stream):
        host = self.client_address[0] if self.client_address else "-"
        _access_logger.info(
            '%s - - [%s] "%s %s HTTP/%s" %s %d', host,
            _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime()),
            (stream.method or b"-").decode("latin-1"), (stream.path or b"-").decode("latin-1"),
            self.http_version, stream.status or "-", stream.body_bytes_sent)


cdef inline bint over_length(const uint8_t *digits, size_t length, Py_ssize_t limit) noexcept:
    """Whether a ``content-length`` (digits only, as the parsers check) exceeds ``limit``.

    Nothing overflows: ``value`` is at most ``limit`` (2**53 at most, else
    PY_SSIZE_T_MAX for no limit) before each step, and libnghttp2 refuses a
    ``content-length`` beyond 2**63 - 1.
    """
    cdef Py_ssize_t value = 0
    cdef size_t i
    for i in range(length):
        value = value * 10 + (digits[i] - 48)
        if value > limit:
            return True
    return False


cdef inline double monotonic() noexcept:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9
