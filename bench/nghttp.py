"""Run nghttp clients (pinned to the client CPU) for the h2c upgrade scenario.

h2load cannot start a connection with ``Upgrade: h2c``; nghttp can (``-u``) and
repeats one request on its connection (``-m N``, as many streams in flight as
the server's SETTINGS allow). One nghttp process is one connection, so a run
starts ``connections`` of them at once. nghttp exits 0 even when requests were
left undone; it then says ``Some requests were not processed. total=N,
processed=M`` on stderr, which is where the count of done requests comes from.
A run that does not finish in time raises the harness's error for a load client
that could not run (h2load.H2loadError).
"""
from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import dataclass

from h2load import H2LOAD_CPU, H2loadError

_NOT_PROCESSED = re.compile(r"Some requests were not processed\. total=(\d+), processed=(\d+)")


@dataclass
class NghttpResult:
    """One run of ``connections`` nghttp processes."""

    command: list[str]
    connections: int
    seconds: float
    total: int
    done: int

    @property
    def unsuccessful(self) -> int:
        """Requests that were not done (the server closed, or nghttp failed)."""
        return self.total - self.done

    @property
    def req_per_s(self) -> float:
        """Requests done per second of the run's wall time."""
        return self.done / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        """JSON-friendly numbers."""
        return {"command": self.command, "connections": self.connections,
                "seconds": self.seconds, "total": self.total, "done": self.done,
                "req_per_s": self.req_per_s}


def build_command(url: str, requests: int, upgrade: bool) -> list[str]:
    """One connection's nghttp command line: ``requests`` GETs of url, after an upgrade."""
    return ["taskset", "-c", H2LOAD_CPU, "nghttp", "-n", *(["-u"] if upgrade else []),
            "-m", str(requests), url]


def run(command: list[str], connections: int, timeout: float) -> NghttpResult:
    """Run ``connections`` copies of command at once; wait for all (bounded by timeout)."""
    started = time.monotonic()
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(connections)]
    each = int(command[command.index("-m") + 1])
    done = 0
    try:
        for process in processes:
            remaining = max(0.1, timeout - (time.monotonic() - started))
            _, stderr = process.communicate(timeout=remaining)
            left = _NOT_PROCESSED.search(stderr)
            if left:
                done += int(left.group(2))
            elif process.returncode == 0:
                done += each
    except subprocess.TimeoutExpired as exc:
        raise H2loadError(f"nghttp timed out after {timeout:.0f}s: {shlex.join(command)}") from exc
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return NghttpResult(command=command, connections=connections,
                        seconds=time.monotonic() - started, total=each * connections, done=done)
