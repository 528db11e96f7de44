# cython: language_level=3
"""The nghttp2py engine: HTTP/2 over libnghttp2, HTTP/1.1 over llhttp, HTTP/3, request handlers
and HPACK codecs.

The classes, their C-level interface and the constants are declared in
nghttp2py/_nghttp2.pxd, with every cimport; each .pxi below holds one piece.
"""

cimport cython  # no-cython-lint: @cython.freelist in headers.pxi needs it here

include "errors.pxi"      # libnghttp2 error codes -> nghttp2py.errors exceptions
include "headers.pxi"     # header blocks handed to libnghttp2, validation
include "body.pxi"        # response bodies, pulled as the peer's window allows
include "handler.pxi"     # BaseRequestHandler: the application's side of a stream
include "protocol.pxi"    # HTTPProtocol: what every protocol offers its streams
include "websocket.pxi"   # WebSocket: RFC 6455 messages on a stream
include "memory.pxi"      # the memory allocator of each nghttp2 session
include "oversized.pxi"   # header fields over libnghttp2's limit: 431, not GOAWAY
include "guard.pxi"       # the Session's guard against hostile peers (SECURITY.md)
include "http2.pxi"       # Session: HTTP/2 over libnghttp2
include "http1.pxi"       # HTTP1Connection: HTTP/1.1 over llhttp (httptools)
include "http3.pxi"       # HTTP3Connection: HTTP/3 over an engine (nghttp2py.quic)
include "client.pxi"      # ClientSession, BaseResponseHandler: the client side of HTTP/2
include "aclient.pxi"     # the async client's streams, Response's hot half, its requests
include "asgi.pxi"        # ASGIHandler: ASGI 3 applications on the stream interface
include "hpack.pxi"       # HDDeflater, HDInflater, HDTableEntry

NGHTTP2_LIB_VERSION = nghttp2_version(0).version_str.decode("ascii")

__all__ = [
    "BaseRequestHandler", "HTTPProtocol", "Session", "HTTP1Connection", "HTTP3Connection",
    "WebSocket",
    "BaseResponseHandler", "BufferedResponseHandler", "ClientSession", "PushPromise",
    "ClientBase", "ResponseBase", "new_response",
    "ASGIConfig", "ASGIHandler",
    "HDDeflater", "HDInflater", "HDTableEntry", "DATA_OK", "DATA_EOF", "DATA_DEFERRED",
    "NGHTTP2_LIB_VERSION", "GuardBudgets",
]
