"""Fetch the bookstore's index, then every book, multiplexed over one HTTP/2 connection.

The client of the Twisted HTTP/2 article, on nghttp2py's async client: the
index lists 3000 book ids, and all 3000 requests go out at once on one
connection (the server's SETTINGS_MAX_CONCURRENT_STREAMS at a time; the rest
wait in the client's queue), instead of one after another::

    python examples/bookstore.py &                     # serving on http://127.0.0.1:8080/
    python examples/bookstore_client.py http://127.0.0.1:8080/

Prints one line: how many books arrived, and how long it took. Exit status 1
with the error if a request failed.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

import nghttp2py
import nghttp2py.loops


async def fetch_books(url: str, cafile: str | None = None) -> list[dict]:
    """Every book of the bookstore at ``url``, in the order of its index."""
    async with nghttp2py.Client(url, cafile=cafile) as client:
        index = await (await client.get("/")).json()

        async def book(book_id: int) -> dict:
            response = await client.get(f"/book?id={book_id}")
            if response.status != 200:
                raise RuntimeError(f"book {book_id}: status {response.status}")
            return await response.json()

        return await asyncio.gather(*(book(book_id) for book_id in index))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the bookstore, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--cafile", help="trust this CA certificate (for https)")
    parser.add_argument("--loop", choices=nghttp2py.loops.LOOPS,
                        help="event loop (default: $NGHTTP2PY_LOOP, else asyncio)")
    args = parser.parse_args()
    started = time.perf_counter()
    books: list[dict] = []

    async def fetch() -> None:
        books.extend(await fetch_books(args.url, args.cafile))

    try:
        nghttp2py.loops.run(fetch(), args.loop)
    except (nghttp2py.HTTP2Error, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"fetched {len(books)} books over one HTTP/2 connection "
          f"in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
