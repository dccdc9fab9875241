"""Whether a local process still runs: the one answer the cluster lock (dead holders) and the sandbox
(stale state, shutdown) both need. Standard library only."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie; a pid we may not signal counts as alive."""
    if pid <= 0:  # 0 and negatives address process groups, never one process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process whose parent has not reaped it yet is a zombie: it exists but holds nothing.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children first-level first), read from /proc; empty where /proc is absent."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def same_session(pid: int) -> bool:
    """Whether `pid` belongs to this process's session (a detached sandbox does not: it outlives us on purpose)."""
    try:
        return os.getsid(pid) == os.getsid(0)
    except OSError:
        return False
