"""The parts of bench/peers.py that every protocol shares: a server under test (its process
tree, its database backends, its issued-certificate count), one measured cell (one server, one
concurrency) and the report: ratios certgate/peer, the table, the JSON document and the charts.

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


# -- the report ------------------------------------------------------------------------------


def aggregate(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, server, store, concurrency): the mean over the rounds of rate and
    CPU per operation, the worst p99, errors and duplicates summed, and the rounds' spread.
    A round that answered nothing (a hung server) counts with rate 0, but has no CPU per
    operation or latency: those are the means of the rounds that answered."""
    groups: dict[tuple[str, str, str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        key = (r["protocol"], r["server"], r["store"], int(r["concurrency"]))
        groups.setdefault(key, []).append(r)
    out = []
    for (protocol, server, store, c), rs in groups.items():
        answered = [r for r in rs if r["ok"] > 0] or rs
        out.append(
            {
                "protocol": protocol,
                "server": server,
                "kind": rs[0]["kind"],
                "store": store,
                "concurrency": c,
                "rounds": len(rs),
                "rate": round(statistics.fmean(r["rate"] for r in rs), 2),
                "rate_min": min(r["rate"] for r in rs),
                "rate_max": max(r["rate"] for r in rs),
                "p50_ms": round(statistics.fmean(r["p50_ms"] for r in answered), 2),
                "p99_ms": max(r["p99_ms"] for r in rs),
                "server_cpu_ms_per_op": round(
                    statistics.fmean(r["server_cpu_ms_per_op"] for r in answered), 3
                ),
                "db_cpu_ms_per_op": round(
                    statistics.fmean(r["db_cpu_ms_per_op"] for r in answered), 3
                ),
                "idle_cpu_ms_per_s": round(statistics.fmean(r["idle_cpu_ms_per_s"] for r in rs), 2),
                "ok": sum(r["ok"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "issued_server_side": sum(r["issued_server_side"] for r in rs),
                "issued_expected": sum(r.get("issued_expected", 0) for r in rs),
                "duplicate_serials": max(
                    max(r["duplicate_serials"], r.get("driver_duplicate_serials", 0)) for r in rs
                ),
            }
        )
    return out


def ratios(summary: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """certgate / peer per protocol, concurrency and certgate store: rate and server CPU per
    operation (< 1 for CPU means certgate spends less)."""
    rows = list(summary)
    peers_by_name: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["kind"] == "peer":
            peers_by_name.setdefault((r["protocol"], r["concurrency"]), []).append(r)
    out = []
    for r in rows:
        if r["kind"] != "certgate":
            continue
        for p in peers_by_name.get((r["protocol"], r["concurrency"]), []):
            out.append(
                {
                    "protocol": r["protocol"],
                    "concurrency": r["concurrency"],
                    "certgate": f"{r['server']} ({r['store']})",
                    "peer": p["server"],
                    "rate_ratio": _div(r["rate"], p["rate"]),
                    "cpu_ratio": _div(r["server_cpu_ms_per_op"], p["server_cpu_ms_per_op"]),
                }
            )
    return out


def _div(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def store_ratios(summary: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """certgate's own CPU per operation on PostgreSQL / on SQLite, per protocol and
    concurrency (the database server's CPU beside it, not in it)."""
    rows = [r for r in summary if r["kind"] == "certgate"]
    sqlite = {(r["protocol"], r["concurrency"]): r for r in rows if r["store"] == "sqlite"}
    out = []
    for r in rows:
        base = sqlite.get((r["protocol"], r["concurrency"]))
        if r["store"] == "sqlite" or base is None:
            continue
        out.append(
            {
                "protocol": r["protocol"],
                "concurrency": r["concurrency"],
                "store": r["store"],
                "cpu_ratio_to_sqlite": _div(
                    r["server_cpu_ms_per_op"], base["server_cpu_ms_per_op"]
                ),
                "db_cpu_ms_per_op": r["db_cpu_ms_per_op"],
            }
        )
    return out


COLUMNS = (
    ("protocol", "{}", 6),
    ("server", "{}", 18),
    ("store", "{}", 12),
    ("concurrency", "{}", 3),
    ("rate", "{:.1f}", 9),
    ("p50_ms", "{:.1f}", 8),
    ("p99_ms", "{:.1f}", 8),
    ("errors", "{}", 6),
    ("server_cpu_ms_per_op", "{:.2f}", 9),
    ("db_cpu_ms_per_op", "{:.2f}", 8),
    ("issued", "{}", 11),
    ("duplicate_serials", "{}", 4),
)
HEADINGS = ("proto", "server", "store", "c", "ops/s", "p50 ms", "p99 ms", "errors",
            "cpu ms/op", "db ms/op", "issued/exp", "dup")  # fmt: skip


def table(doc: Mapping[str, Any]) -> str:
    """The report of a peers JSON document as text: the summary, then the ratios."""
    lines = [f"# {doc.get('command', '')}", f"# {doc.get('date', '')}  load: {doc.get('load')}"]
    if doc.get("co_run"):  # procs.co_run_factor: the machine's cost of two busy cores
        before, after = (doc["co_run"][k]["factor"] for k in ("before", "after"))
        lines.append(f"# CPU time of one loop with both cores busy / alone: {before:.2f}x before, "
                     f"{after:.2f}x after")  # fmt: skip
    lines.append("  ".join(h.rjust(w) for h, (_, _, w) in zip(HEADINGS, COLUMNS, strict=True)))
    for r in doc["summary"]:
        r = {**r, "issued": f"{r['issued_server_side']}/{r.get('issued_expected', '?')}"}
        lines.append("  ".join(f.format(r[k]).rjust(w) for k, f, w in COLUMNS))
    lines.append("")
    lines.append("certgate / peer (rate; server CPU per operation, < 1 = certgate cheaper):")
    for q in doc["ratios"]:
        lines.append(
            f"  {q['protocol']:<5} c={q['concurrency']:<3} {q['certgate']:<28} / {q['peer']:<16}"
            f" rate {_fmt(q['rate_ratio'])}  cpu {_fmt(q['cpu_ratio'])}"
        )
    if doc.get("store_ratios"):
        lines.append("certgate CPU per operation, PostgreSQL / SQLite (db server CPU apart):")
        for q in doc["store_ratios"]:
            lines.append(
                f"  {q['protocol']:<5} c={q['concurrency']:<3} {q['store']:<12}"
                f" {_fmt(q['cpu_ratio_to_sqlite'])}  (postgres {q['db_cpu_ms_per_op']:.2f} ms/op)"
            )
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def document(
    rows: list[dict[str, Any]],
    *,
    command: str,
    date: str,
    load: str,
    notes: Mapping[str, Any],
    co_run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    summary = aggregate(rows)
    return {
        "benchmark": "peers",
        "command": command,
        "date": date,
        "load": load,
        "co_run": dict(co_run or {}),
        "notes": dict(notes),
        "rows": rows,
        "summary": summary,
        "ratios": ratios(summary),
        "store_ratios": store_ratios(summary),
    }


def chart_data(doc: Mapping[str, Any], protocol: str, metric: str) -> dict[str, Any] | None:
    """bench/charts.py input for one protocol: one bar per server, store and concurrency;
    ``metric`` is "rate" (operations/s) or "server_cpu_ms_per_op"."""
    rows = [r for r in doc["summary"] if r["protocol"] == protocol]
    if not rows:
        return None
    unit = "operations/s" if metric == "rate" else "server CPU ms per operation"
    results, references = [], []
    for r in sorted(rows, key=lambda r: (r["concurrency"], r["server"], r["store"])):
        row: dict[str, Any] = {
            "label": f"{r['server']} {r['store']} c={r['concurrency']}",
            "rate": r[metric],
        }
        if r["kind"] == "peer":  # bench/charts.py draws references in their own colour
            references.append(row)
            continue
        if metric == "rate":
            row.update(p50_ms=r["p50_ms"], p99_ms=r["p99_ms"])
        results.append(row)
    return {
        "references": references,
        "benchmark": f"peers {protocol}",
        "unit": unit,
        "command": doc["command"],
        "date": f"{doc['date']} (load {doc['load']})",
        "results": results,
    }
