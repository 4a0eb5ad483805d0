"""Draw docs/performance charts (SVG) from the JSON the benchmarks write with ``--json``.

    .venv/bin/python bench/charts.py docs/perf/*.json            # writes docs/perf/<name>.svg
    .venv/bin/python bench/charts.py run.json --out chart.svg

One horizontal bar chart per JSON file: one bar per result row (its rate), the p50/p99
latencies beside it when the row has them, and the reference rate the benchmark compares
against (crypto-only, Pebble, micromdm) as its own bar. The file's "command" and "date" go in
the caption, so a chart always says how it was made.

Input (what bench/*.py ``--json`` write)::

    {"benchmark": "est_load", "unit": "enrollments/s", "command": "...", "date": "...",
     "results": [{"label": "certgate workers=1", "rate": 872.0, "p50_ms": 14.0, ...}, ...]}

A row without "label" is named from "target" and "concurrency" (bench/scep_load.py's rows).
The SVG is written by hand (no plotting library): a few dozen elements, valid SVG 1.1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

WIDTH = 760
LABEL_W = 210  # left column: row labels
VALUE_W = 190  # right column: value and latencies
BAR_H = 22
GAP = 10
TOP = 52
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
COLOURS = ("#2b6cb0", "#9c4221")  # certgate rows, reference rows


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str
    reference: bool


class ChartError(ValueError):
    """The JSON is not a benchmark result this script can draw (names the file and why)."""


def _number(row: Mapping[str, Any], key: str, where: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChartError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _label(row: Mapping[str, Any]) -> str:
    if isinstance(row.get("label"), str):
        return str(row["label"])
    if "target" in row:
        concurrency = row.get("concurrency")
        return f"{row['target']} c={concurrency}" if concurrency is not None else str(row["target"])
    return "run"


def bars(data: Mapping[str, Any], source: str) -> list[Bar]:
    """The bars of one benchmark result, in file order, references last."""
    rows = data.get("results")
    if not isinstance(rows, list) or not rows:
        raise ChartError(f"{source}: no 'results' list")
    out: list[Bar] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ChartError(f"{source}: results[{i}] is not an object")
        where = f"{source}: results[{i}]"
        latency = [
            f"{name} {_number(row, key, where):.1f} ms"
            for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"))
            if key in row
        ]
        label = _label(row)
        reference = bool(row.get("reference")) or label.split()[0] in ("micromdm", "pebble")
        out.append(Bar(label, _number(row, "rate", where), ", ".join(latency), reference))
    references = data.get("references", [])
    if not isinstance(references, list):
        raise ChartError(f"{source}: 'references' must be a list")
    for i, ref in enumerate(references):
        if not isinstance(ref, Mapping):
            raise ChartError(f"{source}: references[{i}] is not an object")
        rate = _number(ref, "rate", f"{source}: references[{i}]")
        out.append(Bar(_label(ref), rate, "", True))
    return sorted(out, key=lambda b: b.reference)


def _nice_max(value: float) -> float:
    """A round axis end at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _fmt(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ") if value >= 100 else f"{value:.3g}"


def render(data: Mapping[str, Any], source: str = "<data>") -> str:
    """The SVG document for one benchmark result."""
    items = bars(data, source)
    name = str(data.get("benchmark") or Path(source).stem)
    unit = str(data.get("unit") or "per second")
    axis_max = _nice_max(max(b.value for b in items))
    plot_w = WIDTH - LABEL_W - VALUE_W
    height = TOP + len(items) * (BAR_H + GAP) + 64
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f"<svg xmlns='http://www.w3.org/2000/svg' version='1.1' width='{WIDTH}' "
        f"height='{height}' viewBox='0 0 {WIDTH} {height}' role='img'>",
        f"<title>{escape(name)}: {escape(unit)}</title>",
        f"<rect x='0' y='0' width='{WIDTH}' height='{height}' fill='#ffffff'/>",
        f"<text x='10' y='24' font-size='16' font-weight='bold' {FONT}>"
        f"{escape(name)} ({escape(unit)})</text>",
    ]
    # grid lines at quarters of the axis
    bottom = TOP + len(items) * (BAR_H + GAP)
    for q in range(5):
        x = LABEL_W + plot_w * q / 4
        out.append(
            f"<line x1='{x:.1f}' y1='{TOP - 6}' x2='{x:.1f}' y2='{bottom}' "
            "stroke='#d0d0d0' stroke-width='1'/>"
        )
        out.append(
            f"<text x='{x:.1f}' y='{bottom + 14}' font-size='10' text-anchor='middle' "
            f"{FONT}>{_fmt(axis_max * q / 4)}</text>"
        )
    for i, bar in enumerate(items):
        y = TOP + i * (BAR_H + GAP)
        w = plot_w * bar.value / axis_max
        colour = COLOURS[1] if bar.reference else COLOURS[0]
        out.append(
            f"<text x='{LABEL_W - 8}' y='{y + BAR_H * 0.7:.1f}' font-size='12' "
            f"text-anchor='end' {FONT}>{escape(bar.label)}</text>"
        )
        out.append(
            f"<rect class='bar' x='{LABEL_W}' y='{y}' width='{w:.1f}' height='{BAR_H}' "
            f"fill='{colour}' data-value='{bar.value:g}'/>"
        )
        text = _fmt(bar.value) + (f"  ({bar.note})" if bar.note else "")
        out.append(
            f"<text x='{LABEL_W + w + 6:.1f}' y='{y + BAR_H * 0.7:.1f}' font-size='11' "
            f"{FONT}>{escape(text)}</text>"
        )
    caption = " · ".join(
        str(data[k]) for k in ("command", "date", "machine") if isinstance(data.get(k), str)
    )
    if caption:
        out.append(
            f"<text x='10' y='{height - 14}' font-size='10' fill='#555555' {FONT}>"
            f"{escape(caption[:140])}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_result(
    path: Path,
    benchmark: str,
    unit: str,
    rows: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Write one run in the format above (the benchmarks' ``--json``): rows with "label" and
    "rate" (p50_ms/p99_ms optional), the command line as given and the date."""
    script = Path(sys.argv[0]).as_posix()
    script = f"bench/{Path(script).name}" if "bench/" in script else script
    doc = {
        "benchmark": benchmark,
        "unit": unit,
        "command": " ".join(["python", script, *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "results": list(rows),
        "references": list(references),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def load(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ChartError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ChartError(f"{path}: expected a JSON object")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="benchmark JSON files")
    parser.add_argument(
        "--out", type=Path, help="output SVG (one input only); default: .svg beside it"
    )
    args = parser.parse_args(argv)
    if args.out and len(args.inputs) != 1:
        parser.error("--out takes one input")
    try:
        for path in args.inputs:
            target = args.out or path.with_suffix(".svg")
            target.write_text(render(load(path), str(path)), encoding="utf-8")
            print(target)
    except ChartError as exc:
        print(f"charts: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
