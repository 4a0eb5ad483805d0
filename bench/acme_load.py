"""Full ACME issuance flows per second: certgate (`serve --workers 2`, SQLite) and Pebble in
the same run, with the same driver.

    .venv/bin/python bench/acme_load.py [--flows 300] [--c16-flows 3000] [--pebble-flows 150]

One flow = newOrder (one fresh name) -> authz (POST-as-GET) -> challenge POST {} -> poll the
authz until valid -> finalize with a fresh P-256 CSR -> poll the order until valid ->
certificate download. Each concurrent worker has its own account (registered before timing),
its own keep-alive connection, and re-uses the Replay-Nonce of its previous response, as real
clients do.

The driver shares the machine's cores with the server under test, so it is kept light: uvloop,
and a minimal HTTP/1.1 client (:class:`Connection`) instead of aiohttp's, which halves the
driver's CPU per flow. Both servers get the same code path. Each run also prints the server's
and the driver's CPU milliseconds per flow (from /proc, so comparable on a busy machine
where the wall-clock rates are not).

Both servers skip challenge validation alike: Pebble with PEBBLE_VA_ALWAYS_VALID=1, certgate
with `[testing] acme_always_valid = true`. Pebble: Debian package, PEBBLE_VA_NOSLEEP=1,
PEBBLE_WFE_NONCEREJECT=0, concurrency 1 only (Debian's 2.4 deadlocks at concurrency >= 4).
Pebble only speaks HTTPS; certgate's listener is plain HTTP (keep-alive makes the TLS
handshake a one-off per connection). Targets (issue #4): certgate c=1 >= 1.0x Pebble c=1;
certgate c=16 >= 3.5x Pebble c=1.

The driver lives in bench/acme_flow.py (flows) and bench/acme_http.py (its HTTP client), the
servers under test in bench/acme_servers.py; this script measures and reports.
"""

from __future__ import annotations

import argparse
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/ is the script's directory, so its sibling modules import by name
from acme_flow import drive, run_loop
from acme_servers import cpu_seconds, process_tree, start_certgate, start_pebble, stop


def measured(
    proc: subprocess.Popen[Any],
    directory_url: str,
    flows: int,
    concurrency: int,
    ssl_ctx: Any,
    tag: str,
) -> dict[str, float]:
    """:func:`drive`, plus the server's and the driver's CPU milliseconds per flow."""
    pids = process_tree(proc.pid)
    server0, driver0 = cpu_seconds(pids), time.process_time()
    result = run_loop(drive(directory_url, flows, concurrency, ssl_ctx, tag))
    server1, driver1 = cpu_seconds(pids), time.process_time()
    # Registration and the warm-up flows are included: 2 x concurrency flows' worth of extra
    # requests, small against ``flows`` (and alike for both servers).
    result["server_ms"] = (server1 - server0) * 1000 / flows
    result["driver_ms"] = (driver1 - driver0) * 1000 / flows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=300, help="certgate flows at c=1")
    parser.add_argument(
        "--c16-flows",
        type=int,
        default=3000,
        help="certgate flows at c=16 (a few seconds: at 300 the run lasts under a second and "
        "the ramp-down of the last flows weighs in)",
    )
    parser.add_argument("--pebble-flows", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here (bench/charts.py)")
    args = parser.parse_args()
    no_verify = ssl.create_default_context()
    no_verify.check_hostname = False
    no_verify.verify_mode = ssl.CERT_NONE
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "cg").mkdir()
        proc, url = start_pebble(tmp)
        try:
            results["pebble c=1"] = measured(proc, url, args.pebble_flows, 1, no_verify, "p1")
        finally:
            stop(proc)
        proc, url = start_certgate(tmp / "cg", args.workers)
        try:
            results["certgate c=1"] = measured(proc, url, args.flows, 1, None, "c1")
            results["certgate c=16"] = measured(proc, url, args.c16_flows, 16, None, "c16")
        finally:
            stop(proc)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{'run':<16}{'flows/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'server CPU ms/flow':>20}{'driver CPU ms/flow':>20}"
    )
    for name, r in results.items():
        print(
            f"{name:<16}{r['rate']:>10.1f}{r['p50']:>10.1f}{r['p99']:>10.1f}"
            f"{r['server_ms']:>20.2f}{r['driver_ms']:>20.2f}"
        )
    base = results["pebble c=1"]["rate"]
    print(
        f"certgate c=1  / pebble c=1: {results['certgate c=1']['rate'] / base:.2f}x (target >= 1.0)"
    )
    print(
        f"certgate c=16 / pebble c=1: {results['certgate c=16']['rate'] / base:.2f}x"
        " (target >= 3.5)"
    )
    if args.json:
        from charts import write_result  # bench/charts.py, beside this script

        rows = [
            {"label": name, "rate": r["rate"], "p50_ms": r["p50"], "p99_ms": r["p99"]}
            for name, r in results.items()
        ]
        write_result(args.json, "acme_load", "complete issuance flows/s", rows)


if __name__ == "__main__":
    main()
