"""Worker processes: ``--workers N`` and ``--reload``.

A supervisor (the process the user started) holds the listening addresses and
runs N workers, each ``python -m nghttp2py`` serving the same app in a process
of its own:

- every bind is opened once by the supervisor and the listening socket handed
  to every worker: one accept queue, so a worker that stops listening leaves
  the connections waiting there to the others (reloads drop nothing);
- with ``--reuse-port`` a TCP bind is shared with ``SO_REUSEPORT`` instead: the
  supervisor reserves the port (resolving port 0) and every worker listens on
  it with a socket of its own, so the kernel spreads connections evenly; but
  connections waiting in a draining worker's own queue are reset, unless the
  system migrates them (Linux: ``sysctl net.ipv4.tcp_migrate_req=1``);
- a worker that dies is started again (one that exits on its own, after
  ``--max-requests``, too);
- SIGTERM or SIGINT drains every worker gracefully (GOAWAY, the started
  streams finish), a second one makes them close at once;
- SIGHUP replaces the workers one by one: each new worker is listening before
  the old one is told to drain, so no connection is refused;
- with ``--reload``, one worker is replaced so whenever a ``.py`` file under the
  watched directory changes.

Workers tell the supervisor they listen by writing a line to a pipe
(``--ready-fd``) and stop on their own when the supervisor is gone.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .binds import Bind, listening_socket

__all__ = ["Supervisor", "WorkerSockets"]

logger = logging.getLogger("nghttp2py")

READY_TIMEOUT = 30.0
# A worker that dies before it is ready this many times in a row: give up.
MAX_EARLY_DEATHS = 3


@dataclass
class WorkerSockets:
    """What every worker is told to listen on, and the sockets the supervisor holds for it."""

    worker_binds: list[str] = field(default_factory=list)
    inherited: list[int] = field(default_factory=list)
    held: list[socket.socket] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def add(self, bind: Bind, scheme: str, backlog: int = 1024, reuse_port: bool = False
            ) -> None:
        """Open ``bind`` for the workers (``reuse_port``: reserve its port); raises OSError."""
        if reuse_port and bind.kind == "tcp" and hasattr(socket, "SO_REUSEPORT"):
            reserved = _reserve_port(bind)
            self.held.append(reserved)
            host, port = reserved.getsockname()[:2]
            shown = bind.host or "localhost"
            if ":" in shown:
                shown = f"[{shown}]"
            self.urls.append(f"{scheme}://{shown}:{port}/")
            self.worker_binds += ["--bind", str(Bind("tcp", host=bind.host, port=port)),
                                  "--reuse-port"]
            return
        sock = listening_socket(bind, backlog=backlog)
        self.held.append(sock)
        self.inherited.append(sock.fileno())
        self.worker_binds += ["--bind", f"fd://{sock.fileno()}"]
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            self.urls.append(f"unix:{name}")
        else:
            host = bind.host or "localhost"
            self.urls.append(f"{scheme}://{f'[{host}]' if ':' in host else host}:{name[1]}/")

    def close(self) -> None:
        for sock in self.held:
            sock.close()
        self.held.clear()


def _reserve_port(bind: Bind) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket: it holds the port for the workers'."""
    if bind.host:
        family = socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM)[0][0]
    else:
        family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and not bind.host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind.host, bind.port))
    except OSError:
        sock.close()
        raise
    return sock


class _Worker:
    """One worker process and the pipe it says it is ready on."""

    def __init__(self, argv: list[str], inherited: list[int]) -> None:
        read_end, write_end = os.pipe()
        self.ready_pipe = read_end
        self.ready = False
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                [*argv, "--ready-fd", str(write_end), "--parent-pid", str(os.getpid())],
                pass_fds=[*inherited, write_end], start_new_session=True)
        finally:
            os.close(write_end)

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_ready(self, timeout: float = 0.0) -> bool:
        """Whether the worker has said it is ready (waiting up to ``timeout``)."""
        if not self.ready and self.ready_pipe >= 0:
            readable, _, _ = select.select([self.ready_pipe], [], [], timeout)
            if readable:
                self.ready = bool(os.read(self.ready_pipe, 64))
                os.close(self.ready_pipe)
                self.ready_pipe = -1
        return self.ready

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def close(self) -> None:
        if self.ready_pipe >= 0:
            os.close(self.ready_pipe)
            self.ready_pipe = -1


class Supervisor:
    """Runs ``count`` workers of ``argv`` (a ``python -m nghttp2py`` command line).

    ``reload_dir``: watch ``.py`` files there and replace the workers when one
    changes. :meth:`run` returns the exit status.
    """

    def __init__(self, argv: list[str], count: int, sockets: WorkerSockets, *,
                 reload_dir: Path | None = None) -> None:
        self.argv = argv
        self.count = count
        self.sockets = sockets
        self.reload_dir = reload_dir
        self.workers: list[_Worker] = []
        self.draining: list[_Worker] = []
        self._signals: list[int] = []
        self._early_deaths = 0

    def run(self, ready: Callable[[], object] | None = None) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, frame: self._signals.append(signum))
        try:
            for _ in range(self.count):
                self.workers.append(self._start())
            if not self._wait_ready(self.workers):
                logger.error("the workers did not start; stopping")
                self._stop(signal.SIGTERM)
                return 1
            if ready is not None:
                ready()
            return self._supervise()
        finally:
            self.sockets.close()

    def _start(self) -> _Worker:
        worker = _Worker(self.argv, self.sockets.inherited)
        logger.info("started worker %d", worker.pid)
        return worker

    def _wait_ready(self, workers: list[_Worker]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(worker.check_ready(0.05) for worker in workers):
            if any(worker.process.poll() is not None for worker in workers) \
                    or time.monotonic() > deadline or self._signals:
                return False
        return True

    def _supervise(self) -> int:
        stamps = self._source_stamps()
        next_look = time.monotonic() + RELOAD_POLL
        while True:
            while self._signals:
                signum = self._signals.pop(0)
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: replacing the workers one by one")
                    self._replace_all()
                else:
                    logger.info("%s: draining the workers", signal.Signals(signum).name)
                    return self._stop(signum)
            self._reap()
            if self.reload_dir is not None and time.monotonic() >= next_look:
                next_look = time.monotonic() + RELOAD_POLL
                changed = self._source_stamps()
                if changed != stamps:
                    stamps = changed
                    logger.info("a source file changed: reloading")
                    self._replace_all()
            time.sleep(0.1)

    def _reap(self) -> None:
        for worker in list(self.draining):
            if worker.process.poll() is not None:
                self.draining.remove(worker)
                worker.close()
        for index, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None:
                continue
            worker.close()
            if code == 0:
                logger.info("worker %d exited; starting another", worker.pid)
            else:
                logger.error("worker %d died (%s); starting another", worker.pid,
                             _exit_reason(code))
            early = not worker.ready
            self._early_deaths = self._early_deaths + 1 if early else 0
            if self._early_deaths >= MAX_EARLY_DEATHS:
                logger.error("workers keep dying before they listen; giving up")
                self._signals.append(signal.SIGTERM)
                return
            self.workers[index] = self._start()

    def _replace_all(self) -> None:
        for index, old in enumerate(list(self.workers)):
            new = self._start()
            if not self._wait_ready([new]):
                logger.error("the new worker %d did not start; keeping worker %d",
                             new.pid, old.pid)
                new.signal(signal.SIGKILL)
                new.process.wait()
                new.close()
                return
            self.workers[index] = new
            old.signal(signal.SIGTERM)
            self.draining.append(old)

    def _stop(self, signum: int) -> int:
        everyone = self.workers + self.draining
        for worker in everyone:
            worker.signal(signal.SIGTERM)
        second_sent = False
        while any(worker.process.poll() is None for worker in everyone):
            if self._signals and not second_sent:
                self._signals.clear()
                logger.info("second signal: closing every connection now")
                for worker in everyone:
                    worker.signal(signal.SIGTERM)
                second_sent = True
            time.sleep(0.05)
        for worker in everyone:
            worker.close()
        return 0

    def _source_stamps(self) -> dict[str, float]:
        """Modification times of the ``.py`` files under ``reload_dir``, virtualenvs and
        hidden directories left out."""
        if self.reload_dir is None:
            return {}
        stamps = {}
        for directory, subdirectories, files in os.walk(self.reload_dir):
            subdirectories[:] = [
                name for name in subdirectories
                if not name.startswith(".") and name not in _NOT_WATCHED
                and not os.path.exists(os.path.join(directory, name, "pyvenv.cfg"))]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    try:
                        stamps[path] = os.stat(path).st_mtime
                    except OSError:
                        continue
        return stamps


# Directories --reload does not look into (besides hidden ones and virtualenvs).
_NOT_WATCHED = frozenset(("__pycache__", "node_modules", "site-packages", "build", "dist"))
RELOAD_POLL = 0.5


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def watch_parent(parent_pid: int) -> bool:
    """Whether the supervisor that started this worker is still there."""
    return os.getppid() == parent_pid
