"""nghttp2py: HTTP/2 for Python on libnghttp2, with an asyncio server API."""
from ._nghttp2 import NGHTTP2_LIB_VERSION
from ._version import __version__
from .errors import (
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
from .hpack import HDDeflater, HDInflater, HDTableEntry, print_hd_table
from .server import HTTP2Server
from .settings import ServerSettings, Timeouts

__all__ = [
    "HTTP2Server",
    "BaseRequestHandler",
    "ServerSettings",
    "Timeouts",
    "DATA_OK",
    "DATA_EOF",
    "DATA_DEFERRED",
    "HDDeflater",
    "HDInflater",
    "HDTableEntry",
    "print_hd_table",
    "HTTP2Error",
    "NGHTTP2Error",
    "ProtocolError",
    "StreamClosedError",
    "FlowControlError",
    "HPACKError",
    "InvalidHeaderError",
    "ResponseStateError",
    "NGHTTP2_LIB_VERSION",
    "__version__",
]
