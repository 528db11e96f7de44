# WebSocket (RFC 6455) messages on a request stream, whatever carries it.
#
# A WebSocket sits on one BaseRequestHandler and talks only to its stream and
# the stream interface: the protocol hands it the stream's bytes
# (handler.data_received -> feed), it returns their flow-control credit
# (HTTPProtocol.consume) once the application has taken the messages, and its
# frames leave as the response body (WebSocketOutput, a BodySource the
# protocol pulls as the peer's window allows). Over HTTP/2 (RFC 8441) the
# stream is an extended CONNECT; HTTP/1.1's upgrade gives the same object.
#
# Frames are parsed, unmasked and checked (UTF-8 included) here in C, per
# chunk as it arrives; Python runs once per message (to build the str or
# bytes and deliver it) and for permessage-deflate (zlib).

import zlib as _zlib

# nghttp2py.websocket, imported with the first WebSocket (a client never needs it).
cdef object _websocket_api = None


cdef object websocket_api():
    global _websocket_api
    if _websocket_api is None:
        from nghttp2py import websocket
        _websocket_api = websocket
    return _websocket_api

# The deflate tail a sender strips from each compressed message (RFC 7692 7.2.1).
cdef bytes _DEFLATE_TAIL = b"\x00\x00\xff\xff"
# Messages shorter than this are sent uncompressed: zlib would not make them
# smaller enough to pay for its time.
cdef Py_ssize_t COMPRESS_MIN_SIZE = 128
# A message buffer larger than this is freed after its message, not kept.
cdef size_t KEEP_BUFFER = 65536
# A payload this large is sent from the application's str or bytes, not copied.
cdef size_t LEND_MIN_SIZE = 65536
cdef str _CLOSE_REASON_TOO_LONG = "a close reason is at most 123 bytes of UTF-8"


# -- UTF-8, checked incrementally as fragments arrive (RFC 3629 section 4) --------
#
# The state packs how many continuation bytes are still expected and the range
# the next one must fall in (the first continuation byte after E0, ED, F0 and
# F4 is narrower: no overlong forms, no surrogates, nothing above U+10FFFF).

cdef inline uint32_t _utf8_expect(uint32_t count, uint32_t low, uint32_t high) noexcept nogil:
    return count | (low << 8) | (high << 16)


cdef int utf8_check(uint32_t *state, const uint8_t *text, size_t length) noexcept nogil:
    """Advance ``state`` over ``text``; -1 as soon as the bytes cannot be UTF-8."""
    cdef uint32_t s = state[0]
    cdef size_t i = 0
    cdef uint64_t word
    cdef uint8_t c
    while i < length:
        if s == 0:
            # ASCII runs, eight bytes at a time.
            while i + 8 <= length:
                memcpy(&word, text + i, 8)
                if word & 0x8080808080808080ULL:
                    break
                i += 8
            if i == length:
                break
            c = text[i]
            i += 1
            if c < 0x80:
                continue
            if 0xC2 <= c <= 0xDF:
                s = _utf8_expect(1, 0x80, 0xBF)
            elif c == 0xE0:
                s = _utf8_expect(2, 0xA0, 0xBF)
            elif c == 0xED:
                s = _utf8_expect(2, 0x80, 0x9F)
            elif 0xE1 <= c <= 0xEF:
                s = _utf8_expect(2, 0x80, 0xBF)
            elif c == 0xF0:
                s = _utf8_expect(3, 0x90, 0xBF)
            elif 0xF1 <= c <= 0xF3:
                s = _utf8_expect(3, 0x80, 0xBF)
            elif c == 0xF4:
                s = _utf8_expect(3, 0x80, 0x8F)
            else:
                return -1
        else:
            c = text[i]
            i += 1
            if c < ((s >> 8) & 0xFF) or c > (s >> 16):
                return -1
            s = _utf8_expect((s & 0xFF) - 1, 0x80, 0xBF) if (s & 0xFF) > 1 else 0
    state[0] = s
    return 0


cdef void unmask(uint8_t *out, const uint8_t *data, size_t length, const uint8_t *mask,
                 uint64_t offset) noexcept nogil:
    """XOR ``data`` with the 4-byte ``mask``, starting ``offset`` bytes into the payload."""
    cdef uint8_t key[8]
    cdef uint64_t word, key_word
    cdef uint64_t w0, w1, w2, w3
    cdef size_t i = 0
    cdef int j
    for j in range(8):
        key[j] = mask[(offset + j) & 3]
    memcpy(&key_word, key, 8)
    # 32 bytes a turn in four words, which the compiler pairs into 16-byte
    # vector XORs (an array instead would make it go through the stack).
    while i + 32 <= length:
        memcpy(&w0, data + i, 8)
        memcpy(&w1, data + i + 8, 8)
        memcpy(&w2, data + i + 16, 8)
        memcpy(&w3, data + i + 24, 8)
        w0 ^= key_word
        w1 ^= key_word
        w2 ^= key_word
        w3 ^= key_word
        memcpy(out + i, &w0, 8)
        memcpy(out + i + 8, &w1, 8)
        memcpy(out + i + 16, &w2, 8)
        memcpy(out + i + 24, &w3, 8)
        i += 32
    while i + 8 <= length:
        memcpy(&word, data + i, 8)
        word ^= key_word
        memcpy(out + i, &word, 8)
        i += 8
    while i < length:
        out[i] = data[i] ^ key[i & 7]
        i += 1


cdef size_t frame_head(uint8_t *head, int opcode, size_t size, bint compressed) noexcept:
    """Write a server frame's header (final, unmasked) into ``head``; its length."""
    cdef int i
    head[0] = 0x80 | opcode | (0x40 if compressed else 0)
    if size < 126:
        head[1] = <uint8_t>size
        return 2
    if size < 65536:
        head[1] = 126
        head[2] = <uint8_t>(size >> 8)
        head[3] = <uint8_t>size
        return 4
    head[1] = 127
    for i in range(8):
        head[2 + i] = <uint8_t>(<uint64_t>size >> (56 - 8 * i))
    return 10


cdef bint valid_close_code(int code) noexcept:
    """A close code a peer may send (RFC 6455 7.4.1, and the IANA registry's 1012-1014)."""
    return (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999)


cdef class _Ready:
    """The awaitable ``send()`` returns while the output is below the write limit."""

    def __await__(self):
        return iter(())


cdef _Ready _READY = _Ready()


cdef class WebSocketOutput(BodySource):
    """The frames a WebSocket sends, pulled by its protocol as the peer reads them.

    Frames are copied into one buffer, except the payload of a large message,
    which is lent: the output keeps a reference to the application's str or
    bytes and sends from it (one lent payload at a time; another is copied).
    """

    def __dealloc__(self):
        free(self.data)

    cdef size_t pending(self) noexcept:
        """Bytes not yet taken by the protocol, lent payload included."""
        return self.end - self.start + self.lent_size - self.lent_offset

    cdef int append(self, const uint8_t *head, size_t head_size, const char *payload,
                    size_t size) except -1:
        cdef size_t pending = self.end - self.start
        cdef size_t needed = pending + head_size + size
        cdef size_t capacity
        cdef char *grown
        if self.end + head_size + size > self.capacity:
            if needed <= self.capacity:
                memmove(self.data, self.data + self.start, pending)
            else:
                capacity = self.capacity * 2 if self.capacity else 4096
                while capacity < needed:
                    capacity *= 2
                grown = <char *>malloc(capacity)
                if grown == NULL:
                    raise MemoryError()
                if pending:
                    memcpy(grown, self.data + self.start, pending)
                free(self.data)
                self.data = grown
                self.capacity = capacity
            if self.lent_offset < self.lent_size:
                self.lent_at -= self.start
            self.start = 0
            self.end = pending
        memcpy(self.data + self.end, head, head_size)
        self.end += head_size
        if size:
            memcpy(self.data + self.end, payload, size)
            self.end += size
        return 0

    cdef int lend(self, const uint8_t *head, size_t head_size, object owner,
                  const char *payload, size_t size) except -1:
        """Queue a frame whose payload stays in ``owner`` (an immutable str or bytes)."""
        if self.lent_offset < self.lent_size:
            return self.append(head, head_size, payload, size)
        self.append(head, head_size, NULL, 0)
        self.lent = owner
        self.lent_data = payload
        self.lent_at = self.end
        self.lent_offset = 0
        self.lent_size = size
        return 0

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        cdef size_t pending = self.pending()
        cdef size_t ready, n
        cdef bint lent = self.lent_offset < self.lent_size
        if lent and self.start == self.lent_at:
            ready = self.lent_size - self.lent_offset
        elif lent:
            ready = self.lent_at - self.start
        else:
            if self.lent is not None:
                self.lent = None  # its last bytes were taken (and copied) already
                self.lent_data = NULL
                self.lent_offset = self.lent_size = 0
            ready = pending
        if pending == 0:
            if self.eof:
                flags[0] |= NGHTTP2_DATA_FLAG_EOF
                return 0
            self.deferred = True
            return NGHTTP2_ERR_DEFERRED
        n = ready if ready <= size else size
        if n == pending and self.eof:
            flags[0] |= NGHTTP2_DATA_FLAG_EOF
        self.taking_lent = lent and self.start == self.lent_at
        if n >= NO_COPY_THRESHOLD:
            flags[0] |= NGHTTP2_DATA_FLAG_NO_COPY  # take() follows at once
        else:
            memcpy(buf, self.take(n), n)
            self.taken()
        if self.websocket is not None:
            self.websocket.output_drained(pending - n)
        return n

    cdef const char *take(self, size_t size):
        cdef const char *data
        if self.taking_lent:
            data = self.lent_data + self.lent_offset
            self.lent_offset += size
            return data
        data = self.data + self.start
        self.start += size
        return data

    cdef void taken(self) noexcept:
        """After a copy out: an empty buffer starts again at 0, and a large one is freed."""
        if self.start == self.end:
            if self.lent_offset < self.lent_size:
                self.lent_at = 0
            self.start = self.end = 0
            if self.capacity > KEEP_BUFFER:
                free(self.data)
                self.data = NULL
                self.capacity = 0

    cdef void close(self) noexcept:
        free(self.data)
        self.data = NULL
        self.start = self.end = self.capacity = 0
        self.lent = None
        self.lent_data = NULL
        self.lent_at = self.lent_offset = self.lent_size = 0
        self.eof = True
        self.websocket = None


cdef class WebSocket:
    """A WebSocket (RFC 6455) on one request stream: an HTTP/2 extended CONNECT
    (RFC 8441) or an HTTP/1.1 ``Upgrade: websocket``, the same either way.

    Get it from :attr:`BaseRequestHandler.websocket` and call :meth:`accept`
    (or :meth:`close`, which refuses it with ``403``). Then send with
    :meth:`send`, and receive either with an ``on_message(message)`` hook on
    the handler (a plain or ``async def`` method, called once per message, in
    order) or with ``await ws.receive()`` / ``async for message in ws``.
    Messages are ``str`` (text) or ``bytes`` (binary).

    Flow control works both ways: the credit of received bytes goes back to
    the client only as the application takes the messages, so an application
    that does not receive holds back this WebSocket's client only (its HTTP/2
    stream's window, or the reading of its HTTP/1.1 connection); and
    ``await ws.send(...)`` waits while more than ``write_limit`` bytes are
    waiting for a client that does not read.
    """

    def __init__(self):
        raise TypeError("a WebSocket comes from BaseRequestHandler.websocket")

    def __dealloc__(self):
        free(self.message)

    # -- the application's API -------------------------------------------------------

    @property
    def state(self):
        """``"CONNECTING"``, ``"OPEN"``, ``"CLOSING"`` (our close frame sent) or ``"CLOSED"``."""
        return ("CONNECTING", "OPEN", "CLOSING", "CLOSED")[self.state]

    @property
    def closed(self):
        """True once the WebSocket is closed (or refused)."""
        return self.state == WS_CLOSED

    @property
    def close_code(self):
        """The close code (RFC 6455 7.4) once closing or closed, else None.

        The peer's when it closed first, ours when we did; ``1006`` if the
        stream ended without a close frame, ``1005`` for a close frame without
        a code.
        """
        return self._close_code

    @property
    def close_reason(self):
        """The text sent with the close code (``""`` if none)."""
        return self._close_reason

    @property
    def buffered_amount(self):
        """Bytes of frames sent but not yet taken by the peer's flow control."""
        return self.output.pending() if self.output is not None else 0

    @property
    def request(self):
        """The handler of the request that opened this WebSocket; None once its stream
        has closed and no ``on_message`` of it runs (the handler holds its WebSocket:
        the WebSocket lets go of it then, so that no cycle outlives the stream)."""
        return self.stream

    def accept(self, subprotocol=None, headers=None, *, bint compression=True,
               Py_ssize_t max_message_size=1 << 20, ping_interval=None,
               double ping_timeout=20.0, double close_timeout=10.0,
               Py_ssize_t write_limit=65536):
        """Accept the WebSocket: answer ``200`` (HTTP/2; ``101`` on HTTP/1.1).

        ``subprotocol`` must be one the client offered in
        ``sec-websocket-protocol``; ``headers`` are extra response fields.
        ``compression``: accept permessage-deflate if the client offers it.
        A message larger than ``max_message_size`` bytes (decompressed)
        closes the WebSocket with ``1009``. ``ping_interval`` (seconds, None:
        off) sends a ping that often; without a pong within ``ping_timeout``
        the WebSocket is closed with ``1011`` (and the stream reset if the
        client does not answer that either).
        ``close_timeout``: how long to wait for the client's side of the
        closing handshake before resetting the stream. ``await send()``
        waits while more than ``write_limit`` bytes wait to be sent.

        Returns the WebSocket. An invalid handshake is answered with ``400``
        (or ``426`` for a wrong ``sec-websocket-version``) instead, and the
        WebSocket returned is closed (``close_code`` 1002): ``receive()``
        raises :class:`WebSocketClosed` and ``async for`` ends at once.
        """
        cdef BaseRequestHandler stream = self.stream
        if self.state != WS_CONNECTING:
            raise ResponseStateError("the WebSocket was already accepted or closed")
        if stream.state & RESPONSE_STARTED:
            raise ResponseStateError("a response was already sent on this stream")
        try:
            status, response, deflate = websocket_api().handshake(
                stream.http_version, stream.method, stream.headers, subprotocol, compression)
        except websocket_api().HandshakeError as error:
            self.state = WS_CLOSED
            self._close_code = 1002
            self._close_reason = str(error)
            _logger.info("refused WebSocket on stream %d from %s: %s", stream.stream_id,
                         stream.client_address, error)
            stream.send_response(error.status, error.headers + [(b"content-type", b"text/plain")],
                                 str(error) + "\n")
            return self
        if headers:
            response.extend(headers)
        self.max_message_size = max_message_size
        self.write_limit = write_limit
        self.ping_interval = ping_interval or 0.0
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.subprotocol = subprotocol
        if deflate is not None:
            self.extensions = deflate.response()
            self.inflate_bits = deflate.client_window_bits
            self.deflate_bits = deflate.server_window_bits
            self.reset_inflater = deflate.client_no_context_takeover
            self.reset_deflater = deflate.server_no_context_takeover
            self.inflater = _zlib.decompressobj(-self.inflate_bits)
            self.deflater = self.new_deflater()
        self.output = WebSocketOutput.__new__(WebSocketOutput)
        self.output.length = -1
        self.output.websocket = self
        self.messages = _deque()
        self.drain_waiters = []
        self.has_hook = getattr(type(stream), "on_message") is not BaseRequestHandler.on_message
        stream.start_response(status, response_header_block(status, response, -1), self.output)
        self.state = WS_OPEN
        self.reading = True
        if self.ping_interval > 0:
            self.ping_timer = stream.protocol.loop.call_later(self.ping_interval, self._keepalive)
        return self

    def send(self, message):
        """Send ``message``: ``str`` as a text message, bytes-like as a binary one.

        Returns an awaitable: ``await ws.send(m)`` waits until the peer has
        taken enough of the output that less than ``write_limit`` bytes wait;
        a synchronous caller may ignore it. Raises :class:`WebSocketClosed`
        once the WebSocket is closing or closed.
        """
        cdef const char *data
        cdef Py_ssize_t size
        cdef int opcode
        cdef Py_buffer view
        if self.state != WS_OPEN:
            raise self.closed_error()
        if isinstance(message, str):
            data = PyUnicode_AsUTF8AndSize(message, &size)
            opcode = WS_TEXT
            if self.deflater is not None and size >= COMPRESS_MIN_SIZE:
                self.send_compressed(opcode, PyBytes_FromStringAndSize(data, size))
            else:
                self.send_lent(opcode, message, data, size, False)
        elif isinstance(message, bytes):
            if self.deflater is not None and PyBytes_GET_SIZE(message) >= COMPRESS_MIN_SIZE:
                self.send_compressed(WS_BINARY, message)
            else:
                self.send_lent(WS_BINARY, message, PyBytes_AS_STRING(message),
                               PyBytes_GET_SIZE(message), False)
        else:
            PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
            try:
                if self.deflater is not None and view.len >= COMPRESS_MIN_SIZE:
                    self.send_compressed(WS_BINARY, message)
                else:
                    self.send_frame(WS_BINARY, <const char *>view.buf, view.len, False)
            finally:
                PyBuffer_Release(&view)
        if self.output.pending() <= <size_t>self.write_limit:
            return _READY
        waiter = self.stream.protocol.loop.create_future()
        self.drain_waiters.append(waiter)
        return waiter

    def ping(self, data=b""):
        """Send a ping with ``data`` (at most 125 bytes); the client answers with a pong."""
        cdef bytes payload = bytes(data)
        if len(payload) > 125:
            raise ValueError("a ping carries at most 125 bytes")
        if self.state != WS_OPEN:
            raise self.closed_error()
        self.send_frame(WS_PING, PyBytes_AS_STRING(payload), len(payload), False)

    def close(self, int code=1000, str reason=""):
        """Start the closing handshake with ``code`` and ``reason``.

        Before :meth:`accept`, refuses the WebSocket with ``403 Forbidden``.
        The stream ends once the client has answered with its close frame (or
        after ``close_timeout``). Closing again does nothing.
        """
        if self.state == WS_CONNECTING:
            self.state = WS_CLOSED
            self._close_code = code
            self._close_reason = reason
            self.stream.send_response(403, [(b"content-type", b"text/plain")], "Forbidden\n")
            return
        if self.state != WS_OPEN:
            return
        if not (code == 1000 or 3000 <= code <= 4999 or valid_close_code(code)):
            raise ValueError(f"{code} is not a close code an endpoint may send")
        if len(reason.encode("utf-8")) > 123:
            raise ValueError(_CLOSE_REASON_TOO_LONG)
        self._close_code = code
        self._close_reason = reason
        self.send_close(code, reason)
        self.state = WS_CLOSING
        self.start_close_timer()
        self.wake()

    async def receive(self):
        """The next message (``str`` or ``bytes``); raises :class:`WebSocketClosed` at the end.

        Not for use together with an ``on_message`` hook.
        """
        while not self.messages:
            if self.state == WS_CONNECTING:
                raise ResponseStateError("accept() the WebSocket before receiving")
            if not self.reading or self.state == WS_CLOSED:
                raise self.closed_error()
            if self.waiter is None or self.waiter.done():
                self.waiter = self.stream.protocol.loop.create_future()
            await self.waiter
        message = self.messages.popleft()
        if not self.messages and self.stream is not None:
            self.release_credit()
            self.stream.protocol.after_app_work()
        return message

    def __aiter__(self):
        return self

    async def __anext__(self):
        """The next message; the iteration ends when the WebSocket closes."""
        try:
            return await self.receive()
        except websocket_api().WebSocketClosed:
            raise StopAsyncIteration from None

    async def drain(self):
        """Wait until less than ``write_limit`` bytes of output wait for the client."""
        if self.output is not None and self.output.pending() > <size_t>self.write_limit \
                and self.state != WS_CLOSED:
            waiter = self.stream.protocol.loop.create_future()
            self.drain_waiters.append(waiter)
            await waiter

    # -- reading frames ----------------------------------------------------------

    cdef int feed(self, const uint8_t *data, size_t length) except -1:
        """Bytes of the stream: frames, parsed as they come."""
        cdef size_t position = 0, n
        cdef uint8_t lengthcode
        self.held += length
        while position < length and self.reading:
            if self.in_payload:
                n = length - position
                if n > self.frame_remaining:
                    n = <size_t>self.frame_remaining
                self.frame_payload(data + position, n)
                position += n
                if self.frame_remaining == 0 and self.reading:
                    self.end_frame()
                continue
            n = self.header_needed - self.header_length
            if n > length - position:
                n = length - position
            memcpy(self.header + self.header_length, data + position, n)
            self.header_length += n
            position += n
            if self.header_length < self.header_needed:
                break
            if self.header_needed == 2:
                if not (self.header[1] & 0x80):
                    self.fail(1002, "client frames must be masked")
                    break
                lengthcode = self.header[1] & 0x7F
                self.header_needed = 6 + (2 if lengthcode == 126 else
                                          8 if lengthcode == 127 else 0)
                continue
            self.begin_frame()
            if self.reading and self.frame_remaining == 0:
                self.end_frame()
        if not self.reading or (not self.messages and self.hook_task is None):
            self.release_credit()
        return 0

    cdef int begin_frame(self) except -1:
        cdef uint8_t first = self.header[0]
        cdef uint8_t lengthcode = self.header[1] & 0x7F
        cdef uint64_t length = lengthcode
        cdef int i
        cdef bint rsv1 = first & 0x40
        if lengthcode == 126:
            length = (<uint64_t>self.header[2] << 8) | self.header[3]
        elif lengthcode == 127:
            length = 0
            for i in range(2, 10):
                length = (length << 8) | self.header[i]
            if length >> 63:
                return self.fail(1002, "frame length out of range")
        memcpy(self.mask, self.header + self.header_needed - 4, 4)
        self.header_length = 0
        self.header_needed = 2
        self.opcode = first & 0x0F
        self.fin = first & 0x80
        self.frame_remaining = length
        self.frame_offset = 0
        self.in_payload = True
        if first & 0x30 or (rsv1 and (self.inflater is None or self.opcode == WS_CONTINUATION
                                      or self.opcode >= WS_CLOSE)):
            return self.fail(1002, "reserved bits set")
        if self.opcode >= WS_CLOSE:
            if self.opcode > WS_PONG:
                return self.fail(1002, f"unknown opcode {self.opcode}")
            if not self.fin or length > 125:
                return self.fail(1002, "control frames are unfragmented and at most 125 bytes")
            self.control_length = 0
            return 0
        if self.opcode == WS_CONTINUATION:
            if self.message_opcode == WS_CONTINUATION:
                return self.fail(1002, "continuation frame without a message")
        elif self.opcode <= WS_BINARY:
            if self.message_opcode != WS_CONTINUATION:
                return self.fail(1002, "new message before the last one ended")
            self.message_opcode = self.opcode
            self.message_compressed = rsv1
            self.message_length = 0
            self.compressed_length = 0
            self.utf8_state = 0
        else:
            return self.fail(1002, f"unknown opcode {self.opcode}")
        if self.message_compressed:
            self.compressed_length += length
            if self.compressed_length > <uint64_t>self.max_message_size:
                return self.fail(1009, "message too big")
            return 0
        if self.message_length + length > <uint64_t>self.max_message_size:
            return self.fail(1009, "message too big")
        if self.fin and self.opcode == WS_BINARY:
            # The whole message is this frame: no buffer, no copy into a bytes at the end.
            self.message_bytes = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
            return 0
        self.reserve(self.message_length + <size_t>length)
        return 0

    cdef int reserve(self, size_t size) except -1:
        cdef size_t capacity
        cdef char *grown
        if size <= self.message_capacity:
            return 0
        capacity = self.message_capacity * 2 if self.message_capacity else 1024
        while capacity < size:
            capacity *= 2
        grown = <char *>realloc(self.message, capacity)
        if grown == NULL:
            raise MemoryError()
        self.message = grown
        self.message_capacity = capacity
        return 0

    cdef int frame_payload(self, const uint8_t *data, size_t length) except -1:
        cdef bytes chunk
        cdef uint8_t *target
        if self.opcode >= WS_CLOSE:
            unmask(self.control + self.control_length, data, length, self.mask,
                   self.frame_offset)
            self.control_length += length
        elif self.message_compressed:
            chunk = PyBytes_FromStringAndSize(NULL, length)
            unmask(<uint8_t *>PyBytes_AS_STRING(chunk), data, length, self.mask,
                   self.frame_offset)
            self.inflate(chunk)
        else:
            target = <uint8_t *>(PyBytes_AS_STRING(self.message_bytes)
                                 if self.message_bytes is not None else self.message)
            target += self.message_length
            unmask(target, data, length, self.mask, self.frame_offset)
            self.message_length += length
            if self.message_opcode == WS_TEXT \
                    and utf8_check(&self.utf8_state, target, length) < 0:
                self.fail(1007, "invalid UTF-8 in a text message")
        self.frame_offset += length
        self.frame_remaining -= length
        return 0

    cdef int inflate(self, object chunk) except -1:
        """Decompress a chunk of a compressed message, never past max_message_size."""
        cdef Py_ssize_t allowed = self.max_message_size - <Py_ssize_t>self.message_length
        cdef bytes out = self.inflater.decompress(chunk, allowed + 1)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(out)
        if size > allowed or self.inflater.unconsumed_tail:
            return self.fail(1009, "message too big")
        if size:
            self.reserve(self.message_length + size)
            memcpy(self.message + self.message_length, PyBytes_AS_STRING(out), size)
            if self.message_opcode == WS_TEXT and utf8_check(
                    &self.utf8_state, <uint8_t *>self.message + self.message_length,
                    size) < 0:
                self.message_length += size
                return self.fail(1007, "invalid UTF-8 in a text message")
            self.message_length += size
        return 0

    cdef int end_frame(self) except -1:
        self.in_payload = False
        if self.opcode >= WS_CLOSE:
            return self.control_frame()
        if not self.fin:
            return 0
        if self.message_compressed:
            self.inflate(_DEFLATE_TAIL)
            if not self.reading:
                return 0
            if self.reset_inflater:
                self.inflater = _zlib.decompressobj(-self.inflate_bits)
        return self.message_complete()

    cdef int message_complete(self) except -1:
        cdef object message
        if self.message_opcode == WS_TEXT:
            if self.utf8_state != 0:
                return self.fail(1007, "text message ends inside a UTF-8 sequence")
            message = PyUnicode_DecodeUTF8(self.message, self.message_length, NULL)
        elif self.message_bytes is not None:
            message, self.message_bytes = self.message_bytes, None
        else:
            message = PyBytes_FromStringAndSize(self.message, self.message_length)
        self.message_opcode = WS_CONTINUATION
        self.message_length = 0
        if self.message_capacity > KEEP_BUFFER:
            free(self.message)
            self.message = NULL
            self.message_capacity = 0
        if self.state == WS_OPEN:
            self.deliver(message)
        return 0

    cdef int control_frame(self) except -1:
        cdef int code
        cdef uint32_t utf8 = 0
        if self.opcode == WS_PING:
            if self.state == WS_OPEN:
                self.send_frame(WS_PONG, <const char *>self.control, self.control_length, False)
            return 0
        if self.opcode == WS_PONG:
            if self.ping_outstanding:
                self.ping_outstanding = False
                if self.ping_timer is not None:
                    self.ping_timer.cancel()
                self.ping_timer = self.stream.protocol.loop.call_later(
                    self.ping_interval, self._keepalive)
            return 0
        # A close frame: its code, then UTF-8 text.
        if self.control_length == 1:
            return self.fail(1002, "a close frame's payload is a 2-byte code and a reason")
        if self.control_length == 0:
            code = 1005
        else:
            code = (self.control[0] << 8) | self.control[1]
            if not valid_close_code(code):
                return self.fail(1002, f"invalid close code {code}")
            if utf8_check(&utf8, self.control + 2, self.control_length - 2) < 0 or utf8:
                return self.fail(1007, "invalid UTF-8 in the close reason")
        self.reading = False
        if self.state == WS_OPEN:
            # The peer closes first: answer with its code, then end our side.
            self._close_code = code
            self._close_reason = PyUnicode_DecodeUTF8(
                <const char *>self.control + 2, self.control_length - 2, NULL
            ) if self.control_length > 2 else ""
            if code == 1005:
                self.send_frame(WS_CLOSE, NULL, 0, False)
            else:
                self.send_frame(WS_CLOSE, <const char *>self.control, 2, False)
        self.finish()
        return 0

    # -- delivering messages -------------------------------------------------------

    cdef void deliver(self, object message) except *:
        if self.has_hook and self.hook_task is None and not self.messages:
            self.run_hook(message)
            return
        self.messages.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    cdef void run_hook(self, object message) except *:
        cdef object result
        try:
            result = self.stream.on_message(message)
        except Exception as exc:
            self._hook_failed(exc)
            return
        if result is not None and _iscoroutine(result):
            self.hook_task = self.stream.protocol.loop.create_task(result)
            self.hook_task.add_done_callback(self._hook_done)

    def _hook_done(self, task):
        """Done-callback of an async on_message: deliver what waited for it."""
        if task is not self.hook_task:
            return
        self.hook_task = None
        exception = _task_failure(task)
        if exception is not None and not isinstance(exception, websocket_api().WebSocketClosed):
            self._hook_failed(exception)
        while self.messages and self.hook_task is None and self.state != WS_CLOSED:
            self.run_hook(self.messages.popleft())
        if not self.messages and self.hook_task is None:
            self.release_credit()
        self.stream.protocol.after_app_work()
        if self.hook_task is None and self.stream.state & STREAM_CLOSED:
            self.stream = None  # see stream_closed

    def _hook_failed(self, exc):
        if isinstance(exc, websocket_api().WebSocketClosed):
            return
        _logger.error("%s.on_message raised on stream %d from %s", type(self.stream).__name__,
                      self.stream.stream_id, self.stream.client_address, exc_info=exc)
        if self.state == WS_OPEN:
            self.fail(1011, "")

    cdef void release_credit(self) noexcept:
        """Give the flow-control credit of the bytes held so far back to the client."""
        cdef size_t held = self.held
        if held:
            self.held = 0
            if self.stream.state & STREAM_CLOSED:
                self.stream.protocol.discard(held)
            else:
                self.stream.protocol.consume(self.stream, held)

    # -- writing frames ------------------------------------------------------------

    cdef object new_deflater(self):
        return _zlib.compressobj(1, _zlib.DEFLATED, -max(self.deflate_bits, 9), 5)

    cdef int send_compressed(self, int opcode, object payload) except -1:
        cdef bytes data = self.deflater.compress(payload) + self.deflater.flush(_zlib.Z_SYNC_FLUSH)
        if self.reset_deflater:
            self.deflater = self.new_deflater()
        # The sync flush ends with the 4-byte tail the receiver puts back.
        return self.send_lent(opcode, data, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data) - 4,
                              True)

    cdef object closed_error(self):
        """The WebSocketClosed to raise at a use of the closed WebSocket."""
        return websocket_api().WebSocketClosed(self._close_code or 1006, self._close_reason or "")

    cdef int send_frame(self, int opcode, const char *payload, size_t size,
                        bint compressed) except -1:
        cdef uint8_t head[10]
        self.output.append(head, frame_head(head, opcode, size, compressed), payload, size)
        return self.queued()

    cdef int send_lent(self, int opcode, object owner, const char *payload, size_t size,
                       bint compressed) except -1:
        """A data frame whose payload, when large, is sent from ``owner`` (immutable)."""
        cdef uint8_t head[10]
        if size < LEND_MIN_SIZE:
            return self.send_frame(opcode, payload, size, compressed)
        self.output.lend(head, frame_head(head, opcode, size, compressed), owner, payload, size)
        return self.queued()

    cdef int queued(self) except -1:
        """A frame was queued: wake the protocol if it waits for output."""
        if self.output.deferred:
            self.output.deferred = False
            self.stream.protocol.resume_body(self.stream)
        return 0

    cdef int send_close(self, int code, str reason) except -1:
        cdef bytes payload = bytes(((code >> 8) & 0xFF, code & 0xFF)) + reason.encode("utf-8")
        return self.send_frame(WS_CLOSE, PyBytes_AS_STRING(payload), len(payload), False)

    # -- closing -----------------------------------------------------------------

    cdef int fail(self, int code, str reason) except -1:
        """_Fail the WebSocket Connection_ (RFC 6455 7.1.7): close frame, end of our side."""
        cdef bint first = self.state == WS_OPEN
        self.reading = False
        if first:
            self._close_code = code
            self._close_reason = reason
            self.send_close(code, reason)
        _logger.info("closing WebSocket on stream %d from %s: %d %s", self.stream.stream_id,
                     self.stream.client_address, code, reason)
        self.finish()
        return 0

    cdef void finish(self) except *:
        """Both close frames are sent or given up on: end our side of the stream."""
        self.state = WS_CLOSED
        self.message_bytes = None
        self.reading = False
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        self.output.eof = True
        if self.output.deferred:
            self.output.deferred = False
            self.stream.protocol.resume_body(self.stream)
        if not (self.stream.state & STREAM_CLOSED):
            self.start_close_timer()
        self.wake()

    cdef void start_close_timer(self):
        if self.close_timer is None:
            self.close_timer = self.stream.protocol.loop.call_later(self.close_timeout,
                                                                    self._close_timed_out)

    def _close_timed_out(self):
        """The client has not finished the closing handshake in time: reset the stream."""
        self.close_timer = None
        if not (self.stream.state & STREAM_CLOSED):
            _logger.info("WebSocket closing handshake timed out on stream %d from %s",
                         self.stream.stream_id, self.stream.client_address)
            self.stream.protocol.reset_stream(self.stream, NGHTTP2_CANCEL)

    def _keepalive(self):
        """Every ping_interval: a ping; its pong is due within ping_timeout."""
        self.ping_timer = None
        if self.state != WS_OPEN:
            return
        if self.ping_outstanding:
            # The close frame goes out; the close timer resets the stream if
            # the client stays silent.
            self.fail(1011, "keepalive ping timeout")
            self.stream.protocol.after_app_work()
            return
        self.ping_outstanding = True
        self.send_frame(WS_PING, NULL, 0, False)
        self.ping_timer = self.stream.protocol.loop.call_later(self.ping_timeout,
                                                               self._keepalive)
        self.stream.protocol.after_app_work()

    cdef void wake(self) except *:
        """Wake a receive() and the send()s waiting, the WebSocket having closed."""
        cdef list waiters
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if self.state == WS_CLOSED and self.drain_waiters:
            waiters, self.drain_waiters = self.drain_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    cdef void output_drained(self, size_t pending) except *:
        cdef list waiters
        if self.drain_waiters and pending <= self.write_limit:
            waiters, self.drain_waiters = self.drain_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- told by the stream ------------------------------------------------------

    cdef void input_ended(self) except *:
        """The client ended its side of the stream (like a TCP FIN)."""
        if self.state != WS_CLOSED:
            if self._close_code is None:
                self._close_code = 1006
                self._close_reason = ""
            self.finish()

    cdef void stream_closed(self, uint32_t error_code) except *:
        cdef size_t held = self.held
        if self._close_code is None:
            self._close_code = 1006
            self._close_reason = ""
        self.state = WS_CLOSED
        self.reading = False
        self.held = 0
        if held:
            self.stream.protocol.discard(held)
        for timer in (self.ping_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        self.ping_timer = self.close_timer = None
        self.wake()
        if self.hook_task is None:
            # Let go of the handler (which holds this WebSocket): refcounting
            # alone then frees both, and the connection. A running hook keeps
            # it until it ends (_hook_done).
            self.stream = None


cdef WebSocket new_websocket(BaseRequestHandler stream):
    cdef WebSocket websocket = WebSocket.__new__(WebSocket)
    websocket.stream = stream
    websocket.state = WS_CONNECTING
    websocket.header_needed = 2
    websocket.message_opcode = WS_CONTINUATION
    websocket.extensions = b""
    return websocket


def _websocket_task_done(task):
    """Done-callback of a hook that outlived its WebSocket's stream: log a failure."""
    exception = _task_failure(task)
    if exception is not None and not isinstance(
            exception, (websocket_api().WebSocketClosed, _CancelledError)):
        _logger.error("a WebSocket hook failed after its stream closed: %r", exception,
                      exc_info=exception)
