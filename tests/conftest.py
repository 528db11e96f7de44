"""Shared fixtures: a server running in a background thread, TLS material, an h2 client."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nghttp2py import HTTP2Server

ROOT = Path(__file__).resolve().parent.parent


class ServerThread:
    """An HTTP2Server on its own event loop in a daemon thread.

    ``call(fn, *args)`` runs ``fn`` on the server's loop and returns its result,
    for tests that need to act from inside the loop.
    """

    def __init__(self, server: HTTP2Server) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()

    def start(self) -> "ServerThread":
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.server.ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def call(self, fn, *args):
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self, timeout: float = 10) -> None:
        if not self._thread.is_alive():
            return

        def close():
            self.server.close()
            asyncio.ensure_future(self._stop_when_closed())

        self.loop.call_soon_threadsafe(close)
        self._thread.join(timeout)

    async def _stop_when_closed(self) -> None:
        await self.server.wait_closed()
        self.loop.stop()


@pytest.fixture
def serve() -> Iterator:
    """``serve(Handler, ssl=None, **kwargs)`` starts a server on a free port; stopped after the test."""
    started: list[ServerThread] = []

    def start(handler_class, ssl=None, **kwargs) -> ServerThread:
        kwargs.setdefault("shutdown_timeout", 2.0)
        thread = ServerThread(HTTP2Server(("127.0.0.1", 0), handler_class, ssl=ssl, **kwargs))
        started.append(thread.start())
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost / 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run([str(ROOT / "scripts" / "make-cert.sh"), str(directory)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return directory / "server.crt", directory / "server.key"


@pytest.fixture
def server_ssl_context(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


def require(tool: str) -> str:
    """The path of an external peer; the suite needs it, so a missing one fails."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (make test installs it: scripts/ensure-deps.sh)")
    return path


def run_peer(*argv: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run a peer tool to completion and return its result (text mode)."""
    return subprocess.run([require(argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


class H2Connection:
    """A blocking client on the h2 package, for frame-level checks.

    ``events_until(predicate)`` reads and returns h2 events until one matches.
    """

    def __init__(self, port: int, *, enable_push: bool = True, window: int | None = None,
                 tls_context: ssl.SSLContext | None = None) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        settings = {h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push)}
        if window is not None:
            settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
        self.conn.update_settings(settings)
        self.flush()
        self.authority = f"127.0.0.1:{port}"

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str = "/", method: str = "GET", headers=(), body: bytes | None = None,
                end_stream: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [
            (":method", method), (":scheme", "http"), (":authority", self.authority),
            (":path", path), *headers], end_stream=body is None and end_stream)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end_stream)
        self.flush()
        return stream_id

    def events_until(self, predicate, timeout: float = 10) -> list:
        self.sock.settimeout(timeout)
        seen = []
        while True:
            data = self.sock.recv(65536)
            if not data:
                return seen
            events = self.conn.receive_data(data)
            self.flush()
            for event in events:
                seen.append(event)
                if predicate(event):
                    return seen

    def response(self, stream_id: int, timeout: float = 10) -> tuple[dict, bytes, list]:
        """Headers (as a str dict), body and all events until the stream ends or resets."""
        import h2.events

        events = self.events_until(
            lambda e: isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
            and e.stream_id == stream_id, timeout)
        headers: dict = {}
        body = b""
        for event in events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        self.flush()
        return headers, body, events

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close_connection()
            self.flush()
        self.sock.close()


@pytest.fixture
def h2_client() -> Iterator:
    """``h2_client(port, **kwargs)`` opens an H2Connection; closed after the test."""
    opened: list[H2Connection] = []

    def connect(port: int, **kwargs) -> H2Connection:
        connection = H2Connection(port, **kwargs)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.close()


@pytest.fixture
def log_records(caplog) -> pytest.LogCaptureFixture:
    """Captures nghttp2py's log at INFO (also from the server thread)."""
    caplog.set_level(logging.INFO, logger="nghttp2py")
    return caplog
