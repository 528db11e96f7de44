"""Run a fuzz target under atheris (coverage-guided, libFuzzer's engine).

    python fuzz/run.py session [libFuzzer options]   # e.g. -max_total_time=600
    python fuzz/run.py inflater -runs=100000

The corpus lives in fuzz/corpus/TARGET (created and seeded with valid traffic
on first use); a crash is written to fuzz/crashes/. Turn a crash into a
regression test by moving its file to fuzz/regressions/TARGET/.
``make fuzz TARGET=session FUZZ_SECONDS=600`` is the same.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent

with atheris.instrument_imports():
    import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(targets.TARGETS)}}} [options]")
    name = sys.argv[1]
    corpus = HERE / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in targets.seeds(name):
        path = corpus / hashlib.sha1(seed).hexdigest()
        if not path.exists():
            path.write_bytes(seed)
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    argv = [sys.argv[0], *sys.argv[2:], f"-artifact_prefix={crashes}{os.sep}", str(corpus)]
    atheris.Setup(argv, targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
