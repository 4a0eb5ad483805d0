"""bench/peers.py's pure parts, without starting any server: one cell's figures (CPU per
operation, the idle CPU taken off, percentiles), the rounds folded into a summary, the ratios
certgate/peer and PostgreSQL/SQLite, the JSON document, its table and its charts, and the
readers of the peers' issued-certificate records."""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import REPO

BENCH = str(REPO / "bench")


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """bench/'s modules, imported as its scripts import each other (by bare name)."""
    sys.path.insert(0, BENCH)
    try:
        import charts
        import keypool
        import peers
        import peers_common
        import peers_est
        import peers_report
        import peers_scep
        import procs

        yield {
            "charts": charts,
            "keypool": keypool,
            "peers": peers,
            "common": peers_common,
            "report": peers_report,
            "est": peers_est,
            "scep": peers_scep,
            "procs": procs,
        }
    finally:
        sys.path.remove(BENCH)


def _row(common: ModuleType, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "server": "certgate w2", "kind": "certgate", "store": "sqlite", "protocol": "est",
        "concurrency": 4, "round_": 1, "ok": 100, "errors": 0, "elapsed": 2.0,
        "latencies_ms": [float(x) for x in range(1, 101)], "server_cpu_s": 0.5,
    }  # fmt: skip
    args.update(kw)
    row: dict[str, Any] = common.cell(**args)
    return row


def test_a_cell_has_rate_percentiles_and_cpu_per_operation(bench: dict[str, ModuleType]) -> None:
    row = _row(bench["common"], db_cpu_s=0.1, warmup=10)
    assert row["rate"] == 50.0
    assert row["p50_ms"] == 50.5 and row["p99_ms"] == 100.0
    assert row["server_cpu_ms_per_op"] == 5.0 and row["db_cpu_ms_per_op"] == 1.0
    assert row["issued_expected"] == 110


def test_the_idle_cpu_of_the_cell_is_taken_off_and_the_raw_figure_kept(
    bench: dict[str, ModuleType],
) -> None:
    # libest: 0.5 s in 2 s of which 0.1 core idle polling -> 0.3 s for 100 enrollments
    row = _row(bench["common"], idle_cpu_per_s=0.1)
    assert row["server_cpu_ms_per_op"] == 3.0
    assert row["server_cpu_raw_ms_per_op"] == 5.0 and row["idle_cpu_ms_per_s"] == 100.0
    # never below zero on a noisy idle window
    assert _row(bench["common"], idle_cpu_per_s=1.0)["server_cpu_ms_per_op"] == 0.0


def test_a_cell_with_no_success_does_not_divide_by_zero(bench: dict[str, ModuleType]) -> None:
    row = _row(bench["common"], ok=0, errors=5, latencies_ms=[])
    assert row["rate"] == 0.0 and row["p50_ms"] == 0.0 and row["errors"] == 5


def test_duplicates_counts_repeats(bench: dict[str, ModuleType]) -> None:
    assert bench["common"].duplicates([1, 2, 2, 3, 3, 3]) == 3
    assert bench["common"].duplicates([]) == 0


def _rows(common: ModuleType) -> list[dict[str, Any]]:
    rows = []
    for round_ in (1, 2):
        rows += [
            _row(common, round_=round_, elapsed=1.0 * round_, server_cpu_s=0.2),
            _row(common, round_=round_, store="postgres", server_cpu_s=0.3, db_cpu_s=0.1),
            _row(common, round_=round_, server="libest estserver", kind="peer",
                 store="index.txt", server_cpu_s=1.0, duplicate_serials=round_ - 1),
        ]  # fmt: skip
    return rows


def test_rounds_fold_into_one_summary_row_per_server_and_concurrency(
    bench: dict[str, ModuleType],
) -> None:
    summary = bench["report"].aggregate(_rows(bench["common"]))
    assert len(summary) == 3
    cg = next(r for r in summary if r["store"] == "sqlite")
    assert cg["rounds"] == 2 and cg["ok"] == 200
    assert cg["rate"] == 75.0 and cg["rate_min"] == 50.0 and cg["rate_max"] == 100.0
    assert cg["server_cpu_ms_per_op"] == 2.0
    peer = next(r for r in summary if r["kind"] == "peer")
    assert peer["duplicate_serials"] == 1


def test_a_round_that_answered_nothing_has_no_cpu_per_operation(
    bench: dict[str, ModuleType],
) -> None:
    """A hung server's round (Debian's Pebble at c=16) is rate 0, not 0 ms of CPU a flow."""
    common = bench["common"]
    hung = _row(common, round_=1, ok=0, errors=150, latencies_ms=[], server_cpu_s=0.0)
    fine = _row(common, round_=2, server_cpu_s=0.4)
    (row,) = bench["report"].aggregate([hung, fine])
    assert row["server_cpu_ms_per_op"] == fine["server_cpu_ms_per_op"] == 4.0
    assert row["p50_ms"] == fine["p50_ms"]
    assert row["rate"] == fine["rate"] / 2 and row["errors"] == 150


def test_ratios_compare_each_certgate_store_with_the_peer(bench: dict[str, ModuleType]) -> None:
    common = bench["common"]
    summary = bench["report"].aggregate(_rows(common))
    ratios = {r["certgate"]: r for r in bench["report"].ratios(summary)}
    assert set(ratios) == {"certgate w2 (sqlite)", "certgate w2 (postgres)"}
    assert ratios["certgate w2 (sqlite)"]["cpu_ratio"] == 0.2
    assert ratios["certgate w2 (postgres)"]["cpu_ratio"] == 0.3
    assert ratios["certgate w2 (sqlite)"]["rate_ratio"] == 1.5  # 75/s against 50/s
    (store,) = bench["report"].store_ratios(summary)
    assert store["cpu_ratio_to_sqlite"] == 1.5 and store["db_cpu_ms_per_op"] == 1.0


def test_the_document_is_json_with_its_table_and_charts(
    bench: dict[str, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = bench["common"]
    doc = bench["report"].document(
        _rows(common), command="bench/peers.py --quick", date="2026-12-04 04:00 UTC",
        load="5.1 4.9 4.0", notes={"est": "idle subtracted"},
    )  # fmt: skip
    again = json.loads(json.dumps(doc))
    assert set(again) == {"benchmark", "command", "date", "load", "co_run", "notes", "rows",
                          "summary", "ratios", "store_ratios", "targets"}  # fmt: skip
    assert again["benchmark"] == "peers" and len(again["rows"]) == 6
    text = bench["report"].table(again)
    assert "5.1 4.9 4.0" in text and "libest estserver" in text and "cpu 0.20x" in text
    # EST at 0.20x libest meets its 0.25x, PostgreSQL at 1.5x SQLite its 1.5x; these rows
    # count no certificate on the server side, so the issuance checks fail
    met = {(v["target"], v.get("group")): v["met"] for v in again["targets"]}
    assert met[("est cpu / libest estserver", None)] and met[("est cpu postgres / sqlite", None)]
    assert [m for (_, group), m in met.items() if group == "issued"] == [False, False]
    assert "issue #18 targets" in text and "0/200, 0 dup" in text
    path = tmp_path / "peers.json"
    path.write_text(json.dumps(doc))
    assert bench["peers"].main(["--table", str(path)]) == 0
    assert "certgate w2 (postgres)" in capsys.readouterr().out
    written = list(bench["peers"].chart_files(doc, tmp_path / "charts", "peers"))
    assert [p.name for p in written] == ["peers-est-rate.svg", "peers-est-cpu.svg"]
    for p in written:
        root = ET.fromstring(p.read_text())
        bars = root.findall(".//{http://www.w3.org/2000/svg}rect[@class='bar']")
        assert len(bars) == 3 and {b.get("fill") for b in bars} == {"#2b6cb0", "#9c4221"}


def test_the_co_run_factor_is_the_pairs_median_over_the_solos_and_is_reported(
    bench: dict[str, ModuleType],
) -> None:
    probe = bench["procs"].co_run_factor(rounds=2, loops=200_000)
    solo, pair = probe["solo_s"], probe["pair_s"]
    assert len(solo) == 2 and len(pair) == 4 and min(solo + pair) > 0
    median_pair, median_solo = sorted(pair)[1:3], sorted(solo)
    assert probe["factor"] == pytest.approx(sum(median_pair) / sum(median_solo), abs=0.01)
    common = bench["common"]
    doc = bench["report"].document(
        _rows(common), command="c", date="d", load="l", notes={},
        co_run={"before": {"factor": 1.04}, "after": {"factor": 1.61}},
    )  # fmt: skip
    assert "both cores busy / alone: 1.04x before, 1.61x after" in bench["report"].table(doc)
    assert "both cores busy" not in bench["report"].table(bench["report"].document(
        _rows(common), command="c", date="d", load="l", notes={}))  # fmt: skip


def test_the_peers_records_of_issued_certificates_are_read(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    index = tmp_path / "index.txt"
    index.write_text(
        "V\t271204040133Z\t\t01\tunknown\t/CN=a\nV\t271204040143Z\t\t02\tunknown\t/CN=b\n"
    )
    assert bench["est"]._index_serials(index) == ["01", "02"]
    assert bench["est"]._index_serials(tmp_path / "none.txt") == []
    depot = tmp_path / "depot"
    depot.mkdir()
    for name in ("ca.pem", "bench-1-7.2.pem", "bench-2-7.3.pem"):
        (depot / name).write_text("")
    assert sorted(bench["scep"]._depot_serials(depot)) == ["2", "3"]


def test_cpu_watch_counts_this_process_and_newcomers(bench: dict[str, ModuleType]) -> None:
    procs = bench["procs"]
    watch = procs.CpuWatch(lambda: [os.getpid()])
    watch.start()
    total = sum(i * i for i in range(2_000_000))  # some CPU for this process
    assert total > 0 and watch.stop() > 0


def test_measure_counts_cpu_from_the_drivers_clock_start(bench: dict[str, ModuleType]) -> None:
    """The driver's warm-up (before it calls the mark) is not in the CPU per operation."""
    common = bench["common"]
    issued: list[str] = []
    srv = common.Server("fake", "peer", "memory", lambda: [os.getpid()], lambda: list(issued))

    def drive(mark: Any, warm: int) -> dict[str, Any]:
        sum(i * i for i in range(warm))  # warm-up CPU, before the clock
        mark()
        issued.extend(["1", "2", "2"])
        return {"ok": 3, "errors": 0, "elapsed": 1.0, "latencies_ms": [1.0, 2.0, 3.0]}

    cold = common.measure(srv, "est", 1, 1, lambda mark: drive(mark, 3_000_000))
    assert cold["server_cpu_ms_per_op"] < 5  # the busy warm-up took far more than 15 ms
    assert cold["issued_server_side"] == 3 and cold["duplicate_serials"] == 1


def _spki(csr: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def test_the_drivers_reuse_their_pool_of_keys_but_never_a_name(
    bench: dict[str, ModuleType],
) -> None:
    """Issue #18: the drivers reuse a pool of client keys, and every request must still be a
    new issuance: two batches on three keys name eight different hosts."""
    keypool = bench["keypool"]
    pool = keypool.p256_pool(3)
    csrs = keypool.host_csrs(4, pool) + keypool.host_csrs(4, pool)
    assert len({_spki(c) for c in csrs}) == 3
    assert [_spki(c) for c in csrs[:3]] == [_spki(c) for c in csrs[3:6]]
    names = {c.subject.rfc4514_string() for c in csrs}
    assert len(names) == 8
    for csr in csrs:
        assert csr.is_signature_valid


def test_a_pool_of_zero_keys_gives_a_fresh_key_each_time(bench: dict[str, ModuleType]) -> None:
    keypool = bench["keypool"]
    csrs = keypool.host_csrs(3, keypool.p256_pool(0))
    assert len({_spki(c) for c in csrs}) == 3
