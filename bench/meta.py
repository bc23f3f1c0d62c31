"""Meta-INR benchmark: encode held-out volumes of a simulated series from a meta-learned
initialisation vs SIREN from scratch vs the "pretrained SIREN" ablation.

For each held-out volume (odd time steps: never seen in pretraining, which uses every 2nd
step sub-sampled by 4 per axis) the three starts are fine-tuned with the same loop
(``inrkit.meta.finetune``, i.e. ``inrkit.train.fit``), the same
Adam settings and the same step budget. Reported: steps and training seconds to reach the PSNR
that scratch SIREN reaches after its full budget, the speed-up ratios (the paper reports up to
5.87x in encoding time), PSNR at equal encoding time, and pretraining time separately.

    .venv/bin/python bench/meta.py            # CPU default, a few minutes
    .venv/bin/python bench/meta.py --full     # GPU scale: 64^3 x 40, SIREN 256x6
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inrkit.meta import FinetuneConfig, MetaConfig, finetune, first_reaching, meta_train, pretrain_plain
from inrkit.meta.simulate import SIMULATORS
from inrkit.models.mlp import parse_hidden, siren
from inrkit.signals.series import VolumeSeries
from inrkit.utils import resolve_device, write_json

PAPER_SPEEDUP = 5.87


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="GPU scale (64^3 x 40 steps, SIREN 256x6, longer budgets)")
    p.add_argument("--kind", choices=sorted(SIMULATORS), default="vortex")
    p.add_argument("--size", type=int)
    p.add_argument("--steps", type=int, help="time steps of the generated series")
    p.add_argument("--hidden")
    p.add_argument("--outer-steps", type=int)
    p.add_argument("--inner-steps", type=int, default=16)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--inner-lr", type=float, default=1e-3)
    p.add_argument("--outer-lr", type=float, default=1e-4)
    p.add_argument("--order", choices=["first", "second"], default="first")
    p.add_argument("--budget", type=int, help="scratch SIREN's step budget (the same for every start)")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning Adam lr, the same for all starts")
    p.add_argument("--held-out", type=int, help="number of held-out (odd) volumes to encode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    a = p.parse_args(argv)
    full = {"size": 64, "steps": 40, "hidden": "256x6", "outer_steps": 500, "budget": 1000, "held_out": 6}
    cpu = {"size": 32, "steps": 20, "hidden": "64x3", "outer_steps": 300, "budget": 300, "held_out": 3}
    for key, val in (full if a.full else cpu).items():
        if getattr(a, key) is None:
            setattr(a, key, val)
    return a


def _psnr_at(history: list[dict], seconds: float) -> float:
    """PSNR of the last state trained for at most ``seconds``."""
    rows = [h for h in history if h["seconds"] <= seconds + 1e-12]
    return rows[-1]["psnr"] if rows else history[0]["psnr"]


def _curve(history: list[dict], budget: int) -> list[float]:
    return [h["psnr"] for h in history][: budget + 1]


def main(argv: list[str] | None = None) -> dict:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    hidden = tuple(parse_hidden(a.hidden))
    t0 = time.perf_counter()
    raw = SIMULATORS[a.kind](a.size, a.steps, seed=a.seed)
    sim_seconds = time.perf_counter() - t0
    series = VolumeSeries.from_arrays(raw, name=a.kind)
    cfg = MetaConfig(hidden=hidden, inner_steps=a.inner_steps, outer_steps=a.outer_steps, meta_batch=a.meta_batch,
                     inner_lr=a.inner_lr, outer_lr=a.outer_lr, order=a.order, seed=a.seed, device=a.device)
    meta = meta_train(series, cfg)
    plain = pretrain_plain(series, cfg)
    odd = [i for i in range(len(series)) if i not in meta.train_members]
    held = [odd[int(round(k))] for k in np.linspace(0, len(odd) - 1, min(a.held_out, len(odd)))]
    coords = series.coords()
    acfg = FinetuneConfig(steps=a.budget, lr=a.lr, device=a.device, progress=False)
    rows, curves = [], {"scratch": [], "meta": [], "pretrained": []}
    times = {"scratch": [], "meta": [], "pretrained": []}
    for i in held:
        target = series.targets([i])[0]
        init = siren(3, 1, hidden, generator=torch.Generator().manual_seed(a.seed + 1000 + i))
        res = {"scratch": finetune(init, coords, target, acfg), "meta": finetune(meta.model, coords, target, acfg),
               "pretrained": finetune(plain.model, coords, target, acfg)}
        goal = res["scratch"].psnr
        row = {"member": i, "label": float(series.labels[i]), "target_psnr": goal,
               "scratch_seconds": res["scratch"].seconds, "budget_steps": a.budget}
        for name in ("meta", "pretrained"):
            hit = first_reaching(res[name].history, goal)
            row[f"{name}_steps_to_target"] = hit["step"] if hit else None
            row[f"{name}_seconds_to_target"] = hit["seconds"] if hit else None
            row[f"{name}_speedup_steps"] = a.budget / max(hit["step"], 1) if hit else None
            row[f"{name}_speedup_time"] = res["scratch"].seconds / max(hit["seconds"], 1e-9) if hit else None
        for name, r in res.items():
            row[f"{name}_final_psnr"] = r.psnr
            row[f"{name}_initial_psnr"] = r.history[0]["psnr"]
            curves[name].append(_curve(r.history, a.budget))
            times[name].append(r.seconds / max(r.steps, 1))
        t_eq = row["meta_seconds_to_target"] or res["meta"].seconds
        row["equal_time_seconds"] = t_eq
        row["psnr_at_equal_time"] = {n: _psnr_at(r.history, t_eq) for n, r in res.items()}
        rows.append(row)
        print(f"member {i}: scratch {goal:.2f} dB in {a.budget} steps; meta reaches it at step "
              f"{row['meta_steps_to_target']} ({row['meta_speedup_steps'] or 0:.2f}x steps, "
              f"{row['meta_speedup_time'] or 0:.2f}x time); pretrained at {row['pretrained_steps_to_target']}",
              file=sys.stderr)

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if len(vals) == len(rows) and vals else None

    summary = {
        "meta_speedup_steps_mean": mean("meta_speedup_steps"), "meta_speedup_time_mean": mean("meta_speedup_time"),
        "pretrained_speedup_steps_mean": mean("pretrained_speedup_steps"),
        "pretrained_speedup_time_mean": mean("pretrained_speedup_time"),
        "meta_reached_target": sum(r["meta_steps_to_target"] is not None for r in rows),
        "pretrained_reached_target": sum(r["pretrained_steps_to_target"] is not None for r in rows),
        "held_out_volumes": len(rows),
        "paper_speedup": PAPER_SPEEDUP,
        "scratch_final_psnr_mean": mean("scratch_final_psnr"), "meta_final_psnr_mean": mean("meta_final_psnr"),
        "pretrained_final_psnr_mean": mean("pretrained_final_psnr"),
        "psnr_at_equal_time_mean": {n: float(np.mean([r["psnr_at_equal_time"][n] for r in rows])) for n in curves},
        "seconds_per_step_median": {n: float(np.median(v)) for n, v in times.items()},
        "meta_pretrain_seconds": meta.seconds, "plain_pretrain_seconds": plain.seconds,
    }
    if summary["meta_speedup_time_mean"]:
        saved = np.mean([r["scratch_seconds"] - r["meta_seconds_to_target"] for r in rows])
        summary["volumes_to_amortise_pretraining"] = float(meta.seconds / saved) if saved > 0 else None
    result = {
        "benchmark": "meta", "method": "Meta-INR (arXiv 2502.09669)",
        "config": {**{k: v for k, v in vars(a).items() if k != "out"}, "hidden": list(hidden), "device": str(device)},
        "series": {"kind": a.kind, "dims": list(series.dims), "members": len(series),
                   "simulation_seconds": sim_seconds},
        "pretraining": {"members": meta.train_members, "subsample_fraction": meta.subsample_fraction,
                        "meta_seconds": meta.seconds, "meta_outer_steps": meta.steps,
                        "meta_history": meta.history, "plain_seconds": plain.seconds, "plain_steps": plain.steps},
        "held_out": held, "volumes": rows, "summary": summary,
        "mean_curves": {n: np.mean(np.asarray(c), axis=0).tolist() for n, c in curves.items()},
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "threads": a.threads,
                        "cpu_count": os.cpu_count(), "loadavg_end": list(os.getloadavg())},
    }
    out = Path(a.out)
    tag = "meta_full" if a.full else "meta"
    write_json(out / f"{tag}.json", result)
    _plot(result, out / f"{tag}.png")
    print(f"wrote {out / (tag + '.json')} and {out / (tag + '.png')}", file=sys.stderr)
    return result


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inrkit.utils import atomic_path

    s = result["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"scratch": "tab:gray", "meta": "tab:red", "pretrained": "tab:blue"}
    labels = {"scratch": "SIREN from scratch", "meta": "Meta-INR (meta-init)", "pretrained": "pretrained SIREN"}
    for name, curve in result["mean_curves"].items():
        axes[0].plot(np.arange(len(curve)), curve, color=colors[name], label=labels[name])
        spp = s["seconds_per_step_median"][name]
        axes[1].plot(np.arange(len(curve)) * spp, curve, color=colors[name], label=labels[name])
    target = s["scratch_final_psnr_mean"]
    for ax in axes:
        ax.axhline(target, color="k", ls=":", lw=0.8, label="scratch final PSNR")
        ax.set_ylabel("PSNR (dB), mean over held-out volumes")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("fine-tuning steps")
    axes[1].set_xlabel("fine-tuning seconds (median time per step x steps)")
    sp = s["meta_speedup_steps_mean"]
    st = s["meta_speedup_time_mean"]
    axes[0].set_title(f"speed-up to scratch PSNR: {sp and f'{sp:.2f}'}x steps, {st and f'{st:.2f}'}x time "
                      f"(paper {PAPER_SPEEDUP}x)", fontsize=9)
    axes[1].set_title(f"pretraining (separate): meta {s['meta_pretrain_seconds']:.0f} s, "
                      f"plain {s['plain_pretrain_seconds']:.0f} s", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
