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
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from inrkit.models import save_model
from inrkit.models.surgery import find_group
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
from inrkit.prune.criteria import CRITERIA
from inrkit.prune.model import prune_group
from inrkit.utils import resolve_device, run_environment, write_json

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
    p.add_argument("--steps", "--iters", dest="steps", type=int, default=None, help="steps of the full model")
    p.add_argument("--retrain", type=int, default=None, help="steps after pruning")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--importance", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--no-scratch", action="store_true", help="skip the random-init controls")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None, help="comma-separated seeds (e.g. 0,1,2): one run each, then the "
                   "mean +- std of every arm (the top-level fields are the first seed's)")
    p.add_argument("--eval-views", type=int, default=None, help="test views for PSNR (none: all)")
    p.add_argument("--grid-prune", type=int, default=0, help="also prune a grid field's MLPs to half width "
                   "after this many training steps, once, at the first seed (0: not run)")
    p.add_argument("--stem", default=None, help="results file stem (default nerf_prune, --full: nerf_prune_full)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = p.parse_args(argv)
    cpu = {"size": 48, "views": 16, "width": 64, "widths": "32,16", "steps": 500, "retrain": 250,
           "batch": 256, "samples": 24, "importance": 24, "lr": 2e-3}
    gpu = {"size": 100, "views": 25, "width": 256, "widths": "128,64", "steps": 30000, "retrain": 30000,
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
    idx = torch.randint(rays["o"].shape[0], (int(cfg.batch_size or 1),), generator=gen).to(device)
    batch = [rays[k][idx] for k in ("o", "d", "near", "far")]
    times: dict[str, list[float]] = {k: [] for k in models}

    def run(model: NeRFMLP, n: int) -> float:
        opt = torch.optim.Adam(model.parameters(), lr=1e-6)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            out = render_rays(model, *batch, int(cfg.n_samples or 2), int(cfg.n_importance or 0), perturb=True,
                              generator=gen)
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
    names = list(results["timing"]["seconds_per_100_steps"])
    ax.bar(names, [results["timing"]["seconds_per_100_steps"][n] for n in names], color="C2")
    ax.set_ylabel("seconds per 100 training steps")
    ax.set_title(f"device: {results['env']['device']}")
    fig.suptitle("NeRF neuron pruning: " + results["env"]["scene"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_seed(a: argparse.Namespace, device: torch.device) -> dict:
    """One full run (train, prune with every method and width, retrain, controls, timing) at seed ``a.seed``."""
    tmp = Path(tempfile.mkdtemp(prefix="nerf_prune_"))
    if a.scene:
        scene_dir, scene_desc = Path(a.scene), f"{a.scene} (downscale {a.downscale})"
    else:
        scene_dir = generate_scene(tmp / "scene", size=a.size, views=a.views, test_views=a.test_views, seed=a.seed)
        scene_desc = f"generated {a.size}px, {a.views} train / {a.test_views} test views, seed {a.seed}"
    scene = load_blender(scene_dir, downscale=a.downscale)
    cfg = TrainConfig(steps=a.steps, batch_size=a.batch, n_samples=a.samples, n_importance=a.importance, lr=a.lr,
                      lr_final=a.lr / 10, seed=a.seed, device=a.device, progress=sys.stderr.isatty(),
                      eval_views=a.eval_views).resolved("mlp")
    meta = scene.metadata()
    widths = [int(w) for w in a.widths.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    print(f"[nerf_prune] {scene_desc}; full width {a.width}, depth {a.depth}, pruned to {widths}", file=sys.stderr)

    t0 = time.perf_counter()
    full = NeRFMLP(NeRFConfig.sized(a.width, a.depth), seed=a.seed)
    res = train_nerf(full, scene, cfg)
    results: dict = {"full": {"params": full.num_params(), "bytes": file_bytes(full, meta, tmp, "full"),
                              "psnr": res.metrics["psnr"], "steps": res.steps,
                              "seconds_per_100_steps": 100 * res.seconds / max(1, res.steps)}}
    print(f"[nerf_prune] full: {results['full']}", file=sys.stderr)
    # control: the full model trained the same extra iterations as every pruned one, from its trained weights
    # with the restarted schedule (what prune_and_train's "retrain" mode does, without the pruning)
    ctrl = train_nerf(full.copy(), scene, replace(cfg, steps=a.retrain, precrop_steps=0))
    results["full_retrained"] = {"psnr": ctrl.metrics["psnr"], "steps": a.steps + a.retrain,
                                 "seconds_per_100_steps": 100 * ctrl.seconds / a.retrain}
    rows, compact = [], {}
    for width in widths:
        for method in methods:
            r = prune_and_train(full, scene, method, width, a.retrain, "retrain", cfg, seed=a.seed)
            size = file_bytes(r.model, meta, tmp, f"{method}{width}")
            row = {"method": method, "width": width, "params": r.params, "bytes": size,
                   "psnr_pruned": r.psnr_pruned, "psnr": r.metrics["psnr"],
                   "seconds_per_100_steps": 100 * r.train.seconds / a.retrain if r.train else None}
            row["psnr_delta_vs_full"] = row["psnr"] - results["full_retrained"]["psnr"]
            rows.append(row)
            compact.setdefault(width, r.model)
            print(f"[nerf_prune] {row}", file=sys.stderr)
    results["pruned"] = rows
    if not a.no_scratch:
        results["scratch"] = {}
        for width in widths:
            model = NeRFMLP(NeRFConfig.sized(width, a.depth), seed=a.seed)
            sres = train_nerf(model, scene, replace(cfg, steps=a.steps + a.retrain, precrop_steps=None))
            results["scratch"][str(width)] = {"params": model.num_params(), "psnr": sres.metrics["psnr"],
                                              "steps": sres.steps}
    models = {f"full {a.width}": full, **{f"pruned {w}": m for w, m in compact.items()}}
    per_step = step_seconds(models, scene, cfg)
    full_key = f"full {a.width}"
    results["timing"] = {"method": "median of 5 interleaved rounds of 10 training steps on one fixed ray batch",
                         "seconds_per_100_steps": {k: 100 * v for k, v in per_step.items()},
                         "ratio_vs_full": {k: v / per_step[full_key] for k, v in per_step.items()}}
    half = next((r for r in rows if r["method"] == "coreset" and r["width"] == widths[0]), None)
    results["comparison"] = {
        "params_ratio_coreset_half": half["params"] / results["full"]["params"] if half else None,
        "bytes_ratio_coreset_half": half["bytes"] / results["full"]["bytes"] if half else None,
        "time_ratio_half": per_step.get(f"pruned {widths[0]}", float("nan")) / per_step[full_key],
        "psnr_delta_coreset_half": half["psnr_delta_vs_full"] if half else None,
        "psnr_by_method": {f"{r['method']}@{r['width']}": r["psnr"] for r in rows},
        "study": STUDY}
    results["environment"] = run_environment()
    results["env"] = {"device": str(device) if device.type != "cpu" else f"cpu ({torch.get_num_threads()} thread)",
                      "scene": scene_desc, "config": {k: v for k, v in vars(a).items()}, "train": asdict(cfg),
                      "total_seconds": time.perf_counter() - t0}
    results["scene_object"] = scene
    return results


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    device = resolve_device(a.device)
    if device.type == "cpu":
        torch.set_num_threads(a.threads or 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else [a.seed]
    runs = [run_seed(argparse.Namespace(**{**vars(a), "seed": seed}), device) for seed in seeds]
    scene = runs[0]["scene_object"]
    for run in runs:
        del run["scene_object"]
    results = dict(runs[0])
    if a.grid_prune:  # once, at the first seed
        results["grid"] = grid_prune(argparse.Namespace(**{**vars(a), "seed": seeds[0]}), scene, device)
    if len(runs) > 1:
        results["seeds"] = seeds
        results["runs"] = runs
        results["summary"] = summarise(runs)
    results["wall_seconds"] = time.perf_counter() - start
    stem = a.stem or ("nerf_prune_full" if a.full else "nerf_prune")
    write_json(out / f"{stem}.json", results)
    plot(results, out / f"{stem}.png")
    print(f"[nerf_prune] wrote {out / stem}.json and .png in {results['wall_seconds']:.0f} s", file=sys.stderr)
    return results


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def summarise(runs: list[dict]) -> dict:
    """Mean +- sample std over the seeds of every arm's test PSNR and seconds per step, and the parameters."""
    first = runs[0]
    arms: dict[str, dict] = {
        "full": {"params": first["full"]["params"], "bytes": first["full"]["bytes"],
                 "psnr": _stats([r["full"]["psnr"] for r in runs])},
        "full_retrained": {"params": first["full"]["params"],
                           "psnr": _stats([r["full_retrained"]["psnr"] for r in runs])},
    }
    for k, row in enumerate(first["pruned"]):
        rows = [r["pruned"][k] for r in runs]
        arms[f"{row['method']}@{row['width']}"] = {
            "params": row["params"], "bytes": row["bytes"], "psnr": _stats([x["psnr"] for x in rows]),
            "psnr_pruned": _stats([x["psnr_pruned"] for x in rows]),
            "delta_vs_full_retrained": _stats([x["psnr_delta_vs_full"] for x in rows])}
    timing = {name: _stats([r["timing"]["seconds_per_100_steps"][name] / 100 for r in runs])
              for name in first["timing"]["seconds_per_100_steps"]}
    ratio = {name: _stats([r["timing"]["ratio_vs_full"][name] for r in runs])
             for name in first["timing"]["ratio_vs_full"]}
    return {"arms": arms, "seconds_per_step": timing, "time_ratio_vs_full": ratio}


def grid_prune(a: argparse.Namespace, scene, device: torch.device) -> dict:
    """The grid field's MLPs pruned to half width (coreset, product, uniform), same retraining budget each."""
    from inrkit.nerf.grid_field import GridNeRF
    from inrkit.nerf.train import grid_field_config

    cfg = TrainConfig(steps=a.grid_prune, seed=a.seed, device=a.device, progress=False,
                      eval_views=a.eval_views).resolved("grid", scene.metadata())
    model = GridNeRF(grid_field_config(scene.metadata()), seed=a.seed)
    res = train_nerf(model, scene, cfg)
    retrain = max(1, a.grid_prune // 4)
    # the retraining restarts the schedule from lr_final: the tables are already trained
    tune = replace(cfg, steps=retrain, lr=cfg.lr_final, encoding_lr=cfg.lr_final, lr_final=(cfg.lr_final or 1) / 10)
    ctrl = train_nerf(model.copy(), scene, tune)
    out: dict = {"steps": res.steps, "retrain_steps": retrain, "params": model.num_params(),
                 "mlp_params": model.mlp_params(), "table_params": model.encoding.num_params(),
                 "psnr": float(res.metrics["psnr"]), "psnr_full_retrained": float(ctrl.metrics["psnr"])}
    for method in ("uniform", "product", "coreset"):
        small = model.copy()
        gen = torch.Generator().manual_seed(a.seed)
        criterion = CRITERIA.get(method)
        for group in small.prunable_groups():
            prune_group(small, find_group(small, group.name), criterion, keep=group.width // 2, generator=gen)
        small.occ_density.copy_(model.occ_density)
        small.occupied = model.occupied.clone()
        r = train_nerf(small, scene, tune)
        out[f"psnr_{method}"] = float(r.metrics["psnr"])
        out["pruned_params"] = small.num_params()
        out["pruned_mlp_params"] = small.mlp_params()
    out["bytes_saved_float32"] = 4 * (out["params"] - out["pruned_params"])
    out["fraction_of_file_saved"] = (out["params"] - out["pruned_params"]) / out["params"]
    return out


if __name__ == "__main__":
    main()
