"""Hold many idle HTTP/2 connections open against a server.

Usage: ``idle_clients.py PORT [COUNT]``.  Each connection sends the client
preface and an empty SETTINGS frame, acknowledges the server's SETTINGS and
PINGs, and otherwise stays idle.  Prints ``READY <open>`` once every
connection has been attempted (giving up on
opening more after 60 s) and ``ALIVE <open>`` when told to stop
(SIGTERM/SIGINT or stdin closed).  Stops by itself after --max-seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, ACK = 0x4, 0x6, 0x1


def frame(kind: int, flags: int, payload: bytes = b"", stream: int = 0) -> bytes:
    """Encode one HTTP/2 frame."""
    header = len(payload).to_bytes(3, "big") + bytes((kind, flags)) + struct.pack(">I", stream)
    return header + payload


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Open one connection and send the preface + empty SETTINGS; None on failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, asyncio.TimeoutError):
        return None
    writer.write(PREFACE + frame(SETTINGS, 0))
    return reader, writer


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               alive: list[int]) -> None:
    """Answer SETTINGS/PING and otherwise stay idle until cancelled or closed by the server."""
    alive[0] += 1
    try:
        while True:
            header = await reader.readexactly(9)
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            payload = await reader.readexactly(length)
            if kind == SETTINGS and not flags & ACK:
                writer.write(frame(SETTINGS, ACK))
            elif kind == PING and not flags & ACK:
                writer.write(frame(PING, ACK, payload))
    except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass
    finally:
        alive[0] -= 1
        writer.close()


async def main(port: int, count: int, batch: int, max_seconds: float) -> None:
    """Open count connections batch by batch, report, then wait for a stop request."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read(1) or stop.set())
    alive = [0]
    tasks: list[asyncio.Task] = []
    deadline = loop.time() + 60
    for start in range(0, count, batch):
        if loop.time() > deadline:
            break
        opened = await asyncio.gather(*(connect(port) for _ in range(min(batch, count - start))))
        tasks += [loop.create_task(hold(*pair, alive)) for pair in opened if pair]
    await asyncio.sleep(0.5)
    print(f"READY {alive[0]}", flush=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    print(f"ALIVE {alive[0]}", flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int, nargs="?", default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(args.port, args.count, args.batch, args.max_seconds))
