# Response header blocks: validation of application headers and the
# nghttp2_nv array that nghttp2_submit_* copies.

from nghttp2py.errors import InvalidHeaderError


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
# IMF-fixdate's names (RFC 9110 section 5.6.7), not the C locale's.
cdef const char *_DAY_NAMES = b"SunMonTueWedThuFriSat"
cdef const char *_MONTH_NAMES = b"JanFebMarAprMayJunJulAugSepOctNovDec"


cdef bytes http_date():
    """The IMF-fixdate of now, formatted at most once a second."""
    global _date_second, _date_value
    cdef time_t now = time(NULL)
    cdef tm fields
    cdef char text[40]
    cdef int length
    if now != _date_second:
        gmtime_r(&now, &fields)
        length = snprintf(text, sizeof(text), "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
                          _DAY_NAMES + 3 * fields.tm_wday, fields.tm_mday,
                          _MONTH_NAMES + 3 * fields.tm_mon, fields.tm_year + 1900,
                          fields.tm_hour, fields.tm_min, fields.tm_sec)
        _date_value = PyBytes_FromStringAndSize(text, length)
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


cdef bint is_connection_header(const char *name, Py_ssize_t n) noexcept:
    """A name an HTTP/2 message must not carry (RFC 9113 section 8.2.2)."""
    if n == 2:
        return memcmp(name, b"te", 2) == 0
    if n == 7:
        return memcmp(name, b"upgrade", 7) == 0
    if n == 10:
        return memcmp(name, b"connection", 10) == 0 or memcmp(name, b"keep-alive", 10) == 0
    if n == 16:
        return memcmp(name, b"proxy-connection", 16) == 0
    if n == 17:
        return memcmp(name, b"transfer-encoding", 17) == 0
    return False


cdef int validate_name(const char *name, Py_ssize_t n) except -1:
    cdef const uint8_t *p = <const uint8_t *>name
    cdef Py_ssize_t i
    if n == 0:
        raise InvalidHeaderError("empty header name")
    for i in range(n):
        if not _NAME_CHAR[p[i]]:
            if p[i] == b':':
                raise InvalidHeaderError(
                    f"pseudo-header {name[:n]!r} is set by the server, not by the application")
            raise InvalidHeaderError(
                f"invalid header name {name[:n]!r}: HTTP/2 header names are lower-case tokens")
    if is_connection_header(name, n):
        raise InvalidHeaderError(
            f"connection-specific header {name[:n]!r} is not allowed in HTTP/2")
    return 0


cdef int validate_value(const char *name, Py_ssize_t name_length, const char *value,
                        Py_ssize_t n) except -1:
    cdef const uint8_t *p = <const uint8_t *>value
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] == 0 or p[i] == b'\r' or p[i] == b'\n':
            raise InvalidHeaderError(
                f"header {name[:name_length]!r} has a NUL, CR or LF in its value")
    if n and (p[0] == b' ' or p[0] == b'\t' or p[n - 1] == b' ' or p[n - 1] == b'\t'):
        raise InvalidHeaderError(f"header {name[:name_length]!r} has white space around its value")
    return 0


cdef inline const char *header_text(object text, Py_ssize_t *size, HeaderBlock block) except NULL:
    """The bytes of a header name or value, valid while ``text`` and ``block`` live.

    A str's UTF-8 form is cached in the str itself (for ASCII it is the str's
    own storage), so str headers cost no new object.
    """
    if type(text) is bytes:
        size[0] = PyBytes_GET_SIZE(text)
        return PyBytes_AS_STRING(text)
    if type(text) is str:
        return PyUnicode_AsUTF8AndSize(text, size)
    return header_text(block.keep_alive(header_bytes(text)), size, block)


@cython.freelist(8)
cdef class HeaderBlock:
    """A header block being built for nghttp2: C nv entries over Python objects.

    nghttp2_submit_* copies the names and values (NO_COPY is set only on bytes
    that live as long as the module), so the objects need only outlive the
    submission: the application's own header objects stay alive in ``headers``,
    anything converted for it in ``keep``.
    """

    def __dealloc__(self):
        if self.nva != self.inline_nva:
            free(self.nva)

    cdef int reserve(self, size_t capacity) except -1:
        if capacity <= INLINE_NV:
            self.nva = self.inline_nva
            capacity = INLINE_NV
        else:
            self.nva = <nghttp2_nv *>malloc(capacity * sizeof(nghttp2_nv))
            if self.nva == NULL:
                raise MemoryError()
        self.capacity = capacity
        return 0

    cdef object keep_alive(self, object value):
        if self.keep is None:
            self.keep = []
        self.keep.append(value)
        return value

    cdef void add_static(self, bytes name, bytes value) noexcept:
        # Only for bytes that live as long as the module.
        cdef nghttp2_nv *nv = &self.nva[self.length]
        nv.name = <uint8_t *>PyBytes_AS_STRING(name)
        nv.namelen = PyBytes_GET_SIZE(name)
        nv.value = <uint8_t *>PyBytes_AS_STRING(value)
        nv.valuelen = PyBytes_GET_SIZE(value)
        nv.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE
        self.length += 1

    cdef void add(self, const char *name, Py_ssize_t name_size, const char *value,
                  Py_ssize_t value_size) noexcept:
        # The caller keeps name and value alive until the block is submitted.
        cdef nghttp2_nv *nv = &self.nva[self.length]
        nv.name = <uint8_t *>name
        nv.namelen = name_size
        nv.value = <uint8_t *>value
        nv.valuelen = value_size
        nv.flags = NGHTTP2_NV_FLAG_NONE
        self.length += 1

    cdef void add_bytes(self, bytes name, bytes value) noexcept:
        self.add(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name),
                 PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))

    cdef int add_text(self, bytes name, object value) except -1:
        """``name`` (a module constant) and ``value``, str or bytes."""
        cdef Py_ssize_t size
        cdef const char *text = header_text(value, &size, self)
        self.add(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name), text, size)
        return 0

    cdef int add_user_headers(self, list headers) except -1:
        """Validate and add the application's (name, value) pairs."""
        cdef object item
        cdef const char *name
        cdef const char *value
        cdef Py_ssize_t name_size, value_size
        for item in headers:
            if type(item) is not tuple:
                # What a pair other than a tuple returns must stay alive.
                if isinstance(item, (str, bytes, bytearray)):
                    raise InvalidHeaderError(
                        f"a header must be a (name, value) pair, not {item!r}")
                item = self.keep_alive(tuple(item))
            if len(<tuple>item) != 2:
                raise InvalidHeaderError(f"a header must be a (name, value) pair, not {item!r}")
            name = header_text((<tuple>item)[0], &name_size, self)
            value = header_text((<tuple>item)[1], &value_size, self)
            validate_name(name, name_size)
            validate_value(name, name_size, value, value_size)
            if name_size == 14 and memcmp(name, b"content-length", 14) == 0:
                self.content_length = value
                self.content_length_size = value_size
            elif name_size == 7 and memcmp(name, b"alt-svc", 7) == 0:
                self.has_alt_svc = True
            self.add(name, name_size, value, value_size)
        return 0


cdef HeaderBlock new_header_block(object headers, size_t extra):
    """An empty block for ``extra`` entries plus the application's ``headers``."""
    cdef HeaderBlock block = HeaderBlock.__new__(HeaderBlock)
    if headers is not None and type(headers) is not list:
        headers = list(headers)
    block.headers = headers
    block.reserve(extra + (PyList_GET_SIZE(headers) if headers is not None else 0))
    return block


cdef Py_ssize_t format_length(char *buf, Py_ssize_t n) noexcept:
    """Write ``n >= 0`` in decimal at ``buf`` (24 bytes are plenty); return its length."""
    cdef char digits[24]
    cdef Py_ssize_t i = 0, j
    while True:
        digits[i] = c'0' + n % 10
        i += 1
        n //= 10
        if n == 0:
            break
    for j in range(i):
        buf[j] = digits[i - 1 - j]
    return i


cdef HeaderBlock response_header_block(int status, object headers, Py_ssize_t body_length):
    """:status, the application's headers, then date, server and content-length.

    One entry is left free for the protocol's alt-svc (HTTPProtocol.add_alt_svc).
    """
    if status < 100 or status > 599:
        raise ValueError(f"status must be between 100 and 599, not {status}")
    cdef HeaderBlock block = new_header_block(headers, 5)
    cdef Py_ssize_t size
    block.add_static(b":status", <bytes>_STATUS_VALUES[status])
    if headers is not None:
        block.add_user_headers(block.headers)
    if body_length >= 0:
        size = format_length(block.length_text, body_length)
        if block.content_length != NULL:
            if size != block.content_length_size \
                    or memcmp(block.length_text, block.content_length, size) != 0:
                raise InvalidHeaderError(
                    f"content-length {block.content_length[:block.content_length_size]!r} "
                    f"does not match the body's {body_length} bytes")
        elif status != 204 and status != 304:
            block.add(b"content-length", 14, block.length_text, size)
    block.date = http_date()
    block.add_bytes(b"date", block.date)
    block.add_static(b"server", _SERVER_VALUE)
    return block


cdef HeaderBlock request_header_block(object method, bytes scheme, bytes authority,
                                      object path, object headers):
    """A request's header block, sent or promised (PUSH_PROMISE).

    ``method`` and ``path`` are str or bytes; ``headers`` the application's
    pairs, or a block of them validated already (request_fields). The caller
    keeps every object alive until the block is submitted.
    """
    cdef HeaderBlock fields = headers if type(headers) is HeaderBlock else None
    cdef HeaderBlock block = new_header_block(
        None if fields is not None else headers, 4 + (fields.length if fields is not None else 0))
    block.add_text(b":method", method)
    block.add_bytes(b":scheme", scheme)
    block.add_bytes(b":authority", authority)
    block.add_text(b":path", path)
    if fields is not None:
        memcpy(&block.nva[block.length], fields.nva, fields.length * sizeof(nghttp2_nv))
        block.length += fields.length
    elif headers is not None:
        block.add_user_headers(block.headers)
    return block


cdef HeaderBlock request_fields(object headers):
    """The application's request header fields, validated once for many requests."""
    cdef HeaderBlock block = new_header_block(headers, 0)
    if headers is not None:
        block.add_user_headers(block.headers)
    return block


cdef HeaderBlock informational_header_block(int status, object headers):
    """:status and the application's headers, for a 1xx response."""
    cdef HeaderBlock block = new_header_block(headers, 1)
    block.add_static(b":status", <bytes>_STATUS_VALUES[status])
    if headers is not None:
        block.add_user_headers(block.headers)
    return block


cdef HeaderBlock trailer_header_block(object trailers):
    """The application's trailer fields (no pseudo-headers).

    Unlike the other blocks this one is submitted later, at the end of the
    body, so it holds its own list: the application may change its list
    after send_response() returns.
    """
    cdef HeaderBlock block = new_header_block(list(trailers), 0)
    block.add_user_headers(block.headers)
    return block


cdef bint _ascii_lower_equals(const uint8_t *text, const char *lower, size_t length) noexcept:
    """Whether ``text`` equals the lower-case ASCII ``lower``, ignoring case."""
    cdef size_t i
    cdef uint8_t c
    for i in range(length):
        c = text[i]
        if b'A' <= c <= b'Z':
            c += 32
        if c != <uint8_t>lower[i]:
            return False
    return True


# -- header fields as received ----------------------------------------------------

cdef int raw_fields_add(RawFields *fields, const nghttp2_vec *name,
                        const nghttp2_vec *value) except -1:
    """Copy one field after the others (no Python object is made until they are read)."""
    cdef size_t needed = fields.length + 2 * sizeof(uint32_t) + name.len + value.len
    cdef size_t capacity
    cdef char *grown
    cdef uint32_t lengths[2]
    if needed > fields.capacity:
        capacity = fields.capacity * 2 if fields.capacity else 256
        while capacity < needed:
            capacity *= 2
        grown = <char *>realloc(fields.data, capacity)
        if grown == NULL:
            raise MemoryError()
        fields.data = grown
        fields.capacity = capacity
    lengths[0] = <uint32_t>name.len
    lengths[1] = <uint32_t>value.len
    memcpy(fields.data + fields.length, lengths, sizeof(lengths))
    fields.length += sizeof(lengths)
    memcpy(fields.data + fields.length, name.base, name.len)
    fields.length += name.len
    memcpy(fields.data + fields.length, value.base, value.len)
    fields.length += value.len
    return 0


cdef void raw_fields_release(RawFields *fields) noexcept:
    free(fields.data)
    fields.data = NULL
    fields.length = fields.capacity = 0


cdef list raw_fields_build(RawFields *fields, bint join_cookies):
    """The fields as a list of ``(name, value)`` bytes pairs; the copy is released.

    ``join_cookies``: the ``cookie`` fields of a request become one, joined by
    ``"; "`` (RFC 9113 section 8.2.3), where the first of them was.
    """
    cdef list headers = []
    cdef list cookies = None
    cdef Py_ssize_t cookie_index = -1
    cdef size_t position = 0
    cdef uint32_t lengths[2]
    cdef const char *name
    cdef bytes value
    while position < fields.length:
        memcpy(lengths, fields.data + position, sizeof(lengths))
        name = fields.data + position + sizeof(lengths)
        value = PyBytes_FromStringAndSize(name + lengths[0], lengths[1])
        position += sizeof(lengths) + lengths[0] + lengths[1]
        if join_cookies and lengths[0] == 6 and memcmp(name, b"cookie", 6) == 0:
            if cookies is None:
                cookies = []
                cookie_index = len(headers)
                headers.append(None)
            cookies.append(value)
            continue
        headers.append((PyBytes_FromStringAndSize(name, lengths[0]), value))
    if cookies is not None:
        headers[cookie_index] = (b"cookie", b"; ".join(cookies))
    raw_fields_release(fields)
    return headers
