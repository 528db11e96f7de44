"""The fuzz targets of fuzz/ (make fuzz), bounded: each runs under atheris for a few
seconds from its seeds, and every input saved in fuzz/regressions/TARGET/ (a crash
found once) is replayed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

FUZZ = ROOT / "fuzz"
SECONDS = 5

pytestmark = pytest.mark.loop_independent  # the targets run their own asyncio loop


def fuzz_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT), str(FUZZ))))


@pytest.mark.parametrize("target", ["session", "inflater"])
def test_target_survives_a_bounded_run(target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [sys.executable, str(FUZZ / "run.py"), target, f"-max_total_time={SECONDS}",
         "-timeout=10", "-rss_limit_mb=2048"],
        cwd=tmp_path, env=fuzz_env(), capture_output=True, text=True, timeout=SECONDS + 60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr, result.stderr[-3000:]


def regression_inputs() -> list[tuple[str, Path]]:
    return [(directory.name, path)
            for directory in sorted((FUZZ / "regressions").glob("*"))
            for path in sorted(directory.iterdir()) if not path.name.startswith(".")]


@pytest.mark.parametrize("target, path", regression_inputs(),
                         ids=[f"{t}-{p.name}" for t, p in regression_inputs()])
def test_regression_input(target, path):
    script = (f"import targets; targets.TARGETS[{target!r}]"
              f"(open({str(path)!r}, 'rb').read())")
    result = subprocess.run([sys.executable, "-c", script], env=fuzz_env(), cwd=FUZZ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
