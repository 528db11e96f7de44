# BaseRequestHandler: one object per request stream, the application's side of
# the stream interface. Its protocol tells it what arrived (attach, add_header,
# headers_received, data_received, request_received, closed); it runs the
# application's hooks in order, async ones included, and asks its protocol to
# send (submit_response, submit_info, submit_push, consume, resume_body).

from asyncio import CancelledError as _CancelledError
from asyncio import iscoroutine as _iscoroutine
from collections import deque as _deque

from nghttp2py.errors import ErrorCode as _ErrorCode
from nghttp2py.errors import ResponseStateError

cdef tuple _HOOK_NAMES = ("on_headers", "on_data", "on_request_done")

cdef dict _callback_flags_by_class = {}

# `as` values for a 103 Early Hints preload, by file extension.
cdef dict _PRELOAD_AS = {
    b".css": b"style", b".js": b"script", b".mjs": b"script", b".woff2": b"font",
    b".woff": b"font", b".png": b"image", b".jpg": b"image", b".jpeg": b"image",
    b".gif": b"image", b".svg": b"image", b".webp": b"image", b".avif": b"image",
}


cdef int overridden_hooks(type cls, type base, tuple hooks) except -1:
    """The bits of ``hooks``, ``(bit, name)`` pairs, whose methods ``cls`` overrides."""
    cdef int flags = 0
    for bit, name in hooks:
        if getattr(cls, name) is not getattr(base, name):
            flags |= bit
    return flags


cdef int callback_flags(type cls) except -1:
    cdef object flags = _callback_flags_by_class.get(cls)
    if flags is None:
        flags = overridden_hooks(cls, BaseRequestHandler, (
            (HAS_ON_HEADERS, "on_headers"), (HAS_ON_DATA, "on_data"),
            (HAS_ON_REQUEST_DONE, "on_request_done"), (HAS_ON_CLOSE, "on_close")))
        if cls.__init__ is not BaseRequestHandler.__init__ or _python_new(cls):
            flags |= HAS_CONSTRUCTOR
        _callback_flags_by_class[cls] = flags
    return flags


cdef bint _python_new(type cls):
    """Whether a class between ``cls`` and BaseRequestHandler defines ``__new__`` in Python.

    An extension subclass (ASGIHandler) has a ``__new__`` of its own that
    only allocates: calling its tp_new directly is the same.
    """
    for klass in cls.__mro__:
        if klass is BaseRequestHandler:
            break
        if "__new__" in klass.__dict__ and klass.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE
            return True
    return False


cdef bytes preload_link(bytes path):
    """The ``link`` value that asks a browser to preload ``path``."""
    cdef bytes link = b"<" + path + b">; rel=preload"
    cdef Py_ssize_t dot = path.rfind(b".")
    cdef object kind = _PRELOAD_AS.get(path[dot:].split(b"?")[0].lower()) if dot >= 0 else None
    if kind is not None:
        link += b"; as=" + kind
        if kind == b"font":
            link += b"; crossorigin"
    return link


cdef object _task_failure(object task):
    """The exception a finished hook or body task ended with; a cancellation counts."""
    if task.cancelled():
        return _CancelledError("the task was cancelled")
    return task.exception()


cdef class BaseRequestHandler:
    """Handles one request stream; subclass it and override the ``on_*`` hooks.

    The server creates one instance per request when its header block
    arrives. The request attributes are ``bytes`` (``method``, ``path``,
    ``scheme``, ``host``) and ``headers`` is a list of ``(name, value)`` byte
    pairs with the cookies joined. Respond with :meth:`send_response`; push
    with :meth:`push` first.

    Each hook may be a coroutine function (``async def``): it then runs as a
    task, the stream's next hook waits for it, request data is not
    acknowledged to the client until ``on_data`` has finished with it, and
    the task is cancelled if the stream closes first. A hook that raises, or
    whose task is cancelled, fails the stream: ``500`` if no response was
    started, else ``RST_STREAM`` (``INTERNAL_ERROR``, or ``CANCEL`` for a
    cancellation), and one log line.
    """

    def __init__(self, http2, int stream_id):
        self.protocol = http2
        self.stream_id = stream_id

    def __dealloc__(self):
        self.release_raw_headers()

    @property
    def http2(self):
        """The connection's protocol object (the name the old binding used)."""
        return self.protocol

    @property
    def http_version(self):
        """The protocol carrying this request: ``"2"`` (HTTP/2), ``"1.1"`` (HTTP/1.x) or
        ``"3"`` (HTTP/3)."""
        return self.protocol.http_version if self.protocol is not None else None

    @property
    def headers(self):
        """The request's regular header fields as ``(bytes, bytes)`` pairs."""
        if self._headers is None:
            self._headers = self.build_headers()
        return self._headers

    @headers.setter
    def headers(self, value):
        self._headers = value

    def on_headers(self):
        """Called when the request's header block has arrived."""

    def on_data(self, data):
        """Called with each chunk of the request body, as ``bytes``."""

    def on_request_done(self):
        """Called when the whole request (headers, body, trailers) has arrived."""

    def on_message(self, message):
        """Called with each message of the accepted :attr:`websocket` (``str`` or ``bytes``).

        Not overridden: messages wait for ``await self.websocket.receive()``.
        """

    def on_close(self, error_code):
        """Called when the stream closes; ``error_code`` is an :class:`~nghttp2py.ErrorCode`,
        ``ErrorCode.NO_ERROR`` (0) on a clean close."""

    def send_response(self, status=200, headers=None, body=None, trailers=None):
        """Send the response: ``status``, extra ``headers``, an optional ``body`` and ``trailers``.

        ``headers`` and ``trailers`` are lists of ``(name, value)`` pairs of
        ``str`` or ``bytes`` with lower-case names. ``body`` is ``None``,
        ``str`` (sent as UTF-8), bytes-like, an ``io.IOBase`` (read in chunks
        and closed at the end), an async iterable of bytes (e.g. an async
        generator), or a callable ``body(n) -> (data, flag)`` with ``DATA_OK``,
        ``DATA_EOF`` or ``DATA_DEFERRED`` (then call :meth:`resume` when data
        is ready). ``content-length`` is added when the length is known, with
        ``date`` and ``server``. Raises ``ResponseStateError`` on a second
        response and ``InvalidHeaderError``/``ValueError`` for bad headers or
        status.
        """
        if self.state & RESPONSE_STARTED:
            raise ResponseStateError(f"a response was already sent on stream {self.stream_id}")
        if status < 200:
            raise ValueError(f"send_response() sends a final status (200-599), not {status}; "
                             "send 1xx responses with send_info()")
        cdef BodySource source = body_source(body)
        cdef bint bodiless = self.method == b"HEAD" or status == 204 or status == 304
        cdef Py_ssize_t length
        if source is not None:
            length = source.length
        else:
            # HEAD and 304 may announce the length a GET would have had.
            length = -1 if bodiless else 0
        cdef HeaderBlock block = response_header_block(status, headers, length)
        cdef HeaderBlock trailer_block = (
            trailer_header_block(trailers) if trailers is not None else None)
        if bodiless and source is not None:
            source.close()
            source = None
        if self.state & STREAM_CLOSED:
            # The peer has gone; on_close has told the application already.
            if source is not None:
                source.close()
            return
        if trailer_block is not None and not bodiless:
            self.trailer_block = trailer_block
            if source is None:
                source = body_source(b"")
        if self.early_hints:
            self.protocol.submit_info(
                self, informational_header_block(
                    103, [(b"link", link) for link in self.early_hints]))
            self.early_hints = None
        self.start_response(status, block, source)

    def send_info(self, status, headers=None):
        """Send an informational (1xx) response before the final one, e.g. ``103``."""
        if not 100 <= status <= 199 or status == 101:
            raise ValueError(f"an informational status is 100-199 except 101, not {status}")
        if self.state & RESPONSE_STARTED:
            raise ResponseStateError("send_info() must come before send_response()")
        cdef HeaderBlock block = informational_header_block(status, headers)
        if not (self.state & STREAM_CLOSED):
            self.protocol.submit_info(self, block)

    def push(self, path, method="GET", request_headers=None, status=200, headers=None,
             body=None):
        """Push a response to a request the client has not made yet.

        Call before :meth:`send_response`. Returns ``True`` if the push was
        promised, ``False`` if the client disabled push (or the stream is gone);
        then, unless the server was created with ``push_early_hints=False``,
        the path is announced in a ``103 Early Hints`` ``link: rel=preload``
        instead, sent just before the response.
        """
        if self.state & RESPONSE_STARTED:
            raise ResponseStateError("push() must be called before send_response()")
        if self.state & PUSHED:
            raise ResponseStateError("a pushed stream cannot push")
        cdef bytes method_bytes = header_bytes(method)
        if method_bytes not in (b"GET", b"HEAD"):
            raise ValueError(f"only GET and HEAD requests can be pushed, not {method!r}")
        cdef bytes path_bytes = header_bytes(path)
        if not path_bytes.startswith(b"/"):
            raise ValueError(f"a pushed path must start with '/', not {path!r}")
        cdef HeaderBlock request = request_header_block(
            method_bytes, self.scheme or b"https", self.host or b"localhost", path_bytes,
            request_headers)
        cdef BodySource source = body_source(body)
        cdef HeaderBlock response = response_header_block(
            status, headers, source.length if source is not None else 0)
        if method_bytes == b"HEAD" and source is not None:
            source.close()
            source = None
        if self.state & STREAM_CLOSED or not self.protocol.push_enabled():
            if source is not None:
                source.close()
            if self.protocol.push_early_hints and not (self.state & STREAM_CLOSED):
                if self.early_hints is None:
                    self.early_hints = []
                self.early_hints.append(preload_link(path_bytes))
            return False
        return self.protocol.submit_push(self, request, method_bytes, path_bytes, status,
                                         response, source)

    def resume(self):
        """Resume a body generator that returned ``DATA_DEFERRED``."""
        if isinstance(self.body, GeneratorBody):
            (<GeneratorBody>self.body).deferred = False
        if not (self.state & STREAM_CLOSED):
            self.protocol.resume_body(self)

    def pause_reading(self):
        """Stop delivering request data; the client is held back by flow control."""
        self.state |= READING_PAUSED

    def resume_reading(self):
        """Deliver request data again, starting with what arrived while paused."""
        if self.state & READING_PAUSED:
            self.state &= ~READING_PAUSED
            if not (self.state & STREAM_CLOSED):
                self.drain_events()
                self.protocol.after_app_work()

    @property
    def websocket(self):
        """The request's :class:`WebSocket` if it asks for one (``upgrade_protocol``
        ``websocket``), else None; :meth:`WebSocket.accept` it or :meth:`WebSocket.close` it."""
        if self._websocket is None and self.upgrade_protocol is not None \
                and self.upgrade_protocol.lower() == b"websocket":
            self._websocket = new_websocket(self)
        return self._websocket

    def accept_websocket(self, subprotocol=None, headers=None, **options):
        """Accept the request's WebSocket: ``self.websocket.accept(...)``, returned."""
        if self.websocket is None:
            raise ResponseStateError(f"stream {self.stream_id} does not ask for a WebSocket")
        return self._websocket.accept(subprotocol, headers, **options)

    @property
    def reading_paused(self):
        """True between :meth:`pause_reading` and :meth:`resume_reading`."""
        return bool(self.state & READING_PAUSED)

    # -- told by the protocol ------------------------------------------------------

    cdef int attach(self, HTTPProtocol protocol, int32_t stream_id) except -1:
        self.protocol = protocol
        self.stream_id = stream_id
        self.callbacks = protocol.handler_callbacks
        self.client_address = protocol.client_address
        self.client_certificate = protocol.client_certificate
        return 0

    cdef int add_header(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1:
        """A regular request header field (pseudo-headers are the protocol's)."""
        if not self.within_limit(name.len + value.len):
            return 0
        if name.len == 4 and self.host is None and memcmp(name.base, b"host", 4) == 0:
            self.host = PyBytes_FromStringAndSize(<char *>value.base, value.len)
        elif name.len == 6 and value.len == 12 and memcmp(name.base, b"expect", 6) == 0 \
                and _ascii_lower_equals(value.base, b"100-continue", 12):
            self.state |= EXPECT_CONTINUE
        self.add_raw_header(name, value)
        return 0

    cdef int add_trailer(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1:
        if not self.within_limit(name.len + value.len):
            return 0
        if self.trailers is None:
            self.trailers = []
        self.trailers.append((PyBytes_FromStringAndSize(<char *>name.base, name.len),
                              PyBytes_FromStringAndSize(<char *>value.base, value.len)))
        return 0

    cdef bint within_limit(self, size_t size) noexcept:
        """Count a header field of ``size`` bytes; False once the block is over the limit."""
        self.header_list_size += size + HPACK_ENTRY_OVERHEAD
        if self.header_list_size > self.protocol.max_header_list_size \
                and not (self.state & HEADERS_TOO_LARGE):
            self.state |= HEADERS_TOO_LARGE
            self.release_raw_headers()
        return not (self.state & HEADERS_TOO_LARGE)

    cdef int headers_received(self, bint end_stream) except -1:
        """The request's header block is complete."""
        if self.state & HEADERS_TOO_LARGE:
            self.state |= HANDLER_FAILED
            self.respond_error(431, _HEADERS_TOO_LARGE_BODY)
            return 0
        if end_stream:
            self.state &= ~EXPECT_CONTINUE
        if self.callbacks & HAS_ON_HEADERS:
            self.deliver(EVENT_HEADERS, None)
        if self.task is None:
            self.continue_request()
        return 0

    cdef int data_received(self, const uint8_t *data, size_t length) except -1:
        """A chunk of the request body; its flow-control credit returns once taken."""
        if self._websocket is not None and self._websocket.state != WS_CONNECTING:
            return self._websocket.feed(data, length)
        if self.callbacks & HAS_ON_DATA and not (self.state & HANDLER_FAILED):
            self.deliver(EVENT_DATA, PyBytes_FromStringAndSize(<const char *>data, length))
        else:
            self.protocol.consume(self, length)
        return 0

    cdef int request_received(self) except -1:
        """The whole request has arrived."""
        self.state |= REQUEST_DONE
        if self._websocket is not None and self._websocket.state != WS_CONNECTING:
            self._websocket.input_ended()
        if self.callbacks & HAS_ON_REQUEST_DONE:
            self.deliver(EVENT_DONE, None)
        return 0

    cdef ssize_t read_body(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        cdef ssize_t n = self.body.read(buf, size, flags)
        if n > 0:
            self.body_bytes_sent += n
        return n

    cdef int closed(self, uint32_t error_code) except -1:
        """The stream has closed: stop its work, let go of its objects, tell the app."""
        cdef object result = None
        cdef HTTPProtocol protocol = self.protocol
        self.state |= STREAM_CLOSED
        if self._websocket is not None:
            self._websocket.stream_closed(error_code)
            if self.task is not None and self._websocket.output is not None:
                # A hook serving an accepted WebSocket sees it closed (receive()
                # raises WebSocketClosed) and is left to finish, not cancelled.
                self.task.add_done_callback(_websocket_task_done)
                self.task = None
        if self.task is not None:
            self.task.cancel()
            self.task = None
            if self.task_bytes:
                protocol.discard(self.task_bytes)
            self.task_bytes = 0
        if self.events:
            # Data never delivered still counts against the connection window.
            for event, data in self.events:
                if event == EVENT_DATA:
                    protocol.discard(len(data))
            self.events.clear()
        self.events = None
        if self.body is not None:
            self.body.close()
            # A body often refers back to its handler (a closure over self):
            # let go here so that no cycle outlives the stream.
            self.body = None
        self.trailer_block = None
        if protocol.access_log:
            protocol.log_access(self)
        if self.callbacks & HAS_ON_CLOSE:
            try:
                result = self.on_close(_error_code(error_code))
            except Exception as exc:
                self.fail("on_close", exc)
            if result is not None and _iscoroutine(result):
                protocol.loop.create_task(result).add_done_callback(self._on_close_done)
        return 0

    cdef void fail(self, str where, object exc):
        """The application failed in ``where``: answer it once the C call has returned."""
        self.state |= HANDLER_FAILED
        self.protocol.stream_failed(self, where, exc)

    cdef int respond_error(self, int status, bytes body) except -1:
        cdef HeaderBlock block = response_header_block(
            status, ((b"content-type", b"text/plain; charset=utf-8"),), len(body))
        return self.start_response(status, block, body_source(body))

    # -- its own lifecycle ---------------------------------------------------------

    cdef int start_response(self, int status, HeaderBlock block, BodySource source) except -1:
        self.body = source
        if isinstance(source, AsyncIterBody):
            (<AsyncIterBody>source).handler = self
        try:
            self.protocol.submit_response(self, block)
        except BaseException:
            self.body = None
            if source is not None:
                source.close()
            raise
        self.state |= RESPONSE_STARTED
        self.status = status
        return 0

    cdef void deliver(self, int event, object data) except *:
        """Run the hook for ``event`` now, or queue it behind a running one."""
        if self.task is not None or self.events \
                or (event == EVENT_DATA and self.state & READING_PAUSED):
            if self.events is None:
                self.events = _deque()
            self.events.append((event, data))
            return
        self.run_event(event, data)

    cdef void run_event(self, int event, object data) except *:
        cdef object result
        cdef Py_ssize_t length = len(data) if event == EVENT_DATA else 0
        if self.state & HANDLER_FAILED:
            result = None
        else:
            try:
                if event == EVENT_DATA:
                    result = self.on_data(data)
                elif event == EVENT_HEADERS:
                    result = self.on_headers()
                else:
                    result = self.on_request_done()
            except BaseException as exc:  # KeyboardInterrupt too: see process_failures
                self.fail(_HOOK_NAMES[event], exc)
                result = None
        if result is not None and _iscoroutine(result):
            self.task = self.protocol.loop.create_task(result)
            self.task_event = event
            self.task_bytes = length
            self.task.add_done_callback(self._hook_done)
        elif length:
            self.protocol.consume(self, length)

    cdef void drain_events(self) except *:
        """Deliver queued events until an async hook runs or reading is paused."""
        cdef tuple item
        events = self.events
        while events and self.task is None and not (self.state & STREAM_CLOSED):
            item = events[0]
            if item[0] == EVENT_DATA and self.state & READING_PAUSED:
                break
            events.popleft()
            self.run_event(item[0], item[1])

    cdef int continue_request(self) except -1:
        """``100 Continue`` once on_headers is done, unless it has answered already."""
        if self.state & EXPECT_CONTINUE:
            self.state &= ~EXPECT_CONTINUE
            if not (self.state & (RESPONSE_STARTED | STREAM_CLOSED)):
                self.protocol.submit_info(self, informational_header_block(100, None))
        return 0

    def _hook_done(self, task):
        """Done-callback of an async hook's task."""
        if task is not self.task:
            return  # cancelled when the stream closed
        self.task = None
        cdef HTTPProtocol protocol = self.protocol
        exception = _task_failure(task)
        if exception is not None:
            self.fail(_HOOK_NAMES[self.task_event], exception)
        if self.task_bytes:
            protocol.consume(self, self.task_bytes)
            self.task_bytes = 0
        if self.task_event == EVENT_HEADERS:
            self.continue_request()
        self.drain_events()
        protocol.after_app_work()

    def _on_close_done(self, task):
        """Done-callback of an async on_close: nothing is left to answer, only to log."""
        exception = _task_failure(task)
        if exception is not None:
            _logger.error("%s.on_close failed on stream %d: %r", type(self).__name__,
                          self.stream_id, exception, exc_info=exception)

    # -- request header storage ------------------------------------------------------

    cdef int add_raw_header(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1:
        return raw_fields_add(&self.raw_headers, name, value)

    cdef void release_raw_headers(self) noexcept:
        raw_fields_release(&self.raw_headers)

    cdef list build_headers(self):
        return raw_fields_build(&self.raw_headers, True)


# ErrorCode members by value (0x0 to 0xd, without gaps), looked up per stream close.
cdef tuple _ERROR_CODES = tuple(_ErrorCode)


cdef object _error_code(uint32_t code):
    """``code`` as an ErrorCode member, or the bare int for a code RFC 9113 does not name."""
    return _ERROR_CODES[code] if code < <uint32_t>len(_ERROR_CODES) else code


cdef BaseRequestHandler new_pushed_handler(BaseRequestHandler parent, int32_t stream_id,
                                           bytes method, bytes path):
    """The handler of a pushed response: a plain BaseRequestHandler with no hooks."""
    cdef BaseRequestHandler pushed = BaseRequestHandler.__new__(BaseRequestHandler)
    pushed.attach(parent.protocol, stream_id)
    pushed.state = PUSHED
    pushed.callbacks = 0
    pushed.method = method
    pushed.path = path
    pushed.scheme = parent.scheme
    pushed.host = parent.host
    pushed._headers = []
    return pushed
