"""Ends the processes of a private local Ray when its driver ends, even by ``kill -9``.

Ray's GCS and raylet share the driver's fate, but its agents (dashboard agent, runtime-env agent) first try
to report the raylet's death to the GCS that died with it, and wait about a minute for that call. :func:`watch`
starts this module as a small process in its own session, holding a pipe from the driver: while the pipe is
open it notes, every second, the processes under Ray's head processes (pid and start time); when the pipe
closes (the driver ended, however) it kills the noted processes still running, and exits.

    python .../skulens/engines/ray_reaper.py <pid> [<pid> ...]   # Ray's head processes; the driver holds stdin
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")
#: Seconds between two looks at Ray's process tree while the driver runs.
LOOK_EVERY_S = 1.0
#: The running watchers (their pipes stay open as long as this process lives).
_WATCHERS: list[subprocess.Popen] = []


def process_table() -> dict[int, tuple[int, str]]:
    """Every process as ``pid -> (parent pid, start time)`` (start time in clock ticks since boot, from /proc)."""
    table = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while being read
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # fields 3.. of proc(5): state, ppid, ...
        table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def tree(roots: set[int], table: dict[int, tuple[int, str]]) -> set[tuple[int, str]]:
    """``(pid, start time)`` of ``roots`` and every process below them."""
    found = {pid for pid in roots if pid in table}
    grew = True
    while grew:
        below = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return {(pid, table[pid][1]) for pid in found}


def reap(roots: set[int], pipe: int) -> set[int]:
    """Note the tree under ``roots`` until ``pipe`` reads end-of-file, then SIGKILL what of it still runs (a pid
    whose start time changed is another process and is left alone). Returns the killed pids."""
    noted: set[tuple[int, str]] = set()
    while True:
        noted |= tree(roots, process_table())
        readable, _, _ = select.select([pipe], [], [], LOOK_EVERY_S)
        if readable and not os.read(pipe, 4096):
            break
    table = process_table()
    killed = set()
    for pid, started in noted:
        if pid != os.getpid() and table.get(pid, (0, None))[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:  # ended meanwhile
                pass
    return killed


def watch(roots: list[int]) -> subprocess.Popen | None:
    """Start a watcher that kills the process trees under ``roots`` once this process has ended (None where /proc
    is missing: not Linux)."""
    if not PROC.is_dir() or not roots:
        return None
    watcher = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *map(str, roots)],  # by path: imports nothing of skulens
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a kill of the driver's process group does not reach it
    )
    _WATCHERS.append(watcher)
    return watcher


if __name__ == "__main__":
    reap({int(pid) for pid in sys.argv[1:]}, sys.stdin.fileno())
