# Header fields over libnghttp2's limit: 431 on their stream instead of the end
# of the connection (RFC 9113 10.5.1 allows a 431; RFC 7541 wants every block
# decoded, to keep the dynamic table the client and the server share in step).
#
# libnghttp2 1.52 cannot decode a string (a name or a value) whose encoded
# length is over NGHTTP2_HD_MAX_NV (65,536 bytes; what Huffman decoding would
# make of it does not matter): it ends the connection with COMPRESSION_ERROR.
# The guard (guard.pxi) holds back every header block that spans frames, and
# every HEADERS frame longer than that limit, until the block ends. Only when
# the block's fragments add up to more than the limit is it walked here:
# representation prefixes and string lengths, nothing decoded. A field holding
# such a string is replaced by one nghttp2 can decode and that leaves the
# dynamic table as the original would; the block is framed again (padding
# dropped, priority and END_STREAM kept), and its stream is marked so that
# the request gets 431 (in trailers, the block's fields are dropped).
#
# The dynamic table: a field with incremental indexing whose entry is larger
# than the table empties it (RFC 7541 4.4). Its replacement's entry is larger
# than any table size the client may use (ours, or the default 4,096 before it
# has our SETTINGS), so it empties the table too. If the original entry cannot
# be shown to be that large (a Huffman string, decoded size unknown, with
# SETTINGS_HEADER_TABLE_SIZE set over ~17 KiB), the block goes to nghttp2 as
# it came: COMPRESSION_ERROR, as before.

cdef enum:
    # NGHTTP2_HD_MAX_NV of lib/nghttp2_hd.h: the longest string libnghttp2 decodes.
    HD_MAX_NV = 65536
    HPACK_DEFAULT_TABLE_SIZE = 4096
    # Huffman codes are 5 to 30 bits long, the padding under 8 bits.
    HUFFMAN_LONGEST_CODE = 30

# The name of a replacement field whose own name was too long.
cdef bytes _OVERSIZED_NAME = b"x-oversized-field"


cdef Py_ssize_t hpack_integer(const uint8_t *block, Py_ssize_t pos, Py_ssize_t end,
                              int prefix_bits, uint64_t *value) noexcept:
    """Decode the integer at ``block[pos]``; the position after it, or -1 if malformed."""
    cdef uint64_t limit = (1 << prefix_bits) - 1
    cdef uint64_t result = block[pos] & limit
    cdef int shift = 0
    cdef uint8_t byte
    pos += 1
    if result < limit:
        value[0] = result
        return pos
    while pos < end and shift <= 28:
        byte = block[pos]
        pos += 1
        result += <uint64_t>(byte & 0x7f) << shift
        shift += 7
        if not byte & 0x80:
            value[0] = result
            return pos
    return -1


cdef Py_ssize_t hpack_string(const uint8_t *block, Py_ssize_t pos, Py_ssize_t end,
                             uint64_t *encoded, uint64_t *least_decoded) noexcept:
    """Skip the string at ``block[pos]``: its encoded length and the least it decodes to."""
    if pos >= end:
        return -1
    cdef bint huffman = block[pos] & 0x80
    pos = hpack_integer(block, pos, end, 7, encoded)
    if pos < 0 or encoded[0] > <uint64_t>(end - pos):
        return -1
    if not huffman:
        least_decoded[0] = encoded[0]
    elif encoded[0]:
        least_decoded[0] = (encoded[0] * 8 - 7) // HUFFMAN_LONGEST_CODE
    else:
        least_decoded[0] = 0
    return pos + <Py_ssize_t>encoded[0]


cdef int append_bytes(bytearray out, const void *data, Py_ssize_t length) except -1:
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, size + length)
    memcpy(PyByteArray_AS_STRING(out) + size, data, length)
    return 0


cdef int append_string_length(bytearray out, uint64_t length) except -1:
    """The length prefix of a string that is not Huffman-coded."""
    cdef uint8_t prefix[8]
    cdef int n = 1
    if length < 127:
        prefix[0] = <uint8_t>length
    else:
        prefix[0] = 127
        length -= 127
        while length >= 128:
            prefix[n] = (length & 0x7f) | 0x80
            length >>= 7
            n += 1
        prefix[n] = <uint8_t>length
        n += 1
    return append_bytes(out, prefix, n)


cdef int append_filled_string(bytearray out, uint8_t fill, uint64_t length) except -1:
    """A string of ``length`` bytes ``fill``, not Huffman-coded."""
    append_string_length(out, length)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, size + <Py_ssize_t>length)
    memset(PyByteArray_AS_STRING(out) + size, fill, length)
    return 0


cdef uint8_t replacement_byte(const uint8_t *block, uint64_t index, Py_ssize_t name_start,
                              Py_ssize_t name_end) noexcept:
    """What a replacement value is made of: one nghttp2 accepts for the field's name.

    ``/`` suits :path and regular fields; :authority, :method and :scheme
    (static table entries 1-3 and 6-7, or a literal name) want a letter.
    """
    if index == 1 or index == 2 or index == 3 or index == 6 or index == 7:
        return ord(b"a")
    if index == 0 and name_end - name_start > 1 and block[name_start] < 0x80 \
            and block[name_start + 1] == ord(b":") \
            and not (name_end - name_start == 6
                     and memcmp(block + name_start + 1, b":path", 5) == 0):
        return ord(b"a")  # a pseudo-header by a literal name, not Huffman-coded
    return ord(b"/")


cdef object rewrite_oversized_fields(const uint8_t *block, Py_ssize_t size,
                                     uint64_t table_limit):
    """``block`` with every field nghttp2 cannot decode replaced (see above).

    None when there is no such field, when the block is malformed (nghttp2
    will say so), or when a replacement could not keep the dynamic table.
    """
    cdef bytearray out = None
    cdef Py_ssize_t pos = 0, name_start, name_end, copied = 0
    cdef uint64_t index, name_length, value_length, least_name, least_value
    cdef uint8_t first
    cdef bint indexing
    while pos < size:
        first = block[pos]
        if first & 0x80:  # indexed field
            pos = hpack_integer(block, pos, size, 7, &index)
        elif first & 0x40 == 0 and first & 0x20:  # dynamic table size update
            pos = hpack_integer(block, pos, size, 5, &index)
        else:
            indexing = first & 0x40
            pos = hpack_integer(block, pos, size, 6 if indexing else 4, &index)
            name_start = pos
            name_length = least_name = 0
            if pos >= 0 and index == 0:
                pos = hpack_string(block, pos, size, &name_length, &least_name)
            name_end = pos
            if pos >= 0:
                pos = hpack_string(block, pos, size, &value_length, &least_value)
            if pos >= 0 and (name_length > HD_MAX_NV or value_length > HD_MAX_NV):
                if indexing and (least_name + least_value + HPACK_ENTRY_OVERHEAD <= table_limit
                                 or table_limit - HPACK_ENTRY_OVERHEAD + 1 > HD_MAX_NV):
                    return None
                if out is None:
                    out = bytearray()
                append_bytes(out, block + copied, name_start - copied)
                if name_length > HD_MAX_NV:
                    append_string_length(out, len(_OVERSIZED_NAME))
                    append_bytes(out, PyBytes_AS_STRING(_OVERSIZED_NAME), len(_OVERSIZED_NAME))
                else:
                    append_bytes(out, block + name_start, name_end - name_start)
                # An entry larger than any table the client may use (it empties
                # the table, as the original's did), or a value of one byte.
                append_filled_string(
                    out, replacement_byte(block, index, name_start, name_end),
                    table_limit - HPACK_ENTRY_OVERHEAD + 1 if indexing else 1)
                copied = pos
        if pos < 0:
            return None
    if out is None:
        return None
    append_bytes(out, block + copied, size - copied)
    return out


cdef object reframed_header_block(bytearray captured, uint64_t table_limit):
    """The frames of a held-back header block, its oversized fields replaced.

    ``captured`` is the HEADERS frame and its CONTINUATION frames, whole. None
    when the block needs no change or cannot be changed: then it goes to
    nghttp2 as it came (which also judges any framing error in it).
    """
    cdef const uint8_t *frames = <const uint8_t *>PyByteArray_AS_STRING(captured)
    cdef Py_ssize_t total = PyByteArray_GET_SIZE(captured)
    cdef Py_ssize_t pos = 0, length, offset, end, largest = 0, chunk, priority = 0
    cdef Py_ssize_t padding
    cdef uint8_t flags = frames[4]
    cdef bytearray fragments = bytearray()
    while pos + FRAME_HEADER_LENGTH <= total:
        length = (<Py_ssize_t>frames[pos] << 16) | (<Py_ssize_t>frames[pos + 1] << 8) \
            | frames[pos + 2]
        offset = pos + FRAME_HEADER_LENGTH
        end = offset + length
        if end > total:
            return None
        largest = max(largest, length)
        if pos and (frames[pos + 3] != NGHTTP2_CONTINUATION
                    or memcmp(frames + pos + 5, frames + 5, 4) != 0):
            return None  # a CONTINUATION on another stream: nghttp2's PROTOCOL_ERROR
        if pos == 0:
            padding = 0
            if flags & NGHTTP2_FLAG_PADDED:
                if offset == end:
                    return None
                padding = frames[offset]
                offset += 1
            if flags & NGHTTP2_FLAG_PRIORITY:
                priority = 5
                offset += priority
            if offset + padding > end:
                return None
            end -= padding
        append_bytes(fragments, frames + offset, end - offset)
        pos += FRAME_HEADER_LENGTH + length
    if PyByteArray_GET_SIZE(fragments) <= HD_MAX_NV:
        return None
    block = rewrite_oversized_fields(<const uint8_t *>PyByteArray_AS_STRING(fragments),
                                     PyByteArray_GET_SIZE(fragments), table_limit)
    if block is None:
        return None
    # No frame longer than the client's longest (nghttp2 accepted those), so
    # no more frames than the client sent: the CONTINUATION limit still holds.
    cdef const uint8_t *data = <const uint8_t *>PyByteArray_AS_STRING(block)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(block)
    cdef bytearray out = bytearray()
    cdef uint8_t head[FRAME_HEADER_LENGTH]
    cdef bint first = True
    if largest <= priority:
        return None
    pos = 0
    while True:
        chunk = min(largest - (priority if first else 0), size - pos)
        length = chunk + (priority if first else 0)
        head[0] = (length >> 16) & 0xff
        head[1] = (length >> 8) & 0xff
        head[2] = length & 0xff
        head[3] = NGHTTP2_HEADERS if first else NGHTTP2_CONTINUATION
        head[4] = flags & (NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_PRIORITY) if first else 0
        if pos + chunk == size:
            head[4] |= NGHTTP2_FLAG_END_HEADERS
        memcpy(head + 5, frames + 5, 4)
        append_bytes(out, head, FRAME_HEADER_LENGTH)
        if first and priority:
            append_bytes(out, frames + FRAME_HEADER_LENGTH
                         + (1 if flags & NGHTTP2_FLAG_PADDED else 0), priority)
        append_bytes(out, data + pos, chunk)
        pos += chunk
        first = False
        if pos == size:
            return out
