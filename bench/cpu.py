"""CPU time of the processes under test (app server, Varnish, Redis), read from /proc.

psutil is not in the virtualenv, and /proc/<pid>/stat is all it would read here: utime and
stime (field 14, 15: every thread of the process, in clock ticks) and cutime and cstime (16, 17:
the times of the children the process has waited for). A tree's CPU at one instant is the sum of
utime + stime + cutime + cstime over the root and its live descendants, so a gunicorn worker that
exits mid-window is not lost: its own time moves into the master's cutime/cstime when the master
reaps it, and the worker that replaces it is a new descendant counted from 0. Only a process that
leaves the tree unreaped (its parent died first) takes its time with it; `delta` reports a lower
bound of such time as `lost_s`, and the processes that exited or started in the window.

Resolution: utime and stime are truncated to clock ticks (10 ms at USER_HZ 100), up to 20 ms per
process and snapshot, a few per cent of a 2-second slice of a busy core. So for a process alive in
both snapshots, with the same threads, the delta is taken in nanoseconds from
/proc/<pid>/task/<tid>/schedstat (each thread's time on a CPU, exact for a thread that is not
running: the servers are idle when the harness snapshots them) whenever it agrees with the tick
delta to within that truncation; otherwise (a thread started or ended in the window) the ticks.
"""

import os
from dataclasses import dataclass, field, replace
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
    threads: tuple = ()  # ((tid, ns on a CPU), ...) from schedstat; () when not read

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


def read_threads(pid: int, proc: Path = PROC) -> tuple:
    """((tid, ns on a CPU), ...) of a process's threads, () when unreadable."""
    out = []
    try:
        for task in (proc / str(pid) / "task").iterdir():
            try:
                out.append((int(task.name), int((task / "schedstat").read_text().split()[0])))
            except (OSError, ValueError, IndexError):
                return ()
    except OSError:
        return ()
    return tuple(sorted(out))


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
        trees = {name: tree(procs, pid) for name, pid in roots.items() if pid}
        return cls({name: {k: replace(p, threads=read_threads(p.pid, proc)) for k, p in t.items()}
                    for name, t in trees.items()})


@dataclass
class TreeDelta:
    seconds: float  # CPU (user + sys) the tree used between the two snapshots
    exited: int = 0  # processes of the first snapshot gone by the second
    started: int = 0  # processes of the second snapshot not in the first
    lost_s: float = 0.0  # lower bound of exited processes' time nobody in the tree reaped


def own_seconds(before: ProcTimes, after: ProcTimes) -> float:
    """CPU seconds one live process used between two snapshots: the schedstat nanoseconds when
    both snapshots saw the same threads and the figure agrees with the ticks (within the two
    truncations of utime and stime at each end), else the ticks."""
    ticks = (after.own - before.own) / CLK_TCK
    if before.threads and [t for t, _ in before.threads] == [t for t, _ in after.threads]:
        ns = (sum(n for _, n in after.threads) - sum(n for _, n in before.threads)) / 1e9
        if abs(ns - ticks) <= 4 / CLK_TCK:
            return ns
    return ticks


def tree_delta(before: dict, after: dict) -> TreeDelta:
    """CPU seconds between two snapshots of one tree (see the module docstring): survivors' own
    time (own_seconds) and the growth of their reaped children's time, new processes' whole time,
    minus what the exited ones had at the first snapshot (their final time is in the reaper's)."""
    survivors = [k for k in before if k in after]
    gone = [p for k, p in before.items() if k not in after]
    new = [p for k, p in after.items() if k not in before]
    reaped_growth = sum(after[k].reaped - before[k].reaped for k in survivors)
    known_of_gone = sum(p.own + p.reaped for p in gone)
    lost = max(0, known_of_gone - reaped_growth)
    seconds = (sum(own_seconds(before[k], after[k]) for k in survivors)
               + (reaped_growth + sum(p.own + p.reaped for p in new) - known_of_gone + lost) / CLK_TCK)
    return TreeDelta(seconds=seconds, exited=len(gone), started=len(new), lost_s=lost / CLK_TCK)


def delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, TreeDelta]:
    """{name: TreeDelta} for every tree seen in both snapshots (a root that was gone in either
    snapshot has no figure)."""
    return {name: tree_delta(before.trees[name], after.trees[name])
            for name in before.trees if before.trees[name] and after.trees.get(name)}
