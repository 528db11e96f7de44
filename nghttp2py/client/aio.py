"""Client and Response: the async/await HTTP/2 client.

One :class:`Client` holds one connection to one origin and multiplexes every
request on it; requests beyond the server's ``SETTINGS_MAX_CONCURRENT_STREAMS``
wait in the session until a stream is free. A :class:`Response` is returned
once its header block has arrived; its body follows as the application reads
it, under flow control (an unread body holds back only its own stream).
"""
from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from .._nghttp2 import ClientBase, PushPromise, ResponseBase, new_response
from ..errors import ErrorCode
from .connection import (
    ClientConnection,
    Origin,
    client_settings,
    client_ssl_context,
    path_of,
)
from .errors import GoAwayError, IncompleteResponseError, StreamResetError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Client", "Headers", "Response", "Timeout"]

_USER_AGENT = (b"user-agent", b"nghttp2py")

_Text = Union[str, bytes]
_Headers = Union[Mapping[_Text, _Text], Iterable[tuple[_Text, _Text]], None]


@dataclass(frozen=True)
class Timeout:
    """How long a request may take, in seconds (``None``: no limit).

    ``connect``: to open the connection (TCP and TLS). ``read``: the longest
    wait for the next part of a response (its headers, a chunk of its body).
    ``total``: the whole request, from sending it to the end of its body.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = None

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        """A Timeout from a Timeout, a number (connect and read) or None (no limits)."""
        if isinstance(value, Timeout):
            return value
        return cls(value, value, None)


class Headers(Mapping[str, str]):
    """A response's header fields: ``headers["content-type"]``, case-insensitive.

    A field that occurs more than once reads as its values joined by ``", "``;
    :meth:`get_all` gives them one by one, and ``raw`` is the list of
    ``(name, value)`` byte pairs as received.
    """

    __slots__ = ("_fields", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        fields: dict[str, list[str]] = {}
        for name, value in raw:
            fields.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._fields[name.lower()])

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order (e.g. each ``set-cookie``)."""
        return list(self._fields.get(name.lower(), ()))

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


# The phases of a response's stream: waiting, the header block is in, all of it is.
_WAITING, _HEADERS, _DONE = 0, 1, 2


class Response(ResponseBase):
    """The response to one request; returned once its header block has arrived.

    ``status``, ``headers`` (:class:`Headers`) and, after the body,
    ``trailers``. Read the body once: :meth:`read` (bytes), :meth:`text`,
    :meth:`json`, or ``async for chunk in response.stream()``. A response is
    never cut short silently: a reset, GOAWAY, lost connection or timeout
    raises from whichever of them is waiting. :meth:`aclose` (or ``async
    with response``) gives up on an unread body. ``pushed`` lists the
    responses the server pushed with this one (when the client accepts push).

    What every request runs (waiting for the stream's events, :meth:`read`)
    is in C, in :class:`~nghttp2py._nghttp2.ResponseBase`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Response [{self.status}] {self.method} {self.url}>"

    # -- what the application reads -------------------------------------------------------

    @property
    def pushed(self) -> list[Response]:
        """The responses the server pushed with this one (accepted when the client has push)."""
        if self._pushed_responses is None:
            self._pushed_responses = []
        return self._pushed_responses

    @property
    def url(self) -> str:
        """The URL requested."""
        client: Client = self._client
        return client._url(self._path)

    @property
    def status(self) -> int:
        """The status code (0 until the header block has arrived)."""
        return self._stream.status

    @property
    def headers(self) -> Headers:
        if self._headers is None and self._stream.phase != _WAITING:
            self._headers = Headers(self._stream.headers)
        return self._headers or Headers([])

    @property
    def trailers(self) -> Headers:
        """The trailer fields, once the body has been read (empty when there are none)."""
        return Headers(self._stream.trailers or [])

    @property
    def stream_id(self) -> int:
        return self._stream.stream_id

    @property
    def http_version(self) -> str:
        return "2"

    async def text(self, encoding: str | None = None) -> str:
        """The body decoded with ``encoding``, else the content-type's charset, else UTF-8."""
        body = await self.read()
        return body.decode(encoding or self._charset() or "utf-8", "replace")

    async def json(self) -> Any:
        """The body parsed as JSON."""
        import json  # here: a client that never decodes JSON never imports it
        return json.loads(await self.read())

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk as it arrives (each chunk read once)."""
        stream = self._stream
        if stream.reading_all:
            raise RuntimeError("the body was read with read() already")
        self._streaming = True
        while True:
            chunk = stream.take()
            if chunk is not None:
                yield chunk
            elif stream.phase == _DONE:
                return
            else:
                await self._wait()

    async def aclose(self) -> None:
        """Give up on the rest of the body: reset the stream (CANCEL) unless it is done."""
        if self._stream.phase != _DONE:
            self._stream.cancel()
        self._stream.chunks.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset":
                return value.strip('"') or None
        return None

    # -- sending, and the events of its stream ------------------------------------------------

    def _promised(self, promise: PushPromise) -> None:
        if not self._client.push:
            return  # rejected
        path = promise.path.decode("latin-1") if promise.path else "/"
        pushed = new_response(Response, self._client,
                              (promise.method or b"GET").decode("latin-1"), path,
                              self._timeout, self._connection)
        self._stream.accept_push(promise, pushed._stream)
        self.pushed.append(pushed)
        self._client._pushed[path] = pushed

    def _stream_error(self, error_code: int) -> BaseException:
        """Why the stream closed before the response was complete."""
        stream = self._stream
        if stream.error is not None:
            return stream.error
        goaway = self._connection.session.goaway if self._connection is not None else None
        if error_code == ErrorCode.REFUSED_STREAM and goaway is not None:
            return GoAwayError.from_frame(goaway, retryable=True)
        if error_code != ErrorCode.NO_ERROR:
            return StreamResetError(stream.stream_id, error_code)
        return IncompleteResponseError(
            f"stream {stream.stream_id} closed before the end of the response")


class Client(ClientBase):
    """An HTTP/2 client for one origin (``https://host:port`` or ``http://host:port``).

    ::

        async with nghttp2py.Client("https://localhost:8443", cafile="ca.pem") as client:
            response = await client.get("/")
            print(response.status, await response.text())

    ``https`` verifies the server's certificate: ``ssl`` is the
    :class:`ssl.SSLContext` to use (``h2`` is set as its ALPN protocol),
    ``cafile`` the shortcut for trusting one CA (e.g. a self-signed test
    certificate); by default the system's CAs. ``http`` speaks HTTP/2 with
    prior knowledge. ``timeout`` is a :class:`Timeout` or a number (connect
    and read). ``headers`` go with every request. ``push=True`` accepts
    pushed responses (see :attr:`Response.pushed`); by default the client
    tells the server not to push.

    Every request is multiplexed on one connection, opened on first use (or
    by ``async with``); a new one replaces it once the server has sent
    GOAWAY. A request the server did not process (refused by a GOAWAY, or
    reset with ``REFUSED_STREAM``) is sent again, up to three times, when its
    body (``None``, ``bytes``, ``str``) can be.
    """

    def __init__(self, url: str, *, ssl: _ssl.SSLContext | None = None,
                 cafile: str | None = None, timeout: Timeout | float | None = Timeout(),
                 headers: _Headers = None, push: bool = False) -> None:
        self.origin = Origin.from_url(url)
        self._origin_text = str(self.origin)
        if self.origin.scheme == "http" and (ssl is not None or cafile is not None):
            raise ValueError("ssl and cafile are for https:// URLs")
        if ssl is not None and cafile is not None:
            raise ValueError("give ssl or cafile, not both")
        if ssl is not None:
            ssl.set_alpn_protocols(["h2"])
        elif self.origin.scheme == "https":
            ssl = client_ssl_context(cafile)
        self._ssl = ssl
        self.timeout = Timeout.of(timeout)
        self.headers = [_USER_AGENT, *header_list(headers)]
        self.push = push
        self.response_class = Response
        self._settings = client_settings(push)
        self._connection = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        # Pushed responses by path, until pushed_response() claims them.
        self._pushed: dict[str, Response] = {}

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Open the connection now (requests open it on their own otherwise)."""
        await self._current_connection().wait_connected()

    async def pushed_response(self, url: str) -> Response | None:
        """The response the server pushed for ``url`` (a path), once its headers are in.

        ``None`` if nothing was pushed for it (so far). Each pushed response
        is handed out once; those never claimed are kept until :meth:`aclose`.
        """
        response = self._pushed.pop(path_of(url, self.origin), None)
        if response is not None:
            while response._stream.phase == _WAITING:
                await response._wait()
        return response

    async def aclose(self) -> None:
        """Close the connection gracefully, after the responses in flight."""
        self._pushed.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
            await connection.wait_closed()

    # -- requests ----------------------------------------------------------------------

    # request(), get(), head(), post(), put() and delete() are ClientBase's (in C).

    # -- the connection -------------------------------------------------------------------

    def _current_connection(self) -> ClientConnection:
        connection: ClientConnection | None = self._connection
        if connection is None or not connection.accepting_requests:
            self._loop = asyncio.get_running_loop()
            if connection is not None:
                connection.close()
            connection = ClientConnection(
                self.origin, ssl_context=self._ssl, loop=self._loop, settings=self._settings,
                connect_timeout=self.timeout.connect)
            self._connection = connection
        return connection

    def _request_parts(self, url: str, headers: _Headers,
                       timeout: Any) -> tuple[str, Iterable[tuple[Any, Any]], Timeout]:
        """A request's path, header fields and Timeout, from what request() was given."""
        path = url if url.startswith("/") else path_of(url, self.origin)
        all_headers = self.headers if headers is None else [*self.headers, *header_list(headers)]
        return path, all_headers, self.timeout if timeout is ... else Timeout.of(timeout)

    def _url(self, path: str) -> str:
        return self._origin_text + path


def header_list(headers: _Headers) -> list[tuple[Any, Any]]:
    """``headers`` (pairs or a mapping) as pairs with lower-case names, as HTTP/2 wants."""
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value) for name, value in pairs]
