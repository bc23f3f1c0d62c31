"""NeRF on the Blender lego scene with defaults, one CPU thread: grid field vs NeRF MLP, test PSNR vs seconds.

Each architecture trains with its defaults (``inrkit nerf-train SCENE --arch ARCH``) under the same
wall budget; every ``--eval-every`` steps a few test views (``--curve-views``) are rendered, and the
evaluation time is excluded from the training clock (:func:`inrkit.train.fit`). After training the
mean PSNR over all test views is measured. The run writes (or updates, one architecture at a time)
``bench/results/nerf_lego.json`` (``--name``) and the curve plot; with ``--render`` also a test view
beside its ground truth and a turntable GIF made by ``inrkit nerf-render``.

    flock -x /tmp/inrkit-cpu.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/nerf_lego.py --arch grid --render
    flock -x /tmp/inrkit-cpu.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/nerf_lego.py --arch mlp
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from inrkit.nerf import (
    NeRFConfig,
    NeRFMLP,
    TrainConfig,
    evaluate_nerf,
    load_blender,
    render_image,
    save_nerf,
    train_nerf,
)
from inrkit.nerf.grid_field import GridNeRF
from inrkit.nerf.train import grid_field_config
from inrkit.utils import run_environment, to_uint8, write_json

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("INRKIT_DATA", ROOT.parent / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"
CLAIM = (">= 25 dB mean test PSNR on lego_100 within 15 minutes on one CPU thread with defaults (grid field); "
         "the NeRF MLP with its defaults under the same wall budget as the baseline")
REFERENCE = {"nerf_800px_db": 32.5, "instant_ngp_800px_db": 36.0,
             "note": "the full-resolution (800x800) lego test split on a GPU (Mildenhall et al. 2020; Müller et al. "
                     "2022); not comparable pixel for pixel with 100 or 200 px images"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", default=str(DATA / "scenes" / "lego_100"))
    p.add_argument("--arch", choices=("grid", "mlp"), default="grid")
    p.add_argument("--budget", type=float, default=900.0, help="training seconds (the wall budget)")
    p.add_argument("--steps", type=int, default=None, help="steps (none: the architecture's default)")
    p.add_argument("--eval-every", type=int, default=None, help="steps between curve points (none: about 10 points)")
    p.add_argument("--curve-views", type=int, default=3, help="test views of each curve point")
    p.add_argument("--render", action="store_true", help="write the test view beside its ground truth and a GIF")
    p.add_argument("--gif-size", type=int, default=100)
    p.add_argument("--gif-views", type=int, default=24)
    p.add_argument("--name", default="nerf_lego", help="results file stem")
    p.add_argument("--key", default=None, help="entry name in the results (none: ARCH_SIZEpx)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alone", action="store_true", help="record that the run held the exclusive CPU lock")
    return p.parse_args(argv)


def build(arch: str, meta: dict, seed: int) -> GridNeRF | NeRFMLP:
    """The model ``inrkit nerf-train`` builds with defaults."""
    if arch == "grid":
        return GridNeRF(grid_field_config(meta, 64), seed=seed)
    return NeRFMLP(NeRFConfig.sized(64, 8), seed=seed)


def side_by_side(model: torch.nn.Module, scene: Any, cfg: TrainConfig, view: int, path: Path) -> float:
    """Render test ``view`` and save it left of its ground truth; returns its PSNR."""
    test = scene.split("test")
    img = render_image(model, test.poses[view], scene.metadata(), int(cfg.n_samples or 2), int(cfg.n_importance or 0))
    gt = test.images[view]
    gap = np.ones((gt.shape[0], 4, 3), np.float32)
    Image.fromarray(to_uint8(np.concatenate([img, gap, gt], 1))).save(path)
    return float(-10 * np.log10(np.mean((img - gt) ** 2)))


def turntable(model_path: Path, gif: Path, size: int, views: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "inrkit", "nerf-render", str(model_path), "-o", str(gif), "--views", str(views),
           "--size", str(size), "--json"]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"command": " ".join(cmd[2:]), "error": out.stderr.strip()[-300:]}
    return {"command": "inrkit nerf-render MODEL -o " + gif.name + f" --views {views} --size {size}",
            "wall_seconds": round(time.perf_counter() - start, 2), "bytes": gif.stat().st_size,
            **{k: v for k, v in json.loads(out.stdout).items() if k in ("frames",)}}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, row in results.items():
        curve = np.asarray(row["curve"]) if row.get("curve") else None
        if curve is not None and len(curve):
            ax.plot(curve[:, 1], curve[:, 2], marker="o", ms=3, label=f"{key} (final {row['psnr']:.2f} dB)")
    ax.axhline(25.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("training seconds (one CPU thread; evaluation excluded)")
    ax.set_ylabel("test PSNR (dB, curve: a few views)")
    ax.set_title("Blender lego: grid field vs NeRF MLP, defaults")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(a: argparse.Namespace) -> dict[str, Any]:
    scene = load_blender(a.scene)
    meta = scene.metadata()
    steps = a.steps
    cfg = TrainConfig(steps=steps, eval_views=a.curve_views, progress=False, time_budget=a.budget, seed=a.seed)
    resolved = cfg.resolved(a.arch, meta)
    every = a.eval_every or max(1, int(resolved.steps or 1) // 10)
    cfg = replace(cfg, eval_every=every)
    model = build(a.arch, meta, a.seed)
    load_before = os.getloadavg()
    wall = time.perf_counter()
    res = train_nerf(model, scene, cfg)
    train_wall = time.perf_counter() - wall
    load_after = os.getloadavg()
    curve = [[r["step"], r["seconds"], round(r["eval"]["psnr"], 3)] for r in res.history if "eval" in r]
    full = replace(resolved, eval_views=None)
    start = time.perf_counter()
    final = evaluate_nerf(model, scene, full)
    eval_s = time.perf_counter() - start
    curve.append([res.steps, round(res.seconds, 3), round(res.metrics["psnr"], 3)])
    row: dict[str, Any] = {
        "arch": a.arch, "scene": Path(a.scene).name, "size": scene.width, "psnr": final["psnr"],
        "psnr_per_view": final["psnr_per_view"], "test_views": len(final["views"]), "steps": res.steps,
        "steps_default": resolved.steps, "train_seconds": round(res.seconds, 2),
        "seconds_per_step": res.seconds / max(1, res.steps), "budget_s": a.budget,
        "wall_seconds_with_curve_evals": round(train_wall, 1), "final_eval_seconds": round(eval_s, 1),
        "params": model.num_params(), "curve": curve, "curve_views": res.metrics.get("views"),
        "eval_every": every, "settings": {k: v for k, v in asdict(resolved).items()
                                          if k not in ("progress", "device", "eval_views", "eval_every")},
        "model": asdict(model.config), "reached_25db": final["psnr"] >= 25.0,
        "load_average_1min": {"before": round(load_before[0], 2), "after_training": round(load_after[0], 2)},
    }
    if "occupied_fraction" in res.metrics:
        row["occupied_fraction"] = res.metrics["occupied_fraction"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_nerf(model, path, meta, {"arch": a.arch, "train": asdict(resolved)})
        row["file_bytes"] = path.stat().st_size
        if a.render:
            stem = f"{a.name}_{a.arch}_{scene.width}px"
            row["view_png"] = f"bench/results/{stem}_view0.png"
            row["view0_psnr"] = side_by_side(model, scene, resolved, 0, RESULTS / f"{stem}_view0.png")
            row["turntable"] = {"gif": f"bench/results/{stem}_turntable.gif",
                                **turntable(path, RESULTS / f"{stem}_turntable.gif", a.gif_size, a.gif_views)}
    return row


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    row = run(a)
    out = RESULTS / f"{a.name}.json"
    doc = json.loads(out.read_text()) if out.exists() else {}
    results = doc.get("results", {})
    command = " ".join(["bench/nerf_lego.py", *(argv or sys.argv[1:])])
    results[a.key or f"{a.arch}_{row['size']}px"] = {**row, "ran_alone": a.alone, "command": command}
    doc = {"benchmark": "nerf_lego", "claim": CLAIM,
           "timing": "one CPU thread; training seconds exclude the curve evaluations (every eval_every steps on "
                     "curve_views test views); the final PSNR is the mean over all test views, rendered after "
                     "training; ran_alone: the run held the exclusive CPU lock, else it ran beside other jobs on "
                     "the 2-core machine (load_average_1min: the machine's load before and after training)",
           "environment": run_environment(), "reference": REFERENCE, "results": results}
    write_json(out, doc)
    plot(results, RESULTS / f"{a.name}.png")
    print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "psnr_per_view", "settings", "model")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
