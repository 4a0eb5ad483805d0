"""certgate's own CPU per ACME flow on SQLite and on PostgreSQL (issue #18), with PostgreSQL's
backend CPU counted apart, in interleaved rounds (A/B on a busy machine).

    .venv/bin/python bench/acme_store_cpu.py [--rounds 4] [--flows 60] [--concurrency 4]
                                             [--plain]

Three (or, with ``--plain``, four) ``certgate serve --workers 1`` servers run side by side:
SQLite, PostgreSQL with the repository :func:`protocols.acme.repository.open_repository`
chooses, and with ``--plain`` PostgreSQL with the SQLAlchemy Core ACME repository (the plain
path, patched in by :mod:`bench.acme_store_plain`'s runner). Each round drives ``--flows``
flows (bench/acme_flow.py) through each server in turn; the figures are the sums over rounds:
server CPU ms per flow from /proc, and for PostgreSQL the CPU of the database's backends.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from acme_flow import drive, run_loop
from acme_servers import start_certgate, stop
from peers_common import PgDatabase
from procs import CpuWatch, process_tree

_PLAIN = Path(__file__).resolve().parent / "acme_store_plain.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--flows", type=int, default=60, help="flows per server per round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--plain", action="store_true", help="also PostgreSQL on Core ACME")
    args = parser.parse_args()
    variants: list[tuple[str, bool, tuple[str, ...]]] = [
        ("sqlite", False, ()),
        ("postgres", True, ()),
    ]
    if args.plain:
        variants.append(("postgres-core", True, (sys.executable, str(_PLAIN))))
    servers: list[tuple[str, Any, str, PgDatabase | None]] = []
    totals: dict[str, list[float]] = {name: [0.0, 0.0, 0] for name, _, _ in variants}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, pg, prefix in variants:
                db = PgDatabase("certgate_bench_acme") if pg else None
                (Path(tmp) / name).mkdir()
                proc, url = start_certgate(
                    Path(tmp) / name, 1, store_url=db.url if db else "", prefix=prefix
                )
                servers.append((name, proc, url, db))
            for r in range(args.rounds):
                for name, proc, url, db in servers:
                    server = CpuWatch(lambda p=proc: process_tree(p.pid))  # type: ignore[misc]
                    backends = CpuWatch(db.backends if db else list)
                    server.start()
                    backends.start()
                    got = run_loop(drive(url, args.flows, args.concurrency, None, f"{name}{r}"))
                    cpu, pg_cpu = server.stop(), backends.stop()
                    assert got["errors"] == 0, got["error_samples"]
                    totals[name][0] += cpu
                    totals[name][1] += pg_cpu
                    totals[name][2] += args.flows
                    print(
                        f"round {r} {name:14} server {cpu * 1000 / args.flows:6.2f} ms/flow"
                        f"  pg backends {pg_cpu * 1000 / args.flows:6.2f} ms/flow",
                        flush=True,
                    )
            time.sleep(0.1)
    finally:
        for _, proc, _, db in servers:
            stop(proc)
            if db:
                db.drop()
    base = totals["sqlite"][0] / totals["sqlite"][2]
    for name, (cpu, pg_cpu, flows) in totals.items():
        per = cpu * 1000 / flows
        print(
            f"{name:14} server {per:6.2f} ms/flow ({cpu * 1000 / flows / (base * 1000):.2f}x "
            f"SQLite)  pg backends {pg_cpu * 1000 / flows:6.2f} ms/flow  ({flows} flows)"
        )


if __name__ == "__main__":
    main()
