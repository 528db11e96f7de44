"""The client's benchmark: the bookstore's 3000 books, and CPU per request against h2load.

Against examples/bookstore.py (one server process, h2c):

1. Wall time of a whole client process fetching the index and the 3000 books,
   start-up included: examples/bookstore_client.py (nghttp2py.Client,
   multiplexed) against the same program on httpx (``http2=True``, prior
   knowledge: ``http1=False``).
2. CPU time (user + system) per request of a 100,000-request run at 100
   streams in flight on one connection: nghttp2py's Client (async/await) and
   HTTP2Client (callbacks) against h2load.

Usage: python bench/client.py [--requests 100000] [--rounds 3]. Prints a
Markdown table; a quick single run is ``--rounds 1 --requests 20000``.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict({k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
           PYTHONPATH=str(ROOT))

HTTPX_BOOKS = """
import asyncio, sys, httpx
async def main(url):
    async with httpx.AsyncClient(http1=False, http2=True, base_url=url) as client:
        index = (await client.get("/")).json()
        async def book(i):
            return (await client.get(f"/book?id={i}")).json()
        books = await asyncio.gather(*(book(i) for i in index))
    assert len(books) == 3000
asyncio.run(main(sys.argv[1]))
"""

CLIENT_REQUESTS = """
import asyncio, sys, nghttp2py
async def main(url, total, streams):
    async with nghttp2py.Client(url) as client:
        async def worker(n):
            for _ in range(n):
                response = await client.get("/book?id=" + sys.argv[4])
                await response.read()
        await asyncio.gather(*(worker(total // streams) for _ in range(streams)))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

CALLBACK_REQUESTS = """
import asyncio, sys, urllib.parse, nghttp2py
async def main(url, total, streams, path):
    parts = urllib.parse.urlsplit(url)
    client = nghttp2py.HTTP2Client((parts.hostname, parts.port))
    done = asyncio.get_running_loop().create_future()
    counts = {"sent": 0, "closed": 0}

    class Handler(nghttp2py.BaseResponseHandler):
        def on_close(self, error_code):
            assert self.response_done and self.status == 200
            counts["closed"] += 1
            if counts["closed"] == total:
                done.set_result(None)
            elif counts["sent"] < total:
                send()

    def send():
        counts["sent"] += 1
        client.send_request(url=path, handler=Handler())

    for _ in range(streams):
        send()
    await done
    client.close()
    await client.wait_closed()
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "/book?id=" + sys.argv[4]))
"""


def start_bookstore() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "bookstore.py"), "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, text=True)
    assert process.stdout is not None
    match = re.match(r"serving on (\S+) ", process.stdout.readline())
    if match is None:
        process.kill()
        raise SystemExit("the bookstore did not start")
    return process, match.group(1)


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of running ``argv`` to completion (it must succeed)."""
    cpu, started = child_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, env=ENV, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, child_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server, url = start_bookstore()
    try:
        book_id = subprocess.run([sys.executable, "-m", "nghttp2py.client", url], check=True,
                                 capture_output=True, env=ENV).stdout.split(b",")[0][1:]
        rows = []
        for name, argv in (
                ("nghttp2py.Client (examples/bookstore_client.py)",
                 [sys.executable, str(ROOT / "examples" / "bookstore_client.py"), url]),
                ("httpx, http2=True", [sys.executable, "-c", HTTPX_BOOKS, url])):
            wall = statistics.median(measure(argv)[0] for _ in range(args.rounds))
            rows.append((f"3000 books: {name}", f"{wall:.3f} s wall"))
        per_request = {}
        for name, argv in (
                ("h2load", ["h2load", "-n", str(args.requests), "-c", "1", "-m",
                            str(args.streams), f"{url}book?id={book_id.decode()}"]),
                ("nghttp2py.Client", [sys.executable, "-c", CLIENT_REQUESTS, url,
                                      str(args.requests), str(args.streams),
                                      book_id.decode()]),
                ("nghttp2py.HTTP2Client", [sys.executable, "-c", CALLBACK_REQUESTS, url,
                                           str(args.requests), str(args.streams),
                                           book_id.decode()])):
            cpu = statistics.median(measure(argv)[1] for _ in range(args.rounds))
            per_request[name] = cpu / args.requests * 1e6
            rows.append((f"{args.requests} requests, {args.streams} in flight: {name}",
                         f"{per_request[name]:.1f} µs CPU per request"))
        for name in ("nghttp2py.Client", "nghttp2py.HTTP2Client"):
            ratio = per_request[name] / per_request["h2load"]
            rows.append((f"{name} CPU per request / h2load's", f"{ratio:.1f}×"))
    finally:
        server.terminate()
        server.wait(10)
    print("| measurement | result |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
