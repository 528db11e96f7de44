"""WSGI (PEP 3333) applications on a bounded thread pool.

:func:`wsgi_handler` turns a WSGI application into a
:class:`~nghttp2py.BaseRequestHandler` subclass. Each request runs in one of
the pool's threads: ``wsgi.input`` streams the request body as it arrives
(the client is held back by flow control while the app does not read), the
response iterable is streamed as the client takes it (the thread waits while
too much is queued), and the iterable's ``close()`` is always called.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any
from urllib.parse import unquote_to_bytes

from .handler import DATA_DEFERRED, DATA_EOF, DATA_OK, BaseRequestHandler

__all__ = ["WSGIApp", "wsgi_handler"]

logger = logging.getLogger("nghttp2py")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Request bytes buffered ahead of the app's reads before the handler pauses
# reading; response bytes queued before the app's thread waits.
READ_AHEAD = 65536
WRITE_AHEAD = 65536

_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "upgrade", "te"))
_ERROR_BODY = b"Internal Server Error\n"
_PROTOCOLS = {"2": "HTTP/2", "1.1": "HTTP/1.1", "3": "HTTP/3"}


class ClientGone(OSError):
    """Raised in the app's thread (reading wsgi.input, writing) once the client has gone."""


class _Gate:
    """A request's lock, and a condition on it made only once a thread has to wait.

    Most requests never wait: they pay for a C lock, not for a ``Condition``."""

    __slots__ = ("lock", "_waiting")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._waiting: threading.Condition | None = None

    def wait(self) -> None:
        """Wait for :meth:`notify_all` (the lock held)."""
        if self._waiting is None:
            self._waiting = threading.Condition(self.lock)
        self._waiting.wait()

    def notify_all(self) -> None:
        """Wake whoever waits (the lock held)."""
        if self._waiting is not None:
            self._waiting.notify_all()


class _Pool:
    """Requests waiting for a thread, run by at most ``limit`` loops in the executor.

    A loop takes requests until none is left. A new loop is submitted only
    when a request waits and every running loop is inside an app (checked when
    a request arrives and when a loop takes one), so a busy server submits to
    the executor (a ``Future``, a thread wake-up) far less than once per request.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        # ThreadPoolExecutor has no public size; more loops than threads would only queue.
        self.limit: int = getattr(executor, "_max_workers", 32)
        self.waiting: deque[WSGIHandler] = deque()
        self.lock = threading.Lock()
        self.running = 0  # loops submitted and not yet ended
        self.busy = 0  # loops inside an app

    def submit(self, handler: WSGIHandler) -> None:
        with self.lock:
            self.waiting.append(handler)
            # A running loop outside an app takes a waiting request before it can end.
            if self.running > self.busy or self.running >= self.limit:
                return
            self.running += 1
        try:
            self.executor.submit(self.work)
        except BaseException:
            with self.lock:
                self.running -= 1
                if handler not in self.waiting:
                    return  # a loop that just left its app has taken it
                self.waiting.remove(handler)
            raise

    def work(self) -> None:
        lock, waiting = self.lock, self.waiting
        lock.acquire()
        while waiting:
            handler = waiting.popleft()
            self.busy += 1
            more = bool(waiting) and self.running == self.busy and self.running < self.limit
            if more:
                self.running += 1
            lock.release()
            if more:
                try:
                    self.executor.submit(self.work)
                except RuntimeError:  # shut down: the running loops take the rest
                    with lock:
                        self.running -= 1
            try:
                handler.run()
            finally:
                lock.acquire()
                self.busy -= 1
        self.running -= 1
        lock.release()


class _Outbox:
    """Calls from the apps' threads to one loop: one wake-up for all queued since the last."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: deque[tuple[Callable[..., object], tuple[object, ...]]] = deque()
        self.scheduled = False

    def post(self, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        self.calls.append((callback, args))
        if not self.scheduled:
            self.scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
                self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        # Cleared first: a call posted while draining either is drained here or schedules anew.
        self.scheduled = False
        calls = self.calls
        while calls:
            callback, args = calls.popleft()
            try:
                callback(*args)
            except Exception:
                logger.exception("WSGI completion %r failed", callback)


def wsgi_handler(app: WSGIApp, *, executor: Executor, root_path: str = "",
                 server: tuple[str, int | None] | None = None,
                 multiprocess: bool = False) -> type[BaseRequestHandler]:
    """A handler class that runs the WSGI application ``app`` in ``executor``'s threads.

    ``root_path`` becomes ``SCRIPT_NAME``, ``server`` gives ``SERVER_NAME``
    and ``SERVER_PORT`` (else the request's host), ``multiprocess`` is
    ``wsgi.multiprocess``. At most as many requests run at once as a
    ``ThreadPoolExecutor`` has workers (32 for another kind of executor).
    """
    if not callable(app):
        raise TypeError(f"a WSGI app is a callable, not {type(app).__name__}")
    return type("WSGIApp", (WSGIHandler,), {
        "wsgi_app": staticmethod(app), "wsgi_executor": executor, "wsgi_pool": _Pool(executor),
        "wsgi_outbox": None, "wsgi_hosts": {}, "wsgi_keys": {},
        "wsgi_root_path": root_path.rstrip("/"), "wsgi_server": server,
        "wsgi_multiprocess": multiprocess, "requests": 0, "__module__": __name__,
        "wsgi_template": {
            "SCRIPT_NAME": root_path.rstrip("/"), "wsgi.version": (1, 0),
            "wsgi.input_terminated": True, "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False}})


class RequestBody(io.RawIOBase):
    """``wsgi.input``: the request body, read in the app's thread as it arrives."""

    _buffered = 0
    _eof = False
    _gone = False
    _dropping = False

    def __init__(self, handler: WSGIHandler, gate: _Gate) -> None:
        self._handler: WSGIHandler | None = handler  # None once the app has returned
        self._chunks: deque[bytes] = deque()
        self._gate = gate  # the handler's: one lock per request

    # -- the loop's side -------------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Add a chunk; True once enough is buffered that reading should pause."""
        with self._gate.lock:
            if self._dropping:
                return False
            self._chunks.append(data)
            self._buffered += len(data)
            self._gate.notify_all()
            return self._buffered >= READ_AHEAD

    def drop(self) -> None:
        """The app is done: what is buffered and what still comes is thrown away.

        No lock: the app's thread, the only other reader, has returned."""
        self._dropping = True
        self._chunks.clear()
        self._buffered = 0

    def feed_eof(self, gone: bool = False) -> None:
        with self._gate.lock:
            self._eof = True
            self._gone = self._gone or gone
            self._gate.notify_all()

    # -- the app's side ----------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._take(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return self._take(size)

    def readall(self) -> bytes:
        parts = []
        while chunk := self._take(1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        line = bytearray()
        while size is None or size < 0 or len(line) < size:
            with self._gate.lock:
                self._wait()
                if not self._chunks:
                    break
                chunk = self._chunks[0]
                end = chunk.find(b"\n") + 1 or len(chunk)
                if size is not None and size >= 0:
                    end = min(end, size - len(line))
                line += chunk[:end]
                self._consume(end)
            if line.endswith(b"\n"):
                break
        return bytes(line)

    def _take(self, size: int) -> bytes:
        with self._gate.lock:
            self._wait()
            taken = bytearray()
            while self._chunks and len(taken) < size:
                chunk = self._chunks[0]
                part = chunk[:size - len(taken)]
                taken += part
                self._consume(len(part))
            return bytes(taken)

    def _wait(self) -> None:
        while not self._chunks and not self._eof:
            self._gate.wait()
        if self._gone:
            raise ClientGone("the client has gone")

    def _consume(self, length: int) -> None:
        chunk = self._chunks[0]
        if length == len(chunk):
            self._chunks.popleft()
        else:
            self._chunks[0] = chunk[length:]
        was_full = self._buffered >= READ_AHEAD
        self._buffered -= length
        if was_full and self._buffered < READ_AHEAD:
            handler = self._handler
            if handler is not None:
                handler.loop_call(handler.resume_reading)


class WSGIHandler(BaseRequestHandler):
    """Runs a WSGI app for each request; made by :func:`wsgi_handler`, not by hand."""

    wsgi_app: WSGIApp
    wsgi_executor: Executor
    wsgi_pool: _Pool
    wsgi_outbox: _Outbox | None  # the loop this class last served, shared by its requests
    wsgi_hosts: dict[tuple[bytes | None, bytes | None], tuple[str, str, str]]
    # (scheme, host) -> (host, SERVER_NAME, SERVER_PORT)
    wsgi_keys: dict[bytes, str]  # header name -> environ key
    wsgi_root_path: str
    wsgi_template: dict[str, Any]  # the environ's keys that are the same for every request
    wsgi_server: tuple[str, int | None] | None
    wsgi_multiprocess: bool
    requests: int  # requests started, for --max-requests

    # Per request; class-level defaults, so that on_headers sets only what differs.
    gone = False
    queued = 0
    finished = False
    error: BaseException | None = None
    start: tuple[str, list[tuple[str, str]]] | None = None
    response_sent = False
    final: tuple[int, list[tuple[str, str]], bytes] | None = None
    done = False  # app_done has run: no thread of the app's is left to wake
    chunks: deque[bytes]  # a streamed body's, made when streaming starts

    def on_headers(self) -> None:
        cls = type(self)
        cls.requests += 1
        outbox = cls.wsgi_outbox
        loop = asyncio.get_running_loop()
        if outbox is None or outbox.loop is not loop:
            outbox = cls.wsgi_outbox = _Outbox(loop)
        self.outbox = outbox
        self.room = _Gate()
        self.input = RequestBody(self, self.room)
        self.wsgi_environ = self.environ()
        self.wsgi_pool.submit(self)

    def on_data(self, data: bytes) -> None:
        if self.input.feed(data):
            self.pause_reading()

    def on_request_done(self) -> None:
        self.input.feed_eof()

    def on_close(self, error_code: int) -> None:
        if not hasattr(self, "input"):
            return  # refused before on_headers (413, 431...): the app never ran
        self.gone = True
        if self.done:
            return
        self.input.feed_eof(gone=True)
        with self.room.lock:
            self.room.notify_all()

    def loop_call(self, callback: Callable[..., object], *args: object) -> None:
        """Run ``callback`` on the server's loop (from the app's thread)."""
        self.outbox.post(callback, args)

    # -- the environ ---------------------------------------------------------------

    def environ(self) -> dict[str, Any]:
        target = self.path or b"/"
        raw_path, _, query = target.partition(b"?")
        path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("latin-1")
        script_name = self.wsgi_root_path
        if script_name and (path == script_name or path.startswith(script_name + "/")):
            path = path[len(script_name):]
        cls = type(self)
        hosts = cls.wsgi_hosts
        known = hosts.get((self.scheme, self.host))
        if known is None:
            known = self.server_of(self.host)
            if len(hosts) < 64:  # a client inventing hosts gets no cache
                hosts[self.scheme, self.host] = known
        host, server_name, server_port = known
        environ = cls.wsgi_template.copy()
        environ["REQUEST_METHOD"] = (self.method or b"GET").decode("latin-1")
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_NAME"] = server_name
        environ["SERVER_PORT"] = server_port
        version = self.http_version
        environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(version or "") or f"HTTP/{version}"
        environ["wsgi.url_scheme"] = "https" if self.scheme == b"https" else (
            (self.scheme or b"http").decode("latin-1"))
        environ["wsgi.input"] = self.input
        client = self.client_address
        if isinstance(client, tuple) and client:
            environ["REMOTE_ADDR"] = str(client[0])
            environ["REMOTE_PORT"] = str(client[1])
        keys = cls.wsgi_keys
        for name, value in self.headers:
            key = keys.get(name)
            if key is None:
                key = name.decode("latin-1").upper().replace("-", "_")
                if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                    key = "HTTP_" + key
                if len(keys) < 256:  # a client inventing names gets no cache
                    keys[name] = key
            text = value.decode("latin-1")
            if key in environ and key[0] == "H":
                text = f"{environ[key]},{text}"
            environ[key] = text
        if host and "HTTP_HOST" not in environ:
            environ["HTTP_HOST"] = host
        return environ

    def server_of(self, host_bytes: bytes | None) -> tuple[str, str, str]:
        """``(host, SERVER_NAME, SERVER_PORT)`` for a request's host."""
        host = (host_bytes or b"").decode("latin-1")
        server = self.wsgi_server
        if server is not None and server[1] is not None:
            return host, server[0], str(server[1])
        server_name, _, server_port = host.rpartition(":") if ":" in host else (host, "", "")
        return host, server_name, server_port or ("443" if self.scheme == b"https" else "80")

    # -- the app's thread --------------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        """The ``start_response`` callable given to the app."""
        if exc_info is not None:
            try:
                if self.response_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.start is not None:
            raise RuntimeError("start_response() called twice without exc_info")
        self.start = (status, headers)
        return self.write

    def run(self) -> None:
        """Call the app and hand its response to the loop, chunk by chunk."""
        result = None
        try:
            environ = self.wsgi_environ
            del self.wsgi_environ  # environ -> wsgi.input -> self: no cycle left behind
            result = self.wsgi_app(environ, self.start_response)
            iterator = iter(result)
            first = next(iterator, None)
            if first is None:
                self.deliver(b"", True)
                return
            second = next(iterator, None)
            if second is None:
                self.deliver(first, True)  # the whole body at once: one response
                return
            self.deliver(first, False)
            self.deliver(second, False)
            for chunk in iterator:
                self.deliver(chunk, False)
            self.deliver(b"", True)
        except ClientGone:
            pass
        except BaseException as exc:  # noqa: BLE001 -- whatever the app raised is answered
            self.failed(exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    logger.error("closing the WSGI response of stream %d failed",
                                 self.stream_id, exc_info=exc)
            self.outbox.post(self.app_done, ())

    def app_done(self) -> None:
        """The app has returned: its one-piece response goes out, and a client still
        sending the body is no longer held back."""
        self.done = True
        if self.final is not None:
            self.respond(*self.final)
            self.final = None
        self.input.drop()
        # Freed by reference counting, not left to the cyclic GC: it ran every few
        # hundred requests, a sixth of the instructions.
        self.input._handler = None
        if self.reading_paused and not self.gone:
            self.resume_reading()

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` that start_response returns."""
        self.deliver(data, False)

    def deliver(self, chunk: bytes, last: bool) -> None:
        """Queue a body chunk for the loop; wait while too much is queued."""
        if self.gone:
            raise ClientGone("the client has gone")
        if self.start is None:
            raise RuntimeError("the WSGI app sent its body before calling start_response()")
        if not self.response_sent:
            self.response_sent = True
            status, headers = self.start
            if last:  # sent with app_done: one call to the loop for the whole answer
                self.final = (int(status.split(None, 1)[0]), headers, bytes(chunk))
                return
            self.chunks = deque()
            self.loop_call(self.respond, int(status.split(None, 1)[0]), headers, None)
        if chunk or last:
            with self.room.lock:
                if chunk:
                    self.chunks.append(bytes(chunk))
                    self.queued += len(chunk)
                self.finished = last
            self.loop_call(self.resume)
        with self.room.lock:
            while self.queued > WRITE_AHEAD and not self.gone:
                self.room.wait()
        if self.gone:
            raise ClientGone("the client has gone")

    def failed(self, exc: BaseException) -> None:
        if not self.response_sent:
            self.response_sent = True
            logger.error("WSGI app raised on stream %d from %s", self.stream_id,
                         self.client_address, exc_info=exc)
            self.final = (500, [("content-type", "text/plain; charset=utf-8")], _ERROR_BODY)
            return
        with self.room.lock:
            self.error = exc  # the engine resets the stream when it next pulls
        self.loop_call(self.resume)

    # -- the loop's side -----------------------------------------------------------

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None) -> None:
        if self.gone:
            return
        if self.method == b"HEAD":
            with self.room.lock:  # no body goes out: the app's thread stops producing it
                self.gone = True
                self.room.notify_all()
        fields = []
        for name, value in headers:
            name = name.lower()
            if name not in _HOP_BY_HOP:
                fields.append((name, value))
        try:
            self.send_response(status, fields, body if body is not None else self.pull)
        except Exception as exc:  # noqa: BLE001 -- a bad status or header from the app
            logger.error("WSGI app's response on stream %d is invalid: %s", self.stream_id, exc)
            with self.room.lock:
                self.gone = True
                self.room.notify_all()
            self.send_response(500, [("content-type", "text/plain; charset=utf-8")],
                               _ERROR_BODY)

    def pull(self, size: int) -> tuple[bytes, int]:
        """The streamed body, as the engine pulls it: ``(data, flag)``."""
        with self.room.lock:
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            if self.chunks:
                data = self.chunks.popleft()
                self.queued -= len(data)
                if self.queued <= WRITE_AHEAD:
                    self.room.notify_all()
                return data, DATA_EOF if self.finished and not self.chunks else DATA_OK
            if self.finished:
                return b"", DATA_EOF
            return b"", DATA_DEFERRED
