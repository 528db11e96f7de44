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
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    """A server (HTTP2Server, or anything with its start/close/wait_closed/port/ssl) on
    its own event loop in a daemon thread.

    ``call(fn, *args)`` runs ``fn`` on the server's loop and returns its result,
    for tests that need to act from inside the loop.
    """

    def __init__(self, server) -> None:
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

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.wait(20)  # an app's lifespan startup included
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
    """``serve(Handler, ssl=None, **kwargs)`` starts a server on a free port; stopped after
    the test."""
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


@dataclass
class CurlResult:
    """One curl run: the final response's ``status``, ``headers`` (names lower-cased, in
    order) and exact ``body`` bytes, the statuses of the 1xx responses before it, the
    HTTP version (as curl's ``%{http_version}``), exit code and stderr."""

    returncode: int
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    informational: list[int]
    http_version: str
    stderr: str

    def header(self, name: str) -> str | None:
        """The last value of header field ``name``, or None."""
        found = [value for key, value in self.headers if key == name]
        return found[-1] if found else None

    def values(self, name: str) -> list[str]:
        """Every value of header field ``name``, in order."""
        return [value for key, value in self.headers if key == name]


def curl(*args: str, check: bool = True, timeout: float = 20, **kwargs) -> CurlResult:
    """Run curl with ``args`` (options and the URL; ``-sS``, ``--max-time`` and where the
    output goes are added) and return what it received. Fails the test when curl exits
    non-zero, unless ``check`` is false. ``kwargs`` go to ``subprocess.run``."""
    with tempfile.TemporaryDirectory() as directory:
        header_file, body_file = Path(directory, "headers"), Path(directory, "body")
        result = run_peer("curl", "-sS", "--max-time", str(timeout), "-D", str(header_file),
                          "-o", str(body_file), "-w", "%{http_code} %{http_version}", *args,
                          timeout=timeout + 10, **kwargs)
        if check:
            assert result.returncode == 0, f"curl {' '.join(args)}: {result.stderr}"
        blocks = parse_header_dump(header_file.read_text() if header_file.exists() else "")
        body = body_file.read_bytes() if body_file.exists() else b""
    status, _, version = result.stdout.partition(" ")
    final = [headers for code, headers in blocks if code >= 200]
    return CurlResult(result.returncode, int(status or 0), final[-1] if final else [], body,
                      [code for code, _ in blocks if code < 200], version, result.stderr)


def parse_header_dump(text: str) -> list[tuple[int, list[tuple[str, str]]]]:
    """The (status, header fields) of each response in curl's ``-D`` output; the fields
    of a trailer block are added to the response before it."""
    blocks: list[tuple[int, list[tuple[str, str]]]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("HTTP/"):
            blocks.append((int(line.split()[1]), []))
        elif line and blocks:
            name, _, value = line.partition(":")
            blocks[-1][1].append((name.strip().lower(), value.strip()))
    return blocks


class Response:
    """What one stream received, kept by ``add`` from its h2 events: the final response's
    ``headers`` (a str dict) and ``fields`` (the same, in order), ``status``, the fields
    of each 1xx before it (``informational``), ``body``, ``data_frames``, ``trailers``
    (str pairs, or None), and how it finished: ``ended``, or ``reset`` (the error code).
    ``events`` are the events read while waiting for it (every stream's)."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.headers: dict[str, str] = {}
        self.fields: list[tuple[str, str]] = []
        self.informational: list[list[tuple[str, str]]] = []
        self.body = bytearray()
        self.data_frames = 0
        self.trailers: list[tuple[str, str]] | None = None
        self.ended = False
        self.reset: int | None = None
        self.events: list = []

    def add(self, event) -> None:
        """Take one h2 event of this stream into account."""
        import h2.events

        if isinstance(event, h2.events.InformationalResponseReceived):
            self.informational.append([(k.decode(), v.decode()) for k, v in event.headers])
        elif isinstance(event, h2.events.ResponseReceived):
            self.fields = [(k.decode(), v.decode()) for k, v in event.headers]
            self.headers = dict(self.fields)
        elif isinstance(event, h2.events.DataReceived):
            self.body += event.data
            self.data_frames += 1
        elif isinstance(event, h2.events.TrailersReceived):
            self.trailers = [(k.decode(), v.decode()) for k, v in event.headers]
        elif isinstance(event, h2.events.StreamEnded):
            self.ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.reset = event.error_code

    @property
    def status(self) -> int | None:
        return int(self.headers[":status"]) if ":status" in self.headers else None

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def values(self, name: str) -> list[str]:
        """Every value of the response header field ``name``, in order."""
        return [value for key, value in self.fields if key == name]


def response_of(events, stream_id: int) -> Response:
    """The Response of ``stream_id`` in h2 ``events`` read before."""
    response = Response(stream_id)
    for event in events:
        if getattr(event, "stream_id", None) == stream_id:
            response.add(event)
    response.events = list(events)
    return response


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

    def get(self, path: str = "/", method: str = "GET", timeout: float = 10) -> Response:
        """One request without a body, and its response (see ``response``)."""
        return self.response(self.request(path, method=method), timeout)

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

    def response(self, stream_id: int, timeout: float = 10) -> Response:
        """Read until ``stream_id`` ends or is reset (or the server closes) and return what
        it received. Its DATA is acknowledged as it arrives, so bodies of any size flow."""
        import h2.events

        def done(event) -> bool:
            if getattr(event, "stream_id", None) != stream_id:
                return False
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            return isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset))

        return response_of(self.events_until(done, timeout), stream_id)

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

    def read_streams(self, events: list, *stream_ids: int,
                     timeout: float = 10) -> dict[int, Response]:
        """Append to ``events`` what arrives until every stream in ``stream_ids`` has
        ended or been reset (counting what ``events`` already holds); their Responses.
        DATA is not acknowledged."""
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
        return {stream_id: response_of(events, stream_id) for stream_id in stream_ids}

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


class StreamReader:
    """Reads an H2Connection as events arrive, acknowledging DATA (unless ``ack`` is
    false), for tests that watch several streams at once: ``streams`` maps each stream
    id to its Response; ``headers``, ``body``, ``ended`` and ``reset`` are views of them
    by stream id. It also keeps ``pushes`` (promised stream id -> PushedStreamReceived),
    every event in order (``events``) and a GOAWAY (``terminated``).

    ``timeout`` is the default for the waits.
    """

    def __init__(self, client: H2Connection, ack: bool = True, timeout: float = 10) -> None:
        self.client = client
        self.ack = ack
        self.timeout = timeout
        self.events: list = []
        self.streams: dict[int, Response] = {}
        self.pushes: dict[int, object] = {}
        self.terminated = None

    @property
    def headers(self) -> dict[int, dict[str, str]]:
        return {sid: r.headers for sid, r in self.streams.items() if r.fields}

    @property
    def body(self) -> dict[int, bytearray]:
        return {sid: r.body for sid, r in self.streams.items() if r.data_frames}

    @property
    def ended(self) -> set[int]:
        return {sid for sid, r in self.streams.items() if r.ended}

    @property
    def reset(self) -> dict[int, int]:
        return {sid: r.reset for sid, r in self.streams.items() if r.reset is not None}

    def read_once(self, timeout: float) -> None:
        import h2.events

        events = self.client.receive(timeout)
        assert events is not None, "the server closed the connection"
        for event in events:
            self.events.append(event)
            sid = getattr(event, "stream_id", None)
            if sid:
                self.streams.setdefault(sid, Response(sid)).add(event)
            if isinstance(event, h2.events.DataReceived) and self.ack:
                self.client.conn.acknowledge_received_data(event.flow_controlled_length, sid)
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
        self.wait(lambda: sid in self.streams and self.streams[sid].done, timeout)

    def response(self, sid: int, timeout: float | None = None) -> tuple[int | None, bytes]:
        """(status, body) of stream ``sid``, which must end without a reset."""
        self.finish(sid, timeout)
        response = self.streams[sid]
        assert response.reset is None, f"stream {sid} was reset with {response.reset}"
        return response.status, bytes(response.body)

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


SERVING = re.compile(r"serving HTTP/2 \((?:h2c|TLS)\) on \S+:(\d+)")


class ServerProcess:
    """A server in a subprocess, its output read as it comes.

    ``port`` is the first group of ``ready`` (a stream name and a pattern) once it
    appears: by default nghttp2py's "serving HTTP/2 (...) on HOST:PORT" line, which a
    script logs to stderr with ``logging.basicConfig(level=logging.INFO)``. ``stdout``
    and ``stderr`` hold what it wrote so far; ``wait_output`` waits for a pattern in
    either, ``wait`` for its exit (then both are complete).
    """

    def __init__(self, argv: list[str], env: dict[str, str], timeout: float = 20,
                 ready: tuple[str, str | re.Pattern] = ("stderr", SERVING)) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._output = {"stdout": bytearray(), "stderr": bytearray()}
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._drain, args=(name, pipe), daemon=True)
                         for name, pipe in (("stdout", self.proc.stdout),
                                            ("stderr", self.proc.stderr))]
        for reader in self._readers:
            reader.start()
        try:
            self.port = int(self.wait_output(*ready, timeout).group(1))
        except BaseException:
            self.stop()
            raise

    def _drain(self, name: str, pipe) -> None:
        while chunk := pipe.read1(65536):
            with self._changed:
                self._output[name] += chunk
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stdout(self) -> str:
        return self._output["stdout"].decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self._output["stderr"].decode(errors="replace")

    def wait_output(self, name: str, pattern: str | re.Pattern, timeout: float = 10) -> re.Match:
        """The first match of ``pattern`` (a regular expression) in ``name``
        ("stdout" or "stderr"); fails if the process exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = re.search(pattern, self._output[name].decode(errors="replace"))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                exited = self.proc.poll() is not None and not any(
                    reader.is_alive() for reader in self._readers)
                if exited or remaining <= 0:
                    raise AssertionError(
                        f"{pattern!r} not in the server's {name} "
                        f"({'it exited' if exited else 'timed out'}):\n"
                        f"stdout: {self.stdout}\nstderr: {self.stderr}")
                self._changed.wait(remaining)

    def wait(self, timeout: float = 10) -> int:
        """Its exit status, once it has exited and all its output is read."""
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture
def server_process(tmp_path) -> Iterator:
    """``server_process(script, *args, python=None, env=None, ready=...)`` runs a server
    (see ``ServerProcess``) with ``args``; killed after the test. ``script`` is the
    text of a script, or the Path of one (an example, say).

    The script runs on this interpreter with the source tree first on its path, or on
    ``python`` (say, a venv with nghttp2py installed) without it. ``serve_forever()``
    runs on the loop of this pass of the suite (NGHTTP2PY_LOOP); ``env`` adds
    variables, or removes those given as None.
    """
    started: list[ServerProcess] = []

    def start(script: str | Path, *args: str, python: str | None = None,
              env: dict[str, str | None] | None = None, **kwargs) -> ServerProcess:
        if not isinstance(script, Path):
            text, script = script, tmp_path / f"server{len(started)}.py"
            script.write_text(text)
        environ = dict(os.environ, NGHTTP2PY_LOOP=TEST_LOOP)
        environ.pop("PYTHONPATH", None)
        if python is None:
            python = sys.executable
            environ["PYTHONPATH"] = str(ROOT)
        for name, value in (env or {}).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        started.append(ServerProcess([python, str(script), *args], environ, **kwargs))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def log_records(caplog) -> pytest.LogCaptureFixture:
    """Captures nghttp2py's log at INFO (also from the server thread)."""
    caplog.set_level(logging.INFO, logger="nghttp2py")
    return caplog


from appserver import serve_app  # noqa: E402,F401 -- the fixture, for every test module
