"""The WSGI adapter (PEP 3333): raw WSGI apps message by message, and Flask unchanged."""
from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import h2.events
import httpx
import pytest

from conftest import StreamReader, response_of, run_peer
from nghttp2py import ErrorCode
from nghttp2py.wsgi import wsgi_handler

MiB = 1 << 20


@pytest.fixture
def serve_wsgi(serve):
    """``serve_wsgi(app, **wsgi_handler options)``: its own pool of 4 threads."""
    started = []

    def start(app, **options):
        executor = ThreadPoolExecutor(4)
        server = serve(wsgi_handler(app, executor=executor, **options))
        started.append((server, executor))
        return server

    yield start
    # The server first (its connections' ends release the apps' threads), then the
    # threads, so that no app thread outlives the test holding a stream.
    for server, executor in started:
        server.stop()
        executor.shutdown(wait=True)


def h2c() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


def test_environ(serve_wsgi):
    seen = []

    def app(environ, start_response):
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = serve_wsgi(app, root_path="/app", server=("127.0.0.1", 8000))
    with h2c() as client:
        response = client.get(server.url("/app/caf%C3%A9?x=1"),
                              headers=[("X-Two", "a"), ("x-two", "b")])
    assert response.text == "ok" and response.headers["content-length"] == "2"
    environ = seen[0]
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == "/app"
    assert environ["PATH_INFO"] == "/café".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert environ["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert environ["HTTP_X_TWO"] == "a,b"
    assert environ["wsgi.version"] == (1, 0) and environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True and environ["wsgi.run_once"] is False
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


def test_input_streams_and_holds_the_client_back(serve_wsgi, h2_client):
    go = threading.Event()

    def app(environ, start_response):
        go.wait(10)
        body = environ["wsgi.input"]
        digest = hashlib.sha256()
        while chunk := body.read(10_000):
            digest.update(chunk)
        start_response("200 OK", [])
        return [digest.hexdigest().encode()]

    server = serve_wsgi(app)
    client = h2_client(server.port)
    stream_id = client.request("/upload", method="POST", end_stream=False)
    data = bytes(range(256)) * (8 * MiB // 256)
    sent = client.pump(stream_id, data, quiet=0.5)
    assert sent < 2 * MiB  # held back by the stream window
    go.set()
    sent = client.pump(stream_id, data, sent)
    assert sent == len(data)
    body = bytes(client.response(stream_id).body)
    assert body == hashlib.sha256(data).hexdigest().encode()


def test_readline_and_iteration_over_input(serve_wsgi):
    def app(environ, start_response):
        lines = list(environ["wsgi.input"])
        start_response("200 OK", [])
        return [json.dumps([line.decode() for line in lines]).encode()]

    server = serve_wsgi(app)
    with h2c() as client:
        response = client.post(server.url(), content=b"one\ntwo\nthree")
    assert response.json() == ["one\n", "two\n", "three"]


def test_streamed_response_with_backpressure_and_close(serve_wsgi, h2_client):
    produced = []
    closed = threading.Event()

    class Body:
        def __iter__(self):
            for _ in range(256):
                produced.append(1)
                yield b"z" * 16384

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [("content-type", "application/octet-stream")])
        return Body()

    server = serve_wsgi(app)
    client = h2_client(server.port, window=65535)
    stream_id = client.request("/")
    first = [e for e in client.events_until(lambda e: isinstance(e, h2.events.DataReceived))
             if isinstance(e, h2.events.DataReceived)]
    assert len(produced) < 64  # not 4 MiB ahead of a 64 KiB window
    for event in first:
        client.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
    body = bytes(client.response(stream_id).body)
    assert len(b"".join(e.data for e in first) + body) == 256 * 16384
    assert closed.wait(5)


def test_close_is_called_when_the_client_resets(serve_wsgi, h2_client):
    closed = threading.Event()

    class Endless:
        def __iter__(self):
            while True:
                yield b"x" * 16384

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [])
        return Endless()

    server = serve_wsgi(app)
    client = h2_client(server.port)
    stream_id = client.request("/")
    client.events_until(lambda e: isinstance(e, h2.events.DataReceived))
    client.conn.reset_stream(stream_id, ErrorCode.CANCEL)
    client.flush()
    assert closed.wait(5)


def test_error_before_the_response_is_500(serve_wsgi):
    def app(environ, start_response):
        raise ValueError("wsgi app broke")

    server = serve_wsgi(app)
    with h2c() as client:
        assert client.get(server.url()).status_code == 500


def test_error_while_streaming_resets_the_stream(serve_wsgi, h2_client):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"first"
        yield b"second"
        raise ValueError("broke halfway")

    server = serve_wsgi(app)
    client = h2_client(server.port)
    stream_id = client.request("/")
    events = client.response(stream_id).events
    assert response_of(events, stream_id).reset == ErrorCode.INTERNAL_ERROR


def test_write_callable(serve_wsgi):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"then returned"]

    server = serve_wsgi(app)
    with h2c() as client:
        assert client.get(server.url()).text == "written, then returned"


@pytest.fixture
def flask(serve_wsgi):
    from apps import flask_app
    return serve_wsgi(flask_app.app)


def test_flask_pages(flask):
    with h2c() as client:
        assert client.get(flask.url()).text == "flask over HTTP/2"
        response = client.post(flask.url("/json?q=find"), json={"a": [1, 2]})
        assert response.json() == {"received": {"a": [1, 2]}, "query": "find"}
        with client.stream("GET", flask.url("/stream?count=50")) as streamed:
            text = "".join(streamed.iter_text())
        assert text == "".join(f"line {n}\n" for n in range(50))
        assert client.get(flask.url("/error")).status_code == 500
        assert client.get(flask.url("/missing")).status_code == 404


def test_flask_upload_with_curl(flask, tmp_path):
    data = bytes(range(256)) * (3 * MiB // 256)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    result = run_peer("curl", "-s", "--http2-prior-knowledge", "--data-binary", f"@{path}",
                      flask.url("/upload"))
    assert json.loads(result.stdout) == {"size": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest()}


def test_answering_before_reading_an_upload_does_not_stall_the_client(serve_wsgi):
    def app(environ, start_response):
        start_response("413 Payload Too Large", [("Content-Type", "text/plain")])
        return [b"too large"]

    server = serve_wsgi(app)
    with h2c() as client:
        response = client.post(server.url(), content=b"x" * (5 * MiB))
    assert (response.status_code, response.text) == (413, "too large")


def test_a_burst_beyond_the_pool_runs_four_at_once_and_all_are_answered(serve_wsgi, h2_client):
    """Six requests arrive together on a pool of 4 threads: the first four only finish
    if they run at the same time, and no more than four ever do. Twice: the second burst
    finds the pool's threads started (starting one lets the first requests in early)."""
    together = threading.Barrier(4, timeout=5)
    lock = threading.Lock()
    running = [0, 0]  # now, most

    def app(environ, start_response):
        with lock:
            running[0] += 1
            running[1] = max(running)
        try:
            if environ["PATH_INFO"] != "/late":
                together.wait()
        finally:
            with lock:
                running[0] -= 1
        start_response("200 OK", [("content-type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    server = serve_wsgi(app)
    client = h2_client(server.port)
    reader = StreamReader(client)
    paths = ["/a", "/b", "/c", "/d", "/late", "/late"]
    for _ in range(2):
        streams = []
        for path in paths:  # one write: the server reads them in one go
            streams.append(client.conn.get_next_available_stream_id())
            client.conn.send_headers(streams[-1], [
                (":method", "GET"), (":scheme", "http"), (":authority", client.authority),
                (":path", path)], end_stream=True)
        client.flush()
        assert [reader.response(sid) for sid in streams] == [(200, p.encode()) for p in paths]
    assert running == [0, 4]
