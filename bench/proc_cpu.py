"""CPU seconds of process trees, read from /proc (utime, stime and the reaped children's)."""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                pass
    return children


def _own(pid: int) -> float:
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime..cstime


def cpu_seconds(pid: int) -> float:
    """CPU of the process `pid` and of all its descendants (alive, or reaped by them)."""
    children = _children()
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += _own(current)
        todo.extend(children.get(current, []))
    return total


def cpu_split(pid: int, marker: str) -> tuple[float, float]:
    """(CPU of the tree under `pid` outside the subtrees whose command line holds
    `marker`, CPU of those subtrees): a worker's own processes and its sandboxes."""
    children = _children()
    outside = inside = 0.0
    todo = [(pid, False)]
    while todo:
        current, within = todo.pop()
        within = within or marker in _cmdline(current)
        if within:
            inside += _own(current)
        else:
            outside += _own(current)
        todo.extend((child, within) for child in children.get(current, []))
    return outside, inside
