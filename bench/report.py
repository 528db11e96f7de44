"""Turn outcomes into Markdown tables and the JSON record."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from scenarios import Case, Outcome, Scenario
from servers.peers import REFERENCE


def number(value: float | None) -> str:
    """Human formatting: thousands separators, 2 significant decimals for small values."""
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _ratio(ours: float | None, theirs: float | None, name: str, higher_is_better: bool) -> str:
    """Ratio oriented so that >1 means nghttp2py is better, with its formula spelled out.

    'nghttp2py / granian = 4.29x' for higher-is-better metrics,
    'granian / nghttp2py = 3.56x' for lower-is-better ones (CPU, latency, memory).
    """
    if not ours or not theirs:
        return "—"
    if higher_is_better:
        return f"{REFERENCE} / {name} = {ours / theirs:.2f}x"
    return f"{name} / {REFERENCE} = {theirs / ours:.2f}x"


def case_table(scenario: Scenario, case: Case, outcomes: list[Outcome]) -> str:
    """Markdown table for one case: metric, server CPU µs/request and ratios."""
    better = "higher" if scenario.higher_is_better else "lower"
    cpu_header = "server CPU µs/conn" if scenario.kind == "churn" else "server CPU µs/req"
    ref = next((o for o in outcomes if o.server == REFERENCE and o.status == "ok"), None)
    lines = [f"**{case.key}. {case.title}** ({scenario.metric}: {better} is better; "
             f"CPU: lower is better; ratios > 1 mean nghttp2py is better)", "",
             f"| server | {scenario.metric} | {cpu_header} | {scenario.metric} ratio "
             f"| CPU ratio | notes |",
             "|---|---:|---:|---|---|---|"]
    for o in outcomes:
        if o.status != "ok":
            lines.append(f"| {o.server} | {o.status} | {o.status} | — | — | {o.note} |")
            continue
        is_ref = o.server == REFERENCE
        value_ratio = "(reference)" if is_ref else _ratio(
            ref and ref.value, o.value, o.server, scenario.higher_is_better)
        cpu_ratio = "(reference)" if is_ref else _ratio(
            ref and ref.cpu_us, o.cpu_us, o.server, higher_is_better=False)
        if scenario.kind == "memory":
            cpu_ratio = "—"
        lines.append(f"| {o.server} | {number(o.value)} | {number(o.cpu_us)} | {value_ratio} "
                     f"| {cpu_ratio} | {o.note} |")
    return "\n".join(lines) + "\n"


def markdown(results: list[tuple[Scenario, Case, list[Outcome]]], header: str) -> str:
    """The whole report: a header paragraph then one table per case."""
    parts = [header]
    current = None
    for scenario, case, outcomes in results:
        if scenario.number != current:
            current = scenario.number
            parts.append(f"### {scenario.number}. {scenario.title}\n")
        parts.append(case_table(scenario, case, outcomes))
    return "\n".join(parts)


def record(results: list[tuple[Scenario, Case, list[Outcome]]], meta: dict) -> dict:
    """JSON-ready record: metadata plus every outcome with its raw rounds."""
    return {**meta, "cases": [
        {"scenario": s.number, "scenario_title": s.title, "key": c.key, "title": c.title,
         "metric": s.metric, "higher_is_better": s.higher_is_better, "kind": s.kind,
         "tls": s.tls, "outcomes": [asdict(o) for o in outcomes]}
        for s, c, outcomes in results]}


def write_json(path: Path, data: dict) -> None:
    """Write data as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


PYTHON_PEERS = ("hypercorn", "granian", "twisted", "pynghttp2")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _ok(outcomes: list[Outcome], name: str) -> Outcome | None:
    return next((o for o in outcomes if o.server == name and o.status == "ok"), None)


UVLOOP = REFERENCE + "-uvloop"


def _case(results: list[tuple[Scenario, Case, list[Outcome]]], key: str) -> list[Outcome]:
    return next((outcomes for _s, case, outcomes in results if case.key == key), [])


def _compare(results: list[tuple[Scenario, Case, list[Outcome]]], key: str, ours: str,
             theirs: str, field_name: str, check) -> bool | None:
    """check(our value, their value) for one case, or None if either was not measured."""
    outcomes = _case(results, key)
    a, b = _ok(outcomes, ours), _ok(outcomes, theirs)
    if a is None or b is None or getattr(a, field_name) is None or getattr(b, field_name) is None:
        return None
    return check(getattr(a, field_name), getattr(b, field_name))


def targets(results: list[tuple[Scenario, Case, list[Outcome]]]) -> list[tuple[str, bool | None]]:
    """The issue's targets, each with its verdict from these results (None: not measured)."""
    verdicts = []
    for server, loop in ((REFERENCE, "asyncio"), (UVLOOP, "uvloop")):
        verdicts += [
            (f"tiny GET h2c (1a), {loop}: req/s >= 5x Granian's",
             _compare(results, "1a", server, "granian", "value", lambda a, b: a >= 5 * b)),
            (f"tiny GET h2c (1a), {loop}: server CPU per request <= 1.5x nghttpd's",
             _compare(results, "1a", server, "nghttpd", "cpu_us", lambda a, b: a <= 1.5 * b)),
            (f"tiny GET HTTP/1.1 (8a), {loop}: server CPU per request <= 0.5x Uvicorn's",
             _compare(results, "8a", server, "uvicorn", "cpu_us", lambda a, b: a <= 0.5 * b)),
            (f"tiny GET HTTP/1.1 (8a), {loop}: server CPU per request < Granian's",
             _compare(results, "8a", server, "granian", "cpu_us", lambda a, b: a < b)),
        ]
    best_tls = max((o for o in (_ok(_case(results, "2"), REFERENCE),
                                _ok(_case(results, "2"), UVLOOP)) if o), key=lambda o: o.value,
                   default=None)
    verdicts += [
        ("tiny GET over TLS (2): req/s >= 3x Granian's",
         _compare(results, "2", best_tls.server, "granian", "value", lambda a, b: a >= 3 * b)
         if best_tls else None),
        ("1 MiB responses (3): MB/s >= 0.7x nghttpd's",
         _compare(results, "3", REFERENCE, "nghttpd", "value", lambda a, b: a >= 0.7 * b)),
        ("idle connection (7): <= 16 KiB resident memory each",
         (lambda o: o.value <= 16 if o and o.value is not None else None)(
             _ok(_case(results, "7"), REFERENCE))),
        ("p99 latency at the fixed rate (6): <= Granian's",
         _compare(results, "6", REFERENCE, "granian", "value", lambda a, b: a <= b)),
    ]
    return verdicts


def benchmarks_section(results: list[tuple[Scenario, Case, list[Outcome]]], meta: dict,
                       tables: str) -> str:
    """The generated part of BENCHMARKS.md: machine, versions, commands, targets, tables."""
    machine, versions = meta["machine"], meta["versions"]
    lines = [START, "", f"_Generated by `bench/run.py` on {meta['started']} "
             f"(measured rounds per case: {meta['rounds']}, median reported)._", "",
             "### Machine", "",
             f"- CPU: {machine['cpu_model']}, {machine['cores']} cores; "
             f"{machine['memory_gib']} GiB RAM",
             f"- OS: {machine['os']}, kernel {machine['kernel']}",
             f"- Pinning: {machine['pinning']}", "", "### Versions", ""]
    lines += [f"- {name}: `{value}`" for name, value in versions.items()]
    lines += ["", "### Server commands (`PORT` is a free loopback port)", ""]
    for name, variants in meta["server_commands"].items():
        for transport, command in variants.items():
            lines.append(f"- {name} ({transport}): `{' '.join(command)}`")
    lines += ["", "h2load commands of every run are recorded in "
              "[`bench/results/latest.json`](bench/results/latest.json) "
              "(`cases[].outcomes[].rounds[].command`).",
              "", "### Targets", ""]
    mark = {True: "[x]", False: "[ ]", None: "[ ]"}
    lines += [f"- {mark[ok]} {text}" + (" _(not measured)_" if ok is None else "")
              for text, ok in targets(results)]
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
