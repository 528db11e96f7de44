# Response bodies: one BodySource per response, pulled by nghttp2's data
# source read callback while it frames DATA.

import io as _io
from asyncio import ensure_future as _ensure_future

# Flags a body generator returns with each chunk (the old binding's names).
DATA_OK = 0
DATA_EOF = 1
DATA_DEFERRED = 2

cdef class BodySource:
    """A response body; ``length`` is -1 when not known in advance."""

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        flags[0] |= NGHTTP2_DATA_FLAG_EOF
        return 0

    cdef const char *take(self, size_t size):
        """The bytes announced by a NO_COPY read, now being sent."""
        return NULL

    cdef void close(self) noexcept:
        pass


cdef class BytesBody(BodySource):
    """A bytes object; chunks of NO_COPY_THRESHOLD and more go out without nghttp2's copy."""

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
    """A binary file object read straight into nghttp2's frame buffer."""

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
            chunk = self.file.read(size)
            n = len(chunk)
            if <size_t>n > size:
                raise ValueError(f"read({size}) returned {n} bytes")
            memcpy(buf, PyBytes_AS_STRING(chunk), n)
        if n == 0:
            flags[0] |= NGHTTP2_DATA_FLAG_EOF
        return n

    cdef void close(self) noexcept:
        _close_quietly(self.file)


cdef class ChunkedBody(BodySource):
    """A body produced in chunks of any size; what does not fit waits in ``pending``."""

    cdef int fill(self, size_t size) except -2:
        """Set ``pending`` and/or ``eof``; or return NGHTTP2_ERR_DEFERRED."""
        self.eof = True
        return 0

    cdef ssize_t read(self, uint8_t *buf, size_t size, uint32_t *flags) except? -2:
        cdef Py_ssize_t n
        cdef int rv
        if self.pending is None and not self.eof:
            rv = self.fill(size)
            if rv < 0:
                return rv
        if self.pending is None:
            flags[0] |= NGHTTP2_DATA_FLAG_EOF
            return 0
        n = PyBytes_GET_SIZE(self.pending) - self.offset
        if <size_t>n > size:
            n = size
        memcpy(buf, PyBytes_AS_STRING(self.pending) + self.offset, n)
        self.offset += n
        if self.offset == PyBytes_GET_SIZE(self.pending):
            self.pending = None
            self.offset = 0
            if self.eof:
                flags[0] |= NGHTTP2_DATA_FLAG_EOF
        return n


cdef class TextFileBody(ChunkedBody):
    """A text file object, sent as UTF-8."""

    cdef int fill(self, size_t size) except -2:
        cdef str text = self.file.read(max(size // 4, <size_t>1))
        if text:
            self.pending = text.encode("utf-8")
        else:
            self.eof = True
        return 0

    cdef void close(self) noexcept:
        _close_quietly(self.file)


cdef class GeneratorBody(ChunkedBody):
    """A callable ``body(n) -> (data, flag)`` with the DATA_* flags.

    ``(b"", DATA_OK)`` counts as ``DATA_DEFERRED``: the body waits for
    ``resume()`` rather than spin on empty frames.
    """

    cdef int fill(self, size_t size) except -2:
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
            self.pending = chunk_bytes(data, "body generator")
        elif not self.eof:
            self.deferred = True
            return NGHTTP2_ERR_DEFERRED
        return 0


cdef class AsyncIterBody(ChunkedBody):
    """An async iterable of bytes; each chunk is awaited as the window allows."""

    cdef int fill(self, size_t size) except -2:
        if self.waiting is None:
            self.waiting = _ensure_future(self.iterator.__anext__())
            self.waiting.add_done_callback(self.chunk_ready)
        return NGHTTP2_ERR_DEFERRED

    def chunk_ready(self, future):
        """The next chunk (or the end) has arrived: hand it to nghttp2."""
        if future is not self.waiting:
            return  # closed meanwhile
        self.waiting = None
        exception = _task_failure(future)
        if isinstance(exception, StopAsyncIteration):
            self.eof = True
        elif exception is not None:
            # A cancelled chunk counts as a failure too: the stream is reset.
            self.failed(exception)
            return
        else:
            chunk = future.result()
            if chunk:
                try:
                    self.pending = chunk_bytes(chunk, "async body")
                except TypeError as exc:
                    self.failed(exc)
                    return
        self.resume()

    cdef void resume(self) except *:
        self.handler.protocol.resume_body(self.handler)

    cdef void failed(self, object exception) except *:
        self.handler.fail("body", exception)
        self.handler.protocol.after_app_work()

    cdef void close(self) noexcept:
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.cancel()
        self.handler = None


cdef bytes chunk_bytes(object chunk, str source):
    """A body chunk as bytes: ``str`` is sent as UTF-8, anything but bytes-like is an error."""
    if isinstance(chunk, str):
        return (<str>chunk).encode("utf-8")
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return chunk if type(chunk) is bytes else bytes(chunk)
    raise TypeError(f"{source} produced {type(chunk).__name__}, not bytes or str")


cdef void _close_quietly(object file) noexcept:
    """Close a body's file; the response is over either way, so a failure is only logged."""
    try:
        file.close()
    except BaseException as exc:
        try:
            _logger.warning("closing the response body %r failed: %r", file, exc)
        except BaseException:
            pass  # logging itself failed: nothing left to tell anyone


cdef BodySource body_source(object body):
    """The BodySource for a body given to send_response or push (None: no body)."""
    cdef BytesBody data
    cdef FileBody stream
    cdef TextFileBody text
    cdef GeneratorBody generator
    cdef AsyncIterBody iterable
    if body is None:
        return None
    if isinstance(body, str):
        body = (<str>body).encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = BytesBody.__new__(BytesBody)
        data.data = body if type(body) is bytes else bytes(body)
        data.length = PyBytes_GET_SIZE(data.data)
        return data
    if isinstance(body, _io.TextIOBase):
        text = TextFileBody.__new__(TextFileBody)
        text.file = body
        text.length = -1
        return text
    if isinstance(body, _io.IOBase):
        stream = FileBody.__new__(FileBody)
        stream.file = body
        stream.readinto = getattr(body, "readinto", None)
        stream.length = _remaining_length(body)
        return stream
    if hasattr(body, "__aiter__"):
        iterable = AsyncIterBody.__new__(AsyncIterBody)
        iterable.iterator = body.__aiter__()
        iterable.length = -1
        return iterable
    if callable(body):
        generator = GeneratorBody.__new__(GeneratorBody)
        generator.generator = body
        generator.length = -1
        return generator
    raise TypeError(
        "body must be None, str, bytes-like, an io.IOBase, an async iterable or a "
        "callable(n) -> (data, flag), "
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
