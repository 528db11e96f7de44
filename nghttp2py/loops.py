"""The event loop a blocking server runs on: asyncio's own or uvloop, always by name.

Nothing here picks a loop because it happens to be installed: the loop is the
one named by the caller, else by the environment variable ``NGHTTP2PY_LOOP``,
else asyncio's own. A loop policy installed by the program is not consulted
either, so ``"asyncio"`` always means asyncio's selector loop.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import select
import selectors
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger("nghttp2py")

__all__ = ["LOOPS", "LOOP_ENVIRONMENT_VARIABLE", "choose_loop", "handle_shutdown_signals",
           "loop_factory", "remove_shutdown_signals", "run"]

LOOPS = ("asyncio", "uvloop")
LOOP_ENVIRONMENT_VARIABLE = "NGHTTP2PY_LOOP"


def choose_loop(name: str | None = None) -> str:
    """``name``, else ``$NGHTTP2PY_LOOP``, else ``"asyncio"``.

    Raises ValueError for a name that is not in :data:`LOOPS`.
    """
    origin = "loop"
    if name is None:
        name = os.environ.get(LOOP_ENVIRONMENT_VARIABLE) or "asyncio"
        origin = LOOP_ENVIRONMENT_VARIABLE
    if name not in LOOPS:
        raise ValueError(f"{origin} must be one of {', '.join(LOOPS)}, not {name!r}")
    return name


def loop_factory(name: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop of the kind :func:`choose_loop` names.

    Raises ValueError for an unknown name and RuntimeError when uvloop is
    named but not installed.
    """
    if choose_loop(name) == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise RuntimeError(
                "the uvloop event loop is not installed: pip install nghttp2py[uvloop]"
            ) from None
        return uvloop.new_event_loop
    if hasattr(selectors, "EpollSelector"):
        return lambda: asyncio.SelectorEventLoop(FairEpollSelector())
    return asyncio.SelectorEventLoop


class FairEpollSelector(selectors.EpollSelector):
    """epoll that hands the loop at most ``max_events`` ready sockets per poll.

    asyncio runs the callbacks of every socket one poll returned before it
    polls again, and EpollSelector asks for all of them: a burst of thousands
    of connections arriving, or closing, held every other connection for as
    long (hundreds of milliseconds). Capped, the rest stay ready for the next
    poll, which epoll serves round-robin, so that no socket waits long.
    """

    max_events = 64

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # EpollSelector.select, with the cap (it uses the same private fields).
        if timeout is None:
            timeout = -1
        elif timeout <= 0:
            timeout = 0
        else:
            timeout = math.ceil(timeout * 1e3) * 1e-3
        ready: list[tuple[selectors.SelectorKey, int]] = []
        try:
            events = self._selector.poll(timeout, self.max_events)  # type: ignore[attr-defined]
        except InterruptedError:
            return ready
        fd_to_key = self._fd_to_key  # type: ignore[attr-defined]
        for fd, event in events:
            key = fd_to_key.get(fd)
            if key:
                mask = (selectors.EVENT_WRITE if event & ~select.EPOLLIN else 0) \
                    | (selectors.EVENT_READ if event & ~select.EPOLLOUT else 0)
                ready.append((key, mask & key.events))
        return ready


def run(coroutine: Coroutine[Any, Any, None], loop: str | None = None) -> None:
    """Run ``coroutine`` to completion on a new event loop of the kind :func:`choose_loop` names.

    Raises as :func:`loop_factory` does, closing the coroutine unstarted.
    """
    try:
        factory = loop_factory(loop)
    except (ValueError, RuntimeError):
        coroutine.close()
        raise
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(coroutine)
        return
    event_loop = factory()
    try:
        asyncio.set_event_loop(event_loop)
        event_loop.run_until_complete(coroutine)
        event_loop.run_until_complete(event_loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        event_loop.close()


SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handle_shutdown_signals(loop: asyncio.AbstractEventLoop, closing: Callable[[], bool],
                            close: Callable[[], object], abort: Callable[[], object]) -> None:
    """SIGINT or SIGTERM: ``close()`` gracefully; another while ``closing()``: ``abort()``.

    Undo with :func:`remove_shutdown_signals`.
    """
    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if closing():
            logger.info("second %s: closing every connection now", name)
            abort()
        else:
            logger.info("%s: shutting down gracefully", name)
            close()

    for signum in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)


def remove_shutdown_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Undo :func:`handle_shutdown_signals`."""
    for signum in SHUTDOWN_SIGNALS:
        loop.remove_signal_handler(signum)
