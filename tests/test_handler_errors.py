"""A handler that raises: the failing stream gets a 500 (or RST_STREAM ErrorCode.INTERNAL_ERROR once
its response has started), one ERROR record with the traceback is logged, and the connection
with its other streams keeps working.

The ``h2`` package is the peer: it sees the 500, the reset and its error code, and would see
a GOAWAY if the server gave up on the connection.
"""
from __future__ import annotations

import io
import logging
import textwrap
import time

import pytest

from conftest import StreamReader, curl, wait_for
from nghttp2py import DATA_DEFERRED, DATA_OK, BaseRequestHandler, ErrorCode
from rawh2 import RawH2, status_of


class Boom(Exception):
    """The exception the failing handlers raise."""


def errors(log_records) -> list[logging.LogRecord]:
    return [r for r in log_records.records
            if r.name.startswith("nghttp2py") and r.levelno >= logging.ERROR]


def wait_for_errors(log_records, count: int, timeout: float = 5) -> list[logging.LogRecord]:
    deadline = time.monotonic() + timeout
    while len(errors(log_records)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return errors(log_records)


def assert_logged_once(log_records, handler_name: str, stream_id: int, where: str | None,
                       message: str) -> None:
    """Exactly one ERROR record naming the handler and stream, with the traceback."""
    records = wait_for_errors(log_records, 1)
    time.sleep(0.05)  # a duplicate record would arrive about now
    records = errors(log_records)
    assert len(records) == 1, [r.getMessage() for r in records]
    record = records[0]
    text = record.getMessage()
    assert record.name == "nghttp2py"
    assert handler_name in text
    assert f"stream {stream_id}" in text
    if where is not None:
        assert where in text
    assert record.exc_info is not None and record.exc_info[0] is Boom
    assert str(record.exc_info[1]) == message
    formatted = logging.Formatter().formatException(record.exc_info)
    assert "Traceback" in formatted and f"Boom: {message}" in formatted
    assert __file__.rsplit("/", 1)[-1] in formatted  # the traceback reaches the handler's code


def assert_connection_still_works(client, reader: StreamReader) -> None:
    """A new stream on the same connection is answered normally; no GOAWAY came."""
    for _ in range(2):
        sid = client.request("/ok")
        assert reader.response(sid) == (200, b"fine")
    assert reader.terminated is None


class Base(BaseRequestHandler):
    """Answers /ok with 200 'fine'; subclasses fail on other paths."""

    def failing(self) -> bool:
        return self.path != b"/ok"

    def on_request_done(self):
        self.send_response(body=b"fine")


# -- no response started: 500 ------------------------------------------------------------

def test_exception_in_on_headers_gives_500_and_log(serve, h2_client, log_records):
    class RaisesInOnHeaders(Base):
        def on_headers(self):
            if self.failing():
                raise Boom("on_headers failed")

    server = serve(RaisesInOnHeaders)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    status, body = reader.response(sid)
    assert status == 500
    assert body == b"Internal Server Error\n"
    assert reader.headers[sid]["content-length"] == str(len(body))
    assert reader.headers[sid]["content-type"].startswith("text/plain")
    assert_logged_once(log_records, "RaisesInOnHeaders", sid, "on_headers", "on_headers failed")
    assert_connection_still_works(client, reader)


def test_exception_in_on_data_gives_500(serve, h2_client, log_records):
    done: list[int] = []

    class RaisesInOnData(Base):
        def on_data(self, data):
            if self.failing():
                raise Boom("on_data failed")

        def on_request_done(self):
            done.append(self.stream_id)
            super().on_request_done()

    server = serve(RaisesInOnData)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail", method="POST", body=b"x" * 1000)
    status, body = reader.response(sid)
    assert status == 500 and body == b"Internal Server Error\n"
    assert_logged_once(log_records, "RaisesInOnData", sid, "on_data", "on_data failed")
    assert sid not in done  # a failed handler gets no more hooks
    assert_connection_still_works(client, reader)


def test_exception_in_on_data_with_body_still_arriving(serve, h2_client, log_records):
    """The 500 goes out on the first failing chunk; the rest of the body is not a problem."""
    calls: list[int] = []

    class RaisesOnFirstChunk(Base):
        def on_data(self, data):
            calls.append(len(data))
            raise Boom("first chunk")

    server = serve(RaisesOnFirstChunk)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail", method="POST", body=b"a" * 100, end_stream=False)
    reader.wait(lambda: sid in reader.headers)
    assert reader.headers[sid][":status"] == "500"
    reader.finish(sid)
    # More body for a stream the server has answered: accepted or refused, never fatal.
    import h2.exceptions
    try:
        client.conn.send_data(sid, b"b" * 100, end_stream=True)
        client.flush()
    except h2.exceptions.StreamClosedError:
        pass
    assert calls == [100]
    assert_logged_once(log_records, "RaisesOnFirstChunk", sid, "on_data", "first chunk")
    assert_connection_still_works(client, reader)


def test_exception_in_on_request_done_gives_500(serve, h2_client, log_records):
    class RaisesInOnRequestDone(Base):
        def on_request_done(self):
            if self.failing():
                raise Boom("on_request_done failed")
            super().on_request_done()

    server = serve(RaisesInOnRequestDone)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail", method="POST", body=b"payload")
    assert reader.response(sid) == (500, b"Internal Server Error\n")
    assert_logged_once(log_records, "RaisesInOnRequestDone", sid, "on_request_done",
                       "on_request_done failed")
    assert_connection_still_works(client, reader)


def test_500_via_curl(serve, log_records):
    class RaisesInOnRequestDone(Base):
        def on_request_done(self):
            raise Boom("curl sees a 500")

    server = serve(RaisesInOnRequestDone)
    assert curl("--http2-prior-knowledge", server.url("/x")).status == 500
    assert_logged_once(log_records, "RaisesInOnRequestDone", 1, "on_request_done",
                       "curl sees a 500")


# -- response started: RST_STREAM INTERNAL_ERROR -----------------------------------------------

def test_exception_in_on_data_after_response_started_resets(serve, h2_client, log_records):
    class StartsThenRaises(Base):
        def on_headers(self):
            if self.failing():
                self.send_response(body=lambda n: (b"", DATA_DEFERRED))

        def on_data(self, data):
            if self.failing():
                raise Boom("on_data after the response started")

    server = serve(StartsThenRaises)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail", method="POST", end_stream=False)
    reader.wait(lambda: sid in reader.headers)
    assert reader.headers[sid][":status"] == "200"
    client.conn.send_data(sid, b"trigger")
    client.flush()
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    assert sid not in reader.ended
    assert_logged_once(log_records, "StartsThenRaises", sid, "on_data",
                       "on_data after the response started")
    assert_connection_still_works(client, reader)


def test_exception_in_on_headers_after_send_response_resets(serve, h2_client, log_records):
    class SendsThenRaises(Base):
        def on_headers(self):
            if self.failing():
                self.send_response(body=lambda n: (b"", DATA_DEFERRED))
                raise Boom("raised after send_response")

    server = serve(SendsThenRaises)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    assert reader.headers.get(sid, {}).get(":status") != "500"
    assert_logged_once(log_records, "SendsThenRaises", sid, "on_headers",
                       "raised after send_response")
    assert_connection_still_works(client, reader)


@pytest.mark.parametrize("fail_at_call", [1, 3])
def test_body_generator_raising_resets_stream(serve, h2_client, log_records, fail_at_call):
    class GeneratorRaises(Base):
        def on_request_done(self):
            if not self.failing():
                return super().on_request_done()
            calls = [0]

            def body(n):
                calls[0] += 1
                if calls[0] == fail_at_call:
                    raise Boom(f"generator call {fail_at_call}")
                return b"chunk;", DATA_OK
            self.send_response(body=body)

    server = serve(GeneratorRaises)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    assert sid not in reader.ended
    assert reader.headers[sid][":status"] == "200"
    assert bytes(reader.body.get(sid, b"")) == b"chunk;" * (fail_at_call - 1)
    assert_logged_once(log_records, "GeneratorRaises", sid, None, f"generator call {fail_at_call}")
    assert_connection_still_works(client, reader)


def test_file_body_raising_mid_body_resets_and_closes(serve, h2_client, log_records):
    files: list = []

    class Failing(io.RawIOBase):
        def __init__(self):
            self.reads = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            self.reads += 1
            if self.reads == 3:
                raise Boom("disk on fire")
            buffer[:5] = b"block"
            return 5

    class FileRaises(Base):
        def on_request_done(self):
            if not self.failing():
                return super().on_request_done()
            f = Failing()
            files.append(f)
            self.send_response(body=f)

    server = serve(FileRaises)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    assert bytes(reader.body.get(sid, b"")) == b"blockblock"
    assert_logged_once(log_records, "FileRaises", sid, None, "disk on fire")
    assert_connection_still_works(client, reader)
    assert files[0].closed


def test_deferred_generator_raising_after_resume(serve, h2_client, log_records):
    import asyncio

    class RaisesAfterResume(Base):
        def on_request_done(self):
            if not self.failing():
                return super().on_request_done()
            loop = asyncio.get_running_loop()
            state = {"resumed": False}

            def resume():
                state["resumed"] = True
                self.resume()

            def body(n):
                if not state["resumed"]:
                    loop.call_later(0.02, resume)
                    return b"before;", DATA_DEFERRED
                raise Boom("after resume")
            self.send_response(body=body)

    server = serve(RaisesAfterResume)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    assert bytes(reader.body.get(sid, b"")) == b"before;"
    assert_logged_once(log_records, "RaisesAfterResume", sid, None, "after resume")
    assert_connection_still_works(client, reader)


# -- after the fact / before the handler exists ----------------------------------------------

def test_exception_in_on_close_is_only_logged(serve, h2_client, log_records):
    closed: list[tuple[int, int]] = []

    class RaisesInOnClose(Base):
        def on_close(self, error_code):
            closed.append((self.stream_id, error_code))
            if self.failing():
                raise Boom("on_close failed")

    server = serve(RaisesInOnClose)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    assert reader.response(sid) == (200, b"fine")
    assert sid not in reader.reset
    assert_logged_once(log_records, "RaisesInOnClose", sid, "on_close", "on_close failed")
    assert_connection_still_works(client, reader)
    assert (sid, 0) in closed
    assert not reader.reset


def test_handler_constructor_raising_resets_only_that_stream(serve, h2_client, log_records):
    class RaisesInInit(Base):
        def __init__(self, http2, stream_id):
            if stream_id == 1:
                raise Boom("constructor failed")
            super().__init__(http2, stream_id)

    server = serve(RaisesInInit)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    assert sid == 1
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    assert sid not in reader.headers
    records = wait_for_errors(log_records, 1)
    assert len(records) == 1
    assert "RaisesInInit" in records[0].getMessage()
    assert "stream 1" in records[0].getMessage()
    assert records[0].exc_info[0] is Boom
    assert_connection_still_works(client, reader)


def test_handler_constructors_run_when_overridden(serve, h2_client):
    """__init__ and __new__ of a subclass run; without them the fields are set all the same."""
    class WithInit(Base):
        def __init__(self, http2, stream_id):
            super().__init__(http2, stream_id)
            self.greeting = b"init %d" % stream_id

        def on_request_done(self):
            self.send_response(200, body=self.greeting)

    class WithNew(Base):
        def __new__(cls, http2, stream_id):
            handler = super().__new__(cls)
            handler.greeting = b"new %d" % stream_id
            return handler

        def on_request_done(self):
            self.send_response(200, body=self.greeting)

    for cls, word in ((WithInit, b"init"), (WithNew, b"new")):
        server = serve(cls)
        client = h2_client(server.port)
        reader = StreamReader(client)
        sid = client.request("/")
        assert reader.response(sid) == (200, word + b" %d" % sid)


def test_failures_on_many_streams_interleaved_with_good_ones(serve, h2_client, log_records):
    """Every other stream fails in a different hook; every good stream is answered."""
    class Mixed(Base):
        def on_headers(self):
            if self.path == b"/headers":
                raise Boom("headers")

        def on_data(self, data):
            if self.path == b"/data":
                raise Boom("data")

        def on_request_done(self):
            if self.path == b"/done":
                raise Boom("done")
            super().on_request_done()

    server = serve(Mixed)
    client = h2_client(server.port)
    reader = StreamReader(client)
    expected = {}
    for path in ["/headers", "/ok", "/data", "/ok", "/done", "/ok"] * 3:
        sid = client.request(path, method="POST", body=b"body")
        expected[sid] = (500, b"Internal Server Error\n") if path != "/ok" else (200, b"fine")
    for sid, want in expected.items():
        assert reader.response(sid) == want
    assert len(wait_for_errors(log_records, 9)) == 9
    assert reader.terminated is None


def test_generator_returning_unknown_flag_resets_stream(serve, h2_client, log_records):
    class BadFlag(Base):
        def on_request_done(self):
            if not self.failing():
                return super().on_request_done()
            self.send_response(body=lambda n: (b"data", 99))

    server = serve(BadFlag)
    client = h2_client(server.port)
    reader = StreamReader(client)
    sid = client.request("/fail")
    reader.finish(sid)
    assert reader.reset.get(sid) == ErrorCode.INTERNAL_ERROR
    records = wait_for_errors(log_records, 1)
    assert len(records) == 1 and "BadFlag" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert_connection_still_works(client, reader)


def test_upload_continuing_after_a_failure_does_not_starve_the_connection(
        serve, h2_client, log_records):
    """The rest of a failed stream's body is still consumed, so the connection window
    (16 MiB) keeps flowing for the next upload."""
    import h2.exceptions

    class FailsThenCounts(Base):
        def on_data(self, data):
            if self.failing():
                raise Boom("reject upload")
            self.received = getattr(self, "received", 0) + len(data)

        def on_request_done(self):
            self.send_response(body=str(getattr(self, "received", 0)))

    server = serve(FailsThenCounts)
    client = h2_client(server.port)
    reader = StreamReader(client)
    conn = client.conn

    def upload(sid: int, size: int) -> None:
        block = b"u" * 16384
        sent = 0
        deadline = time.monotonic() + 20
        while sent < size and sid not in reader.reset:
            try:
                n = min(conn.local_flow_control_window(sid), len(block), size - sent)
            except h2.exceptions.StreamClosedError:
                return
            if n <= 0:
                assert time.monotonic() < deadline, f"stalled after {sent} bytes"
                reader.read_once(deadline - time.monotonic())
                continue
            try:
                conn.send_data(sid, block[:n], end_stream=sent + n == size)
            except h2.exceptions.StreamClosedError:
                return
            sent += n
            client.flush()

    failed = client.request("/fail", method="POST", end_stream=False)
    upload(failed, 9 << 20)
    assert_logged_once(log_records, "FailsThenCounts", failed, "on_data", "reject upload")
    ok = client.request("/ok", method="POST", end_stream=False)
    upload(ok, 9 << 20)
    assert reader.response(ok) == (200, str(9 << 20).encode())
    reader.finish(failed)
    assert reader.headers[failed][":status"] == "500"
    assert reader.terminated is None


# -- KeyboardInterrupt / SystemExit in a hook ------------------------------------------------

EXITING_SERVER = textwrap.dedent("""\
    import logging, sys
    from nghttp2py import BaseRequestHandler, HTTP2Server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

    class Handler(BaseRequestHandler):
        def on_headers(self):
            if self.path == b"/exit":
                raise SystemExit("asked to exit")
            raise ValueError("a plain failure")

    HTTP2Server(("127.0.0.1", 0), Handler).serve_forever()
    """)


def test_system_exit_in_a_hook_answers_every_failed_stream_of_the_read_first(server_process):
    """The exit escapes to the program, but only after the other streams that failed in
    the same read got their 500 (and the exiting one too), flushed to the client."""
    server = server_process(EXITING_SERVER)
    client = RawH2(server.port)
    try:
        client.send(client.headers_frame(1, "/fail") + client.headers_frame(3, "/exit")
                    + client.headers_frame(5, "/fail"))
        frames = client.frames_until(lambda f: False, timeout=10)
    finally:
        client.close()
    assert {stream_id: status_of(frames, stream_id) for stream_id in (1, 3, 5)} == {
        1: b"500", 3: b"500", 5: b"500"}
    assert server.wait(10) == 1
    assert "asked to exit" in server.stderr


class CloseFailsFile(io.BytesIO):
    def close(self):
        super().close()
        raise OSError("the disk went away")


class CloseFailsHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_response(200, body=CloseFailsFile(b"all of it"))


def test_a_body_whose_close_fails_is_logged_not_swallowed(serve, h2_client, log_records):
    server = serve(CloseFailsHandler)
    client = h2_client(server.port)
    response = client.get("/")
    assert (response.status, bytes(response.body)) == (200, b"all of it")
    assert wait_for(lambda: any("the disk went away" in r.getMessage()
                                for r in log_records.records))
