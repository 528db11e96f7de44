"""HTTPXTransport: httpx's API on this client's connections.

::

    async with httpx.AsyncClient(transport=nghttp2py.HTTPXTransport()) as client:
        response = await client.get("https://example.org/")

httpx does what it does above a transport (redirects, cookies, auth,
timeouts' configuration, streaming); this transport sends each request over
one multiplexed HTTP/2 connection per origin, and maps the client's errors to
httpx's exceptions.
"""
from __future__ import annotations

import contextlib
import ssl as _ssl
from collections.abc import AsyncIterator, Iterator

import httpx

from .aio import Client, Response, Timeout
from .connection import Origin
from .errors import (
    ClientError,
    ConnectError,
    ConnectTimeoutError,
    ReadTimeoutError,
    RequestTimeoutError,
)

__all__ = ["HTTPXTransport"]

# Connection-specific fields HTTP/2 forbids (RFC 9113 section 8.2.2), and host,
# which becomes :authority.
_DROPPED_FIELDS = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection",
                             b"transfer-encoding", b"upgrade"})


class HTTPXTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport speaking HTTP/2 (only) on nghttp2py's client.

    ``ssl`` is the :class:`ssl.SSLContext` for https (``h2`` is set as its
    ALPN protocol); ``cafile`` the shortcut for trusting one CA; by default
    the system's CAs verify the server. ``push`` as for
    :class:`~nghttp2py.Client` (pushed responses are not handed to httpx).
    """

    def __init__(self, *, ssl: _ssl.SSLContext | None = None, cafile: str | None = None,
                 push: bool = False) -> None:
        self._ssl = ssl
        self._cafile = cafile
        self._push = push
        self._clients: dict[Origin, Client] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = Timeout(timeouts.get("connect"), timeouts.get("read"), None)
        client = self._client(request, timeout)
        headers = [(name.lower(), value) for name, value in request.headers.raw
                   if name.lower() not in _DROPPED_FIELDS
                   and not (name.lower() == b"te" and value.lower() != b"trailers")]
        try:
            body: object = request.content or None
        except httpx.RequestNotRead:
            body = request.stream
        with _httpx_errors(request):
            response = await client.request(request.method, request.url.raw_path.decode("ascii"),
                                            headers=headers, body=body, timeout=timeout)
        return httpx.Response(response.status, headers=response.headers.raw,
                              stream=_ResponseBody(response, request),
                              extensions={"http_version": b"HTTP/2"})

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def _client(self, request: httpx.Request, timeout: Timeout) -> Client:
        url = request.url
        host = f"[{url.host}]" if ":" in url.host else url.host
        origin = Origin.from_url(f"{url.scheme}://{host}:{url.port or ''}")
        client = self._clients.get(origin)
        if client is None:
            https = origin.scheme == "https"
            client = self._clients[origin] = Client(
                str(origin), ssl=self._ssl if https else None,
                cafile=self._cafile if https and self._ssl is None else None,
                timeout=timeout, push=self._push)
            client.headers = []  # httpx sends its own user-agent
        return client


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, response: Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._response.stream():
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Raise the client's errors as the httpx exceptions httpx's users catch."""
    try:
        yield
    except ConnectTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc), request=request) from exc
    except (ReadTimeoutError, RequestTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc), request=request) from exc
    except ConnectError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except ClientError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
