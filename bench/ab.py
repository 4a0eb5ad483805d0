"""Interleaved A/B runs of the benchmarks under ``bench/`` between two checkouts.

    .venv/bin/python bench/ab.py --a /path/to/baseline --b . [--rounds 2] [--out ab/]
        [--only issue_local est_load ...]

Each checkout needs its own ``.venv`` (``./dev install`` or ``pip install -e '.[test]'``), so
each side runs its own code with its own entry points. For every benchmark the runs go
A, B, B, A (``--rounds 2``): a drift of the machine's speed during the run then hits both sides
alike. Each run's stdout is kept as ``<out>/<bench>-<n>-<side>.txt`` and the lines that carry
figures (rates, latencies, CPU per operation) are printed side by side. The short commands
below keep a whole A/B pass at about a quarter of an hour; they compare, they are not the
published figures of docs/performance.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

#: Short commands per benchmark (arguments after the script path).
COMMANDS: dict[str, list[str]] = {
    "issue_local": ["--n", "1500", "--rounds", "4"],
    "est_load": ["--n", "800", "--workers", "1"],
    "scep_load": ["--requests", "200"],
    "acme_load": ["--flows", "150", "--c16-flows", "600", "--pebble-flows", "60"],
    "ces_latency": ["--n", "150", "--warmup", "10"],
    "cli_latency": ["--runs", "7"],
}

#: A line is a figure line when it has a number followed by one of these units.
FIGURE = re.compile(r"\d(\.\d+)?\s*(/s|ms|s\b|x\b|per s|flows|enrollments)", re.IGNORECASE)


def run(tree: Path, bench: str, args: list[str], timeout: float) -> str:
    python = tree / ".venv" / "bin" / "python"
    script = tree / "bench" / f"{bench}.py"
    started = time.monotonic()
    proc = subprocess.run(
        [str(python), str(script), *args],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    took = time.monotonic() - started
    head = f"# {tree} bench/{bench}.py {' '.join(args)}: exit {proc.returncode}, {took:.0f} s\n"
    return head + proc.stdout + (("\n# stderr\n" + proc.stderr[-3000:]) if proc.returncode else "")


#: Table rows: a label followed by at least three numbers (acme_load's and scep_load's tables).
ROW = re.compile(r"^\s*\S.*?(\s+\d+(\.\d+)?x?){3,}")


def figures(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if FIGURE.search(line) or ROW.match(line)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="baseline checkout")
    parser.add_argument("--b", type=Path, required=True, help="checkout under test")
    parser.add_argument("--rounds", type=int, default=2, help="A,B pairs per benchmark")
    parser.add_argument("--out", type=Path, default=Path("ab"))
    parser.add_argument("--only", nargs="+", choices=sorted(COMMANDS), default=sorted(COMMANDS))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sides = {"A": args.a.resolve(), "B": args.b.resolve()}
    for bench in args.only:
        for n in range(args.rounds):
            order = ("A", "B") if n % 2 == 0 else ("B", "A")
            for side in order:
                text = run(sides[side], bench, COMMANDS[bench], args.timeout)
                (args.out / f"{bench}-{n}-{side}.txt").write_text(text)
                print(f"== {bench} round {n} side {side}: {text.splitlines()[0]}")
                for line in figures(text):
                    print(f"   {line}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
