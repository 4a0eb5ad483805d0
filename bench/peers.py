"""Side-by-side benchmark of certgate against the peers a user would pick instead (issue #18):
ACME (Pebble, acme2certifier), EST (libest's estserver), SCEP (micromdm's scepserver).

    .venv/bin/python bench/peers.py                 # the full run (not yet timed: 15-25 minutes)
    .venv/bin/python bench/peers.py --quick         # a smoke run (under ~2 minutes)
    .venv/bin/python bench/peers.py --table bench/results/peers-<date>.json   # print again

One generic driver per protocol, the same for certgate and the peer; each server is started
by this script on free loopback ports in a temp dir and stopped by its process id. The runs
are interleaved (certgate SQLite, peer, certgate PostgreSQL, [peer 2], then again: A, B, A, B)
so a drift of the machine's speed hits both. Per protocol, server and concurrency: operations
per second, p50/p99 latency, errors, server CPU ms per operation (the server's whole process
tree from /proc; libest's idle polling, measured in an idle window before each cell, taken off)
and the PostgreSQL backends' CPU apart; issued certificates counted on the server side
(certgate: its inventory; peers: their index/depot/certificate directory) and duplicate
serials. Writes bench/results/peers-<date>.json and, with --charts DIR, SVG charts (via
bench/charts.py) per protocol. See docs/performance.md, "Peers", for the method and figures.

First use: acme2certifier + uWSGI are pip-installed into a venv in the cache directory and
libest is cloned and built there (--libest-src PATH: a clone, e.g. the bare repository the
fetch tool leaves under /work/.mirror/cisco+libest/repo; otherwise github.com/cisco/libest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import peers_acme  # noqa: E402
import peers_est  # noqa: E402
import peers_scep  # noqa: E402
from keypool import DEFAULT_SIZE, host_csrs, p256_pool  # noqa: E402
from peers_common import Server, measure  # noqa: E402
from peers_report import document, table  # noqa: E402
from procs import co_run_factor  # noqa: E402

#: operations per cell, (full, quick)
OPS = {"acme": (150, 12), "est": (1000, 60), "scep": (200, 24)}
#: fewer ACME flows for acme2certifier, ~15x slower per flow (its cells last as long)
A2C_OPS = (40, 6)


def default_cache() -> Path:
    if os.environ.get("CERTGATE_BENCH_CACHE"):
        return Path(os.environ["CERTGATE_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "certgate-bench"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- one function per protocol: the servers in interleaved order, each as (label, starter) ---


Starter = Callable[[Path], AbstractContextManager[Any]]


def acme_servers(args: argparse.Namespace) -> list[tuple[str, Starter]]:
    out: list[tuple[str, Starter]] = [
        ("certgate sqlite", lambda t: peers_acme.certgate(t, "sqlite")),
        ("pebble", peers_acme.pebble),
    ]
    if "postgres" in args.stores:
        out.append(("certgate postgres", lambda t: peers_acme.certgate(t, "postgres")))
    out.append(("acme2certifier", lambda t: peers_acme.acme2certifier(t, args.cache)))
    return out


def run_acme(args: argparse.Namespace, round_: int, tmp: Path) -> list[dict[str, Any]]:
    rows, keys = [], p256_pool(args.key_pool)
    for label, start in acme_servers(args):
        print(f"peers: acme {label} (round {round_})", flush=True)
        with start(tmp / f"acme-{label.replace(' ', '-')}-{round_}") as (srv, url):
            for c in args.concurrency:
                full, quick = A2C_OPS if srv.name == "acme2certifier" else OPS["acme"]
                n = max(args.ops or (quick if args.quick else full), c)
                tag = f"r{round_}c{c}{srv.store[:2]}"

                def drive(mark: Any, url: str = url, n: int = n, c: int = c, tag: str = tag) -> Any:
                    return peers_acme.acme_driver(url, n, c, tag, mark, keys)

                rows.append(measure(srv, "acme", c, round_, drive))
    return rows


def run_est(args: argparse.Namespace, round_: int, tmp: Path) -> list[dict[str, Any]]:
    from est_load import csr_bodies, enroll

    keys = p256_pool(args.key_pool)
    exe = peers_est.build_libest(args.cache, args.libest_src)
    example = peers_est.example_dir(args.cache)
    idle = 2.0 if args.quick else 5.0
    starters: list[tuple[str, Starter]] = [
        ("certgate sqlite", lambda t: peers_est.certgate(t, "sqlite")),
        ("libest", lambda t: peers_est.libest(t, exe, example, idle)),
    ]
    if "postgres" in args.stores:
        starters.append(("certgate postgres", lambda t: peers_est.certgate(t, "postgres")))
        if not args.quick or args.two_instances:
            starters.append(
                (
                    "certgate postgres x2",
                    lambda t: peers_est.certgate(t, "postgres x2", workers=1, instances=2),
                )
            )
    rows = []
    warm = 10 if args.quick else 50
    for label, start in starters:
        print(f"peers: est {label} (round {round_})", flush=True)
        with start(tmp / f"est-{label.replace(' ', '-')}-{round_}") as srv:
            ctx = ssl.create_default_context(cafile=srv.info["cafile"])
            ctx.check_hostname = False  # libest's example certificate names no 127.0.0.1
            for c in args.concurrency:
                n = args.ops or OPS["est"][1 if args.quick else 0]
                bodies = csr_bodies(host_csrs(n + warm, keys))

                def drive(
                    mark: Any,
                    srv: Server = srv,
                    bodies: list[bytes] = bodies,
                    c: int = c,
                    ctx: Any = ctx,
                ) -> Any:
                    urls, auth = srv.info["urls"], srv.info["auth"]
                    return asyncio.run(enroll(urls, ctx, auth, bodies, c, warm, clock_started=mark))

                rows.append(measure(srv, "est", c, round_, drive))
    return rows


def run_scep(args: argparse.Namespace, round_: int, tmp: Path) -> list[dict[str, Any]]:
    n = args.ops or OPS["scep"][1 if args.quick else 0]
    plan = [(c, max(n, c)) for c in args.concurrency]
    rows = []
    print(f"peers: scep certgate sqlite (round {round_})", flush=True)
    pool = args.key_pool
    rows += peers_scep.certgate_cells(tmp / f"scep-sqlite-{round_}", "sqlite", plan, round_, pool)
    print(f"peers: scep micromdm (round {round_})", flush=True)
    rows += peers_scep.micromdm_cells(plan, round_, pool)
    if "postgres" in args.stores:
        print(f"peers: scep certgate postgres (round {round_})", flush=True)
        rows += peers_scep.certgate_cells(tmp / f"scep-pg-{round_}", "postgres", plan, round_, pool)
    return rows


RUNNERS = {"acme": run_acme, "est": run_est, "scep": run_scep}


def chart_files(doc: dict[str, Any], out_dir: Path, stem: str) -> Iterator[Path]:
    from charts import render
    from peers_report import chart_data

    out_dir.mkdir(parents=True, exist_ok=True)
    for protocol in ("acme", "est", "scep"):
        for metric, suffix in (("rate", "rate"), ("server_cpu_ms_per_op", "cpu")):
            data = chart_data(doc, protocol, metric)
            if data is None:
                continue
            # the chart's data beside it, as docs/performance.md's charts have theirs
            source = out_dir / f"{stem}-{protocol}-{suffix}.json"
            source.write_text(json.dumps(data, indent=1) + "\n")
            path = source.with_suffix(".svg")
            path.write_text(render(data, str(source)))
            yield path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few operations, concurrency 4")
    parser.add_argument("--protocols", nargs="+", choices=list(RUNNERS), default=list(RUNNERS))
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "postgres"],
                        default=["sqlite", "postgres"])  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", help="default 1 4 16 (quick: 4)")
    parser.add_argument("--rounds", type=int, help="A,B rounds (default 2, quick 1)")
    parser.add_argument("--two-instances", action="store_true",
                        help="with --quick too: EST on two gateways on one PostgreSQL")  # fmt: skip
    parser.add_argument("--ops", type=int, help="operations per cell (default: OPS, A2C_OPS)")
    parser.add_argument("--key-pool", type=int, default=DEFAULT_SIZE, metavar="N",
                        help=f"client keys each driver reuses round-robin (default {DEFAULT_SIZE}; "
                        "0: a fresh key per request)")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--libest-src", type=Path, help="a clone of github.com/cisco/libest")
    parser.add_argument("--json", type=Path, help="default bench/results/peers-<date>.json")
    parser.add_argument("--charts", type=Path, help="write SVG charts into this directory")
    parser.add_argument("--table", type=Path, help="only print the table of this JSON file")
    parser.add_argument("--chart-stem", default="peers", help="chart file names' start")
    args = parser.parse_args(argv)
    if args.table:  # a stored run: its table again, and its charts with --charts
        stored = json.loads(args.table.read_text())
        print(table(stored))
        for path in chart_files(stored, args.charts, args.chart_stem) if args.charts else ():
            print(f"peers: wrote {path}")
        return 0
    args.concurrency = args.concurrency or ([4] if args.quick else [1, 4, 16])
    if 0 < args.key_pool < max(args.concurrency):
        # round-robin keys: fewer keys than requests in flight puts two different CSRs of one
        # key in flight at once, which certgate refuses (one waiting request per transaction)
        parser.error(f"--key-pool {args.key_pool}: use 0 or at least the highest concurrency")
    rounds = args.rounds or (1 if args.quick else 2)
    load_before, co_run_before = load_average(), co_run_factor()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as d:
        for round_ in range(1, rounds + 1):
            for protocol in args.protocols:
                rows += RUNNERS[protocol](args, round_, Path(d))
    now = datetime.now(UTC)
    doc = document(
        rows,
        command=" ".join([".venv/bin/python", "bench/peers.py", *(argv or sys.argv[1:])]),
        date=now.strftime("%Y-%m-%d %H:%M UTC"),
        load=f"{load_before} before, {load_average()} after (1/5/15 min, {os.cpu_count()} cores)",
        co_run={"before": co_run_before, "after": co_run_factor()},
        notes={
            "acme": "certgate HTTPS (its CA's certificate), Pebble HTTPS, acme2certifier plain "
            "HTTP (uWSGI http-socket, connection closed after each answer); validation off",
            "est": "libest idle CPU (its accept loop polls) subtracted; raw figure kept",
            "acme2certifier": peers_acme.A2C_VERSION,
        },
    )
    out = args.json or REPO / "bench" / "results" / f"peers-{now:%Y%m%d-%H%M}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(doc))
    print(f"peers: wrote {out}")
    if args.charts:
        stem = args.chart_stem + ("-quick" if args.quick else "")
        for path in chart_files(doc, args.charts, stem):
            print(f"peers: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
