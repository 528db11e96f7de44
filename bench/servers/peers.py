"""How to launch each benchmarked server, which transports it speaks, and on which loop."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
BENCH_PY = BENCH / ".venv" / "bin" / "python"
BENCH_BIN = BENCH / ".venv" / "bin"
SERVERS_DIR = BENCH / "servers"
ASGI_APP = "bench.servers.asgi_app:app"
WSGI_APP = "bench.servers.wsgi_app:app"
UVICORN_WSGI_APP = "bench.servers.uvicorn_wsgi:app"
HYPERCORN_CONFIG = SERVERS_DIR / "hypercorn.toml"


@dataclass(frozen=True)
class Paths:
    """Files a server may need: TLS cert/key and nghttpd's document root."""

    cert: Path
    key: Path
    htdocs: Path


@dataclass(frozen=True)
class Server:
    """One benchmarked server: a name, its event loop, its transports, its command line.

    ``loop`` is the event loop (or reactor) named on the command line; the server
    reports the class it actually runs on, and the harness refuses a mismatch.
    None for servers without a Python event loop (nghttpd).
    """

    name: str
    loop: str | None = "asyncio"
    h2c: bool = True
    tls: bool = True
    why_not: str = ""  # reason shown as "n/a" when a transport is unsupported
    http1: bool = True  # serves HTTP/1.1 over cleartext (scenarios 8 and 9)
    why_not_http1: str = "HTTP/2 only"
    upgrade: bool = False  # in the h2c upgrade scenario (12)
    ws_http1: bool = True  # serves WebSockets over HTTP/1.1 (scenario 10)
    ws_h2: bool = True  # serves WebSockets over HTTP/2 cleartext, RFC 8441 (scenario 11)
    why_not_ws: str = ""
    h3: bool = False  # serves HTTP/3 (scenario 13), on the UDP port of the TCP port's number
    why_not_h3: str = "no HTTP/3"

    @property
    def family(self) -> str:
        """The server without its loop suffix: 'granian' for 'granian-uvloop'."""
        return self.name.removesuffix("-uvloop")

    @property
    def wsgi(self) -> bool:
        """Serves the WSGI app (wsgi_app.py) rather than the ASGI one or its own."""
        return "-wsgi" in self.name

    def supports(self, tls: bool, http1: bool = False, websocket: bool = False,
                 http3: bool = False) -> bool:
        """True if the server speaks HTTP/2 (or HTTP/1.1, HTTP/3) over the given transport,
        and with websocket, serves WebSockets over it."""
        if http3:
            return self.h3
        if websocket:
            return not tls and (self.ws_http1 if http1 else self.ws_h2)
        if http1:
            return self.http1 and not tls
        return self.tls if tls else self.h2c

    def unsupported(self, tls: bool, http1: bool = False, upgrade: bool = False,
                    websocket: bool = False, http3: bool = False) -> str:
        """Why a scenario is n/a for this server ('' if it is not)."""
        if upgrade and not self.upgrade:
            return UPGRADE_WHY_NOT
        if self.supports(tls, http1, websocket, http3):
            return ""
        if http3:
            return self.why_not_h3
        if websocket:
            return self.why_not_ws
        return self.why_not_http1 if http1 else self.why_not

    def command(self, port: int, tls: bool, paths: Paths, main_python: str,
                http1: bool = False, websocket: bool = False, http3: bool = False) -> list[str]:
        """Command line (without CPU pinning) serving on 127.0.0.1:port; websocket: for the
        WebSocket scenarios (only Granian's differs: WebSockets on); http3: HTTP/3 too, on
        UDP port ``port``."""
        tls_args = ["--cert", str(paths.cert), "--key", str(paths.key)] if tls else []
        quic = ["--quic-bind", f"127.0.0.1:{port}"] if http3 else []
        if self.family == "nghttp2py":
            return [main_python, str(SERVERS_DIR / "nghttp2py_server.py"), str(port),
                    "--loop", str(self.loop), *tls_args, *(["--quic"] if http3 else [])]
        if self.family == "nghttp2py-wsgi":
            return [main_python, str(SERVERS_DIR / "nghttp2py_wsgi_server.py"), str(port),
                    "--loop", str(self.loop), *tls_args]
        if self.family in ("nghttp2py-asgi", "nghttp2py-asgi-2w"):
            # The ASGI adapter serving the app Hypercorn and Granian serve; "-2w": two
            # worker processes sharing the port.
            workers = ["--workers", "2"] if self.family.endswith("-2w") else []
            cert = ["--certfile", str(paths.cert), "--keyfile", str(paths.key)] if tls else []
            return [main_python, "-m", "nghttp2py", ASGI_APP, "--bind", f"127.0.0.1:{port}",
                    "--loop", str(self.loop), "--log-level", "warning", *workers, *cert, *quic]
        if self.family == "hypercorn":
            extra = ["--certfile", str(paths.cert), "--keyfile", str(paths.key)] if tls else []
            return [str(BENCH_BIN / "hypercorn"), "--config", str(HYPERCORN_CONFIG),
                    "--worker-class", str(self.loop), "--bind", f"127.0.0.1:{port}",
                    "--workers", "1", *extra, *quic, ASGI_APP]
        if self.family in ("granian", "granian-wsgi"):
            # Granian's own benchmark settings (1 worker, 1 runtime thread, --no-ws, but
            # --ws for the WebSocket scenarios); the default backpressure
            # (backlog/workers = 1024) caps open connections. A WSGI app runs on its
            # blocking thread, with no Python event loop.
            extra = (["--ssl-certificate", str(paths.cert), "--ssl-keyfile", str(paths.key)]
                     if tls else [])
            interface = (["--interface", "wsgi"] if self.wsgi
                         else ["--interface", "asgi", "--loop", str(self.loop)])
            return [str(BENCH_BIN / "granian"), *interface, "--http", "1" if http1 else "2",
                    "--workers", "1", "--runtime-threads", "1",
                    "--blocking-threads", "1", "--ws" if websocket else "--no-ws",
                    "--backpressure", "8192",
                    "--no-log", "--host", "127.0.0.1", "--port", str(port), *extra,
                    WSGI_APP if self.wsgi else ASGI_APP]
        if self.family in ("uvicorn", "uvicorn-wsgi"):
            # With httptools and websockets, its fastest implementations, as Uvicorn's docs
            # advise; the WSGI app through Uvicorn's own WSGI middleware (uvicorn_wsgi.py).
            return [str(BENCH_BIN / "uvicorn"), "--http", "httptools", "--ws", "websockets",
                    "--loop", str(self.loop), "--no-access-log", "--log-level", "warning",
                    "--host", "127.0.0.1", "--port", str(port),
                    UVICORN_WSGI_APP if self.wsgi else ASGI_APP]
        if self.family == "twisted":
            return [str(BENCH_PY), str(SERVERS_DIR / "twisted_server.py"), str(port), *tls_args]
        if self.family == "pynghttp2":
            return [str(BENCH_PY), str(SERVERS_DIR / "pynghttp2_server.py"), str(port),
                    "--loop", str(self.loop)]
        if self.family == "nghttpd":
            tail = [str(paths.key), str(paths.cert)] if tls else []
            return ["nghttpd", *([] if tls else ["--no-tls"]), "-n", "1", "-d", str(paths.htdocs),
                    "-a", "127.0.0.1", str(port), *tail]
        raise ValueError(f"unknown server {self.name}")

    def env(self) -> dict[str, str]:
        """Environment for the server: the repo root importable, unbuffered output."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env


REFERENCE = "nghttp2py"
REFERENCE_UVLOOP = "nghttp2py-uvloop"
TWISTED_WHY_NOT = "Twisted negotiates HTTP/2 only via TLS ALPN (no h2c prior knowledge)"
# h2load's HTTP/1 parser refuses a status line without a reason phrase.
HYPERCORN_WHY_NOT_HTTP1 = ("h2load --h1 counts its responses as failed: its status line has "
                           "no reason phrase (\"HTTP/1.1 200 \")")
UVICORN_WHY_NOT = "Uvicorn speaks HTTP/1.1 only"
# Scenario 12 compares nghttp2py with itself; nghttpd takes no h2c upgrade.
UPGRADE_WHY_NOT = "scenario 12 measures nghttp2py's own upgrade path against its prior knowledge"
# Granian 2.8 serves WebSockets over HTTP/1.1 only: over HTTP/2 its SETTINGS do not
# announce SETTINGS_ENABLE_CONNECT_PROTOCOL.
GRANIAN_WHY_NOT_WS = "Granian has no WebSockets over HTTP/2 (RFC 8441)"
WSGI_WHY_NOT_WS = "WSGI has no WebSockets"
GRANIAN_WHY_NOT_H3 = "Granian 2 has no HTTP/3"
SERVERS: list[Server] = [
    Server("nghttp2py", upgrade=True, h3=True),
    Server("nghttp2py-uvloop", loop="uvloop", upgrade=True, h3=True),
    Server("nghttp2py-asgi", h3=True),
    Server("nghttp2py-asgi-uvloop", loop="uvloop", h3=True),
    Server("nghttp2py-asgi-2w-uvloop", loop="uvloop",
           why_not_h3="--quic-bind serves from one process (no --workers)"),
    Server("nghttp2py-wsgi", ws_http1=False, ws_h2=False, why_not_ws=WSGI_WHY_NOT_WS),
    Server("nghttp2py-wsgi-uvloop", loop="uvloop", ws_http1=False, ws_h2=False,
           why_not_ws=WSGI_WHY_NOT_WS),
    Server("hypercorn", http1=False, why_not_http1=HYPERCORN_WHY_NOT_HTTP1, h3=True),
    Server("hypercorn-uvloop", loop="uvloop", http1=False,
           why_not_http1=HYPERCORN_WHY_NOT_HTTP1, h3=True),
    Server("granian", ws_h2=False, why_not_ws=GRANIAN_WHY_NOT_WS, why_not_h3=GRANIAN_WHY_NOT_H3),
    Server("granian-uvloop", loop="uvloop", ws_h2=False, why_not_ws=GRANIAN_WHY_NOT_WS,
           why_not_h3=GRANIAN_WHY_NOT_H3),
    Server("granian-wsgi", loop=None, ws_http1=False, ws_h2=False, why_not_ws=WSGI_WHY_NOT_WS),
    Server("uvicorn", h2c=False, tls=False, why_not=UVICORN_WHY_NOT, ws_h2=False,
           why_not_ws=UVICORN_WHY_NOT),
    Server("uvicorn-uvloop", loop="uvloop", h2c=False, tls=False, why_not=UVICORN_WHY_NOT,
           ws_h2=False, why_not_ws=UVICORN_WHY_NOT),
    Server("uvicorn-wsgi-uvloop", loop="uvloop", h2c=False, tls=False, why_not=UVICORN_WHY_NOT,
           ws_http1=False, ws_h2=False, why_not_ws=WSGI_WHY_NOT_WS),
    Server("twisted", loop="epollreactor", h2c=False, http1=False, why_not=TWISTED_WHY_NOT,
           ws_http1=False, ws_h2=False, why_not_ws="no WebSocket endpoint in twisted_server.py"),
    Server("pynghttp2", tls=False, http1=False, why_not="pynghttp2 0.3 has no server-side TLS",
           ws_http1=False, ws_h2=False, why_not_ws="pynghttp2 0.3 has no WebSockets"),
    Server("nghttpd", loop=None, http1=False, ws_http1=False, ws_h2=False,
           why_not_ws="nghttpd serves files, no WebSockets",
           why_not_h3="Debian 12's nghttpd (nghttp2 1.52) is built without HTTP/3"),
]


def loop_matches(expected: str, reported: str) -> bool:
    """True if the reported loop class ('uvloop.Loop') belongs to the expected loop."""
    return expected in reported.split(".")
