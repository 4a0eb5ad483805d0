"""EST /simpleenroll load: HTTPS with keep-alive, concurrency 16, fresh EC P-256 CSRs prepared
before the clock starts, against ``certgate serve --workers 1`` and ``--workers 2``; prints
enrollments/s, p50/p99 latency and the crypto-only rate of one core (CSR verify + certificate
sign, as bench/issue_local.py) measured in the same run.

    .venv/bin/python bench/est_load.py [--n 2000] [--concurrency 16] [--workers 1 2]

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
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from issue_local import crypto_only, issuing_material, make_csrs  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, http_port: int, est_port: int) -> Path:
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        f"""
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
    est_port: int, ca_file: Path, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float]]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=str(ca_file))
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    headers = {"Content-Type": "application/pkcs10", "Authorization": auth}
    url = f"https://127.0.0.1:{est_port}/.well-known/est/simpleenroll"
    connector = aiohttp.TCPConnector(ssl=ctx, limit=concurrency, force_close=False)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, record: bool) -> None:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                if response.status != 200:
                    raise SystemExit(f"HTTP {response.status}: {payload[:200]!r}")
            if record:
                latencies.append(time.perf_counter() - started)

        warm, measured = bodies[:100], bodies[100:]
        await asyncio.gather(*(one(b, False) for b in warm))
        queue = iter(measured)

        async def worker() -> None:
            for body in queue:
                await one(body, True)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return len(measured) / elapsed, latencies


def run(workers: int, bodies: list[bytes], concurrency: int) -> tuple[float, float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="est-bench-"))
    proc = None
    try:
        http_port, est_port = free_port(), free_port()
        cfg = write_config(tmp, http_port, est_port)
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
        rate, latencies = asyncio.run(drive(est_port, ca_file, bodies, concurrency))
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return rate, p50, p99
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="measured enrollments per run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the results here (bench/charts.py)")
    args = parser.parse_args()
    from cryptography.hazmat.primitives import serialization

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    cert, key = issuing_material()
    crypto_csrs = make_csrs(min(args.n, 2000))
    before, _ = crypto_only(crypto_csrs, cert, key)  # wall-clock rate
    results = {}
    for workers in args.workers:
        # Fresh CSRs per run: each is a new key, so every request is a new enrollment.
        csrs = make_csrs(args.n + 100)
        bodies = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)) for c in csrs]
        results[workers] = run(workers, bodies, args.concurrency)
    # crypto-only again after the runs (fresh CSR objects): the mean cancels slow drifts of
    # this VM's speed, and both figures are printed so a skewed run shows
    after, _ = crypto_only(make_csrs(len(crypto_csrs)), cert, key)
    crypto = (before + after) / 2
    print(
        f"crypto-only, one core (CSR verify + sign): {crypto:8.1f} ops/s  "
        f"(before {before:.0f}, after {after:.0f})"
    )
    for workers, (rate, p50, p99) in results.items():
        print(
            f"workers={workers} n={args.n} concurrency={args.concurrency}: "
            f"{rate:8.1f} enrollments/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
            f"ratio to crypto-only {rate / crypto:5.2f}"
        )
    if 1 in results:
        verdict = "met" if results[1][0] / crypto >= 0.4 else "NOT met"
        print(f"target (workers=1 >= 0.40 x crypto-only): {verdict}")
    if args.json:
        from charts import write_result  # bench/charts.py, beside this script

        rows = [
            {"label": f"certgate workers={w}", "rate": r, "p50_ms": p50, "p99_ms": p99}
            for w, (r, p50, p99) in results.items()
        ]
        ref = [{"label": "crypto-only, one core", "rate": crypto}]
        write_result(args.json, "est_load", "enrollments/s", rows, ref)


if __name__ == "__main__":
    main()
