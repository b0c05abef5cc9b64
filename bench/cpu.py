"""CPU time of the processes under test (app server, Varnish, Redis), read from /proc.

psutil is not in the virtualenv, and /proc/<pid>/stat is all it would read here: utime and
stime (field 14, 15: every thread of the process, in clock ticks) and cutime and cstime (16, 17:
the times of the children the process has waited for). A tree's CPU at one instant is the sum of
utime + stime + cutime + cstime over the root and its live descendants, so a gunicorn worker that
exits mid-window is not lost: its own time moves into the master's cutime/cstime when the master
reaps it, and the worker that replaces it is a new descendant counted from 0. Only a process that
leaves the tree unreaped (its parent died first) takes its time with it; `delta` reports a lower
bound of such time as `lost_s`, and the processes that exited or started in the window.

Resolution: one clock tick (10 ms at USER_HZ 100) per process and snapshot; the kernel scales the
ticks to the precise runtime, so the error does not grow with the window.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcTimes:
    """One process at one instant (times in clock ticks)."""

    pid: int
    ppid: int
    start: int  # starttime, ticks after boot: tells a reused pid from the process seen before
    own: int  # utime + stime
    reaped: int  # cutime + cstime

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start


def parse_stat(text: str) -> ProcTimes:
    """A /proc/<pid>/stat line. The command name (field 2) may hold spaces and parentheses, so
    the fields are counted from its closing parenthesis."""
    pid = int(text.split(" ", 1)[0])
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): field n is rest[n - 3].
    return ProcTimes(pid=pid, ppid=int(rest[1]), start=int(rest[19]),
                     own=int(rest[11]) + int(rest[12]), reaped=int(rest[13]) + int(rest[14]))


def read_all(proc: Path = PROC) -> dict[int, ProcTimes]:
    """Every process of the machine (one pass over /proc; processes gone meanwhile are skipped)."""
    out = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            out[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return out


def tree(procs: dict[int, ProcTimes], root: int) -> dict[tuple[int, int], ProcTimes]:
    """The root and its descendants, keyed by (pid, starttime)."""
    children = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p)
    out, todo = {}, [root] if root in procs else []
    while todo:
        p = procs[todo.pop()]
        out[p.key] = p
        todo.extend(c.pid for c in children.get(p.pid, ()) if c.key not in out)
    return out


@dataclass
class CpuSnapshot:
    """The process trees of some named roots ({"app": pid, "redis": pid, ...}) at one instant."""

    trees: dict[str, dict[tuple[int, int], ProcTimes]] = field(default_factory=dict)

    @classmethod
    def take(cls, roots: dict[str, int], proc: Path = PROC) -> "CpuSnapshot":
        if not roots:
            return cls()
        procs = read_all(proc)
        return cls({name: tree(procs, pid) for name, pid in roots.items() if pid})


@dataclass
class TreeDelta:
    seconds: float  # CPU (user + sys) the tree used between the two snapshots
    exited: int = 0  # processes of the first snapshot gone by the second
    started: int = 0  # processes of the second snapshot not in the first
    lost_s: float = 0.0  # lower bound of exited processes' time nobody in the tree reaped


def tree_delta(before: dict, after: dict) -> TreeDelta:
    """CPU seconds between two snapshots of one tree (see the module docstring)."""
    total = sum(p.own + p.reaped for p in after.values()) - sum(p.own + p.reaped for p in before.values())
    gone = [p for k, p in before.items() if k not in after]
    survivors = [k for k in before if k in after]
    reaped_growth = sum(after[k].reaped - before[k].reaped for k in survivors)
    known_of_gone = sum(p.own + p.reaped for p in gone)
    lost = max(0, known_of_gone - reaped_growth)
    return TreeDelta(seconds=(total + lost) / CLK_TCK, exited=len(gone),
                     started=sum(1 for k in after if k not in before), lost_s=lost / CLK_TCK)


def delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, TreeDelta]:
    """{name: TreeDelta} for every tree seen in both snapshots (a root that was gone in either
    snapshot has no figure)."""
    return {name: tree_delta(before.trees[name], after.trees[name])
            for name in before.trees if before.trees[name] and after.trees.get(name)}
