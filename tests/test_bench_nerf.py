"""bench/nerf_prune.py end to end at a tiny size: the full model, its equal-budget control (the full model trained
the same extra steps; it used to be "pruned" to its own width, which prune_nerf now refuses) and every
method's pruned, retrained model, written to the result JSON."""
from __future__ import annotations

import json
from pathlib import Path

import nerf_prune as bench  # bench/nerf_prune.py (pytest puts bench/ on the path: pyproject's pythonpath)

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_writes_every_arm(tmp_path: Path) -> None:
    bench.main(["--size", "16", "--views", "4", "--test-views", "1", "--iters", "4", "--retrain", "2",
                "--width", "16", "--widths", "8", "--methods", "uniform,coreset", "--samples", "8",
                "--importance", "8", "--batch", "64", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "nerf_prune.json").read_text())
    assert result["full_retrained"]["steps"] == 4 + 2
    rows = result["pruned"]
    assert {r["method"] for r in rows} == {"uniform", "coreset"}
    assert all(r["params"] < result["full"]["params"] and r["width"] == 8 for r in rows)
