"""nghttp2py: HTTP/2 for Python on libnghttp2, with an asyncio server API."""
from ._nghttp2 import NGHTTP2_LIB_VERSION
from ._version import __version__
from .errors import (
    ErrorCode,
    FlowControlError,
    HPACKError,
    HTTP2Error,
    InvalidHeaderError,
    NGHTTP2Error,
    ProtocolError,
    ResponseStateError,
    StreamClosedError,
)
from .handler import DATA_DEFERRED, DATA_EOF, DATA_OK, BaseRequestHandler
from .hpack import (
    DEFAULT_HEADER_TABLE_SIZE,
    DEFLATE_MAX_HEADER_TABLE_SIZE,
    HDDeflater,
    HDInflater,
    HDTableEntry,
    print_hd_table,
)
from .server import HTTP2Server
from .settings import ServerSettings, Timeouts

__all__ = [
    "DATA_DEFERRED",
    "DATA_EOF",
    "DATA_OK",
    "DEFAULT_HEADER_TABLE_SIZE",
    "DEFLATE_MAX_HEADER_TABLE_SIZE",
    "NGHTTP2_LIB_VERSION",
    "BaseRequestHandler",
    "ErrorCode",
    "FlowControlError",
    "HDDeflater",
    "HDInflater",
    "HDTableEntry",
    "HPACKError",
    "HTTP2Error",
    "HTTP2Server",
    "InvalidHeaderError",
    "NGHTTP2Error",
    "ProtocolError",
    "ResponseStateError",
    "ServerSettings",
    "StreamClosedError",
    "Timeouts",
    "__version__",
    "print_hd_table",
]
