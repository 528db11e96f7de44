"""The benchmark scenarios and how each one is measured against a running server."""
from __future__ import annotations

import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2load
import nghttp
from procstat import tree_cpu_seconds, tree_rss_kib
from serverproc import ServerError, ServerProcess
from servers.peers import BENCH_PY
from ws_load import LoadProcess

IDLE_CLIENTS = Path(__file__).resolve().parent / "idle_clients.py"
H3LOAD = Path(__file__).resolve().parent / "h3load.py"
WS_LOAD = Path(__file__).resolve().parent / "ws_load.py"


@dataclass(frozen=True)
class Case:
    """One h2load configuration inside a scenario (for WebSockets: clients WebSockets, each
    with streams messages in flight, extra the ws_load.py message options)."""

    key: str
    title: str
    clients: int
    streams: int
    warm_n: int
    max_n: int
    path: str = "/hello"
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """A group of cases sharing transport, measurement kind and headline metric."""

    number: int
    title: str
    kind: str  # "load" | "churn" | "rate" | "memory" | "upgrade" | "websocket"
    tls: bool
    metric: str
    higher_is_better: bool
    cases: tuple[Case, ...]
    http1: bool = False  # HTTP/1.1 (h2load --h1) instead of HTTP/2
    upgrade: bool = False  # only servers that take an h2c upgrade (nghttp -u)
    websocket: bool = False  # WebSocket echo (bench/ws_load.py) instead of h2load
    http3: bool = False  # HTTP/3 with bench/h3load.py instead of h2load
    run_share: float = 1.0  # a measured run lasts run_share x Settings.seconds


@dataclass
class Outcome:
    """Result of one case on one server: a median headline value and CPU cost."""

    server: str
    status: str  # "ok" | "n/a" | "failed"
    value: float | None = None
    cpu_us: float | None = None
    note: str = ""
    rounds: list[dict] = field(default_factory=list)
    failed: int = 0  # requests that failed or errored, summed over the measured rounds
    loop: str = ""  # event loop class the server reported running on


@dataclass(frozen=True)
class Settings:
    """Knobs shared by every measurement."""

    rounds: int
    seconds: float  # target duration of one measured run
    raw_dir: Path
    post_file: Path
    rate: int = 20_000  # scenario 6 target, req/s
    churn_connections: int = 1000
    churn_batch: int = 100
    idle_connections: int = 5000


def scenarios(post_file: Path) -> list[Scenario]:
    """All scenarios, numbered as in BENCHMARKS.md."""
    post = ("-d", str(post_file))
    return [
        Scenario(1, "Tiny GET over h2c", "load", False, "req/s", True, (
            Case("1a", "tiny GET, h2c, -c 10 -m 10", 10, 10, 5000, 1_000_000),
            Case("1b", "tiny GET, h2c, -c 100 -m 10", 100, 10, 5000, 1_000_000))),
        Scenario(2, "Tiny GET over TLS (ALPN h2)", "load", True, "req/s", True, (
            Case("2", "tiny GET, TLS, -c 10 -m 10", 10, 10, 5000, 1_000_000),)),
        Scenario(3, "1 MiB responses", "load", False, "MiB/s", True, (
            Case("3", "1 MiB GET, h2c, -c 4 -m 4", 4, 4, 40, 10_000, path="/1m"),)),
        Scenario(4, "POST 64 KiB bodies", "load", False, "req/s", True, (
            Case("4", "64 KiB POST, h2c, -c 10 -m 10", 10, 10, 500, 100_000, extra=post),)),
        Scenario(5, "Connection churn", "churn", False, "conn/s", True, (
            Case("5", "1000 connections x 1 request, h2c, batches of -c 100 -m 1",
                 100, 1, 100, 100),)),
        Scenario(6, "Latency at a fixed rate", "rate", False, "p99 ms", False, (
            Case("6", "tiny GET, h2c, -c 10 -m 10 --rps (20k req/s total or 60% of capacity)",
                 10, 10, 2000, 100_000),)),
        Scenario(7, "Memory per idle connection", "memory", False, "KiB/conn", False, (
            Case("7", "5000 idle h2c connections (preface + SETTINGS)", 1, 1, 500, 500),)),
        Scenario(8, "Tiny GET over HTTP/1.1", "load", False, "req/s", True, (
            Case("8a", "tiny GET, HTTP/1.1 keep-alive, -c 10", 10, 1, 5000, 1_000_000,
                 extra=H1),
            Case("8b", "tiny GET, HTTP/1.1 pipelined, -c 10 -m 10", 10, 10, 5000, 1_000_000,
                 extra=H1)), http1=True),
        Scenario(9, "1 MiB responses over HTTP/1.1", "load", False, "MiB/s", True, (
            Case("9", "1 MiB GET, HTTP/1.1 keep-alive, -c 4", 4, 1, 40, 10_000, path="/1m",
                 extra=H1),), http1=True),
        Scenario(10, "WebSocket echo over HTTP/1.1", "websocket", False, "msg/s", True,
                 websocket_cases("10", "HTTP/1.1"), http1=True, websocket=True,
                 run_share=WS_RUN_SHARE),
        Scenario(11, "WebSocket echo over HTTP/2 (RFC 8441)", "websocket", False, "msg/s", True,
                 websocket_cases("11", "h2c"), websocket=True, run_share=WS_RUN_SHARE),
        # The same client both times (h2load cannot upgrade), so that the difference
        # is the server's: an upgraded connection against one with prior knowledge.
        # (nghttp sends all of a connection's requests: the server's SETTINGS, 100
        # streams, bound those in flight; `streams` records that.)
        Scenario(12, "h2c upgrade against prior knowledge", "upgrade", False, "req/s", True, (
            Case("12a", "tiny GET, h2c upgrade: 10 x nghttp -u -m N/10", 10, 100, 5000,
                 1_000_000, extra=UPGRADE),
            Case("12b", "tiny GET, h2c prior knowledge: 10 x nghttp -m N/10", 10, 100, 5000,
                 1_000_000)), upgrade=True),
        Scenario(13, "Tiny GET over HTTP/3", "load", True, "req/s", True, (
            Case("13", "tiny GET, HTTP/3 (QUIC), -c 10 -m 10, aioquic client (bench/h3load.py)",
                 10, 10, 1000, 200_000),), http3=True),
    ]


def websocket_cases(number: str, transport: str) -> tuple[Case, ...]:
    """Many WebSockets with small messages, and one with 1 MiB messages (echoed)."""
    return (Case(f"{number}a", f"32-byte text messages, 100 WebSockets over {transport}, "
                               "1 in flight each", 100, 1, 2000, 1_000_000, path="/ws",
                 extra=("--size", "32")),
            Case(f"{number}b", f"1 MiB binary messages, 1 WebSocket over {transport}, "
                               "1 in flight", 1, 1, 10, 10_000, path="/ws",
                 extra=("--size", str(1 << 20), "--binary")))


# h2load speaks HTTP/1.1 with this (pipelined when -m > 1).
H1 = ("--h1",)
# nghttp starts each connection with an HTTP/1.1 request and Upgrade: h2c with this.
UPGRADE = ("-u",)
# WebSocket runs are shorter (1 s of the default 3) to keep the full run's time in bounds:
# 18 server starts, two cases each.
WS_RUN_SHARE = 1 / 3
# The client's benchmark (bench/client.py): its own servers and clients, not a Scenario.
CLIENT_SCENARIO = 14
# Every scenario's number, as --scenario takes them.
NUMBERS = (*range(1, 14), CLIENT_SCENARIO)
# What --quick runs: tiny GETs, the WebSocket echo over HTTP/2, tiny GETs over HTTP/3, and
# a short client run.
QUICK = (1, 11, 13, CLIENT_SCENARIO)


def _url(port: int, tls: bool, path: str) -> str:
    return f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"


def _timeout(settings: Settings) -> float:
    return 20 * settings.seconds + 30


def _measured(server: ServerProcess, command: list[str], settings: Settings,
              log_file: str | None = None) -> tuple[h2load.H2loadResult, float]:
    """Run h2load once; return its result and server CPU seconds spent meanwhile."""
    before = tree_cpu_seconds(server.pid)
    result = h2load.run(command, _timeout(settings), log_file)
    return result, tree_cpu_seconds(server.pid) - before


def _unsuccessful(results: list[h2load.H2loadResult]) -> int:
    """Requests of the measured runs that did not succeed."""
    return sum(r.unsuccessful for r in results)


def _warm(case: Case, url: str, settings: Settings) -> h2load.H2loadResult:
    """Warm-up run; its req/s sizes the measured runs."""
    command = h2load.build_command(url, case.warm_n, case.clients, case.streams, list(case.extra))
    return h2load.run(command, _timeout(settings))


def _sized_n(case: Case, req_per_s: float, seconds: float) -> int:
    """Request count giving about `seconds` of load, within [warm_n, max_n]."""
    return max(case.warm_n, min(case.max_n, int(req_per_s * seconds)))


def h3load_command(port: int, n: int, c: int, m: int, path: str = "/hello") -> list[str]:
    """bench/h3load.py (on bench/.venv's aioquic), pinned to h2load's CPU."""
    python = str(BENCH_PY) if BENCH_PY.exists() else sys.executable
    return ["taskset", "-c", h2load.H2LOAD_CPU, python, str(H3LOAD), str(port), "-n", str(n),
            "-c", str(c), "-m", str(m), "--path", path]


def wait_h3_ready(port: int, timeout: float = 30.0) -> None:
    """Until one HTTP/3 request succeeds: a server may open its UDP port after its TCP one."""
    deadline = time.monotonic() + timeout
    command = h3load_command(port, 1, 1, 1) + ["--connect-timeout", "2"]
    while time.monotonic() < deadline:
        try:
            if h2load.run(command, 10).succeeded == 1:
                return
        except h2load.H2loadError:
            pass
        time.sleep(0.2)
    raise ServerError(f"no HTTP/3 answer on UDP port {port} within {timeout:.0f}s")


def measure_load(scenario: Scenario, case: Case, server: ServerProcess, port: int,
                 settings: Settings) -> Outcome:
    """Throughput (req/s or MiB/s) and server CPU per request, median of rounds."""
    url = _url(port, scenario.tls, case.path)

    def command_for(n: int) -> list[str]:
        if scenario.http3:
            return h3load_command(port, n, case.clients, case.streams, case.path)
        return h2load.build_command(url, n, case.clients, case.streams, list(case.extra))

    if scenario.http3:
        wait_h3_ready(port)
    warm = h2load.run(command_for(case.warm_n), _timeout(settings))
    command = command_for(_sized_n(case, warm.req_per_s, settings.seconds))
    results, rounds = [], []
    for _ in range(settings.rounds):
        result, cpu = _measured(server, command, settings)
        value = result.mib_per_s if scenario.metric == "MiB/s" else result.req_per_s
        results.append(result)
        rounds.append({**result.summary(), "value": value, "cpu_s": cpu,
                       "cpu_us_per_req": cpu / max(result.done, 1) * 1e6})
    return _median_outcome(rounds, results)


def _median_outcome(rounds: list[dict], results: list) -> Outcome:
    """The median value and CPU per request of the measured rounds."""
    return Outcome(server="", status="ok",
                   value=statistics.median(r["value"] for r in rounds),
                   cpu_us=statistics.median(r["cpu_us_per_req"] for r in rounds),
                   failed=_unsuccessful(results), rounds=rounds)


def measure_churn(scenario: Scenario, case: Case, server: ServerProcess, port: int,
                  settings: Settings) -> Outcome:
    """New connections per second, one request each, in batches of case.clients."""
    url = _url(port, scenario.tls, case.path)
    command = h2load.build_command(url, case.clients, case.clients, 1)
    h2load.run(command, _timeout(settings))
    batches = settings.churn_connections // case.clients
    results, rounds = [], []
    for _ in range(settings.rounds):
        before = tree_cpu_seconds(server.pid)
        batch = [h2load.run(command, _timeout(settings)) for _ in range(batches)]
        cpu = tree_cpu_seconds(server.pid) - before
        done = sum(r.done for r in batch)
        seconds = sum(r.seconds for r in batch)
        results += batch
        rounds.append({"connections": done, "seconds": seconds, "value": done / seconds,
                       "cpu_s": cpu, "cpu_us_per_req": cpu / max(done, 1) * 1e6,
                       "command": command, "batches": batches})
    return _median_outcome(rounds, results)


def measure_rate(scenario: Scenario, case: Case, server: ServerProcess, port: int,
                 settings: Settings) -> Outcome:
    """p50/p99 latency at min(settings.rate, 60% of measured capacity)."""
    url = _url(port, scenario.tls, case.path)
    capacity = _warm(case, url, settings).req_per_s
    rate = max(case.clients, min(settings.rate, int(capacity * 0.6) // 100 * 100))
    per_client = max(1, rate // case.clients)
    n = max(case.clients, int(rate * settings.seconds))
    command = h2load.build_command(url, n, case.clients, case.streams, [f"--rps={per_client}"])
    log_file = str(settings.raw_dir / f"latency-{server.pid}.tsv")
    results, rounds = [], []
    for _ in range(settings.rounds):
        result, cpu = _measured(server, command, settings, log_file)
        results.append(result)
        rounds.append({**result.summary(), "value": result.percentile_ms(99),
                       "target_rate": per_client * case.clients, "capacity": capacity,
                       "cpu_s": cpu, "cpu_us_per_req": cpu / max(result.done, 1) * 1e6})
    Path(log_file).unlink(missing_ok=True)
    p50 = statistics.median(r["latency_p50_ms"] for r in rounds)
    achieved = statistics.median(r["req_per_s"] for r in rounds)
    note = f"p50 {p50:.2f} ms at {achieved:,.0f} req/s (target {per_client * case.clients:,})"
    return Outcome(server="", status="ok",
                   value=statistics.median(r["value"] for r in rounds),
                   cpu_us=statistics.median(r["cpu_us_per_req"] for r in rounds),
                   note=note, failed=_unsuccessful(results), rounds=rounds)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One stdout line from proc, or '' after timeout seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def measure_memory(scenario: Scenario, case: Case, server: ServerProcess, port: int,
                   settings: Settings) -> Outcome:
    """Server RSS growth per idle HTTP/2 connection (one measurement, after settling)."""
    url = _url(port, scenario.tls, case.path)
    h2load.run(h2load.build_command(url, case.warm_n, 10, 10), _timeout(settings))
    time.sleep(1.0)
    before = tree_rss_kib(server.pid)
    count = settings.idle_connections
    command = ["taskset", "-c", h2load.H2LOAD_CPU, sys.executable, str(IDLE_CLIENTS),
               str(port), str(count), "--max-seconds", "120"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as idle:
        try:
            ready = _read_line(idle, 90)
            time.sleep(2.0)
            after = tree_rss_kib(server.pid)
            assert idle.stdin is not None
            idle.stdin.close()
            alive = _read_line(idle, 15)
            idle.wait(timeout=15)
        finally:
            if idle.poll() is None:
                idle.kill()
    opened = int(ready.split()[1]) if ready.startswith("READY") else 0
    still = int(alive.split()[1]) if alive.startswith("ALIVE") else 0
    if not opened:
        return Outcome(server="", status="failed", note="no idle connection could be opened")
    note = f"{opened} opened, {still} still open at the end; RSS {before:,} -> {after:,} KiB"
    return Outcome(server="", status="ok", value=(after - before) / opened, note=note,
                   rounds=[{"command": command, "rss_before_kib": before,
                            "rss_after_kib": after, "opened": opened, "alive_at_end": still,
                            "value": (after - before) / opened}])


def measure_upgrade(scenario: Scenario, case: Case, server: ServerProcess, port: int,
                    settings: Settings) -> Outcome:
    """req/s and server CPU per request of case.clients nghttp connections at once, each
    upgraded from HTTP/1.1 (``-u``) or not, then given N/case.clients requests."""
    url = _url(port, scenario.tls, case.path)
    upgrade = case.extra == UPGRADE

    def command(n: int) -> list[str]:
        return nghttp.build_command(url, max(1, n // case.clients), upgrade)

    warm = nghttp.run(command(case.warm_n), case.clients, _timeout(settings))
    run_command = command(_sized_n(case, warm.req_per_s, settings.seconds))
    results, rounds = [], []
    for _ in range(settings.rounds):
        before = tree_cpu_seconds(server.pid)
        result = nghttp.run(run_command, case.clients, _timeout(settings))
        cpu = tree_cpu_seconds(server.pid) - before
        results.append(result)
        rounds.append({**result.summary(), "value": result.req_per_s, "cpu_s": cpu,
                       "cpu_us_per_req": cpu / max(result.done, 1) * 1e6})
    return _median_outcome(rounds, results)



def ws_load_command(scenario: Scenario, case: Case, port: int) -> list[str]:
    """The WebSocket load generator's command line, pinned like h2load."""
    return ["taskset", "-c", h2load.H2LOAD_CPU, sys.executable, str(WS_LOAD), str(port),
            "--http", "1" if scenario.http1 else "2", "--connections", str(case.clients),
            "--in-flight", str(case.streams), "--path", case.path, *case.extra]


def measure_websocket(scenario: Scenario, case: Case, server: ServerProcess, port: int,
                      settings: Settings) -> Outcome:
    """Echoed messages per second and server CPU per message, median of rounds.

    The WebSockets stay open from the warm-up to the last round; server CPU is read
    around each run of messages only (no handshakes in it).
    """
    command = ws_load_command(scenario, case, port)
    rounds = []
    with LoadProcess(command, _timeout(settings)) as load:
        warm = load.run(case.warm_n)
        n = _sized_n(case, warm["messages"] / warm["seconds"],
                     settings.seconds * scenario.run_share)
        for _ in range(settings.rounds):
            before = tree_cpu_seconds(server.pid)
            result = load.run(n)
            cpu = tree_cpu_seconds(server.pid) - before
            rounds.append({**result, "command": [*command, f"(RUN {n})"],
                           "value": result["messages"] / result["seconds"], "cpu_s": cpu,
                           "cpu_us_per_req": cpu / result["messages"] * 1e6})
    return _median_outcome(rounds, [])


MEASURE = {"load": measure_load, "churn": measure_churn, "rate": measure_rate,
           "memory": measure_memory, "upgrade": measure_upgrade,
           "websocket": measure_websocket}
