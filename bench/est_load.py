"""EST /simpleenroll load: HTTPS with keep-alive, concurrency 16, fresh EC P-256 CSRs prepared
before the clock starts, against ``certgate serve --workers 1`` and ``--workers 2``; prints
enrollments/s, p50/p99 latency, the gateway's CPU milliseconds per enrollment (its process
tree, from /proc: the figure that survives a busy machine) and the crypto-only rate of one core
(CSR verify + certificate sign, as bench/issue_local.py) measured in the same run.

    .venv/bin/python bench/est_load.py [--n 2000] [--concurrency 16] [--workers 1 2]
        [--store sqlite postgresql] [--rounds 2]

``--store postgresql`` runs certgate on a fresh database per run on the trust-auth PostgreSQL
at 127.0.0.1:5432 (dropped afterwards); the server backends' CPU per enrollment is reported
apart. Several stores and ``--rounds`` > 1 interleave the runs (A, B, A, B) so drift of a
shared machine hits each alike.

The client (aiohttp, one process) runs on the same machine as the gateway, so it competes for
the same cores. Target (issue #3): with one worker, >= 0.4 x the crypto-only rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from issue_local import crypto_only, issuing_material, make_csrs  # noqa: E402
from procs import free_port  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


def write_config(tmp: Path, http_port: int, est_port: int, db_url: str | None = None) -> Path:
    cfg = tmp / "certgate.toml"
    store = f'[store]\nurl = "{db_url}"\n' if db_url else ""
    cfg.write_text(
        store
        + f"""
[server]
host = "127.0.0.1"
port = {http_port}
access_log = false
[data]
dir = "{tmp / "data"}"
[policy]
templates_dir = "{ROOT / "conf" / "templates"}"
[poller]
interval = "5s"
[est]
enabled = true
host = "127.0.0.1"
port = {est_port}
default_template = "tls-server"
auth = ["basic"]
server_names = ["127.0.0.1"]
"""
    )
    return cfg


def certgate(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        check=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
    )


def wait_ready(http_port: int, est_port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"certgate serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1):
                pass
            with socket.create_connection(("127.0.0.1", est_port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gateway did not start")


async def drive(
    est_port: int,
    ca_file: Path,
    bodies: list[bytes],
    concurrency: int,
    clock_started: Callable[[], None] | None = None,
) -> tuple[float, list[float], int]:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    url = f"https://127.0.0.1:{est_port}/.well-known/est/simpleenroll"
    r = await enroll([url], ctx, (USER, PASSWORD), bodies, concurrency, clock_started=clock_started)
    if r["errors"]:
        raise SystemExit(f"{r['errors']} enrollments failed: {r['error_samples']}")
    return r["rate"], [x / 1000 for x in r["latencies_ms"]], r["ok"]


async def enroll(
    urls: list[str],
    ctx: ssl.SSLContext,
    auth: tuple[str, str],
    bodies: list[bytes],
    concurrency: int,
    warmup: int = 100,
    request_timeout: float = 30,
    clock_started: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The EST /simpleenroll driver (bench/est_load.py, bench/peers.py): the first ``warmup``
    bodies untimed, then the rest on ``concurrency`` keep-alive connections (spread over
    ``urls``: several gateway instances). A non-200 answer or a timeout is an error, counted.
    Returns rate, ok, errors, elapsed, latencies_ms, error_samples and the serial numbers of
    the issued certificates (read after the clock stops)."""
    import aiohttp
    from cryptography.hazmat.primitives.serialization import pkcs7

    basic = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic}
    latencies: list[float] = []
    replies: list[bytes] = []
    errors: list[str] = []
    limit = aiohttp.ClientTimeout(total=request_timeout)
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency), timeout=limit
        )
        for _ in urls
    ]
    try:

        async def one(i: int, body: bytes, record: bool) -> None:
            started = time.perf_counter()
            try:
                async with sessions[i % len(urls)].post(
                    urls[i % len(urls)], data=body, headers=headers
                ) as response:
                    payload = await response.read()
                    if response.status != 200:
                        errors.append(f"HTTP {response.status}: {payload[:120]!r}")
                        return
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            if record:
                latencies.append((time.perf_counter() - started) * 1000)
                replies.append(payload)

        warm, measured = bodies[:warmup], bodies[warmup:]
        await asyncio.gather(*(one(i, b, False) for i, b in enumerate(warm)))
        warm_errors, errors[:] = list(errors), []
        queue = iter(measured)

        async def worker(i: int) -> None:
            for body in queue:
                await one(i, body, True)

        if clock_started:
            clock_started()
        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    finally:
        for s in sessions:
            await s.close()
    serials = []
    for payload in replies:
        certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(payload))
        serials.append(certs[0].serial_number)
    return {
        "rate": len(replies) / elapsed,
        "ok": len(replies),
        "errors": len(errors),
        "warmup": len(warm) - len(warm_errors),
        "warmup_errors": len(warm_errors),
        "error_samples": (errors + warm_errors)[:5],
        "elapsed": elapsed,
        "latencies_ms": latencies,
        "serials": serials,
    }


def csr_bodies(csrs: list[Any]) -> list[bytes]:
    """application/pkcs10 bodies: base64 in lines of 76 (RFC 2045), which every server reads
    (libest's example server refuses one unbroken line)."""
    from cryptography.hazmat.primitives import serialization

    return [base64.encodebytes(c.public_bytes(serialization.Encoding.DER)) for c in csrs]


@dataclass
class Result:
    rate: float
    p50: float
    p99: float
    cpu_ms: float  # gateway process tree, CPU ms per measured enrollment
    db_cpu_ms: float  # PostgreSQL backends of the run's database (0 on SQLite)


def run(workers: int, bodies: list[bytes], concurrency: int, store: str = "sqlite") -> Result:
    from peers_common import PgDatabase  # bench/, beside this script
    from procs import CpuWatch, process_tree

    tmp = Path(tempfile.mkdtemp(prefix="est-bench-"))
    proc = None
    db = PgDatabase("est_load") if store == "postgresql" else None
    try:
        http_port, est_port = free_port(), free_port()
        cfg = write_config(tmp, http_port, est_port, db.url if db else None)
        certgate("init", "-c", str(cfg))  # operator commands never create a gateway
        certgate("est", "user", "add", USER, "--password-env", "PW", "-c", str(cfg),
                 env={"PW": PASSWORD})  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg),
             "--workers", str(workers)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_ready(http_port, est_port, proc)
        ca_file = tmp / "ca.pem"
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ca/chain.pem") as r:
            ca_file.write_bytes(r.read())
        root = proc.pid
        gateway = CpuWatch(lambda: process_tree(root))
        backends = CpuWatch(db.backends if db else list)

        def clock_started() -> None:
            gateway.start()
            backends.start()

        rate, latencies, ok = asyncio.run(
            drive(est_port, ca_file, bodies, concurrency, clock_started)
        )
        cpu, db_cpu = gateway.stop(), backends.stop()
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return Result(rate, p50, p99, cpu * 1000 / ok, db_cpu * 1000 / ok)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if db is not None:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="measured enrollments per run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--store", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"],
        help="certgate's database; several are interleaved",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every run")
    parser.add_argument("--json", type=Path, help="also write the results here (bench/charts.py)")
    args = parser.parse_args()

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    cert, key = issuing_material()
    crypto_csrs = make_csrs(min(args.n, 2000))
    before, _ = crypto_only(crypto_csrs, cert, key)  # wall-clock rate
    results: dict[tuple[str, int], list[Result]] = {}
    for _round in range(args.rounds):
        for workers in args.workers:
            for store in args.store:
                # Fresh CSRs per run: each is a new key, so every request is a new enrollment.
                csrs = make_csrs(args.n + 100)
                bodies = csr_bodies(csrs)
                r = run(workers, bodies, args.concurrency, store)
                results.setdefault((store, workers), []).append(r)
                print(
                    f"  round {_round + 1} {store} workers={workers}: {r.rate:7.1f}/s "
                    f"gateway {r.cpu_ms:5.2f} ms CPU/enrollment"
                    + (f", postgres {r.db_cpu_ms:5.2f} ms" if store == "postgresql" else "")
                    + f"  (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    # crypto-only again after the runs (fresh CSR objects): the mean cancels slow drifts of
    # this VM's speed, and both figures are printed so a skewed run shows
    after, _ = crypto_only(make_csrs(len(crypto_csrs)), cert, key)
    crypto = (before + after) / 2
    print(
        f"crypto-only, one core (CSR verify + sign): {crypto:8.1f} ops/s  "
        f"(before {before:.0f}, after {after:.0f})"
    )
    medians: dict[tuple[str, int], Result] = {}
    for (store, workers), runs in results.items():
        m = Result(
            *(statistics.median(getattr(r, f) for r in runs) for f in Result.__annotations__)
        )
        medians[store, workers] = m
        print(
            f"{store} workers={workers} n={args.n} concurrency={args.concurrency}: "
            f"{m.rate:8.1f} enrollments/s  p50 {m.p50:6.1f} ms  p99 {m.p99:6.1f} ms  "
            f"ratio to crypto-only {m.rate / crypto:5.2f}  gateway CPU {m.cpu_ms:5.2f} ms/op"
            + (f"  postgres CPU {m.db_cpu_ms:5.2f} ms/op" if store == "postgresql" else "")
        )
    for workers in args.workers:
        pg, lite = medians.get(("postgresql", workers)), medians.get(("sqlite", workers))
        if pg and lite:
            ratio = pg.cpu_ms / lite.cpu_ms
            verdict = "met" if ratio <= 1.5 else "NOT met"
            print(
                f"workers={workers}: gateway CPU per enrollment PostgreSQL/SQLite {ratio:4.2f} "
                f"(target <= 1.5, issue #18: {verdict}); with the PostgreSQL server's CPU "
                f"{(pg.cpu_ms + pg.db_cpu_ms) / lite.cpu_ms:4.2f}"
            )
    if ("sqlite", 1) in medians:
        verdict = "met" if medians["sqlite", 1].rate / crypto >= 0.4 else "NOT met"
        print(f"target (sqlite workers=1 >= 0.40 x crypto-only): {verdict}")
    if args.json:
        from charts import write_result  # bench/charts.py, beside this script

        rows = [
            {
                "label": f"certgate workers={w}" + ("" if s == "sqlite" else f" {s}"),
                "rate": m.rate,
                "p50_ms": m.p50,
                "p99_ms": m.p99,
                "cpu_ms": m.cpu_ms,
                "db_cpu_ms": m.db_cpu_ms,
            }
            for (s, w), m in medians.items()
        ]
        ref = [{"label": "crypto-only, one core", "rate": crypto}]
        write_result(args.json, "est_load", "enrollments/s", rows, ref)


if __name__ == "__main__":
    main()
