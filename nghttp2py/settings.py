"""HTTP/2 settings and limits a server announces and enforces."""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["GuardLimits", "ServerSettings", "Timeouts"]

_MAX_WINDOW = 2**31 - 1
# The engine compares body sizes in a C Py_ssize_t: far below its end.
_MAX_BODY = 2**53


@dataclass(frozen=True)
class ServerSettings:
    """SETTINGS sent to every client, and the server's receive windows.

    The defaults follow common production servers: 100 concurrent streams
    (RFC 9113's recommended minimum), a 1 MiB window per stream and 16 MiB per
    connection so uploads run at full speed, 16 KiB frames, 64 KiB of request
    headers (a larger header block gets ``431``) and a 4 KiB HPACK table.

    ``max_request_body_size`` limits each request body, in bytes, over HTTP/2,
    HTTP/1.1 and HTTP/3 alike, whatever serves it (handler, ASGI or WSGI app): a
    larger ``content-length`` gets ``413`` before any of the body is read, and
    a body that grows past it mid-way gets ``413`` (HTTP/2: then RST_STREAM
    NO_ERROR; HTTP/1.1: then the connection closes), or, if a response has
    already started, RST_STREAM (HTTP/2) or a close (HTTP/1.1). ``None`` (the
    default, as in Uvicorn, Hypercorn and Granian) sets no limit: flow control
    already bounds the memory a body can take.
    """

    max_concurrent_streams: int = 100
    initial_window_size: int = 1 << 20
    connection_window_size: int = 16 << 20
    max_frame_size: int = 16384
    max_header_list_size: int = 64 << 10
    header_table_size: int = 4096
    max_request_body_size: int | None = None

    def __post_init__(self) -> None:
        limit = self.max_request_body_size
        if limit is not None and (not isinstance(limit, int) or not 0 <= limit <= _MAX_BODY):
            raise ValueError(f"max_request_body_size must be None or an integer in "
                             f"[0, {_MAX_BODY}], not {limit!r}")
        for name, low, high in (
            ("max_concurrent_streams", 0, 2**32 - 1),
            ("initial_window_size", 0, _MAX_WINDOW),
            ("connection_window_size", 65535, _MAX_WINDOW),
            ("max_frame_size", 16384, 2**24 - 1),
            ("max_header_list_size", 0, 2**32 - 1),
            ("header_table_size", 0, 2**32 - 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")

    def as_dict(self) -> dict[str, int | None]:
        """The settings as a plain dict, as the engine takes them."""
        return asdict(self)


@dataclass(frozen=True)
class Timeouts:
    """How long a server waits for a client, in seconds (``None`` turns one off).

    ``handshake``: from accept to the client's connection preface and SETTINGS
    (then GOAWAY SETTINGS_TIMEOUT).
    ``settings_ack``: for the client to acknowledge the server's SETTINGS
    (then GOAWAY SETTINGS_TIMEOUT).
    ``request_header``: from the read that begins a header block (or a frame
    header) to its end, as nginx's ``client_header_timeout`` (then GOAWAY
    ENHANCE_YOUR_CALM): a client trickling its headers cannot hold a stream.
    ``min_rate``: bytes per second a client must send, over each period of
    ``request_header`` seconds (10 s if that is off), while one of its
    requests waits for body data the application is ready to take (then
    GOAWAY ENHANCE_YOUR_CALM); turn it off for long, slow request streams.
    ``idle``: a connection with no open stream is closed gracefully after this
    long without traffic. ``keepalive``: with no traffic for this long, the
    server sends a PING, and closes the connection if it is not acknowledged
    within ``keepalive_ack``.
    ``shutdown_ping``: a graceful shutdown sends its final GOAWAY when the
    client acknowledges the PING sent with the notice, or after this long.
    """

    handshake: float | None = 10.0
    settings_ack: float | None = 10.0
    idle: float | None = 300.0
    keepalive: float | None = None
    keepalive_ack: float = 20.0
    shutdown_ping: float = 1.0
    request_header: float | None = 10.0
    min_rate: float | None = 100.0

    def __post_init__(self) -> None:
        for name in ("handshake", "settings_ack", "idle", "keepalive", "keepalive_ack",
                     "shutdown_ping", "request_header", "min_rate"):
            value = getattr(self, name)
            if value is None and name in ("keepalive_ack", "shutdown_ping"):
                raise ValueError(f"{name} cannot be turned off")
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


@dataclass(frozen=True)
class GuardLimits:
    """The budgets of the frame guard, which stops hostile clients (SECURITY.md).

    ``reset_burst``, ``reset_rate``: the client's RST_STREAM frames (rapid
    reset, CVE-2023-44487), a token bucket: this many at once, refilled at
    ``reset_rate`` per second (then GOAWAY ENHANCE_YOUR_CALM). libnghttp2's own
    limiter stays behind it at 400 and 66 per second.
    ``idle_frame_burst``, ``idle_frame_rate``, ``idle_frame_credit``: frames
    that do no work (empty DATA, PRIORITY, WINDOW_UPDATE on a closed stream,
    PING, SETTINGS, unknown types), a token bucket refilled at
    ``idle_frame_rate`` per second and by ``idle_frame_credit`` per request.
    ``max_continuations``: CONTINUATION frames after one HEADERS (libnghttp2
    itself stops at 8). ``max_oversized_blocks``: header blocks over
    ``max_header_list_size`` (each gets ``431``) before GOAWAY;
    ``abandon_factor``: past this many times that limit, a block is no longer
    decoded for the application (RST_STREAM ENHANCE_YOUR_CALM).
    ``slice_bytes``, ``slice_seconds``: libnghttp2 gets a read in slices of
    this many bytes, and once a read has taken this long, the rest waits for
    the next turn of the event loop.

    A server takes them once (``HTTP2Server(..., guard=GuardLimits(...))``);
    they cost nothing per frame.
    """

    reset_burst: float = 200
    reset_rate: float = 33
    idle_frame_burst: float = 1000
    idle_frame_rate: float = 100
    idle_frame_credit: float = 2
    max_continuations: int = 8
    max_oversized_blocks: int = 4
    abandon_factor: int = 4
    slice_bytes: int = 8192
    slice_seconds: float = 0.002

    def __post_init__(self) -> None:
        for name in ("reset_burst", "reset_rate", "idle_frame_burst", "idle_frame_rate",
                     "idle_frame_credit", "slice_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= (1 if "burst" in name
                                                                   else 0):
                raise ValueError(f"{name} must be a number >= {1 if 'burst' in name else 0}, "
                                 f"not {value!r}")
        for name, low, high in (("max_continuations", 0, 8),
                                ("max_oversized_blocks", 0, 2**32 - 1),
                                ("abandon_factor", 1, 2**16),
                                ("slice_bytes", 1024, 2**30)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
