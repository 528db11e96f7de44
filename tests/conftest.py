"""Shared fixtures and clients: a server running in a background thread, TLS material,
an h2 client (``H2Connection``, read per stream with ``StreamReader``) and the raw-frame
client of rawh2.py."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nghttp2py import HTTP2Server
from rawh2 import RawH2

ROOT = Path(__file__).resolve().parent.parent

# NGHTTP2PY_TEST_LOOP=uvloop runs the in-process servers on uvloop (make test
# runs the suite on both loops). Servers in subprocesses run on it too: they
# are given --loop, and serve_forever() reads NGHTTP2PY_LOOP.
TEST_LOOP = os.environ.get("NGHTTP2PY_TEST_LOOP", "asyncio")
os.environ["NGHTTP2PY_LOOP"] = TEST_LOOP


def new_event_loop() -> asyncio.AbstractEventLoop:
    if TEST_LOOP == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class ServerThread:
    """An HTTP2Server on its own event loop in a daemon thread.

    ``call(fn, *args)`` runs ``fn`` on the server's loop and returns its result,
    for tests that need to act from inside the loop.
    """

    def __init__(self, server: HTTP2Server) -> None:
        self.server = server
        self.loop = new_event_loop()
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

    ``events_until(predicate)`` reads and returns h2 events until one matches;
    ``response(stream_id)`` reads one whole response.
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
        self.pending: list = []  # events read but not yet returned by events_until

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

    def receive(self, timeout: float) -> list | None:
        """The next batch of h2 events: those ``events_until`` left unconsumed, else what
        one read brings; None once the server has closed. The caller flushes."""
        if self.pending:
            events, self.pending = self.pending, []
            return events
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            return None
        return self.conn.receive_data(data)

    def events_until(self, predicate, timeout: float = 10) -> list:
        """Events read until one matches ``predicate`` (or the server closes); the events
        after it in the same read are kept for the next call."""
        seen = []
        while True:
            events = self.receive(timeout)
            self.flush()
            if events is None:
                return seen
            for index, event in enumerate(events):
                seen.append(event)
                if predicate(event):
                    self.pending = events[index + 1:]
                    self.flush()
                    return seen
            self.flush()

    def response(self, stream_id: int, timeout: float = 10) -> tuple[dict, bytes, list]:
        """Headers (as a str dict), body and all events until the stream ends or resets.
        The stream's DATA is acknowledged as it arrives, so bodies of any size flow."""
        import h2.events

        def done(event) -> bool:
            if getattr(event, "stream_id", None) != stream_id:
                return False
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            return isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset))

        events = self.events_until(done, timeout)
        headers: dict = {}
        body = b""
        for event in events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return headers, body, events

    def pump(self, stream_id: int, data: bytes, sent: int = 0, *, quiet: float = 0.4,
             end_stream: bool = True, events: list | None = None) -> int:
        """Send ``data[sent:]`` as the windows allow; return the new offset.

        Returns early, with data left, once the windows are shut and nothing has
        arrived for ``quiet`` seconds (the client is stalled). Received events are
        appended to ``events``.
        """
        conn = self.conn
        while sent < len(data):
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window > 0:
                chunk = data[sent:sent + window]
                sent += len(chunk)
                conn.send_data(stream_id, chunk, end_stream=end_stream and sent == len(data))
                self.flush()
                continue
            try:
                new = self.receive(quiet)
            except socket.timeout:
                return sent
            assert new is not None, "the server closed the connection"
            self.flush()
            if events is not None:
                events.extend(new)
        return sent

    def read_streams(self, events: list, *stream_ids: int, timeout: float = 10) -> None:
        """Append to ``events`` what arrives until every stream in ``stream_ids`` has
        ended or been reset (counting what ``events`` already holds). DATA is not
        acknowledged."""
        import h2.events

        def ended() -> set:
            return {e.stream_id for e in events
                    if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))}

        deadline = time.monotonic() + timeout
        while not set(stream_ids) <= ended():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"streams {set(stream_ids) - ended()} did not end"
            new = self.receive(remaining)
            assert new is not None, "the server closed the connection"
            events.extend(new)
            self.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close_connection()
            self.flush()
        self.sock.close()


def closed_after(client_class) -> Iterator:
    """For a client fixture: yields ``connect(port, **kwargs)``, which opens a
    ``client_class``; closes every client it opened when resumed."""
    opened: list = []

    def connect(port: int, **kwargs):
        client = client_class(port, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def h2_client() -> Iterator:
    """``h2_client(port, **kwargs)`` opens an H2Connection; closed after the test."""
    yield from closed_after(H2Connection)


def stream_result(events, stream_id: int) -> dict:
    """{'status', 'body', 'reset'} of one stream, from h2 ``events``."""
    import h2.events

    result = {"status": None, "body": b"", "reset": None}
    for e in events:
        if getattr(e, "stream_id", None) != stream_id:
            continue
        if isinstance(e, h2.events.ResponseReceived):
            result["status"] = dict(e.headers)[b":status"].decode()
        elif isinstance(e, h2.events.DataReceived):
            result["body"] += e.data
        elif isinstance(e, h2.events.StreamReset):
            result["reset"] = e.error_code
    return result


class StreamReader:
    """Reads an H2Connection, acknowledging DATA (unless ``ack`` is false), and keeps
    what each stream saw: ``headers`` (a str dict), ``body``, ``ended``, ``reset``
    (stream id -> error code), ``pushes`` (promised stream id -> PushedStreamReceived),
    every event in order (``events``) and a GOAWAY (``terminated``).

    ``timeout`` is the default for the waits.
    """

    def __init__(self, client: H2Connection, ack: bool = True, timeout: float = 10) -> None:
        self.client = client
        self.ack = ack
        self.timeout = timeout
        self.events: list = []
        self.headers: dict[int, dict[str, str]] = {}
        self.body: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        self.pushes: dict[int, object] = {}
        self.terminated = None

    def read_once(self, timeout: float) -> None:
        import h2.events

        events = self.client.receive(timeout)
        assert events is not None, "the server closed the connection"
        for event in events:
            self.events.append(event)
            sid = getattr(event, "stream_id", None)
            if isinstance(event, h2.events.ResponseReceived):
                self.headers[sid] = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h2.events.DataReceived):
                self.body.setdefault(sid, bytearray()).extend(event.data)
                if self.ack:
                    self.client.conn.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(sid)
            elif isinstance(event, h2.events.StreamReset):
                self.reset[sid] = event.error_code
            elif isinstance(event, h2.events.PushedStreamReceived):
                self.pushes[event.pushed_stream_id] = event
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event
        self.client.flush()

    def wait(self, condition, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not condition():
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out waiting for the server"
            assert self.terminated is None, f"the server sent GOAWAY: {self.terminated}"
            self.read_once(remaining)

    def finish(self, sid: int, timeout: float | None = None) -> None:
        """Read until stream ``sid`` has ended or been reset."""
        self.wait(lambda: sid in self.ended or sid in self.reset, timeout)

    def response(self, sid: int, timeout: float | None = None) -> tuple[int, bytes]:
        """(status, body) of stream ``sid``, which must end without a reset."""
        self.finish(sid, timeout)
        assert sid not in self.reset, f"stream {sid} was reset with {self.reset[sid]}"
        return int(self.headers[sid][":status"]), bytes(self.body.get(sid, b""))

    def send_body(self, sid: int, payload, end_stream: bool = True,
                  timeout: float | None = None) -> None:
        """Send ``payload`` within the flow-control windows, waiting for WINDOW_UPDATEs."""
        conn = self.client.conn
        view = memoryview(payload)
        offset = 0
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while offset < len(view):
            n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size,
                    len(view) - offset)
            if n <= 0:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"stalled after {offset} bytes: no WINDOW_UPDATE"
                self.read_once(remaining)
                continue
            last = end_stream and offset + n == len(view)
            conn.send_data(sid, view[offset:offset + n].tobytes(), end_stream=last)
            offset += n
            self.client.flush()
        if end_stream and not len(view):
            conn.end_stream(sid)
            self.client.flush()


@pytest.fixture
def raw_client() -> Iterator:
    """``raw_client(port, **kwargs)`` opens a rawh2.RawH2; closed after the test."""
    yield from closed_after(RawH2)


def digest(data: bytes) -> str:
    """Length and SHA-256 of ``data``, as the handlers that check bodies answer."""
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` has passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def start_server_script(tmp_path, text: str,
                        stdout=subprocess.DEVNULL) -> tuple[subprocess.Popen, int]:
    """Run ``text`` as a server script in a subprocess; the process and the port it
    logged ("serving HTTP/2 (h2c) on 127.0.0.1:PORT", on stderr)."""
    script = tmp_path / "server.py"
    script.write_text(text)
    proc = subprocess.Popen([sys.executable, str(script)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=stdout, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    match = re.search(r"serving HTTP/2 \(h2c\) on 127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"server did not start: {line}{proc.communicate()[1]}")
    return proc, int(match.group(1))


@pytest.fixture
def log_records(caplog) -> pytest.LogCaptureFixture:
    """Captures nghttp2py's log at INFO (also from the server thread)."""
    caplog.set_level(logging.INFO, logger="nghttp2py")
    return caplog


from appserver import serve_app  # noqa: E402,F401 -- the fixture, for every test module
