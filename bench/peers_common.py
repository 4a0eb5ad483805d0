"""The parts of bench/peers.py that every protocol shares: a server under test (its process
tree, its database backends, its issued-certificate count), and one measured cell (one server,
one concurrency). The report of the cells is bench/peers_report.py.

Everything here but :func:`measure` and :class:`PgDatabase` is pure (no process is started),
so tests/unit/test_bench_peers.py checks it without peers."""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import CpuWatch, process_tree

#: ``psql`` against the trust-auth PostgreSQL the tests use (tests/pg_helpers.py).
PG_ADMIN = ["psql", "-X", "-At", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]


@dataclass
class Server:
    """A started server under test. ``pids`` lists its processes now (the whole tree);
    ``db_pids`` the PostgreSQL backends serving it (empty without PostgreSQL); ``issued``
    reads, on the server side, the serial numbers of the certificates it has issued so far."""

    name: str
    kind: str  # "certgate" or "peer"
    store: str  # "sqlite", "postgres", "postgres x2", or what the peer keeps (e.g. "index.txt")
    pids: Callable[[], Iterable[int]]
    issued: Callable[[], list[str]]
    db_pids: Callable[[], Iterable[int]] = lambda: ()
    idle_window: float = 0.0  # seconds of idle CPU to measure before the load (libest)
    info: dict[str, Any] = field(default_factory=dict)


class PgDatabase:
    """A fresh PostgreSQL database for one run (dropped by :meth:`drop`) and its backends."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}_{int(time.time() * 1000) % 10**10}"
        self._psql(f'CREATE DATABASE "{self.name}"')
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.name}"

    @staticmethod
    def _psql(sql: str, db: str = "postgres") -> str:
        done = subprocess.run(
            [*PG_ADMIN, "-d", db, "-c", sql], capture_output=True, text=True, check=True
        )
        return done.stdout

    def backends(self) -> list[int]:
        out = self._psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.name}'")
        return [int(x) for x in out.split()]

    def serials(self) -> list[str]:
        return self._psql("SELECT serial FROM certificates", self.name).split()

    def drop(self) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def sqlite_serials(path: Path) -> Callable[[], list[str]]:
    """Reads the serials in certgate's inventory (the certificates table) of a SQLite store."""

    def read() -> list[str]:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return [r[0] for r in conn.execute("SELECT serial FROM certificates")]

    return read


def tree(root: int) -> Callable[[], list[int]]:
    return lambda: process_tree(root)


def percentile(sorted_ms: Sequence[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    return float(sorted_ms[min(len(sorted_ms) - 1, int(p * len(sorted_ms)))])


def cell(
    *,
    server: str,
    kind: str,
    store: str,
    protocol: str,
    concurrency: int,
    round_: int,
    ok: int,
    errors: int,
    elapsed: float,
    latencies_ms: Iterable[float],
    server_cpu_s: float,
    db_cpu_s: float = 0.0,
    idle_cpu_per_s: float = 0.0,
    issued_before: int = 0,
    issued_after: int = 0,
    duplicate_serials: int = 0,
    driver_duplicate_serials: int = 0,
    warmup: int = 0,
    error_samples: Sequence[str] = (),
) -> dict[str, Any]:
    """One measured cell as the JSON row: rates, latencies, CPU per operation. The server's
    idle CPU (``idle_cpu_per_s`` x the cell's wall time) is subtracted from its CPU."""
    lat = sorted(latencies_ms)
    per_op = max(ok, 1)
    idle = idle_cpu_per_s * elapsed
    cpu = max(server_cpu_s - idle, 0.0)
    return {
        "protocol": protocol,
        "server": server,
        "kind": kind,
        "store": store,
        "concurrency": concurrency,
        "round": round_,
        "ok": ok,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rate": round(ok / elapsed, 2) if elapsed > 0 else 0.0,
        "p50_ms": round(statistics.median(lat), 2) if lat else 0.0,
        "p99_ms": round(percentile(lat, 0.99), 2),
        "server_cpu_ms_per_op": round(cpu * 1000 / per_op, 3),
        "server_cpu_raw_ms_per_op": round(server_cpu_s * 1000 / per_op, 3),
        "idle_cpu_ms_per_s": round(idle_cpu_per_s * 1000, 2),
        "db_cpu_ms_per_op": round(db_cpu_s * 1000 / per_op, 3),
        "issued_server_side": issued_after - issued_before,
        # what the server should have issued in the cell: the timed and the warm-up operations
        "issued_expected": ok + warmup,
        "duplicate_serials": duplicate_serials,
        "driver_duplicate_serials": driver_duplicate_serials,
        "error_samples": list(error_samples)[:5],
    }


def duplicates(serials: Iterable[Any]) -> int:
    seen: set[Any] = set()
    dup = 0
    for s in serials:
        if s in seen:
            dup += 1
        seen.add(s)
    return dup


def measure(
    srv: Server,
    protocol: str,
    concurrency: int,
    round_: int,
    drive: Callable[[Callable[[], None]], Mapping[str, Any]],
) -> dict[str, Any]:
    """Run ``drive`` (one timed batch against ``srv``) and read the server's CPU and issued
    certificates around it. ``drive`` gets a function to call when its clock starts (after
    its warm-up, whose CPU is then not counted) and returns ok, errors, elapsed, latencies_ms
    and may return warmup, serials and error_samples."""
    idle = 0.0
    if srv.idle_window:
        watch = CpuWatch(srv.pids)
        watch.start()
        time.sleep(srv.idle_window)
        idle = watch.stop() / srv.idle_window
    before = srv.issued()
    server_w, db_w = CpuWatch(srv.pids), CpuWatch(srv.db_pids)

    def clock_started() -> None:
        server_w.start()
        db_w.start()

    clock_started()  # for a driver without warm-up, which need not call it
    r = drive(clock_started)
    server_cpu, db_cpu = server_w.stop(), db_w.stop()
    after = srv.issued()
    return cell(
        server=srv.name,
        kind=srv.kind,
        store=srv.store,
        protocol=protocol,
        concurrency=concurrency,
        round_=round_,
        ok=int(r["ok"]),
        errors=int(r["errors"]),
        elapsed=float(r["elapsed"]),
        latencies_ms=r["latencies_ms"],
        server_cpu_s=server_cpu,
        db_cpu_s=db_cpu,
        idle_cpu_per_s=idle,
        issued_before=len(before),
        issued_after=len(after),
        duplicate_serials=duplicates(after),
        driver_duplicate_serials=(
            duplicates(r["serials"]) if "serials" in r else int(r.get("driver_duplicates", 0))
        ),
        warmup=int(r.get("warmup", 0)),
        error_samples=r.get("error_samples", ()),
    )
