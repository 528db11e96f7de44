"""Lint and types as tests: each tool runs as its own command, configured in pyproject.toml,
and any finding fails the test with the tool's report.

- ruff over every Python file of the repository;
- mypy --strict over the public package nghttp2py/;
- mypy.stubtest: the compiled extension against its stub nghttp2py/_nghttp2.pyi
  (tests/stubtest-allowlist.txt lists, with reasons, what it cannot see in Cython);
- cython-lint over the Cython sources (src/, include/).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest

from conftest import ROOT

pytestmark = pytest.mark.loop_independent

SCRIPTS = sysconfig.get_path("scripts")

COMMANDS = {
    "ruff": [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
    "mypy": [sys.executable, "-m", "mypy"],
    "stubtest": [sys.executable, "-m", "mypy.stubtest", "--allowlist",
                 "tests/stubtest-allowlist.txt", "nghttp2py._nghttp2"],
    "cython-lint": [os.path.join(SCRIPTS, "cython-lint"), "src", "include",
                    "nghttp2py/_nghttp2.pxd"],
}


@pytest.mark.parametrize("tool", COMMANDS)
def test_clean(tool, tmp_path):
    env = dict(os.environ,
               MYPY_CACHE_DIR=str(tmp_path / "mypy"),  # no cache shared between workers
               PATH=SCRIPTS + os.pathsep + os.environ["PATH"])  # cython-lint runs pycodestyle
    result = subprocess.run(COMMANDS[tool], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{tool} found:\n{result.stdout}{result.stderr}"
