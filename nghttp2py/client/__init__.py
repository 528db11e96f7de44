"""The HTTP/2 client: the callback API (:class:`HTTP2Client`, :class:`BaseResponseHandler`)
and the async/await API (:class:`Client`, :class:`Response`). The httpx transport
is in :mod:`nghttp2py.client.httpx_transport` (``nghttp2py.HTTPXTransport``), so that
httpx stays optional.

``python -m nghttp2py.client URL`` is a small command-line client (see __main__.py).
"""
from __future__ import annotations

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

