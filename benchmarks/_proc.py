"""Run a command and measure its wall time, CPU time and memory (whole process tree).

Linux only, no dependency (psutil is not installed): the tree is found from ``/proc/<pid>/stat``
(parent pids) and its resident memory is the sum of ``VmRSS`` over the process and every
descendant, sampled every ``interval`` seconds. Summed RSS counts pages shared between processes
(libraries, fork copy-on-write) once per process, so it is an upper bound of the memory really
used; a spike shorter than the interval can be missed. The kernel's exact high-water mark of the
largest single process (``ru_maxrss`` from ``wait4``, descendants included) is kept too.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> tuple[int, int]:
    """Sum of RSS (bytes) over ``root`` and its descendants, and the number of processes."""
    tree, todo, total, count = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        total += _rss(pid)
        count += 1
        todo.extend(tree.get(pid, ()))
    return total, count


@dataclass
class Measured:
    """What one command cost. Times in seconds, memory in bytes, ``samples`` = (epoch, rss)."""

    cmd: list[str]
    returncode: int
    wall: float
    cpu: float
    peak_tree_rss: int
    max_process_rss: int
    max_processes: int
    started_at: float
    load_before: float
    load_after: float
    samples: list[tuple[float, int]] = field(default_factory=list, repr=False)

    def peak_between(self, start: float, end: float) -> int:
        """Largest sampled tree RSS within the epoch interval [start, end] (0 if none)."""
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


def run_measured(
    cmd: list[str], env: dict[str, str], cwd: Path, log: Path, interval: float = 0.25
) -> Measured:
    """Run ``cmd`` to completion (stdout and stderr to ``log``) while sampling its memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    samples: list[tuple[float, int]] = []
    peak = {"rss": 0, "procs": 0}
    done = threading.Event()
    load_before = os.getloadavg()[0]
    started_at = time.time()
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

        def sample() -> None:
            while not done.is_set():
                rss, procs = tree_rss(proc.pid)
                samples.append((time.time(), rss))
                peak["rss"] = max(peak["rss"], rss)
                peak["procs"] = max(peak["procs"], procs)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4, not Popen.wait: it also returns the child's resource usage (CPU, ru_maxrss)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    return Measured(
        cmd=cmd,
        returncode=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_tree_rss=peak["rss"],
        max_process_rss=usage.ru_maxrss * 1024,  # kilobytes on Linux
        max_processes=peak["procs"],
        started_at=started_at,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        samples=samples,
    )
