"""Turn outcomes into Markdown tables and the JSON record."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from scenarios import Case, Outcome, Scenario
from servers.peers import REFERENCE, REFERENCE_UVLOOP, SERVERS

Results = list[tuple[Scenario, Case, list[Outcome]]]
START, END = "<!-- results:start -->", "<!-- results:end -->"
FLAG = "⚠"
_LOOP_OF = {server.name: server.loop for server in SERVERS}


def number(value: float | None) -> str:
    """Human formatting: thousands separators, 2 significant decimals for small values."""
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def reference_for(name: str) -> str:
    """The nghttp2py row a server is compared with: the one on the same event loop."""
    return REFERENCE_UVLOOP if _LOOP_OF.get(name) == "uvloop" else REFERENCE


def short_loop(reported: str) -> str:
    """'asyncio' / 'uvloop' for those loops' classes, else the class name; '—' if none."""
    if not reported:
        return "—"
    top = reported.split(".", 1)[0]
    return top if top in ("asyncio", "uvloop") else reported.rsplit(".", 1)[-1]


def _ratio(ours: float | None, theirs: float | None, ref: str, name: str,
           higher_is_better: bool) -> str:
    """Ratio oriented so that >1 means nghttp2py is better, with its formula spelled out.

    'nghttp2py / granian = 4.29x' for higher-is-better metrics,
    'granian / nghttp2py = 3.56x' for lower-is-better ones (CPU, latency, memory).
    """
    if not ours or not theirs:
        return "—"
    if higher_is_better:
        return f"{ref} / {name} = {ours / theirs:.2f}x"
    return f"{name} / {ref} = {theirs / ours:.2f}x"


def failure_note(o: Outcome) -> str:
    """The flag of a row whose measured runs had requests that did not succeed."""
    if not o.failed:
        return ""
    return f"{FLAG} {o.failed:,} requests failed: not a comparable figure"


def case_table(scenario: Scenario, case: Case, outcomes: list[Outcome]) -> str:
    """Markdown table for one case: loop, metric, server CPU µs/request and ratios."""
    better = "higher" if scenario.higher_is_better else "lower"
    cpu_header = {"churn": "server CPU µs/conn", "websocket": "server CPU µs/msg"}.get(
        scenario.kind, "server CPU µs/req")
    lines = [(f"**{case.key}. {case.title}** ({scenario.metric}: {better} is better; "
             f"CPU: lower is better; ratios > 1 mean nghttp2py on the same loop is better)"), "",
             (f"| server | loop | {scenario.metric} | {cpu_header} | {scenario.metric} ratio "
             f"| CPU ratio | notes |"),
             "|---|---|---:|---:|---|---|---|"]
    for o in outcomes:
        if o.status != "ok":
            lines.append(f"| {o.server} | {short_loop(o.loop)} | {o.status} | {o.status} "
                         f"| — | — | {o.note} |")
            continue
        ref_name = reference_for(o.server)
        ref = next((r for r in outcomes if r.server == ref_name and r.status == "ok"), None)
        is_ref = o.server == ref_name
        value_ratio = "(reference)" if is_ref else _ratio(
            ref and ref.value, o.value, ref_name, o.server, scenario.higher_is_better)
        cpu_ratio = "(reference)" if is_ref else _ratio(
            ref and ref.cpu_us, o.cpu_us, ref_name, o.server, higher_is_better=False)
        if scenario.kind == "memory":
            cpu_ratio = "—"
        name = f"{o.server} {FLAG}" if o.failed else o.server
        note = "; ".join(filter(None, [failure_note(o), o.note]))
        lines.append(f"| {name} | {short_loop(o.loop)} | {number(o.value)} | "
                     f"{number(o.cpu_us)} | {value_ratio} | {cpu_ratio} | {note} |")
    return "\n".join(lines) + "\n"


def failed_rows(results: Results) -> list[str]:
    """'1a hypercorn: 4,466 requests failed' for every row with failed requests."""
    return [f"{case.key} {o.server}: {o.failed:,} requests failed"
            for _s, case, outcomes in results for o in outcomes if o.failed]


def markdown(results: Results, header: str) -> str:
    """The whole report: a header paragraph, the failed-request check, one table per case."""
    flagged = failed_rows(results)
    check = (f"**{FLAG} Rows with failed requests** (their figures are not comparable): "
             + "; ".join(flagged) + ".\n" if flagged
             else "Every measured request of every row succeeded.\n")
    parts = [header, check]
    current = None
    for scenario, case, outcomes in results:
        if scenario.number != current:
            current = scenario.number
            parts.append(f"### {scenario.number}. {scenario.title}\n")
        parts.append(case_table(scenario, case, outcomes))
    return "\n".join(parts)


def record(results: Results, meta: dict) -> dict:
    """JSON-ready record: metadata plus every outcome with its raw rounds."""
    return {**meta, "cases": [
        {"scenario": s.number, "scenario_title": s.title, "key": c.key, "title": c.title,
         "metric": s.metric, "higher_is_better": s.higher_is_better, "kind": s.kind,
         "tls": s.tls, "outcomes": [asdict(o) for o in outcomes]}
        for s, c, outcomes in results]}


def reported_loops(results: Results) -> dict[str, str]:
    """Every server's reported event loop class (servers without one left out)."""
    return {o.server: o.loop for _s, _c, outcomes in results for o in outcomes if o.loop}


def write_json(path: Path, data: dict) -> None:
    """Write data as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _case(results: Results, key: str) -> list[Outcome]:
    return next((outcomes for _s, case, outcomes in results if case.key == key), [])


def _ok(outcomes: list[Outcome], name: str) -> Outcome | None:
    return next((o for o in outcomes if o.server == name and o.status == "ok"), None)


Verdict = tuple[str, "bool | None", str]


def _compare(results: Results, key: str, ours: str, theirs: str, field_name: str,
             check: Callable[[float, float], bool],
             their_key: str | None = None) -> tuple[bool | None, str]:
    """check(our value, their value) for one case (theirs: in their_key, if given);
    None (and why) if it cannot be judged."""
    a = _ok(_case(results, key), ours)
    b = _ok(_case(results, their_key or key), theirs)
    if a is None or b is None or getattr(a, field_name) is None or getattr(b, field_name) is None:
        return None, "not measured"
    if a.failed or b.failed:
        return None, "not comparable: failed requests"
    return check(getattr(a, field_name), getattr(b, field_name)), ""


def targets(results: Results) -> list[Verdict]:
    """The issue's targets, like for like (same event loop), each with its verdict."""
    verdicts: list[Verdict] = []
    for ours, granian, loop in ((REFERENCE, "granian", "asyncio"),
                                (REFERENCE_UVLOOP, "granian-uvloop", "uvloop")):
        verdicts += [
            (f"tiny GET h2c (1a), {loop}: req/s >= 5x Granian's ({granian})",
             *_compare(results, "1a", ours, granian, "value", lambda a, b: a >= 5 * b)),
            (f"tiny GET h2c (1a), {loop}: server CPU per request <= 1.5x nghttpd's",
             *_compare(results, "1a", ours, "nghttpd", "cpu_us", lambda a, b: a <= 1.5 * b)),
            (f"tiny GET over TLS (2), {loop}: req/s >= 3x Granian's ({granian})",
             *_compare(results, "2", ours, granian, "value", lambda a, b: a >= 3 * b)),
        ]
    for ours, granian, uvicorn, loop in ((REFERENCE, "granian", "uvicorn", "asyncio"),
                                         (REFERENCE_UVLOOP, "granian-uvloop", "uvicorn-uvloop",
                                          "uvloop")):
        verdicts += [
            (f"tiny GET HTTP/1.1 (8a), {loop}: server CPU per request <= 0.5x Uvicorn's "
             f"({uvicorn})",
             *_compare(results, "8a", ours, uvicorn, "cpu_us", lambda a, b: a <= 0.5 * b)),
            (f"tiny GET HTTP/1.1 (8a), {loop}: server CPU per request < Granian's ({granian})",
             *_compare(results, "8a", ours, granian, "cpu_us", lambda a, b: a < b)),
            (f"h2c upgrade (12a), {loop}: server CPU per request <= 1.1x prior knowledge's "
             f"(12b; 10% for one run's noise)",
             *_compare(results, "12a", ours, ours, "cpu_us", lambda a, b: a <= 1.1 * b,
                       their_key="12b")),
        ]
    verdicts += websocket_targets(results)
    # HTTP/3: the native handler, and the ASGI adapter serving Hypercorn's own app.
    for ours, hypercorn in ((REFERENCE, "hypercorn"), ("nghttp2py-asgi", "hypercorn"),
                            (REFERENCE_UVLOOP, "hypercorn-uvloop"),
                            ("nghttp2py-asgi-uvloop", "hypercorn-uvloop")):
        verdicts.append(
            (f"tiny GET HTTP/3 (13): {ours}'s server CPU per request <= 1/3 of "
             f"{hypercorn}'s",
             *_compare(results, "13", ours, hypercorn, "cpu_us", lambda a, b: 3 * a <= b)))
    memory = _ok(_case(results, "7"), REFERENCE)
    verdicts += [
        ("1 MiB responses (3): MB/s >= 0.7x nghttpd's",
         *_compare(results, "3", REFERENCE, "nghttpd", "value", lambda a, b: a >= 0.7 * b)),
        ("idle connection (7): <= 16 KiB resident memory each",
         *((memory.value <= 16, "") if memory and memory.value is not None
           else (None, "not measured"))),
        ("p99 latency at the fixed rate (6), asyncio: <= Granian's (granian)",
         *_compare(results, "6", REFERENCE, "granian", "value", lambda a, b: a <= b)),
    ]
    return verdicts


def websocket_targets(results: Results) -> list[Verdict]:
    """Issue 11's targets for small WebSocket messages: server CPU per message at most half
    Uvicorn's and below Granian's. Both serve WebSockets over HTTP/1.1 only (10a); the
    HTTP/2 row (11a) is judged against those same HTTP/1.1 figures."""
    verdicts: list[Verdict] = []
    for loop, suffix in (("asyncio", ""), ("uvloop", "-uvloop")):
        for ours, key, over in ((f"{REFERENCE}{suffix}", "10a", "HTTP/1.1"),
                                (f"nghttp2py-asgi{suffix}", "10a", "HTTP/1.1"),
                                (f"{REFERENCE}{suffix}", "11a", "HTTP/2")):
            uvicorn, granian = f"uvicorn{suffix}", f"granian{suffix}"
            verdicts += [
                (f"WebSocket small messages, {ours} over {over} ({key}), {loop}: server CPU "
                 f"per message <= 0.5x Uvicorn's over HTTP/1.1 ({uvicorn}, 10a)",
                 *_compare(results, key, ours, uvicorn, "cpu_us", lambda a, b: a <= 0.5 * b,
                           their_key="10a")),
                (f"WebSocket small messages, {ours} over {over} ({key}), {loop}: server CPU "
                 f"per message < Granian's over HTTP/1.1 ({granian}, 10a)",
                 *_compare(results, key, ours, granian, "cpu_us", lambda a, b: a < b,
                           their_key="10a")),
            ]
    return verdicts


def benchmarks_section(results: Results, meta: dict, tables: str) -> str:
    """The generated part of BENCHMARKS.md: machine, versions, commands, targets, tables."""
    machine, versions = meta["machine"], meta["versions"]
    lines = [START, "", (f"_Generated by `bench/run.py` on {meta['started']} "
             f"(measured rounds per case: {meta['rounds']}, median reported)._"), "",
             "### Machine", "",
             (f"- CPU: {machine['cpu_model']}, {machine['cores']} cores; "
             f"{machine['memory_gib']} GiB RAM"),
             f"- OS: {machine['os']}, kernel {machine['kernel']}",
             f"- Pinning: {machine['pinning']}", "", "### Versions", ""]
    lines += [f"- {name}: `{value}`" for name, value in versions.items()]
    lines += ["", "### Server commands (`PORT` is a free loopback port)", "",
              ("Each Python server printed the event loop class it ran on; the harness "
              "stops the run if it is not the loop the row names."), ""]
    loops = meta.get("loops", {})
    for name, variants in meta["server_commands"].items():
        ran_on = f" — ran on `{loops[name]}`" if name in loops else ""
        for transport, command in variants.items():
            lines.append(f"- {name} ({transport}): `{' '.join(command)}`{ran_on}")
    lines += ["", ("h2load commands of every run are recorded in "
              "[`bench/results/latest.json`](bench/results/latest.json) "
              "(`cases[].outcomes[].rounds[].command`)."),
              "", "### Targets", ""]
    for text, ok, why in targets(results):
        lines.append(f"- {'[x]' if ok else '[ ]'} {text}" + (f" _({why})_" if why else ""))
    lines += ["", "### Results", "", "![benchmark chart](bench/results/latest.png)", "", tables,
              END]
    return "\n".join(lines) + "\n"


def update_benchmarks_md(path: Path, section: str) -> None:
    """Replace the generated section of BENCHMARKS.md (between the markers) with section."""
    text = path.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{path} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + section.rstrip("\n") + tail)
