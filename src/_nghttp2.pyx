# cython: language_level=3
"""The nghttp2py engine: libnghttp2 sessions, request handlers and HPACK codecs."""

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t

from nghttp2 cimport *

cdef class Session
cdef class BaseRequestHandler

include "errors.pxi"
include "headers.pxi"
include "body.pxi"
include "handler.pxi"
include "session.pxi"
include "hpack.pxi"

NGHTTP2_LIB_VERSION = nghttp2_version(0).version_str.decode("ascii")

__all__ = [
    "BaseRequestHandler", "Session", "HDDeflater", "HDInflater", "HDTableEntry",
    "DATA_OK", "DATA_EOF", "DATA_DEFERRED", "NGHTTP2_LIB_VERSION",
]
