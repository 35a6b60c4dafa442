"""The watcher that ends a local Ray's processes with its driver (issue 24: after kill -9 of the driver, Ray's
agents stayed about a minute). A small process tree stands in for Ray's head processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skulens.engines.ray_reaper import process_table, tree, watch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watcher reads /proc")


def _running(pids: set[int]) -> set[int]:
    """The pids of ``pids`` that still run (zombies have ended)."""
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _tree_with_children(children: int) -> tuple[subprocess.Popen, set[int]]:
    """A shell (the "head process") with ``children`` sleeping children, once they all run."""
    root = subprocess.Popen(["sh", "-c", "sleep 600 & " * children + "wait"], start_new_session=True)
    for _ in range(10_000):  # bounded: the shell forks its children in a moment
        below = {pid for pid, _ in tree({root.pid}, process_table())} - {root.pid}
        if len(below) == children:
            return root, below
    root.kill()
    pytest.fail("the shell did not start its children")


def test_the_watched_tree_is_killed_when_the_driver_pipe_closes():
    root, children = _tree_with_children(2)
    bystander, bystander_children = _tree_with_children(1)  # not watched: left alone
    try:
        watcher = watch([root.pid])
        assert watcher is not None and _running(children) == children
        watcher.stdin.close()  # what the driver's death does to the pipe
        assert watcher.wait(timeout=120) == 0
        root.wait(timeout=120)
        assert _running(children | {root.pid}) == set()
        assert _running(bystander_children | {bystander.pid}) == bystander_children | {bystander.pid}
    finally:
        for process in (root, bystander):
            process.kill()
            process.wait()
        subprocess.run(["kill", "-9", *map(str, _running(children | bystander_children))], check=False)


def test_tree_follows_parents_and_start_times():
    table = {1: (0, "1"), 10: (1, "5"), 11: (10, "6"), 12: (11, "7"), 20: (1, "8")}
    assert tree({10}, table) == {(10, "5"), (11, "6"), (12, "7")}
    assert tree({99}, table) == set()
