"""The async/await client (nghttp2py.Client) against our own server: bodies both ways,
multiplexing and queuing, push, GOAWAY, resets, flow control, TLS and timeouts.

What our server cannot be made to do (a GOAWAY refusing requests, a connection
dropped mid-body) is played by the h2 package's server (clientkit.ScriptedServer).
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import ssl
import threading

import pytest
from clientkit import Digest, chunks, free_port, run, scripted, sha, silent_listener

from conftest import digest
from nghttp2py import (
    BaseRequestHandler,
    BaseResponseHandler,
    Client,
    ErrorCode,
    InvalidHeaderError,
    Response,
    ServerSettings,
    Timeout,
)
from nghttp2py._nghttp2 import ClientSession
from nghttp2py.client import (
    ALPNError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    GoAwayError,
    ReadTimeoutError,
    StreamResetError,
    TotalTimeoutError,
)

MiB = 1 << 20
BLOCK = os.urandom(MiB)


def payload(size: int) -> bytes:
    return (BLOCK * (size // MiB + 1))[:size]


class Handler(BaseRequestHandler):
    """``/bytes/N``: N bytes of payload(); ``/digest``: the request body's digest;
    ``/json``: a JSON echo of the request; ``/reset``: a body that fails midway."""

    def on_headers(self):
        path = self.path.decode()
        if path.startswith("/bytes/"):
            self.send_response(200, [("content-type", "application/octet-stream")],
                               payload(int(path[7:])))
        elif path == "/json":
            self.send_response(200, [("content-type", "application/json; charset=utf-8")],
                               json.dumps({"method": self.method.decode(), "path": path,
                                           "headers": {k.decode(): v.decode()
                                                       for k, v in self.headers}}))
        elif path == "/reset":
            def failing(n):
                raise RuntimeError("the body broke")
            self.send_response(200, body=failing)
        elif path == "/cookies":
            self.send_response(200, [("set-cookie", "a=1"), ("set-cookie", "b=2")], b"body",
                               trailers=[("x-checksum", "42")])
        elif path == "/empty":
            self.send_response(204)
        elif path != "/digest":
            self.send_response(404, body=b"not found\n")
        self.received = Digest()

    def on_data(self, data):
        self.received.update(data)

    def on_request_done(self):
        if self.path == b"/digest":
            self.send_response(200, body=str(self.received))


@pytest.fixture
def server(serve):
    return serve(Handler)


async def trickle(interval: float):
    """A body of 30 dots, one every ``interval`` seconds."""
    for _ in range(30):
        await asyncio.sleep(interval)
        yield b"."


def test_get_status_headers_text_and_json(server):
    async def main():
        async with Client(server.url()) as client:
            response = await client.get("/json", headers=[("x-test", "1")])
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            assert response.http_version == "2"
            data = await response.json()
            assert data["method"] == "GET" and data["path"] == "/json"
            assert data["headers"]["x-test"] == "1"
            assert data["headers"]["user-agent"] == "nghttp2py"
            missing = await client.get("/nothing")
            assert (missing.status, await missing.text()) == (404, "not found\n")
            empty = await client.get("/empty")
            assert (empty.status, await empty.read()) == (204, b"")
            head = await client.head("/bytes/10")
            assert head.status == 200 and head.headers["content-length"] == "10"
            assert await head.read() == b""
    run(main())


def test_repeated_fields_trailers_and_header_names_in_any_case(server):
    async def main():
        async with Client(server.url(), headers={"X-Client": "c"}) as client:
            response = await client.get("/cookies")
            assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
            assert response.headers["set-cookie"] == "a=1, b=2"
            assert "SET-COOKIE" in response.headers and "x-checksum" not in response.headers
            assert await response.read() == b"body"
            assert dict(response.trailers) == {"x-checksum": "42"}
            echo = await (await client.get("/json", headers={"X-Request": "r"})).json()
            assert echo["headers"]["x-client"] == "c" and echo["headers"]["x-request"] == "r"
    run(main())


@pytest.mark.parametrize("size", [0, 1, 16384, 65537, 3 * MiB + 5, 100 * MiB])
def test_response_bodies_of_every_size(server, size):
    async def main():
        async with Client(server.url()) as client:
            response = await client.get(f"/bytes/{size}")
            assert int(response.headers["content-length"]) == size
            return await response.read()
    assert sha(run(main())) == sha(payload(size))


@pytest.mark.parametrize("size", [0, 1, 16384, 65537, 3 * MiB + 5, 100 * MiB])
def test_request_bodies_of_every_size_as_bytes_file_and_async_iterator(server, tmp_path, size):
    data = payload(size)
    path = tmp_path / "body"
    path.write_bytes(data)

    async def main():
        async with Client(server.url()) as client:
            with open(path, "rb") as file:
                answers = await asyncio.gather(
                    client.post("/digest", body=data), client.post("/digest", body=file),
                    client.post("/digest", body=chunks(data)))
            return [await answer.text() for answer in answers]
    assert run(main()) == [digest(data)] * 3


def test_streamed_response_arrives_in_chunks_under_flow_control(server):
    async def main():
        async with Client(server.url()) as client:
            response = await client.get(f"/bytes/{20 * MiB}")
            received = bytearray()
            async for chunk in response.stream():
                received += chunk
                if len(received) < 4 * MiB:
                    # A slow reader: the server is held back by the stream window,
                    # so no more than about a window waits unread.
                    await asyncio.sleep(0.01)
                    assert response._stream.buffered <= 3 * MiB
            return bytes(received)
    assert sha(run(main())) == sha(payload(20 * MiB))


def test_a_response_is_freed_without_the_garbage_collector(server):
    """No reference cycle per request: a response read and dropped goes at once."""
    async def main():
        async with Client(server.url()) as client:
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for _ in range(20):
                    await (await client.get("/bytes/100")).read()
                await asyncio.sleep(0.2)  # the timeout watchdog lets go of them too
                gc.collect()
                return [o for o in gc.garbage if isinstance(o, (Response, BaseResponseHandler))]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    assert run(main()) == []


def test_the_clients_own_header_fields_are_checked_once_when_set(server):
    async def main():
        with pytest.raises(InvalidHeaderError):
            Client(server.url(), headers=[("Bad Name", "x")])
        async with Client(server.url(), headers={"x-default": "1"}) as client:
            assert isinstance(client.headers, tuple) and len(client.headers) == 2
            with pytest.raises(InvalidHeaderError):
                client.headers = [("connection", "close")]
            data = await (await client.get("/json")).json()
            assert data["headers"]["x-default"] == "1"  # the refused fields changed nothing
            client.headers = [("x-other", "2")]
            for response in (await client.get("/json"),
                             await client.post(server.url("/json"), b"a body"),
                             await client.get("/json", headers={"x-more": "3"})):
                data = await response.json()
                assert data["headers"]["x-other"] == "2"
                assert "x-default" not in data["headers"] and "user-agent" not in data["headers"]
            assert data["headers"]["x-more"] == "3"
    run(main())


def test_streams_that_end_early_leave_nothing_behind(serve):
    """A stream reset by the server, one given up on, and three cut off with their
    connection: the connection's list of open streams lets go of each."""
    async def failing_body():
        yield b"x" * 100
        raise RuntimeError("the body failed (on purpose)")

    class Ends(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/reset":
                self.send_response(200, body=failing_body())
            elif self.path != b"/never":
                self.send_response(200, body=b"ok")

    server = serve(Ends)

    def alive():
        return sum(isinstance(o, (Response, BaseResponseHandler, ClientSession))
                   for o in gc.get_objects())

    async def main():
        async with Client(server.url()) as client:
            assert await (await client.get("/")).read() == b"ok"
            reset = await client.get("/reset")
            with pytest.raises(StreamResetError):
                await reset.read()
            given_up = asyncio.create_task(client.get("/never"))
            await asyncio.sleep(0.1)
            given_up.cancel()
            with pytest.raises(asyncio.CancelledError):
                await given_up
            cut = [asyncio.create_task(client.get("/never")) for _ in range(3)]
            await asyncio.sleep(0.1)
            connection = client._connection
            assert connection.open_streams == 3
            connection.abort()
            ends = await asyncio.gather(*cut, return_exceptions=True)
            assert [type(end) for end in ends] == [ConnectionClosedError] * 3
            assert connection.open_streams == 0
            del reset, given_up, cut, ends, connection

    gc.collect()
    before = alive()
    run(main())
    gc.collect()
    assert alive() == before


def test_1000_concurrent_requests_queue_beyond_max_concurrent_streams(serve):
    open_now = []
    peak = []
    lock = threading.Lock()

    class Slow(BaseRequestHandler):
        async def on_headers(self):
            with lock:
                open_now.append(1)
                peak.append(len(open_now))
            await asyncio.sleep(0.001)
            with lock:
                open_now.pop()
            self.send_response(200, body=self.path)

    server = serve(Slow, settings=ServerSettings(max_concurrent_streams=20))

    async def main():
        async with Client(server.url()) as client:
            responses = await asyncio.gather(*(client.get(f"/{i}") for i in range(1000)))
            assert len({r.stream_id for r in responses}) == 1000
            return [await r.text() for r in responses]
    assert run(main()) == [f"/{i}" for i in range(1000)]
    assert max(peak) <= 20


class PushingHandler(BaseRequestHandler):
    promised: list = []

    def on_headers(self):
        PushingHandler.promised.append(self.push("/pushed.css", body=b"body{}"))
        self.send_response(200, body=b"page")


def test_pushed_responses_accepted(serve):
    server = serve(PushingHandler)

    async def main():
        async with Client(server.url(), push=True) as client:
            response = await client.get("/")
            assert await response.read() == b"page"
            [pushed] = response.pushed
            assert pushed.url.endswith("/pushed.css")
            assert await client.pushed_response("/pushed.css") is pushed
            assert pushed.status == 200
            assert await pushed.read() == b"body{}"
            assert await client.pushed_response("/pushed.css") is None  # handed out once
    PushingHandler.promised.clear()
    run(main())
    assert PushingHandler.promised == [True]


def test_push_disabled_by_default(serve):
    server = serve(PushingHandler)

    async def main():
        async with Client(server.url()) as client:
            response = await client.get("/")
            assert await response.read() == b"page"
            assert response.pushed == []
    PushingHandler.promised.clear()
    run(main())
    assert PushingHandler.promised == [False]


def test_server_shutdown_mid_flight_finishes_the_requests_it_took(serve):
    started = threading.Event()

    class Slow(BaseRequestHandler):
        async def on_headers(self):
            started.set()
            await asyncio.sleep(0.3)
            self.send_response(200, body=b"done")

    server = serve(Slow)

    async def main():
        async with Client(server.url()) as client:
            requests = [asyncio.ensure_future(client.get(f"/{i}")) for i in range(5)]
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
            server.loop.call_soon_threadsafe(server.server.close)  # GOAWAY, then close
            responses = await asyncio.gather(*requests)
            assert [await r.read() for r in responses] == [b"done"] * 5
            with pytest.raises(ConnectError):
                await client.get("/after")  # a new connection: the server has gone
    run(main())


def test_goaway_refusing_requests_raises_with_its_name_and_retries_once():
    def respond(server, stream_id, headers):
        if headers[":path"] == "/a":
            server.conn.send_headers(stream_id, [(":status", "200")], end_stream=True)
        else:  # /b: refused unprocessed, on every connection
            server.conn.close_connection(error_code=ErrorCode.NO_ERROR,
                                         last_stream_id=max(stream_id - 2, 0),
                                         additional_data=b"going away")
            server.flush()
            server.drop()

    async def main(url):
        async with Client(url) as client:
            first, second = await asyncio.gather(client.get("/a"), client.get("/b"),
                                                 return_exceptions=True)
            assert first.status == 200
            # /b was refused unprocessed: sent again on a new connection, and
            # refused there too.
            assert isinstance(second, GoAwayError), second
            assert second.retryable and second.error_code == ErrorCode.NO_ERROR
            assert "GOAWAY NO_ERROR" in str(second) and "going away" in str(second)

    with scripted(respond) as server:
        run(main(server.url))


@pytest.mark.parametrize("how, error, message", [
    ("goaway", GoAwayError, "GOAWAY ENHANCE_YOUR_CALM"),
    ("dropped", ConnectionClosedError, "closed the connection"),
    # END_STREAM before content-length's worth: nghttp2 resets the stream.
    ("ended", StreamResetError, "RST_STREAM PROTOCOL_ERROR"),
])
def test_a_response_cut_short_is_never_a_short_body(how, error, message):
    def respond(server, stream_id, headers):
        server.conn.send_headers(stream_id, [(":status", "200"), ("content-length", "100")])
        server.conn.send_data(stream_id, b"x" * 10, end_stream=how == "ended")
        if how == "goaway":
            server.conn.close_connection(error_code=ErrorCode.ENHANCE_YOUR_CALM,
                                         last_stream_id=stream_id)
        server.flush()
        if how != "ended":
            server.drop()

    async def main(url):
        async with Client(url) as client:
            response = await client.get("/")
            with pytest.raises(error, match=message) as info:
                await response.read()
            assert not getattr(info.value, "retryable", False)
    with scripted(respond) as server:
        run(main(server.url))


def test_stream_reset_by_the_server_names_its_error_code(server):
    async def main():
        async with Client(server.url()) as client:
            response = await client.get("/reset")
            with pytest.raises(StreamResetError, match="RST_STREAM INTERNAL_ERROR") as info:
                await response.read()
            assert info.value.error_code == ErrorCode.INTERNAL_ERROR
            # The connection goes on.
            assert (await client.get("/bytes/3")).status == 200
    run(main())


def test_reset_before_the_response_raises_from_the_request():
    def respond(server, stream_id, headers):
        server.conn.reset_stream(stream_id, error_code=ErrorCode.REFUSED_STREAM)
        server.flush()

    async def main(url):
        async with Client(url) as client:
            with pytest.raises(StreamResetError, match="REFUSED_STREAM"):
                await client.get("/")
    with scripted(respond) as server:
        run(main(server.url))


def test_upload_to_a_server_that_stops_reading_waits_for_its_window(serve):
    handlers = []

    class Paused(BaseRequestHandler):
        def on_headers(self):
            self.received = 0
            handlers.append(self)
            self.pause_reading()

        def on_data(self, data):
            self.received += len(data)

        def on_request_done(self):
            self.send_response(200, body=str(self.received))

    server = serve(Paused, settings=ServerSettings(initial_window_size=256 * 1024))
    data = payload(8 * MiB)
    pulled: list[int] = []

    async def main():
        async with Client(server.url()) as client:
            request = asyncio.ensure_future(client.post("/", body=chunks(data, pulled=pulled)))
            await asyncio.sleep(0.5)
            # Only about the stream window was taken from the body: the rest waits.
            assert max(pulled) <= 256 * 1024 + 2 * 65536
            assert not request.done()
            server.call(handlers[0].resume_reading)
            response = await request
            return await response.text()
    assert run(main()) == str(len(data))
    assert max(pulled) >= len(data)


def test_tls_with_a_self_signed_ca(serve, server_ssl_context, certificate):
    server = serve(Handler, ssl=server_ssl_context)
    cafile = str(certificate[0])

    async def main():
        async with Client(server.url(), cafile=cafile) as client:
            response = await client.get("/bytes/5")
            assert (response.status, await response.read()) == (200, payload(5))
        context = ssl.create_default_context(cafile=cafile)
        async with Client(server.url(), ssl=context) as client:
            assert (await client.get("/bytes/5")).status == 200
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            async with Client(server.url()):
                pass  # the system's CAs do not know the test certificate
    run(main())


def test_tls_server_without_h2_in_alpn(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    context.set_alpn_protocols(["http/1.1"])

    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ALPNError, match="not h2"):
                async with Client(f"https://127.0.0.1:{port}", cafile=str(certificate[0])):
                    pass
        finally:
            server.close()
    run(main())


def test_connection_refused():
    async def main(port):
        with pytest.raises(ConnectError, match="refused"):
            async with Client(f"http://127.0.0.1:{port}"):
                pass
    run(main(free_port()))


def test_connect_timeout_covers_the_tls_handshake():
    async def main(port):
        client = Client(f"https://127.0.0.1:{port}", timeout=Timeout(connect=0.3))
        with pytest.raises(ConnectTimeoutError, match="within 0.3 s"):
            await client.get("/")
        await client.aclose()
    with silent_listener() as port:
        run(main(port))


def test_requests_and_reads_are_coroutines_to_asyncio(server):
    async def main():
        async with Client(server.url()) as client:
            request = client.get("/bytes/10")
            assert asyncio.iscoroutine(request) and not asyncio.isfuture(request)
            response = await asyncio.create_task(request)
            with pytest.raises(RuntimeError, match="cannot reuse"):
                await request
            # A body that is in already, and one still on its way.
            assert await asyncio.ensure_future(response.read()) == payload(10)
            big = await client.get(f"/bytes/{4 * MiB}")
            read = big.read()
            assert asyncio.iscoroutine(read)
            assert await asyncio.wait_for(read, 10) == payload(4 * MiB)
            responses = await asyncio.gather(*(client.post("/digest", payload(n))
                                               for n in (0, 1, 100_000)))
            assert [await r.text() for r in responses] == [
                digest(payload(n)) for n in (0, 1, 100_000)]
            # A request never awaited sends nothing and costs nothing.
            client.get("/bytes/1").close()
            assert client._connection.open_streams == 0
    run(main())


def test_a_cancelled_wait_resets_its_stream_and_the_connection_goes_on(serve):
    class Slow(BaseRequestHandler):
        """``/SECONDS``: answers after that long; ``/trickle``: a body that takes 3 s."""

        async def on_headers(self):
            if self.path == b"/trickle":
                self.send_response(200, body=trickle(0.1))
                return
            await asyncio.sleep(float(self.path.decode()[1:]))
            self.send_response(200, body=b"done")

    server = serve(Slow)

    async def main():
        async with Client(server.url()) as client:
            answered = asyncio.create_task(client.get("/0.3"))
            waiting = asyncio.create_task(client.get("/5"))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get("/5"), 0.1)
            response = await client.get("/trickle")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(response.read(), 0.3)
            # The three given up on are reset; the other request is untouched.
            assert await (await answered).read() == b"done"
            await response.aclose()
            await asyncio.sleep(0.1)
            assert client._connection.open_streams == 0
            assert await (await client.get("/0")).read() == b"done"
    run(main())


def test_timeout_errors_name_the_request(serve):
    class Silent(BaseRequestHandler):
        async def on_headers(self):
            await asyncio.sleep(3)

    server = serve(Silent)

    async def main():
        origin = server.url("")
        async with Client(origin) as client:
            with pytest.raises(ReadTimeoutError,
                               match=rf"GET {origin}/a\?b=1: nothing from the server for 0.2 s"):
                await client.get("/a?b=1", timeout=Timeout(read=0.2))
            with pytest.raises(TotalTimeoutError,
                               match=rf"POST {origin}/ took longer than 0.3 s"):
                await client.post("/", b"x", timeout=Timeout(total=0.3))
    run(main())


def test_read_and_total_timeouts(serve):
    class Dawdler(BaseRequestHandler):
        async def on_headers(self):
            if self.path == b"/headers-late":
                await asyncio.sleep(3)
            self.send_response(200, body=trickle(0.05))

    server = serve(Dawdler)

    async def main():
        async with Client(server.url(), timeout=Timeout(read=1)) as client:
            with pytest.raises(ReadTimeoutError):
                await client.get("/headers-late")
            # A chunk every 0.05 s never trips a 1 s read timeout...
            response = await client.get("/trickle")
            assert await response.read() == b"." * 30
            # ...but a total of 0.5 s does (the body takes 1.5 s).
            response = await client.get("/trickle", timeout=Timeout(total=0.5))
            with pytest.raises(TotalTimeoutError):
                await response.read()
            assert (await client.get("/trickle")).status == 200  # the connection goes on
    run(main())
