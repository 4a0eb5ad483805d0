"""certgate's instructions per ACME flow on SQLite and on PostgreSQL (issue #18), counted by
callgrind, which a busy machine does not change (bench/acme_store_cpu.py's /proc CPU does).

    .venv/bin/python bench/acme_store_callgrind.py [--flows 100] [--plain]

Each server (``certgate serve --workers 1`` under ``valgrind --tool=callgrind
--instr-atstart=no``: SQLite, PostgreSQL, and with ``--plain`` PostgreSQL on the Core ACME
repository) is driven by bench/acme_flow.py at concurrency 4: a first drive of 20 flows and a
second of 20 + ``--flows``, each counted apart (``callgrind_control -i on``, ``-d``); the
difference over ``--flows`` is the instructions of one flow, registrations and warm-up flows
cancelled out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from acme_flow import drive, run_loop
from acme_servers import start_certgate, stop
from peers_common import PgDatabase

_PLAIN = Path(__file__).resolve().parent / "acme_store_plain.py"


def _instructions(dump: Path, timeout: float = 120) -> int:
    """The ``totals:`` of a callgrind dump, once written (``callgrind_control -d`` only asks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dump.exists():
            for line in reversed(dump.read_text().splitlines()):
                if line.startswith("totals:"):
                    return int(line.split()[1])
        time.sleep(0.5)
    raise RuntimeError(f"callgrind wrote no {dump}")


def count(tmp: Path, name: str, flows: int, store_url: str, plain: bool) -> float:
    out = tmp / f"cg.{name}.out"
    prefix: tuple[str, ...] = (
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
    )  # fmt: skip
    if plain:
        prefix += (sys.executable, str(_PLAIN))
    (tmp / name).mkdir()
    proc, url = start_certgate(tmp / name, 1, store_url=store_url, prefix=prefix, timeout=600)
    try:
        pid = str(proc.pid)
        figures = []
        for dump, (n, tag) in enumerate(((20, "a"), (20 + flows, "b")), 1):
            subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
            got = run_loop(drive(url, n, 4, None, f"{name}{tag}", flow_timeout=300))
            assert got["errors"] == 0, got["error_samples"]
            subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            figures.append(_instructions(out.with_name(f"{out.name}.{dump}")))
    finally:
        stop(proc)
    return (figures[1] - figures[0]) / flows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--plain", action="store_true", help="also PostgreSQL on Core ACME")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = count(Path(tmp), "sqlite", args.flows, "", False)
        for name, plain in (("postgres", False), ("postgres-core", True))[: 2 if args.plain else 1]:
            db = PgDatabase("certgate_bench_acme_cg")
            try:
                results[name] = count(Path(tmp), name, args.flows, db.url, plain)
            finally:
                db.drop()
    for name, per in results.items():
        ratio = per / results["sqlite"]
        print(f"{name:14} {per / 1e6:7.3f} M instructions per flow ({ratio:.2f}x SQLite)")


if __name__ == "__main__":
    main()
