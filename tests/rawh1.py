"""A raw HTTP/1.1 client for the tests: bytes out as given, responses parsed by llhttp.

The requests are written by hand (so that a test can pipeline them, trickle
them or make them malformed on purpose); what the server sends back is parsed
by httptools' response parser, a parser we did not write.
"""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)
    keep_alive: bool = True
    # The response head as it came, for checks on the framing itself.
    version: str = ""


class _Collector:
    def __init__(self) -> None:
        self.current = Response()
        self.in_trailers = False
        self.body = bytearray()
        self.done: list[Response] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self.current.trailers if self.in_trailers else self.current.headers
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        fields[key] = f"{fields[key]}, {text}" if key in fields else text

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()
        self.current.version = self.parser.get_http_version()
        self.current.keep_alive = self.parser.should_keep_alive()
        self.in_trailers = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.current.body = bytes(self.body)
        self.body = bytearray()
        self.done.append(self.current)
        self.current = Response()
        self.in_trailers = False


class RawH1:
    """One connection; ``send`` bytes, then ``responses(n)`` or ``until_closed()``."""

    def __init__(self, port: int, *, tls_context: ssl.SSLContext | None = None,
                 timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.timeout = timeout
        self.collector = _Collector()
        self.received = bytearray()  # everything the server sent
        self.parse_error: Exception | None = None
        # After a 101 (Upgrade) the bytes are another protocol's: see `received`.
        self.upgraded = False
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "timed out waiting for the server"
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.closed = True
            return
        self.received += data
        if self.parse_error is None and not self.upgraded:
            try:
                self.collector.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self.upgraded = True
            except httptools.HttpParserError as exc:  # not HTTP/1: see `received`
                self.parse_error = exc

    def responses(self, count: int, timeout: float | None = None) -> list[Response]:
        """The next ``count`` responses (1xx included), in the order they came."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.collector.done) < count:
            assert self.parse_error is None, f"{self.parse_error}: {self.received[-300:]!r}"
            assert not self.closed, (
                f"the server closed after {len(self.collector.done)} responses: "
                f"{self.received[-300:]!r}")
            self._read(deadline)
        taken, self.collector.done = self.collector.done[:count], self.collector.done[count:]
        return taken

    def response(self, timeout: float | None = None) -> Response:
        return self.responses(1, timeout)[0]

    def until_closed(self, timeout: float | None = None) -> list[Response]:
        """Every response until the server closes the connection (which it must)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.closed:
            self._read(deadline)
        taken, self.collector.done = self.collector.done, []
        return taken

    def is_closed(self, timeout: float = 1.0) -> bool:
        """Whether the server closes within ``timeout`` (reading what it sends meanwhile)."""
        deadline = time.monotonic() + timeout
        try:
            while not self.closed:
                self._read(deadline)
        except (AssertionError, socket.timeout):
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawH1:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
