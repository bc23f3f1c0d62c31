"""bench/aire.py's protocol parts: the held-out split (AIRe Sec. 5: the paper's PSNR is on 10% held-out pixels) and
Table 3 left on the bunny SDF (Small / Prune / Densify+Prune reach the same widths and report Chamfer and NC)."""
from __future__ import annotations

from pathlib import Path

import aire  # bench/aire.py (pytest puts bench/ on the path: pyproject's pythonpath)
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

needs_kodak = pytest.mark.skipif(not aire.KODAK.is_dir(), reason="Kodak images not found (../shared/data/kodak)")
BUNNY = ROOT.parent / "shared" / "data" / "meshes" / "bunny.ply"


@needs_kodak
def test_held_out_split_reports_held_out_psnr() -> None:
    s = aire.Settings(crop=32, size=0, test_fraction=0.1)
    signal = aire.load_image("kodim03", s, seed=0)
    assert signal.test_idx is not None and len(signal.test_idx) == round(0.1 * 32 * 32)
    model = aire.train(aire.new_net([16, 16], 0), signal, 30, 1e-3, "cpu", None)
    metrics = signal.evaluate(model)
    assert aire.psnr(model, signal) == metrics["psnr"] != metrics["psnr_train"]
    # the TWD ratio right after pruning divides by the training-pixel PSNR, not the held-out one
    base_train = aire.train_psnr(model, signal, None, torch.device("cpu"))
    assert base_train == pytest.approx(metrics["psnr_train"], abs=1e-3)


@pytest.mark.skipif(not BUNNY.is_file(), reason="bunny.ply not found (../shared/data/meshes)")
def test_table3_sdf_arms_end_at_the_same_widths() -> None:
    s = aire.Settings(sdf_start=[12, 12, 8], sdf_final=[4, 6, 8], sdf_densify=4, sdf_steps=[2, 2, 2, 2],
                      sdf_batch=512, sdf_resolution=16)
    out = aire.bench_table3_sdf(s, "cpu", 0)
    assert out["final_widths"] == [4, 6, 8] and out["steps"] == 8
    params = {out[arm]["params"] for arm in ("small", "prune", "densify_prune")}
    assert len(params) == 1  # same final network size in every arm
    for arm in ("small", "prune", "densify_prune"):
        assert out[arm]["chamfer"] > 0 and 0.0 <= out[arm]["normal_consistency"] <= 1.0
