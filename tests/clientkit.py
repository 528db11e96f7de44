"""Helpers of the client tests: the event loop of the pass, a scripted HTTP/2 server on
the h2 package (for misbehaviour our own server never shows), servers that only
accept, and the handlers our own server answers the client with."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.events

from conftest import new_event_loop


def run(coroutine):
    """Run ``coroutine`` on a new event loop of the pass (asyncio's or uvloop)."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Digest:
    """conftest.digest() of data seen in pieces: ``str(Digest)`` is ``"<length> <sha256>"``."""

    def __init__(self) -> None:
        self.length = 0
        self.sha = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.length += len(data)
        self.sha.update(data)

    def __str__(self) -> str:
        return f"{self.length} {self.sha.hexdigest()}"


class ScriptedServer:
    """A cleartext HTTP/2 server on the h2 package whose answers a test scripts.

    ``respond(server, stream_id, headers)`` runs in the server's thread for each
    request (headers as a str dict); it acts on ``server.conn`` (an h2
    connection) and calls ``server.flush()``; ``server.drop()`` closes the
    connection. Request bodies are acknowledged and ignored.
    """

    def __init__(self, respond: Callable[[ScriptedServer, int, dict[str, str]], None]) -> None:
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.conn: h2.connection.H2Connection | None = None
        self.sock: socket.socket | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def flush(self) -> None:
        assert self.conn is not None and self.sock is not None
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def drop(self) -> None:
        """Close the connection: FIN after what was sent, then wait for the client's close."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.settimeout(2)
                while self.sock.recv(65536):
                    pass
            self.sock.close()
            self.sock = None

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                self.sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
            self.conn.initiate_connection()
            with contextlib.suppress(OSError):
                self.flush()
                self._connection()
            self.drop()

    def _connection(self) -> None:
        assert self.sock is not None and self.conn is not None
        self.sock.settimeout(0.2)
        while not self._stopped.is_set() and self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                    self.respond(self, event.stream_id, headers)
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                        event.stream_id)
                if self.sock is None:
                    return
            self.flush()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self.listener.close()


@contextlib.contextmanager
def scripted(respond) -> Iterator[ScriptedServer]:
    server = ScriptedServer(respond)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(socket.timeout, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for sock in accepted:
            sock.close()
        listener.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def chunks(data: bytes, size: int = 65536, pulled: list | None = None):
    """``data`` as an async iterator of ``size``-byte chunks; counts into ``pulled``."""
    for offset in range(0, len(data), size):
        if pulled is not None:
            pulled.append(offset + size)
        await asyncio.sleep(0)
        yield data[offset:offset + size]
