"""The report of bench/peers.py: the measured cells (bench/peers_common.py's :func:`cell`
rows) folded over the rounds, the ratios certgate/peer and PostgreSQL/SQLite, the verdicts on
issue #18's targets (bench/peers_targets.py), the table, the JSON document and the charts'
data. Pure: tests/unit/test_bench_peers.py checks it without peers."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from peers_targets import lines as target_lines
from peers_targets import verdicts


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
    # judged again from the figures, so a run stored before the verdicts were kept has them too
    lines.extend(target_lines(verdicts(doc)))
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
    doc = {
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
    doc["targets"] = verdicts(doc)
    return doc


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
