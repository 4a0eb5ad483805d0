"""SCEP in bench/peers.py: certgate (``serve --workers 2``, SQLite or PostgreSQL, a static
challenge endpoint) and micromdm's ``scepserver`` (Debian ``scep``), driven by
bench/scep_load.py's driver (fresh RSA-2048 client keys, AES-128-CBC, SHA-256, POST; every
reply decrypted and its serial recorded).

scepserver listens on all interfaces (it has no bind flag), so, as bench/scep_load.py does, its
cells run in a child of this script inside ``unshare -n`` (a private loopback): the child
starts it, measures with bench/peers_common.py's :func:`measure` and writes its rows as JSON."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from peers_common import PgDatabase, Server, measure, sqlite_serials, tree
from procs import free_port, stop
from scep_load import ENDPOINT, MICROMDM_CHALLENGE, _ca_certs, key_pool, prepare, run

REPO = Path(__file__).resolve().parent.parent


def scep_driver(
    url: str, challenge: str, recipient: Any, n: int, concurrency: int, pool: int
) -> Any:
    """A drive() for :func:`measure`: prepares ``n`` requests (untimed; client keys from a
    pool of ``pool``, 0: fresh keys), then times them."""
    prepared = prepare(recipient, challenge, n, key_pool(pool) if pool else None)

    def drive(clock_started: Any) -> dict[str, Any]:
        # no warm-up: measure() starts the CPU window just before this
        r = asyncio.run(run(url, "scep", prepared, concurrency))
        return {
            "ok": r.ok,
            "errors": r.failures,
            "elapsed": r.seconds,
            "latencies_ms": r.latencies_ms,
            "driver_duplicates": r.duplicate_serials,
            "error_samples": r.error_samples,
        }

    return drive


@contextlib.contextmanager
def certgate(tmp: Path, store: str, workers: int = 2) -> Iterator[tuple[Server, str]]:
    from tests.gateway_process import gateway_process
    from tests.scep_helpers import scep_config

    tmp.mkdir(parents=True, exist_ok=True)
    db = PgDatabase("peers_scep") if store == "postgres" else None
    try:
        cfg = scep_config(tmp, ENDPOINT)
        text = cfg.read_text().replace("[poller]\n", "[poller]\nenabled = false\n", 1)
        if db:
            text += f'\n[store]\nurl = "{db.url}"\n'
        cfg.write_text(text)
        with gateway_process(cfg, "--workers", str(workers)) as gw:
            yield (
                Server(
                    name=f"certgate w{workers}",
                    kind="certgate",
                    store=store,
                    pids=tree(gw.proc.pid),
                    issued=db.serials if db else sqlite_serials(tmp / "data" / "certgate.db"),
                    db_pids=db.backends if db else lambda: (),
                ),
                f"http://127.0.0.1:{gw.port}/scep/bench/pkiclient.exe",
            )
    finally:
        if db:
            db.drop()


def certgate_cells(
    tmp: Path, store: str, plan: list[tuple[int, int]], round_: int, pool: int
) -> list[dict[str, Any]]:
    from tests.scep_helpers import STATIC_PASSWORD

    rows = []
    with certgate(tmp, store) as (srv, url):
        ra = asyncio.run(_ca_certs(url))[0]
        for concurrency, n in plan:
            drive = scep_driver(url, STATIC_PASSWORD, ra, n, concurrency, pool)
            rows.append(measure(srv, "scep", concurrency, round_, drive))
    return rows


def _depot_serials(depot: Path) -> list[str]:
    # the file depot keeps one <name>.<serial>.pem per issued certificate, and the CA's own
    return [p.stem.rsplit(".", 1)[-1] for p in depot.glob("*.pem") if p.name != "ca.pem"]


def micromdm_inside(out: Path, plan: list[tuple[int, int]], round_: int, pool: int) -> None:
    """Runs inside ``unshare -n``: scepserver on the private loopback, the cells measured."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="peers-micromdm-") as d:
        depot = Path(d) / "depot"
        subprocess.run(
            ["scepserver", "ca", "-init", "-depot", str(depot), "-key-password", "pw",
             "-keySize", "2048"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        with (Path(d) / "server.log").open("w") as log:
            proc = subprocess.Popen(
                ["scepserver", "-depot", str(depot), "-port", str(port), "-capass", "pw",
                 "-challenge", MICROMDM_CHALLENGE, "-allowrenew", "0"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                url = f"http://127.0.0.1:{port}/scep"
                deadline, ca = time.monotonic() + 20, None
                while ca is None and time.monotonic() < deadline:
                    try:
                        ca = asyncio.run(_ca_certs(url))[0]
                    except OSError:
                        time.sleep(0.1)
                    except Exception:  # aiohttp's connection errors before it listens
                        time.sleep(0.1)
                if ca is None:
                    raise SystemExit("scepserver did not start")
                srv = Server(
                    "micromdm scepserver", "peer", "file depot", tree(proc.pid),
                    issued=lambda: _depot_serials(depot),
                )  # fmt: skip
                rows = []
                for concurrency, n in plan:
                    drive = scep_driver(url, MICROMDM_CHALLENGE, ca, n, concurrency, pool)
                    rows.append(measure(srv, "scep", concurrency, round_, drive))
            finally:
                stop(proc)
    out.write_text(json.dumps(rows))


def micromdm_cells(plan: list[tuple[int, int]], round_: int, pool: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "rows.json"
        spec = json.dumps(plan)
        subprocess.run(
            ["unshare", "-n", sys.executable, __file__, "--inside", str(out), "--plan", spec,
             "--round", str(round_), "--key-pool", str(pool)],
            check=True, cwd=REPO / "bench",
        )  # fmt: skip
        rows: list[dict[str, Any]] = json.loads(out.read_text())
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="(internal) the micromdm half of peers_scep")
    parser.add_argument("--inside", type=Path, required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--key-pool", type=int, default=0)
    args = parser.parse_args()
    plan = [tuple(x) for x in json.loads(args.plan)]
    micromdm_inside(args.inside, plan, args.round, args.key_pool)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
