"""Where a server's CPU per operation goes, by the code that ran it: the Python interpreter, C
extensions, cryptography, SQLite, libc, the kernel, a Go binary. Sampled by ``perf record -e
cpu-clock`` (a software clock: this VM has no hardware counters) on the server's processes
while the benchmark's own driver runs.

    .venv/bin/python bench/cpu_split.py [--server certgate|pebble] [--protocol acme|est]
        [--ops 1500] [--concurrency 1] [--workers 2]

certgate runs as in bench/peers.py (SQLite, ACME over TLS with validation skipped, EST with
Basic auth; the drivers reuse bench/keypool.py's keys); Pebble is Debian's (ACME only).

Why: issue #18 judges certgate's CPU per operation against Pebble's and libest's. The split
says which share a change could still move. A part that is the same work in both servers (the
kernel's socket path, signing and verifying) cannot close a gap. The interpreter's share is
certgate's Python and the libraries' (aiohttp, asyncio) together. The last line says what
everything but the interpreter costs; to match a peer, the interpreter's share must fit in
what is left of the peer's figure (docs/performance.md, fourteenth session). Sampling adds to
the CPU it measures (Pebble's many threads more than certgate's), so compare CPU per operation
from bench/peers.py and take only the shares from here.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: (category, pattern on perf's shared-object name), first match wins
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("interpreter", r"^(libpython3[\d.]*\.so|python3[\d.]*)"),
    ("crypto", r"^(_rust\.abi3\.so|libcrypto|libssl|_ssl\.cpython|_hashlib\.cpython)"),
    ("sqlite", r"^(libsqlite3|_sqlite3\.cpython)"),
    ("kernel", r"^\[(kernel\.kallsyms|vdso)\]"),
    ("libc", r"^(libc\.so|libm\.so|ld-linux)"),
    ("C extensions", r"\.cpython-[^ ]*\.so$|\.abi3\.so$"),
    ("go binary", r"^pebble$"),
)

_ROW = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s*$")


def parse_dso_report(text: str) -> dict[str, float]:
    """``perf report --sort dso -g none --stdio`` as {shared object: percent of samples}."""
    shares: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _ROW.match(line)
        if m:
            shares[m.group(2)] = shares.get(m.group(2), 0.0) + float(m.group(1))
    return shares


def categorise(shares: dict[str, float]) -> dict[str, float]:
    """Shares summed by :data:`CATEGORIES` (anything else: "other"), as fractions of all."""
    total = sum(shares.values())
    out: dict[str, float] = {}
    for dso, pct in shares.items():
        name = next((c for c, pat in CATEGORIES if re.search(pat, dso)), "other")
        out[name] = out.get(name, 0.0) + pct
    return {k: v / total for k, v in sorted(out.items(), key=lambda kv: -kv[1])} if total else {}


def report(split: dict[str, float], ms_per_op: float, label: str) -> str:
    lines = [f"{label}: {ms_per_op:.2f} ms of server CPU per operation (/proc)"]
    lines += [f"  {k:<14} {v * 100:5.1f} %  {v * ms_per_op:5.2f} ms" for k, v in split.items()]
    interp = split.get("interpreter", 0.0)
    if interp:
        lines.append(f"  everything but the interpreter: {ms_per_op * (1 - interp):.2f} ms")
    return "\n".join(lines)


def sampled(pids: Callable[[], list[int]], out: Path, drive: Callable[[], Any]) -> float:
    """Run ``drive`` under ``perf record`` of ``pids``; the pids' CPU seconds during it."""
    from procs import cpu_seconds

    ids = pids()
    perf = subprocess.Popen(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-o", str(out),
         "-p", ",".join(map(str, ids))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # perf attaches
    before = cpu_seconds(ids)
    try:
        drive()
    finally:
        spent = cpu_seconds(ids) - before
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    return spent


def dso_shares(data: Path) -> dict[str, float]:
    text = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "-g", "none",
         "--stdio"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return parse_dso_report(text)


def run_acme(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, float], float]:
    from acme_servers import start_certgate, start_pebble
    from keypool import p256_pool
    from peers_acme import acme_driver
    from procs import process_tree, stop

    if args.server == "pebble":
        proc, url = start_pebble(tmp)
    else:
        proc, url = start_certgate(tmp, args.workers, tls=True)
    keys = p256_pool(max(256, args.concurrency))
    try:
        acme_driver(url, 50, args.concurrency, "warm", keys=keys)
        spent = sampled(
            lambda: process_tree(proc.pid),
            tmp / "perf.data",
            lambda: acme_driver(url, args.ops, args.concurrency, "m", keys=keys),
        )
        return dso_shares(tmp / "perf.data"), spent / args.ops
    finally:
        stop(proc)


def run_est(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, float], float]:
    import peers_est
    from est_load import csr_bodies, enroll
    from keypool import host_csrs, p256_pool

    keys = p256_pool(max(256, args.concurrency))
    with peers_est.certgate(tmp / "est", "sqlite", workers=args.workers) as srv:
        ctx = ssl.create_default_context(cafile=srv.info["cafile"])
        ctx.check_hostname = False
        urls, auth = srv.info["urls"], srv.info["auth"]

        def batch(n: int) -> Any:
            bodies = csr_bodies(host_csrs(n + 50, keys))
            return asyncio.run(enroll(urls, ctx, auth, bodies, args.concurrency, 50))

        batch(500)
        spent = sampled(srv.pids, tmp / "perf.data", lambda: batch(args.ops))
        # the driver's 50 warm-up enrollments are sampled too
        return dso_shares(tmp / "perf.data"), spent / (args.ops + 50)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("certgate", "pebble"), default="certgate")
    parser.add_argument("--protocol", choices=("acme", "est"), default="acme")
    parser.add_argument("--ops", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.server == "pebble" and args.protocol != "acme":
        parser.error("--server pebble serves ACME only")
    with tempfile.TemporaryDirectory() as d:
        runner = run_acme if args.protocol == "acme" else run_est
        shares, cpu = runner(args, Path(d))
    label = f"{args.server} {args.protocol} c={args.concurrency}"
    if args.server == "certgate":
        label += f" --workers {args.workers}"
    print(report(categorise(shares), cpu * 1000, label))


if __name__ == "__main__":
    main()
