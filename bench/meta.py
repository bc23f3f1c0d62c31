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

The authors' released code's protocol (bench/protocols/meta.toml, ``bench/reproduce.py meta --protocol
paper``) is reached with ``--batch-size 50000 --epochs-scratch 100 --epochs-finetune 16 --meta-batch all
--inner-adam-across-tasks``:

- ``--batch-size N``: points per step of every fine-tuning (scratch, Meta-INR, pretrained SIREN) and of
  the meta inner loop (default: the full batch). With mini-batches the whole volume is evaluated once per
  epoch (outside the timed region), so steps-to-target are read at epoch ends.
- ``--epochs-scratch E`` / ``--epochs-finetune E``: budgets in epochs, converted to steps with
  ``steps = E * ceil(N / batch)`` (N: points of a full-resolution volume; ``E`` when the batch is the whole
  volume), the number of batches ``torch.split`` gives per pass in the authors' code. inrkit draws each
  batch at random (with replacement), so an "epoch" is ``ceil(N / batch)`` random batches, not an exact
  permutation of the points. ``--epochs-scratch`` sets the scratch SIREN's budget, ``--epochs-finetune``
  that of the Meta-INR and pretrained-SIREN starts; a start without one keeps ``--budget`` steps.
- ``--meta-batch all``: every pretraining task at every outer step, in member order.
- ``--inner-adam-across-tasks``: one inner Adam whose moments and step count persist from task to task
  (``MetaConfig.inner_adam_across_tasks``); the tasks are then adapted one after another.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit.meta import FinetuneConfig, MetaConfig, finetune, first_reaching, meta_train, pretrain_plain
from inrkit.meta.simulate import SIMULATORS
from inrkit.metrics import psnr_from_mse
from inrkit.models.mlp import parse_hidden, siren
from inrkit.signals.series import VolumeSeries
from inrkit.utils import resolve_device, run_environment, write_json

PAPER_SPEEDUP = 5.87


def epochs_to_steps(epochs: int, n_points: int, batch_size: int | None) -> int:
    """Steps of ``epochs`` passes over ``n_points`` points at ``batch_size`` points per step:
    ``epochs * ceil(n_points / batch_size)`` (``epochs`` when the batch is all the points)."""
    if epochs < 0 or n_points < 1:
        raise ValueError("epochs must be >= 0 and the volume must have points")
    if batch_size is None or batch_size >= n_points:
        return int(epochs)
    return int(epochs) * math.ceil(n_points / batch_size)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _meta_batch(text: str) -> int | str:
    """``--meta-batch``: a positive number of tasks, or ``all``."""
    return "all" if text.strip().lower() == "all" else _positive(text)


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="GPU scale (64^3 x 40 steps, SIREN 256x6, longer budgets)")
    p.add_argument("--kind", choices=sorted(SIMULATORS), default="vortex")
    p.add_argument("--size", type=int)
    p.add_argument("--steps", type=int, help="time steps of the generated series")
    p.add_argument("--hidden")
    p.add_argument("--outer-steps", type=int)
    p.add_argument("--inner-steps", type=int, default=16)
    p.add_argument("--meta-batch", type=_meta_batch, default=4,
                   help="tasks per outer step, or 'all' (every task each outer step, as the authors' code)")
    p.add_argument("--inner-lr", type=float, default=1e-3)
    p.add_argument("--outer-lr", type=float, default=1e-4)
    p.add_argument("--order", choices=["first", "second"], default="first")
    p.add_argument("--budget", type=int, help="step budget of every start (unless --epochs-* set it)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="points per step of the fine-tuning (all starts) and the meta inner loop (default: all)")
    p.add_argument("--epochs-scratch", type=_positive, default=None,
                   help="scratch SIREN's budget in epochs (steps = E * ceil(points / batch)); overrides --budget")
    p.add_argument("--epochs-finetune", type=_positive, default=None,
                   help="budget of the Meta-INR and pretrained-SIREN starts in epochs; overrides --budget")
    p.add_argument("--inner-adam-across-tasks", action="store_true",
                   help="one inner Adam carried from task to task (moments and step count), as the authors' code")
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


def _initial_psnr(model: torch.nn.Module, coords: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of ``model`` on the whole volume before any update."""
    with torch.no_grad():
        return psnr_from_mse(float(torch.mean((model(coords) - target) ** 2)))


def budgets(a: argparse.Namespace, n_points: int) -> dict[str, int]:
    """Step budget of each start: ``--epochs-*`` converted with :func:`epochs_to_steps`, else ``--budget``."""
    scratch = a.budget if a.epochs_scratch is None else epochs_to_steps(a.epochs_scratch, n_points, a.batch_size)
    tuned = a.budget if a.epochs_finetune is None else epochs_to_steps(a.epochs_finetune, n_points, a.batch_size)
    return {"scratch": scratch, "meta": tuned, "pretrained": tuned}


def main(argv: list[str] | None = None) -> dict:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    hidden = tuple(parse_hidden(a.hidden))
    t0 = time.perf_counter()
    raw = SIMULATORS[a.kind](a.size, a.steps, seed=a.seed)
    sim_seconds = time.perf_counter() - t0
    series = VolumeSeries.from_arrays(raw, name=a.kind)
    cfg = MetaConfig(hidden=hidden, inner_steps=a.inner_steps, outer_steps=a.outer_steps,
                     meta_batch=None if a.meta_batch == "all" else a.meta_batch, inner_lr=a.inner_lr,
                     outer_lr=a.outer_lr, order=a.order, inner_batch=a.batch_size,
                     inner_adam_across_tasks=a.inner_adam_across_tasks, seed=a.seed, device=a.device)
    meta = meta_train(series, cfg)
    plain = pretrain_plain(series, cfg)
    odd = [i for i in range(len(series)) if i not in meta.train_members]
    held = [odd[int(round(k))] for k in np.linspace(0, len(odd) - 1, min(a.held_out, len(odd)))]
    coords = series.coords()
    n_points = int(coords.shape[0])
    steps = budgets(a, n_points)
    per_epoch = epochs_to_steps(1, n_points, a.batch_size)
    configs = {name: FinetuneConfig(steps=s, lr=a.lr, batch_size=a.batch_size, eval_every=per_epoch,
                                    device=a.device, progress=False) for name, s in steps.items()}
    starts = {"meta": meta.model, "pretrained": plain.model}
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[list[float]]] = {"scratch": [], "meta": [], "pretrained": []}
    curve_steps: dict[str, list[int]] = {}
    times: dict[str, list[float]] = {"scratch": [], "meta": [], "pretrained": []}
    for i in held:
        target = series.targets([i])[0]
        starts["scratch"] = siren(3, 1, hidden, generator=torch.Generator().manual_seed(a.seed + 1000 + i))
        res = {name: finetune(starts[name], coords, target, configs[name])
               for name in ("scratch", "meta", "pretrained")}
        goal = res["scratch"].psnr
        row: dict[str, Any] = {"member": i, "label": float(series.labels[i]), "target_psnr": goal,
                               "scratch_seconds": res["scratch"].seconds, "budget_steps": steps["scratch"],
                               "finetune_budget_steps": steps["meta"]}
        for name in ("meta", "pretrained"):
            hit = first_reaching(res[name].history, goal)
            row[f"{name}_steps_to_target"] = hit["step"] if hit else None
            row[f"{name}_seconds_to_target"] = hit["seconds"] if hit else None
            row[f"{name}_speedup_steps"] = steps["scratch"] / max(hit["step"], 1) if hit else None
            # a start that reaches the target before (or at) its first update counts as one step's time, as the
            # step ratio counts it as one step (else the ratio divides by ~0 s)
            one_step = res[name].seconds / max(res[name].steps, 1)
            row[f"{name}_speedup_time"] = res["scratch"].seconds / max(hit["seconds"], one_step) if hit else None
            # the paper's fixed-budget metric: scratch's whole budget vs this start's whole budget
            row[f"{name}_budget_speedup_time"] = res["scratch"].seconds / max(res[name].seconds, 1e-9)
            row[f"{name}_budget_psnr_gain"] = res[name].psnr - goal
        for name, r in res.items():
            row[f"{name}_final_psnr"] = r.psnr
            history = r.history  # with mini-batches it starts at the first epoch: add the start's PSNR
            if history[0]["step"] != 0:
                history = [{"step": 0, "psnr": _initial_psnr(starts[name], coords, target)}, *history]
            row[f"{name}_initial_psnr"] = history[0]["psnr"]
            curves[name].append([h["psnr"] for h in history])
            curve_steps[name] = [int(h["step"]) for h in history]
            times[name].append(r.seconds / max(r.steps, 1))
        t_eq = row["meta_seconds_to_target"] or res["meta"].seconds
        row["equal_time_seconds"] = t_eq
        row["psnr_at_equal_time"] = {n: _psnr_at(r.history, t_eq) for n, r in res.items()}
        rows.append(row)
        print(f"member {i}: scratch {goal:.2f} dB in {steps['scratch']} steps; meta reaches it at step "
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
        "meta_budget_speedup_time_mean": mean("meta_budget_speedup_time"),
        "meta_budget_psnr_gain_mean": mean("meta_budget_psnr_gain"),
        "pretrained_budget_speedup_time_mean": mean("pretrained_budget_speedup_time"),
        "pretrained_budget_psnr_gain_mean": mean("pretrained_budget_psnr_gain"),
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
        "config": {**{k: v for k, v in vars(a).items() if k != "out"}, "hidden": list(hidden), "device": str(device),
                   "points_per_volume": n_points, "steps_per_epoch": per_epoch, "budget_steps": steps,
                   "epochs_to_steps": "steps = epochs * ceil(points_per_volume / batch_size) "
                                      "(epochs when the batch is the whole volume)",
                   "eval_every": per_epoch if a.batch_size is not None and a.batch_size < n_points else 1},
        "series": {"kind": a.kind, "dims": list(series.dims), "members": len(series),
                   "simulation_seconds": sim_seconds},
        "pretraining": {"members": meta.train_members, "subsample_fraction": meta.subsample_fraction,
                        "meta_seconds": meta.seconds, "meta_outer_steps": meta.steps,
                        "meta_history": meta.history, "plain_seconds": plain.seconds, "plain_steps": plain.steps},
        "held_out": held, "volumes": rows, "summary": summary,
        "mean_curves": {n: np.mean(np.asarray(c), axis=0).tolist() for n, c in curves.items()},
        "mean_curve_steps": curve_steps,
        "environment": {**run_environment(threads=a.threads), "loadavg_end": list(os.getloadavg())},
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
        x = np.asarray(result["mean_curve_steps"][name], dtype=float)
        axes[0].plot(x, curve, color=colors[name], label=labels[name])
        spp = s["seconds_per_step_median"][name]
        axes[1].plot(x * spp, curve, color=colors[name], label=labels[name])
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
