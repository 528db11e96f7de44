# HPACK (RFC 7541) header compression: HDDeflater, HDInflater and
# HDTableEntry over libnghttp2's public nghttp2_hd_* API.
#
# Module-level helpers are prefixed _hpack_ to keep the shared namespace clean.

from nghttp2py.errors import HPACKError as _HPACKError


cdef class HDTableEntry:
    """One entry of an HPACK dynamic table.

    ``name`` and ``value`` are bytes, ``namelen`` and ``valuelen`` their
    lengths, and ``space`` the size the entry counts for against the table
    size limit (``namelen + valuelen + 32``, RFC 7541 section 4.1).
    """

    def __init__(self, bytes name not None, bytes value not None):
        self.name = name
        self.value = value
        self.namelen = len(name)
        self.valuelen = len(value)
        self.space = self.namelen + self.valuelen + HPACK_ENTRY_OVERHEAD

    def __repr__(self):
        return (f"HDTableEntry(name={self.name!r}, value={self.value!r}, "
                f"space={self.space})")


cdef HDTableEntry _hpack_table_entry(const nghttp2_nv *nv):
    """Copy a table entry nghttp2 handed out (valid until its next call)."""
    cdef HDTableEntry entry = HDTableEntry.__new__(HDTableEntry)
    entry.name = PyBytes_FromStringAndSize(<const char *>nv.name, nv.namelen)
    entry.value = PyBytes_FromStringAndSize(<const char *>nv.value, nv.valuelen)
    entry.namelen = nv.namelen
    entry.valuelen = nv.valuelen
    entry.space = nv.namelen + nv.valuelen + HPACK_ENTRY_OVERHEAD
    return entry


cdef object _hpack_field(object item, Py_ssize_t index, str what):
    """A header name or value as bytes: str is encoded as UTF-8."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return (<str>item).encode("utf-8")
    raise TypeError(
        f"header {index}: {what} must be str or bytes, "
        f"not {type(item).__name__} ({item!r:.60})")


cdef object _hpack_unusable(str owner):
    return _HPACKError(
        f"{owner} is unusable after an earlier HPACK error; create a new one",
        NGHTTP2_ERR_HEADER_COMP)


cdef class HDDeflater:
    """HPACK encoder: compresses header lists into header blocks.

    ``hd_table_bufsize_max`` is the largest dynamic table, in bytes, this
    deflater will ever use, whatever the peer allows (default 4096, the
    HTTP/2 default).  One deflater keeps the dynamic-table state of one
    direction of one connection: give it every header block of that
    direction, in order.
    """

    def __cinit__(self):
        self.deflater = NULL
        self.failed = False

    def __init__(self, hd_table_bufsize_max=4096):
        cdef nghttp2_hd_deflater *deflater = NULL
        if hd_table_bufsize_max < 0:
            raise ValueError("hd_table_bufsize_max must not be negative")
        check(<int>nghttp2_hd_deflate_new(&deflater, hd_table_bufsize_max))
        if self.deflater != NULL:
            nghttp2_hd_deflate_del(self.deflater)
        self.deflater = deflater
        self.failed = False

    def __dealloc__(self):
        if self.deflater != NULL:
            nghttp2_hd_deflate_del(self.deflater)
            self.deflater = NULL

    cdef int check_usable(self) except -1:
        if self.deflater == NULL:
            raise RuntimeError("HDDeflater.__init__() was not called")
        if self.failed:
            raise _hpack_unusable("HDDeflater")
        return 0

    def deflate(self, headers):
        """Compress ``headers`` into one header block and return it.

        ``headers`` is an iterable of ``(name, value)`` pairs of str or
        bytes; str is encoded as UTF-8.  Names are used as given (HTTP/2
        wants them lower-case; HPACK itself does not care).  Raises
        TypeError for anything else, and HPACKError if compression fails,
        after which the deflater is unusable.
        """
        self.check_usable()
        cdef list items = list(headers)
        cdef Py_ssize_t n = len(items)
        # Keeps the bytes objects whose buffers nva points into alive.
        cdef list keep = []
        cdef nghttp2_nv *nva = NULL
        cdef uint8_t *buf = NULL
        cdef size_t bound
        cdef ssize_t rv
        cdef Py_ssize_t i
        cdef object pair, name, value

        if n > 0:
            nva = <nghttp2_nv *>PyMem_Malloc(n * sizeof(nghttp2_nv))
            if nva == NULL:
                raise MemoryError()
        try:
            for i in range(n):
                pair = items[i]
                try:
                    name, value = pair
                except (TypeError, ValueError):
                    raise TypeError(
                        f"header {i}: expected a (name, value) pair, "
                        f"got {pair!r:.60}") from None
                name = _hpack_field(name, i, "name")
                value = _hpack_field(value, i, "value")
                keep.append(name)
                keep.append(value)
                nva[i].name = <uint8_t *>PyBytes_AS_STRING(name)
                nva[i].namelen = <size_t>PyBytes_GET_SIZE(name)
                nva[i].value = <uint8_t *>PyBytes_AS_STRING(value)
                nva[i].valuelen = <size_t>PyBytes_GET_SIZE(value)
                nva[i].flags = NGHTTP2_NV_FLAG_NONE

            bound = nghttp2_hd_deflate_bound(self.deflater, nva, <size_t>n)
            buf = <uint8_t *>PyMem_Malloc(bound)
            if buf == NULL:
                raise MemoryError()
            rv = nghttp2_hd_deflate_hd(self.deflater, buf, bound, nva,
                                       <size_t>n)
            if rv < 0:
                # nghttp2 refuses any further use of a deflater that failed.
                self.failed = True
                check(<int>rv)
            return PyBytes_FromStringAndSize(<const char *>buf, rv)
        finally:
            PyMem_Free(buf)
            PyMem_Free(nva)

    def change_table_size(self, hd_table_bufsize_max):
        """Apply the peer's SETTINGS_HEADER_TABLE_SIZE.

        The table the deflater uses becomes the smaller of this and the
        constructor's ``hd_table_bufsize_max``; entries that no longer fit
        are evicted now, and the next header block tells the peer.
        """
        self.check_usable()
        if hd_table_bufsize_max < 0:
            raise ValueError("hd_table_bufsize_max must not be negative")
        check(nghttp2_hd_deflate_change_table_size(self.deflater,
                                                   hd_table_bufsize_max))

    def get_hd_table(self):
        """Return a copy of the dynamic table, newest entry first.

        Returns a list of HDTableEntry.
        """
        if self.deflater == NULL:
            raise RuntimeError("HDDeflater.__init__() was not called")
        cdef list table = []
        cdef size_t n = nghttp2_hd_deflate_get_num_table_entries(self.deflater)
        cdef size_t idx
        cdef const nghttp2_nv *nv
        for idx in range(HPACK_FIRST_DYNAMIC_INDEX, n + 1):
            nv = nghttp2_hd_deflate_get_table_entry(self.deflater, idx)
            if nv == NULL:
                break
            table.append(_hpack_table_entry(nv))
        return table


cdef class HDInflater:
    """HPACK decoder: decompresses header blocks into header lists.

    One inflater keeps the dynamic-table state of one direction of one
    connection: give it every header block of that direction, in order.
    Its table may grow to 4096 bytes (the HTTP/2 default) until
    :meth:`change_table_size` says otherwise.
    """

    def __cinit__(self):
        self.inflater = NULL
        self.failed = False

    def __init__(self):
        cdef nghttp2_hd_inflater *inflater = NULL
        check(nghttp2_hd_inflate_new(&inflater))
        if self.inflater != NULL:
            nghttp2_hd_inflate_del(self.inflater)
        self.inflater = inflater
        self.failed = False

    def __dealloc__(self):
        if self.inflater != NULL:
            nghttp2_hd_inflate_del(self.inflater)
            self.inflater = NULL

    cdef int check_usable(self) except -1:
        if self.inflater == NULL:
            raise RuntimeError("HDInflater.__init__() was not called")
        if self.failed:
            raise _hpack_unusable("HDInflater")
        return 0

    def inflate(self, data):
        """Decompress one complete header block.

        ``data`` is any bytes-like object.  Returns a list of
        ``(name, value)`` tuples of bytes, in block order.  Raises
        HPACKError if the block is corrupt or incomplete; the inflater's
        table state is then lost and every later call raises HPACKError.
        """
        self.check_usable()
        cdef Py_buffer view
        cdef const uint8_t *p
        cdef size_t left
        cdef nghttp2_nv nv
        cdef int flags
        cdef ssize_t rv
        cdef list headers = []

        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            p = <const uint8_t *>view.buf
            left = <size_t>view.len
            while True:
                flags = NGHTTP2_HD_INFLATE_NONE
                rv = nghttp2_hd_inflate_hd2(self.inflater, &nv, &flags,
                                            p, left, 1)
                if rv < 0:
                    check(<int>rv)
                p += rv
                left -= <size_t>rv
                if flags & NGHTTP2_HD_INFLATE_EMIT:
                    # nv points into data or the table: copy it now.
                    headers.append((
                        PyBytes_FromStringAndSize(<const char *>nv.name,
                                                  nv.namelen),
                        PyBytes_FromStringAndSize(<const char *>nv.value,
                                                  nv.valuelen)))
                if flags & NGHTTP2_HD_INFLATE_FINAL:
                    nghttp2_hd_inflate_end_headers(self.inflater)
                    break
                if not (flags & NGHTTP2_HD_INFLATE_EMIT) and left == 0:
                    # Cannot happen with in_final=1; never loop forever.
                    nghttp2_hd_inflate_end_headers(self.inflater)
                    break
        except BaseException:
            # The inflater stopped mid-block: its table no longer matches
            # the peer's, so no later block can be trusted.
            self.failed = True
            raise
        finally:
            PyBuffer_Release(&view)
        return headers

    def change_table_size(self, hd_table_bufsize_max):
        """Apply our own SETTINGS_HEADER_TABLE_SIZE once the peer acked it.

        If this is smaller than the current limit, entries that no longer
        fit are evicted now and the peer's next header block must begin
        with a dynamic table size update no larger than this.
        """
        self.check_usable()
        if hd_table_bufsize_max < 0:
            raise ValueError("hd_table_bufsize_max must not be negative")
        check(nghttp2_hd_inflate_change_table_size(self.inflater,
                                                   hd_table_bufsize_max))

    def get_hd_table(self):
        """Return a copy of the dynamic table, newest entry first.

        Returns a list of HDTableEntry.  Still works after an error, to
        help debugging.
        """
        if self.inflater == NULL:
            raise RuntimeError("HDInflater.__init__() was not called")
        cdef list table = []
        cdef size_t n = nghttp2_hd_inflate_get_num_table_entries(self.inflater)
        cdef size_t idx
        cdef const nghttp2_nv *nv
        for idx in range(HPACK_FIRST_DYNAMIC_INDEX, n + 1):
            nv = nghttp2_hd_inflate_get_table_entry(self.inflater, idx)
            if nv == NULL:
                break
            table.append(_hpack_table_entry(nv))
        return table
