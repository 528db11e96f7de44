#!/usr/bin/env python3
"""Where an HTTP/3 server's CPU time goes: cProfile under bench/h3load.py's load.

Usage: ``python bench/h3profile.py nghttp2py|nghttp2py-asgi|hypercorn [-n 4000]``
(the main ``.venv``, with aioquic and Hypercorn installed, and nghttp2py's HTTP/3
engine for its two).

The server runs in a child process pinned to CPU 0, in-process (Hypercorn's
``serve()`` too, so that no worker process escapes the profile), serving the
benchmark's app: ``bench/servers/nghttp2py_server.py``'s handler, or
``bench/servers/asgi_app.py`` for the ASGI servers. The profiler uses a CPU-time
clock, so waiting in epoll costs nothing, and is switched on after a warm-up
(SIGUSR1) and dumped at the end (SIGINT). The self time of every function is then
summed by where the code lives, a builtin's (``len``, ``Buffer.tell``...) and a
standard-library helper's (``enum``, ``contextlib``, ``logging``) going to its
callers. cProfile slows pure-Python code down several times more than C code,
so the shares are what to read, not the µs.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import pstats
import signal
import ssl
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(BENCH / "servers"), str(REPO)]

KINDS = ("nghttp2py", "nghttp2py-asgi", "hypercorn")

# (group, test on "file:function"), first match wins.
GROUPS = (
    ("aioquic: packet protection (AEAD, header protection)",
     ("aioquic/_crypto", "aioquic/quic/crypto", "cryptography", "aioquic._crypto")),
    ("aioquic: HTTP/3 framing and QPACK", ("aioquic/h3/", "pylsqpack")),
    ("aioquic: QUIC (packets, frames, ACKs and loss recovery, stream buffers)",
     ("aioquic/quic/", "aioquic/tls", "aioquic/buffer", "aioquic._buffer")),
    ("aioquic: asyncio glue", ("aioquic/asyncio/",)),
    ("Hypercorn: HTTP/3 and ASGI layers", ("hypercorn/",)),
    ("nghttp2py: QUIC listener and HTTP/3 protocol (quic.py, engine)",
     ("nghttp2py/", "nghttp2py._nghttp2")),
    ("the app", ("bench/servers/",)),
    ("asyncio loop, selector, UDP syscalls",
     ("asyncio/", "selectors", "uvloop", "recvfrom", "sendto", "sendmsg", "recvmsg", "poll")),
)
OTHER = "other"
# Standard-library helpers whose time belongs to their callers (builtins too).
HELPERS = ("/enum.py", "/contextlib.py", "/logging/", "/functools.py", "/typing.py",
           "/dataclasses.py", "/abc.py")


def is_helper(file: str) -> bool:
    return file == "~" or any(helper in file for helper in HELPERS)


def group_of(file: str, name: str) -> str:
    where = f"{file}:{name}"
    for group, needles in GROUPS:
        if any(needle in where for needle in needles):
            return group
    return OTHER


def breakdown(stats_file: Path, requests: int) -> str:
    """The profile's self time by group, and the functions that cost most."""
    stats = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]
    groups: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()

    def charge(key: tuple[str, int, str], seconds: float, label: str, depth: int = 0) -> None:
        """``seconds`` spent in ``label``, to ``key``'s group or, for a helper, its callers'."""
        file, _line, name = key
        group = group_of(file, name)
        callers = stats.get(key, (0, 0, 0.0, 0.0, {}))[4]
        if group == OTHER and is_helper(file) and callers and depth < 4:
            spent = sum(numbers[2] for numbers in callers.values()) or 1.0
            for caller, numbers in callers.items():
                charge(caller, seconds * numbers[2] / spent, label, depth + 1)
            return
        groups[group] += seconds
        functions[label] += seconds

    for key, (_cc, _nc, own_time, _ct, _callers) in stats.items():
        file, line, name = key
        charge(key, own_time, f"{file.split('site-packages/')[-1]}:{line}({name})")
    total = sum(groups.values())
    lines = [f"CPU time under the profiler: {total:.2f} s for {requests} requests "
             f"({total / requests * 1e6:.0f} µs/request with cProfile's overhead)", "",
             "| where | share |", "|---|---:|"]
    lines += [f"| {group} | {seconds / total * 100:.1f} % |"
              for group, seconds in groups.most_common()]
    lines += ["", "Functions with the most self time:", ""]
    lines += [f"  {seconds / total * 100:5.1f} %  {function}"
              for function, seconds in functions.most_common(15)]
    return "\n".join(lines)


# -- the server side (child process) ------------------------------------------------


def serve(kind: str, port: int, cert: str, key: str, out: Path) -> None:
    """Serve ``kind`` on TCP and UDP ``port``; profile between SIGUSR1 and SIGINT."""
    profile = cProfile.Profile(time.process_time)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, profile.enable)
        if kind == "hypercorn":
            from hypercorn.asyncio import serve as hypercorn_serve
            from hypercorn.config import Config

            from bench.servers.asgi_app import app
            config = Config()
            config.bind, config.quic_bind = [f"127.0.0.1:{port}"], [f"127.0.0.1:{port}"]
            config.certfile, config.keyfile = cert, key
            config.keep_alive_max_requests = 2**31
            await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
            return
        import nghttp2py
        quic = {"quic_bind": [("127.0.0.1", port)], "quic_certfile": cert, "quic_keyfile": key}
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        server: object
        if kind == "nghttp2py":
            from nghttp2py_server import Handler
            server = nghttp2py.HTTP2Server(("127.0.0.1", port), Handler, ssl=tls, **quic)
        else:
            from bench.servers.asgi_app import app
            server = nghttp2py.AppServer(app, [f"127.0.0.1:{port}"], interface="asgi", ssl=tls,
                                         **quic)
        await server.start()  # type: ignore[attr-defined]
        await stop.wait()
        server.close()  # type: ignore[attr-defined]
        await server.wait_closed()  # type: ignore[attr-defined]

    try:
        asyncio.run(main())
    finally:
        profile.disable()
        profile.dump_stats(str(out))


# -- the driver --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("-n", type=int, default=4000, help="profiled requests")
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "CERT", "KEY", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, cert, key, out = args.serve
        serve(args.kind, int(port), cert, key, Path(out))
        return 0

    import h2load
    from run import ensure_files
    from scenarios import h3load_command, wait_h3_ready
    from serverproc import ServerProcess, free_port

    paths, _ = ensure_files()
    port = free_port()
    out = BENCH / "results" / "raw" / f"h3profile-{args.kind}.prof"
    command = [sys.executable, str(Path(__file__)), args.kind, "--serve", str(port),
               str(paths.cert), str(paths.key), str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    with ServerProcess(command, env, out.with_suffix(".log"), REPO) as server:
        server.wait_ready(port, tls=True)
        wait_h3_ready(port)
        h2load.run(h3load_command(port, 500, 10, 10), 300)  # warm-up, not profiled
        assert server.proc is not None
        server.proc.send_signal(signal.SIGUSR1)
        result = h2load.run(h3load_command(port, args.n, 10, 10), 600)
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(30)
    print(f"{args.kind}: {result.succeeded} of {result.total} requests succeeded, "
          f"{result.req_per_s:.0f} req/s under the profiler")
    print(breakdown(out, result.done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
