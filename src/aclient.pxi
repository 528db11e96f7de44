# The async client's side of a stream (nghttp2py.Client): BufferedResponseHandler
# keeps a response for the task that awaits it, ResponseBase and ClientBase are
# the hot halves of nghttp2py.Response and nghttp2py.Client, and PendingRequest
# sends a request and awaits its headers.
#
# A response costs no coroutine, no asyncio future and no loop callback of its
# own. What client.get() and response.read() return is a CAwaitable, its own
# iterator and, like an asyncio future, what the task waits on: each step either
# ends the await with a value, or hands the task the awaitable itself, which
# speaks asyncio's future protocol (the task registers its wake-up with
# add_done_callback). The stream's next event wakes it. Wake-ups are queued on
# the session and run together, one loop callback per batch (a read, a timeout
# check). Timeouts are checked by one timer per session, on the monotonic clock,
# while a wait with a timeout is in progress.

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


cdef extern from "Python.h":
    void PyErr_SetObject(object type, object value)
    object PyObject_GenericGetAttr(object obj, object name)
    int PyObject_GenericSetAttr(object obj, object name, object value) except -1
    int PyContext_Enter(object context) except -1
    int PyContext_Exit(object context) except -1


cdef extern from *:
    """
    /* CAwaitable's am_send: PyIter_Send (an await's every step) calls it
       directly, with no StopIteration to raise and fetch at the end. */
    typedef int (*nghttp2py_send_step)(PyObject *, PyObject *, PyObject **);
    static void nghttp2py_set_am_send(PyTypeObject *type, nghttp2py_send_step send) {
        type->tp_as_async->am_send = (sendfunc)send;
    }
    """
    ctypedef int (*nghttp2py_send_step)(PyObject *, PyObject *, PyObject **) except -1
    void nghttp2py_set_am_send(PyTypeObject *type, nghttp2py_send_step send)


cdef inline void set_await_result(object value) noexcept:
    """Set the StopIteration that ends an await with ``value`` (never a tuple here).

    ``__next__`` calls it right before a bare ``raise StopIteration``, which
    Cython compiles to returning NULL without touching the error set and
    without a traceback: the awaiting coroutine takes ``value`` from the
    error as from any C iterator's, and CPython 3.11 makes no exception
    instance for it.
    """
    PyErr_SetObject(StopIteration, value)


cdef class CAwaitable:
    """An await in C, over ``step()``: its own iterator, a coroutine and a future to asyncio.

    ``step()`` returns the stream to wait on, or None once ``value`` is set.
    To wait, the awaitable hands the task itself, as a future: it speaks
    asyncio's future protocol as a task uses it (the task registers its
    wake-up with ``add_done_callback``), and the stream's next event, a
    timeout or the task's cancellation queues that wake-up, to run in one
    loop callback with the others of the same batch; the next step follows.
    ``send``, ``throw`` and ``close`` make it a coroutine to asyncio
    (``create_task``, ``gather``).
    """

    # -- the future the task waits on ----------------------------------------------------

    # asyncio's task asks for these two by name at every wait: they are
    # answered here, without a lookup in the type or a new bound method.
    def __getattribute__(self, name):
        if name is "_asyncio_future_blocking":
            return self.blocking
        if name is "get_loop" and self.session is not None:
            return self.session.loop_getter()
        return PyObject_GenericGetAttr(self, name)

    def __setattr__(self, name, value):
        if name is "_asyncio_future_blocking":
            self.blocking = value
        else:
            PyObject_GenericSetAttr(self, name, value)

    def get_loop(self):
        if self.session is None:
            raise RuntimeError("the awaitable has not waited on a stream yet")
        return self.session.loop

    def add_done_callback(self, fn, *, context=None):
        self.wakeup = fn
        self.wakeup_context = context
        if self.state >= WAIT_WOKEN:
            self.session.queue_wakeup(self)  # over already: the task goes on soon

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
        """Cancel the wait: the task gets ``CancelledError`` (and throws it in)."""
        if self.state != WAIT_ARMED:
            return False
        self.cancel_message = msg
        self.end(WAIT_CANCELLED)
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

    cdef void wait_on(self, BufferedResponseHandler stream) except *:
        """Wait for ``stream``'s next event (or a timeout): the task is about to."""
        self.state = WAIT_ARMED
        self.blocking = True
        self.session = stream.session
        self.waiting_on = stream
        stream._waiter = self
        if stream.timed():
            self.started = monotonic()
            self.session.watch()

    cdef void wake(self) except *:
        if self.state == WAIT_ARMED:
            self.end(WAIT_WOKEN)

    cdef void end(self, int state) except *:
        """The wait is over (woken or cancelled): the task's wake-up is queued."""
        self.state = state
        self.stop_waiting()
        if self.wakeup is not None:
            self.session.queue_wakeup(self)

    cdef void stop_waiting(self) noexcept:
        """Let go of the stream waited on, and it of this awaitable."""
        cdef BufferedResponseHandler stream = self.waiting_on
        if stream is not None:
            self.waiting_on = None
            if stream._waiter is self:
                stream._waiter = None

    cdef void run_wakeup(self) except *:
        cdef object wakeup = self.wakeup
        cdef object context = self.wakeup_context
        cdef object future
        if wakeup is None:
            return
        self.wakeup = self.wakeup_context = None
        # A task reads an asyncio.Future's result in C but calls anything
        # else's result() by name: a woken task is handed a future that is
        # done, a cancelled one this awaitable (its result() raises).
        future = self if self.state == WAIT_CANCELLED else self.session.done_future()
        try:
            if context is None:
                wakeup(future)
            else:
                PyContext_Enter(context)
                try:
                    wakeup(future)
                finally:
                    PyContext_Exit(context)
        except Exception as exc:
            self.session.loop.call_exception_handler({
                "message": "waking the task that awaits a response failed",
                "exception": exc})

    # -- the awaitable -------------------------------------------------------------------

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self.resume():
            return self
        set_await_result(self.take_value())
        raise StopIteration

    def send(self, value):
        if self.resume():
            return self
        raise StopIteration(self.take_value())

    def throw(self, typ, value=None, traceback=None):
        self.give_up()
        if value is None:
            value = typ() if isinstance(typ, type) else typ
        raise value.with_traceback(traceback) if traceback is not None else value

    def close(self):
        if not self.finished:
            self.give_up()

    cdef bint resume(self) except -1:
        """Take the next step: whether it waits (on a stream) or is done (``value`` set)."""
        cdef BufferedResponseHandler stream
        if self.finished:
            raise RuntimeError("cannot reuse an awaitable that is done")
        self.state = WAIT_IDLE
        self.stop_waiting()
        try:
            stream = self.step()
        except BaseException:
            self.finished = True
            raise
        if stream is None:
            self.finished = True
            return False
        self.wait_on(stream)
        return True

    cdef void give_up(self) except *:
        self.finished = True
        self.state = WAIT_IDLE
        self.stop_waiting()
        self.abandon()

    cdef object take_value(self):
        value, self.value = self.value, None
        return value

    cdef BufferedResponseHandler step(self):
        """The stream to wait on, or None with ``value`` (the await's result) set."""
        return None

    cdef void abandon(self) except *:
        """The await was given up (an exception thrown in, or closed)."""


cdef int await_send(PyObject *awaitable, PyObject *value, PyObject **result) except -1:
    """CAwaitable's am_send: 1 (``result`` is the awaitable, to wait on) or 0 (its value)."""
    cdef CAwaitable self = <CAwaitable>awaitable
    cdef object out
    cdef int waiting = self.resume()
    out = self if waiting else self.take_value()
    Py_INCREF(out)
    result[0] = <PyObject *>out
    return waiting


nghttp2py_set_am_send(<PyTypeObject *>CAwaitable, await_send)


cdef class Ready(CAwaitable):
    """An await that ends at once with a value."""


cdef Ready ready(object value):
    cdef Ready awaitable = Ready.__new__(Ready)
    awaitable.value = value
    return awaitable


cdef class NextEvent(CAwaitable):
    """What ``Response._wait()`` returns: the stream's next event ends it."""

    cdef BufferedResponseHandler step(self):
        cdef BufferedResponseHandler stream = self.stream
        self.stream = None
        return stream


cdef class PendingBody(CAwaitable):
    """What ``Response.read()`` returns while the body is still arriving."""

    cdef BufferedResponseHandler step(self):
        cdef ResponseBase response = self.response
        cdef BufferedResponseHandler stream = response._stream
        if response._body is None:
            if response._streaming:
                raise RuntimeError("the body was read with stream() already")
            if stream.phase != PHASE_DONE:
                if not stream.reading_all:
                    stream.reading_all = True
                    if stream.state & READING_PAUSED:
                        stream.resume_reading()
                return response.check()
            response._body = stream.take_all()
        self.value = response._body
        self.response = None
        return None


cdef class BufferedResponseHandler(BaseResponseHandler):
    """Keeps a response for a task that awaits it (the async Client's side of a stream).

    ``phase`` is how far the response has come: 0 (waiting), 1 (the final
    header block is in), 2 (all of it is). The body's chunks wait in
    ``chunks`` until taken; ``close_code`` is the stream's error code once it
    has closed (else -1). An event (the header block, a chunk, the end of
    the response or of the stream) wakes the task waiting on it. The
    events are handled here, in C: a response costs no Python call until it
    is read. ``read_timeout`` and ``total_timeout`` (seconds, 0: none) fail
    a wait that lasts too long: ``timeout_error`` says which.
    """

    def __cinit__(self):
        self.chunks = []
        self.close_code = -1

    cdef bint timed(self) noexcept:
        """Whether a wait on the stream can time out."""
        return self.read_timeout > 0 or self.deadline > 0

    cdef void wake(self) except *:
        """Wake the task waiting on the stream, if there is one."""
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

    cdef object take_all(self):
        """Every chunk not taken yet, joined."""
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
        cdef CAwaitable waiter = self._waiter
        if waiter is None or waiter.state != WAIT_ARMED or not self.timed():
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
                + self.path).decode("utf-8", "replace")

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
        cdef NextEvent event = NextEvent.__new__(NextEvent)
        event.stream = self.check()
        return event

    cdef BufferedResponseHandler check(self):
        """The stream, to wait on; raises the error that ended it, if one has."""
        cdef BufferedResponseHandler stream = self._stream
        if self._error is None:
            if stream.timeout_error is not None:
                self._error = stream.timeout_error
            elif stream.close_code >= 0:
                self._error = self._stream_error(stream.close_code)
        if self._error is not None:
            raise self._error
        return stream

    def read(self):
        """The whole body (an awaitable)."""
        if self._body is None and not self._streaming and self._stream.phase == PHASE_DONE:
            self._body = self._stream.take_all()
        if self._body is not None:
            return ready(self._body)
        cdef PendingBody pending = PendingBody.__new__(PendingBody)
        pending.response = self
        return pending


cdef inline double seconds(object limit) except? -1:
    """One of a Timeout's limits in seconds, 0 for None (no limit)."""
    return 0.0 if limit is None else limit


cdef class ClientBase:
    """The part of :class:`nghttp2py.Client` that every request reads, in C.

    nghttp2py.Client subclasses it with the rest; see its documentation.
    ``_connection`` is the connection requests go on (its session is kept
    beside it), ``headers`` go with every request, ``push`` says whether
    pushed responses are accepted, ``timeout`` is the requests' Timeout,
    ``response_class`` the class of the responses (a ResponseBase).
    """

    @property
    def _connection(self):
        return self.connection

    @_connection.setter
    def _connection(self, connection):
        self.session = connection.session if connection is not None else None
        self.connection = connection

    @property
    def headers(self):
        """The header fields that go with every request: a tuple of ``(name, value)`` pairs."""
        return self._headers

    @headers.setter
    def headers(self, headers):
        headers = tuple(headers)
        self.header_fields = request_fields(headers)
        self._headers = headers

    @property
    def timeout(self):
        """The requests' :class:`~nghttp2py.Timeout` (connect, read, total)."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout):
        self.read_timeout = seconds(timeout.read)
        self.total_timeout = seconds(timeout.total)
        self._timeout = timeout

    # -- requests: each returns an awaitable (a coroutine to asyncio) ----------------------

    def request(self, str method not None, str url not None, *, headers=None, body=None,
                timeout=Ellipsis):
        """Send a request; awaiting it returns its Response once its headers have arrived.

        ``url`` is a path or a URL on this client's origin. ``body`` is
        ``None``, ``str`` (UTF-8), bytes-like, a binary file or an async
        iterable of bytes; it is sent as the server's flow control allows,
        with a ``content-length`` when its length is known. ``timeout``
        overrides the client's. A request the server did not process (a
        GOAWAY above its stream, a REFUSED_STREAM) is sent again, up to three
        times, if its body can be.
        """
        return pending_request(self, method, url, headers, body, timeout)

    def get(self, str url not None, *, headers=None, timeout=Ellipsis):
        """A GET request: see :meth:`request`."""
        return pending_request(self, "GET", url, headers, None, timeout)

    def head(self, str url not None, *, headers=None, timeout=Ellipsis):
        """A HEAD request: see :meth:`request`."""
        return pending_request(self, "HEAD", url, headers, None, timeout)

    def post(self, str url not None, body=None, *, headers=None, timeout=Ellipsis):
        """A POST request: see :meth:`request`."""
        return pending_request(self, "POST", url, headers, body, timeout)

    def put(self, str url not None, body=None, *, headers=None, timeout=Ellipsis):
        """A PUT request: see :meth:`request`."""
        return pending_request(self, "PUT", url, headers, body, timeout)

    def delete(self, str url not None, *, headers=None, timeout=Ellipsis):
        """A DELETE request: see :meth:`request`."""
        return pending_request(self, "DELETE", url, headers, None, timeout)


def new_response(type cls, ClientBase client not None, str method, str path, timeout,
                 connection):
    """A ``cls`` (a ResponseBase) for a request on ``connection``, its stream not sent yet."""
    return make_response(cls, client, method, path, timeout, seconds(timeout.read),
                         seconds(timeout.total), connection)


cdef tuple _EMPTY_ARGS = ()


cdef ResponseBase make_response(type cls, ClientBase client, str method, str path,
                                object timeout, double read_timeout, double total_timeout,
                                object connection):
    if cls is None or not PyType_IsSubtype(cls, ResponseBase):
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


cdef PendingRequest pending_request(ClientBase client, str method, str url, object headers,
                                    object body, object timeout):
    cdef PendingRequest request = PendingRequest.__new__(PendingRequest)
    request.client = client
    request.method = method
    request.url = url
    request.headers = headers
    request.body = body
    request.timeout = timeout
    return request


cdef class PendingRequest(CAwaitable):
    """A request: the first step sends it, the last returns its Response.

    A request the server did not process (a GOAWAY above its stream, a
    REFUSED_STREAM) is sent again, a few times, if its body can be.
    """

    cdef BufferedResponseHandler step(self):
        cdef ResponseBase response = self.response
        if response is None:
            self.prepare()
            response = self.submit()
        while True:
            if response._stream.phase != PHASE_WAITING:
                self.value = response
                self.response = None
                return None
            try:
                return response.check()
            except BaseException as exc:
                if not (self.retries and getattr(exc, "retryable", False)):
                    self.abandon()
                    raise
                self.retries -= 1
                response = self.submit()

    cdef void prepare(self) except *:
        """Resolve the path, the header fields and the timeouts."""
        cdef ClientBase client = self.client
        self.retries = 3 if self.body is None or isinstance(self.body, (bytes, str)) else 0
        if self.headers is None and self.timeout is Ellipsis and self.url.startswith("/"):
            self.path, self.headers, self.timeout = self.url, client.header_fields, client._timeout
            self.read_timeout, self.total_timeout = client.read_timeout, client.total_timeout
        else:
            self.path, self.headers, self.timeout = client._request_parts(
                self.url, self.headers, self.timeout)
            self.read_timeout = seconds(self.timeout.read)
            self.total_timeout = seconds(self.timeout.total)

    cdef ResponseBase submit(self):
        """Send the request (again) on the client's connection: its new Response."""
        cdef ClientBase client = self.client
        cdef ClientSession session = client.session
        if session is None or not session.accepting():
            client._current_connection()
            session = client.session
        cdef ResponseBase response = make_response(
            client.response_class, client, self.method, self.path, self.timeout,
            self.read_timeout, self.total_timeout, client.connection)
        self.response = response
        session._submit(response._stream, self.method, session.scheme, session.authority,
                        self.path, self.headers, self.body)
        return response

    cdef void abandon(self) except *:
        """Reset the stream (CANCEL) of a request given up on."""
        cdef ResponseBase response = self.response
        self.response = None
        if response is not None:
            if response._stream.phase != PHASE_DONE:
                response._stream.cancel()
            response._stream.chunks.clear()
