"""``python -m nghttp2py.client URL...``: fetch URLs over one HTTP/2 connection.

In the spirit of ``nghttp``: the bodies go to stdout, in the order of the
URLs, all fetched at once (multiplexed; every URL must be on the same
origin). ``-v`` prints each request's and response's header fields to stderr,
prefixed with the stream id; ``-d FILE`` sends FILE as the body of a POST
(``-d -``: standard input); ``-H 'name: value'`` adds a header field;
``--cafile`` trusts one CA (a self-signed test certificate). Exit status 0
once every response has arrived whole (whatever its status), 1 with one line
on stderr otherwise (refused, TLS, no h2, reset, GOAWAY, timeout).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator, Sequence

from .. import loops
from .aio import Client, Response, Timeout
from .connection import Origin, path_of
from .errors import ClientError

__all__ = ["main"]


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'name: value'")
    return name.strip().lower(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nghttp2py.client",
        description="Fetch URLs over one HTTP/2 connection; bodies go to stdout.")
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// (prior knowledge) or "
                        "https:// (TLS, ALPN h2) URLs, all on one origin")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the header fields sent and received to stderr")
    parser.add_argument("-d", "--data", metavar="FILE",
                        help="POST the contents of FILE ('-' for standard input)")
    parser.add_argument("-H", "--header", action="append", type=_header, default=[],
                        metavar="'NAME: VALUE'", help="add a request header field (repeatable)")
    parser.add_argument("-m", "--method", help="the request method (default: GET, or POST "
                        "with -d)")
    parser.add_argument("--cafile", help="trust the CA certificate(s) in this PEM file")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="connect and read timeout (default: 30)")
    parser.add_argument("--loop", choices=loops.LOOPS, help="the event loop")
    return parser


def _print_headers(stream_id: int, fields: Sequence[tuple[str, str]]) -> None:
    for name, value in fields:
        print(f"[{stream_id:>3}] {name}: {value}", file=sys.stderr)


async def _fetch(args: argparse.Namespace, origin: Origin, body: object,
                 status: list[int]) -> None:
    method = args.method or ("POST" if body is not None else "GET")
    async with Client(str(origin), cafile=args.cafile if origin.scheme == "https" else None,
                      timeout=Timeout.of(args.timeout)) as client:
        requests = [client.request(method, path_of(url, origin), headers=args.header,
                                   body=body if index == 0 else None)
                    for index, url in enumerate(args.urls)]
        for response in await asyncio.gather(*requests):
            await _output(args, response)
    status[0] = 0


async def _output(args: argparse.Namespace, response: Response) -> None:
    if args.verbose:
        print(f"[{response.stream_id:>3}] {response.method} {response.url}", file=sys.stderr)
        _print_headers(response.stream_id, [(":status", str(response.status))])
        _print_headers(response.stream_id, list(_pairs(response.headers.raw)))
    async for chunk in response.stream():
        sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    if args.verbose:
        _print_headers(response.stream_id, list(_pairs(response.trailers.raw)))
        print(f"[{response.stream_id:>3}] END_STREAM", file=sys.stderr)


def _pairs(raw: list[tuple[bytes, bytes]]) -> Iterator[tuple[str, str]]:
    for name, value in raw:
        yield name.decode("latin-1"), value.decode("latin-1")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        origins = {Origin.from_url(url) for url in args.urls}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if len(origins) != 1:
        print("error: every URL must be on one origin (one connection)", file=sys.stderr)
        return 1
    status = [1]
    try:
        # A file body is read as the window allows, and closed with its stream.
        body = (None if args.data is None else sys.stdin.buffer.read() if args.data == "-"
                else open(args.data, "rb"))  # noqa: SIM115
        loops.run(_fetch(args, origins.pop(), body, status), args.loop)
    except (ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return status[0]
