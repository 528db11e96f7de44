# Response header blocks: validation of application headers and the
# nghttp2_nv array that nghttp2_submit_* copies.

from libc.stdlib cimport malloc, free
from libc.time cimport time, time_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from email.utils import formatdate as _formatdate

from nghttp2py.errors import InvalidHeaderError


# Header names an HTTP/2 message must not carry (RFC 9113 section 8.2.2).
cdef frozenset _CONNECTION_HEADERS = frozenset((
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
    b"upgrade", b"te",
))

# 1 for the bytes allowed in a header name: lower-case RFC 9110 token chars.
cdef uint8_t _NAME_CHAR[256]


cdef void _init_name_chars() noexcept:
    cdef int c
    for c in range(256):
        _NAME_CHAR[c] = 0
    for c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz":
        _NAME_CHAR[c] = 1


_init_name_chars()

# The values of :status, built once; nghttp2 may point at them (NO_COPY).
cdef list _STATUS_VALUES = [str(code).encode("ascii") for code in range(600)]
cdef bytes _SERVER_VALUE = b"nghttp2py"

cdef time_t _date_second = 0
cdef bytes _date_value = b""


cdef bytes http_date():
    """The IMF-fixdate of now, formatted at most once a second."""
    global _date_second, _date_value
    cdef time_t now = time(NULL)
    if now != _date_second:
        _date_value = _formatdate(now, usegmt=True).encode("ascii")
        _date_second = now
    return _date_value


cdef inline bytes header_bytes(object text):
    if type(text) is bytes:
        return <bytes>text
    if isinstance(text, str):
        return (<str>text).encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"header names and values must be str or bytes, not {type(text).__name__}")


cdef int validate_name(bytes name) except -1:
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(name)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    if n == 0:
        raise InvalidHeaderError("empty header name")
    for i in range(n):
        if not _NAME_CHAR[p[i]]:
            if p[i] == b':':
                raise InvalidHeaderError(
                    f"pseudo-header {name!r} is set by the server, not by the application")
            raise InvalidHeaderError(
                f"invalid header name {name!r}: HTTP/2 header names are lower-case tokens")
    if name in _CONNECTION_HEADERS:
        raise InvalidHeaderError(f"connection-specific header {name!r} is not allowed in HTTP/2")
    return 0


cdef int validate_value(bytes name, bytes value) except -1:
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    for i in range(n):
        if p[i] == 0 or p[i] == b'\r' or p[i] == b'\n':
            raise InvalidHeaderError(f"header {name!r} has a NUL, CR or LF in its value")
    if n and (p[0] == b' ' or p[0] == b'\t' or p[n - 1] == b' ' or p[n - 1] == b'\t'):
        raise InvalidHeaderError(f"header {name!r} has white space around its value")
    return 0


cdef class HeaderBlock:
    """A header block being built for nghttp2: C nv entries over Python bytes.

    The bytes objects are kept in ``keep`` so the pointers stay valid until
    nghttp2 has copied them (nghttp2_submit_* copies unless NO_COPY is set,
    which is used only for values that live forever).
    """
    cdef nghttp2_nv *nva
    cdef size_t length, capacity
    cdef list keep
    cdef bint has_content_length
    cdef bytes content_length

    def __cinit__(self, size_t capacity):
        self.nva = <nghttp2_nv *>malloc(capacity * sizeof(nghttp2_nv))
        if self.nva == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.keep = []

    def __dealloc__(self):
        free(self.nva)

    cdef inline void add_static(self, bytes name, bytes value) noexcept:
        # Only for bytes that live as long as the module.
        cdef nghttp2_nv *nv = &self.nva[self.length]
        nv.name = <uint8_t *>PyBytes_AS_STRING(name)
        nv.namelen = PyBytes_GET_SIZE(name)
        nv.value = <uint8_t *>PyBytes_AS_STRING(value)
        nv.valuelen = PyBytes_GET_SIZE(value)
        nv.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE
        self.length += 1

    cdef inline void add(self, bytes name, bytes value) noexcept:
        cdef nghttp2_nv *nv = &self.nva[self.length]
        self.keep.append(name)
        self.keep.append(value)
        nv.name = <uint8_t *>PyBytes_AS_STRING(name)
        nv.namelen = PyBytes_GET_SIZE(name)
        nv.value = <uint8_t *>PyBytes_AS_STRING(value)
        nv.valuelen = PyBytes_GET_SIZE(value)
        nv.flags = NGHTTP2_NV_FLAG_NONE
        self.length += 1

    cdef int add_user_headers(self, object headers) except -1:
        """Validate and add the application's (name, value) pairs."""
        cdef bytes name, value
        for item in headers:
            if len(item) != 2:
                raise InvalidHeaderError(f"a header must be a (name, value) pair, not {item!r}")
            name = header_bytes(item[0])
            value = header_bytes(item[1])
            validate_name(name)
            validate_value(name, value)
            if name == b"content-length":
                self.has_content_length = True
                self.content_length = value
            self.add(name, value)
        return 0


cdef HeaderBlock response_header_block(int status, object headers, Py_ssize_t body_length):
    """:status, the application's headers, then date, server and content-length."""
    if status < 100 or status > 599:
        raise ValueError(f"status must be between 100 and 599, not {status}")
    cdef Py_ssize_t nheaders = len(headers) if headers is not None else 0
    cdef HeaderBlock block = HeaderBlock(nheaders + 4)
    block.add_static(b":status", <bytes>_STATUS_VALUES[status])
    if headers is not None:
        block.add_user_headers(headers)
    if block.has_content_length:
        if body_length >= 0 and block.content_length != str(body_length).encode():
            raise InvalidHeaderError(
                f"content-length {block.content_length!r} does not match the "
                f"body's {body_length} bytes")
    elif body_length >= 0 and status != 204 and status != 304:
        block.add(b"content-length", str(body_length).encode("ascii"))
    block.add(b"date", http_date())
    block.add_static(b"server", _SERVER_VALUE)
    return block


cdef HeaderBlock request_header_block(bytes method, bytes scheme, bytes authority,
                                      bytes path, object headers):
    """The header block of a pushed request (PUSH_PROMISE)."""
    cdef Py_ssize_t nheaders = len(headers) if headers is not None else 0
    cdef HeaderBlock block = HeaderBlock(nheaders + 4)
    block.add(b":method", method)
    block.add(b":scheme", scheme)
    block.add(b":authority", authority)
    block.add(b":path", path)
    if headers is not None:
        block.add_user_headers(headers)
    return block


cdef HeaderBlock informational_header_block(int status, object headers):
    """:status and the application's headers, for a 1xx response."""
    cdef Py_ssize_t nheaders = len(headers) if headers is not None else 0
    cdef HeaderBlock block = HeaderBlock(nheaders + 1)
    block.add_static(b":status", <bytes>_STATUS_VALUES[status])
    if headers is not None:
        block.add_user_headers(headers)
    return block


cdef HeaderBlock trailer_header_block(object trailers):
    """The application's trailer fields (no pseudo-headers)."""
    cdef HeaderBlock block = HeaderBlock(len(trailers))
    block.add_user_headers(trailers)
    return block
