# ASGIHandler: an ASGI 3 application behind the stream interface.
#
# One ASGIHandler per request, like any BaseRequestHandler: on_headers builds
# the `http` scope (or the `websocket` scope, for a request that opens a
# WebSocket) and starts the application as a task; on_data and
# on_request_done feed its receive(); its send() turns messages into
# send_response / send_info / push. A websocket scope's receive() and send()
# map onto the request's native WebSocket (websocket.pxi) one to one. It never
# asks which protocol carries the request, except to report it in
# scope["http_version"].
#
# Request data flow control: a chunk the application has not received yet is
# buffered, and past ASGI_READ_AHEAD bytes the handler pauses reading, so the
# protocol stops acknowledging data and the client is held back. A
# WebSocket's own flow control holds its client back until the application
# receives its messages.

from libc.string cimport memchr

from asyncio import Task as _Task
from urllib.parse import unquote_to_bytes as _unquote_to_bytes

from nghttp2py.errors import InvalidHeaderError as _InvalidHeaderError


class ClientDisconnected(OSError):
    """Raised by an ASGI ``send()`` once the client has gone (the stream was reset or lost)."""


cdef dict _METHOD_NAMES = {b"GET": "GET", b"POST": "POST", b"HEAD": "HEAD", b"PUT": "PUT",
                           b"DELETE": "DELETE", b"PATCH": "PATCH", b"OPTIONS": "OPTIONS"}
cdef dict _SCHEME_NAMES = {b"http": "http", b"https": "https"}
# Connection-specific fields a WSGI-era framework may still send; an HTTP/2
# message must not carry them (RFC 9113 section 8.2.2), HTTP/1.1 adds its own.
cdef frozenset _HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                                        b"transfer-encoding", b"upgrade", b"te"))


cdef class ASGIConfig:
    """What every request of one ASGI server shares: the app and the scope's fixed parts.

    Built by :func:`nghttp2py.asgi.asgi_handler`; ``state`` is the lifespan
    state (copied into each scope) or None when the app has no lifespan.
    """

    def __init__(self, app, *, str root_path="", server=None, state=None, extensions=None,
                 websocket_extensions=None, websocket_options=None, push_runner=None,
                 bint tls=False):
        self.app = app
        self.root_path = root_path.rstrip("/")
        self.root_path_bytes = self.root_path.encode("utf-8")
        self.server = server
        self.state = state
        self.asgi = {"version": "3.0", "spec_version": "2.4"}
        self.extensions = extensions if extensions is not None else {}
        self.websocket_extensions = websocket_extensions if websocket_extensions is not None \
            else {}
        self.websocket_options = websocket_options if websocket_options is not None else {}
        self.push_runner = push_runner
        self.tls = tls

    cdef dict scope_template(self):
        """The keys of every http scope, with the values that are the same for all."""
        if self.template is None or self.template_server is not self.server:
            self.template_server = self.server
            self.websocket_template = None
            self.template = {
                "type": "http", "asgi": self.asgi, "http_version": None, "method": None,
                "scheme": None, "path": None, "raw_path": None, "query_string": None,
                "root_path": self.root_path, "headers": None, "client": None,
                "server": self.server, "extensions": self.extensions,
            }
        return self.template

    cdef dict websocket_scope_template(self):
        """The keys of every websocket scope, with the values that are the same for all."""
        if self.websocket_template is None or self.template_server is not self.server:
            self.scope_template()
            self.websocket_template = {
                "type": "websocket", "asgi": self.asgi, "http_version": None, "scheme": None,
                "path": None, "raw_path": None, "query_string": None,
                "root_path": self.root_path, "headers": None, "client": None,
                "server": self.server, "subprotocols": None,
                "extensions": self.websocket_extensions,
            }
        return self.websocket_template


cdef class ASGIHandler(BaseRequestHandler):
    """Runs an ASGI 3 application for each request (see docs/asgi.md).

    Not subclassed by hand: :func:`nghttp2py.asgi.asgi_handler` makes a
    subclass whose ``asgi_config`` attribute holds the app.
    """

    # -- the stream's hooks ------------------------------------------------------

    def on_headers(self):
        cdef ASGIConfig config = <ASGIConfig?>type(self).asgi_config
        self.config = config
        config.requests += 1
        if self.upgrade_protocol is not None and self.websocket is not None:
            try:
                websocket_api().handshake(self.protocol.http_version, self.method, self.headers,
                                          None, False)
            except websocket_api().HandshakeError:
                # Not a valid opening handshake: answered (400/426) without the app.
                self._websocket.accept()
                return
            self.flow |= ASGI_WEBSOCKET
            self.scope = scope = self.build_websocket_scope(config)
            coro = self.run_app(config.app(scope, self.websocket_receive, self.websocket_send))
        else:
            self.scope = scope = self.build_scope(config)
            coro = self.run_app(config.app(scope, self.receive, self.send))
        loop = self.protocol.loop
        if loop is config.task_loop:
            # What loop.create_task does without a task factory, minus the
            # "Task-N" name formatted per task.
            self.app_task = _Task(coro, loop=loop, name="asgi")
        else:
            self.app_task = loop.create_task(coro)
            if loop.get_task_factory() is None:
                config.task_loop = loop

    def on_data(self, data):
        if self.flow & ASGI_COMPLETE:
            return  # answered already: the rest of the body is taken and dropped
        if self.request_chunks is None:
            self.request_chunks = [data]
        else:
            self.request_chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= ASGI_READ_AHEAD:
            self.pause_reading()
        self.wake_receiver()

    def on_request_done(self):
        self.flow |= ASGI_BODY_DONE
        self.wake_receiver()

    def on_close(self, error_code):
        self.flow |= ASGI_DISCONNECTED
        if error_code or not (self.flow & ASGI_COMPLETE):
            self.flow |= ASGI_RESET
        self.out_chunks = None
        self.wake_receiver()
        waiter, self.send_waiter = self.send_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ClientDisconnected("the client has gone"))
        self.scope = None

    # -- the scope -----------------------------------------------------------------

    cdef dict build_scope(self, ASGIConfig config):
        method = _METHOD_NAMES.get(self.method)
        if method is None:
            method = self.method.decode("ascii", "replace")
        scheme = _SCHEME_NAMES.get(self.scheme)
        if scheme is None:
            scheme = (self.scheme or b"http").decode("ascii", "replace")
        # A copy of the fixed part, then only existing keys are set: no resizing.
        cdef dict scope = config.scope_template().copy()
        scope["method"] = method
        scope["scheme"] = scheme
        self.fill_scope(scope, config)
        return scope

    cdef dict build_websocket_scope(self, ASGIConfig config):
        cdef dict scope = config.websocket_scope_template().copy()
        scope["scheme"] = "wss" if self.scheme == b"https" or self.scheme == b"wss" else "ws"
        self.fill_scope(scope, config)
        scope["subprotocols"] = websocket_api().offered_subprotocols(scope["headers"])
        return scope

    cdef void fill_scope(self, dict scope, ASGIConfig config) except *:
        """The parts of an http or websocket scope that come from the request."""
        cdef bytes target = self.path if self.path is not None else b"/"
        cdef const char *data = PyBytes_AS_STRING(target)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(target)
        cdef const char *mark = <const char *>memchr(data, b'?', size)
        cdef bytes raw_path = target
        cdef bytes query_string = b""
        if mark != NULL:
            raw_path = PyBytes_FromStringAndSize(data, mark - data)
            query_string = PyBytes_FromStringAndSize(mark + 1, size - (mark - data) - 1)
            size = mark - data
        cdef str path
        if memchr(data, b'%', size) != NULL:
            path = _unquote_to_bytes(raw_path).decode("utf-8", "replace")
        else:
            path = raw_path.decode("utf-8", "replace")
        if config.root_path:
            path = config.root_path + path
            raw_path = config.root_path_bytes + raw_path
        client = self.client_address
        if client is not None and (type(client) is not tuple or len(<tuple>client) != 2):
            client = tuple(client[:2]) if isinstance(client, tuple) and client else None
        scope["http_version"] = self.protocol.http_version
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query_string
        scope["headers"] = self.scope_headers()
        scope["client"] = client
        if config.state is not None:
            scope["state"] = config.state.copy()
        if config.tls:
            scope["extensions"] = dict(scope["extensions"], tls=self.tls_extension())

    cdef list scope_headers(self):
        """Request headers as ASGI wants them: ``host`` (from ``:authority``) first."""
        cdef list headers = self._headers if self._headers is not None else self.build_headers()
        self._headers = headers
        cdef bytes host = self.host
        cdef bytes name
        cdef Py_ssize_t i
        if host is None:
            return headers
        for i in range(len(headers)):
            name = <bytes>(<tuple>headers[i])[0]
            if PyBytes_GET_SIZE(name) == 4 and memcmp(PyBytes_AS_STRING(name), b"host", 4) == 0:
                if (<tuple>headers[i])[1] != host:
                    headers[i] = (b"host", host)
                return headers
        headers.insert(0, (b"host", host))
        return headers

    cdef dict tls_extension(self):
        """The ``tls`` extension of this connection's scope (spec: ASGI TLS extension)."""
        transport = self.protocol.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return None
        chain = []
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            chain.append(_pem_certificate(der))
        certificate = self.client_certificate or {}
        # RFC 4514: the most specific attribute first.
        name = ",".join(f"{_DN_KEYS.get(key, key)}={value}"
                        for rdn in reversed(certificate.get("subject", ()))
                        for key, value in rdn) or None
        cipher = ssl_object.cipher()
        return {
            "server_cert": None,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": None,
            "tls_version": _TLS_VERSIONS.get(ssl_object.version()),
            "cipher_suite": None,
            "cipher_name": cipher[0] if cipher else None,
        }

    # -- receive -------------------------------------------------------------------

    async def receive(self):
        """The ASGI ``receive``: the next ``http.request`` chunk, else ``http.disconnect``."""
        while not self.message_ready():
            # A future per caller: frameworks may wait in two tasks at once (a
            # disconnect listener beside the body reader), and cancelling one
            # must not wake the other.
            waiter = self.protocol.loop.create_future()
            if self.receive_waiters is None:
                self.receive_waiters = []
            self.receive_waiters.append(waiter)
            try:
                await waiter
            finally:
                if self.receive_waiters is not None and waiter in self.receive_waiters:
                    self.receive_waiters.remove(waiter)
        return self.next_message()

    cdef bint message_ready(self):
        if self.flow & ASGI_RESET:
            return True
        if self.request_chunks is not None:
            return True
        if not (self.flow & ASGI_BODY_SENT):
            return bool(self.flow & ASGI_BODY_DONE)
        return bool(self.flow & ASGI_DISCONNECTED)

    cdef dict next_message(self):
        cdef list chunks
        cdef bytes body
        if self.flow & ASGI_RESET:
            return {"type": "http.disconnect"}
        if self.request_chunks is not None:
            chunks, self.request_chunks = self.request_chunks, None
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.buffered = 0
            if self.state & READING_PAUSED:
                # What the client sent meanwhile arrives now, and may end the body.
                self.resume_reading()
            if self.request_chunks is None and self.flow & ASGI_BODY_DONE:
                self.flow |= ASGI_BODY_SENT
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.request", "body": body, "more_body": True}
        if not (self.flow & ASGI_BODY_SENT):
            self.flow |= ASGI_BODY_SENT
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    cdef void wake_receiver(self) except *:
        waiters, self.receive_waiters = self.receive_waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- send ------------------------------------------------------------------------

    def send(self, dict message):
        """The ASGI ``send``: an awaitable, done once the message is taken."""
        kind = message["type"]
        if kind == "http.response.body":
            return self.send_body(message)
        if kind == "http.response.start":
            if self.flow & ASGI_STARTED:
                raise RuntimeError("http.response.start sent twice")
            if self.flow & ASGI_RESET:
                raise ClientDisconnected("the client has gone")
            self.response_status = message["status"]
            self.response_headers = message.get("headers")
            if message.get("trailers", False):
                self.flow |= ASGI_TRAILERS
            self.flow |= ASGI_STARTED
            return _done()
        if kind == "http.response.trailers":
            return self.send_trailers(message)
        if kind == "http.response.early_hint":
            if not (self.flow & (ASGI_STARTED | ASGI_DISCONNECTED)):
                self.send_info(103, [(b"link", link) for link in message.get("links", ())])
            return _done()
        if kind == "http.response.push":
            return self.config.push_runner(self, message["path"], message.get("headers", ()))
        if kind == "http.response.pathsend":
            return self.send_path(message["path"])
        raise RuntimeError(f"unexpected ASGI message {kind!r} on an http connection")

    cdef object send_body(self, dict message):
        body = message.get("body", b"")
        cdef bint more = message.get("more_body", False)
        if not (self.flow & ASGI_STARTED):
            raise RuntimeError("http.response.body sent before http.response.start")
        if self.flow & ASGI_COMPLETE:
            if self.flow & ASGI_RESET:
                raise ClientDisconnected("the client has gone")
            raise RuntimeError("http.response.body sent after the last one")
        if self.flow & ASGI_RESET:
            raise ClientDisconnected("the client has gone")
        if not (self.flow & ASGI_STREAMING):
            if not more and not (self.flow & ASGI_TRAILERS):
                # The whole body in one message: one response, nothing streamed.
                self.flow |= ASGI_COMPLETE
                self.respond(body)
                self.response_complete()
                return _done()
            self.flow |= ASGI_STREAMING
            self.out_chunks = []
            self.respond(self.pull_body)
        if body:
            if self.out_chunks is not None and self.body is not None:
                self.out_chunks.append(bytes(body))
                self.out_bytes += len(body)
        if not more:
            self.flow |= ASGI_BODY_END
            if not (self.flow & ASGI_TRAILERS):
                self.response_complete()
        if self.body is not None:
            self.resume()
        if self.out_bytes > ASGI_WRITE_AHEAD:
            self.send_waiter = self.protocol.loop.create_future()
            return self.send_waiter
        return _done()

    cdef object send_trailers(self, dict message):
        if not (self.flow & ASGI_TRAILERS) or not (self.flow & ASGI_BODY_END):
            raise RuntimeError("http.response.trailers needs 'trailers': True in "
                               "http.response.start and comes after the last body message")
        if self.flow & ASGI_COMPLETE:
            raise RuntimeError("http.response.trailers sent after the last one")
        if self.trailer_fields is None:
            self.trailer_fields = []
        self.trailer_fields.extend(message.get("headers", ()))
        if not message.get("more_trailers", False):
            self.response_complete()
            if self.body is not None and self.trailer_fields:
                self.trailer_block = trailer_header_block(
                    [(bytes(name).lower(), value) for name, value in self.trailer_fields])
            if self.body is not None:
                self.resume()
        return _done()

    cdef object send_path(self, path):
        if not (self.flow & ASGI_STARTED) or self.flow & (ASGI_STREAMING | ASGI_COMPLETE):
            raise RuntimeError("http.response.pathsend comes once, after http.response.start")
        self.flow |= ASGI_COMPLETE
        self.respond(open(path, "rb"))
        self.response_complete()
        return _done()

    cdef void response_complete(self) except *:
        """The response is whole: a client still sending is no longer held back."""
        self.flow |= ASGI_COMPLETE
        if self.state & READING_PAUSED and not (self.state & STREAM_CLOSED):
            self.resume_reading()

    cdef void respond(self, body) except *:
        """send_response with the app's start message; hop-by-hop fields dropped, names lowered."""
        try:
            self.send_response(self.response_status, self.response_headers, body)
        except _InvalidHeaderError:
            if self.state & RESPONSE_STARTED:
                raise
            self.send_response(self.response_status,
                               _clean_headers(self.response_headers), body)

    def pull_body(self, size_t size):
        """The streamed response body, as the engine pulls it: ``(data, flag)``."""
        cdef list chunks = self.out_chunks
        cdef bytes data
        if chunks:
            data = chunks.pop(0)
            self.out_bytes -= len(data)
            if self.send_waiter is not None and self.out_bytes <= ASGI_WRITE_AHEAD:
                waiter, self.send_waiter = self.send_waiter, None
                if not waiter.done():
                    waiter.set_result(None)
            if not chunks and self.flow & ASGI_COMPLETE:
                return data, DATA_EOF
            return data, DATA_OK
        if self.flow & ASGI_COMPLETE:
            return b"", DATA_EOF
        return b"", DATA_DEFERRED

    # -- the websocket scope ----------------------------------------------------------

    async def websocket_receive(self):
        """A websocket scope's ``receive``: connect, then messages, then disconnect."""
        cdef WebSocket ws = self._websocket
        if not (self.flow & ASGI_WS_CONNECT):
            self.flow |= ASGI_WS_CONNECT
            return {"type": "websocket.connect"}
        while ws.state == WS_CONNECTING \
                and not (self.flow & (ASGI_DISCONNECTED | ASGI_STARTED | ASGI_WS_CLOSED)):
            # Asked again before accepting: the answer waits for the app's accept.
            waiter = self.protocol.loop.create_future()
            if self.receive_waiters is None:
                self.receive_waiters = []
            self.receive_waiters.append(waiter)
            try:
                await waiter
            finally:
                if self.receive_waiters is not None and waiter in self.receive_waiters:
                    self.receive_waiters.remove(waiter)
        if not (self.flow & ASGI_WS_ACCEPTED):
            # Refused, or the client went away first: it never opened.
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        try:
            message = await ws.receive()
        except websocket_api().WebSocketClosed as closed:
            return {"type": "websocket.disconnect", "code": closed.code, "reason": closed.reason}
        if type(message) is str:
            return {"type": "websocket.receive", "bytes": None, "text": message}
        return {"type": "websocket.receive", "bytes": message, "text": None}

    def websocket_send(self, dict message):
        """A websocket scope's ``send``: an awaitable, done once the message is taken.

        ``websocket.send`` waits while the WebSocket's output is above its
        ``write_limit`` (a client that does not read).
        """
        cdef WebSocket ws = self._websocket
        kind = message["type"]
        if kind == "websocket.send":
            if not (self.flow & ASGI_WS_ACCEPTED):
                raise RuntimeError("websocket.send before websocket.accept")
            if ws.state != WS_OPEN:
                if self.flow & ASGI_WS_CLOSED:
                    raise RuntimeError("websocket.send after websocket.close")
                raise ClientDisconnected(f"the WebSocket is closed ({ws._close_code})")
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
                if data is None:
                    raise ValueError("websocket.send needs 'bytes' or 'text'")
            return ws.send(data)
        if kind == "websocket.accept":
            if self.flow & (ASGI_WS_ACCEPTED | ASGI_WS_CLOSED | ASGI_STARTED):
                raise RuntimeError("websocket.accept after the WebSocket was answered")
            if self.flow & ASGI_DISCONNECTED:
                raise ClientDisconnected("the client has gone")
            headers = message.get("headers")
            ws.accept(message.get("subprotocol"), _clean_headers(headers) if headers else None,
                      **self.config.websocket_options)
            self.flow |= ASGI_WS_ACCEPTED
            self.wake_receiver()
            return _done()
        if kind == "websocket.close":
            return self.websocket_close(message)
        if kind == "websocket.http.response.start":
            if self.flow & (ASGI_WS_ACCEPTED | ASGI_WS_CLOSED | ASGI_STARTED):
                raise RuntimeError("websocket.http.response.start after the WebSocket was "
                                   "answered")
            if self.flow & ASGI_DISCONNECTED:
                raise ClientDisconnected("the client has gone")
            self.response_status = message["status"]
            self.response_headers = message.get("headers")
            self.flow |= ASGI_STARTED
            self.wake_receiver()
            return _done()
        if kind == "websocket.http.response.body":
            return self.send_body(message)
        raise RuntimeError(f"unexpected ASGI message {kind!r} on a websocket connection")

    cdef object websocket_close(self, dict message):
        """``websocket.close``: ``403`` before accept, else the closing handshake."""
        cdef WebSocket ws = self._websocket
        if self.flow & ASGI_STARTED:
            raise RuntimeError("websocket.close after websocket.http.response.start")
        code = message.get("code")
        reason = message.get("reason")
        if not (self.flow & ASGI_WS_ACCEPTED):
            if not (self.flow & (ASGI_WS_CLOSED | ASGI_DISCONNECTED)):
                self.flow |= ASGI_WS_CLOSED
                ws.close(1000 if code is None else code, reason or "")
                self.response_complete()
                self.wake_receiver()
            return _done()
        if ws.state == WS_OPEN:
            ws.close(1000 if code is None else code, reason or "")
        self.flow |= ASGI_WS_CLOSED
        return _done()

    def can_push(self):
        """Whether a push from this stream would reach the client (else: 103 Early Hints)."""
        return self.protocol.push_enabled() and not (self.state & (STREAM_CLOSED | PUSHED))

    # -- the end ---------------------------------------------------------------------

    async def run_app(self, app_call):
        """The app's task: run it, then answer an app that failed or sent no response."""
        try:
            await app_call
        except _CancelledError:
            self.app_task = None
            raise
        except BaseException as exc:  # KeyboardInterrupt too: see process_failures
            self.app_task = None
            self.app_finished(exc)
        else:
            self.app_task = None
            if not (self.flow & ASGI_COMPLETE) or self.flow & ASGI_WEBSOCKET:
                self.app_finished(None)

    cdef void app_finished(self, object exception) except *:
        self.config = None
        if self.flow & ASGI_WEBSOCKET and self.websocket_finished(exception):
            return
        if exception is None and not (self.state & STREAM_CLOSED):
            exception = RuntimeError(
                "the ASGI app returned without sending a response" if not
                (self.flow & (ASGI_STREAMING | ASGI_COMPLETE))
                else "the ASGI app returned without finishing its response")
        if exception is None:
            return
        if self.flow & ASGI_COMPLETE and not (self.flow & ASGI_RESET):
            # The response went out whole (a background task failed after it).
            _logger.error("ASGI app raised after its response on stream %d from %s",
                          self.stream_id, self.client_address, exc_info=exception)
            return
        if isinstance(exception, ClientDisconnected) and self.flow & ASGI_RESET:
            return  # the app saw the client go: nothing to answer
        if self.state & STREAM_CLOSED:
            _logger.error("ASGI app raised on stream %d from %s", self.stream_id,
                          self.client_address, exc_info=exception)
            return
        self.fail("app", exception)
        self.protocol.after_app_work()

    cdef bint websocket_finished(self, object exception) except -1:
        """The app of a websocket scope ended: close what it left open.

        True when that is all; False leaves an app that neither accepted nor
        refused the WebSocket (or failed during a websocket.http.response) to
        the http rules: 500 before the response, a reset after.
        """
        cdef WebSocket ws = self._websocket
        if isinstance(exception, ClientDisconnected) \
                and (ws.state != WS_OPEN or self.flow & ASGI_DISCONNECTED):
            # Our send() told the app the client had gone (or was going): the
            # spec has the server not log it.
            exception = None
        if self.flow & ASGI_WS_ACCEPTED:
            if exception is not None:
                _logger.error("ASGI app raised on WebSocket stream %d from %s", self.stream_id,
                              self.client_address, exc_info=exception)
            if ws.state == WS_OPEN:
                # RFC 6455 7.4.1: 1011 for a server error, else a normal closure.
                ws.close(1000 if exception is None else 1011, "")
                self.protocol.after_app_work()
            return True
        if exception is None and self.flow & ASGI_COMPLETE:
            return True  # refused with a whole websocket.http.response
        if self.flow & ASGI_WS_CLOSED:
            if exception is not None:
                _logger.error("ASGI app raised after refusing the WebSocket on stream %d "
                              "from %s", self.stream_id, self.client_address,
                              exc_info=exception)
            return True
        if exception is None and not (self.flow & ASGI_STARTED) \
                and not (self.state & STREAM_CLOSED):
            self.fail("app", RuntimeError(
                "the ASGI app returned without accepting or refusing the WebSocket"))
            self.protocol.after_app_work()
            return True
        return False


cdef object _done_future = None


cdef object _done():
    """An awaitable that is already done (one finished future, shared)."""
    global _done_future
    if _done_future is None:
        _done_future = _DoneAwaitable()
    return _done_future


cdef class _DoneAwaitable:
    """``await`` finishes at once, with None."""

    def __await__(self):
        return iter(())


cdef dict _TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
cdef dict _DN_KEYS = {"commonName": "CN", "organizationName": "O",
                      "organizationalUnitName": "OU", "countryName": "C",
                      "stateOrProvinceName": "ST", "localityName": "L",
                      "domainComponent": "DC", "userId": "UID"}


cdef str _pem_certificate(bytes der):
    import ssl as _ssl
    return _ssl.DER_cert_to_PEM_cert(der)


cdef list _clean_headers(object headers):
    """The app's response fields with names lower-cased and connection fields dropped."""
    cdef list cleaned = []
    for name, value in headers or ():
        name = bytes(name).lower() if not isinstance(name, str) else name.lower().encode()
        if name not in _HOP_BY_HOP:
            cleaned.append((name, value))
    return cleaned
