"""Streaming both ways: uploads taken at the handler's pace, responses produced over time.

Routes::

    POST /upload    the body is hashed chunk by chunk in an async on_data; the
                    client is held back by flow control while it runs. The
                    answer carries the byte count, and the sha256 as a trailer.
    GET  /ticks     ten lines, one every 50 ms, from an async generator.
    GET  /          a 103 Early Hints response first, then the page.

Try it (after ``make``, or ``pip install .``)::

    python examples/streaming.py
    # or: python -m nghttp2py examples.streaming:StreamingHandler
    head -c 50M /dev/urandom | curl --http2-prior-knowledge -T - http://localhost:8080/upload
    curl --http2-prior-knowledge -N http://localhost:8080/ticks
    nghttp -v http://localhost:8080/        # shows the 103 before the 200
"""
import asyncio
import hashlib
from urllib.parse import parse_qs, urlsplit

from nghttp2py import BaseRequestHandler
from nghttp2py.cli import serve


async def ticks(count: int, interval: float):
    for number in range(1, count + 1):
        await asyncio.sleep(interval)
        yield f"tick {number}\n"


class StreamingHandler(BaseRequestHandler):

    def on_headers(self):
        url = urlsplit(self.path.decode("ascii", "replace"))
        if self.method == b"POST" and url.path == "/upload":
            self.received = 0
            self.digest = hashlib.sha256()
        elif url.path == "/ticks":
            count = int(parse_qs(url.query).get("n", ["10"])[0])
            self.send_response(200, [("content-type", "text/plain; charset=utf-8")],
                               ticks(min(count, 1000), 0.05))
        elif url.path == "/":
            self.send_info(103, [("link", "</style.css>; rel=preload; as=style")])
            self.send_response(200, [("content-type", "text/html; charset=utf-8")],
                               "<!doctype html><title>streaming</title><p>Hello.</p>\n")
        else:
            self.send_response(404, [("content-type", "text/plain")], "not found\n")

    async def on_data(self, data):
        # Stand-in for slow storage: while this runs, the request's flow-control
        # window stays closed, so a fast client waits instead of filling memory.
        self.digest.update(data)
        self.received += len(data)
        await asyncio.sleep(0)

    def on_request_done(self):
        if self.method == b"POST":
            self.send_response(200, [("content-type", "text/plain")],
                               f"received {self.received} bytes\n",
                               trailers=[("x-sha256", self.digest.hexdigest())])


if __name__ == "__main__":
    serve(StreamingHandler, description="Streaming uploads and responses.",
          try_command="curl --http2-prior-knowledge -N {url}ticks")
