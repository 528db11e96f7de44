"""The benchmark harness: servers run on the loop their row names, and bad rows are flagged."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
if not (BENCH / "run.py").exists():  # e.g. tests run from an sdist without bench/
    pytest.skip("no bench/ directory", allow_module_level=True)
sys.path.insert(0, str(BENCH))

import client as client_bench  # noqa: E402 (bench/ is put on the path above)
import report  # noqa: E402
import run  # noqa: E402
from scenarios import Outcome, scenarios  # noqa: E402
from serverproc import ServerProcess, free_port  # noqa: E402
from servers.common import LOOP_LINE  # noqa: E402
from servers.peers import REPO, Paths, Server  # noqa: E402

NO_FILES = Paths(cert=Path("-"), key=Path("-"), htdocs=Path("-"))


def started(server: Server, tmp_path: Path) -> tuple[ServerProcess, int]:
    port = free_port()
    process = ServerProcess(server.command(port, False, NO_FILES, sys.executable),
                            server.env(), tmp_path / f"{server.name}.log", REPO)
    process.__enter__()
    return process, port


@pytest.mark.parametrize("loop, expected", [("asyncio", "asyncio."), ("uvloop", "uvloop.")])
def test_bench_server_runs_on_the_named_loop(loop: str, expected: str, tmp_path: Path) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    name = "nghttp2py" if loop == "asyncio" else "nghttp2py-uvloop"
    process, port = started(Server(name, loop=loop), tmp_path)
    try:
        process.wait_ready(port, tls=False)
        reported = process.reported_loop(LOOP_LINE)
        assert reported.startswith(expected), reported
        assert run.checked_loop(Server(name, loop=loop), process) == reported
        # SIGINT shuts the server down by itself, before the harness would escalate.
        assert process.proc is not None
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop()


def test_harness_refuses_a_server_on_another_loop(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    process, port = started(Server("nghttp2py-uvloop", loop="uvloop"), tmp_path)
    try:
        process.wait_ready(port, tls=False)
        with pytest.raises(run.LoopMismatch, match="must run on asyncio but reports uvloop"):
            run.checked_loop(Server("nghttp2py", loop="asyncio"), process)
    finally:
        process.stop()


def test_rows_with_failed_requests_are_flagged_and_not_judged() -> None:
    tiny = next(s for s in scenarios(Path("-")) if s.number == 1)
    case = tiny.cases[0]
    outcomes = [
        Outcome(server="nghttp2py", status="ok", value=300_000.0, cpu_us=3.0,
                loop="asyncio.unix_events._UnixSelectorEventLoop"),
        Outcome(server="granian", status="ok", value=50_000.0, cpu_us=17.0, failed=4466,
                loop="asyncio.unix_events._UnixSelectorEventLoop"),
        Outcome(server="nghttpd", status="ok", value=300_000.0, cpu_us=3.0),
    ]
    results = [(tiny, case, outcomes)]
    table = report.case_table(tiny, case, outcomes)
    assert "| granian ⚠ | asyncio |" in table
    assert "4,466 requests failed" in table
    assert "| nghttp2py | asyncio |" in table and "| nghttpd | — |" in table
    assert report.failed_rows(results) == ["1a granian: 4,466 requests failed"]
    assert "Rows with failed requests" in report.markdown(results, "header\n")
    verdicts = {text: (ok, why) for text, ok, why in report.targets(results)}
    assert verdicts["tiny GET h2c (1a), asyncio: req/s >= 5x Granian's (granian)"] == (
        None, "not comparable: failed requests")
    assert verdicts["tiny GET h2c (1a), asyncio: server CPU per request <= 1.5x nghttpd's"] \
        == (True, "")


def test_uvloop_rows_are_compared_with_nghttp2py_on_uvloop() -> None:
    assert report.reference_for("granian-uvloop") == "nghttp2py-uvloop"
    assert report.reference_for("hypercorn") == "nghttp2py"
    assert report.reference_for("nghttpd") == "nghttp2py"
    assert report.short_loop("uvloop.Loop") == "uvloop"
    assert report.short_loop("twisted.internet.epollreactor.EPollReactor") == "EPollReactor"


def test_full_run_regenerates_the_results_section(tmp_path: Path) -> None:
    """What a full run writes between BENCHMARKS.md's markers, on a copy of the file."""
    memory = next(s for s in scenarios(Path("-")) if s.number == 7)
    results = [(memory, memory.cases[0], [
        Outcome(server="nghttp2py", status="ok", value=11.6,
                loop="asyncio.unix_events._UnixSelectorEventLoop")])]
    meta = {"started": "2026-12-01 10:00:00", "rounds": 3,
            "machine": {"cpu_model": "cpu", "cores": 2, "memory_gib": 24, "os": "Debian",
                        "kernel": "6", "pinning": "server on CPU 0"},
            "versions": {"python": "3.11"},
            "server_commands": {"nghttp2py": {"h2c": ["python", "nghttp2py_server.py"]}},
            "loops": report.reported_loops(results)}
    copy = tmp_path / "BENCHMARKS.md"
    original = (REPO / "BENCHMARKS.md").read_text()
    copy.write_text(original)
    report.update_benchmarks_md(copy, report.benchmarks_section(
        results, meta, report.markdown(results, "header\n")))
    text = copy.read_text()
    head, _, tail = original.partition(report.START)
    assert text.startswith(head) and text.endswith(tail.partition(report.END)[2])
    assert "Stale figures" not in text
    assert "- [x] idle connection (7): <= 16 KiB resident memory each" in text
    assert "ran on `asyncio.unix_events._UnixSelectorEventLoop`" in text
    assert "| nghttp2py | asyncio | 11.60 |" in text


def test_client_bench_runs_every_client_on_the_named_loop() -> None:
    """A short bench/client.py run: h2load and both client APIs against the bookstore."""
    results = client_bench.measure(requests=400, streams=10, rounds=1, loops=("asyncio",),
                                   books=False)
    rows = {row.measurement: row for row in results.rows}
    assert set(rows) == {f"400 requests, 10 in flight: {name}" for name in
                         ("h2load", "nghttp2py.Client", "nghttp2py.HTTP2Client")}
    assert all(row.value > 0 and row.unit == "µs CPU/request" for row in rows.values())
    assert rows["400 requests, 10 in flight: nghttp2py.Client"].loop == "asyncio"
    assert set(results.ratios) == {"nghttp2py.Client on asyncio",
                                   "nghttp2py.HTTP2Client on asyncio"}
    text = client_bench.markdown(results)
    assert "| 400 requests, 10 in flight: nghttp2py.HTTP2Client | asyncio |" in text
    assert "- [ ] 3000 books >= 10x faster than httpx's HTTP/2 client (whole process) " \
           "_(not measured)_" in text


def test_client_bench_refuses_a_client_on_another_loop() -> None:
    script = ("import asyncio, sys\nasync def main():\n    "
              f"{client_bench._REPORT_LOOP}\nasyncio.run(main())")
    client_bench.run_client([sys.executable, "-c", script], "asyncio")
    with pytest.raises(client_bench.LoopMismatch, match="must run on uvloop but reports asyncio"):
        client_bench.run_client([sys.executable, "-c", script], "uvloop")
