"""bench/grid_rd.py's comparison: the BD-rate restricted to a bit-rate window, and re-scoring a saved run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
grid_rd = pytest.importorskip("grid_rd")


def _curve(bpps: list[float], gain: float) -> list[dict]:
    return [{"bpp": b, "psnr": 30 + 6 * np.log2(b) + gain, "setting": str(b)} for b in bpps]


def test_window_bd_rate_uses_only_the_window() -> None:
    base = _curve([0.1, 0.2, 0.5, 1.0, 2.0, 4.0], 0.0)
    # grid: 1 dB better inside 0.2-1.0 bpp, 3 dB worse outside (a curve that crosses)
    grid = [dict(p, psnr=p["psnr"] + (1.0 if 0.2 <= p["bpp"] <= 1.0 else -3.0)) for p in _curve(
        [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 4.0], 0.0)]
    points = {"grid": grid, **{b: base for b in grid_rd.BASELINES}}
    c = grid_rd.compare(points)["jpeg2000"]
    assert c["bd_rate_percent_window"] < -5 < 0 < c["bd_rate_percent"]  # whole range: worse; window: better
    lo, hi = grid_rd.psnr_window(grid_rd.pareto(grid), grid_rd.pareto(base))
    assert lo == pytest.approx(30 + 6 * np.log2(0.2) + 1) and hi == pytest.approx(30.0)  # both curves inside


def test_rescore_recomputes_from_points(tmp_path: Path) -> None:
    pts = {"grid": _curve([0.2, 0.4, 0.8], 0.5), **{b: _curve([0.1, 0.3, 0.6, 1.2], 0.0) for b in grid_rd.BASELINES}}
    run = {"sets": {"other": {"mean_points": pts, "per_image": [{"image": "x", "points": pts, "comparison": {}}],
                              "comparison": {}, "per_image_bd_rate_percent": {}}}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    out = grid_rd.rescore(path)["sets"]["other"]
    bd = out["comparison"]["webp"]["bd_rate_percent"]
    assert bd is not None and bd < 0  # 0.5 dB better everywhere: fewer bits
    assert out["per_image_bd_rate_percent"]["webp"] == [bd]
