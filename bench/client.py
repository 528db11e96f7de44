"""The client's benchmark: the bookstore's 3000 books, and CPU per request against h2load.

Against examples/bookstore.py (one server process, pinned to CPU 0, on the
event loop named by ``--server-loop``; every client pinned to CPU 1):

1. Wall time of a whole client process fetching the index and the 3000
   books, start-up included: examples/bookstore_client.py (nghttp2py.Client,
   multiplexed on one HTTP/2 connection), the same program on httpx
   (``http2=True``, prior knowledge: ``http1=False``), and a sequential
   HTTP/1.1 client like the one of seed 002 (``http.client``, one keep-alive
   connection, one request after the other).
2. CPU time (user + system, start-up included) per request of a whole
   process making ``--requests`` requests with 100 streams in flight on one
   connection: h2load, nghttp2py's Client (async/await) and HTTP2Client
   (callbacks), on each event loop of ``--loops``. Each round runs h2load
   and then every client, and a client's ratio to h2load is the median of
   its rounds' ratios.

Every Python client runs on the loop its row names (nghttp2py.loops.run) and
reports the loop class it ran on; the run stops if that is not the loop
named. ``python bench/client.py`` prints a Markdown report; bench/run.py
runs it as the "client" part of ``make bench`` (``--quick``: one round of
20,000 requests, in ``make bench-quick``).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from h2load import H2LOAD_CPU  # noqa: E402 (bench/ is put on the path above)
from servers.common import LOOP_LINE  # noqa: E402
from servers.peers import loop_matches  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
BOOKS = 3000
# The clients' modules are byte-compiled once (the warm-up run), as an
# installed package's are: PYTHONDONTWRITEBYTECODE would have every measured
# process compile nghttp2py's sources again.
ENV = dict({k: v for k, v in os.environ.items()
            if not k.lower().endswith("_proxy") and k != "PYTHONDONTWRITEBYTECODE"},
           PYTHONPATH=str(ROOT))

# Each Python client names the loop it ran on, like the benchmark servers do.
_REPORT_LOOP = (f"print({LOOP_LINE!r}, type(asyncio.get_running_loop()).__module__ + '.' + "
                "type(asyncio.get_running_loop()).__qualname__, file=sys.stderr)")

HTTPX_BOOKS = f"""
import asyncio, sys, httpx, nghttp2py.loops
async def main(url):
    {_REPORT_LOOP}
    async with httpx.AsyncClient(http1=False, http2=True, base_url=url) as client:
        index = (await client.get("/")).json()
        async def book(i):
            return (await client.get(f"/book?id={{i}}")).json()
        books = await asyncio.gather(*(book(i) for i in index))
    assert len(books) == {BOOKS}
nghttp2py.loops.run(main(sys.argv[1]), sys.argv[2])
"""

# Seed 002's HTTP/1.1 client, on the standard library: one keep-alive
# connection, each request sent once the previous response is read.
SEQUENTIAL_BOOKS = f"""
import http.client, json, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
connection = http.client.HTTPConnection(url.hostname, url.port)
def get(path):
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, response.status
    return json.loads(body)
index = get("/")
books = [get(f"/book?id={{book_id}}") for book_id in index]
assert len(books) == {BOOKS}
"""

CLIENT_REQUESTS = f"""
import asyncio, sys, nghttp2py, nghttp2py.loops
async def main(url, total, streams, path):
    {_REPORT_LOOP}
    async with nghttp2py.Client(url) as client:
        async def worker(n):
            for _ in range(n):
                response = await client.get(path)
                await response.read()
        await asyncio.gather(*(worker(total // streams) for _ in range(streams)))
nghttp2py.loops.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]),
                    sys.argv[5])
"""

CALLBACK_REQUESTS = f"""
import asyncio, sys, urllib.parse, nghttp2py, nghttp2py.loops
async def main(url, total, streams, path):
    {_REPORT_LOOP}
    parts = urllib.parse.urlsplit(url)
    client = nghttp2py.HTTP2Client((parts.hostname, parts.port))
    done = asyncio.get_running_loop().create_future()
    counts = {{"sent": 0, "closed": 0}}

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
nghttp2py.loops.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]),
                    sys.argv[5])
"""


class LoopMismatch(RuntimeError):
    """A client ran on another event loop than its row names: the run is void."""


@dataclass
class Row:
    """One measurement: ``value`` in ``unit``, the median of ``rounds``."""

    measurement: str
    loop: str  # the loop the client ran on ("—" for h2load and the synchronous client)
    value: float
    unit: str
    rounds: list[float] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


@dataclass
class ClientResults:
    """Every row, the ratios to h2load's CPU per request, and the run's settings."""

    rows: list[Row]
    ratios: dict[str, float]
    settings: dict[str, object]


def start_bookstore(loop: str) -> tuple[subprocess.Popen[str], str]:
    """examples/bookstore.py on a free port, pinned to the server CPU; returns it and its URL."""
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, sys.executable, str(ROOT / "examples" / "bookstore.py"),
         "--bind", "127.0.0.1:0", "--loop", loop, "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, text=True)
    assert process.stdout is not None
    match = re.match(r"serving on (\S+) ", process.stdout.readline())
    if match is None:
        process.kill()
        raise RuntimeError("the bookstore did not start")
    return process, match.group(1)


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client(argv: list[str], loop: str | None) -> tuple[float, float]:
    """Wall and CPU seconds of running ``argv`` pinned to the client CPU (it must succeed).

    With ``loop``, the process must report running on that event loop.
    """
    command = ["taskset", "-c", H2LOAD_CPU, *argv]
    cpu, started = _child_cpu(), time.perf_counter()
    process = subprocess.run(command, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, timeout=600, check=False)
    wall, cpu = time.perf_counter() - started, _child_cpu() - cpu
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed: {process.stderr.strip()[-500:]}")
    if loop is not None:
        reported = next((line.split(None, 1)[1] for line in process.stderr.splitlines()
                         if line.startswith(LOOP_LINE)), "")
        if not loop_matches(loop, reported):
            raise LoopMismatch(f"a client must run on {loop} but reports "
                               f"{reported or 'no event loop'}")
    return wall, cpu


def _median_wall(argv: list[str], loop: str | None, rounds: int) -> tuple[float, list]:
    """The median wall seconds of ``rounds`` runs, and each of them."""
    values = [run_client(argv, loop)[0] for _ in range(rounds)]
    return statistics.median(values), values


def warm_up(loops: tuple[str, ...]) -> None:
    """Import every client's modules once, so that they are byte-compiled and cached."""
    modules = ["nghttp2py.client", "nghttp2py.loops", "httpx", "h2", "http.client", "json",
               *(loop for loop in loops if loop != "asyncio")]
    subprocess.run([sys.executable, "-c", f"import {', '.join(modules)}"], env=ENV, check=True,
                   timeout=120)


def measure(requests: int = 100_000, streams: int = 100, rounds: int = 3,
            loops: tuple[str, ...] = ("asyncio", "uvloop"),
            server_loop: str = "asyncio", books: bool = True) -> ClientResults:
    """Run every client against one bookstore and return the rows (``books``: part 1 too)."""
    python = sys.executable
    warm_up(loops)
    server, url = start_bookstore(server_loop)
    rows: list[Row] = []
    ratios: dict[str, float] = {}
    try:
        books_loop = loops[0]
        # (row, its loop, the command, the loop the process must report: the
        # example does not report one, it runs on the loop its --loop names).
        for name, loop, argv, reported in () if not books else (
                ("3000 books: nghttp2py.Client (examples/bookstore_client.py), HTTP/2",
                 books_loop, [python, str(ROOT / "examples" / "bookstore_client.py"), url,
                              "--loop", books_loop], None),
                ("3000 books: httpx (http2=True), HTTP/2", books_loop,
                 [python, "-c", HTTPX_BOOKS, url, books_loop], books_loop),
                ("3000 books: sequential HTTP/1.1 (http.client, keep-alive)", "—",
                 [python, "-c", SEQUENTIAL_BOOKS, url], None)):
            wall, values = _median_wall(argv, reported, rounds)
            rows.append(Row(name, loop, wall, "s wall", values, argv[:2]))
        book = f"/book?id={_first_book(url)}"
        h2load_argv = ["h2load", "-n", str(requests), "-c", "1", "-m", str(streams), url + book[1:]]
        clients = [(f"{name} on {loop}", name, loop,
                    [python, "-c", script, url, str(requests), str(streams), book, loop])
                   for loop in loops
                   for name, script in (("nghttp2py.Client", CLIENT_REQUESTS),
                                        ("nghttp2py.HTTP2Client", CALLBACK_REQUESTS))]
        # Rounds interleave h2load and every client, and each client's ratio is
        # the median of its ratios to h2load in the same round: the machine's
        # speed drifts between rounds more than within one.
        h2load_cpu: list[float] = []
        client_cpu: dict[str, list[float]] = {key: [] for key, *_ in clients}
        for _ in range(rounds):
            h2load_cpu.append(run_client(h2load_argv, None)[1])
            for key, _name, loop, argv in clients:
                client_cpu[key].append(run_client(argv, loop)[1])
        h2load_us = statistics.median(h2load_cpu) / requests * 1e6
        rows.append(Row(f"{requests:,} requests, {streams} in flight: h2load", "—", h2load_us,
                        "µs CPU/request", h2load_cpu, h2load_argv))
        for key, name, loop, _argv in clients:
            us = statistics.median(client_cpu[key]) / requests * 1e6
            rows.append(Row(f"{requests:,} requests, {streams} in flight: {name}", loop,
                            us, "µs CPU/request", client_cpu[key], [python, "-c", name]))
            ratios[key] = statistics.median(
                cpu / base for cpu, base in zip(client_cpu[key], h2load_cpu))
    finally:
        server.terminate()
        server.wait(10)
    return ClientResults(rows, ratios, {"requests": requests, "streams": streams,
                                        "rounds": rounds, "loops": list(loops),
                                        "server_loop": server_loop, "books": books})


def _first_book(url: str) -> str:
    """The id of the bookstore's first book."""
    index = subprocess.run([sys.executable, "-m", "nghttp2py.client", url], check=True,
                           capture_output=True, env=ENV, timeout=60).stdout
    return index.split(b",")[0].strip(b"[ ").decode()


def targets(results: ClientResults) -> list[tuple[str, bool | None]]:
    """Issue 10's targets for the client, each with its verdict (None: not measured)."""
    walls = {row.measurement: row.value for row in results.rows if row.unit == "s wall"}
    ours = next((v for k, v in walls.items() if "nghttp2py" in k), None)
    httpx = next((v for k, v in walls.items() if "httpx" in k), None)
    verdicts: list[tuple[str, bool | None]] = [
        ("3000 books >= 10x faster than httpx's HTTP/2 client (whole process)",
         None if ours is None or httpx is None else httpx >= 10 * ours)]
    for name, ratio in results.ratios.items():
        verdicts.append((f"{name}: CPU per request <= 3x h2load's ({ratio:.1f}x)", ratio <= 3))
    return verdicts


def markdown(results: ClientResults) -> str:
    """The client's part of the report: one table, the ratios and the targets."""
    settings = results.settings
    lines = ["### Client (bench/client.py)", "",
             (f"examples/bookstore.py on `{settings['server_loop']}` pinned to CPU {SERVER_CPU}, "
              f"each client pinned to CPU {H2LOAD_CPU}; whole processes, start-up included; "
              f"median of {settings['rounds']} round(s), each running h2load and every client "
              "in turn (a ratio is the median of the rounds' ratios)."), "",
             "| measurement | client loop | result |", "| --- | --- | --- |"]
    for row in results.rows:
        value = f"{row.value:.3f}" if row.unit == "s wall" else f"{row.value:.2f}"
        lines.append(f"| {row.measurement} | {row.loop} | {value} {row.unit} |")
    for name, ratio in results.ratios.items():
        lines.append(f"| {name}: CPU per request / h2load's | {name.rsplit(' ', 1)[1]} "
                     f"| {ratio:.2f}x |")
    lines += ["", "Targets:", ""]
    lines += [f"- {'[x]' if ok else '[ ]'} {text}" + (" _(not measured)_" if ok is None else "")
              for text, ok in targets(results)]
    return "\n".join(lines) + "\n"


def record(results: ClientResults) -> dict:
    """JSON-ready form of the results."""
    return asdict(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop",
                        help="comma-separated event loops of the Python clients")
    parser.add_argument("--server-loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--quick", action="store_true",
                        help="one round of 20,000 requests")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds = 20_000, 1
    try:
        results = measure(args.requests, args.streams, args.rounds,
                          tuple(args.loops.split(",")), args.server_loop)
    except LoopMismatch as exc:
        print(f"ERROR: {exc}; no result", file=sys.stderr)
        return 2
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
