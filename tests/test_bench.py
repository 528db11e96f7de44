"""The benchmark harness: servers run on the loop their row names, and bad rows are flagged."""
from __future__ import annotations

import base64
import hashlib
import re
import signal
import socketserver
import sys
import threading
from pathlib import Path

import pytest

from conftest import require

BENCH = Path(__file__).resolve().parent.parent / "bench"
if not (BENCH / "run.py").exists():  # e.g. tests run from an sdist without bench/
    pytest.skip("no bench/ directory", allow_module_level=True)
sys.path.insert(0, str(BENCH))

import client as client_bench  # noqa: E402 (bench/ is put on the path above)
import h2load  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import ws_load  # noqa: E402
from h3peers import Hypercorn  # noqa: E402
from scenarios import (  # noqa: E402
    MEASURE,
    Outcome,
    Settings,
    h3load_command,
    scenarios,
    wait_h3_ready,
)
from serverproc import ServerProcess, free_port  # noqa: E402
from servers.common import LOOP_LINE  # noqa: E402
from servers.peers import REPO, SERVERS, Paths, Server  # noqa: E402

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


@pytest.mark.parametrize("http1", [False, True])
def test_wsgi_bench_server_serves_and_names_its_loop(http1: bool, tmp_path: Path) -> None:
    """nghttp2py's WSGI row: the WSGI app over h2c and HTTP/1.1, on the loop it names."""
    server = Server("nghttp2py-wsgi", loop="asyncio")
    port = free_port()
    process = ServerProcess(server.command(port, False, NO_FILES, sys.executable, http1),
                            server.env(), tmp_path / f"{server.name}.log", REPO)
    process.__enter__()
    try:
        process.wait_ready(port, tls=False, http1=http1)
        assert run.checked_loop(server, process).startswith("asyncio.")
        assert process.proc is not None
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop()


def test_wsgi_rows_serve_the_wsgi_app_with_each_peers_wsgi_interface() -> None:
    """Every WSGI row runs bench/servers/wsgi_app.py through each server's own WSGI support."""
    rows = {server.name: server for server in SERVERS if server.wsgi}
    assert set(rows) == {"nghttp2py-wsgi", "nghttp2py-wsgi-uvloop", "granian-wsgi",
                         "uvicorn-wsgi-uvloop"}
    commands = {name: server.command(1234, False, NO_FILES, "python")
                for name, server in rows.items()}
    assert commands["nghttp2py-wsgi-uvloop"][-3:] == ["1234", "--loop", "uvloop"]
    assert commands["granian-wsgi"][1:3] == ["--interface", "wsgi"]
    assert "--loop" not in commands["granian-wsgi"]  # no Python event loop: loop is None
    assert commands["granian-wsgi"][-1] == "bench.servers.wsgi_app:app"
    # Uvicorn's WSGI middleware around the same app, behind a lifespan naming the loop.
    assert commands["uvicorn-wsgi-uvloop"][-1] == "bench.servers.uvicorn_wsgi:app"


def test_upgrade_scenario_counts_upgraded_and_prior_knowledge_requests(tmp_path: Path) -> None:
    """Scenario 12 on nghttp2py: every request done on both kinds of connection; a server
    that refuses the upgrade (HTTP/2 only: 505) is counted as failed requests, not served."""
    require("nghttp")
    scenario = next(s for s in scenarios(Path("-")) if s.number == 12)
    settings = Settings(rounds=1, seconds=0.1, raw_dir=tmp_path, post_file=Path("-"))
    server = Server("nghttp2py", loop="asyncio")
    port = free_port()
    with ServerProcess(server.command(port, False, NO_FILES, sys.executable), server.env(),
                       tmp_path / "server.log", REPO) as process:
        process.wait_ready(port, tls=False)
        for case in scenario.cases:
            outcome = MEASURE[scenario.kind](scenario, case, process, port, settings)
            assert (outcome.status, outcome.failed) == ("ok", 0), case.key
            assert outcome.rounds[0]["done"] >= case.warm_n and outcome.cpu_us, case.key
    port = free_port()
    http2_only = [sys.executable, "-m", "nghttp2py", "examples.hello:Handler", "--no-http1",
                  "--bind", f"127.0.0.1:{port}"]
    with ServerProcess(http2_only, server.env(), tmp_path / "h2only.log", REPO) as process:
        process.wait_ready(port, tls=False)
        upgraded = MEASURE[scenario.kind](scenario, scenario.cases[0], process, port, settings)
        assert upgraded.failed == upgraded.rounds[0]["total"] > 0


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


def websocket_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int,
                      servers: list[Server]) -> list:
    """Scenario `number` run briefly (one short round) against servers."""
    monkeypatch.setattr(run, "RAW", tmp_path)
    scenario = next(s for s in scenarios(Path("-")) if s.number == number)
    settings = Settings(rounds=1, seconds=0.3, raw_dir=tmp_path, post_file=Path("-"))
    return run.run_scenario(scenario, servers, {}, NO_FILES, settings)


@pytest.mark.parametrize("number, title", [
    (10, "WebSocket echo over HTTP/1.1"), (11, "WebSocket echo over HTTP/2 (RFC 8441)")])
def test_websocket_scenario_reports_its_rows(number: int, title: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The WebSocket echo against the native echo handler: both cases measured, a server
    without WebSockets there marked n/a with the reason, every row in the report."""
    results = websocket_results(tmp_path, monkeypatch, number, [
        Server("nghttp2py"), Server("other", ws_http1=False, ws_h2=False, why_not_ws="none")])
    assert [case.key for _s, case, _o in results] == [f"{number}a", f"{number}b"]
    for _scenario, case, (ours, other) in results:
        assert ours.status == "ok", ours.note
        assert ours.value and ours.value > 0 and ours.cpu_us and ours.cpu_us > 0
        assert ours.loop.startswith("asyncio.")
        (measured,) = ours.rounds
        assert measured["messages"] >= case.warm_n and measured["cpu_s"] > 0
        assert other.status == "n/a" and other.note == "none"
    text = report.markdown(results, "header\n")
    assert f"### {number}. {title}" in text
    assert "| server | loop | msg/s | server CPU µs/msg |" in text
    assert len(re.findall(r"\| nghttp2py \| asyncio \| [\d,.]+ \| [\d,.]+ \| \(reference\)",
                          text)) == 2
    assert text.count("| other | — | n/a | n/a | — | — | none |") == 2


class BrokenEcho(socketserver.BaseRequestHandler):
    """An HTTP/1.1 WebSocket server whose echo is wrong in the way `mode` says."""

    mode = "wrong"

    def handle(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += self.request.recv(4096)
        key = re.search(rb"(?i)sec-websocket-key: *(\S+)", request).group(1)
        self.request.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                             + base64.b64encode(hashlib.sha1(
                                 key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                             + b"\r\n\r\n")
        while frame := self.request.recv(4096):
            mask, masked = frame[2:6], frame[6:]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(masked))
            if self.mode == "wrong":
                payload = payload[:-1] + b"?"
            echo = ws_load.server_frame(ws_load.BINARY if self.mode == "binary"
                                        else ws_load.TEXT, payload)
            self.request.sendall(echo * (2 if self.mode == "twice" else 1))


@pytest.mark.parametrize("mode, error", [
    ("wrong", "the echo differs from the message sent"),
    ("twice", "more echoes than messages sent"),
    ("binary", "echo of opcode 0x2, sent 0x1"),
])
def test_ws_load_refuses_a_wrong_echo(mode: str, error: str) -> None:
    """A server that echoes the wrong bytes, too many messages or the wrong kind of message
    fails the run: it cannot look fast."""
    handler = type("Broken", (BrokenEcho,), {"mode": mode})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        command = [sys.executable, str(BENCH / "ws_load.py"), str(server.server_address[1]),
                   "--http", "1", "--connections", "2", "--size", "32"]
        try:
            with pytest.raises(ws_load.LoadError, match=re.escape(error)), \
                    ws_load.LoadProcess(command, timeout=30) as load:
                load.run(20)
        finally:
            server.shutdown()


def test_websocket_commands_and_targets() -> None:
    """Granian runs with --ws for the WebSocket scenarios (and its command is listed), and
    the WebSocket targets compare with Uvicorn and Granian over HTTP/1.1 on the same loop."""
    paths = Paths(cert=Path("c"), key=Path("k"), htdocs=Path("d"))
    commands = run.server_commands(paths)
    assert "--no-ws" in commands["granian"]["http/1.1"]
    assert "--ws" in commands["granian"]["WebSocket, http/1.1"]
    assert "WebSocket, h2c" not in commands["granian"]  # no RFC 8441
    assert list(commands["nghttp2py"]) == ["h2c", "tls", "http/1.1", "h3"]  # WebSocket: same
    assert list(commands["uvicorn"]) == ["http/1.1"]
    assert "websockets" in commands["uvicorn"]["http/1.1"]
    by_key = {s.number: s for s in scenarios(Path("-"))}
    asyncio_loop = "asyncio.unix_events._UnixSelectorEventLoop"

    def row(name: str, cpu: float) -> Outcome:
        return Outcome(server=name, status="ok", value=1000.0, cpu_us=cpu, loop=asyncio_loop)

    results = [
        (by_key[10], by_key[10].cases[0], [row("nghttp2py", 15.0), row("uvicorn", 40.0),
                                           row("granian", 35.0)]),
        (by_key[11], by_key[11].cases[0], [row("nghttp2py", 25.0)]),
    ]
    verdicts = {text: (ok, why) for text, ok, why in report.targets(results)}
    prefix = "WebSocket small messages, nghttp2py over"
    assert verdicts[f"{prefix} HTTP/1.1 (10a), asyncio: server CPU per message <= 0.5x "
                    "Uvicorn's over HTTP/1.1 (uvicorn, 10a)"] == (True, "")
    assert verdicts[f"{prefix} HTTP/2 (11a), asyncio: server CPU per message <= 0.5x "
                    "Uvicorn's over HTTP/1.1 (uvicorn, 10a)"] == (False, "")
    assert verdicts[f"{prefix} HTTP/2 (11a), asyncio: server CPU per message < Granian's "
                    "over HTTP/1.1 (granian, 10a)"] == (True, "")
    assert verdicts["WebSocket small messages, nghttp2py-uvloop over HTTP/1.1 (10a), uvloop: "
                    "server CPU per message < Granian's over HTTP/1.1 (granian-uvloop, 10a)"
                    ] == (None, "not measured")


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_echo_reader_reassembles_fragments_and_answers_pings(chunk: int) -> None:
    """Echoes split into fragments (the last one shorter than a whole echo), with a ping
    between them, fed in chunks of any size: each counted once, the ping answered."""
    payload = ws_load.payload_for(3, 300, binary=False)
    pings: list[bytes] = []
    reader = ws_load.EchoReader(ws_load.TEXT, payload, 2, pings.append)
    fragmented = (b"\x01\x7e" + (290).to_bytes(2, "big") + payload[:290]  # text, not final
                  + ws_load.server_frame(ws_load.PING, b"hi")
                  + b"\x80\x0a" + payload[290:])  # continuation, final, 10 bytes
    stream = ws_load.server_frame(ws_load.TEXT, payload) + fragmented \
        + ws_load.server_frame(ws_load.TEXT, payload)
    counted = sum(reader.feed(stream[i:i + chunk]) for i in range(0, len(stream), chunk))
    assert counted == 3 and pings == [b"hi"]
    with pytest.raises(ws_load.LoadError, match="closed the WebSocket \\(code 1001"):
        reader.feed(ws_load.server_frame(ws_load.CLOSE, (1001).to_bytes(2, "big")))


def test_h3load_against_hypercorn_reads_as_h2load(certificate, tmp_path: Path) -> None:
    """The HTTP/3 client's summary is h2load's: the harness reads it the same way."""
    hypercorn = Hypercorn("bench.servers.asgi_app:app", certificate, tmp_path)
    try:
        wait_h3_ready(hypercorn.quic_port)
        result = h2load.run(h3load_command(hypercorn.quic_port, 300, 3, 10), 60)
    finally:
        hypercorn.stop()
    assert (result.total, result.done, result.succeeded, result.unsuccessful) == (300, 300, 300, 0)
    assert result.data_bytes == 300 * len(b"hello world")
    assert result.req_per_s > 0 and result.seconds > 0


def test_http3_rows_are_na_where_a_server_has_none() -> None:
    h3 = next(s for s in scenarios(Path("-")) if s.number == 13)
    assert h3.http3 and h3.tls
    servers = {server.name: server for server in run.SERVERS}
    assert servers["hypercorn"].unsupported(True, http3=True) == ""
    assert servers["granian"].unsupported(True, http3=True) == "Granian 2 has no HTTP/3"
    assert "--quic-bind" in servers["hypercorn"].command(4433, True, NO_FILES, "python",
                                                         http3=True)
    assert "--quic" in servers["nghttp2py"].command(4433, True, NO_FILES, "python", http3=True)


def test_nghttp2py_bench_server_over_h3(certificate, tmp_path: Path) -> None:
    files = Paths(cert=certificate[0], key=certificate[1], htdocs=Path("-"))
    server = Server("nghttp2py", h3=True)
    port = free_port()
    with ServerProcess(server.command(port, True, files, sys.executable, http3=True),
                       server.env(), tmp_path / "nghttp2py.log", REPO) as process:
        process.wait_ready(port, tls=True)
        wait_h3_ready(port)
        result = h2load.run(h3load_command(port, 300, 3, 10), 60)
    assert (result.done, result.succeeded) == (300, 300)
