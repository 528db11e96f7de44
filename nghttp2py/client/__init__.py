"""The HTTP/2 client: the callback API (:class:`HTTP2Client`, :class:`BaseResponseHandler`),
the async/await API (:class:`Client`, :class:`Response`) and an httpx transport
(:class:`HTTPXTransport`, imported on first use so that httpx stays optional).

``python -m nghttp2py.client URL`` is a small command-line client (see __main__.py).
"""
from __future__ import annotations

from typing import Any

from .._nghttp2 import BaseResponseHandler, PushPromise
from .aio import Client, Headers, Response, Timeout
from .classic import HTTP2Client
from .errors import (
    ALPNError,
    ClientError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    GoAwayError,
    IncompleteResponseError,
    ReadTimeoutError,
    RequestTimeoutError,
    StreamResetError,
    TotalTimeoutError,
)

__all__ = [
    "ALPNError",
    "BaseResponseHandler",
    "Client",
    "ClientError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "GoAwayError",
    "HTTP2Client",
    "HTTPXTransport",
    "Headers",
    "IncompleteResponseError",
    "PushPromise",
    "ReadTimeoutError",
    "RequestTimeoutError",
    "Response",
    "StreamResetError",
    "Timeout",
    "TotalTimeoutError",
]


def __getattr__(name: str) -> Any:
    if name == "HTTPXTransport":
        from .httpx_transport import HTTPXTransport
        return HTTPXTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
