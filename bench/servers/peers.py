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
WSGI_APP = "bench.servers.wsgi_app:app"


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

    def supports(self, tls: bool) -> bool:
        """True if the server speaks HTTP/2 over the given transport."""
        return self.tls if tls else self.h2c

    def command(self, port: int, tls: bool, paths: Paths, main_python: str) -> list[str]:
        """Command line (without CPU pinning) serving on 127.0.0.1:port."""
        tls_args = ["--cert", str(paths.cert), "--key", str(paths.key)] if tls else []
        ours = str(BENCH / "servers" / "nghttp2py_server.py")
        if self.name == "nghttp2py":
            return [main_python, ours, str(port), "--loop", "asyncio", *tls_args]
        if self.name == "nghttp2py-uvloop":
            return [main_python, ours, str(port), "--loop", "uvloop", *tls_args]
        if self.name.startswith(("nghttp2py-asgi", "nghttp2py-wsgi")):
            # The app adapters, on uvloop; "-2w": two worker processes.
            app = ASGI_APP if "asgi" in self.name else WSGI_APP
            workers = ["--workers", "2"] if self.name.endswith("-2w") else []
            cert = ["--certfile", str(paths.cert), "--keyfile", str(paths.key)] if tls else []
            return [main_python, "-m", "nghttp2py", app, "--bind", f"127.0.0.1:{port}",
                    "--loop", "uvloop", "--log-level", "warning", *workers, *cert]
        if self.name == "hypercorn":
            extra = ["--certfile", str(paths.cert), "--keyfile", str(paths.key)] if tls else []
            return [str(BENCH_BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
                    *extra, ASGI_APP]
        if self.name == "granian":  # default backpressure (1024) caps open connections
            extra = (["--ssl-certificate", str(paths.cert), "--ssl-keyfile", str(paths.key)]
                     if tls else [])
            return [str(BENCH_BIN / "granian"), "--interface", "asgi", "--http", "2",
                    "--workers", "1", "--runtime-threads", "1", "--blocking-threads", "1",
                    "--backpressure", "8192", "--no-log", "--host", "127.0.0.1",
                    "--port", str(port), *extra, ASGI_APP]
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
    Server("nghttp2py-asgi"),
    Server("nghttp2py-asgi-2w"),
    Server("nghttp2py-wsgi"),
    Server("hypercorn"),
    Server("granian"),
    Server("twisted", h2c=False,
           why_not="Twisted negotiates HTTP/2 only via TLS ALPN (no h2c prior knowledge)"),
    Server("pynghttp2", tls=False, why_not="pynghttp2 0.3 has no server-side TLS"),
    Server("nghttpd"),
]
