# The Session's guard against hostile peers (SECURITY.md lists every limit).
#
# guard_receive() walks the frame headers of what arrived before nghttp2 sees
# the frames, in C: it charges frames that do no useful work (empty DATA,
# PRIORITY, WINDOW_UPDATE on closed streams, PING, SETTINGS, unknown types),
# client resets and CONTINUATION frames to per-connection budgets, keeps the
# RFC 9113 stream-state rules nghttp2 1.52 leaves out, and hands the bytes to
# nghttp2_session_mem_recv in slices, giving the event loop back when one read
# takes too long. A connection that breaks a budget gets GOAWAY (nghttp2's
# terminate: the rest of the input is ignored) and is closed once it is sent.
#
# Nothing here runs Python code on the normal path: a frame costs a few
# comparisons; DATA, trailers and per-stream WINDOW_UPDATE make nghttp2 catch
# up first (one more mem_recv call), so that the stream state they are checked
# against is exact.

from nghttp2py.settings import GuardLimits as _GuardLimits


cdef class GuardBudgets:
    """A server's GuardLimits as C fields, built once; every Session points to one.

    Rapid reset (CVE-2023-44487): a token bucket over the client's RST_STREAM
    frames. Streams the client resets in the same read as it opens them never
    reach a handler (guard_reset_by_client), so a flood costs no application
    work. Frames that do no useful work: a token bucket, refilled with time and
    with every request stream the client opens (a fair client's WINDOW_UPDATE
    after a stream closed, or its PING, is paid for by its requests).
    CONTINUATION frames after one HEADERS (nghttp2 >= 1.61 and Debian's 1.52
    back-port stop at 8, without a GOAWAY). Header blocks over
    max_header_list_size: each gets 431 (or, past ``abandon_factor`` times the
    limit, RST_STREAM and no more decoding work); the connection gets GOAWAY
    after ``max_oversized_blocks`` of them. nghttp2 gets at most
    ``slice_bytes`` per call; once a read has taken ``slice_seconds``, the rest
    waits BACKLOG_DELAY, while the loop serves the other connections.
    """

    def __init__(self, limits not None):
        self.reset_burst = limits.reset_burst
        self.reset_rate = limits.reset_rate
        self.idle_frame_burst = limits.idle_frame_burst
        self.idle_frame_rate = limits.idle_frame_rate
        self.idle_frame_credit = limits.idle_frame_credit
        self.max_continuations = limits.max_continuations
        self.max_oversized_blocks = limits.max_oversized_blocks
        self.abandon_factor = limits.abandon_factor
        self.slice_bytes = limits.slice_bytes
        self.slice_seconds = limits.slice_seconds


cdef GuardBudgets _default_budgets = GuardBudgets(_GuardLimits())

# A header block held back until it ends (oversized.pxi) is handed to nghttp2
# as it came once it passes this size (a block that large is abandoned anyway
# unless max_header_list_size is raised); it would have to contain a field
# over nghttp2's limit to fail the connection.
cdef size_t MAX_HELD_BLOCK = 4 * HD_MAX_NV

# The minimum-rate rule (Timeouts.min_rate) is checked over periods of
# Timeouts.request_header seconds, or this long when that is off.
cdef double RATE_PERIOD = 10.0

# How long the rest of a read that took too long waits (GuardBudgets.slice_seconds).
cdef double BACKLOG_DELAY = 0.001

# nghttp2_error values of nghttp2 >= 1.61 (and Debian's back-ports), absent
# from the 1.52 header.
cdef enum:
    ERR_TOO_MANY_CONTINUATIONS = -905


cdef void guard_init(Session self, uint64_t header_table_size) noexcept:
    """Guard a server session (a client session is left alone)."""
    self.guarded = True
    # The largest dynamic table the client's encoder may use: ours once it has
    # our SETTINGS, the default before.
    self.hpack_table_limit = max(<uint64_t>HPACK_DEFAULT_TABLE_SIZE, header_table_size)
    self.scan_skip = CLIENT_MAGIC_LENGTH
    self.max_client_stream = -1
    guard_set_budgets(self, _default_budgets)


cdef void guard_set_budgets(Session self, GuardBudgets budgets) noexcept:
    """Apply ``budgets`` (the server's GuardLimits), the buckets full."""
    self.budgets = budgets
    self.reset_tokens = budgets.reset_burst
    self.reset_stamp = self.last_activity
    self.idle_frame_tokens = budgets.idle_frame_burst
    self.idle_frame_stamp = self.last_activity


cdef inline int window_slot(Session self, int32_t stream_id) noexcept:
    """The bit of client stream ``stream_id`` in the id bitmaps; -1 outside the window."""
    if stream_id > self.max_client_stream \
            or (self.max_client_stream - stream_id) >> 1 >= STREAM_WINDOW_BITS:
        return -1
    return (stream_id >> 1) & (STREAM_WINDOW_BITS - 1)


cdef inline bint bit_set(const uint64_t *words, int slot) noexcept:
    return slot >= 0 and (words[slot >> 6] >> (slot & 63)) & 1


cdef inline void set_bit(uint64_t *words, int slot) noexcept:
    if slot >= 0:
        words[slot >> 6] |= (<uint64_t>1) << (slot & 63)


cdef inline void clear_bit(uint64_t *words, int slot) noexcept:
    words[slot >> 6] &= ~((<uint64_t>1) << (slot & 63))


cdef void open_client_stream(Session self, int32_t stream_id) noexcept:
    """A HEADERS frame opens ``stream_id``: the ids skipped on the way were never used."""
    # 64 bits: the ids run up to 2**31 - 1, and the loop steps past the last.
    cdef long long skipped = <long long>self.max_client_stream + 2
    cdef int slot
    if (stream_id - skipped) >> 1 >= STREAM_WINDOW_BITS:
        memset(self.opened_ids, 0, sizeof(self.opened_ids))
        memset(self.reset_sent_ids, 0, sizeof(self.reset_sent_ids))
        memset(self.reset_received_ids, 0, sizeof(self.reset_received_ids))
        skipped = stream_id
    while skipped <= stream_id:
        slot = (skipped >> 1) & (STREAM_WINDOW_BITS - 1)
        clear_bit(self.opened_ids, slot)
        clear_bit(self.reset_sent_ids, slot)
        clear_bit(self.reset_received_ids, slot)
        skipped += 2
    self.max_client_stream = stream_id
    set_bit(self.opened_ids, window_slot(self, stream_id))
    if self.idle_frame_tokens < self.budgets.idle_frame_burst:
        self.idle_frame_tokens += self.budgets.idle_frame_credit


cdef void guard_upgraded(Session self) noexcept:
    """An h2c upgrade made the HTTP/1.1 request stream 1."""
    open_client_stream(self, 1)


cdef bint guard_reset_by_client(Session self, int32_t stream_id) noexcept:
    """True if the client has already reset ``stream_id`` (in the bytes being processed)."""
    return bit_set(self.reset_received_ids, window_slot(self, stream_id))


cdef void guard_frame_sent(Session self, const nghttp2_frame *frame) noexcept:
    """Remember the streams we reset: frames the client had in flight on them are ignored."""
    if frame.hd.type == NGHTTP2_RST_STREAM and frame.hd.stream_id & 1:
        set_bit(self.reset_sent_ids, window_slot(self, frame.hd.stream_id))


cdef void guard_refuse(Session self, uint32_t error_code, const char *reason) noexcept:
    """End the connection with GOAWAY ``error_code``; nghttp2 ignores every later frame."""
    if self.refused_for != NULL or self.session == NULL:
        return
    self.refused_for = reason
    self.capture = None
    nghttp2_session_terminate_session(self.session, error_code)
    try:
        _logger.info("closing connection from %s: %s (GOAWAY %s)", self.client_address,
                     reason.decode("ascii"),
                     nghttp2_http2_strerror(error_code).decode("ascii"))
    except BaseException as exc:
        self.fatal = exc


cdef void guard_count_oversized(Session self) noexcept:
    """One more header block over the limit; too many of them end the connection."""
    self.oversized_blocks += 1
    if self.oversized_blocks > self.budgets.max_oversized_blocks:
        guard_refuse(self, NGHTTP2_ENHANCE_YOUR_CALM,
                     "header blocks over the size limit, again and again (HPACK bomb)")


cdef int guard_oversized_header(Session self, BaseRequestHandler handler,
                                const nghttp2_frame *frame) noexcept:
    """A header field took ``handler``'s block over max_header_list_size.

    Up to ``abandon_factor`` times the limit, decoding goes on (the fields are
    dropped) so that the request gets its 431 once the block ends. Past that
    (an HPACK bomb: a few bytes of wire per kilobyte decoded), the block is
    abandoned at once: RST_STREAM, and nghttp2 only keeps its HPACK table in
    step for the rest of it, without validating or handing over fields.
    """
    if handler.header_list_size <= self.max_header_list_size * self.budgets.abandon_factor:
        return 0
    nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, frame.hd.stream_id,
                              NGHTTP2_ENHANCE_YOUR_CALM)
    guard_count_oversized(self)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE


cdef bytes goaway_frame(int32_t last_stream_id, uint32_t error_code):
    """A GOAWAY frame, for when nghttp2 can no longer build one (a fatal error)."""
    cdef uint8_t frame[FRAME_HEADER_LENGTH + 8]
    memset(frame, 0, sizeof(frame))
    frame[2] = 8
    frame[3] = NGHTTP2_GOAWAY
    frame[9] = (last_stream_id >> 24) & 0x7f
    frame[10] = (last_stream_id >> 16) & 0xff
    frame[11] = (last_stream_id >> 8) & 0xff
    frame[12] = last_stream_id & 0xff
    frame[13] = (error_code >> 24) & 0xff
    frame[14] = (error_code >> 16) & 0xff
    frame[15] = (error_code >> 8) & 0xff
    frame[16] = error_code & 0xff
    return PyBytes_FromStringAndSize(<char *>frame, sizeof(frame))


def _check_header_stall(Session self):
    """The request-header timeout: a header block must end in time."""
    self.stall_timer = None
    if not self.header_stall_since or self.session == NULL:
        return
    cdef double left = self.header_stall_since + self.header_timeout - monotonic()
    if left > 0.001:
        self.stall_timer = self.loop.call_at(self.loop.time() + left, _check_header_stall, self)
        return
    guard_refuse(self, NGHTTP2_ENHANCE_YOUR_CALM, "a request header block not completed in time")
    self.flush()


def _check_rate(Session self, double since):
    """The minimum rate: a client must keep sending the request bodies awaited from it."""
    self.rate_timer = None
    if self.session == NULL or not self.streams:
        return
    cdef double now = monotonic()
    cdef double received = self.received_bytes - self.rate_mark_bytes
    if received < self.min_rate * (now - since) and awaiting_request_data(self):
        guard_refuse(self, NGHTTP2_ENHANCE_YOUR_CALM,
                     "request data arriving slower than the minimum rate")
        self.flush()
        return
    self.rate_mark_bytes = self.received_bytes
    self.rate_timer = self.loop.call_at(self.loop.time() + rate_period(self), _check_rate,
                                        self, now)


cdef inline double rate_period(Session self) noexcept:
    return self.header_timeout if self.header_timeout > 0 else RATE_PERIOD


cdef bint awaiting_request_data(Session self):
    """Whether a request body is still awaited that the application is ready to take.

    An accepted WebSocket's stream is not: its client may stay silent as long as it likes.
    """
    cdef BaseRequestHandler handler
    for value in self.streams.values():
        handler = <BaseRequestHandler>value
        if not (handler.state & (REQUEST_DONE | READING_PAUSED | PUSHED | STREAM_CLOSED)) \
                and handler.task is None and not handler.events \
                and (handler._websocket is None or handler._websocket.output is None):
            return True
    return False


cdef void charge_idle_frame(Session self) noexcept:
    cdef double now
    if self.idle_frame_tokens < 1:
        now = self.last_activity
        self.idle_frame_tokens = min(
            self.budgets.idle_frame_burst,
            self.idle_frame_tokens + (now - self.idle_frame_stamp) * self.budgets.idle_frame_rate)
        self.idle_frame_stamp = now
        if self.idle_frame_tokens < 1:
            guard_refuse(self, NGHTTP2_ENHANCE_YOUR_CALM, "a flood of frames that do no work")
            return
    self.idle_frame_tokens -= 1


cdef void charge_reset(Session self, int32_t stream_id) noexcept:
    cdef double now = self.last_activity
    set_bit(self.reset_received_ids, window_slot(self, stream_id))
    self.reset_tokens = min(self.budgets.reset_burst,
                            self.reset_tokens + (now - self.reset_stamp) * self.budgets.reset_rate)
    self.reset_stamp = now
    if self.reset_tokens >= 1:
        self.reset_tokens -= 1
    else:
        guard_refuse(self, NGHTTP2_ENHANCE_YOUR_CALM, "a flood of stream resets (rapid reset)")


cdef inline bint stream_is_live(Session self, int32_t stream_id) noexcept:
    cdef nghttp2_stream *stream = nghttp2_session_find_stream(self.session, stream_id)
    if stream == NULL:
        return False
    cdef nghttp2_stream_proto_state state = nghttp2_stream_get_state(stream)
    return state != NGHTTP2_STREAM_STATE_IDLE and state != NGHTTP2_STREAM_STATE_CLOSED


cdef void frame_on_closed_stream(Session self, int32_t stream_id) noexcept:
    """DATA or HEADERS on a client stream nghttp2 no longer knows (RFC 9113 5.1, 5.1.1)."""
    if stream_id > nghttp2_session_get_last_proc_stream_id(self.session):
        return  # never processed (nghttp2 ignored it after a GOAWAY): ignored too
    cdef int slot = window_slot(self, stream_id)
    if slot < 0:
        guard_refuse(self, NGHTTP2_STREAM_CLOSED, "a frame on a stream closed long ago")
    elif not bit_set(self.opened_ids, slot):
        guard_refuse(self, NGHTTP2_PROTOCOL_ERROR, "a stream id lower than one already used")
    elif not bit_set(self.reset_sent_ids, slot):
        # Closed normally, or reset by the client. After our own RST_STREAM the
        # client may still have frames in flight: those are ignored.
        nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, stream_id,
                                  NGHTTP2_STREAM_CLOSED)
        set_bit(self.reset_sent_ids, slot)
        charge_idle_frame(self)
    else:
        charge_idle_frame(self)


cdef inline bint needs_current_state(Session self, uint8_t frame_type, int32_t stream_id) noexcept:
    """Whether the frame is checked against stream states nghttp2 must be brought up to."""
    if not self.preface_fed:
        return True  # nghttp2 checks the preface first
    if self.in_header_block:
        return False
    if frame_type == NGHTTP2_DATA or frame_type == NGHTTP2_HEADERS:
        return stream_id & 1 and stream_id <= self.max_client_stream
    return frame_type == NGHTTP2_WINDOW_UPDATE and stream_id != 0


cdef void inspect_frame(Session self, uint32_t length, uint8_t frame_type, uint8_t flags,
                        int32_t stream_id) noexcept:
    """Act on a frame header (nghttp2 has not seen the frame yet)."""
    if self.in_header_block:
        if frame_type != NGHTTP2_CONTINUATION:
            self.in_header_block = False  # nghttp2 answers with PROTOCOL_ERROR
            return
        self.continuations += 1
        if self.continuations > self.budgets.max_continuations:
            guard_refuse(self, NGHTTP2_ENHANCE_YOUR_CALM, "a CONTINUATION flood")
        elif flags & NGHTTP2_FLAG_END_HEADERS:
            self.in_header_block = False
            self.block_ends = True
        return
    if frame_type == NGHTTP2_HEADERS:
        self.continuations = 0
        if flags & NGHTTP2_FLAG_END_HEADERS:
            self.block_ends = True
        else:
            self.in_header_block = True
        if stream_id & 1:
            if stream_id > self.max_client_stream:
                open_client_stream(self, stream_id)
            elif not stream_is_live(self, stream_id):
                frame_on_closed_stream(self, stream_id)
        return
    if frame_type == NGHTTP2_DATA:
        if length == 0 and not (flags & NGHTTP2_FLAG_END_STREAM):
            charge_idle_frame(self)
        if stream_id & 1 and stream_id <= self.max_client_stream \
                and not stream_is_live(self, stream_id):
            frame_on_closed_stream(self, stream_id)
    elif frame_type == NGHTTP2_RST_STREAM:
        charge_reset(self, stream_id)
    elif frame_type == NGHTTP2_WINDOW_UPDATE:
        if stream_id != 0 and not stream_is_live(self, stream_id):
            charge_idle_frame(self)
    elif frame_type == NGHTTP2_PRIORITY or frame_type > NGHTTP2_CONTINUATION \
            and frame_type != NGHTTP2_PRIORITY_UPDATE:
        charge_idle_frame(self)
    elif (frame_type == NGHTTP2_PING or frame_type == NGHTTP2_SETTINGS) \
            and not (flags & NGHTTP2_FLAG_ACK):
        charge_idle_frame(self)


cdef inline ssize_t recv_slice(Session self, const uint8_t *data, size_t length) noexcept:
    if self.session == NULL:
        return NGHTTP2_ERR_INVALID_STATE
    return nghttp2_session_mem_recv(self.session, data, length)


cdef inline bint held_back(uint8_t frame_type, uint8_t flags, uint32_t length) noexcept:
    """Whether a HEADERS frame's block is held back until it ends (oversized.pxi):
    it spans frames, or its one frame could hold a field over nghttp2's limit."""
    return frame_type == NGHTTP2_HEADERS \
        and (not (flags & NGHTTP2_FLAG_END_HEADERS) or length > HD_MAX_NV)


cdef inline bint held_too_much(Session self, size_t more) noexcept:
    """Whether holding ``more`` bytes of a header block would pass MAX_HELD_BLOCK."""
    return <size_t>PyByteArray_GET_SIZE(self.capture) + more > MAX_HELD_BLOCK


cdef ssize_t release_capture(Session self, bint whole=True) except? -1:
    """Hand the held-back header block to nghttp2, its oversized fields replaced
    (unless it did not end as it should: then as it came, for nghttp2 to judge)."""
    cdef bytearray captured = self.capture
    cdef object frames = None
    cdef ssize_t rv
    self.capture = None
    self.capture_complete = False
    if whole and PyByteArray_GET_SIZE(captured) > HD_MAX_NV + FRAME_HEADER_LENGTH:
        frames = reframed_header_block(captured, self.hpack_table_limit)
    if frames is None:
        return recv_slice(self, <const uint8_t *>PyByteArray_AS_STRING(captured),
                          PyByteArray_GET_SIZE(captured))
    cdef const uint8_t *head = <const uint8_t *>PyByteArray_AS_STRING(captured)
    self.oversized_field_stream = <int32_t>(((<uint32_t>head[5] & 0x7f) << 24)
                                            | (<uint32_t>head[6] << 16)
                                            | (<uint32_t>head[7] << 8) | head[8])
    rv = recv_slice(self, <const uint8_t *>PyByteArray_AS_STRING(frames),
                    PyByteArray_GET_SIZE(frames))
    self.oversized_field_stream = 0
    return rv


cdef ssize_t guard_receive(Session self, const uint8_t *data, size_t length) except? -1:
    """Scan ``data`` and feed it to nghttp2 in slices.

    Returns how many bytes were processed: ``length``, or fewer when the read
    took too long and the rest must wait; or a negative nghttp2 error.

    A frame header split across reads is held back (in ``scan_head``) until it
    is whole, and so is a header block that oversized.pxi may have to change.
    """
    cdef size_t position = 0, start = 0, n, held
    cdef ssize_t rv
    cdef size_t frame_start
    cdef const uint8_t *head = self.scan_head
    cdef uint8_t frame_type, flags
    cdef int32_t stream_id
    cdef bint began_earlier, broken
    if not self.guarded:
        return recv_slice(self, data, length)
    if self.refused_for != NULL:
        return length  # GOAWAY is queued: nghttp2 ignores everything now
    while position < length:
        if self.scan_skip:
            n = min(<size_t>self.scan_skip, length - position)
            if self.capture is not None and held_too_much(self, n):
                rv = release_capture(self, False)
                if rv < 0:
                    return rv
            if self.capture is not None:
                append_bytes(self.capture, data + position, n)
                start = position + n
            position += n
            self.scan_skip -= n
            if not self.scan_skip:
                self.block_ends = False
                if self.capture_complete:
                    rv = release_capture(self)
                    if rv < 0:
                        return rv
        else:
            began_earlier = self.scan_have > 0
            n = min(<size_t>(FRAME_HEADER_LENGTH - self.scan_have), length - position)
            memcpy(self.scan_head + self.scan_have, data + position, n)
            self.scan_have += n
            position += n
            if self.scan_have < FRAME_HEADER_LENGTH:
                break
            self.scan_have = 0
            self.scan_skip = (<uint32_t>head[0] << 16) | (<uint32_t>head[1] << 8) | head[2]
            frame_type = head[3]
            flags = head[4]
            stream_id = <int32_t>(((<uint32_t>head[5] & 0x7f) << 24) | (<uint32_t>head[6] << 16)
                                  | (<uint32_t>head[7] << 8) | head[8])
            # A header that began in an earlier read was held back: nghttp2
            # has had everything before it, and gets it from ``scan_head``.
            frame_start = 0 if began_earlier else position - FRAME_HEADER_LENGTH
            if frame_start > start and needs_current_state(self, frame_type, stream_id):
                rv = recv_slice(self, data + start, frame_start - start)
                if rv < 0:
                    return rv
                start = frame_start
            self.preface_fed = True
            if self.refused_for == NULL:
                inspect_frame(self, self.scan_skip, frame_type, flags, stream_id)
            if self.refused_for != NULL:
                return length  # nghttp2 ignores the rest: no need to hand it over
            # Another frame inside a header block (nghttp2 answers PROTOCOL_ERROR),
            # or a block too large to hold back: nghttp2 gets it as it came.
            broken = self.capture is not None and frame_type != NGHTTP2_CONTINUATION
            if self.capture is not None and (broken or held_too_much(self, FRAME_HEADER_LENGTH)):
                rv = release_capture(self, False)
                if rv < 0:
                    return rv
            if self.capture is not None:
                append_bytes(self.capture, head, FRAME_HEADER_LENGTH)
                start = position
                self.capture_complete = flags & NGHTTP2_FLAG_END_HEADERS
            elif not broken and held_back(frame_type, flags, self.scan_skip):
                if frame_start > start:
                    rv = recv_slice(self, data + start, frame_start - start)
                    if rv < 0:
                        return rv
                self.capture = PyByteArray_FromStringAndSize(<const char *>head,
                                                             FRAME_HEADER_LENGTH)
                start = position
                self.capture_complete = flags & NGHTTP2_FLAG_END_HEADERS
            elif began_earlier:
                rv = recv_slice(self, head, FRAME_HEADER_LENGTH)
                if rv < 0:
                    return rv
                start = position
            if not self.scan_skip:
                self.block_ends = False
                if self.capture_complete:
                    rv = release_capture(self)
                    if rv < 0:
                        return rv
        if position - start >= self.budgets.slice_bytes:
            rv = recv_slice(self, data + start, position - start)
            if rv < 0:
                return rv
            start = position
            if position < length and monotonic() - self.last_activity >= self.budgets.slice_seconds:
                return position
    held = min(<size_t>self.scan_have, position)
    if position - held > start:
        rv = recv_slice(self, data + start, position - held - start)
        if rv < 0:
            return rv
    # A header block (or a frame header) left incomplete: the request-header
    # timeout runs from the read that began it.
    if self.scan_have or self.in_header_block or self.block_ends:
        if not self.header_stall_since:
            self.header_stall_since = self.last_activity
    else:
        self.header_stall_since = 0
    return length
