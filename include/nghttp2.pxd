# Declarations of the parts of nghttp2/nghttp2.h that nghttp2py uses.
# Names are those of the C header; see it for the meaning of each call.
# Target: libnghttp2 >= 1.52 (Debian 12), the ssize_t API. Not nogil: every call
# and every callback runs with the GIL held, so callbacks need no GIL juggling.

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t


cdef extern from "nghttp2/nghttp2.h":
    const char *NGHTTP2_VERSION
    int NGHTTP2_VERSION_NUM

    ctypedef struct nghttp2_session
    ctypedef struct nghttp2_option
    ctypedef struct nghttp2_session_callbacks
    ctypedef struct nghttp2_rcbuf
    ctypedef struct nghttp2_hd_deflater
    ctypedef struct nghttp2_hd_inflater
    ctypedef struct nghttp2_priority_spec
    ctypedef struct nghttp2_stream

    ctypedef enum nghttp2_stream_proto_state:
        NGHTTP2_STREAM_STATE_IDLE
        NGHTTP2_STREAM_STATE_OPEN
        NGHTTP2_STREAM_STATE_RESERVED_LOCAL
        NGHTTP2_STREAM_STATE_RESERVED_REMOTE
        NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL
        NGHTTP2_STREAM_STATE_HALF_CLOSED_REMOTE
        NGHTTP2_STREAM_STATE_CLOSED

    ctypedef struct nghttp2_info:
        int age
        int version_num
        const char *version_str
        const char *proto_str

    nghttp2_info *nghttp2_version(int least_version)

    # errors
    ctypedef enum nghttp2_error:
        NGHTTP2_ERR_INVALID_ARGUMENT
        NGHTTP2_ERR_BUFFER_ERROR
        NGHTTP2_ERR_WOULDBLOCK
        NGHTTP2_ERR_PROTO
        NGHTTP2_ERR_INVALID_FRAME
        NGHTTP2_ERR_EOF
        NGHTTP2_ERR_DEFERRED
        NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
        NGHTTP2_ERR_STREAM_CLOSED
        NGHTTP2_ERR_STREAM_CLOSING
        NGHTTP2_ERR_STREAM_SHUT_WR
        NGHTTP2_ERR_INVALID_STREAM_ID
        NGHTTP2_ERR_INVALID_STREAM_STATE
        NGHTTP2_ERR_DEFERRED_DATA_EXIST
        NGHTTP2_ERR_START_STREAM_NOT_ALLOWED
        NGHTTP2_ERR_GOAWAY_ALREADY_SENT
        NGHTTP2_ERR_INVALID_HEADER_BLOCK
        NGHTTP2_ERR_INVALID_STATE
        NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
        NGHTTP2_ERR_FRAME_SIZE_ERROR
        NGHTTP2_ERR_HEADER_COMP
        NGHTTP2_ERR_FLOW_CONTROL
        NGHTTP2_ERR_INSUFF_BUFSIZE
        NGHTTP2_ERR_PAUSE
        NGHTTP2_ERR_TOO_MANY_INFLIGHT_SETTINGS
        NGHTTP2_ERR_PUSH_DISABLED
        NGHTTP2_ERR_DATA_EXIST
        NGHTTP2_ERR_SESSION_CLOSING
        NGHTTP2_ERR_HTTP_HEADER
        NGHTTP2_ERR_HTTP_MESSAGING
        NGHTTP2_ERR_REFUSED_STREAM
        NGHTTP2_ERR_INTERNAL
        NGHTTP2_ERR_CANCEL
        NGHTTP2_ERR_SETTINGS_EXPECTED
        NGHTTP2_ERR_FATAL
        NGHTTP2_ERR_NOMEM
        NGHTTP2_ERR_CALLBACK_FAILURE
        NGHTTP2_ERR_BAD_CLIENT_MAGIC
        NGHTTP2_ERR_FLOODED

    const char *nghttp2_strerror(int lib_error_code)
    const char *nghttp2_http2_strerror(uint32_t error_code)

    ctypedef enum nghttp2_error_code:
        NGHTTP2_NO_ERROR
        NGHTTP2_PROTOCOL_ERROR
        NGHTTP2_INTERNAL_ERROR
        NGHTTP2_FLOW_CONTROL_ERROR
        NGHTTP2_SETTINGS_TIMEOUT
        NGHTTP2_STREAM_CLOSED
        NGHTTP2_FRAME_SIZE_ERROR
        NGHTTP2_REFUSED_STREAM
        NGHTTP2_CANCEL
        NGHTTP2_COMPRESSION_ERROR
        NGHTTP2_CONNECT_ERROR
        NGHTTP2_ENHANCE_YOUR_CALM
        NGHTTP2_INADEQUATE_SECURITY
        NGHTTP2_HTTP_1_1_REQUIRED

    # reference-counted header buffers (read only)
    ctypedef struct nghttp2_vec:
        uint8_t *base
        size_t len

    nghttp2_vec nghttp2_rcbuf_get_buf(nghttp2_rcbuf *rcbuf)

    # name/value pairs
    ctypedef enum nghttp2_nv_flag:
        NGHTTP2_NV_FLAG_NONE
        NGHTTP2_NV_FLAG_NO_INDEX
        NGHTTP2_NV_FLAG_NO_COPY_NAME
        NGHTTP2_NV_FLAG_NO_COPY_VALUE

    ctypedef struct nghttp2_nv:
        uint8_t *name
        uint8_t *value
        size_t namelen
        size_t valuelen
        uint8_t flags

    # frames
    ctypedef enum nghttp2_frame_type:
        NGHTTP2_DATA
        NGHTTP2_HEADERS
        NGHTTP2_PRIORITY
        NGHTTP2_RST_STREAM
        NGHTTP2_SETTINGS
        NGHTTP2_PUSH_PROMISE
        NGHTTP2_PING
        NGHTTP2_GOAWAY
        NGHTTP2_WINDOW_UPDATE
        NGHTTP2_CONTINUATION
        NGHTTP2_PRIORITY_UPDATE

    ctypedef enum nghttp2_flag:
        NGHTTP2_FLAG_NONE
        NGHTTP2_FLAG_END_STREAM
        NGHTTP2_FLAG_END_HEADERS
        NGHTTP2_FLAG_ACK
        NGHTTP2_FLAG_PADDED
        NGHTTP2_FLAG_PRIORITY

    ctypedef enum nghttp2_settings_id:
        NGHTTP2_SETTINGS_HEADER_TABLE_SIZE
        NGHTTP2_SETTINGS_ENABLE_PUSH
        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        NGHTTP2_SETTINGS_MAX_FRAME_SIZE
        NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL
        NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES

    ctypedef struct nghttp2_frame_hd:
        size_t length
        int32_t stream_id
        uint8_t type
        uint8_t flags

    ctypedef union nghttp2_data_source:
        int fd
        void *ptr

    ctypedef enum nghttp2_data_flag:
        NGHTTP2_DATA_FLAG_NONE
        NGHTTP2_DATA_FLAG_EOF
        NGHTTP2_DATA_FLAG_NO_END_STREAM
        NGHTTP2_DATA_FLAG_NO_COPY

    ctypedef enum nghttp2_headers_category:
        NGHTTP2_HCAT_REQUEST
        NGHTTP2_HCAT_RESPONSE
        NGHTTP2_HCAT_PUSH_RESPONSE
        NGHTTP2_HCAT_HEADERS

    ctypedef struct nghttp2_headers:
        nghttp2_frame_hd hd
        nghttp2_nv *nva
        size_t nvlen
        nghttp2_headers_category cat

    ctypedef struct nghttp2_rst_stream:
        nghttp2_frame_hd hd
        uint32_t error_code

    ctypedef struct nghttp2_settings_entry:
        int32_t settings_id
        uint32_t value

    ctypedef struct nghttp2_settings:
        nghttp2_frame_hd hd
        size_t niv
        nghttp2_settings_entry *iv

    ctypedef struct nghttp2_push_promise:
        nghttp2_frame_hd hd
        int32_t promised_stream_id

    ctypedef struct nghttp2_goaway:
        nghttp2_frame_hd hd
        int32_t last_stream_id
        uint32_t error_code
        uint8_t *opaque_data
        size_t opaque_data_len

    ctypedef union nghttp2_frame:
        nghttp2_frame_hd hd
        nghttp2_headers headers
        nghttp2_rst_stream rst_stream
        nghttp2_settings settings
        nghttp2_push_promise push_promise
        nghttp2_goaway goaway


# nghttp2 runs callbacks only inside the calls that nghttp2py makes with the
# GIL held (mem_recv, mem_send, ...), so the callback types are not nogil: the
# trampolines need not take the GIL again.
cdef extern from "nghttp2/nghttp2.h":
    ctypedef ssize_t (*nghttp2_data_source_read_callback)(
        nghttp2_session *session, int32_t stream_id, uint8_t *buf,
        size_t length, uint32_t *data_flags, nghttp2_data_source *source,
        void *user_data) noexcept
    ctypedef int (*nghttp2_send_data_callback)(
        nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
        size_t length, nghttp2_data_source *source, void *user_data) noexcept
    ctypedef int (*nghttp2_on_frame_recv_callback)(
        nghttp2_session *session, const nghttp2_frame *frame,
        void *user_data) noexcept
    ctypedef int (*nghttp2_on_data_chunk_recv_callback)(
        nghttp2_session *session, uint8_t flags, int32_t stream_id,
        const uint8_t *data, size_t len, void *user_data) noexcept
    ctypedef int (*nghttp2_on_frame_send_callback)(
        nghttp2_session *session, const nghttp2_frame *frame,
        void *user_data) noexcept
    ctypedef int (*nghttp2_on_stream_close_callback)(
        nghttp2_session *session, int32_t stream_id, uint32_t error_code,
        void *user_data) noexcept
    ctypedef int (*nghttp2_on_begin_headers_callback)(
        nghttp2_session *session, const nghttp2_frame *frame,
        void *user_data) noexcept
    ctypedef int (*nghttp2_on_header_callback2)(
        nghttp2_session *session, const nghttp2_frame *frame,
        nghttp2_rcbuf *name, nghttp2_rcbuf *value, uint8_t flags,
        void *user_data) noexcept
    ctypedef int (*nghttp2_error_callback2)(
        nghttp2_session *session, int lib_error_code, const char *msg,
        size_t len, void *user_data) noexcept


# Custom memory allocator (nghttp2_mem): plain C functions, called with or
# without the GIL, never calling into Python.
cdef extern from "nghttp2/nghttp2.h" nogil:
    ctypedef void *(*nghttp2_malloc)(size_t size, void *mem_user_data) noexcept
    ctypedef void (*nghttp2_free)(void *ptr, void *mem_user_data) noexcept
    ctypedef void *(*nghttp2_calloc)(size_t nmemb, size_t size, void *mem_user_data) noexcept
    ctypedef void *(*nghttp2_realloc)(void *ptr, size_t size, void *mem_user_data) noexcept

    ctypedef struct nghttp2_mem:
        void *mem_user_data
        nghttp2_malloc malloc
        nghttp2_free free
        nghttp2_calloc calloc
        nghttp2_realloc realloc


cdef extern from "nghttp2/nghttp2.h" nogil:
    ctypedef struct nghttp2_data_provider:
        nghttp2_data_source source
        nghttp2_data_source_read_callback read_callback

    int nghttp2_session_callbacks_new(nghttp2_session_callbacks **callbacks_ptr)
    void nghttp2_session_callbacks_del(nghttp2_session_callbacks *callbacks)
    void nghttp2_session_callbacks_set_send_data_callback(
        nghttp2_session_callbacks *cbs, nghttp2_send_data_callback cb)
    void nghttp2_session_callbacks_set_on_frame_recv_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_frame_recv_callback cb)
    void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_data_chunk_recv_callback cb)
    void nghttp2_session_callbacks_set_on_frame_send_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_frame_send_callback cb)
    void nghttp2_session_callbacks_set_on_stream_close_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_stream_close_callback cb)
    void nghttp2_session_callbacks_set_on_begin_headers_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_begin_headers_callback cb)
    void nghttp2_session_callbacks_set_on_header_callback2(
        nghttp2_session_callbacks *cbs, nghttp2_on_header_callback2 cb)
    void nghttp2_session_callbacks_set_error_callback2(
        nghttp2_session_callbacks *cbs, nghttp2_error_callback2 cb)

    # options
    int nghttp2_option_new(nghttp2_option **option_ptr)
    void nghttp2_option_set_no_auto_window_update(nghttp2_option *option, int val)
    void nghttp2_option_set_stream_reset_rate_limit(nghttp2_option *option,
                                                    uint64_t burst, uint64_t rate)
    void nghttp2_option_set_server_fallback_rfc7540_priorities(nghttp2_option *option,
                                                               int val)
    void nghttp2_option_set_builtin_recv_extension_type(nghttp2_option *option,
                                                        uint8_t type)

    # session
    int nghttp2_session_server_new3(nghttp2_session **session_ptr,
                                    const nghttp2_session_callbacks *callbacks,
                                    void *user_data, const nghttp2_option *option,
                                    nghttp2_mem *mem)
    int nghttp2_session_client_new2(nghttp2_session **session_ptr,
                                    const nghttp2_session_callbacks *callbacks,
                                    void *user_data, const nghttp2_option *option)
    void nghttp2_session_del(nghttp2_session *session)
    ssize_t nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *data,
                                     size_t datalen)
    ssize_t nghttp2_session_mem_send(nghttp2_session *session,
                                     const uint8_t **data_ptr)
    int nghttp2_session_want_read(nghttp2_session *session)
    int nghttp2_session_want_write(nghttp2_session *session)
    int nghttp2_session_resume_data(nghttp2_session *session, int32_t stream_id)
    int nghttp2_session_consume(nghttp2_session *session, int32_t stream_id,
                                size_t size)
    int nghttp2_session_consume_connection(nghttp2_session *session, size_t size)
    int nghttp2_session_consume_stream(nghttp2_session *session, int32_t stream_id,
                                       size_t size)
    int nghttp2_session_set_local_window_size(nghttp2_session *session,
                                              uint8_t flags, int32_t stream_id,
                                              int32_t window_size)
    uint32_t nghttp2_session_get_remote_settings(nghttp2_session *session,
                                                 nghttp2_settings_id id)
    int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *session)
    nghttp2_stream *nghttp2_session_find_stream(nghttp2_session *session, int32_t stream_id)
    nghttp2_stream_proto_state nghttp2_stream_get_state(nghttp2_stream *stream)
    int nghttp2_session_set_stream_user_data(nghttp2_session *session,
                                             int32_t stream_id, void *stream_user_data)
    void *nghttp2_session_get_stream_user_data(nghttp2_session *session,
                                               int32_t stream_id)
    int nghttp2_session_terminate_session(nghttp2_session *session,
                                          uint32_t error_code)
    int nghttp2_session_upgrade2(nghttp2_session *session, const uint8_t *settings_payload,
                                 size_t settings_payloadlen, int head_request,
                                 void *stream_user_data)

    # submissions
    int nghttp2_submit_settings(nghttp2_session *session, uint8_t flags,
                                const nghttp2_settings_entry *iv, size_t niv)
    int nghttp2_submit_altsvc(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *origin, size_t origin_len,
                              const uint8_t *field_value, size_t field_value_len)
    int32_t nghttp2_submit_request(nghttp2_session *session,
                                   const nghttp2_priority_spec *pri_spec,
                                   const nghttp2_nv *nva, size_t nvlen,
                                   const nghttp2_data_provider *data_prd,
                                   void *stream_user_data)
    int nghttp2_submit_response(nghttp2_session *session, int32_t stream_id,
                                const nghttp2_nv *nva, size_t nvlen,
                                const nghttp2_data_provider *data_prd)
    int32_t nghttp2_submit_headers(nghttp2_session *session, uint8_t flags,
                                   int32_t stream_id, const nghttp2_priority_spec *pri_spec,
                                   const nghttp2_nv *nva, size_t nvlen,
                                   void *stream_user_data)
    int nghttp2_submit_ping(nghttp2_session *session, uint8_t flags,
                            const uint8_t *opaque_data)
    int nghttp2_submit_trailer(nghttp2_session *session, int32_t stream_id,
                               const nghttp2_nv *nva, size_t nvlen)
    int32_t nghttp2_submit_push_promise(nghttp2_session *session, uint8_t flags,
                                        int32_t stream_id, const nghttp2_nv *nva,
                                        size_t nvlen, void *promised_stream_user_data)
    int nghttp2_submit_rst_stream(nghttp2_session *session, uint8_t flags,
                                  int32_t stream_id, uint32_t error_code)
    int nghttp2_submit_goaway(nghttp2_session *session, uint8_t flags,
                              int32_t last_stream_id, uint32_t error_code,
                              const uint8_t *opaque_data, size_t opaque_data_len)
    int nghttp2_submit_shutdown_notice(nghttp2_session *session)

    # HPACK
    int nghttp2_hd_deflate_new(nghttp2_hd_deflater **deflater_ptr,
                               size_t max_deflate_dynamic_table_size)
    void nghttp2_hd_deflate_del(nghttp2_hd_deflater *deflater)
    int nghttp2_hd_deflate_change_table_size(nghttp2_hd_deflater *deflater,
                                             size_t settings_max_dynamic_table_size)
    ssize_t nghttp2_hd_deflate_hd(nghttp2_hd_deflater *deflater, uint8_t *buf,
                                  size_t buflen, const nghttp2_nv *nva,
                                  size_t nvlen)
    size_t nghttp2_hd_deflate_bound(nghttp2_hd_deflater *deflater,
                                    const nghttp2_nv *nva, size_t nvlen)
    size_t nghttp2_hd_deflate_get_num_table_entries(nghttp2_hd_deflater *deflater)
    const nghttp2_nv *nghttp2_hd_deflate_get_table_entry(
        nghttp2_hd_deflater *deflater, size_t idx)

    ctypedef enum nghttp2_hd_inflate_flag:
        NGHTTP2_HD_INFLATE_NONE
        NGHTTP2_HD_INFLATE_FINAL
        NGHTTP2_HD_INFLATE_EMIT

    int nghttp2_hd_inflate_new(nghttp2_hd_inflater **inflater_ptr)
    void nghttp2_hd_inflate_del(nghttp2_hd_inflater *inflater)
    int nghttp2_hd_inflate_change_table_size(nghttp2_hd_inflater *inflater,
                                             size_t settings_max_dynamic_table_size)
    ssize_t nghttp2_hd_inflate_hd2(nghttp2_hd_inflater *inflater,
                                   nghttp2_nv *nv_out, int *inflate_flags,
                                   const uint8_t *input, size_t inlen,
                                   int in_final)
    int nghttp2_hd_inflate_end_headers(nghttp2_hd_inflater *inflater)
    size_t nghttp2_hd_inflate_get_num_table_entries(nghttp2_hd_inflater *inflater)
    const nghttp2_nv *nghttp2_hd_inflate_get_table_entry(
        nghttp2_hd_inflater *inflater, size_t idx)
