"""bench/charts.py draws a valid SVG bar chart from a benchmark's --json output."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO

SVG = "{http://www.w3.org/2000/svg}"


def _charts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_charts", REPO / "bench" / "charts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


charts = _charts()

#: What bench/est_load.py --json writes (plus a reference row).
EST = {
    "benchmark": "est_load",
    "unit": "enrollments/s",
    "command": "python bench/est_load.py --n 500 --json est.json",
    "date": "2026-12-03T19:00:00Z",
    "results": [
        {"label": "certgate workers=1", "rate": 900.5, "p50_ms": 14.2, "p99_ms": 30.1},
        {"label": "certgate workers=2", "rate": 1200.0, "p50_ms": 11.0, "p99_ms": 28.0},
    ],
    "references": [{"label": "crypto-only (one core)", "rate": 3300.0}],
}
#: bench/scep_load.py's rows: no label, target + concurrency.
SCEP = {
    "command": "bench/scep_load.py --requests 200",
    "results": [
        {"target": "certgate", "concurrency": 16, "rate": 571.0, "p50_ms": 23.6, "p99_ms": 107.5},
        {"target": "micromdm", "concurrency": 1, "rate": 165.0, "p50_ms": 6.0, "p99_ms": 9.1},
    ],
}


def _draw(tmp_path: Path, data: dict) -> ET.Element:
    src = tmp_path / "run.json"
    src.write_text(json.dumps(data))
    assert charts.main([str(src)]) == 0
    return ET.fromstring((tmp_path / "run.svg").read_bytes())


def test_one_bar_per_result_and_reference_scaled_to_the_rate(tmp_path: Path) -> None:
    root = _draw(tmp_path, EST)
    assert root.tag == f"{SVG}svg"
    bars = root.findall(f"{SVG}rect[@class='bar']")
    values = [float(b.get("data-value", "nan")) for b in bars]
    assert values == [900.5, 1200.0, 3300.0]
    widths = [float(b.get("width", "nan")) for b in bars]
    # bar widths are proportional to the rates they draw
    assert widths[1] / widths[0] == pytest.approx(1200.0 / 900.5, rel=1e-2)
    assert widths[2] / widths[0] == pytest.approx(3300.0 / 900.5, rel=1e-2)
    # the reference bar is drawn in the reference colour
    assert bars[2].get("fill") != bars[0].get("fill")


def test_labels_latencies_and_caption_are_in_the_text(tmp_path: Path) -> None:
    root = _draw(tmp_path, EST)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "est_load (enrollments/s)" in text
    assert "certgate workers=2" in text and "p99 28.0 ms" in text
    assert "bench/est_load.py --n 500" in text and "2026-12-03" in text


def test_scep_rows_are_named_by_target_and_concurrency(tmp_path: Path) -> None:
    root = _draw(tmp_path, SCEP)
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "certgate c=16" in labels and "micromdm c=1" in labels
    bars = root.findall(f"{SVG}rect[@class='bar']")
    # micromdm is the comparison: reference colour
    assert bars[0].get("fill") != bars[1].get("fill")


def test_text_is_escaped(tmp_path: Path) -> None:
    data = {"results": [{"label": "a <b> & 'c'", "rate": 1}]}
    root = _draw(tmp_path, data)
    assert "a <b> & 'c'" in [t.text for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[]", "expected a JSON object"),
        ("{", "not JSON"),
        ('{"results": []}', "no 'results' list"),
        ('{"results": [{"label": "x", "rate": "fast"}]}', "'rate' must be a finite number"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str
) -> None:
    src = tmp_path / "bad.json"
    src.write_text(content)
    assert charts.main([str(src)]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and reason in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.svg").exists()


def test_write_result_round_trips_through_the_chart(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    charts.write_result(out, "acme_load", "flows/s", [{"label": "certgate c=16", "rate": 450.0}])
    written = json.loads(out.read_text())
    assert written["benchmark"] == "acme_load" and written["date"].endswith("UTC")
    assert charts.main([str(out)]) == 0
    root = ET.fromstring((tmp_path / "run.svg").read_bytes())
    assert [b.get("data-value") for b in root.findall(f"{SVG}rect[@class='bar']")] == ["450"]


def test_performance_md_charts_are_drawn_from_their_json() -> None:
    """Every chart docs/performance.md shows exists, and is what bench/charts.py draws from the
    benchmark JSON beside it (so a chart is never edited by hand or left stale)."""
    text = (REPO / "docs" / "performance.md").read_text()
    charts_shown = re.findall(r"!\[[^\]]*\]\((perf/[\w.-]+\.svg)\)", text)
    assert charts_shown
    for name in charts_shown:
        svg = REPO / "docs" / name
        source = svg.with_suffix(".json")
        assert source.exists(), source
        assert svg.read_text() == charts.render(charts.load(source), str(source)), name
