"""How to launch each benchmarked server, and which transports it speaks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
BENCH_PY = BENCH / ".venv" / "bin" / "python"
BENCH_BIN = BENCH / ".venv" / "bin"
ASGI_APP = "bench.servers.asgi_app:app"


@dataclass(frozen=True)
class Paths:
    """Files a server may need: TLS cert/key and nghttpd's document root."""

    cert: Path
    key: Path
    htdocs: Path


@dataclass(frozen=True)
class Server:
    """One benchmarked server: a name, its transports, and its command line."""

    name: str
    h2c: bool = True
    tls: bool = True
    why_not: str = ""  # reason shown as "n/a" when a transport is unsupported
    http1: bool = True  # serves HTTP/1.1 over cleartext (the HTTP/1.1 scenarios)
    why_not_http1: str = "HTTP/2 only"

    def supports(self, tls: bool, http1: bool = False) -> bool:
        """True if the server speaks HTTP/2 (or HTTP/1.1) over the given transport."""
        if http1:
            return self.http1 and not tls
        return self.tls if tls else self.h2c

    def unsupported(self, tls: bool, http1: bool = False) -> str:
        """Why a scenario is n/a for this server ('' if it is not)."""
        if self.supports(tls, http1):
            return ""
        return self.why_not_http1 if http1 else self.why_not

    def command(self, port: int, tls: bool, paths: Paths, main_python: str,
                http1: bool = False) -> list[str]:
        """Command line (without CPU pinning) serving on 127.0.0.1:port."""
        tls_args = ["--cert", str(paths.cert), "--key", str(paths.key)] if tls else []
        ours = str(BENCH / "servers" / "nghttp2py_server.py")
        if self.name == "nghttp2py":
            return [main_python, ours, str(port), "--loop", "asyncio", *tls_args]
        if self.name == "nghttp2py-uvloop":
            return [main_python, ours, str(port), "--loop", "uvloop", *tls_args]
        if self.name == "hypercorn":
            extra = ["--certfile", str(paths.cert), "--keyfile", str(paths.key)] if tls else []
            return [str(BENCH_BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
                    *extra, ASGI_APP]
        if self.name == "granian":  # default backpressure (1024) caps open connections
            extra = (["--ssl-certificate", str(paths.cert), "--ssl-keyfile", str(paths.key)]
                     if tls else [])
            return [str(BENCH_BIN / "granian"), "--interface", "asgi",
                    "--http", "1" if http1 else "2",
                    "--workers", "1", "--runtime-threads", "1", "--blocking-threads", "1",
                    "--backpressure", "8192", "--no-log", "--host", "127.0.0.1",
                    "--port", str(port), *extra, ASGI_APP]
        if self.name == "uvicorn":  # its fastest setup: httptools and uvloop
            return [str(BENCH_BIN / "uvicorn"), "--http", "httptools", "--loop", "uvloop",
                    "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1",
                    "--port", str(port), ASGI_APP]
        if self.name == "twisted":
            return [str(BENCH_PY), str(BENCH / "servers" / "twisted_server.py"), str(port),
                    *tls_args]
        if self.name == "pynghttp2":
            return [str(BENCH_PY), str(BENCH / "servers" / "pynghttp2_server.py"), str(port)]
        if self.name == "nghttpd":
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
SERVERS: list[Server] = [
    Server("nghttp2py"),
    Server("nghttp2py-uvloop"),
    Server("hypercorn", http1=False,
           why_not_http1="h2load --h1 counts Hypercorn's responses as failed: its status line "
                         "has no reason phrase (\"HTTP/1.1 200 \")"),
    Server("granian"),
    Server("uvicorn", h2c=False, tls=False, why_not="Uvicorn speaks HTTP/1.1 only"),
    Server("twisted", h2c=False, http1=False,
           why_not="Twisted negotiates HTTP/2 only via TLS ALPN (no h2c prior knowledge)"),
    Server("pynghttp2", tls=False, http1=False,
           why_not="pynghttp2 0.3 has no server-side TLS"),
    Server("nghttpd", http1=False),
]
