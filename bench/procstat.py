"""CPU time and resident memory of a process tree, read from /proc."""
from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    """Return the text of a /proc file, or None if the process is gone."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def process_tree(pid: int) -> list[int]:
    """Return pid and all of its live descendants (via /proc/P/task/T/children)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 10_000:
        current = todo.pop()
        if current in seen or not os.path.exists(f"/proc/{current}"):
            continue
        seen.append(current)
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            text = _read(f"/proc/{current}/task/{tid}/children") or ""
            todo.extend(int(child) for child in text.split())
    return seen


def process_cpu_seconds(pid: int) -> float:
    """utime+stime of one process (all its threads) plus its waited-for children."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return 0.0
    # Field 2 (comm) may contain spaces: split after its closing parenthesis.
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5); utime..cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by pid and every live descendant."""
    return sum(process_cpu_seconds(p) for p in process_tree(pid))


def process_rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if gone or a kernel thread)."""
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kib(pid: int) -> int:
    """Resident memory of pid and its descendants in KiB."""
    return sum(process_rss_kib(p) for p in process_tree(pid))
