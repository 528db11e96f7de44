"""Exceptions raised by nghttp2py.

Errors reported by libnghttp2 become :class:`NGHTTP2Error` subclasses picked
by :func:`error_class_for` from the library's error code; misuse of the
handler API raises :class:`InvalidHeaderError` or :class:`ResponseStateError`
in the caller before anything is sent.
"""
from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ErrorCode",
    "HTTP2Error",
    "NGHTTP2Error",
    "ProtocolError",
    "StreamClosedError",
    "FlowControlError",
    "HPACKError",
    "InvalidHeaderError",
    "ResponseStateError",
    "error_class_for",
]


class ErrorCode(IntEnum):
    """The HTTP/2 error codes (RFC 9113 section 7), as RST_STREAM and GOAWAY carry them.

    ``BaseRequestHandler.on_close`` receives one of these (``NO_ERROR`` on a
    clean close); being an ``IntEnum``, each compares equal to its number.
    """

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class HTTP2Error(Exception):
    """Base class of every exception nghttp2py raises."""


class NGHTTP2Error(HTTP2Error):
    """libnghttp2 returned an error code.

    ``code`` is the library's negative error code (``NGHTTP2_ERR_*``) and the
    message is the library's own description (``nghttp2_strerror``).
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(NGHTTP2Error):
    """The peer, or a call, broke the HTTP/2 protocol."""


class StreamClosedError(NGHTTP2Error):
    """The stream is closed, closing, or does not exist."""


class FlowControlError(NGHTTP2Error):
    """A flow-control window would overflow or underflow."""


class HPACKError(NGHTTP2Error):
    """A header block could not be compressed or decompressed."""


class InvalidHeaderError(HTTP2Error, ValueError):
    """A header name or value is not allowed in HTTP/2 (RFC 9113 section 8.2)."""


class ResponseStateError(HTTP2Error, RuntimeError):
    """The call does not fit the stream's state, e.g. a second response."""


# libnghttp2 error codes (nghttp2_error in nghttp2/nghttp2.h) by class.
_CLASS_BY_CODE = {
    -505: ProtocolError,        # NGHTTP2_ERR_PROTO
    -506: ProtocolError,        # NGHTTP2_ERR_INVALID_FRAME
    -510: StreamClosedError,    # NGHTTP2_ERR_STREAM_CLOSED
    -511: StreamClosedError,    # NGHTTP2_ERR_STREAM_CLOSING
    -512: StreamClosedError,    # NGHTTP2_ERR_STREAM_SHUT_WR
    -513: StreamClosedError,    # NGHTTP2_ERR_INVALID_STREAM_ID
    -514: StreamClosedError,    # NGHTTP2_ERR_INVALID_STREAM_STATE
    -518: ProtocolError,        # NGHTTP2_ERR_INVALID_HEADER_BLOCK
    -522: ProtocolError,        # NGHTTP2_ERR_FRAME_SIZE_ERROR
    -523: HPACKError,           # NGHTTP2_ERR_HEADER_COMP
    -524: FlowControlError,     # NGHTTP2_ERR_FLOW_CONTROL
    -531: ProtocolError,        # NGHTTP2_ERR_HTTP_HEADER
    -532: ProtocolError,        # NGHTTP2_ERR_HTTP_MESSAGING
    -903: ProtocolError,        # NGHTTP2_ERR_BAD_CLIENT_MAGIC
    -904: ProtocolError,        # NGHTTP2_ERR_FLOODED
}


def error_class_for(code: int) -> type[NGHTTP2Error]:
    """Return the exception class for a libnghttp2 error code."""
    return _CLASS_BY_CODE.get(code, NGHTTP2Error)
