"""Server programs in subprocesses: ``python -m nghttp2py MODULE:Handler`` and the examples.

Each prints one line once it listens (``serving on URL (try: ...)``) and must
exit with status 0 within 5 s of SIGINT. Used as::

    @pytest.fixture
    def program(tmp_path):
        programs = ServedPrograms(tmp_path)
        yield programs
        programs.kill()

    server = program([EXAMPLES / "hello.py"])        # or program(["-m", "nghttp2py", "m:H"])
    curl(server.url)
    server.stop()

Every program is started with ``--bind 127.0.0.1:0`` and ``--loop`` naming the
event loop of the current pass (``NGHTTP2PY_TEST_LOOP``) unless the test
gives its own.
"""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import ROOT, TEST_LOOP

EXAMPLES = ROOT / "examples"

# The peers talk to 127.0.0.1 directly, whatever proxy the environment names.
PEER_ENV = {name: value for name, value in os.environ.items()
            if not name.lower().endswith("_proxy")}

URL_LINE = re.compile(r"serving on (https?://\S+/) \(try: (.+)\)$")


class ServedProgram:
    """One server program running in a subprocess; ``url`` is where it listens."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path,
                 stderr_path: Path) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 -- closed by kill()
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                        env=env, cwd=cwd)
        self.first_line = self._read_first_line(timeout=10)
        match = URL_LINE.match(self.first_line)
        if match is None:
            self.kill()
            pytest.fail(f"unexpected first line {self.first_line!r} from {argv}\n{self.stderr()}")
        self.url, self.try_command = match.groups()

    def _read_first_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        stdout = self.process.stdout
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"no line on stdout within {timeout} s from {self.argv}\n{self.stderr()}")
        if not line:
            self.kill()
            pytest.fail(f"exited with {self.process.returncode} before listening: {self.argv}\n"
                        f"{self.stderr()}")
        return line.decode().rstrip("\n")

    def stderr(self) -> str:
        if not self._stderr.closed:  # kill() closes it
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGINT) -> None:
        """Signal the program: it must shut down gracefully and exit 0 within 5 s."""
        self.process.send_signal(signum)
        try:
            returncode = self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running 5 s after {signal.Signals(signum).name}\n"
                        f"{self.stderr()}")
        assert returncode == 0, self.stderr()
        assert "Traceback" not in self.stderr(), self.stderr()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stderr.close()


class ServedPrograms:
    """Starts programs (``programs(args, ...)``); ``kill()`` kills those still running.

    ``args`` follow the interpreter: a script path, or ``"-m", "nghttp2py", ...``.
    ``env`` defaults to the peers' environment with the checkout on PYTHONPATH;
    ``cwd`` to the checkout; ``bind`` and ``loop`` are added unless None.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServedProgram] = []

    def kill(self) -> None:
        for program in self.started:
            program.kill()

    def __call__(self, args: list[str | Path], *, tls: tuple[Path, Path] | None = None,
                 env: dict[str, str] | None = None, cwd: Path = ROOT,
                 bind: str | None = "127.0.0.1:0",
                 loop: str | None = TEST_LOOP) -> ServedProgram:
        argv = [sys.executable, *map(str, args)]
        if bind is not None:
            argv += ["--bind", bind]
        if loop is not None:
            argv += ["--loop", loop]
        if tls is not None:
            argv += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
        if env is None:
            env = dict(PEER_ENV, PYTHONPATH=str(ROOT))
        program = ServedProgram(argv, env=env, cwd=cwd,
                                stderr_path=self.tmp_path / f"stderr-{len(self.started)}.txt")
        self.started.append(program)
        return program
