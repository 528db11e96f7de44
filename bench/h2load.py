"""Run h2load (pinned to one CPU) and parse its summary."""
from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field

H2LOAD_CPU = "1"

_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout")
_DATA = re.compile(r"traffic: .*?, [\d.]+\w*B \((\d+)\) data")
_TIME_FOR_REQUEST = re.compile(
    r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


class H2loadError(RuntimeError):
    """h2load did not run or printed no summary."""


@dataclass
class H2loadResult:
    """Numbers from one h2load run."""

    command: list[str]
    seconds: float
    req_per_s: float
    total: int
    done: int
    succeeded: int
    failed: int
    errored: int
    data_bytes: int
    latency_mean_ms: float | None = None
    latency_max_ms: float | None = None
    latency_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def unsuccessful(self) -> int:
        """Requests of the run that did not get a 2xx/3xx answer (failed, errored, not done)."""
        return self.total - self.succeeded

    @property
    def mib_per_s(self) -> float:
        """Response body throughput in MiB/s."""
        return self.data_bytes / self.seconds / (1 << 20) if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float | None:
        """Latency percentile q (0..100) from the per-request log, if recorded."""
        if not self.latency_ms:
            return None
        ordered = sorted(self.latency_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict:
        """JSON-friendly numbers (per-request latencies reduced to percentiles)."""
        out = asdict(self)
        del out["latency_ms"]
        out["mib_per_s"] = self.mib_per_s
        out["latency_p50_ms"] = self.percentile_ms(50)
        out["latency_p99_ms"] = self.percentile_ms(99)
        return out


def build_command(url: str, n: int, c: int, m: int, extra: list[str] | None = None) -> list[str]:
    """h2load command line pinned to the client CPU."""
    return ["taskset", "-c", H2LOAD_CPU, "h2load", "-n", str(n), "-c", str(c), "-m", str(m),
            *(extra or []), url]


def parse(command: list[str], output: str) -> H2loadResult:
    """Parse h2load's stdout into an H2loadResult."""
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    if not finished or not requests:
        raise H2loadError(f"no h2load summary from {shlex.join(command)}:\n{output[-2000:]}")
    seconds = float(finished.group(1)) * _UNIT_SECONDS[finished.group(2)]
    data = _DATA.search(output)
    result = H2loadResult(
        command=command, seconds=seconds, req_per_s=float(finished.group(3)),
        total=int(requests.group(1)), done=int(requests.group(3)), succeeded=int(requests.group(4)),
        failed=int(requests.group(5)), errored=int(requests.group(6)),
        data_bytes=int(data.group(1)) if data else 0)
    latency = _TIME_FOR_REQUEST.search(output)
    if latency:
        to_ms = [float(latency.group(i)) * _UNIT_SECONDS[latency.group(i + 1)] * 1e3
                 for i in (1, 3, 5)]
        result.latency_max_ms, result.latency_mean_ms = to_ms[1], to_ms[2]
    return result


def run(command: list[str], timeout: float, log_file: str | None = None) -> H2loadResult:
    """Run an h2load command (bounded by timeout seconds) and parse it.

    With log_file, h2load's per-request log is read back into latency_ms.
    """
    if log_file:
        command = command[:-1] + [f"--log-file={log_file}", command[-1]]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise H2loadError(f"h2load timed out after {timeout:.0f}s: {shlex.join(command)}") from exc
    result = parse(command, proc.stdout)
    if log_file:
        with open(log_file) as f:
            rows = (line.split("\t") for line in f)
            result.latency_ms = [int(r[2]) / 1e3 for r in rows if len(r) >= 3 and r[1] != "-1"]
    return result
