"""Issue #18's targets, judged on a bench/peers.py document (its ratios, store ratios and
summary), so that a run says itself which targets it met instead of a person reading the
table. The thresholds are the issue's, in one place (:data:`RATIO_TARGETS`,
:data:`STORE_LIMIT`); a run that lacks a target's cells judges nothing for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

#: the certgate configuration the issue judges against the peers
JUDGED = "certgate w2 (sqlite)"


class RatioTarget(NamedTuple):
    protocol: str
    peer: str
    limit: float  # certgate's server CPU per operation / the peer's, at most


RATIO_TARGETS = (
    RatioTarget("acme", "pebble", 1.0),
    RatioTarget("acme", "acme2certifier", 0.1),
    RatioTarget("scep", "micromdm scepserver", 0.7),
    RatioTarget("est", "libest estserver", 0.25),  # libest's idle polling subtracted
)

#: certgate's own CPU per operation on PostgreSQL (one or two instances) / on SQLite, at most
STORE_LIMIT = 1.5

#: the concurrency at which SCEP must have no failure and no duplicate serial
SCEP_CLEAN_AT = 16


def verdicts(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One verdict per target and concurrency found in ``doc``: target, concurrency, value,
    limit, met."""
    out: list[dict[str, Any]] = []
    for t in RATIO_TARGETS:
        for q in doc.get("ratios", ()):
            if (q["protocol"], q["certgate"], q["peer"]) == (t.protocol, JUDGED, t.peer):
                out.append(_verdict(f"{t.protocol} cpu / {t.peer}", q, q["cpu_ratio"], t.limit))
    for q in doc.get("store_ratios", ()):
        name = f"{q['protocol']} cpu {q['store']} / sqlite"
        out.append(_verdict(name, q, q["cpu_ratio_to_sqlite"], STORE_LIMIT))
    for r in _certgate_cells(doc.get("summary", ())):
        short = r["issued_server_side"] != r["issued_expected"] or r["duplicate_serials"]
        out.append(
            {
                "target": f"{r['protocol']} {r['server']} ({r['store']}) issued what was "
                "asked, no duplicate",
                "concurrency": r["concurrency"],
                "value": f"{r['issued_server_side']}/{r['issued_expected']}, "
                f"{r['duplicate_serials']} dup",
                "limit": "equal, 0",
                "met": not short,
                "group": "issued",
            }
        )
        if r["protocol"] == "scep" and r["concurrency"] == SCEP_CLEAN_AT and _judged(r):
            out.append(
                {
                    "target": "scep failures and duplicate serials",
                    "concurrency": r["concurrency"],
                    "value": f"{r['errors']} failed, {r['duplicate_serials']} dup",
                    "limit": "0, 0",
                    "met": r["errors"] == 0 and r["duplicate_serials"] == 0,
                }
            )
    return out


def _verdict(name: str, q: Mapping[str, Any], value: float | None, limit: float) -> dict[str, Any]:
    # a ratio without a denominator (a peer that answered nothing) meets nothing
    return {
        "target": name,
        "concurrency": q["concurrency"],
        "value": value,
        "limit": limit,
        "met": value is not None and value <= limit,
    }


def _certgate_cells(summary: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in summary if r["kind"] == "certgate"]


def _judged(r: Mapping[str, Any]) -> bool:
    return f"{r['server']} ({r['store']})" == JUDGED


def lines(found: Iterable[Mapping[str, Any]]) -> list[str]:
    """The verdicts as the table's last block; the certgate cells' issuance checks in one line
    when all are met, else one line for each that is not."""
    found = list(found)
    issued = [v for v in found if v.get("group") == "issued"]
    shown = [v for v in found if v.get("group") != "issued" or not v["met"]]
    out = ["issue #18 targets (met / NOT met):"]
    if issued and all(v["met"] for v in issued):
        out.append(f"  every certgate cell ({len(issued)}) issued what it asked, no duplicate: met")
    for v in shown:
        value = v["value"] if isinstance(v["value"], str) else _fmt(v["value"])
        limit = v["limit"] if isinstance(v["limit"], str) else f"<= {v['limit']:g}x"
        verdict = "met" if v["met"] else "NOT met"
        out.append(f"  c={v['concurrency']:<3} {v['target']:<36} {value:>14}  {limit:<9} {verdict}")
    return out


def _fmt(x: float | None) -> str:
    # three decimals, as the ratios are kept: 0.103x must not read as a met 0.10x
    return "n/a" if x is None else f"{x:.3f}x"
