"""The distributions a user installs: ``make dist`` builds the sdist and, from it, a wheel.

The sdist carries what building needs and no tests (they need the repository around
them); the wheel, installed on its own into a fresh venv, serves HTTP/2 and carries
the typing stub. The build runs once per session, shared by the xdist workers.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, curl
from nghttp2py import __version__

# The build of the wheel (it compiles the extension) is counted in the first test's time.
pytestmark = [pytest.mark.loop_independent, pytest.mark.timeout(600)]

SERVER = textwrap.dedent("""\
    import logging, sys
    import nghttp2py

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

    class Handler(nghttp2py.BaseRequestHandler):
        def on_headers(self):
            self.send_response(200, body=f"{nghttp2py.__version__} {nghttp2py.__file__}")

    nghttp2py.HTTP2Server(("127.0.0.1", 0), Handler).serve_forever()
    """)


def source_files() -> set[str]:
    """The files of the tree that building the package needs, relative to the root."""
    wanted = {"src": (".pyx", ".pxi", ".pxd"), "include": (".pxd",),
              "nghttp2py": (".py", ".pyi", ".typed")}
    return {path.relative_to(ROOT).as_posix()
            for directory, suffixes in wanted.items()
            for path in (ROOT / directory).iterdir() if path.suffix in suffixes}


def package_files() -> set[str]:
    return {name for name in source_files() if name.startswith("nghttp2py/")}


@pytest.fixture(scope="session")
def dist(tmp_path_factory, worker_id) -> Path:
    """The directory ``make dist`` filled: built by the first worker that asks, under a
    lock; the others wait for it and reuse it."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    directory = shared / "dist"
    done = shared / "dist.done"
    with open(shared / "dist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            env = {k: v for k, v in os.environ.items()
                   if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
            result = subprocess.run(["make", "-s", "dist", f"DISTDIR={directory}"], cwd=ROOT,
                                    env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"make dist failed:\n{result.stdout}{result.stderr}"
            done.touch()
    return directory


def pinned(name: str) -> str:
    """``name==VERSION`` as requirements-dev.txt pins it."""
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.strip()
    raise AssertionError(f"{name} is not pinned in requirements-dev.txt")


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, f"{pattern} in {directory}: {found}"
    return found[0]


def test_sdist_has_what_building_needs_and_no_tests(dist):
    with tarfile.open(only(dist, "nghttp2py-*.tar.gz")) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    expected = source_files() | {"pyproject.toml", "setup.py", "LICENSE", "README.md"}
    assert expected <= names, f"missing from the sdist: {sorted(expected - names)}"
    assert not [n for n in names if n.startswith("tests/") or n.endswith((".c", ".so"))]


def test_wheel_has_the_extension_and_the_stub(dist):
    with zipfile.ZipFile(only(dist, "nghttp2py-*.whl")) as wheel:
        names = set(wheel.namelist())
    assert package_files() <= names, f"missing from the wheel: {package_files() - names}"
    assert [n for n in names if n.startswith("nghttp2py/_nghttp2.") and n.endswith(".so")]
    assert all(n.startswith(("nghttp2py/", "nghttp2py-")) for n in names), sorted(names)


def test_wheel_in_a_fresh_venv_serves_h2c(dist, tmp_path, server_process):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    env = {"PYTHONNOUSERSITE": "1"}  # nothing from outside the venv
    outside = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-index", "--no-deps", str(only(dist, "nghttp2py-*.whl"))],
                   check=True, timeout=120, env=dict(outside, **env))
    # Its one dependency, as pip would install it with the wheel: the pinned version.
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--only-binary", ":all:", pinned("httptools")],
                   check=True, timeout=300, env=dict(outside, **env))
    site = subprocess.run(
        [python, "-c", "import importlib.metadata as m, sysconfig;"
                       "print(m.version('nghttp2py'), sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, env=dict(outside, **env)).stdout.split()
    version, purelib = site
    installed = Path(purelib, "nghttp2py")
    for name in ("_nghttp2.pyi", "py.typed"):
        assert (installed / name).is_file(), f"{name} not installed"

    server = server_process(SERVER, python=python, env=env)
    result = curl("--http2-prior-knowledge", f"http://127.0.0.1:{server.port}/")
    assert (result.status, result.http_version) == (200, "2")
    assert result.body.decode() == f"{version} {installed / '__init__.py'}"
    assert version == __version__
