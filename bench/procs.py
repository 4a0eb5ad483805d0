"""Process plumbing shared by the benchmarks: free loopback ports, waiting for a server, stopping
it by its own process id, and the CPU time of a process tree (or of PostgreSQL backends) read
from /proc, which is the figure that survives a busy machine."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` in clock ticks, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (from /proc/PID/stat)."""
    return sum(cpu_ticks(p) or 0 for p in pids) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (a server process and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


class CpuWatch:
    """CPU seconds spent by a changing set of processes between :meth:`start` and :meth:`stop`.

    ``pids`` is asked at both ends: a process present at the start counts its growth, one that
    appeared during the window counts all its CPU (it was born in it); one that ended during the
    window is lost (servers under load keep their workers and connections)."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self.before: dict[int, int] = {}

    def start(self) -> None:
        self.before = {p: t for p in self.pids() if (t := cpu_ticks(p)) is not None}

    def stop(self) -> float:
        total = 0
        for pid in set(self.pids()) | set(self.before):
            now = cpu_ticks(pid)
            if now is not None:
                total += now - self.before.get(pid, 0)
        return total / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: A fixed pure-Python loop that prints the CPU seconds it took (:func:`co_run_factor`).
_SPIN = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "x = 0\n"
    "for i in range(int(sys.argv[1])):\n"
    "    x = (x * 31 + i) % 1000003\n"
    "print(time.process_time() - t)\n"
)


def _spin(copies: int, loops: int) -> list[float]:
    """CPU seconds of ``copies`` runs of the loop started together."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SPIN, str(loops)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(copies)
    ]
    return [float(p.communicate()[0]) for p in procs]


def co_run_factor(rounds: int = 5, loops: int = 2_000_000) -> dict[str, Any]:
    """How much more CPU time the same work takes when both of this machine's cores are busy:
    one fixed loop alone, then two copies at once, ``rounds`` times alternately; ``factor`` is
    the pairs' median over the solos' median. Why: on a virtual machine whose two vCPUs share
    a physical core (or a host busy elsewhere), a process's CPU seconds grow with what runs
    beside it, so CPU per operation of a server with two busy workers (and a driver) moves
    with the machine, not only with the server. Every run records it."""
    solo: list[float] = []
    pair: list[float] = []
    for _ in range(rounds):
        solo += _spin(1, loops)
        pair += _spin(2, loops)
    solo, pair = [round(x, 3) for x in solo], [round(x, 3) for x in pair]
    factor = statistics.median(pair) / max(statistics.median(solo), 0.001)
    return {"solo_s": solo, "pair_s": pair, "factor": round(factor, 2)}
