# Response bodies: one BodySource per response, pulled by nghttp2's data
# source read callback while it frames DATA.

from libc.string cimport memcpy
from cpython.buffer cimport PyBUF_WRITE
from cpython.memoryview cimport PyMemoryView_FromMemory

import io as _io

# Flags a body generator returns with each chunk (the old binding's names).
DATA_OK = 0
DATA_EOF = 1
DATA_DEFERRED = 2

# Chunks at least this large skip nghttp2's frame buffer: the send-data
# callback copies them once, straight into the connection's output.
cdef enum:
    NO_COPY_THRESHOLD = 4096


cdef class BodySource:
    """A response body; ``length`` is -1 when not known in advance."""
    cdef Py_ssize_t length

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        flags[0] |= NGHTTP2_DATA_FLAG_EOF
        return 0

    cdef const char *take(self, size_t size):
        """The bytes announced by a NO_COPY read, now being sent."""
        return NULL

    cdef void close(self) noexcept:
        pass


cdef class BytesBody(BodySource):
    cdef bytes data
    cdef Py_ssize_t offset

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        cdef Py_ssize_t remaining = self.length - self.offset
        cdef Py_ssize_t n = remaining if <size_t>remaining <= size else <Py_ssize_t>size
        if n == remaining:
            flags[0] |= NGHTTP2_DATA_FLAG_EOF
        if n >= NO_COPY_THRESHOLD:
            flags[0] |= NGHTTP2_DATA_FLAG_NO_COPY
            return n
        memcpy(buf, PyBytes_AS_STRING(self.data) + self.offset, n)
        self.offset += n
        return n

    cdef const char *take(self, size_t size):
        cdef const char *p = PyBytes_AS_STRING(self.data) + self.offset
        self.offset += size
        return p


cdef class FileBody(BodySource):
    """A file object read in chunks as the peer's window allows."""
    cdef object file
    cdef object readinto
    cdef bint text

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        cdef Py_ssize_t n
        cdef object chunk
        if self.readinto is not None:
            view = PyMemoryView_FromMemory(<char *>buf, size, PyBUF_WRITE)
            try:
                n = self.readinto(view) or 0
            finally:
                view.release()
        else:
            # At most 4 UTF-8 bytes a character, so the chunk fits the buffer.
            chunk = self.file.read(size // 4 if self.text else size)
            if self.text:
                chunk = (<str>chunk).encode("utf-8")
            n = len(chunk)
            if <size_t>n > size:
                raise ValueError(f"read({size}) returned {n} bytes")
            memcpy(buf, PyBytes_AS_STRING(chunk), n)
        if n == 0:
            flags[0] |= NGHTTP2_DATA_FLAG_EOF
        return n

    cdef void close(self) noexcept:
        try:
            self.file.close()
        except Exception:
            pass


cdef class GeneratorBody(BodySource):
    """A callable ``body(n) -> (data, flag)`` with the DATA_* flags."""
    cdef object generator
    cdef bytes pending
    cdef Py_ssize_t offset
    cdef bint eof
    cdef bint deferred

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        cdef object data
        cdef Py_ssize_t n
        if self.pending is None:
            if self.eof:
                flags[0] |= NGHTTP2_DATA_FLAG_EOF
                return 0
            if self.deferred:
                return NGHTTP2_ERR_DEFERRED
            data, flag = self.generator(size)
            if flag == DATA_EOF:
                self.eof = True
            elif flag == DATA_DEFERRED:
                self.deferred = True
            elif flag != DATA_OK:
                raise ValueError(f"body generator returned unknown flag {flag!r}")
            if data:
                self.pending = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                self.offset = 0
            elif self.eof:
                flags[0] |= NGHTTP2_DATA_FLAG_EOF
                return 0
            else:
                # Nothing now: wait for resume() rather than spin on empty frames.
                self.deferred = True
                return NGHTTP2_ERR_DEFERRED
        n = PyBytes_GET_SIZE(self.pending) - self.offset
        if <size_t>n > size:
            n = size
        memcpy(buf, PyBytes_AS_STRING(self.pending) + self.offset, n)
        self.offset += n
        if self.offset == PyBytes_GET_SIZE(self.pending):
            self.pending = None
            if self.eof:
                flags[0] |= NGHTTP2_DATA_FLAG_EOF
        return n


cdef BodySource body_source(object body):
    """The BodySource for a body given to send_response or push (None: no body)."""
    cdef BytesBody data
    cdef FileBody stream
    cdef GeneratorBody generator
    if body is None:
        return None
    if isinstance(body, str):
        body = (<str>body).encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = BytesBody.__new__(BytesBody)
        data.data = body if type(body) is bytes else bytes(body)
        data.length = PyBytes_GET_SIZE(data.data)
        return data
    if isinstance(body, _io.IOBase):
        stream = FileBody.__new__(FileBody)
        stream.file = body
        stream.text = isinstance(body, _io.TextIOBase)
        stream.readinto = None if stream.text else getattr(body, "readinto", None)
        stream.length = -1 if stream.text else _remaining_length(body)
        return stream
    if callable(body):
        generator = GeneratorBody.__new__(GeneratorBody)
        generator.generator = body
        generator.length = -1
        return generator
    raise TypeError(
        "body must be None, str, bytes-like, an io.IOBase or a callable(n) -> (data, flag), "
        f"not {type(body).__name__}")


cdef Py_ssize_t _remaining_length(object file) except -2:
    """Bytes left in a seekable binary file, or -1."""
    try:
        if not file.seekable():
            return -1
        position = file.tell()
        end = file.seek(0, 2)
        file.seek(position)
        return end - position
    except (OSError, ValueError):
        return -1
