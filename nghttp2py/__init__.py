"""nghttp2py: HTTP/2 for Python on libnghttp2, with an asyncio server and client API."""
from typing import Any

from ._nghttp2 import NGHTTP2_LIB_VERSION, WebSocket
from ._version import __version__
from .app_server import AppServer, serve
from .client import BaseResponseHandler, Client, HTTP2Client, PushPromise, Response, Timeout
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
from .settings import GuardLimits, ServerSettings, Timeouts
from .websocket import WebSocketClosed

__all__ = [
    "DATA_DEFERRED",
    "DATA_EOF",
    "DATA_OK",
    "DEFAULT_HEADER_TABLE_SIZE",
    "DEFLATE_MAX_HEADER_TABLE_SIZE",
    "NGHTTP2_LIB_VERSION",
    "AppServer",
    "BaseRequestHandler",
    "BaseResponseHandler",
    "Client",
    "ErrorCode",
    "FlowControlError",
    "GuardLimits",
    "HDDeflater",
    "HDInflater",
    "HDTableEntry",
    "HPACKError",
    "HTTP2Error",
    "HTTP2Client",
    "HTTP2Server",
    "HTTPXTransport",
    "InvalidHeaderError",
    "NGHTTP2Error",
    "ProtocolError",
    "PushPromise",
    "Response",
    "ResponseStateError",
    "ServerSettings",
    "StreamClosedError",
    "Timeout",
    "Timeouts",
    "WebSocket",
    "WebSocketClosed",
    "__version__",
    "print_hd_table",
    "serve",
]


def __getattr__(name: str) -> Any:
    # httpx is optional: its transport is imported on first use.
    if name == "HTTPXTransport":
        from .client.httpx_transport import HTTPXTransport
        return HTTPXTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
