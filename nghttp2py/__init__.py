"""nghttp2py: HTTP/2 for Python on libnghttp2, with an asyncio server and client API.

The names below are imported on first use: a program that only needs the
client does not pay for importing the server, the ASGI/WSGI adapters and the
command line (about a third of ``import nghttp2py``'s start-up).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._nghttp2 import NGHTTP2_LIB_VERSION, WebSocket
    from .app_server import AppServer, serve
    from .client import BaseResponseHandler, Client, HTTP2Client, PushPromise, Response, Timeout
    from .client.httpx_transport import HTTPXTransport
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

# The module that defines each name of __all__ (but __version__).
_MODULES = {
    "NGHTTP2_LIB_VERSION": "._nghttp2", "WebSocket": "._nghttp2",
    "AppServer": ".app_server", "serve": ".app_server",
    "BaseResponseHandler": ".client", "Client": ".client", "HTTP2Client": ".client",
    "PushPromise": ".client", "Response": ".client", "Timeout": ".client",
    # httpx is optional: the transport needs it.
    "HTTPXTransport": ".client.httpx_transport",
    "ErrorCode": ".errors", "FlowControlError": ".errors", "HPACKError": ".errors",
    "HTTP2Error": ".errors", "InvalidHeaderError": ".errors", "NGHTTP2Error": ".errors",
    "ProtocolError": ".errors", "ResponseStateError": ".errors",
    "StreamClosedError": ".errors",
    "DATA_DEFERRED": ".handler", "DATA_EOF": ".handler", "DATA_OK": ".handler",
    "BaseRequestHandler": ".handler",
    "DEFAULT_HEADER_TABLE_SIZE": ".hpack", "DEFLATE_MAX_HEADER_TABLE_SIZE": ".hpack",
    "HDDeflater": ".hpack", "HDInflater": ".hpack", "HDTableEntry": ".hpack",
    "print_hd_table": ".hpack",
    "HTTP2Server": ".server",
    "GuardLimits": ".settings", "ServerSettings": ".settings", "Timeouts": ".settings",
    "WebSocketClosed": ".websocket",
}

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
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
