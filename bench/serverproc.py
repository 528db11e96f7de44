"""Start a server pinned to one CPU, wait until it answers, and always stop it."""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

SERVER_CPU = "0"


def free_port() -> int:
    """A currently unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> None:
    """Raise this process's open-file soft limit to its hard limit (inherited by children)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def answers_http1(port: int) -> bool:
    """True if a cleartext GET /hello on port gets an HTTP/1.1 200 status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.1 200")


class ServerError(RuntimeError):
    """The server exited early or never answered."""


class ServerProcess:
    """A benchmarked server in its own process group, pinned to SERVER_CPU.

    Use as a context manager: the whole process group is stopped on exit
    (SIGINT, then SIGTERM, then SIGKILL), whatever happened inside.
    """

    def __init__(self, command: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.command = ["taskset", "-c", SERVER_CPU, *command]
        self.env, self.log, self.cwd = env, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Pid of the server (taskset execs the command, so it keeps this pid)."""
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Self:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                         start_new_session=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def last_line(self) -> str:
        """The last non-empty line of the server's output, for error messages."""
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            lines = []
        if not lines:
            return "(no output)"
        shown = self.log.relative_to(self.cwd) if self.log.is_relative_to(self.cwd) else self.log
        return f"{lines[-1][:200]} (see {shown})"

    def wait_ready(self, port: int, tls: bool, timeout: float = 30.0,
                   http1: bool = False, lenient_http1: bool = False) -> None:
        """Poll with a one-request h2load until the server answers 200 (bounded by timeout).

        lenient_http1: poll with a plain HTTP/1.1 GET instead, for servers whose status
        line h2load refuses (Hypercorn's has no reason phrase).
        """
        scheme = "https" if tls else "http"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerError(f"server exited early: {self.last_line()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                if lenient_http1:
                    if answers_http1(port):
                        return
                else:
                    probe = subprocess.run(
                        ["h2load", *(["--h1"] if http1 else []), "-n", "1", "-c", "1",
                         f"{scheme}://127.0.0.1:{port}/hello"],
                        capture_output=True, text=True, timeout=5, check=False)
                    if "1 succeeded" in probe.stdout:
                        return
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)
        raise ServerError(f"server did not answer within {timeout:.0f}s: {self.last_line()}")

    def reported_loop(self, prefix: str, timeout: float = 5.0) -> str:
        """The loop class the server printed after prefix ('' if none within timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self.log.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if time.monotonic() >= deadline:
                return ""
            time.sleep(0.1)

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process group: SIGINT, SIGTERM after grace seconds, then SIGKILL."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # leftover workers of a multi-process server
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
