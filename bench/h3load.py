#!/usr/bin/env python3
"""An HTTP/3 load generator on aioquic, for the benchmark's HTTP/3 scenario.

Debian 12's h2load (nghttp2 1.52) is built without HTTP/3, and neither Debian
nor PyPI has another HTTP/3 load tool, so this one opens ``-c`` QUIC
connections from one process and keeps ``-m`` GET requests in flight on each
until ``-n`` are done, like ``h2load -n N -c C -m M``. It prints h2load's
summary lines (``finished in``, ``requests:``, ``traffic:``) so that the
harness reads both tools alike.

Usage: ``h3load.py PORT -n N -c C -m M [--path /hello] [--host 127.0.0.1]
[--server-name localhost] [--loop uvloop|asyncio]``. Certificates are not
verified: the server is the benchmark's own, on loopback.

Each response's work is a few aioquic calls; no per-request Python beyond
that: the request's header list is built once, new requests go out from the
event callback that finished the previous ones, and aioquic sends everything
a received datagram caused in one transmit.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import ssl
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent


class Totals:
    """What every connection shares: requests left to start, and the counts."""

    def __init__(self, n: int) -> None:
        self.to_start = n
        self.started = self.done = self.succeeded = self.failed = self.errored = 0
        self.data_bytes = 0
        self.seconds = 0.0
        self.finished = asyncio.get_running_loop().create_future()

    def end_if_done(self) -> None:
        if self.done + self.errored >= self.started and self.to_start == 0 \
                and not self.finished.done():
            self.finished.set_result(None)


class LoadClient(QuicConnectionProtocol):
    """One QUIC connection keeping its share of requests in flight."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.totals: Totals | None = None
        self.request: list[tuple[bytes, bytes]] = []
        self.status_ok: dict[int, bool] = {}

    def start(self, totals: Totals, request: list[tuple[bytes, bytes]], streams: int) -> None:
        self.totals, self.request = totals, request
        for _ in range(streams):
            self.send_request()
        self.transmit()

    def send_request(self) -> None:
        totals = self.totals
        assert totals is not None
        if totals.to_start == 0:
            return
        totals.to_start -= 1
        totals.started += 1
        stream_id = self._quic.get_next_available_stream_id()
        self.status_ok[stream_id] = False
        self.h3.send_headers(stream_id, self.request, end_stream=True)

    def quic_event_received(self, event: QuicEvent) -> None:
        totals = self.totals
        if isinstance(event, ConnectionTerminated):
            if totals is not None:
                totals.errored += len(self.status_ok)
                self.status_ok.clear()
                totals.end_if_done()
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                for name, value in h3_event.headers:
                    if name == b":status":
                        self.status_ok[h3_event.stream_id] = value[:1] in (b"2", b"3")
                        break
            elif isinstance(h3_event, DataReceived):
                assert totals is not None
                totals.data_bytes += len(h3_event.data)
            else:
                continue
            if h3_event.stream_ended and totals is not None:
                ok = self.status_ok.pop(h3_event.stream_id, False)
                totals.done += 1
                if ok:
                    totals.succeeded += 1
                else:
                    totals.failed += 1
                self.send_request()
                totals.end_if_done()


async def run(args: argparse.Namespace) -> Totals:
    """Connect, run the load, and return the counts (with ``seconds`` set)."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                      server_name=args.server_name,
                                      verify_mode=ssl.CERT_NONE)
    request = [(b":method", b"GET"), (b":scheme", b"https"),
               (b":authority", f"{args.server_name}:{args.port}".encode()),
               (b":path", args.path.encode()), (b"user-agent", b"h3load")]
    totals = Totals(args.n)
    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.wait_for(asyncio.gather(*(
            stack.enter_async_context(connect(args.host, args.port, configuration=configuration,
                                              create_protocol=LoadClient))
            for _ in range(args.c))), args.connect_timeout)
        started = time.perf_counter()
        for client in clients:
            assert isinstance(client, LoadClient)
            client.start(totals, request, args.m)
        with contextlib.suppress(asyncio.TimeoutError):  # the rest count as not done
            await asyncio.wait_for(totals.finished, args.timeout)
        totals.seconds = time.perf_counter() - started
    return totals


def summary(totals: Totals) -> str:
    """h2load's summary lines, as bench/h2load.py parses them."""
    seconds = max(totals.seconds, 1e-9)
    total = totals.started + totals.to_start
    return (f"finished in {seconds:.6f}s, {totals.done / seconds:.2f} req/s, "
            f"{totals.data_bytes / seconds / 1024:.2f}KB/s\n"
            f"requests: {total} total, {totals.started} started, {totals.done} done, "
            f"{totals.succeeded} succeeded, {totals.failed} failed, {totals.errored} errored, "
            f"0 timeout\n"
            f"traffic: {totals.data_bytes}B ({totals.data_bytes}) total, "
            f"0B (0) headers (space savings 0.00%), {totals.data_bytes}B ({totals.data_bytes}) "
            f"data\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("-n", type=int, default=1000, help="requests in all")
    parser.add_argument("-c", type=int, default=1, help="QUIC connections")
    parser.add_argument("-m", type=int, default=1, help="requests in flight per connection")
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--connect-timeout", type=float, default=10.0,
                        help="seconds for every connection's handshake")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="give up after this many seconds (the rest count as not done)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    factory = asyncio.SelectorEventLoop
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            totals = runner.run(run(args))
        except (OSError, asyncio.TimeoutError) as exc:
            print(f"h3load: {shlex.join(sys.argv)}: {exc}", file=sys.stderr)
            return 1
    sys.stdout.write(summary(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
