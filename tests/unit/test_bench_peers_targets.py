"""bench/peers_targets.py: issue #18's targets judged on a bench/peers.py document. Each
certgate/peer CPU ratio of the judged configuration (``serve --workers 2`` on SQLite) is held
against its limit, PostgreSQL against SQLite at 1.5x, every certgate cell's issuance count and
SCEP's failures at concurrency 16; a target whose cells a run lacks is not judged."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import REPO

BENCH = str(REPO / "bench")


@pytest.fixture(scope="module")
def targets() -> Iterator[ModuleType]:
    sys.path.insert(0, BENCH)
    try:
        import peers_targets

        yield peers_targets
    finally:
        sys.path.remove(BENCH)


def _ratio(protocol: str, peer: str, cpu: float | None, c: int = 1,
           certgate: str = "certgate w2 (sqlite)") -> dict[str, Any]:  # fmt: skip
    return {"protocol": protocol, "concurrency": c, "certgate": certgate, "peer": peer,
            "rate_ratio": 1.0, "cpu_ratio": cpu}  # fmt: skip


def _cell(protocol: str, c: int, *, issued: int = 10, expected: int = 10, dup: int = 0,
          errors: int = 0, store: str = "sqlite",
          kind: str = "certgate") -> dict[str, Any]:  # fmt: skip
    return {"protocol": protocol, "server": "certgate w2" if kind == "certgate" else "peer",
            "kind": kind, "store": store, "concurrency": c, "issued_server_side": issued,
            "issued_expected": expected, "duplicate_serials": dup, "errors": errors}  # fmt: skip


def _by_target(found: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(v["target"], v["concurrency"]): v for v in found}


def test_each_ratio_is_held_against_its_limit(targets: ModuleType) -> None:
    doc = {"ratios": [
        _ratio("acme", "pebble", 1.0), _ratio("acme", "pebble", 1.01, c=4),
        _ratio("acme", "acme2certifier", 0.1), _ratio("acme", "acme2certifier", 0.11, c=4),
        _ratio("scep", "micromdm scepserver", 0.69),
        _ratio("scep", "micromdm scepserver", 0.71, c=4),
        _ratio("est", "libest estserver", 0.25), _ratio("est", "libest estserver", 0.26, c=4),
    ]}  # fmt: skip
    found = _by_target(targets.verdicts(doc))
    assert len(found) == 8
    assert found[("acme cpu / pebble", 1)]["met"]  # at the limit is met
    assert not found[("acme cpu / pebble", 4)]["met"]
    assert found[("acme cpu / acme2certifier", 1)]["met"]
    assert not found[("acme cpu / acme2certifier", 4)]["met"]
    assert found[("scep cpu / micromdm scepserver", 1)]["met"]
    assert not found[("scep cpu / micromdm scepserver", 4)]["met"]
    assert found[("est cpu / libest estserver", 1)] == {
        "target": "est cpu / libest estserver", "concurrency": 1, "value": 0.25, "limit": 0.25,
        "met": True,
    }  # fmt: skip
    assert not found[("est cpu / libest estserver", 4)]["met"]
    # shown as kept, so a ratio just over its limit does not read as met
    text = "\n".join(targets.lines(targets.verdicts(doc)))
    assert "1.010x  <= 1x     NOT met" in text and "0.110x  <= 0.1x   NOT met" in text


def test_only_the_judged_configuration_is_held_to_the_peer_targets(targets: ModuleType) -> None:
    doc = {"ratios": [
        _ratio("est", "libest estserver", 0.9, certgate="certgate w2 (postgres)"),
        _ratio("est", "libest estserver", 0.9, certgate="certgate w1 x2 (postgres x2)"),
        _ratio("acme", "some other server", 5.0),
    ]}  # fmt: skip
    assert targets.verdicts(doc) == []


def test_a_peer_that_answered_nothing_meets_no_target(targets: ModuleType) -> None:
    (v,) = targets.verdicts({"ratios": [_ratio("acme", "pebble", None)]})
    assert v["met"] is False and v["value"] is None
    assert "n/a" in "\n".join(targets.lines([v]))


def test_postgresql_one_and_two_instances_at_most_one_and_a_half_sqlite(
    targets: ModuleType,
) -> None:
    doc = {"store_ratios": [
        {"protocol": "est", "concurrency": 16, "store": "postgres", "cpu_ratio_to_sqlite": 1.5,
         "db_cpu_ms_per_op": 1.0},
        {"protocol": "est", "concurrency": 16, "store": "postgres x2",
         "cpu_ratio_to_sqlite": 1.64, "db_cpu_ms_per_op": 1.0},
    ]}  # fmt: skip
    found = _by_target(targets.verdicts(doc))
    assert found[("est cpu postgres / sqlite", 16)]["met"]
    assert not found[("est cpu postgres x2 / sqlite", 16)]["met"]


def test_every_certgate_cell_must_issue_what_it_asked_without_duplicates(
    targets: ModuleType,
) -> None:
    doc = {"summary": [
        _cell("est", 1), _cell("est", 4, issued=9), _cell("acme", 1, dup=1),
        _cell("est", 1, kind="peer", issued=0),  # Pebble keeps nothing to count: not judged
    ]}  # fmt: skip
    found = [v for v in targets.verdicts(doc) if v.get("group") == "issued"]
    assert [v["met"] for v in found] == [True, False, False]
    text = "\n".join(targets.lines(targets.verdicts(doc)))
    assert "every certgate cell" not in text  # not all met: each failure has its line
    failing = [line for line in text.splitlines()[1:] if line.endswith("NOT met")]
    assert len(failing) == 2 and "9/10, 0 dup" in failing[0] and "10/10, 1 dup" in failing[1]
    all_met = {"summary": [_cell("est", 1), _cell("est", 4)]}
    lines = targets.lines(targets.verdicts(all_met))
    assert lines[1] == "  every certgate cell (2) issued what it asked, no duplicate: met"
    assert len(lines) == 2


def test_scep_at_concurrency_16_has_no_failure_and_no_duplicate(targets: ModuleType) -> None:
    def scep16(**kw: Any) -> list[dict[str, Any]]:
        doc = {"summary": [_cell("scep", 16, **kw), _cell("scep", 4, errors=3)]}
        return [v for v in targets.verdicts(doc) if v["target"].startswith("scep failures")]

    (clean,) = scep16()
    assert clean["met"] and clean["concurrency"] == 16
    (failed,) = scep16(errors=1)
    assert not failed["met"]
    (dup,) = scep16(dup=1)
    assert not dup["met"]
    # PostgreSQL's SCEP cells are not the judged configuration
    doc = {"summary": [_cell("scep", 16, store="postgres", errors=2)]}
    assert not [v for v in targets.verdicts(doc) if v["target"].startswith("scep failures")]


def test_a_run_without_a_targets_cells_judges_nothing(targets: ModuleType) -> None:
    assert targets.verdicts({}) == []
    assert targets.lines([]) == ["issue #18 targets (met / NOT met):"]
