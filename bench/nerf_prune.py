"""NeRF neuron pruning benchmark: full NeRF MLP vs uniform / importance / coreset pruning.

Trains a full NeRF, prunes it to half and a quarter of its width with every criterion,
retrains each compact MLP, and reports parameters, file bytes, training time per 100
iterations and test PSNR beside the study's figures (Ding et al. 2025: 595K -> 288K
parameters, 78.75 -> 51.25 min per 100k iterations, 21.5 -> 21.3 dB with coreset;
uniform at width 64 drops to 16.5 dB).

Controls measured in the same run: the full model retrained for the same number of
extra iterations (no pruning), and each compact architecture trained from a random
initialisation for the same total number of iterations as full + retrain.

CPU default (a few minutes here): a generated 48 px scene, full width 64 (8 layers, the
paper's layout) pruned to 32 and 16. ``--full`` (GPU): the paper's width 256 pruned to
128 and 64, on ``--scene DIR`` (e.g. Blender lego) or a generated 100 px scene.

    .venv/bin/python bench/nerf_prune.py            # CPU default
    .venv/bin/python bench/nerf_prune.py --full --scene data/nerf_synthetic/lego --downscale 2
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from inrkit.models import save_model
from inrkit.nerf import (
    NeRFConfig,
    NeRFMLP,
    TrainConfig,
    generate_scene,
    load_blender,
    prune_and_train,
    train_nerf,
)
from inrkit.nerf.render import render_rays
from inrkit.nerf.train import scene_rays
from inrkit.utils import resolve_device, write_json

METHODS = ("uniform", "w_in", "w_out", "product", "coreset")  # the study's; any name of inrkit.prune.CRITERIA works
STUDY = {"source": "Ding et al. 2025, neuron pruning of NeRF MLPs (Blender scenes, 100k iterations)",
         "params_full": 595_000, "params_coreset": 288_000, "min_per_100k_full": 78.75,
         "min_per_100k_coreset": 51.25, "psnr_full": 21.5, "psnr_coreset": 21.3, "psnr_uniform_64": 16.5,
         "params_ratio": 288 / 595, "time_ratio": 51.25 / 78.75, "psnr_delta_coreset": -0.2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="GPU scale: width 256 -> 128, 64, longer training")
    p.add_argument("--scene", default=None, help="Blender-format scene folder (default: generate one)")
    p.add_argument("--downscale", type=int, default=1)
    p.add_argument("--size", type=int, default=None, help="generated scene image size")
    p.add_argument("--views", type=int, default=None, help="generated scene train views")
    p.add_argument("--test-views", type=int, default=4)
    p.add_argument("--width", type=int, default=None, help="full model width")
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--widths", default=None, help="pruned widths, e.g. 128,64")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--iters", type=int, default=None, help="iterations of the full model")
    p.add_argument("--retrain", type=int, default=None, help="iterations after pruning")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--importance", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--no-scratch", action="store_true", help="skip the random-init controls")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = p.parse_args(argv)
    cpu = {"size": 48, "views": 16, "width": 64, "widths": "32,16", "iters": 500, "retrain": 250,
           "batch": 256, "samples": 24, "importance": 24, "lr": 2e-3}
    gpu = {"size": 100, "views": 25, "width": 256, "widths": "128,64", "iters": 30000, "retrain": 30000,
           "batch": 1024, "samples": 64, "importance": 64, "lr": 5e-4}
    for key, value in (gpu if a.full else cpu).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    return a


def file_bytes(model: NeRFMLP, meta: dict, folder: Path, name: str) -> int:
    path = save_model(model, folder / f"{name}.safetensors", signal=meta)
    return path.stat().st_size


def step_seconds(models: dict[str, NeRFMLP], scene, cfg: TrainConfig, steps: int = 10, rounds: int = 5) -> dict:
    """Median seconds per training step of each model, measured interleaved (same rays, same load)."""
    device = resolve_device(cfg.device)
    meta = scene.metadata()
    rays = scene_rays(meta, scene.split("train").poses, device)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(rays["o"].shape[0], (cfg.batch_rays,), generator=gen).to(device)
    batch = [rays[k][idx] for k in ("o", "d", "near", "far")]
    times: dict[str, list[float]] = {k: [] for k in models}

    def run(model: NeRFMLP, n: int) -> float:
        opt = torch.optim.Adam(model.parameters(), lr=1e-6)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            out = render_rays(model, *batch, cfg.n_samples, cfg.n_importance, perturb=True, generator=gen)
            loss = out["rgb"].square().mean() + out["rgb_coarse"].square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    for name, model in models.items():
        run(model.to(device), 2)                                 # warm-up
    for _ in range(rounds):
        for name, model in models.items():
            times[name].append(run(model, steps))
    return {k: statistics.median(v) for k, v in times.items()}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["pruned"]
    widths = sorted({r["width"] for r in rows}, reverse=True)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    step = 0.8 / max(1, len(widths))
    for k, w in enumerate(widths):
        ps = [next((r["psnr"] for r in rows if r["method"] == m and r["width"] == w), np.nan) for m in methods]
        ax.bar(np.arange(len(methods)) + k * step, ps, step, label=f"width {w}")
    ax.axhline(results["full"]["psnr"], color="k", ls="--", label="full (before pruning)")
    ax.axhline(results["full_retrained"]["psnr"], color="gray", ls=":", label="full, same extra iterations")
    for k, w in enumerate(widths):
        sc = results.get("scratch", {}).get(str(w))
        if sc:
            ax.axhline(sc["psnr"], color=f"C{k}", ls="-.", lw=1, label=f"random init, width {w}")
    ax.set_xticks(np.arange(len(methods)) + step * (len(widths) - 1) / 2, methods)
    ax.set_ylabel("test PSNR (dB)")
    lo = min([r["psnr"] for r in rows] + [results["full"]["psnr"]])
    hi = max([r["psnr"] for r in rows] + [results["full_retrained"]["psnr"]])
    ax.set_ylim(lo - 2, hi + 0.45 * (hi - lo + 2))
    ax.set_title("after retraining")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax = axes[1]
    for m in methods:
        pts = sorted((r["params"], r["psnr"]) for r in rows if r["method"] == m)
        ax.plot(*zip(*pts), "o-", label=m)
    ax.plot([results["full"]["params"]], [results["full_retrained"]["psnr"]], "k*", ms=12, label="full")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test PSNR (dB)")
    ax.legend(fontsize=7)
    ax = axes[2]
    names = list(results["timing"]["seconds_per_100_iters"])
    ax.bar(names, [results["timing"]["seconds_per_100_iters"][n] for n in names], color="C2")
    ax.set_ylabel("seconds per 100 training iterations")
    ax.set_title(f"device: {results['env']['device']}")
    fig.suptitle("NeRF neuron pruning: " + results["env"]["scene"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    device = resolve_device(a.device)
    if device.type == "cpu":
        torch.set_num_threads(a.threads or 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="nerf_prune_"))
    if a.scene:
        scene_dir, scene_desc = Path(a.scene), f"{a.scene} (downscale {a.downscale})"
    else:
        scene_dir = generate_scene(tmp / "scene", size=a.size, views=a.views, test_views=a.test_views, seed=a.seed)
        scene_desc = f"generated {a.size}px, {a.views} train / {a.test_views} test views, seed {a.seed}"
    scene = load_blender(scene_dir, downscale=a.downscale)
    cfg = TrainConfig(iters=a.iters, batch_rays=a.batch, n_samples=a.samples, n_importance=a.importance, lr=a.lr,
                      lr_final=a.lr / 10, seed=a.seed, device=a.device, progress=sys.stderr.isatty())
    meta = scene.metadata()
    widths = [int(w) for w in a.widths.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    print(f"[nerf_prune] {scene_desc}; full width {a.width}, depth {a.depth}, pruned to {widths}", file=sys.stderr)

    t0 = time.perf_counter()
    full = NeRFMLP(NeRFConfig.sized(a.width, a.depth), seed=a.seed)
    res = train_nerf(full, scene, cfg)
    results: dict = {"full": {"params": full.num_params(), "bytes": file_bytes(full, meta, tmp, "full"),
                              "psnr": res.metrics["psnr"], "iters": res.iters,
                              "seconds_per_100_iters": 100 * res.seconds / max(1, res.iters)}}
    print(f"[nerf_prune] full: {results['full']}", file=sys.stderr)
    # control: the full model trained the same extra iterations as every pruned one, from its trained weights
    # with the restarted schedule (what prune_and_train's "retrain" mode does, without the pruning)
    ctrl = train_nerf(full.copy(), scene, TrainConfig(**{**cfg.__dict__, "iters": a.retrain, "precrop_iters": 0}))
    results["full_retrained"] = {"psnr": ctrl.metrics["psnr"], "iters": a.iters + a.retrain,
                                 "seconds_per_100_iters": 100 * ctrl.seconds / a.retrain}
    rows, compact = [], {}
    for width in widths:
        for method in methods:
            r = prune_and_train(full, scene, method, width, a.retrain, "retrain", cfg, seed=a.seed)
            size = file_bytes(r.model, meta, tmp, f"{method}{width}")
            row = {"method": method, "width": width, "params": r.params, "bytes": size,
                   "psnr_pruned": r.psnr_pruned, "psnr": r.metrics["psnr"],
                   "seconds_per_100_iters": 100 * r.train.seconds / a.retrain}
            row["psnr_delta_vs_full"] = row["psnr"] - results["full_retrained"]["psnr"]
            rows.append(row)
            compact.setdefault(width, r.model)
            print(f"[nerf_prune] {row}", file=sys.stderr)
    results["pruned"] = rows
    if not a.no_scratch:
        results["scratch"] = {}
        for width in widths:
            model = NeRFMLP(NeRFConfig.sized(width, a.depth), seed=a.seed)
            sres = train_nerf(model, scene, TrainConfig(**{**cfg.__dict__, "iters": a.iters + a.retrain}))
            results["scratch"][str(width)] = {"params": model.num_params(), "psnr": sres.metrics["psnr"],
                                              "iters": sres.iters}
    models = {f"full {a.width}": full, **{f"pruned {w}": m for w, m in compact.items()}}
    per_step = step_seconds(models, scene, cfg)
    full_key = f"full {a.width}"
    results["timing"] = {"method": "median of 5 interleaved rounds of 10 training steps on one fixed ray batch",
                         "seconds_per_100_iters": {k: 100 * v for k, v in per_step.items()},
                         "ratio_vs_full": {k: v / per_step[full_key] for k, v in per_step.items()}}
    half = next((r for r in rows if r["method"] == "coreset" and r["width"] == widths[0]), None)
    results["comparison"] = {
        "params_ratio_coreset_half": half["params"] / results["full"]["params"] if half else None,
        "bytes_ratio_coreset_half": half["bytes"] / results["full"]["bytes"] if half else None,
        "time_ratio_half": per_step.get(f"pruned {widths[0]}", np.nan) / per_step[full_key],
        "psnr_delta_coreset_half": half["psnr_delta_vs_full"] if half else None,
        "psnr_by_method": {f"{r['method']}@{r['width']}": r["psnr"] for r in rows},
        "study": STUDY}
    results["env"] = {"device": str(device) if device.type != "cpu" else f"cpu ({torch.get_num_threads()} thread)",
                      "torch": torch.__version__, "python": platform.python_version(), "scene": scene_desc,
                      "config": {k: v for k, v in vars(a).items()}, "train": cfg.__dict__,
                      "total_seconds": time.perf_counter() - t0}
    stem = "nerf_prune_full" if a.full else "nerf_prune"
    write_json(out / f"{stem}.json", results)
    plot(results, out / f"{stem}.png")
    print(f"[nerf_prune] wrote {out / stem}.json and .png in {results['env']['total_seconds']:.0f} s", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
