"""Exceptions of the HTTP/2 client: each says what went wrong, in HTTP/2's own terms.

Every one is a :class:`~nghttp2py.HTTP2Error`; those about the connection
are also :class:`ConnectionError`, the timeouts :class:`TimeoutError`.
"""
from __future__ import annotations

from ..errors import ErrorCode, HTTP2Error

__all__ = [
    "ALPNError",
    "ClientError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "GoAwayError",
    "IncompleteResponseError",
    "ReadTimeoutError",
    "RequestTimeoutError",
    "StreamResetError",
    "TotalTimeoutError",
    "error_name",
]


def error_name(code: int) -> str:
    """``ErrorCode`` name of an HTTP/2 error code (``0x1f`` for one RFC 9113 does not name)."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return hex(code)


class ClientError(HTTP2Error):
    """Base class of the client's errors."""


class ConnectError(ClientError, ConnectionError):
    """No HTTP/2 connection to the server: refused, unreachable, TLS failed."""


class ALPNError(ConnectError):
    """The TLS server did not agree to speak HTTP/2 (no ``h2`` in ALPN)."""


class ConnectionClosedError(ClientError, ConnectionError):
    """The connection ended before the response did."""


class GoAwayError(ConnectionClosedError):
    """The server sent GOAWAY, and this request was not (all) answered.

    ``error_code`` is the GOAWAY's :class:`~nghttp2py.ErrorCode`,
    ``last_stream_id`` the last request the server says it processed and
    ``debug_data`` its debug text. ``retryable`` is true when this request
    was not processed at all (its stream is above ``last_stream_id``), so
    sending it again, on a new connection, is safe.
    """

    def __init__(self, error_code: int, last_stream_id: int, debug_data: bytes = b"", *,
                 retryable: bool = False) -> None:
        text = f"the server sent GOAWAY {error_name(error_code)} (last stream {last_stream_id})"
        if debug_data:
            text += f": {debug_data.decode('utf-8', 'replace')}"
        if retryable:
            text += "; the request was not processed"
        super().__init__(text)
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.debug_data = debug_data
        self.retryable = retryable

    @classmethod
    def from_frame(cls, goaway: tuple[int, int, bytes], *, retryable: bool = False,
                   ) -> GoAwayError:
        """From ``ClientSession.goaway``: ``(last_stream_id, error_code, debug_data)``."""
        last_stream_id, error_code, debug_data = goaway
        return cls(error_code, last_stream_id, debug_data, retryable=retryable)


class StreamResetError(ClientError):
    """The server reset the request's stream (RST_STREAM); ``error_code`` says why.

    ``retryable`` is true for ``REFUSED_STREAM``: the server did not process
    the request (RFC 9113 section 8.7), so sending it again is safe.
    """

    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} was reset: RST_STREAM {error_name(error_code)}")
        self.stream_id = stream_id
        self.error_code = error_code
        self.retryable = error_code == ErrorCode.REFUSED_STREAM


class IncompleteResponseError(ClientError):
    """The stream closed before the whole response had arrived."""


class RequestTimeoutError(ClientError, TimeoutError):
    """Base class of the client's timeouts."""


class ConnectTimeoutError(RequestTimeoutError, ConnectError):
    """Connecting (TCP, then TLS) took longer than the connect timeout."""


class ReadTimeoutError(RequestTimeoutError):
    """The server sent nothing on the stream for longer than the read timeout."""


class TotalTimeoutError(RequestTimeoutError):
    """The whole request took longer than the total timeout."""
