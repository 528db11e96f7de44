# The async client's side of a stream (nghttp2py.Client): BufferedResponseHandler
# keeps a response for the task that awaits it, ResponseBase is the hot half of
# nghttp2py.Response, and client_request() sends a request and awaits its headers.
#
# A response costs no asyncio future and no loop callback of its own. The task
# awaits the stream itself, which speaks asyncio's future protocol (the task
# registers its wake-up with add_done_callback) and is armed again at each wait.
# Wake-ups are queued on the session and run together, one loop callback per
# batch (a read, a timeout check). Timeouts are checked by one timer per
# session, on the monotonic clock, while a wait with a timeout is in progress.

# A BufferedResponseHandler stops giving the server credit for a body nobody
# reads once this much is buffered, and gives it again below the low mark.
cdef enum:
    BUFFER_HIGH_WATER = 1 << 20
    BUFFER_LOW_WATER = 256 << 10

# How often a session checks the timeouts of the responses being waited for:
# timeouts are this precise.
cdef double WATCHDOG_INTERVAL = 0.05

# nghttp2py.client.errors, imported on first use: nghttp2py.client imports this module.
cdef object _client_errors = None


cdef object client_errors():
    global _client_errors
    if _client_errors is None:
        from nghttp2py.client import errors
        _client_errors = errors
    return _client_errors


cdef class StreamWaiter:
    """What a task awaits for a BufferedResponseHandler's next event.

    ``await waiter`` returns at the handler's next event. For the awaiting
    task the waiter is an asyncio future, armed again at each wait; its
    wake-up runs in one loop callback with the others of the same batch.
    """

    def __await__(self):
        self.state = WAIT_IDLE
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self.state != WAIT_IDLE:
            self.state = WAIT_IDLE
            raise StopIteration
        self.state = WAIT_ARMED
        self._asyncio_future_blocking = True
        if self.timed:
            self.started = monotonic()
            self.session.watch()
        return self

    cdef void wake(self) except *:
        if self.state == WAIT_ARMED:
            self.state = WAIT_WOKEN
            if self.wakeup is not None:
                self.session.queue_wakeup(self)

    cdef void run_wakeup(self) except *:
        cdef object wakeup = self.wakeup
        cdef object context = self.wakeup_context
        if wakeup is None:
            return
        self.wakeup = self.wakeup_context = None
        try:
            if context is None:
                wakeup(self)
            else:
                context.run(wakeup, self)
        except Exception as exc:
            self.session.loop.call_exception_handler({
                "message": "waking the task that awaits a response failed",
                "exception": exc})

    # -- asyncio's future protocol, as the awaiting task uses it -------------------------

    def get_loop(self):
        return self.session.loop

    def add_done_callback(self, fn, *, context=None):
        self.wakeup = fn
        self.wakeup_context = context
        if self.state >= WAIT_WOKEN:
            self.session.queue_wakeup(self)

    def remove_done_callback(self, fn):
        if self.wakeup is fn:
            self.wakeup = self.wakeup_context = None
            return 1
        return 0

    def done(self):
        return self.state >= WAIT_WOKEN

    def cancelled(self):
        return self.state == WAIT_CANCELLED

    def cancel(self, msg=None):
        """Cancel the wait (not the stream: the task's ``CancelledError`` does that)."""
        if self.state != WAIT_ARMED:
            return False
        self.state = WAIT_CANCELLED
        self.cancel_message = msg
        if self.wakeup is not None:
            self.session.queue_wakeup(self)
        return True

    def result(self):
        if self.state == WAIT_CANCELLED:
            self.state = WAIT_IDLE
            message, self.cancel_message = self.cancel_message, None
            raise _CancelledError() if message is None else _CancelledError(message)
        return None

    def exception(self):
        self.result()
        return None


cdef class BufferedResponseHandler(BaseResponseHandler):
    """Keeps a response for a task that awaits it (the async Client's side of a stream).

    ``phase`` is how far the response has come: 0 (waiting), 1 (the final
    header block is in), 2 (all of it is). The body's chunks wait in
    ``chunks`` until taken; ``close_code`` is the stream's error code once it
    has closed (else -1). ``await handler.waiter()`` returns at the next
    event: the header block, a chunk, the end of the response or of the
    stream. The events are handled here, in C: a response costs no Python
    call until it is read. ``read_timeout`` and ``total_timeout`` (seconds,
    0: none) fail a wait that lasts too long: ``timeout_error`` says which.
    """

    def __cinit__(self):
        self.chunks = []
        self.close_code = -1

    def waiter(self):
        """The StreamWaiter to await for the next event (one per handler)."""
        if self._waiter is None:
            self._waiter = StreamWaiter.__new__(StreamWaiter)
            self._waiter.session = self.session
            self._waiter.timed = self.read_timeout > 0 or self.deadline > 0
        return self._waiter

    cpdef void wake(self) except *:
        """Wake the task awaiting the handler, if there is one."""
        if self._waiter is not None:
            self._waiter.wake()

    def take(self):
        """The oldest chunk not taken yet, or ``None``; reading resumes below the low mark."""
        if not self.chunks:
            return None
        chunk = self.chunks.pop(0)
        self.buffered -= len(chunk)
        if self.buffered < BUFFER_LOW_WATER and self.state & READING_PAUSED:
            self.resume_reading()
        return chunk

    def take_all(self):
        """Every chunk not taken yet, joined."""
        return self.take_all_chunks()

    cdef object take_all_chunks(self):
        cdef list chunks = self.chunks
        self.chunks = []
        self.buffered = 0
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def on_push_promise(self, push_promise):
        if self.response is not None:
            self.response._promised(push_promise)

    cdef bint check_time(self, double now) except -1:
        """Fail the wait if a timeout has passed; whether the wait goes on."""
        cdef StreamWaiter waiter = self._waiter
        if waiter is None or waiter.state != WAIT_ARMED or not waiter.timed:
            return False
        if self.session.transport is None:
            waiter.started = now  # while connecting, the connect timeout counts
        if self.deadline > 0 and now >= self.deadline:
            self.timeout_error = client_errors().TotalTimeoutError(
                f"{self.request_line()} took longer than {self.total_timeout:g} s")
        elif self.read_timeout > 0 and now >= waiter.started + self.read_timeout:
            self.timeout_error = client_errors().ReadTimeoutError(
                f"{self.request_line()}: nothing from the server for {self.read_timeout:g} s")
        else:
            return True
        self.session.reset_response(self, NGHTTP2_CANCEL)
        waiter.wake()
        return False

    cdef str request_line(self):
        """The request's method and URL, for error messages."""
        return (self.method + b" " + self.session.scheme + b"://" + self.session.authority
                + self.path).decode("latin-1")

    # -- told by the session -----------------------------------------------------------

    cdef int header_block_received(self) except -1:
        BaseResponseHandler.header_block_received(self)
        if self.state & FINAL_HEADERS and self.phase == PHASE_WAITING:
            self.phase = PHASE_HEADERS
            self.wake()
        return 0

    cdef int data_received(self, const uint8_t *data, size_t length) except -1:
        self.chunks.append(PyBytes_FromStringAndSize(<const char *>data, length))
        self.buffered += length
        if self.buffered >= BUFFER_HIGH_WATER and not self.reading_all:
            self.state |= READING_PAUSED
        BaseResponseHandler.data_received(self, data, length)
        self.wake()
        return 0

    cdef int response_received(self) except -1:
        BaseResponseHandler.response_received(self)
        self.phase = PHASE_DONE
        self.wake()
        return 0

    cdef int closed(self, uint32_t error_code) except -1:
        self.close_code = error_code
        BaseResponseHandler.closed(self, error_code)
        self.wake()
        return 0


cdef class ResponseBase:
    """The part of :class:`nghttp2py.Response` that every request runs, in C.

    nghttp2py.Response subclasses it with the rest; see its documentation.
    """

    def _wait(self):
        """What to await for the stream's next event; raises the stream's error.

        Callers wait in a loop for a phase: once it is reached, an error that
        came after it is raised only by whoever waits for more.
        """
        return self.wait()

    cdef StreamWaiter wait(self):
        cdef BufferedResponseHandler stream = self._stream
        if self._error is None:
            if stream.timeout_error is not None:
                self._error = stream.timeout_error
            elif stream.close_code >= 0:
                self._error = self._stream_error(stream.close_code)
        if self._error is not None:
            raise self._error
        if stream._waiter is None:
            stream.waiter()
        return stream._waiter

    async def read(self):
        """The whole body."""
        cdef BufferedResponseHandler stream = self._stream
        if self._body is not None:
            return self._body
        if self._streaming:
            raise RuntimeError("the body was read with stream() already")
        if stream.phase != PHASE_DONE:
            stream.reading_all = True
            if stream.state & READING_PAUSED:
                stream.resume_reading()
            while stream.phase != PHASE_DONE:
                await self.wait()
        self._body = stream.take_all_chunks()
        return self._body


cdef class ClientBase:
    """The part of :class:`nghttp2py.Client` that every request reads, in C.

    nghttp2py.Client subclasses it with the rest; see its documentation.
    ``_connection`` is the connection requests go on (its session is kept
    beside it), ``headers`` go with every request, ``push`` says whether
    pushed responses are accepted, ``timeout`` is the requests' Timeout.
    """

    @property
    def _connection(self):
        return self.connection

    @_connection.setter
    def _connection(self, connection):
        self.session = connection.session if connection is not None else None
        self.connection = connection

    @property
    def timeout(self):
        """The requests' :class:`~nghttp2py.Timeout` (connect, read, total)."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout):
        read, total = timeout.read, timeout.total
        self.read_timeout = read if read is not None else 0.0
        self.total_timeout = total if total is not None else 0.0
        self._timeout = timeout


def new_response(type cls, ClientBase client not None, str method, str path, timeout,
                 connection):
    """A ``cls`` (a ResponseBase) for a request on ``connection``, its stream not sent yet."""
    read, total = timeout.read, timeout.total
    return make_response(cls, client, method, path, timeout, read or 0.0, total or 0.0,
                         connection)


cdef tuple _EMPTY_ARGS = ()


cdef ResponseBase make_response(type cls, ClientBase client, str method, str path,
                                object timeout, double read_timeout, double total_timeout,
                                object connection):
    if not PyType_IsSubtype(cls, ResponseBase):
        raise TypeError(f"{cls!r} is not a ResponseBase")
    # cls.__new__(cls), without looking __new__ up.
    cdef ResponseBase response = (<PyTypeObject *>cls).tp_new(
        cls, <PyObject *>_EMPTY_ARGS, NULL)
    cdef BufferedResponseHandler stream = BufferedResponseHandler.__new__(
        BufferedResponseHandler)
    response._client = client
    response.method = method
    response._path = path
    response._timeout = timeout
    response._connection = connection
    response._stream = stream
    if client.push:
        stream.response = response
    stream.read_timeout = read_timeout
    if total_timeout > 0:
        stream.total_timeout = total_timeout
        stream.deadline = monotonic() + total_timeout
    return response


async def client_request(ClientBase client not None, type response_class, str method,
                         str url, headers, body, timeout):
    """What ``Client.request()`` returns: send the request, return its Response once its
    headers are in.

    A request the server did not process (a GOAWAY above its stream, a
    REFUSED_STREAM) is sent again, a few times, if its body can be.
    """
    cdef ResponseBase response
    cdef BufferedResponseHandler stream
    cdef ClientSession session
    cdef double read_timeout, total_timeout
    cdef int retries = 3 if body is None or isinstance(body, (bytes, str)) else 0
    if headers is None and timeout is Ellipsis and url.startswith("/"):
        path, all_headers, timeout = url, client.headers, client._timeout
        read_timeout, total_timeout = client.read_timeout, client.total_timeout
    else:
        path, all_headers, timeout = client._request_parts(url, headers, timeout)
        read, total = timeout.read, timeout.total
        read_timeout, total_timeout = read or 0.0, total or 0.0
    while True:
        session = client.session
        if session is None or not session.accepting():
            client._current_connection()
            session = client.session
        response = make_response(response_class, client, method, path, timeout, read_timeout,
                                 total_timeout, client.connection)
        stream = response._stream
        session._submit(stream, method, session.scheme, session.authority, path, all_headers,
                        body)
        try:
            while stream.phase == PHASE_WAITING:
                await response.wait()
        except BaseException as exc:
            if retries and getattr(exc, "retryable", False):
                retries -= 1
                continue
            await response.aclose()
            raise
        return response
