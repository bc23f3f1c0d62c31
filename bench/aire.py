"""AIRe and neuron-pruning benchmark on Kodak images (CPU default; ``--full`` for a GPU).

Four measurements, all on the same images, seeds and step budgets within one run:

1. ``table4``: Small vs Prune vs Densify+Prune (AIRe) at the same final size and the
   same total number of steps (the AIRe paper's Table 4: SIREN 36.44 / 37.58 / 39.47 dB).
2. ``twd``: prune p% of every hidden layer with and without TWD; PSNR right after
   pruning (no fine-tuning) and after fine-tuning (paper's Figure 5: TWD keeps 92% of
   the accuracy at 28% of the weights).
3. ``criteria``: every criterion at equal size with equal fine-tuning, plus
   Torch-Pruning's magnitude pruner as a peer.
4. ``speed``: inference time of the pruned vs the large model on the same points.
5. ``table3_sdf`` (``--sdf``, or ``--sdf-only``): Table 3 left, Small vs Prune vs Densify+Prune on the SDF of
   the bunny (Chamfer distance, normal consistency of the marching-cubes mesh).

``Settings.test_fraction`` holds out that share of the pixels (the paper: 10%); then every PSNR is the held-out
one, except the prune stages' before/after readouts and the TWD ``accuracy_kept`` (training pixels).

Writes ``bench/results/aire.json`` (``aire_full.json`` with ``--full``) and PNG plots.
Run: ``.venv/bin/python bench/aire.py [--images 4] [--full]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inrkit.adapt import AireConfig, Stage, run_schedule
from inrkit.adapt.runner import train_psnr
from inrkit.models import MLP, save_model, siren
from inrkit.models.mlp import finer
from inrkit.prune import CRITERIA
from inrkit.prune.model import domain_points, prune_model
from inrkit.signals import ImageSignal, grid_coords, read_image
from inrkit.signals.base import Signal
from inrkit.train import FitConfig, fit
from inrkit.utils import resolve_device, run_environment, write_json

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
RESULTS = ROOT / "bench" / "results"
IMAGES = ["kodim03", "kodim05", "kodim08", "kodim15", "kodim19", "kodim23", "kodim01", "kodim13"]
PAPER = {"table4_siren_db": {"small": 36.44, "prune": 37.58, "densify_prune": 39.47},
         "fig5_twd": {"weights_fraction": 0.28, "accuracy_kept": 0.92}}


@dataclass
class Settings:
    """Sizes and schedules. CPU default: the paper's image schedule with its step counts
    and learning rate (Table 4) on 64x64 images with 8x narrower layers; the pruning
    studies (parts 2-3) use shorter runs at a larger learning rate."""

    size: int = 64                 # image side after downsampling (0 = full image)
    crop: int = 256                # centre crop side before downsampling (0 = none)
    start_hidden: list[int] = field(default_factory=lambda: [64, 32, 32])
    densify: int = 16
    prune_aire: int = 48           # first-layer neurons pruned by AIRe: 64 + 16 - 48 = 32
    steps: list[int] = field(default_factory=lambda: [250, 2000, 2250, 500])  # fit, finetune, twd, finetune
    lr: float = 1e-4               # Table 4 (paper: 1e-4)
    lr_parts: float = 5e-4         # parts 2-3 (TWD study, criteria): shorter runs, larger step
    base_hidden: list[int] = field(default_factory=lambda: [64, 64, 64])
    base_steps: int = 300
    twd_steps: int = 150
    finetune_steps: int = 100
    percents: list[int] = field(default_factory=lambda: [20, 40, 60, 80])
    criteria_keep: float = 0.5
    speed_points: int = 65536
    speed_reps: int = 7
    threads: int = 1
    test_fraction: float = 0.0     # held-out share of the pixels (paper: 0.1); the reported PSNR is on them
    # --sdf (Table 3 left, bunny): the paper's [256, 256, 256] -> [64, 64, 256] scaled by 1/4 on a CPU
    sdf_start: list[int] = field(default_factory=lambda: [64, 64, 64])
    sdf_final: list[int] = field(default_factory=lambda: [16, 16, 64])
    sdf_densify: int = 16
    sdf_steps: list[int] = field(default_factory=lambda: [250, 1000, 1000, 250])  # fit, finetune, twd, finetune
    sdf_lr: float = 1e-4
    sdf_batch: int = 10000
    sdf_resolution: int = 128     # marching cubes grid of the evaluation (paper: 512)
    batch_size: int | None = None  # pixels per step (paper: 65536); None = full batch


def full_settings() -> Settings:
    return Settings(size=0, crop=0, start_hidden=[512, 512, 512], densify=128, prune_aire=384,
                    sdf_start=[256, 256, 256], sdf_final=[64, 64, 256], sdf_densify=64,
                    sdf_steps=[500, 2000, 2000, 500], sdf_resolution=512,
                    steps=[250, 2000, 2250, 500], lr=1e-4, lr_parts=1e-4, base_hidden=[512, 512, 512], base_steps=2000,
                    twd_steps=1000, finetune_steps=500, speed_points=512 * 768, speed_reps=20, threads=0,
                    test_fraction=0.1, batch_size=65536)


def load_image(name: str, s: Settings, seed: int = 0) -> ImageSignal:
    """Kodak image: centre crop ``s.crop`` then box-downsample to ``s.size`` (both optional); ``s.test_fraction``
    of the pixels held out (seeded): then every PSNR of this benchmark is the held-out one."""
    img = read_image(KODAK / f"{name}.png")
    if s.crop:
        h, w = img.shape[:2]
        r0, c0 = (h - s.crop) // 2, (w - s.crop) // 2
        img = img[r0:r0 + s.crop, c0:c0 + s.crop]
    if s.size and s.crop:
        f = s.crop // s.size
        img = img[: s.size * f, : s.size * f].reshape(s.size, f, s.size, f, -1).mean(axis=(1, 3))
    return ImageSignal(img.astype(np.float32), test_fraction=s.test_fraction, seed=seed)


def new_net(hidden: list[int], seed: int, arch: str = "siren") -> MLP:
    """A SIREN (or, ``arch="finer"``, a FINER network) for an RGB image, seeded."""
    build = finer if arch == "finer" else siren
    return build(2, 3, hidden, generator=torch.Generator().manual_seed(seed))


def psnr(model: MLP, signal: ImageSignal) -> float:
    return float(signal.evaluate(model)["psnr"])


def train(model: MLP, signal: ImageSignal, steps: int, lr: float, device: str, batch_size: int | None) -> MLP:
    cfg = FitConfig(steps=steps, lr=lr, schedule="constant", progress=False, device=device, log_every=50,
                    precision="fp32", batch_size=batch_size)  # the committed numbers are float32 (AIRe runs fp32 too)
    return fit(model, signal, cfg).model


def run(model: MLP, signal: Signal, stages: list[Stage], lr: float, device: str, seed: int,
        batch_size: int | None):
    cfg = AireConfig(hidden=model.hidden_widths, lr=lr, lr_schedule="constant", seed=seed, stages=stages,
                     batch_size=batch_size)
    return run_schedule(model, signal, cfg, device=device, progress=False)


# ----------------------------------------------------------------- 1. table 4
def bench_table4(signal: ImageSignal, s: Settings, device: str, seed: int, arch: str = "siren") -> dict:
    fit_s, ft_s, twd_s, ft2_s = s.steps
    total = sum(s.steps)
    final = [s.start_hidden[0] + s.densify - s.prune_aire] + s.start_hidden[1:]
    small = train(new_net(final, seed, arch), signal, total, s.lr, device, s.batch_size)
    k_prune = s.start_hidden[0] - final[0]
    prune = run(new_net(s.start_hidden, seed, arch), signal, [
        Stage("fit", steps=fit_s + ft_s), Stage("twd", steps=twd_s, layers=[0], k=k_prune),
        Stage("prune", layers=[0], count=k_prune), Stage("finetune", steps=ft2_s)], s.lr, device, seed,
        s.batch_size)
    aire = run(new_net(s.start_hidden, seed, arch), signal, [
        Stage("fit", steps=fit_s), Stage("densify", n=s.densify), Stage("finetune", steps=ft_s),
        Stage("twd", steps=twd_s, layers=[0], k=s.prune_aire), Stage("prune", layers=[0], count=s.prune_aire),
        Stage("finetune", steps=ft2_s)], s.lr, device, seed, s.batch_size)
    assert small.widths == prune.model.widths == aire.model.widths, (small.widths, aire.model.widths)
    large = [st for st in aire.stages if st["kind"] == "prune"][0]
    return {"final_widths": small.widths, "params": small.num_params(), "steps": total,
            "small": psnr(small, signal), "prune": prune.metrics["psnr"], "densify_prune": aire.metrics["psnr"],
            "aire_max_widths": [2, s.start_hidden[0] + s.densify, *s.start_hidden[1:], 3],
            "aire_prune_psnr_before": large["psnr_before"], "aire_prune_psnr_after": large["psnr_after"],
            "_aire_model": aire.model}


# ------------------------------------------------------------- 1b. table 3 (SDF)
def bench_table3_sdf(s: Settings, device: str, seed: int) -> dict:
    """AIRe Table 3 left on the bunny: Small vs Prune vs Densify+Prune at the same final widths and steps.

    The first two hidden layers shrink from ``sdf_start`` to ``sdf_final``; every arm trains ``sum(sdf_steps)``
    steps. Each layer gets its own TWD phase (half the TWD steps) and is pruned right after it (a stage's ``k``
    is one count for all its layers, and the first layer has ``sdf_densify`` more neurons in the AIRe arm).
    Metrics: Chamfer distance and normal consistency of the marching-cubes mesh (``sdf_resolution``^3)."""
    from inrkit.signals.sdf import SDFSignal

    mesh_path = ROOT.parent / "shared" / "data" / "meshes" / "bunny.ply"
    signal = SDFSignal.from_file(mesh_path, eval_resolution=s.sdf_resolution, seed=seed)
    fit_s, ft_s, twd_s, ft2_s = s.sdf_steps
    start, final = s.sdf_start, s.sdf_final

    def shrink(first_extra: int) -> list[Stage]:
        out = []
        for layer in (0, 1):
            k = start[layer] + (first_extra if layer == 0 else 0) - final[layer]
            out += [Stage("twd", steps=twd_s // 2, layers=[layer], k=k), Stage("prune", layers=[layer], count=k)]
        return out

    arms = {"small": (final, [Stage("fit", steps=sum(s.sdf_steps))]),
            "prune": (start, [Stage("fit", steps=fit_s + ft_s), *shrink(0), Stage("finetune", steps=ft2_s)]),
            "densify_prune": (start, [Stage("fit", steps=fit_s), Stage("densify", n=s.sdf_densify),
                                      Stage("finetune", steps=ft_s), *shrink(s.sdf_densify),
                                      Stage("finetune", steps=ft2_s)])}
    out: dict = {"mesh": "bunny.ply", "start_widths": start, "final_widths": final, "steps": sum(s.sdf_steps),
                 "marching_cubes": s.sdf_resolution}
    for name, (hidden, stages) in arms.items():
        t0 = time.perf_counter()
        res = run(siren(3, 1, hidden, generator=torch.Generator().manual_seed(seed)), signal, stages, s.sdf_lr,
                  device, seed, s.sdf_batch)
        assert res.model.hidden_widths == final, (name, res.model.hidden_widths)
        out[name] = {**{k: float(v) for k, v in res.metrics.items()}, "params": res.model.num_params(),
                     "seconds": round(time.perf_counter() - t0, 1)}
        print(f"[aire] sdf {name}: chamfer {out[name]['chamfer']:.3e}, NC {out[name]['normal_consistency']:.4f} "
              f"({out[name]['seconds']:.0f}s)", file=sys.stderr)
    return out


# ------------------------------------------------------------------- 2. TWD
def bench_twd(base: MLP, signal: ImageSignal, s: Settings, device: str, seed: int) -> list[dict]:
    layers = list(range(base.num_layers - 1))
    base_psnr, base_params = psnr(base, signal), base.num_params()
    # the prune stage reports training-pixel PSNRs: the ratio right after pruning compares like with like
    base_train = train_psnr(base, signal, s.batch_size, torch.device(device))
    rows = []
    for p in s.percents:
        k = int(round(base.hidden_widths[0] * p / 100))
        for twd in (False, True):
            first = Stage("twd", steps=s.twd_steps, layers=layers, k=k) if twd else Stage("fit", steps=s.twd_steps)
            res = run(base.copy(), signal, [first, Stage("prune", layers=layers, count=k),
                                            Stage("finetune", steps=s.finetune_steps)], s.lr_parts, device, seed,
                      s.batch_size)
            pr = [st for st in res.stages if st["kind"] == "prune"][0]
            rows.append({"percent": p, "twd": twd, "psnr_base": base_psnr, "psnr_before_prune": pr["psnr_before"],
                         "psnr_pruned": pr["psnr_after"], "psnr_finetuned": res.metrics["psnr"],
                         "weights_fraction": res.model.num_params() / base_params,
                         "psnr_base_train": base_train, "accuracy_kept": pr["psnr_after"] / base_train,
                         "accuracy_kept_finetuned": res.metrics["psnr"] / base_psnr})
    return rows


# -------------------------------------------------------------- 3. criteria
class _Sine(nn.Module):
    def __init__(self, omega: float) -> None:
        super().__init__()
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * x)


def torch_pruning_magnitude(model: MLP, keep: float) -> MLP:
    """Peer: Torch-Pruning's MagnitudePruner (L1 group magnitude) on an equivalent nn.Sequential."""
    import torch_pruning as tp

    mods: list[nn.Module] = []
    for i in range(model.num_layers):
        out, inp = model.weights[i].shape
        lin = nn.Linear(inp, out)
        with torch.no_grad():
            lin.weight.copy_(model.weights[i])
            lin.bias.copy_(model.biases[i])
        mods.append(lin)
        if model.activations[i] == "sine":
            mods.append(_Sine(model.omegas[i]))
    seq = nn.Sequential(*mods).to(model.weights[0].device)
    pruner = tp.pruner.MagnitudePruner(seq, torch.zeros(4, model.coord_dim, device=model.weights[0].device),
                                       importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=1.0 - keep, ignored_layers=[mods[-1]])
    pruner.step()
    out = model.copy()
    for i, lin in enumerate(m for m in seq if isinstance(m, nn.Linear)):
        out.set_layer(i, lin.weight.detach(), lin.bias.detach())
    out.validate()
    return out


def bench_criteria(base: MLP, signal: ImageSignal, s: Settings, device: str, seed: int) -> dict:
    rows = {}
    points = domain_points(base, 4096, torch.Generator().manual_seed(seed))
    for method in (*CRITERIA.names(), "torch_pruning"):
        model = base.copy()
        t0 = time.perf_counter()
        if method == "torch_pruning":
            model = torch_pruning_magnitude(model, s.criteria_keep)
        else:
            model, _ = prune_model(model, method, keep=s.criteria_keep, points=points.to(base.weights[0].device),
                                   generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - t0
        pruned = psnr(model, signal)
        model = train(model, signal, s.finetune_steps, s.lr_parts, device, s.batch_size)
        rows[method] = {"widths": model.widths, "params": model.num_params(), "psnr_pruned": pruned,
                        "psnr_finetuned": psnr(model, signal), "prune_seconds": seconds}
    return rows


# ----------------------------------------------------------------- 4. speed
@torch.no_grad()
def time_forward(model: MLP, points: torch.Tensor, reps: int) -> float:
    model.eval()
    sync = torch.cuda.synchronize if points.is_cuda else (lambda: None)
    model(points)
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model(points)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_speed(pairs: dict[str, tuple[MLP, MLP]], s: Settings, device: str, tmp: Path) -> dict:
    side = int(round(s.speed_points ** 0.5))
    points = grid_coords((side, side)).to(device)
    out = {}
    for name, (large, small) in pairs.items():
        large, small = large.to(device), small.to(device)
        t_large, t_small = time_forward(large, points, s.speed_reps), time_forward(small, points, s.speed_reps)
        sizes = []
        for tag, m in (("large", large), ("small", small)):
            save_model(m.cpu(), tmp / f"{name}_{tag}.safetensors")
            sizes.append((tmp / f"{name}_{tag}.safetensors").stat().st_size)
            m.to(device)
        out[name] = {"widths_large": large.widths, "widths_pruned": small.widths,
                     "params_large": large.num_params(), "params_pruned": small.num_params(),
                     "bytes_large": sizes[0], "bytes_pruned": sizes[1], "points": int(points.shape[0]),
                     "seconds_large": t_large, "seconds_pruned": t_small, "speedup": t_large / t_small}
    return out


# ------------------------------------------------------------------ driver
def summarise(per_image: list[dict]) -> dict:
    t4 = {k: float(np.mean([r["table4"][k] for r in per_image])) for k in ("small", "prune", "densify_prune")}
    t4_sd = {k: float(np.std([r["table4"][k] for r in per_image], ddof=1)) if len(per_image) > 1 else 0.0
             for k in ("small", "prune", "densify_prune")}
    gains = [r["table4"]["densify_prune"] - r["table4"]["small"] for r in per_image]
    finer_rows = [r["table4_finer"] for r in per_image if "table4_finer" in r]
    finer = {f"table4_finer_{stat.__name__}_psnr": {k: float(stat([r[k] for r in finer_rows]))
                                                    for k in ("small", "prune", "densify_prune")}
             for stat in (np.mean, np.std)} if finer_rows else {}
    wins = sum(r["table4"]["densify_prune"] > r["table4"]["small"] for r in per_image)
    twd = {}
    for p in per_image[0]["twd"]:
        key = f"{p['percent']}%_{'twd' if p['twd'] else 'plain'}"
        rows = [q for r in per_image for q in r["twd"] if q["percent"] == p["percent"] and q["twd"] == p["twd"]]
        twd[key] = {k: float(np.mean([q[k] for q in rows])) for k in
                    ("psnr_base", "psnr_pruned", "psnr_finetuned", "weights_fraction", "accuracy_kept",
                     "accuracy_kept_finetuned")}
    crit = {m: {k: float(np.mean([r["criteria"][m][k] for r in per_image])) for k in ("psnr_pruned", "psnr_finetuned")}
            for m in per_image[0]["criteria"]}
    speed = {name: float(np.mean([r["speed"][name]["speedup"] for r in per_image])) for name in per_image[0]["speed"]}
    return {"table4_mean_psnr": t4, "table4_std_psnr": t4_sd,
            "table4_densify_prune_beats_small": f"{wins}/{len(per_image)}",
            "table4_gain_over_small_db_per_image": gains, **finer,
            "table4_gain_over_small_db": t4["densify_prune"] - t4["small"],
            "table4_gain_over_prune_db": t4["densify_prune"] - t4["prune"],
            "twd": twd, "criteria_mean": crit, "speedup_mean": speed}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = result["summary"]
    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    names = [r["image"] for r in result["images"]]
    x = np.arange(len(names))
    for j, key in enumerate(("small", "prune", "densify_prune")):
        ax[0, 0].bar(x + (j - 1) * 0.27, [r["table4"][key] for r in result["images"]], 0.27, label=key)
    ax[0, 0].set_xticks(x, names)
    ax[0, 0].set_ylabel("PSNR (dB)")
    ax[0, 0].set_title("Equal final size, equal steps (Table 4)")
    ax[0, 0].legend()
    ax[0, 0].set_ylim(bottom=min(r["table4"]["small"] for r in result["images"]) - 3)
    pct = result["settings"]["percents"]
    for mode, style in (("plain", "--"), ("twd", "-")):
        for key, marker in (("psnr_pruned", "o"), ("psnr_finetuned", "s")):
            ax[0, 1].plot(pct, [summ["twd"][f"{p}%_{mode}"][key] for p in pct], style, marker=marker,
                          label=f"{mode}: {key.split('_')[1]}")
    ax[0, 1].axhline(summ["twd"][f"{pct[0]}%_plain"]["psnr_base"], color="gray", lw=0.8, label="unpruned")
    ax[0, 1].set_xlabel("neurons pruned per hidden layer (%)")
    ax[0, 1].set_ylabel("PSNR (dB)")
    ax[0, 1].set_title("Pruning with / without TWD (Fig. 5)")
    ax[0, 1].legend(fontsize=8)
    crit = summ["criteria_mean"]
    m = list(crit)
    xm = np.arange(len(m))
    ax[1, 0].bar(xm - 0.2, [crit[k]["psnr_pruned"] for k in m], 0.4, label="right after pruning")
    ax[1, 0].bar(xm + 0.2, [crit[k]["psnr_finetuned"] for k in m], 0.4, label="after fine-tuning")
    ax[1, 0].set_xticks(xm, m, rotation=30)
    ax[1, 0].set_ylabel("PSNR (dB)")
    ax[1, 0].set_title(f"Criteria at {int(result['settings']['criteria_keep'] * 100)}% kept neurons")
    ax[1, 0].legend()
    sp = summ["speedup_mean"]
    ax[1, 1].bar(list(sp), list(sp.values()))
    ax[1, 1].axhline(1.0, color="gray", lw=0.8)
    ax[1, 1].set_ylabel("forward-time speed-up (large / pruned)")
    ax[1, 1].set_title(f"Inference on {result['images'][0]['speed'][list(sp)[0]]['points']} points")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def strip_private(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="full-size images and the paper's schedule (GPU)")
    ap.add_argument("--images", type=int, default=None, help="number of Kodak images (default 4; full 8)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output JSON (default bench/results/aire[_full].json)")
    ap.add_argument("--sdf", action="store_true", help="also AIRe Table 3 left (SDF of the bunny, Chamfer/NC)")
    ap.add_argument("--finer", action="store_true", help="also Table 4 with FINER networks (the paper's FINER arm)")
    ap.add_argument("--sdf-only", action="store_true", help="only Table 3 left (no image parts); implies --sdf")
    args = ap.parse_args()
    if not KODAK.is_dir():
        sys.exit(f"bench/aire.py: Kodak images not found at {KODAK}")
    s = full_settings() if args.full else Settings()
    if s.threads:
        torch.set_num_threads(s.threads)
    device = str(resolve_device(args.device))
    names = [] if args.sdf_only else IMAGES[: args.images or (8 if args.full else 4)]
    out_json = Path(args.out) if args.out else RESULTS / ("aire_full.json" if args.full else "aire.json")
    tmp = out_json.parent / ".aire_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    per_image = []
    for i, name in enumerate(names):
        seed = args.seed + i
        signal = load_image(name, s, seed)
        t0 = time.perf_counter()
        t4 = bench_table4(signal, s, device, seed)
        t_table4 = time.perf_counter() - t0
        print(f"[aire] {name} table4 {t4['small']:.2f}/{t4['prune']:.2f}/{t4['densify_prune']:.2f} dB "
              f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
        t4f = bench_table4(signal, s, device, seed, "finer") if args.finer else None
        if t4f:
            print(f"[aire] {name} table4 FINER {t4f['small']:.2f}/{t4f['prune']:.2f}/{t4f['densify_prune']:.2f} dB "
                  f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
        base = train(new_net(s.base_hidden, seed), signal, s.base_steps, s.lr_parts, device, s.batch_size)
        twd = bench_twd(base, signal, s, device, seed)
        print(f"[aire] {name} twd done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
        crit = bench_criteria(base, signal, s, device, seed)
        print(f"[aire] {name} criteria done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
        base_pruned, _ = prune_model(base.copy(), "l1", keep=s.criteria_keep)
        aire_large = new_net([s.start_hidden[0] + s.densify, *s.start_hidden[1:]], seed)
        pairs = {"base_vs_l1_50": (base, base_pruned), "aire_max_vs_final": (aire_large, t4["_aire_model"])}
        speed = bench_speed(pairs, s, device, tmp)
        per_image.append({"image": name, "shape": list(signal.shape), "seed": seed,
                          "table4": strip_private(t4), **({"table4_finer": strip_private(t4f)} if t4f else {}),
                          "twd": twd, "criteria": crit, "speed": speed,
                          "seconds": {"table4": round(t_table4, 1), "total": round(time.perf_counter() - t0, 1)}})
    for f in tmp.glob("*.safetensors"):
        f.unlink()
    tmp.rmdir()
    result = {"benchmark": "aire", "full": args.full, "device": device, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "environment": run_environment(), "settings": asdict(s),
              "images": per_image, "summary": summarise(per_image) if per_image else {}, "paper": PAPER,
              **({"table3_sdf": bench_table3_sdf(s, device, args.seed)} if args.sdf or args.sdf_only else {}),
              "seconds": round(time.perf_counter() - t_start, 1)}
    write_json(out_json, result)
    if per_image:
        plot(result, out_json.with_suffix(".png"))
    print(json_summary(result), file=sys.stderr)


def json_summary(result: dict) -> str:
    import json

    return json.dumps({"summary": result["summary"], "table3_sdf": result.get("table3_sdf")}, indent=1)


if __name__ == "__main__":
    main()
