# The client side of HTTP/2: ClientSession sends requests over one
# connection, and a BaseResponseHandler per request receives its response.
#
# ClientSession is a Session: it shares its input (feed), its output batching
# (flush: one transport.write per batch), its cb_on_* trampolines and the way
# exceptions are recorded inside callbacks and acted on once
# nghttp2_session_mem_recv / mem_send has returned. It overrides the _on_*
# bodies the trampolines call, for responses instead of requests. Request
# bodies are BodySources, pulled as the server's window allows.

from nghttp2py.errors import ProtocolError as _ProtocolError

# The client's callbacks and options, built once like the server's.
cdef nghttp2_session_callbacks *_client_callbacks = NULL
cdef nghttp2_option *_client_option = NULL


cdef int _init_client_templates() except -1:
    global _client_callbacks, _client_option
    cdef nghttp2_option *option = NULL
    cdef nghttp2_session_callbacks *callbacks = new_session_callbacks()
    # A request body belongs to a BaseResponseHandler, not to a BaseRequestHandler.
    nghttp2_session_callbacks_set_send_data_callback(callbacks, cb_request_send_data)
    if nghttp2_option_new(&option) != 0:
        nghttp2_session_callbacks_del(callbacks)
        raise MemoryError()
    # The stream window is given back as the application takes response data.
    nghttp2_option_set_no_auto_window_update(option, 1)
    _client_callbacks, _client_option = callbacks, option
    return 0


cdef class BaseResponseHandler:
    """Receives the response to one request; subclass it and override the ``on_*`` hooks.

    The request attributes (``method``, ``scheme``, ``host``, ``path``) are
    ``bytes``. Once the final header block has arrived, ``status`` is its
    status code and ``headers`` a list of ``(name, value)`` byte pairs;
    trailer fields, if any, are in ``trailers``. ``error`` is the exception
    that ended the stream early (a failed hook or request body, a lost
    connection), else ``None``. The hooks run on the event loop and must not
    block; one that raises resets the stream (``CANCEL``) and is logged.
    """

    def __cinit__(self):
        self.stream_id = -1

    def __dealloc__(self):
        raw_fields_release(&self.raw_headers)

    @property
    def headers(self):
        """The response's header fields as ``(bytes, bytes)`` pairs."""
        if self._headers is None:
            self._headers = raw_fields_build(&self.raw_headers, False)
        return self._headers

    @headers.setter
    def headers(self, value):
        self._headers = value

    @property
    def method(self):
        """The request's method (``bytes``)."""
        return header_bytes(self._method) if self._method is not None else None

    @method.setter
    def method(self, bytes value):
        self._method = value

    @property
    def path(self):
        """The request's path (``bytes``)."""
        return header_bytes(self._path) if self._path is not None else None

    @path.setter
    def path(self, bytes value):
        self._path = value

    @property
    def server_address(self):
        """The address of the server the request went to (``None`` before connecting)."""
        return self.session.client_address if self.session is not None else None

    @property
    def response_done(self):
        """True once the whole response (``END_STREAM``) has arrived."""
        return bool(self.state & RESPONSE_DONE)

    @property
    def closed_stream(self):
        """True once the stream has closed (``on_close`` has been called)."""
        return bool(self.state & STREAM_CLOSED)

    def on_headers(self):
        """Called when the final response header block has arrived (1xx are skipped)."""

    def on_data(self, data):
        """Called with each chunk of the response body, as ``bytes``."""

    def on_response_done(self):
        """Called when the whole response (body and trailers) has arrived."""

    def on_close(self, error_code):
        """Called when the stream closes; ``error_code`` is an :class:`~nghttp2py.ErrorCode`.

        ``ErrorCode.NO_ERROR`` with :attr:`response_done` is a complete
        response; anything else ended it early (see :attr:`error`).
        """

    def on_push_promise(self, push_promise):
        """Called when the server promises to push ``push_promise`` (a :class:`PushPromise`).

        Call :meth:`accept_push` to receive it; a promise neither accepted
        nor rejected when this returns is rejected (``RST_STREAM CANCEL``).
        """

    def accept_push(self, PushPromise push_promise, handler=None):
        """Receive the pushed response with ``handler`` and return it.

        ``handler`` is a :class:`BaseResponseHandler` instance or class; by
        default a new instance of this handler's class. Only from
        :meth:`on_push_promise`.
        """
        if push_promise.decided:
            raise ResponseStateError(f"push promise {push_promise.stream_id} is already decided")
        if handler is None:
            handler = type(self)()
        elif isinstance(handler, type):
            handler = handler()
        self.session.accept(push_promise, handler)
        return handler

    def reject_push(self, PushPromise push_promise):
        """Refuse the pushed response (``RST_STREAM CANCEL``)."""
        if not push_promise.decided:
            push_promise.decided = True
            self.session.reset_stream_id(push_promise.stream_id, NGHTTP2_CANCEL)

    def pause_reading(self):
        """Stop giving the server credit for this response: it stops once the window is full."""
        self.state |= READING_PAUSED

    def resume_reading(self):
        """Give the server credit again, for what arrived while paused too."""
        if self.state & READING_PAUSED:
            self.state &= ~READING_PAUSED
            if self.unconsumed and self.session is not None:
                self.session.consume_response(self, self.unconsumed)
                self.unconsumed = 0
                self.session.after_app_work()

    @property
    def reading_paused(self):
        """True between :meth:`pause_reading` and :meth:`resume_reading`."""
        return bool(self.state & READING_PAUSED)

    def cancel(self, error_code=NGHTTP2_CANCEL):
        """Reset the stream (``RST_STREAM``, ``CANCEL`` by default), unless it has closed."""
        if self.session is not None:
            self.session.reset_response(self, error_code)

    # -- told by the session -----------------------------------------------------------

    cdef int attach(self, ClientSession session, int32_t stream_id) except -1:
        self.session = session
        self.stream_id = stream_id
        self.hooks = response_hooks(type(self))
        return 0

    cdef int add_field(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1:
        """A field of a response header block: ``:status``, a header or a trailer."""
        cdef tuple field
        self.header_list_size += name.len + value.len + HPACK_ENTRY_OVERHEAD
        if self.header_list_size > self.session.max_header_list_size:
            if self.error is None:
                self.error = _ProtocolError(
                    f"the response header block on stream {self.stream_id} is larger than "
                    f"{self.session.max_header_list_size} bytes")
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE  # nghttp2 resets the stream
        if name.len and name.base[0] == b':':
            # nghttp2 lets only a three-digit :status through.
            if name.len == 7 and memcmp(name.base, b":status", 7) == 0 and value.len == 3:
                self.status = ((value.base[0] - 48) * 100 + (value.base[1] - 48) * 10
                               + value.base[2] - 48)
            return 0
        if not (self.state & FINAL_HEADERS) and self._headers is None:
            return raw_fields_add(&self.raw_headers, name, value)
        field = (PyBytes_FromStringAndSize(<char *>name.base, name.len),
                 PyBytes_FromStringAndSize(<char *>value.base, value.len))
        if not (self.state & FINAL_HEADERS):
            # `headers` was read before the block ended: it is the list now.
            self._headers.append(field)
        elif self.trailers is None:
            self.trailers = [field]
        else:
            self.trailers.append(field)
        return 0

    cdef int header_block_received(self) except -1:
        if self.state & FINAL_HEADERS:
            return 0  # trailers: they count once the response is done
        if self.status < 200:
            # Informational (1xx): forgotten, the final response follows.
            self.status = 0
            self._headers = None
            raw_fields_release(&self.raw_headers)
            self.header_list_size = 0
            return 0
        self.state |= FINAL_HEADERS
        if self.hooks & HAS_ON_HEADERS:
            try:
                self.on_headers()
            except BaseException as exc:
                self.fail("on_headers", exc)
        return 0

    cdef int data_received(self, const uint8_t *data, size_t length) except -1:
        if self.hooks & HAS_ON_DATA and not (self.state & HANDLER_FAILED):
            try:
                self.on_data(PyBytes_FromStringAndSize(<const char *>data, length))
            except BaseException as exc:
                self.fail("on_data", exc)
        if self.state & READING_PAUSED:
            self.unconsumed += length
        else:
            self.session.consume_response(self, length)
        return 0

    cdef int response_received(self) except -1:
        self.state |= RESPONSE_DONE
        if self.hooks & HAS_ON_REQUEST_DONE and not (self.state & HANDLER_FAILED):
            try:
                self.on_response_done()
            except BaseException as exc:
                self.fail("on_response_done", exc)
        return 0

    cdef int closed(self, uint32_t error_code) except -1:
        self.state |= STREAM_CLOSED
        if self.body is not None:
            self.body.close()
            self.body = None
        if self.hooks & HAS_ON_CLOSE:
            try:
                self.on_close(_error_code(error_code))
            except BaseException as exc:
                self.fail("on_close", exc)
        return 0

    cdef void fail(self, str where, object exc):
        """``where`` failed: reset the stream once the C call has returned."""
        self.state |= HANDLER_FAILED
        if self.error is None:
            self.error = exc
        self.session.failures.append((self, where, exc))


cdef dict _response_hooks_by_class = {}


cdef int response_hooks(type cls) except -1:
    """The HAS_ON_* bits of the hooks ``cls`` overrides (on_response_done: HAS_ON_REQUEST_DONE)."""
    cdef object hooks = _response_hooks_by_class.get(cls)
    if hooks is None:
        hooks = _response_hooks_by_class[cls] = overridden_hooks(cls, BaseResponseHandler, (
            (HAS_ON_HEADERS, "on_headers"), (HAS_ON_DATA, "on_data"),
            (HAS_ON_REQUEST_DONE, "on_response_done"), (HAS_ON_CLOSE, "on_close")))
    return hooks


cdef class PushPromise:
    """A response the server promises to push, and the request it answers.

    ``stream_id`` is the promised stream; ``method``, ``scheme``, ``host``
    and ``path`` are ``bytes``, ``headers`` the other request fields;
    ``parent`` is the handler of the request the promise came with.
    """

    def __repr__(self):
        return (f"<PushPromise stream {self.stream_id}: {self.method!r} {self.scheme!r} "
                f"{self.host!r} {self.path!r}>")


cdef class AsyncRequestBody(AsyncIterBody):
    """An async iterable request body: a chunk's arrival wakes its response handler's stream."""

    cdef void resume(self) except *:
        self.response.session.resume_request_body(self.response)

    cdef void failed(self, object exception) except *:
        self.response.fail("body", exception)
        self.response.session.after_app_work()

    cdef void close(self) noexcept:
        AsyncIterBody.close(self)
        self.response = None


cdef BodySource request_body_source(object body, BaseResponseHandler stream):
    """The BodySource of a request body (None: no body)."""
    cdef BodySource source = body_source(body)
    cdef AsyncRequestBody iterable
    if isinstance(source, AsyncIterBody):
        iterable = AsyncRequestBody.__new__(AsyncRequestBody)
        iterable.iterator = (<AsyncIterBody>source).iterator
        iterable.length = -1
        iterable.response = stream
        return iterable
    if isinstance(source, GeneratorBody):
        raise TypeError("a request body is bytes, str, a file or an async iterable, "
                        "not a callable")
    return source


cdef bint has_field(list headers, bytes name) except -1:
    for item in headers:
        if header_bytes(item[0]) == name:
            return True
    return False


cdef class ClientSession(Session):
    """The HTTP/2 client side of one connection (a libnghttp2 client session).

    Requests may be submitted before the connection exists: they wait in
    nghttp2's queue, as do those beyond the server's
    ``SETTINGS_MAX_CONCURRENT_STREAMS``, and go out from
    :meth:`connection_made` on. ``settings`` is a mapping as for
    :class:`Session`, plus ``enable_push``; ``scheme`` and ``authority`` are
    those of :meth:`request`. The handler of each open stream is kept until
    the stream closes or :meth:`connection_lost` closes it.
    """

    def __init__(self, dict settings, *, bytes scheme=b"https", bytes authority=b"",
                 loop=None):
        self.loop = loop
        self.streams = {}
        self.failures = []
        self.promises = {}
        self.ready = []
        self.scheme = scheme
        self.authority = authority
        self.max_header_list_size = settings["max_header_list_size"]
        self.http_version = "2"
        self.last_activity = monotonic()
        self._create(settings)

    cdef int _create(self, dict settings) except -1:
        if _client_callbacks == NULL:
            _init_client_templates()
        check(nghttp2_session_client_new2(&self.session, _client_callbacks, <void *>self,
                                          _client_option))
        return self._submit_settings(settings)

    # -- the connection's side -----------------------------------------------------------

    def connection_made(self, transport, server_address=None):
        """The connection is up: send the preface, then the requests queued so far."""
        self.transport = transport
        self.client_address = server_address
        self.flush()

    def connection_lost(self, error=None):
        """The transport is gone: every open stream closes (``CANCEL``) with ``error``."""
        cdef BaseResponseHandler handler
        for handler in self.open_handlers():
            if handler.error is None:
                handler.error = error
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        Session.connection_lost(self)

    def shutdown(self):
        """Close gracefully: once every open stream has ended, GOAWAY, then close."""
        if self.session == NULL or self.shutting_down:
            return
        self.shutting_down = True
        if not self.open_count:
            self.terminate()

    @property
    def accepting_requests(self):
        """Whether new requests may go on this connection (no GOAWAY either way, not closed)."""
        return self.accepting()

    cdef bint accepting(self) noexcept:
        return self.session != NULL and self.goaway is None and not self.shutting_down

    def request(self, BaseResponseHandler handler not None, method, path, headers=None,
                body=None):
        """:meth:`submit_request` with the session's own ``scheme`` and ``authority``."""
        return self._submit(handler, method, self.scheme, self.authority, path, headers, body)

    def submit_request(self, BaseResponseHandler handler not None, method, scheme, authority,
                       path, headers=None, body=None):
        """Queue a request; ``handler`` receives its response. Returns the stream id.

        ``headers`` are ``(name, value)`` pairs (lower-case names, no
        pseudo-headers); ``body`` is ``None``, ``str``, bytes-like, an
        ``io.IOBase`` or an async iterable of bytes. A ``content-length`` is
        added when the body's length is known.
        """
        return self._submit(handler, method, scheme, authority, path, headers, body)

    cdef int32_t _submit(self, BaseResponseHandler handler, object method, object scheme,
                         object authority, object path, object headers,
                         object body) except -1:
        cdef nghttp2_data_provider provider
        cdef int32_t stream_id
        if self.session == NULL:
            raise ConnectionError("the connection is closed")
        if handler.session is not None:
            raise ResponseStateError("a response handler receives one response only")
        cdef bytes scheme_bytes = header_bytes(scheme)
        cdef bytes authority_bytes = header_bytes(authority)
        if type(method) is not str:
            method = header_bytes(method)
        if type(path) is not str:
            path = header_bytes(path)
        cdef BodySource source = request_body_source(body, handler)
        if source is not None and source.length >= 0:
            if type(headers) is HeaderBlock:
                headers = (<HeaderBlock>headers).headers
            headers = list(headers) if headers is not None else []
            if not has_field(headers, b"content-length"):
                headers.append((b"content-length", str(source.length).encode("ascii")))
        cdef HeaderBlock block
        try:
            block = request_header_block(method, scheme_bytes, authority_bytes, path, headers)
        except BaseException:
            if source is not None:
                source.close()
            raise
        if source is None:
            stream_id = nghttp2_submit_request(self.session, NULL, block.nva, block.length,
                                               NULL, <void *>handler)
        else:
            provider.source.ptr = <void *>handler
            provider.read_callback = cb_request_body_read
            stream_id = nghttp2_submit_request(self.session, NULL, block.nva, block.length,
                                               &provider, <void *>handler)
        if stream_id < 0:
            if source is not None:
                source.close()
            check(stream_id)
        handler.attach(self, stream_id)
        handler.body = source
        handler._method = method
        handler.scheme = scheme_bytes
        handler.host = authority_bytes
        handler._path = path
        self.add_open(handler)
        self.request_flush()
        return stream_id

    # -- the tasks that await responses (aclient.pxi) ----------------------------------

    cdef void queue_wakeup(self, CAwaitable awaitable) except *:
        """Wake the task waiting on ``awaitable`` soon, in one loop callback with the others."""
        if not self.ready:
            self.loop.call_soon(self._run_wakeups)
        self.ready.append(awaitable)

    def get_loop(self):
        """The event loop the session runs on."""
        return self.loop

    cdef object loop_getter(self):
        """``self.get_loop``, made once: what a waiting CAwaitable's ``get_loop`` is."""
        if self._loop_getter is None:
            self._loop_getter = self.get_loop
        return self._loop_getter

    cdef object done_future(self):
        """A future of the loop's that is done (result ``None``): what woken tasks are handed."""
        if self._done_future is None:
            self._done_future = self.loop.create_future()
            self._done_future.set_result(None)
        return self._done_future

    def _run_wakeups(self):
        cdef CAwaitable awaitable
        ready, self.ready = self.ready, []
        for awaitable in ready:
            awaitable.run_wakeup()

    cdef void watch(self) except *:
        """A wait with a timeout began: check the timeouts while there are such waits."""
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(WATCHDOG_INTERVAL, self._check_timeouts)

    def _check_timeouts(self):
        cdef double now = monotonic()
        cdef bint watching = False
        self.watchdog = None
        for handler in self.open_handlers():
            if isinstance(handler, BufferedResponseHandler):
                watching |= (<BufferedResponseHandler>handler).check_time(now)
        if watching:
            self.watch()

    # -- what handlers ask for ---------------------------------------------------------

    cdef void reset_response(self, BaseResponseHandler stream, uint32_t error_code):
        if not (stream.state & STREAM_CLOSED):
            self.reset_stream_id(stream.stream_id, error_code)

    cdef void reset_stream_id(self, int32_t stream_id, uint32_t error_code):
        if self.session != NULL:
            nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, stream_id, error_code)
            self.request_flush()

    cdef void consume_response(self, BaseResponseHandler stream, size_t length) noexcept:
        """``length`` bytes of ``stream``'s response are taken: the server may send more."""
        if self.session != NULL:
            nghttp2_session_consume_stream(self.session, stream.stream_id, length)

    cdef void resume_request_body(self, BaseResponseHandler stream):
        if self.session != NULL:
            nghttp2_session_resume_data(self.session, stream.stream_id)
            self.request_flush()

    cdef int accept(self, PushPromise promise, BaseResponseHandler handler) except -1:
        if handler.session is not None:
            raise ResponseStateError("a response handler receives one response only")
        promise.decided = True
        handler.attach(self, promise.stream_id)
        handler.pushed = True
        handler._method = promise.method
        handler.scheme = promise.scheme
        handler.host = promise.host
        handler._path = promise.path
        self.add_open(handler)
        nghttp2_session_set_stream_user_data(self.session, promise.stream_id, <void *>handler)
        return 0

    cdef void process_failures(self) except *:
        """Log each failed handler and reset its stream; its ``error`` is the exception."""
        cdef BaseResponseHandler handler
        failures, self.failures = self.failures, []
        for handler, where, exc in failures:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and self.escape is None:
                self.escape = exc
            # A request body's failure is the request's: raised to whoever sent it.
            (_logger.info if where == "body" else _logger.error)(
                "%s.%s raised on stream %d to %s", type(handler).__name__, where,
                handler.stream_id, self.client_address, exc_info=exc)
            self.reset_response(handler, NGHTTP2_CANCEL)

    # -- callback bodies -----------------------------------------------------------------

    cdef int _on_begin_headers(self, const nghttp2_frame *frame) except -1:
        cdef PushPromise promise
        cdef void *parent
        if frame.hd.type == NGHTTP2_PUSH_PROMISE:
            promise = PushPromise.__new__(PushPromise)
            promise.stream_id = frame.push_promise.promised_stream_id
            promise.headers = []
            parent = nghttp2_session_get_stream_user_data(self.session, frame.hd.stream_id)
            if parent != NULL:
                promise.parent = <BaseResponseHandler>parent
            self.promises[promise.stream_id] = promise
        return 0

    cdef int _on_header(self, const nghttp2_frame *frame, nghttp2_rcbuf *name_buf,
                        nghttp2_rcbuf *value_buf) except -1:
        cdef nghttp2_vec name = nghttp2_rcbuf_get_buf(name_buf)
        cdef nghttp2_vec value = nghttp2_rcbuf_get_buf(value_buf)
        cdef void *user_data
        if frame.hd.type == NGHTTP2_PUSH_PROMISE:
            promised_field(self.promises.get(frame.push_promise.promised_stream_id),
                           PyBytes_FromStringAndSize(<char *>name.base, name.len),
                           PyBytes_FromStringAndSize(<char *>value.base, value.len))
            return 0
        user_data = nghttp2_session_get_stream_user_data(self.session, frame.hd.stream_id)
        if user_data == NULL:
            return 0
        return (<BaseResponseHandler>user_data).add_field(&name, &value)

    cdef int _on_frame_recv(self, const nghttp2_frame *frame) except -1:
        cdef uint8_t frame_type = frame.hd.type
        if frame_type == NGHTTP2_PUSH_PROMISE:
            return self._on_push_promise(frame)
        if frame_type != NGHTTP2_HEADERS and frame_type != NGHTTP2_DATA:
            self._on_connection_frame_recv(frame)
            return 0
        cdef void *user_data = nghttp2_session_get_stream_user_data(
            self.session, frame.hd.stream_id)
        if user_data != NULL:
            if frame_type == NGHTTP2_HEADERS:
                (<BaseResponseHandler>user_data).header_block_received()
            if frame.hd.flags & NGHTTP2_FLAG_END_STREAM:
                (<BaseResponseHandler>user_data).response_received()
        return 0

    cdef int _on_push_promise(self, const nghttp2_frame *frame) except -1:
        cdef PushPromise promise = self.promises.pop(frame.push_promise.promised_stream_id, None)
        if promise is None:
            return 0
        cdef BaseResponseHandler parent = promise.parent
        if parent is not None and not (parent.state & HANDLER_FAILED):
            try:
                parent.on_push_promise(promise)
            except BaseException as exc:
                parent.fail("on_push_promise", exc)
        if not promise.decided:
            promise.decided = True
            nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, promise.stream_id,
                                      NGHTTP2_CANCEL)
        return 0

    cdef void _on_connection_frame_recv(self, const nghttp2_frame *frame) except *:
        if frame.hd.type == NGHTTP2_GOAWAY:
            debug = PyBytes_FromStringAndSize(<char *>frame.goaway.opaque_data,
                                              frame.goaway.opaque_data_len)
            self.goaway = (frame.goaway.last_stream_id, _error_code(frame.goaway.error_code),
                           debug)
            _logger.info("GOAWAY %s from %s (last stream %d)%s",
                         self.goaway[1].name if isinstance(self.goaway[1], _ErrorCode)
                         else self.goaway[1], self.client_address,
                         frame.goaway.last_stream_id,
                         ": " + debug.decode("utf-8", "replace") if debug else "")
        elif frame.hd.type != NGHTTP2_RST_STREAM:
            # The server's RST_STREAMs only end our own streams: no rate limit here.
            Session._on_connection_frame_recv(self, frame)

    cdef int _on_data_chunk_recv(self, int32_t stream_id, const uint8_t *data,
                                 size_t length) except -1:
        # The connection window reopens at once, so that a paused stream holds
        # back only itself; its stream window waits for the application.
        nghttp2_session_consume_connection(self.session, length)
        cdef void *user_data = nghttp2_session_get_stream_user_data(self.session, stream_id)
        if user_data != NULL:
            return (<BaseResponseHandler>user_data).data_received(data, length)
        nghttp2_session_consume_stream(self.session, stream_id, length)
        return 0

    cdef int _on_stream_close(self, int32_t stream_id, uint32_t error_code) except -1:
        cdef void *user_data = nghttp2_session_get_stream_user_data(self.session, stream_id)
        if user_data != NULL:
            self.close_handler(<BaseResponseHandler>user_data, error_code)
        if self.shutting_down and not self.open_count and self.session != NULL:
            nghttp2_session_terminate_session(self.session, NGHTTP2_NO_ERROR)
        return 0

    cdef void close_open_streams(self) except *:
        cdef BaseResponseHandler handler
        for handler in self.open_handlers():
            self.close_handler(handler, NGHTTP2_CANCEL)

    cdef int close_handler(self, BaseResponseHandler handler, uint32_t error_code) except -1:
        """``handler``'s stream has closed: out of the open list, then told."""
        if handler.is_open:
            self.remove_open(handler)
            try:
                handler.closed(error_code)
            finally:
                Py_DECREF(handler)  # the open list's reference
        return 0

    # -- the open streams: a list through their handlers ---------------------------------

    cdef Py_ssize_t open_stream_count(self) noexcept:
        return self.open_count

    cdef void add_open(self, BaseResponseHandler handler) noexcept:
        """Put ``handler`` in the open list, which holds a reference to it."""
        Py_INCREF(handler)
        handler.is_open = True
        handler.prev_open = NULL
        handler.next_open = self.first_open
        if self.first_open != NULL:
            (<BaseResponseHandler>self.first_open).prev_open = <PyObject *>handler
        self.first_open = <PyObject *>handler
        self.open_count += 1

    cdef void remove_open(self, BaseResponseHandler handler) noexcept:
        """Take ``handler`` out of the open list; the caller drops the list's reference."""
        if handler.prev_open != NULL:
            (<BaseResponseHandler>handler.prev_open).next_open = handler.next_open
        else:
            self.first_open = handler.next_open
        if handler.next_open != NULL:
            (<BaseResponseHandler>handler.next_open).prev_open = handler.prev_open
        handler.prev_open = handler.next_open = NULL
        handler.is_open = False
        self.open_count -= 1

    cdef list open_handlers(self):
        """The open streams' handlers, as a list (closing one does not change it)."""
        cdef list handlers = []
        cdef PyObject *item = self.first_open
        while item != NULL:
            handlers.append(<BaseResponseHandler>item)
            item = (<BaseResponseHandler>item).next_open
        return handlers

    cdef ssize_t _on_request_body_read(self, BaseResponseHandler stream, uint8_t *buf,
                                       size_t length, uint32_t *flags) noexcept:
        try:
            return stream.body.read(buf, length, flags)
        except BaseException as exc:
            stream.fail("body", exc)
            # nghttp2 resets the stream with INTERNAL_ERROR.
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE


cdef void promised_field(PushPromise promise, bytes name, bytes value):
    """A field of a PUSH_PROMISE's request header block."""
    if promise is None:
        return
    if name == b":method":
        promise.method = value
    elif name == b":scheme":
        promise.scheme = value
    elif name == b":authority":
        promise.host = value
    elif name == b":path":
        promise.path = value
    else:
        promise.headers.append((name, value))


# -- C trampolines of request bodies (the rest are Session's, in http2.pxi) ------------

cdef ssize_t cb_request_body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                  size_t length, uint32_t *data_flags,
                                  nghttp2_data_source *source, void *user_data) noexcept:
    return (<ClientSession>user_data)._on_request_body_read(
        <BaseResponseHandler>source.ptr, buf, length, data_flags)


cdef int cb_request_send_data(nghttp2_session *session, nghttp2_frame *frame,
                              const uint8_t *framehd, size_t length,
                              nghttp2_data_source *source, void *user_data) noexcept:
    return (<Session>user_data)._on_send_data((<BaseResponseHandler>source.ptr).body, framehd,
                                              length)
