# The engine's classes, the C-level interface between them, and its constants.
#
# Three layers meet here (see README.md, "Architecture"):
#
#   application   BaseRequestHandler (one per request stream; users subclass it)
#   ------------- the stream interface ------------------------------------------
#                 up:   on_headers / on_data / on_request_done / on_close
#                 down: HTTPProtocol.submit_response / submit_info / submit_push /
#                       push_enabled / resume_body / consume / reset_stream
#   protocol      HTTPProtocol subclasses: Session (HTTP/2 over libnghttp2),
#                 HTTP1Connection (HTTP/1.1 over llhttp, through httptools),
#                 HTTP3Connection (HTTP/3 over an engine: nghttp2py.quic, aioquic)
#
# A handler talks only to its HTTPProtocol, through the methods declared on
# it below; only a protocol talks to its C library. A protocol owns its
# connection's state, a handler its stream's: each changes its own fields.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset
from libc.time cimport time, time_t, tm
from posix.mman cimport (MADV_DONTNEED, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ,
                         PROT_WRITE, madvise, mmap, munmap)
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from cpython.bytearray cimport (PyByteArray_AS_STRING, PyByteArray_FromStringAndSize,
                                PyByteArray_GET_SIZE, PyByteArray_Resize)
from cpython.buffer cimport (PyBUF_SIMPLE, PyBUF_WRITE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.list cimport PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.object cimport PyObject, PyTypeObject
from cpython.type cimport PyType_IsSubtype
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8

from nghttp2 cimport *


from cpython.exc cimport PyErr_Clear
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF

cdef extern from "<time.h>" nogil:
    # POSIX: the thread-safe gmtime.
    tm *gmtime_r(const time_t *timep, tm *result)

cdef extern from "Python.h":
    # The output buffer is a bytes object filled in place before anyone else
    # sees it, handled as a bare PyObject* so that Cython adds no refcounting.
    PyObject *new_bytes "PyBytes_FromStringAndSize"(const char *data, Py_ssize_t size)
    char *bytes_data "PyBytes_AS_STRING"(PyObject *bytes)
    # Grows a bytes object nobody else holds (refcount 1); on failure it
    # frees it, sets *bytes to NULL and returns -1 with MemoryError set.
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t size)
    Py_ssize_t Py_REFCNT(PyObject *o)


# -- constants -----------------------------------------------------------------

cdef enum:
    # RFC 9113 section 4.1: every frame starts with a 9-byte header.
    FRAME_HEADER_LENGTH = 9
    # RFC 7541 section 4.1: an entry's size is its name and value length plus 32.
    HPACK_ENTRY_OVERHEAD = 32
    # nghttp2_hd_*_get_table_entry indexes: 1..61 are the static table, then
    # 62.. the dynamic table, newest first.
    HPACK_FIRST_DYNAMIC_INDEX = 62
    # One write to the transport at least every this many bytes of output, so
    # that a large body never sits whole in memory and backpressure is seen.
    WRITE_BATCH_SIZE = 65536
    INITIAL_OUTPUT_CAPACITY = 16384
    # A batch smaller than this is copied out of the output buffer; a larger
    # one is lent to the transport as a memoryview (no copy).
    SMALL_WRITE = 4096
    # Body chunks at least this large skip nghttp2's frame buffer: the
    # send-data callback copies them once, straight into the output.
    NO_COPY_THRESHOLD = 4096
    # The largest DATA frame nghttp2 builds without a read-length callback.
    NO_COPY_CAPACITY = 16384 + FRAME_HEADER_LENGTH
    # Response header fields up to this many fit in a HeaderBlock itself.
    INLINE_NV = 9
    # nghttp2's callocs and new buffers (realloc from NULL) of this size and
    # more are mapped from the kernel (memory.pxi), at most this many at a time
    # per session.
    PAGE_BLOCK_MIN = 4096
    MAX_PAGE_BLOCKS = 4
    # RFC 9113 section 3.4: the client connection preface starts with 24 octets.
    CLIENT_MAGIC_LENGTH = 24
    # Client stream ids a Session remembers below the newest one, as bits (one
    # per odd id): enough to tell a closed stream from one never opened.
    STREAM_WINDOW_BITS = 512
    STREAM_WINDOW_WORDS = 8

# A handler's (stream's) state bits.
cdef enum:
    RESPONSE_STARTED = 1
    STREAM_CLOSED = 2
    HANDLER_FAILED = 4
    PUSHED = 8
    HEADERS_TOO_LARGE = 16
    REQUEST_DONE = 32
    READING_PAUSED = 64
    EXPECT_CONTINUE = 128
    # Its body is over max_request_body_size (256 and 512 are a response
    # handler's bits, client.pxi).
    BODY_TOO_LARGE = 1024

# Which application hooks a handler class overrides; the rest are skipped.
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


# HTTP/1.1: what is known of a request (HTTP1Connection.reading_flags and
# active_flags).
cdef enum:
    REQ_KEEP_ALIVE = 1
    REQ_HTTP10 = 2
    # Its header block is complete: further fields are trailers.
    REQ_HEADERS_DONE = 4
    REQ_DONE = 8
    REQ_CHUNKED = 16
    # An Upgrade header field: ask the parser whether it is an upgrade.
    REQ_UPGRADE_FIELD = 32
    REQ_UPGRADE_H2C = 64
    # llhttp stops at the end of its header block (Upgrade or CONNECT).
    REQ_UPGRADE = 128
    # The connection closes after its response.
    REQ_CLOSE = 256
    # An Upgrade to websocket (RFC 6455 section 4.1).
    REQ_UPGRADE_WEBSOCKET = 512

# HTTP/1.1: the state of the response being sent (HTTP1Connection.response_state).
cdef enum:
    RESP_HEAD = 1
    RESP_CHUNKED = 2
    RESP_DONE = 4
    # Its head said "connection: close", or its body ends with the connection.
    RESP_CLOSE = 8
    # A 101 to the tunnel's request: its body is the new protocol's bytes.
    RESP_TUNNEL = 16
    # The tunnel's output has ended and the TCP connection is half-closed.
    RESP_HALF_CLOSED = 32

# HTTP/1.1: events of a pipelined request that waits for its turn, besides
# EVENT_HEADERS, EVENT_DATA and EVENT_DONE.
cdef enum:
    EVENT_PARSE_ERROR = 3


# -- header blocks (headers.pxi) -------------------------------------------------

# Header fields as received, copied back to back as [name length][value
# length][name][value], until the application first reads them as a list.
cdef struct RawFields:
    char *data
    size_t length
    size_t capacity


cdef class HeaderBlock:
    cdef nghttp2_nv *nva
    cdef size_t length, capacity
    cdef object headers
    cdef list keep
    cdef bytes date
    cdef const char *content_length
    cdef Py_ssize_t content_length_size
    # The application gave an alt-svc field: the server's is not added.
    cdef bint has_alt_svc
    cdef nghttp2_nv inline_nva[INLINE_NV]
    cdef char length_text[24]

    cdef int reserve(self, size_t capacity) except -1
    cdef object keep_alive(self, object value)
    cdef void add_static(self, bytes name, bytes value) noexcept
    cdef void add(self, const char *name, Py_ssize_t name_size, const char *value,
                  Py_ssize_t value_size) noexcept
    cdef void add_bytes(self, bytes name, bytes value) noexcept
    cdef int add_text(self, bytes name, object value) except -1
    cdef int add_user_headers(self, list headers) except -1


# -- response bodies (body.pxi) --------------------------------------------------

cdef class BodySource:
    # -1 when not known in advance.
    cdef Py_ssize_t length

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2
    cdef const char *take(self, size_t size)
    cdef void close(self) noexcept


cdef class BytesBody(BodySource):
    cdef bytes data
    cdef Py_ssize_t offset


cdef class FileBody(BodySource):
    cdef object file
    cdef object readinto


cdef class ChunkedBody(BodySource):
    cdef bytes pending
    cdef Py_ssize_t offset
    cdef bint eof

    cdef int fill(self, size_t size) except -2


cdef class TextFileBody(ChunkedBody):
    cdef object file


cdef class GeneratorBody(ChunkedBody):
    cdef object generator
    cdef bint deferred


cdef class AsyncIterBody(ChunkedBody):
    cdef object iterator
    cdef object waiting
    cdef BaseRequestHandler handler

    # What a chunk's arrival (or failure) does to its stream.
    cdef void resume(self) except *
    cdef void failed(self, object exception) except *


# -- the application's side of a stream (handler.pxi) ------------------------------

cdef class BaseRequestHandler:
    cdef HTTPProtocol protocol
    cdef readonly int stream_id
    cdef public object client_address
    cdef public object client_certificate
    cdef public bytes scheme
    cdef public bytes method
    cdef public bytes host
    cdef public bytes path
    cdef public object trailers
    cdef object _headers
    # The request header fields until `headers` is first read.
    cdef RawFields raw_headers
    cdef size_t header_list_size
    cdef BodySource body
    cdef HeaderBlock trailer_block
    cdef list early_hints
    cdef int status
    cdef int callbacks
    cdef int state
    cdef Py_ssize_t body_bytes_sent
    # Request body bytes received so far, counted against max_request_body_size.
    cdef Py_ssize_t body_bytes_received
    # An async hook running, and the events waiting for it (or for resume_reading).
    cdef object task
    cdef int task_event
    cdef Py_ssize_t task_bytes
    cdef object events
    # The protocol the request asks to switch to (HTTP/2's :protocol), and its
    # WebSocket once the handler has asked for it (websocket.pxi).
    cdef public bytes upgrade_protocol
    cdef WebSocket _websocket

    # Called by its protocol, as the request arrives and the stream ends.
    cdef int attach(self, HTTPProtocol protocol, int32_t stream_id) except -1
    cdef int add_header(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1
    cdef int add_trailer(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1
    cdef bint within_limit(self, size_t size) noexcept
    cdef int headers_received(self, bint end_stream) except -1
    cdef int data_received(self, const uint8_t *data, size_t length) except -1
    cdef int request_received(self) except -1
    cdef ssize_t read_body(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2
    cdef int closed(self, uint32_t error_code) except -1
    cdef void fail(self, str where, object exc)
    cdef int respond_error(self, int status, bytes body) except -1

    # Its own lifecycle.
    cdef int start_response(self, int status, HeaderBlock block, BodySource source) except -1
    cdef void deliver(self, int event, object data) except *
    cdef void run_event(self, int event, object data) except *
    cdef void drain_events(self) except *
    cdef int continue_request(self) except -1
    cdef int add_raw_header(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1
    cdef void release_raw_headers(self) noexcept
    cdef list build_headers(self)


# -- what every protocol offers its streams (protocol.pxi) -------------------------

cdef class HTTPProtocol:
    cdef object transport
    cdef object loop
    cdef type handler_class
    cdef int handler_callbacks
    # The open streams; a stream's user data in the C library is a borrowed
    # pointer to the handler owned here (ClientSession keeps a list of its own
    # instead: open_stream_count() counts either).
    cdef dict streams
    cdef readonly object client_address
    cdef object client_certificate
    cdef bytes scheme
    cdef bint access_log
    cdef readonly bint push_early_hints
    # A request header block larger than this gets 431.
    cdef size_t max_header_list_size
    # A request body larger than this gets 413 (PY_SSIZE_T_MAX: no limit).
    cdef readonly Py_ssize_t max_request_body_size
    # "2" or "1.1": for the access log and handler.http_version.
    cdef str http_version
    # Handlers that failed since the last look: (handler, where, exception).
    cdef list failures
    # Inside a call into the C library: act on what callbacks record afterwards.
    cdef bint in_feed
    cdef bint flush_scheduled
    # A KeyboardInterrupt or SystemExit from application code, raised again
    # once the failures around it are answered and the output is flushed.
    cdef object escape
    # Output being batched: a bytes object we alone hold, filled in place
    # (see write_output).
    cdef PyObject *output
    cdef size_t output_length
    cdef size_t output_capacity
    cdef bint writing_paused
    cdef readonly double last_activity
    # The Alt-Svc field value added to every response (None: none), set by
    # the connection; HTTP/2 also announces it in an ALTSVC frame.
    cdef public bytes alt_svc

    # The stream interface, downwards: each protocol implements these.
    cdef int submit_response(self, BaseRequestHandler stream, HeaderBlock block) except -1
    cdef int submit_info(self, BaseRequestHandler stream, HeaderBlock block) except -1
    cdef object submit_push(self, BaseRequestHandler parent, HeaderBlock request,
                            bytes method, bytes path, int status, HeaderBlock response,
                            BodySource source)
    cdef bint push_enabled(self)
    cdef void resume_body(self, BaseRequestHandler stream)
    cdef void consume(self, BaseRequestHandler stream, size_t length) noexcept
    cdef void discard(self, size_t length) noexcept
    cdef void reset_stream(self, BaseRequestHandler stream, uint32_t error_code)
    cdef void request_flush(self)

    # Shared by every protocol.
    cdef void add_alt_svc(self, HeaderBlock block) noexcept
    cdef int reserve_output(self, size_t n) noexcept
    cdef void write_output(self) except *
    cdef void release_output(self) noexcept
    cdef BaseRequestHandler new_handler(self, int32_t stream_id)
    cdef void close_websockets(self) except *
    cdef void stream_failed(self, BaseRequestHandler stream, str where, object exc)
    cdef void process_failures(self) except *
    cdef void after_app_work(self) except *
    cdef void log_access(self, BaseRequestHandler stream)
    cdef void raise_escape(self) except *
    cdef Py_ssize_t open_stream_count(self) noexcept


# -- HTTP/2 (http2.pxi, memory.pxi) ------------------------------------------------

# The kernel-mapped blocks one session's allocator holds (memory.pxi).
ctypedef struct PageBlocks:
    void *ptr[MAX_PAGE_BLOCKS]
    size_t size[MAX_PAGE_BLOCKS]


cdef class GuardBudgets:
    # A server's GuardLimits (nghttp2py/settings.py), for the frame guard (guard.pxi).
    cdef readonly double reset_burst, reset_rate
    cdef readonly double idle_frame_burst, idle_frame_rate, idle_frame_credit
    cdef readonly uint32_t max_continuations, max_oversized_blocks
    cdef readonly size_t abandon_factor, slice_bytes
    cdef readonly double slice_seconds


cdef class Session(HTTPProtocol):
    cdef nghttp2_session *session
    # Blocks of the session's memory allocator: valid until nghttp2_session_del.
    cdef PageBlocks page_blocks
    # A BaseException from a callback that is not a handler's: handled once
    # the C call has returned.
    cdef object fatal
    cdef bint received_data
    cdef double reset_tokens
    cdef double reset_stamp
    # Hostile peers (SECURITY.md): src/guard.pxi looks at every frame header
    # before nghttp2 processes the frame, and charges it to these budgets.
    # A server session is guarded; a client session (ClientSession) is not.
    cdef bint guarded
    cdef GuardBudgets budgets
    cdef uint32_t scan_skip
    cdef uint8_t scan_have
    cdef uint8_t scan_head[FRAME_HEADER_LENGTH]
    cdef bint preface_fed
    cdef bint in_header_block
    cdef bint block_ends
    cdef uint32_t continuations
    cdef int32_t max_client_stream
    cdef uint64_t opened_ids[STREAM_WINDOW_WORDS]
    cdef uint64_t reset_sent_ids[STREAM_WINDOW_WORDS]
    cdef uint64_t reset_received_ids[STREAM_WINDOW_WORDS]
    cdef double idle_frame_tokens
    cdef double idle_frame_stamp
    cdef uint32_t oversized_blocks
    # A header block held back until it ends (oversized.pxi), and the stream
    # whose block had a field nghttp2 could not decode (0: none), the largest
    # dynamic table the client may use.
    cdef bytearray capture
    cdef bint capture_complete
    cdef int32_t oversized_field_stream
    cdef uint64_t hpack_table_limit
    cdef const char *refused_for
    cdef object backlog
    # Since when a frame header or a header block is incomplete (0: none).
    cdef double header_stall_since
    cdef unsigned long long received_bytes
    # Timeouts.request_header and Timeouts.min_rate (0: off), set by the connection.
    cdef public double header_timeout
    cdef public double min_rate
    cdef object stall_timer
    cdef object rate_timer
    cdef unsigned long long rate_mark_bytes
    cdef readonly bint preface_received
    cdef readonly bint settings_acked
    cdef readonly bint shutting_down
    cdef readonly bint ping_outstanding
    cdef bint shutdown_ping_acked
    cdef bint final_goaway_sent

    cdef int _create(self, dict settings) except -1
    cdef int _submit_settings(self, dict settings) except -1
    cdef void _feed(self, object data, Py_ssize_t length) except *
    # An HTTP/1.1 request upgraded to h2c becomes stream 1 (see http1.pxi).
    cdef int accept_upgrade(self, bytes settings_payload, BaseRequestHandler handler) except -1
    cdef int start_upgraded(self, BaseRequestHandler handler, bytes body) except -1
    cdef void _after_callbacks(self) except *
    cdef void _fail_session(self, ssize_t code)
    cdef void _reject_preface(self, const char *data, Py_ssize_t length)
    cdef void _log_goaway(self, const nghttp2_frame *frame)
    cdef void _refuse_body(self, BaseRequestHandler handler) except *
    cdef bint _response_complete(self, BaseRequestHandler handler) noexcept

    # Bodies of the C callbacks (cb_on_* trampolines in http2.pxi).
    cdef int _on_begin_headers(self, const nghttp2_frame *frame) except -1
    cdef int _on_header(self, const nghttp2_frame *frame, nghttp2_rcbuf *name,
                        nghttp2_rcbuf *value) except -1
    cdef int _on_frame_recv(self, const nghttp2_frame *frame) except -1
    cdef void _on_connection_frame_recv(self, const nghttp2_frame *frame) except *
    cdef int _on_data_chunk_recv(self, int32_t stream_id, const uint8_t *data,
                                 size_t length) except -1
    cdef int _on_stream_close(self, int32_t stream_id, uint32_t error_code) except -1
    cdef void close_open_streams(self) except *
    cdef ssize_t _on_data_source_read(self, BaseRequestHandler stream, uint8_t *buf,
                                      size_t length, uint32_t *flags) noexcept
    cdef int _on_send_data(self, BodySource body, const uint8_t *framehd,
                           size_t length) noexcept


# -- WebSockets (websocket.pxi) ----------------------------------------------------

# A WebSocket's state (RFC 6455 section 4 and 7).
cdef enum:
    WS_CONNECTING = 0
    WS_OPEN = 1
    # Our close frame is sent; waiting for the peer's.
    WS_CLOSING = 2
    WS_CLOSED = 3

# Frame opcodes (RFC 6455 section 5.2).
cdef enum:
    WS_CONTINUATION = 0x0
    WS_TEXT = 0x1
    WS_BINARY = 0x2
    WS_CLOSE = 0x8
    WS_PING = 0x9
    WS_PONG = 0xA


cdef class WebSocketOutput(BodySource):
    # Frames not yet taken by the protocol: data[start:end].
    cdef char *data
    cdef size_t start, end, capacity
    # No more frames: end the stream once the buffer is empty.
    cdef bint eof
    # The last read found nothing: the protocol waits for resume_body.
    cdef bint deferred
    cdef WebSocket websocket
    # A large payload sent from the application's own str/bytes, not copied in:
    # lent_data[lent_offset:lent_size] goes out when the buffer reaches lent_at.
    cdef object lent
    cdef const char *lent_data
    cdef size_t lent_at, lent_offset, lent_size
    # The NO_COPY read just made was of the lent payload (take() follows).
    cdef bint taking_lent

    cdef int append(self, const uint8_t *head, size_t head_size, const char *payload,
                    size_t size) except -1
    cdef int lend(self, const uint8_t *head, size_t head_size, object owner,
                  const char *payload, size_t size) except -1
    cdef size_t pending(self) noexcept
    cdef void taken(self) noexcept


cdef class WebSocket:
    cdef BaseRequestHandler stream
    cdef WebSocketOutput output
    cdef int state
    # Frames are still read (not after a close frame or a protocol error).
    cdef bint reading
    cdef readonly object subprotocol
    cdef readonly bytes extensions
    cdef object _close_code
    cdef str _close_reason
    cdef Py_ssize_t max_message_size
    cdef size_t write_limit
    cdef double ping_interval, ping_timeout, close_timeout
    cdef object ping_timer, close_timer
    cdef bint ping_outstanding
    # The frame being read: its header as it arrives, then its payload.
    cdef uint8_t header[14]
    cdef uint8_t header_length, header_needed
    cdef bint in_payload
    cdef uint8_t opcode
    cdef bint fin
    cdef uint8_t mask[4]
    cdef uint64_t frame_remaining
    cdef uint64_t frame_offset
    # The message being read (WS_CONTINUATION: none).
    cdef uint8_t message_opcode
    cdef bint message_compressed
    cdef char *message
    cdef size_t message_length, message_capacity
    # A message in one binary frame is unmasked straight into its bytes (else None).
    cdef bytes message_bytes
    cdef uint64_t compressed_length
    cdef uint32_t utf8_state
    cdef uint8_t control[125]
    cdef size_t control_length
    # Messages not yet taken by the application, and the received bytes whose
    # flow-control credit is held back until they are.
    cdef object messages
    cdef object waiter
    cdef object hook_task
    cdef bint has_hook
    cdef size_t held
    cdef list drain_waiters
    # permessage-deflate (RFC 7692): zlib objects, None when not negotiated.
    cdef object inflater, deflater
    cdef int inflate_bits, deflate_bits
    cdef bint reset_inflater, reset_deflater

    cdef int feed(self, const uint8_t *data, size_t length) except -1
    cdef int begin_frame(self) except -1
    cdef int reserve(self, size_t size) except -1
    cdef int frame_payload(self, const uint8_t *data, size_t length) except -1
    cdef int end_frame(self) except -1
    cdef int inflate(self, object chunk) except -1
    cdef int control_frame(self) except -1
    cdef int message_complete(self) except -1
    cdef void deliver(self, object message) except *
    cdef void run_hook(self, object message) except *
    cdef void release_credit(self) noexcept
    cdef object closed_error(self)
    cdef int send_frame(self, int opcode, const char *payload, size_t size,
                        bint compressed) except -1
    cdef int send_lent(self, int opcode, object owner, const char *payload, size_t size,
                       bint compressed) except -1
    cdef int queued(self) except -1
    cdef int send_close(self, int code, str reason) except -1
    cdef object new_deflater(self)
    cdef int send_compressed(self, int opcode, object payload) except -1
    cdef void start_close_timer(self)
    cdef int fail(self, int code, str reason) except -1
    cdef void finish(self) except *
    cdef void wake(self) except *
    cdef void output_drained(self, size_t pending) except *
    cdef void input_ended(self) except *
    cdef void stream_closed(self, uint32_t error_code) except *


# -- HTTP/1.1 (http1.pxi) ------------------------------------------------------------

cdef class HTTP1Connection(HTTPProtocol):
    # httptools.HttpRequestParser (llhttp), calling back this object's on_* methods.
    cdef object parser
    # The Session's settings, for an h2c upgrade; the limits of HTTP/1.1 too.
    cdef dict settings
    cdef int32_t next_stream_id
    # The request being parsed, and the one being answered (the head of the line).
    cdef BaseRequestHandler reading
    cdef BaseRequestHandler active
    cdef int reading_flags
    cdef int active_flags
    cdef int response_state
    # Body bytes the response head announced and not yet sent (-1: not counted).
    cdef Py_ssize_t response_remaining
    # Requests parsed while an earlier one is answered, in order: each a list
    # [handler, (event, data), ...] replayed in its turn. `deferred` is the
    # list of the request being parsed, when it waits.
    cdef object waiting
    cdef list deferred
    # The request being parsed: its content-length, the bytes of its head
    # that arrived across reads, and the Upgrade's HTTP2-Settings.
    cdef Py_ssize_t content_length
    cdef Py_ssize_t head_bytes
    # Reads fed so far, and the one in which the current head began.
    cdef size_t feeds
    cdef size_t head_feed
    cdef bytes http2_settings
    # A status that a callback decided (414, 431, 400...) before stopping the parser.
    cdef int error_status
    # Request body bytes handed to handlers (or waiting) and not yet consumed.
    cdef Py_ssize_t unconsumed
    cdef Py_ssize_t max_unconsumed
    cdef Py_ssize_t max_waiting
    # An upgrade request's body, read past the parser (which skips it).
    cdef bytearray upgrade_body
    cdef Py_ssize_t upgrade_remaining
    # After an Upgrade to websocket: the request whose stream carries the
    # connection's bytes from then on, and what arrived before its 101.
    cdef BaseRequestHandler tunnel
    cdef bytearray tunnel_input
    # When the head of the request being parsed began (0: none is).
    cdef readonly double head_started
    # No more requests are parsed on this connection.
    cdef bint stopped
    cdef bint reading_paused
    cdef readonly bint shutting_down

    cdef object take_upgrade(self, bytes rest)
    cdef object read_upgrade_body(self, object data, Py_ssize_t length)
    cdef object finish_upgrade(self, bytes body, bytes rest)
    cdef int open_tunnel(self, BaseRequestHandler handler, int flags, bytes rest) except -1
    cdef int feed_tunnel(self, object data, Py_ssize_t length) except -1
    cdef int deliver_tunnel_input(self) except -1
    cdef bint tunnel_input_ended(self) except *
    cdef int parse_failed(self, object exc) except -1
    cdef int fail_request(self, int status, str reason) except -1
    cdef int stop_parsing(self, int status) except -1
    cdef int headers_event(self, BaseRequestHandler handler, int flags, bint end_stream) except -1
    cdef int done_event(self, BaseRequestHandler handler) except -1
    cdef int replay(self, list entry) except -1
    cdef int answer_error(self, BaseRequestHandler handler, int status) except -1
    cdef void advance(self) except *
    cdef int pull_body(self) except -1
    cdef int lend_body(self, BaseRequestHandler stream) except -1
    cdef int end_body(self, BaseRequestHandler stream) except -1
    cdef int write_head(self, HeaderBlock block, bint skip_length, bytes framing,
                        bytes connection) except -1
    cdef int write_raw(self, bytes data) except -1
    cdef void close_connection(self) except *
    cdef void update_reading(self) except *

# -- HTTP/3 (http3.pxi) ------------------------------------------------------------

cdef class HTTP3Connection(HTTPProtocol):
    # The QUIC and HTTP/3 framing side (nghttp2py.quic.QuicSession): its
    # send_headers / send_data / send_room / consume / reset_stream /
    # stream_closed / request_transmit are all this class calls.
    cdef object engine
    # Streams whose response is submitted and not yet complete, by id: flush()
    # pulls their bodies (and closes the bodiless ones).
    cdef dict sending
    # Requests on streams from this id on are refused (a GOAWAY names it; -1: none).
    cdef int64_t goaway_id
    cdef readonly int64_t last_stream_id
    cdef readonly bint shutting_down

    cdef void refuse_body(self, BaseRequestHandler handler) except *
    cdef int pull_body(self, BaseRequestHandler stream) except -1
    cdef void finish_stream(self, BaseRequestHandler stream) except *


# -- HTTP/2 client (client.pxi) -----------------------------------------------------

# A response handler's state bits, beside the shared STREAM_CLOSED,
# HANDLER_FAILED, PUSHED, HEADERS_TOO_LARGE and READING_PAUSED.
cdef enum:
    FINAL_HEADERS = 256
    RESPONSE_DONE = 512


cdef class BaseResponseHandler:
    cdef ClientSession session
    cdef readonly int stream_id
    cdef public int status
    cdef object _headers
    # The response header fields until `headers` is first read.
    cdef RawFields raw_headers
    cdef public list trailers
    cdef public bytes scheme
    # The request's method and path as given (str or bytes): `method` and
    # `path` are their bytes.
    cdef object _method
    cdef public bytes host
    cdef object _path
    cdef readonly bint pushed
    cdef public object error
    cdef int state
    # The HAS_ON_* bits of the hooks its class overrides: the others are not called.
    cdef int hooks
    cdef size_t header_list_size
    # Response bytes taken while reading is paused: the server's credit for later.
    cdef size_t unconsumed
    # The request body, pulled as the server's window allows.
    cdef BodySource body
    # Its neighbours in its session's list of open streams (borrowed: the
    # session owns one reference to each stream in the list).
    cdef PyObject *prev_open
    cdef PyObject *next_open
    cdef bint is_open

    # A hook or the request body raised: reset the stream after the C call.
    cdef void fail(self, str where, object exc)
    # Its session tells it what arrived (a response header block's fields, the
    # end of the block, body data, END_STREAM) and when the stream closed.
    cdef int attach(self, ClientSession session, int32_t stream_id) except -1
    cdef int add_field(self, const nghttp2_vec *name, const nghttp2_vec *value) except -1
    cdef int header_block_received(self) except -1
    cdef int data_received(self, const uint8_t *data, size_t length) except -1
    cdef int response_received(self) except -1
    cdef int closed(self, uint32_t error_code) except -1


# How far a BufferedResponseHandler's response has come.
cdef enum:
    PHASE_WAITING = 0
    PHASE_HEADERS = 1
    PHASE_DONE = 2


cdef class PushPromise:
    cdef readonly BaseResponseHandler parent
    cdef readonly int stream_id
    cdef readonly bytes method
    cdef readonly bytes scheme
    cdef readonly bytes host
    cdef readonly bytes path
    cdef readonly list headers
    cdef bint decided


cdef class AsyncRequestBody(AsyncIterBody):
    cdef BaseResponseHandler response


cdef class CAwaitable


cdef class ClientSession(Session):
    # The open streams, in a list through the handlers (see BaseResponseHandler):
    # no dict, no int object per stream. `streams` stays empty.
    cdef PyObject *first_open
    cdef Py_ssize_t open_count
    # Streams whose waiting task is to be woken: one loop callback wakes them all.
    cdef list ready
    # A future of the loop's, done: the woken tasks are handed it (see run_wakeup).
    cdef object _done_future
    cdef object _loop_getter
    # The timer that checks the timeouts of the responses being waited for.
    cdef object watchdog
    # Promised streams whose PUSH_PROMISE is still being received, by id.
    cdef dict promises
    cdef readonly object goaway
    # The :authority of request() (its :scheme is the Session's scheme).
    cdef readonly bytes authority

    cdef void reset_response(self, BaseResponseHandler stream, uint32_t error_code)
    cdef void reset_stream_id(self, int32_t stream_id, uint32_t error_code)
    cdef void consume_response(self, BaseResponseHandler stream, size_t length) noexcept
    cdef void resume_request_body(self, BaseResponseHandler stream)
    cdef int accept(self, PushPromise promise, BaseResponseHandler handler) except -1
    cdef int32_t _submit(self, BaseResponseHandler handler, object method, object scheme,
                         object authority, object path, object headers,
                         object body) except -1
    cdef int _on_push_promise(self, const nghttp2_frame *frame) except -1
    cdef bint accepting(self) noexcept
    cdef void queue_wakeup(self, CAwaitable awaitable) except *
    cdef void add_open(self, BaseResponseHandler handler) noexcept
    cdef void remove_open(self, BaseResponseHandler handler) noexcept
    cdef list open_handlers(self)
    cdef int close_handler(self, BaseResponseHandler handler, uint32_t error_code) except -1
    cdef object done_future(self)
    cdef object loop_getter(self)
    cdef void watch(self) except *
    cdef ssize_t _on_request_body_read(self, BaseResponseHandler stream, uint8_t *buf,
                                       size_t length, uint32_t *flags) noexcept


# Where the task waiting on a CAwaitable is: not waiting, waiting (for the
# stream's next event), woken (its wake-up queued), or cancelled.
cdef enum:
    WAIT_IDLE = 0
    WAIT_ARMED = 1
    WAIT_WOKEN = 2
    WAIT_CANCELLED = 3


cdef class BufferedResponseHandler(BaseResponseHandler):
    cdef public int phase
    cdef public list chunks
    cdef public Py_ssize_t buffered
    # read() wants the whole body: the high-water mark no longer pauses reading.
    cdef public bint reading_all
    cdef public long long close_code
    # The Response, when the client accepts push (its promises go there).
    cdef public object response
    # The awaitable a task waits on for the stream's next event, if one does.
    cdef CAwaitable _waiter
    # Timeouts, in seconds (0: none); the deadline is on the monotonic clock.
    cdef public double read_timeout
    cdef public double total_timeout
    cdef double deadline
    # The timeout that ended the response, once one has.
    cdef public object timeout_error

    cdef bint timed(self) noexcept
    cdef void wake(self) except *
    cdef object take_all(self)
    cdef bint check_time(self, double now) except -1
    cdef str request_line(self)


cdef class ResponseBase:
    cdef public object _client
    cdef public str method
    cdef public str _path
    cdef public BufferedResponseHandler _stream
    cdef public object _connection
    cdef public object _timeout
    cdef public object _error
    cdef public object _body
    cdef public bint _streaming
    cdef public object _headers
    cdef public list _pushed_responses

    cdef BufferedResponseHandler check(self)


cdef class CAwaitable:
    cdef bint finished
    # What the await returns, once done.
    cdef object value
    # While the task waits on it: the stream waited on, and its session.
    cdef BufferedResponseHandler waiting_on
    cdef ClientSession session
    # Where the waiting task is: not waiting, waiting, woken, or cancelled.
    cdef int state
    # The waiting task's wake-up (from add_done_callback), and its context.
    cdef object wakeup
    cdef object wakeup_context
    cdef object cancel_message
    # When the wait began (monotonic), for the timeouts.
    cdef double started
    # asyncio's _asyncio_future_blocking: a task waits on it.
    cdef bint blocking

    cdef void wait_on(self, BufferedResponseHandler stream) except *
    cdef void wake(self) except *
    cdef void end(self, int state) except *
    cdef void stop_waiting(self) noexcept
    cdef void run_wakeup(self) except *
    cdef bint resume(self) except -1
    cdef void give_up(self) except *
    cdef object take_value(self)
    cdef BufferedResponseHandler step(self)
    cdef void abandon(self) except *


cdef class Ready(CAwaitable):
    pass


cdef class NextEvent(CAwaitable):
    cdef BufferedResponseHandler stream


cdef class PendingBody(CAwaitable):
    cdef ResponseBase response


cdef class ClientBase:
    cdef readonly object connection
    cdef readonly ClientSession session
    cdef tuple _headers
    # _headers, validated: what each request copies.
    cdef HeaderBlock header_fields
    cdef public bint push
    cdef public type response_class
    cdef object _timeout
    cdef double read_timeout
    cdef double total_timeout


cdef class PendingRequest(CAwaitable):
    cdef ClientBase client
    cdef str method
    cdef str url
    cdef str path
    cdef object headers
    cdef object body
    cdef object timeout
    cdef double read_timeout
    cdef double total_timeout
    cdef int retries
    # The Response being waited for (until its header block is in).
    cdef ResponseBase response

    cdef void prepare(self) except *
    cdef ResponseBase submit(self)


# -- HPACK (hpack.pxi) -------------------------------------------------------------

cdef class HDTableEntry:
    cdef readonly bytes name
    cdef readonly bytes value
    cdef readonly Py_ssize_t namelen
    cdef readonly Py_ssize_t valuelen
    cdef readonly Py_ssize_t space


cdef class HDDeflater:
    cdef nghttp2_hd_deflater *deflater
    cdef bint failed

    cdef int check_usable(self) except -1


cdef class HDInflater:
    cdef nghttp2_hd_inflater *inflater
    cdef bint failed

    cdef int check_usable(self) except -1


# -- ASGI applications (asgi.pxi) ---------------------------------------------------

# Request bytes buffered for an app that has not called receive() before the
# handler pauses reading; response bytes queued before send() waits.
cdef enum:
    ASGI_READ_AHEAD = 65536
    ASGI_WRITE_AHEAD = 65536

# An ASGIHandler's progress (its `flow` bits).
cdef enum:
    ASGI_STARTED = 1        # http.response.start received
    ASGI_STREAMING = 2      # the response went out with a streamed body
    ASGI_BODY_END = 4       # the last http.response.body received
    ASGI_COMPLETE = 8       # the response is whole (trailers included)
    ASGI_TRAILERS = 16      # the app announced trailers
    ASGI_BODY_DONE = 32     # the whole request body has arrived
    ASGI_BODY_SENT = 64     # the app has received the last http.request
    ASGI_DISCONNECTED = 128  # the stream has closed
    ASGI_RESET = 256        # ... before the response was whole: http.disconnect
    ASGI_WEBSOCKET = 512    # a websocket scope
    ASGI_WS_CONNECT = 1024  # websocket.connect received by the app
    ASGI_WS_ACCEPTED = 2048  # websocket.accept sent
    ASGI_WS_CLOSED = 4096   # websocket.close sent (a refusal, before accept)


cdef class ASGIConfig:
    cdef readonly object app
    cdef readonly str root_path
    cdef bytes root_path_bytes
    cdef public object server
    cdef public object state
    cdef readonly dict asgi
    cdef public dict extensions
    cdef public dict websocket_extensions
    cdef public dict websocket_options
    cdef public object push_runner
    cdef public bint tls
    cdef public Py_ssize_t requests
    # The loop seen without a task factory: its tasks are made directly.
    cdef object task_loop
    # The fixed part of every scope (http, websocket), and the server they were made for.
    cdef dict template
    cdef dict websocket_template
    cdef object template_server

    cdef dict scope_template(self)
    cdef dict websocket_scope_template(self)


cdef class ASGIHandler(BaseRequestHandler):
    cdef ASGIConfig config
    cdef readonly dict scope
    cdef object app_task
    cdef int flow
    cdef list request_chunks
    cdef Py_ssize_t buffered
    cdef list receive_waiters
    cdef object response_status
    cdef object response_headers
    cdef list out_chunks
    cdef Py_ssize_t out_bytes
    cdef object send_waiter
    cdef list trailer_fields

    cdef dict build_scope(self, ASGIConfig config)
    cdef dict build_websocket_scope(self, ASGIConfig config)
    cdef void fill_scope(self, dict scope, ASGIConfig config) except *
    cdef list scope_headers(self)
    cdef dict tls_extension(self)
    cdef bint message_ready(self)
    cdef dict next_message(self)
    cdef void wake_receiver(self) except *
    cdef object send_body(self, dict message)
    cdef object send_trailers(self, dict message)
    cdef object send_path(self, path)
    cdef void respond(self, body) except *
    cdef void response_complete(self) except *
    cdef void app_finished(self, object exception) except *
    cdef bint websocket_finished(self, object exception) except -1
    cdef object websocket_close(self, dict message)
