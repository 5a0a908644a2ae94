"""Process trees for tests that check no child outlives the command that started it (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(root: int) -> dict[int, str]:
    """``root`` and all its descendants now: pid -> start time (tells a pid reused later apart)."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
            started[int(entry.name)] = fields[19]
    tree = {root} if root in started else set()
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return {pid: started[pid] for pid in tree}


def survivors(tree: dict[int, str]) -> list[int]:
    """The processes of ``tree`` still running (a zombie has ended; a reused pid is another process)."""
    alive = []
    for pid, start in tree.items():
        fields = _stat(pid)
        if fields is not None and fields[0] not in ("Z", "X") and fields[19] == start:
            alive.append(pid)
    return alive


def describe(pids: list[int]) -> dict[int, str]:
    """pid -> command line, for an assertion's message."""
    lines = {}
    for pid in pids:
        try:
            lines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            lines[pid] = "(gone)"
    return lines


def kill_survivors(tree: dict[int, str]) -> None:
    """Clean up after a failed test: SIGKILL what is left of ``tree``."""
    for pid in survivors(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
