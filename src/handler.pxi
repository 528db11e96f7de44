# BaseRequestHandler: one object per stream, the application's view of a request.

from libc.stdlib cimport realloc
from libc.stdint cimport uint32_t

from asyncio import iscoroutine as _iscoroutine
from collections import deque as _deque

from nghttp2py.errors import ResponseStateError

# Handler state bits.
cdef enum:
    RESPONSE_STARTED = 1
    STREAM_CLOSED = 2
    HANDLER_FAILED = 4
    PUSHED = 8
    HEADERS_TOO_LARGE = 16
    REQUEST_DONE = 32
    READING_PAUSED = 64
    EXPECT_CONTINUE = 128

# Which application callbacks a handler class overrides; the rest are skipped.
cdef enum:
    HAS_ON_HEADERS = 1
    HAS_ON_DATA = 2
    HAS_ON_REQUEST_DONE = 4
    HAS_ON_CLOSE = 8
    # __init__ or __new__ overridden: create the handler by calling the class.
    HAS_CONSTRUCTOR = 16

# Request events, in the order a stream delivers them to its handler.
cdef enum:
    EVENT_HEADERS = 0
    EVENT_DATA = 1
    EVENT_DONE = 2

cdef tuple _HOOK_NAMES = ("on_headers", "on_data", "on_request_done")

cdef dict _callback_flags_by_class = {}

# `as` values for a 103 Early Hints preload, by file extension.
cdef dict _PRELOAD_AS = {
    b".css": b"style", b".js": b"script", b".mjs": b"script", b".woff2": b"font",
    b".woff": b"font", b".png": b"image", b".jpg": b"image", b".jpeg": b"image",
    b".gif": b"image", b".svg": b"image", b".webp": b"image", b".avif": b"image",
}


cdef int callback_flags(type cls) except -1:
    cdef object flags = _callback_flags_by_class.get(cls)
    if flags is None:
        flags = 0
        for bit, name in ((HAS_ON_HEADERS, "on_headers"), (HAS_ON_DATA, "on_data"),
                          (HAS_ON_REQUEST_DONE, "on_request_done"),
                          (HAS_ON_CLOSE, "on_close")):
            if getattr(cls, name) is not getattr(BaseRequestHandler, name):
                flags |= bit
        if cls.__init__ is not BaseRequestHandler.__init__ \
                or cls.__new__ is not BaseRequestHandler.__new__:
            flags |= HAS_CONSTRUCTOR
        _callback_flags_by_class[cls] = flags
    return flags


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


cdef class BaseRequestHandler:
    """Handles one HTTP/2 request stream; subclass it and override the ``on_*`` hooks.

    The server creates one instance per request when its HEADERS arrive. The
    request attributes are ``bytes`` (``method``, ``path``, ``scheme``, ``host``)
    and ``headers`` is a list of ``(name, value)`` byte pairs with the cookies
    joined. Respond with :meth:`send_response`; push with :meth:`push` first.

    Each hook may be a coroutine function (``async def``): it then runs as a
    task, the stream's next hook waits for it, request data is not
    acknowledged to the client until ``on_data`` has finished with it, and
    the task is cancelled if the stream closes first.
    """
    cdef Session session
    cdef readonly int stream_id
    cdef public object client_address
    cdef public object client_certificate
    cdef public bytes scheme
    cdef public bytes method
    cdef public bytes host
    cdef public bytes path
    cdef public object trailers
    cdef object _headers
    # Request header fields as received, copied back to back as
    # [name length][value length][name][value] until `headers` is first read.
    cdef char *raw_headers
    cdef size_t raw_length
    cdef size_t raw_capacity
    cdef size_t header_list_size
    cdef BodySource body
    cdef HeaderBlock trailer_block
    cdef list early_hints
    cdef int status
    cdef int callbacks
    cdef int state
    cdef Py_ssize_t body_bytes_sent
    # An async hook running, and the events waiting for it (or for resume_reading).
    cdef object task
    cdef int task_event
    cdef Py_ssize_t task_bytes
    cdef object events

    def __init__(self, http2, int stream_id):
        self.session = http2
        self.stream_id = stream_id

    def __dealloc__(self):
        self.release_raw_headers()

    @property
    def http2(self):
        """The connection's session."""
        return self.session

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

    def on_close(self, error_code):
        """Called when the stream closes; ``error_code`` is 0 on a clean close."""

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
            self.session.submit_info(self, 103, [(b"link", link) for link in self.early_hints])
            self.early_hints = None
        self.session.submit_response(self, status, block, source)

    def send_info(self, status, headers=None):
        """Send an informational (1xx) response before the final one, e.g. ``103``."""
        if not 100 <= status <= 199 or status == 101:
            raise ValueError(f"an informational status is 100-199 except 101, not {status}")
        if self.state & RESPONSE_STARTED:
            raise ResponseStateError("send_info() must come before send_response()")
        if not (self.state & STREAM_CLOSED):
            self.session.submit_info(self, status, headers)

    def push(self, path, method="GET", request_headers=None, status=200, headers=None,
             body=None):
        """Push a response to a request the client has not made yet.

        Call before :meth:`send_response`. Returns ``True`` if the push was
        promised, ``False`` if the client disabled push (or the stream is gone);
        then, if the server was created with ``push_early_hints=True``, the
        path is announced in a ``103 Early Hints`` ``link: rel=preload`` instead.
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
        if self.state & STREAM_CLOSED or not self.session.push_enabled():
            if source is not None:
                source.close()
            if self.session.push_early_hints and not (self.state & STREAM_CLOSED):
                if self.early_hints is None:
                    self.early_hints = []
                self.early_hints.append(preload_link(path_bytes))
            return False
        return self.session.submit_push(self, request, method_bytes, path_bytes, status,
                                        response, source)

    def resume(self):
        """Resume a body generator that returned ``DATA_DEFERRED``."""
        if isinstance(self.body, GeneratorBody):
            (<GeneratorBody>self.body).deferred = False
        if not (self.state & STREAM_CLOSED):
            self.session.resume_data(self.stream_id)

    def pause_reading(self):
        """Stop delivering request data; the client is held back by flow control."""
        self.state |= READING_PAUSED

    def resume_reading(self):
        """Deliver request data again, starting with what arrived while paused."""
        if self.state & READING_PAUSED:
            self.state &= ~READING_PAUSED
            if not (self.state & STREAM_CLOSED):
                self.session.drain_events(self)
                self.session.after_async_work()

    @property
    def reading_paused(self):
        """True between :meth:`pause_reading` and :meth:`resume_reading`."""
        return bool(self.state & READING_PAUSED)

    # -- used by the Session -------------------------------------------------

    def _hook_done(self, task):
        """Done-callback of an async hook's task."""
        if task is not self.task:
            return  # cancelled when the stream closed
        self.task = None
        cdef Session session = self.session
        exception = task.exception()
        if exception is not None:
            session.handler_failed(self, _HOOK_NAMES[self.task_event], exception)
        if self.task_bytes:
            session.consume(self.stream_id, self.task_bytes)
            self.task_bytes = 0
        if self.task_event == EVENT_HEADERS:
            session.continue_request(self)
        session.drain_events(self)
        session.after_async_work()

    cdef int add_raw_header(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1:
        cdef size_t needed = self.raw_length + 2 * sizeof(uint32_t) + name.len + value.len
        cdef size_t capacity
        cdef char *grown
        cdef uint32_t lengths[2]
        if needed > self.raw_capacity:
            capacity = self.raw_capacity * 2 if self.raw_capacity else 256
            while capacity < needed:
                capacity *= 2
            grown = <char *>realloc(self.raw_headers, capacity)
            if grown == NULL:
                raise MemoryError()
            self.raw_headers = grown
            self.raw_capacity = capacity
        lengths[0] = <uint32_t>name.len
        lengths[1] = <uint32_t>value.len
        memcpy(self.raw_headers + self.raw_length, lengths, sizeof(lengths))
        self.raw_length += sizeof(lengths)
        memcpy(self.raw_headers + self.raw_length, name.base, name.len)
        self.raw_length += name.len
        memcpy(self.raw_headers + self.raw_length, value.base, value.len)
        self.raw_length += value.len
        return 0

    cdef void release_raw_headers(self) noexcept:
        free(self.raw_headers)
        self.raw_headers = NULL
        self.raw_length = self.raw_capacity = 0

    cdef list build_headers(self):
        cdef list headers = []
        cdef list cookies = None
        cdef Py_ssize_t cookie_index = -1
        cdef size_t position = 0
        cdef uint32_t lengths[2]
        cdef const char *name
        cdef bytes value
        while position < self.raw_length:
            memcpy(lengths, self.raw_headers + position, sizeof(lengths))
            name = self.raw_headers + position + sizeof(lengths)
            value = PyBytes_FromStringAndSize(name + lengths[0], lengths[1])
            position += sizeof(lengths) + lengths[0] + lengths[1]
            if lengths[0] == 6 and memcmp(name, b"cookie", 6) == 0:
                if cookies is None:
                    cookies = []
                    cookie_index = len(headers)
                    headers.append(None)
                cookies.append(value)
                continue
            headers.append((PyBytes_FromStringAndSize(name, lengths[0]), value))
        if cookies is not None:
            headers[cookie_index] = (b"cookie", b"; ".join(cookies))
        self.release_raw_headers()
        return headers
