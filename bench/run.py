#!/usr/bin/env python3
"""nghttp2py side-by-side benchmark driver (stdlib only).

``python bench/run.py`` runs every scenario against every server, then the
client's benchmark (bench/client.py, scenario 14), and writes
bench/results/latest.{md,json,png}; ``--quick`` runs scenarios 1, 11 and 13 once and a
short client run, and prints nghttp2py's server CPU µs/request (µs/message).  See
BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client as client_bench
import report
from h2load import H2loadError
from scenarios import (
    CLIENT_SCENARIO,
    MEASURE,
    NUMBERS,
    QUICK,
    Case,
    Outcome,
    Scenario,
    Settings,
    scenarios,
)
from serverproc import ServerError, ServerProcess, free_port, raise_fd_limit
from servers.common import LOOP_LINE
from servers.peers import (
    BENCH,
    BENCH_PY,
    REFERENCE,
    REFERENCE_UVLOOP,
    REPO,
    SERVERS,
    Paths,
    Server,
    loop_matches,
)
from ws_load import LoadError

RESULTS = BENCH / "results"
RAW = RESULTS / "raw"
CERTS = BENCH / ".certs"
REQUIREMENTS = BENCH / "requirements.txt"
STAMP = BENCH / ".venv" / ".requirements.sha256"
PEER_PACKAGES = ["hypercorn", "twisted", "granian", "uvicorn", "httptools", "websockets",
                 "pynghttp2", "uvloop", "h2", "aioquic", "matplotlib", "psutil"]


class LoopMismatch(RuntimeError):
    """A server runs on another event loop than its row names: the run is void."""


def log(message: str) -> None:
    """Progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def pinned(package: str) -> str:
    """The 'name==version' line for package from requirements.txt."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.lower().startswith(package + "=="):
            return line.strip()
    raise KeyError(package)


def ensure_bench_venv() -> None:
    """Create bench/.venv and install the pinned peers when requirements.txt changed."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest and BENCH_PY.exists():
        return
    if not BENCH_PY.exists():
        log("creating bench/.venv ...")
        subprocess.run([sys.executable, "-m", "venv", str(BENCH / ".venv")], check=True)
    log("installing bench/requirements.txt into bench/.venv ...")
    subprocess.run([str(BENCH_PY), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                   check=True, timeout=1200)
    STAMP.write_text(digest)


def import_error(statement: str) -> str:
    """'' if the main interpreter runs statement (repo root on the path), else the error."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", statement], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60, check=False)
    lines = proc.stderr.strip().splitlines()
    return (lines[-1] if lines else "import failed") if proc.returncode else ""


def ensure_main_uvloop() -> None:
    """Install the pinned uvloop into the main interpreter if it lacks one."""
    if import_error("import uvloop"):
        log(f"installing {pinned('uvloop')} into {sys.executable} ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", pinned("uvloop")],
                       check=True, timeout=600)


def ensure_files() -> tuple[Paths, Path]:
    """Self-signed cert, nghttpd's docroot (hello, 1m) and the 64 KiB POST body."""
    CERTS.mkdir(exist_ok=True)
    cert, key = CERTS / "cert.pem", CERTS / "key.pem"
    if not (cert.exists() and key.exists()):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "3650", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    htdocs = RAW / "htdocs"
    htdocs.mkdir(parents=True, exist_ok=True)
    (htdocs / "hello").write_bytes(b"hello world")
    (htdocs / "1m").write_bytes(b"x" * (1 << 20))
    post_file = RAW / "post-64k.bin"
    post_file.write_bytes(b"p" * (64 << 10))
    return Paths(cert=cert, key=key, htdocs=htdocs), post_file


def _output(command: list[str], env: dict[str, str] | None = None) -> str:
    """First stdout line of a command, or '?'."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env,
                              check=False)
        return (proc.stdout.strip().splitlines() or ["?"])[0]
    except OSError:
        return "?"


def machine_info() -> dict:
    """CPU model, core count, memory, kernel and OS release."""
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    debian = Path("/etc/debian_version")
    os_name = f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform()
    return {"cpu_model": cpu_model, "cores": os.cpu_count(),
            "memory_gib": round(mem_kib / 2**20, 1), "kernel": platform.release(), "os": os_name,
            "pinning": "server on CPU 0, h2load / idle clients on CPU 1 (taskset)"}


def versions() -> dict:
    """Versions of Python, nghttp2py, libnghttp2, the nghttp2 tools and every peer."""
    peers = _output([str(BENCH_PY), "-c",
                     ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) "
                     f"for p in {PEER_PACKAGES!r}}}))")])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return {
        "python": platform.python_version(),
        "nghttp2py": _output([sys.executable, "-c",
                              "import nghttp2py; print(getattr(nghttp2py, '__version__', '?'))"],
                             env),
        "uvloop (main venv)": _output([sys.executable, "-c",
                                       "import uvloop; print(uvloop.__version__)"]),
        "libnghttp2": _output(["dpkg-query", "-W", "-f=${Version}\n", "libnghttp2-14"]),
        "h2load": _output(["h2load", "--version"]),
        "nghttpd": _output(["nghttpd", "--version"]),
        "peers (bench/.venv)": peers,
    }


def checked_loop(server: Server, running: ServerProcess) -> str:
    """The loop class the server reports; LoopMismatch unless it is the row's loop."""
    if server.loop is None:
        return ""
    reported = running.reported_loop(LOOP_LINE)
    if not loop_matches(server.loop, reported):
        raise LoopMismatch(f"{server.name} must run on {server.loop} but reports "
                           f"{reported or 'no event loop'}: {running.last_line()}")
    return reported


def run_case(scenario: Scenario, case: Case, server: Server, running: ServerProcess, port: int,
             settings: Settings, loop: str) -> Outcome:
    """Measure one case, turning harness-level failures into a 'failed' outcome."""
    started = time.monotonic()
    try:
        outcome = MEASURE[scenario.kind](scenario, case, running, port, settings)
    except (H2loadError, LoadError, ServerError, subprocess.SubprocessError, OSError,
            ValueError) as exc:
        outcome = Outcome(server="", status="failed", note=str(exc).splitlines()[0][:200])
    outcome = dataclasses.replace(outcome, server=server.name, loop=loop)
    log(f"  {case.key:>3} {server.name:<17} {outcome.status:<6} "
        f"{report.number(outcome.value):>10} {scenario.metric:<8} "
        f"cpu {report.number(outcome.cpu_us):>8} µs/{'msg' if scenario.websocket else 'req'}  "
        f"({time.monotonic() - started:.1f}s) "
        f"{outcome.note}")
    return outcome


def run_scenario(scenario: Scenario, servers: list[Server], unavailable: dict[str, str],
                 paths: Paths, settings: Settings) -> list[tuple[Scenario, Case, list[Outcome]]]:
    """Start each server in turn, run the scenario's cases against it, stop it."""
    outcomes: dict[str, list[Outcome]] = {case.key: [] for case in scenario.cases}
    log(f"scenario {scenario.number}: {scenario.title}")
    for server in servers:
        reason = unavailable.get(server.name) or server.unsupported(
            scenario.tls, scenario.http1, upgrade=scenario.upgrade,
            websocket=scenario.websocket, http3=scenario.http3)
        if reason:
            for case in scenario.cases:
                outcomes[case.key].append(Outcome(server=server.name, status="n/a", note=reason))
            continue
        port = free_port()
        command = server.command(port, scenario.tls, paths, sys.executable, scenario.http1,
                                 scenario.websocket, http3=scenario.http3)
        server_log = RAW / "logs" / f"s{scenario.number}-{server.name}.log"
        with ServerProcess(command, server.env(), server_log, REPO) as running:
            try:
                running.wait_ready(port, scenario.tls, http1=scenario.http1,
                                   lenient_http1=scenario.http1 and scenario.websocket)
            except ServerError as exc:
                for case in scenario.cases:
                    outcomes[case.key].append(Outcome(server=server.name, status="failed",
                                                      note=str(exc).splitlines()[0]))
                log(f"  {server.name}: {exc}")
                continue
            loop = checked_loop(server, running)
            for case in scenario.cases:
                outcomes[case.key].append(run_case(scenario, case, server, running, port,
                                                   settings, loop))
    return [(scenario, case, outcomes[case.key]) for case in scenario.cases]


def server_commands(paths: Paths) -> dict[str, dict[str, list[str]]]:
    """Every server's exact command line (PORT placeholder, repo-relative paths)."""
    sentinel = 54321

    def shown(arg: str) -> str:
        return arg.replace(str(sentinel), "PORT").replace(f"{REPO}/", "")

    def commands(server: Server) -> dict[str, list[str]]:
        shown_commands: dict[str, list[str]] = {}
        for transport, tls, http1, websocket, http3 in (
                ("h2c", False, False, False, False), ("tls", True, False, False, False),
                ("http/1.1", False, True, False, False),
                ("WebSocket, http/1.1", False, True, True, False),
                ("WebSocket, h2c", False, False, True, False), ("h3", True, False, False, True)):
            command = [shown(arg) for arg in [
                "taskset", "-c", "0",
                *server.command(sentinel, tls, paths, sys.executable, http1, websocket, http3)]]
            # A WebSocket command is shown only where it differs from those above.
            if server.supports(tls, http1, websocket, http3) and not (
                    websocket and command in shown_commands.values()):
                shown_commands[transport] = command
        return shown_commands

    return {server.name: commands(server) for server in SERVERS}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="scenarios 1, 11 and 13 (or those --scenario names), 1 round "
                             "after warm-up, and a short client run (20,000 requests); "
                             "results to stdout")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median reported)")
    parser.add_argument("--scenario", type=int, action="append", choices=NUMBERS,
                        help="run only this scenario (repeatable)")
    parser.add_argument("--servers", help="comma-separated subset of: "
                        + ",".join(s.name for s in SERVERS))
    parser.add_argument("--seconds", type=float, help="target duration of one measured run")
    return parser.parse_args()


def main() -> int:
    """Set up, run the selected scenarios, and write the report."""
    args = parse_args()
    rounds = 1 if args.quick else max(1, args.rounds)
    seconds = args.seconds or (1.5 if args.quick else 3.0)
    selected = args.scenario or (list(QUICK) if args.quick else list(NUMBERS))
    wanted = set(args.servers.split(",")) if args.servers else {s.name for s in SERVERS}
    servers = [s for s in SERVERS if s.name in wanted]

    raise_fd_limit()
    ensure_bench_venv()
    ensure_main_uvloop()
    paths, post_file = ensure_files()
    unavailable: dict[str, str] = {}
    if err := import_error("from nghttp2py import BaseRequestHandler, HTTP2Server"):
        log(f"WARNING: nghttp2py is not importable ({err}); its rows are n/a")
        unavailable = {REFERENCE: f"not importable: {err}",
                       REFERENCE_UVLOOP: f"not importable: {err}"}
    settings = Settings(rounds=rounds, seconds=seconds, raw_dir=RAW, post_file=post_file)
    no_h3 = import_error("import nghttp2py.quic, aioquic")

    started = time.time()
    results = []
    for scenario in scenarios(post_file):
        if scenario.number in selected:
            skipped = dict(unavailable)
            if scenario.http3 and no_h3:
                skipped.update({s.name: f"no HTTP/3 engine: {no_h3}" for s in servers
                                if s.family.startswith(REFERENCE) and s.name not in skipped})
            results += run_scenario(scenario, servers, skipped, paths, settings)
    client = None
    if CLIENT_SCENARIO in selected and not unavailable:
        log(f"scenario {CLIENT_SCENARIO}: the client (bench/client.py)")
        try:
            client = (client_bench.measure(requests=20_000, rounds=1) if args.quick
                      else client_bench.measure(rounds=rounds))
        except client_bench.LoopMismatch:
            raise  # the run is void, as for a server on the wrong loop
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            log(f"  the client's benchmark failed: {str(exc).splitlines()[0][:200]}")

    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "duration_s": round(time.time() - started, 1), "quick": args.quick,
            "rounds": rounds, "target_seconds_per_run": seconds,
            "machine": machine_info(), "versions": versions(),
            "server_commands": server_commands(paths), "loops": report.reported_loops(results),
            "reference": REFERENCE}
    header = (f"Run {meta['started']}, {meta['machine']['cores']} cores "
              f"({meta['machine']['cpu_model']}), {rounds} round(s), median reported.\n")
    text = report.markdown(results, header)
    data = report.record(results, meta)
    if client is not None:
        text += "\n" + client_bench.markdown(client)
        data["client"] = client_bench.record(client)
    print(text)
    print_cpu_summary(results)
    if args.quick or set(selected) != set(NUMBERS) or wanted != {s.name for s in SERVERS}:
        name = "quick.json" if args.quick else "partial.json"
        report.write_json(RAW / name, data)
        log(f"wrote {RAW / name}")
        return 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    report.write_json(RESULTS / "latest.json", data)
    subprocess.run([str(BENCH_PY), str(BENCH / "chart.py"), str(RESULTS / "latest.json"),
                    str(RESULTS / "latest.png")], check=True, timeout=300)
    report.update_benchmarks_md(REPO / "BENCHMARKS.md",
                                report.benchmarks_section(results, meta, text))
    log(f"wrote {RESULTS}/latest.md, latest.json, latest.png and updated BENCHMARKS.md")
    return 0


def print_cpu_summary(results: list[tuple[Scenario, Case, list[Outcome]]]) -> None:
    """Print nghttp2py's server CPU µs/request (µs/message) per case, prominently."""
    print("=" * 64)
    for scenario, case, outcomes in results:
        unit = "message" if scenario.websocket else "request"
        for o in outcomes:
            if o.server.startswith(REFERENCE) and o.cpu_us is not None:
                print(f"  {o.server:<17} {case.key:>3} server CPU: {o.cpu_us:8.2f} µs/{unit}"
                      f"   ({case.title})")
    print("=" * 64)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (LoopMismatch, client_bench.LoopMismatch) as exc:
        log(f"ERROR: {exc}; no result written")
        sys.exit(2)
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        sys.exit(130)
