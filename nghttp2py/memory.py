"""Giving memory back to the system after a burst of connections has closed.

glibc's allocator keeps the pages that thousands of closed connections freed
(nghttp2 sessions, buffers) for the next allocation; the process's resident
size stays at its peak. :class:`MemoryReleaser` asks glibc (``malloc_trim``)
to return free pages once many connections have closed, in a worker thread so
that the event loop never waits for it. Elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

__all__ = ["MemoryReleaser", "release_memory"]

logger = logging.getLogger("nghttp2py")

_trim: Callable[[int], int] | None = None
_looked_up = False


def release_memory() -> bool:
    """Return the allocator's free pages to the system; False where that is not possible."""
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            _trim = ctypes.CDLL(None).malloc_trim  # glibc: the process's own symbol
        except (OSError, AttributeError):
            _trim = None
    if _trim is None:
        return False
    _trim(0)
    return True


class MemoryReleaser:
    """Calls :func:`release_memory` (off the loop) after every ``every`` connections closed.

    The release waits ``delay`` seconds after the threshold is reached, so that a
    burst of closes is over before it runs, and runs at most once at a time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, every: int = 1000,
                 delay: float = 1.0) -> None:
        self._loop = loop
        self._every = every
        self._delay = delay
        self._closed = 0
        self._pending = False

    def connection_closed(self) -> None:
        self._closed += 1
        if self._closed >= self._every and not self._pending:
            self._closed = 0
            self._pending = True
            self._loop.call_later(self._delay, self._release)

    def _release(self) -> None:
        future = self._loop.run_in_executor(None, release_memory)
        future.add_done_callback(self._released)

    def _released(self, future: asyncio.Future[bool]) -> None:
        self._pending = False
        if not future.cancelled() and future.exception() is not None:
            logger.info("could not return memory to the system: %s", future.exception())
