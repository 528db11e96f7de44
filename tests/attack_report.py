"""Run the attacks of test_attacks.py against nghttp2py and against nghttpd (Debian's
nghttp2-server), each next to the honest client, and print SECURITY.md's table.

    PYTHONPATH=.:tests .venv/bin/python tests/attack_report.py [idle]

Not a test: it measures and prints, and asserts nothing.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attacks import ATTACKS, AttackServer, HonestClient, attack, rapid_reset


class Nghttpd:
    """nghttpd serving an ``index.html`` over h2c on a free port."""

    def __init__(self, directory: Path) -> None:
        (directory / "index.html").write_bytes(b"ok\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [shutil.which("nghttpd") or "nghttpd", "--no-tls", "-d", str(directory),
             "--address=127.0.0.1", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


def measure(server, build) -> str:
    setup, flood, settle = build()
    honest = HonestClient(server.port)
    rss_before = server.rss_kib()
    try:
        result = attack(server.port, setup, flood, settle=settle)
        stats = honest.finish()
    finally:
        honest.kill()
    if result.goaway is not None:
        from nghttp2py import ErrorCode

        answer = (f"GOAWAY {ErrorCode(result.goaway.error_code).name} "
                  f"after {result.goaway_after * 1000:.1f} ms")
    elif result.closed:
        answer = "closed, no GOAWAY"
    else:
        answer = "none in 10 s"
    return (f"{answer} | {stats['max_ms']:.1f} / {stats['p99_ms']:.1f} ms"
            f"{' (' + stats['error'] + ')' if stats['error'] else ''} | "
            f"{(server.rss_kib() - rss_before) / 1024:+.1f} MiB")


def idle_waves(server, count: int = 10_000, waves: int = 2) -> str:
    """``count`` idle connections opened, then closed, ``waves`` times, next to the
    honest client; its slowest response while they open and while they close."""
    from test_attacks import open_idle_connections

    honest = HonestClient(server.port)
    rss = [server.rss_kib()]
    try:
        for _ in range(waves):
            sockets = open_idle_connections(server.port, count)
            rss.append(server.rss_kib())
            for sock in sockets:
                sock.close()
            time.sleep(1.5)
            rss.append(server.rss_kib())
        stats = honest.finish()
    finally:
        honest.kill()
    return (f"{waves} x {count} idle connections | {stats['max_ms']:.1f} / "
            f"{stats['p99_ms']:.1f} ms{' (' + stats['error'] + ')' if stats['error'] else ''} | "
            + " -> ".join(f"{kib / 1024:.0f}" for kib in rss) + " MiB")


def main() -> None:
    """Every attack, or with ``idle`` as the argument the idle-connection waves."""
    builds = dict(ATTACKS, **{"rapid-reset": rapid_reset})
    idle = sys.argv[1:] == ["idle"]
    print("| attack | server | answer to the attacker | honest client max / p99 | RSS |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in ({"idle": None} if idle else builds).items():
            for label in ("nghttp2py", "nghttpd"):
                server = AttackServer(Path(tmp)) if label == "nghttp2py" else Nghttpd(Path(tmp))
                try:
                    row = idle_waves(server) if build is None else measure(server, build)
                    print(f"| {name} | {label} | {row} |", flush=True)
                finally:
                    server.stop()


if __name__ == "__main__":
    sys.exit(main())
