"""Headless Chromium for the tests, driven over the DevTools protocol on a pipe.

``--dump-dom`` with ``--virtual-time-budget`` dumps a page once its budget of
virtual time is spent, and virtual time waits for fetches but not for a
WebSocket: a page whose script writes a WebSocket's echo was sometimes dumped
before the echo came back (about one load in twenty, and in CI). Here the test
names what it waits for, a JavaScript expression, and the page's texts are read
as soon as it holds (or as they are at the deadline, for the assertion to show).

The protocol runs over ``--remote-debugging-pipe``: Chromium reads commands on
its fd 3 and writes answers and events on its fd 4, each a JSON text ended by a
NUL byte. No port, no WebSocket client.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from served import PEER_ENV

from conftest import require

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")

# Whether the page has loaded (its scripts ran), every element named exists, and
# ``until`` holds; ``until`` may call text(id).
READY = "(() => {{ const text = id => document.getElementById(id).textContent; " \
        "return document.readyState === 'complete' && " \
        "{ids}.every(id => document.getElementById(id)) && !!({until}); }})()"
# The texts of the elements named, or null for one the page does not have.
TEXTS = "JSON.stringify(Object.fromEntries({ids}.map(id => " \
        "[id, document.getElementById(id)?.textContent ?? null])))"


class DevToolsPipe:
    """A Chromium process and the DevTools session on its pipe."""

    def __init__(self, flags: list[str], profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()

        def wire_pipe() -> None:  # in the child, before exec: Chromium's fds 3 and 4
            os.dup2(commands_read, 3)
            os.dup2(answers_write, 4)

        # Chromium's own log goes to a file: a pipe nobody reads could fill and stall it.
        self.log = profile.with_name(profile.name + "-chromium.log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [require("chromium"), *CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}",
                 "--remote-debugging-pipe", "about:blank"],
                preexec_fn=wire_pipe, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=log,
                env=PEER_ENV)
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and return its result; events met on the way are dropped."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") != self._next_id:
                continue
            if "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            result: dict[str, Any] = answer["result"]
            return result

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._answers], [], [], remaining)[0]:
                raise TimeoutError(f"Chromium did not answer: {self.log_tail()}")
            chunk = os.read(self._answers, 65536)
            if not chunk:
                raise RuntimeError(f"Chromium closed its pipe: {self.log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def close(self) -> None:
        """Close the browser as a user would (it writes its net-log then), or kill it."""
        # Chromium may close its pipe before it answers.
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._answers)


def page_texts(url: str, ids: tuple[str, ...], *, profile: Path, flags: tuple[str, ...] = (),
               until: str = "true", timeout: float = 30.0) -> dict[str, str | None]:
    """Load ``url`` in headless Chromium and return the text of each element in ``ids``
    once the page has loaded, every one of them exists and the JavaScript expression
    ``until`` is true (it may call ``text(id)``), or as they are after ``timeout``
    seconds. ``flags`` are Chromium's, beside those every test uses."""
    browser = DevToolsPipe(list(flags), profile)
    try:
        target = browser.call("Target.createTarget", {"url": url})["targetId"]
        session = browser.call("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        ready = READY.format(ids=json.dumps(list(ids)), until=until)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Before the page's document replaces about:blank the expression is false
            # or throws, and a navigation can destroy the context it runs in (a
            # protocol error): either way, it is asked again.
            with contextlib.suppress(RuntimeError):
                answer = browser.call("Runtime.evaluate",
                                      {"expression": ready, "returnByValue": True},
                                      session=session)
                if answer["result"].get("value") is True:
                    break
            time.sleep(0.05)
        texts = browser.call("Runtime.evaluate",
                             {"expression": TEXTS.format(ids=json.dumps(list(ids))),
                              "returnByValue": True}, session=session)
        found: dict[str, str | None] = json.loads(texts["result"]["value"])
        return found
    finally:
        browser.close()
