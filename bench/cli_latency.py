"""Wall time of CLI calls as an operator makes them, beside a bare interpreter start.

    .venv/bin/python bench/cli_latency.py [--runs 15] [--json out.json]

Creates a gateway in a temporary directory (``certgate init``, the shipped templates, one
issued certificate and one pending request so the listings have rows), then runs each command
``--runs`` times as a fresh process, interleaved so machine load hits all of them alike, and
prints the median and the fastest run of each:

    python -c pass            the floor: interpreter start-up
    certgate --help           parse only: no database, web or crypto import (target <= 0.3 s)
    certgate requests list    config + store, no CA, no migration       (target <= 1 s)
    certgate certs list       same
    certgate audit list       same

``certgate`` is the console script beside this interpreter (``python -m gateway.cli`` if
there is none), run the way an operator would run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"--help": 0.3, "requests list": 1.0, "certs list": 1.0, "audit list": 1.0}


def certgate_command() -> list[str]:
    script = Path(sys.executable).with_name("certgate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def prepare(directory: Path) -> Path:
    """A configuration and an initialised gateway with a few rows to list."""
    cfg = directory / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [data]
            dir = "{directory / "data"}"
            [policy]
            templates_dir = "{REPO / "conf" / "templates"}"
            [connectors.local]
            type = "local"
            """
        )
    )
    cli = certgate_command()
    run = [*cli, "-c", str(cfg)]
    subprocess.run([*run, "init"], check=True, capture_output=True)
    csr = directory / "web.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(directory / "web.key"), "-subj", "/CN=www.example.test",
         "-addext", "subjectAltName=DNS:www.example.test", "-out", str(csr)],
        check=True, capture_output=True,
    )  # fmt: skip
    for template in ("tls-server", "approval-required"):
        subprocess.run(
            [*run, "enroll", "--template", template, "--csr", str(csr)], capture_output=True
        )
    return cfg


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    parser.add_argument("--json", type=Path, help="also write the results here (bench/charts.py)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="certgate-cli-bench-"))
    try:
        cfg = prepare(directory)
        env = {**os.environ, "CERTGATE_CONFIG": str(cfg)}
        env.pop("CERTGATE_DATA", None)
        cli = certgate_command()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            **{f"certgate {name}": [*cli, *name.split()] for name in TARGETS},
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the page cache once, unmeasured
            timed(argv, env)
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(timed(argv, env))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.runs} runs each, interleaved; {' '.join(cli)}; load {os.getloadavg()[0]:.2f}")
    print(f"{'command':26} {'median':>8} {'fastest':>8}  target")
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        target = TARGETS.get(name.removeprefix("certgate "))
        verdict = (
            ""
            if target is None
            else f"<= {target:.1f} s " + ("ok" if median <= target else "MISSED")
        )
        print(f"{name:26} {median:7.3f}s {min(samples):7.3f}s  {verdict}")
        rows.append({"label": name, "rate": round(median * 1000, 1)})
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from charts import write_result  # bench/charts.py, beside this script

        write_result(args.json, "cli_latency", "median wall time, ms", rows[1:], rows[:1])


if __name__ == "__main__":
    main()
