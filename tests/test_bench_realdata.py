"""docs/getting-started.md's results table is generated from bench/results/realdata.json."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    import realdata  # bench/realdata.py (pytest puts bench/ on the path: pyproject's pythonpath)

    return realdata


def test_getting_started_table_matches_the_results() -> None:
    bench = _bench()
    results = json.loads((ROOT / "bench" / "results" / "realdata.json").read_text())
    doc = (ROOT / "docs" / "getting-started.md").read_text()
    assert bench.with_table(doc, results) == doc, "regenerate: python bench/realdata.py --docs"


def test_every_target_is_recorded_per_row() -> None:
    results = json.loads((ROOT / "bench" / "results" / "realdata.json").read_text())
    kinds = {row["kind"] for row in results["rows"]}
    assert kinds == {"photo", "volume"} and len(results["rows"]) >= 6
    for row in results["rows"]:
        assert row["exit"] == 0, row
        assert set(row["meets"]) == {"psnr", "seconds", "smaller_than_data"}
        assert row["ratio"] == round(row["bytes"] / row["raw_bytes"], 4)


def test_choosing_table_matches_the_auto_rule_results() -> None:
    import auto_rule as module  # bench/auto_rule.py
    results = json.loads((ROOT / "bench" / "results" / "auto_rule.json").read_text())
    doc = (ROOT / "docs" / "choosing.md").read_text()
    assert module.with_table(doc, results) == doc, "regenerate: python bench/auto_rule.py --docs"
    auto = {r["input"]: r for r in results["rows"] if "auto" in r}
    assert auto["kodim13"]["psnr_f16"] >= 30 and auto["ironProt"]["psnr_f16"] >= 40  # the rule meets its targets
