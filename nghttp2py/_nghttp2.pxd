# The engine's classes, the C-level interface between them, and its constants.
#
# Three layers meet here (see README.md, "Architecture"):
#
#   application   BaseRequestHandler (one per request stream; users subclass it)
#   ------------- the stream interface ------------------------------------------
#                 up:   on_headers / on_data / on_request_done / on_close
#                 down: HTTPProtocol.submit_response / submit_info / submit_push /
#                       push_enabled / resume_body / consume / reset_stream
#   protocol      HTTPProtocol subclasses: Session (HTTP/2 over libnghttp2)
#
# A handler talks only to its HTTPProtocol, through the methods declared on
# it below; only a protocol talks to its C library. A protocol owns its
# connection's state, a handler its stream's: each changes its own fields.

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset
from libc.time cimport time, time_t
from posix.mman cimport MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from cpython.buffer cimport (PyBUF_SIMPLE, PyBUF_WRITE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.list cimport PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.object cimport PyObject, PyTypeObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from nghttp2 cimport *


from cpython.exc cimport PyErr_Clear
from cpython.ref cimport Py_XDECREF

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
    INLINE_NV = 8
    # nghttp2 callocs of this size and more are mapped from the kernel
    # (memory.pxi), at most this many at a time per session.
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


# -- header blocks (headers.pxi) -------------------------------------------------

cdef class HeaderBlock:
    cdef nghttp2_nv *nva
    cdef size_t length, capacity
    cdef object headers
    cdef list keep
    cdef bytes date
    cdef const char *content_length
    cdef Py_ssize_t content_length_size
    cdef nghttp2_nv inline_nva[INLINE_NV]
    cdef char length_text[24]

    cdef int reserve(self, size_t capacity) except -1
    cdef object keep_alive(self, object value)
    cdef void add_static(self, bytes name, bytes value) noexcept
    cdef void add(self, const char *name, Py_ssize_t name_size, const char *value,
                  Py_ssize_t value_size) noexcept
    cdef void add_bytes(self, bytes name, bytes value) noexcept
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
    # pointer to the handler owned here.
    cdef dict streams
    cdef readonly object client_address
    cdef object client_certificate
    cdef bytes scheme
    cdef bint access_log
    cdef readonly bint push_early_hints
    # A request header block larger than this gets 431.
    cdef size_t max_header_list_size
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
    cdef BaseRequestHandler new_handler(self, int32_t stream_id)
    cdef void stream_failed(self, BaseRequestHandler stream, str where, object exc)
    cdef void process_failures(self) except *
    cdef void after_app_work(self) except *
    cdef void log_access(self, BaseRequestHandler stream)
    cdef void raise_escape(self) except *


# -- HTTP/2 (http2.pxi, memory.pxi) ------------------------------------------------

# The kernel-mapped blocks one session's allocator holds (memory.pxi).
ctypedef struct PageBlocks:
    void *ptr[MAX_PAGE_BLOCKS]
    size_t size[MAX_PAGE_BLOCKS]


cdef class Session(HTTPProtocol):
    cdef nghttp2_session *session
    # Blocks of the session's memory allocator: valid until nghttp2_session_del.
    cdef PageBlocks page_blocks
    # A BaseException from a callback that is not a handler's: handled once
    # the C call has returned.
    cdef object fatal
    cdef bint writing_paused
    cdef bint received_data
    cdef double reset_tokens
    cdef double reset_stamp
    # Hostile peers (SECURITY.md): src/guard.pxi looks at every frame header
    # before nghttp2 processes the frame, and charges it to these budgets.
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
    cdef readonly double last_activity
    cdef readonly bint shutting_down
    cdef readonly bint ping_outstanding
    cdef bint shutdown_ping_acked
    cdef bint final_goaway_sent
    # Output being batched: a bytes object we alone hold, filled in place
    # (see _write_output).
    cdef PyObject *output
    cdef size_t output_length
    cdef size_t output_capacity

    cdef int _create(self, dict settings) except -1
    cdef int _reserve(self, size_t n) noexcept
    cdef void _write_output(self) except *
    cdef void _after_callbacks(self) except *
    cdef void _fail_session(self, ssize_t code)
    cdef void _reject_preface(self, const char *data, Py_ssize_t length)
    cdef void _log_goaway(self, const nghttp2_frame *frame)

    # Bodies of the C callbacks (cb_on_* trampolines in http2.pxi).
    cdef int _on_begin_headers(self, const nghttp2_frame *frame) except -1
    cdef int _on_header(self, const nghttp2_frame *frame, nghttp2_rcbuf *name,
                        nghttp2_rcbuf *value) except -1
    cdef void _on_pseudo_header(self, BaseRequestHandler handler, const nghttp2_vec *name,
                                const nghttp2_vec *value)
    cdef int _on_frame_recv(self, const nghttp2_frame *frame) except -1
    cdef void _on_connection_frame_recv(self, const nghttp2_frame *frame) except *
    cdef int _on_data_chunk_recv(self, int32_t stream_id, const uint8_t *data,
                                 size_t length) except -1
    cdef int _on_stream_close(self, int32_t stream_id, uint32_t error_code) except -1
    cdef ssize_t _on_data_source_read(self, BaseRequestHandler stream, uint8_t *buf,
                                      size_t length, uint32_t *flags) noexcept
    cdef int _on_send_data(self, BaseRequestHandler stream, const uint8_t *framehd,
                           size_t length) noexcept


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
