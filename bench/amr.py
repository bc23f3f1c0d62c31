"""PruningAMR benchmark: DOFs vs RMSE of PruningAMR (default settings and sweeps), uniform and error-driven AMR.

Cases (every network trained here with inrkit.train.fit, pinned to fp32 on the CPU with a fixed seed so that
reruns give the same network; every PruningAMR run with PruningAMRConfig() defaults unless it is part of a sweep):
  2d-relu      the paper's f(r) = sin(1/(alpha + r)), alpha 0.1, on [-1, 1]^2, 2->32x4->1 ReLU MLP
  2d-siren     the same function, 2->32x3->1 SIREN (omega0 30)
  3d-hydrogen  ../shared/data/volumes/hydrogen.vti, 3->32x4->1 ReLU MLP (4000 steps)
  3d-flow      swirl speed of a bent Lamb-Oseen vortex tube (inrkit.amr.flows), 3->32x4->1 ReLU MLP
  4d-vortex    `inrkit synth vortex` series (inrkit.meta.simulate, loaded with inrkit.signals.series),
               f(x, y, z, t), 4->64x4->1 ReLU MLP (6000 steps); the default mesh is also written as a PVD of 3D slices
  4d-sphere    one localised moving feature (the paper's kind of 4D data: a mostly empty volume with a moving part):
               LeVeque's sphere moving along a path, written with inrkit.meta.simulate.write_series, same network
Every ReLU case is also trained with the seeds of --spread-seeds (default 0,1,2): `seed_spread` has the default
run of each against its own uniform curve, with the ID on pruned and on original activations; the start mesh of
each ReLU case gets a `start_mesh_diagnosis` (p per element against the local signal and the first-layer kinks).
For every mesh: DOFs (all vertices, hanging included = MFEM GetNDofs), true DOFs (hanging excluded) and the
RMSE of the conforming mesh interpolant against the INR (and the ground truth). The headline table compares
the default PruningAMR mesh with the uniform curve interpolated (log-log) at equal RMSE. Sweeps over T and eps
(2D and 4D) give PruningAMR's DOF-vs-RMSE curve; error-driven AMR runs with the L2 indicator (the default) and the
max indicator (the baseline before 2026-12-01). 4D cases are also meshed as 3D time slices (the default of
`inrkit mesh`), with error-driven AMR per slice, the two-level oracle and the marking diagnosis. Writes
bench/results/amr.json and bench/results/amr_*.png.

    OMP_NUM_THREADS=1 .venv/bin/python bench/amr.py           # CPU default, about 40 minutes on one thread
    .venv/bin/python bench/amr.py --full                      # longer training, larger networks and sweeps
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from inrkit.amr import (
    BoxMesh,
    InrField,
    PruningAMRConfig,
    dofs_at_rmse,
    element_interp_error,
    error_amr,
    mesh_rmse,
    preview_png,
    pruning_amr,
    resolve_base,
    uniform_mesh,
    vertex_values,
    write_mesh,
)
from inrkit.amr.flows import bent_vortex_tube
from inrkit.amr.pruning import ID_ACTIVATIONS
from inrkit.amr.timeslices import parse_times, slice_field, space_base
from inrkit.models import MLP, siren
from inrkit.signals.analytic import AnalyticSignal
from inrkit.train import FitConfig, fit
from inrkit.utils import run_environment, write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "data"
ALPHA = 0.1
DEFAULT_ID = PruningAMRConfig().id_activations  # the ID's activations of a default run
OTHER_ID = next(a for a in ID_ACTIVATIONS if a != DEFAULT_ID)  # the alternative, run beside it


def true_sin_radial(x: np.ndarray) -> np.ndarray:
    return np.sin(1.0 / (ALPHA + np.linalg.norm(x, axis=1)))[:, None]


def relu_mlp(widths: list[int], seed: int) -> MLP:
    """ReLU MLP with nn.Linear initialisation (the paper's networks are plain ReLU MLPs)."""
    m = MLP(widths, ["relu"] * (len(widths) - 2) + ["identity"])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w, b in zip(m.weights, m.biases):
            bound = 1.0 / math.sqrt(w.shape[1])
            w.uniform_(-bound, bound, generator=g)
            b.uniform_(-bound, bound, generator=g)
    return m


TRAIN_PRECISION = "fp32"  # pinned: FitConfig's default "auto" is bfloat16 on CPUs with native bf16 (see docs/amr.md)


def train(model: MLP, signal, steps: int, lr: float, batch: int | None, seed: int) -> tuple[MLP, dict]:
    """Train with everything that decides the result pinned: fp32 GEMMs, CPU, seed (threads: ``--threads``).

    Reproducible bit for bit on one thread; the bf16 "auto" precision gave a different network (hydrogen, seed 0,
    800 steps: 26.9 dB with bf16 vs 29.3 dB with fp32), which is why two runs of this script once disagreed.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    res = fit(model, signal, FitConfig(steps=steps, lr=lr, batch_size=batch, seed=seed, progress=False,
                                       device="cpu", precision=TRAIN_PRECISION,
                                       log_every=max(steps // 10, 1)))
    info = {"steps": steps, "lr": lr, "batch": batch, "seed": seed, "precision": TRAIN_PRECISION,
            "threads": torch.get_num_threads(), "seconds": time.perf_counter() - t0,
            **{k: float(v) for k, v in res.metrics.items()}}
    print(f"  trained {model.widths} {steps} steps (seed {seed}, {TRAIN_PRECISION}) in {info['seconds']:.0f} s, "
          f"PSNR {info.get('psnr', 0):.1f} dB", file=sys.stderr)
    return res.model.eval(), info


# ------------------------------------------------------------------ curves
def curve(meshes: list[BoxMesh], field: InrField, truth=None, n: int = 16384) -> dict:
    """DOFs, true DOFs, elements and RMSE (conforming interpolant vs INR, vs truth) of each mesh."""
    out = {"dofs": [], "true_dofs": [], "elements": [], "rmse_inr": [], "rmse_true": []}
    for m in meshes:
        vals = vertex_values(field, m)
        out["dofs"].append(m.dofs)
        out["true_dofs"].append(m.true_dofs)
        out["elements"].append(m.num_elements)
        out["rmse_inr"].append(mesh_rmse(m, vals, field, n=n))
        out["rmse_true"].append(mesh_rmse(m, vals, truth, n=n) if truth is not None else None)
    return out


def dofs_at_error(ref: dict, err: float, key: str = "rmse_inr", dkey: str = "dofs") -> float | None:
    """DOFs the reference curve needs to reach ``err`` (log-log interpolation); None beyond its finest point."""
    return dofs_at_rmse(ref[dkey], ref[key], err)


def error_at_dofs(ref: dict, dofs: float, key: str = "rmse_inr") -> float | None:
    d, e = np.asarray(ref["dofs"], float), np.asarray(ref[key], float)
    for i in range(len(d) - 1):
        if d[i] <= dofs <= d[i + 1]:
            t = (np.log(dofs) - np.log(d[i])) / max(np.log(d[i + 1]) - np.log(d[i]), 1e-12)
            return float(np.exp(np.log(e[i]) + t * (np.log(e[i + 1]) - np.log(e[i]))))
    return None


def compare(dofs: int, true_dofs: int, err: float, uniform: dict, err_amr: dict | None, key: str) -> dict:
    need = dofs_at_error(uniform, err, key)
    out = {"dofs": dofs, "true_dofs": true_dofs, key: err, "uniform_dofs_at_equal_error": need,
           "dof_reduction_vs_uniform": None if need is None else 1.0 - dofs / need,
           "true_dof_reduction_vs_uniform": None if need is None else 1.0 - true_dofs / need,
           "uniform_rmse_at_equal_dofs": error_at_dofs(uniform, dofs, key)}
    if err_amr is not None:
        out["error_amr_dofs_at_equal_error"] = dofs_at_error(err_amr, err, key)
        out["error_amr_rmse_at_equal_dofs"] = error_at_dofs(err_amr, dofs, key)
    return out


def run_pruning(field: InrField, domain: np.ndarray, cfg: PruningAMRConfig, truth, n_rmse: int) -> dict:
    res = pruning_amr(field, domain, cfg, keep_meshes=True)
    c = curve(res.meshes, field, truth, n_rmse)
    evaluated = sum(h["evaluated"] for h in res.history)
    return {"config": asdict(cfg), "base": res.base, "seconds": res.seconds, "iterations": res.iterations,
            "hanging": res.mesh.num_hanging, "history": res.history, "warnings": res.warnings,
            "p_above_P_everywhere": res.p_above_P_everywhere, "stopped": res.stopped,
            "elements_tested": evaluated,
            "ms_per_element": 1e3 * sum(h["seconds"] for h in res.history) / evaluated if evaluated else None,
            "ms_per_iteration": [1e3 * h["seconds"] for h in res.history], **c}, res


def run_case(name: str, field: InrField, domain: np.ndarray, truth, uniform_levels: range, sweeps: dict,
             n_rmse: int, seed: int, preview: bool, pvd: bool = False) -> dict:
    """Uniform levels, the default PruningAMR run, sweeps, error-driven AMR; comparisons at equal error."""
    default = PruningAMRConfig(seed=seed, progress=False)
    base = resolve_base(default.base, domain, default.init_level)
    print(f"[{name}] uniform levels {list(uniform_levels)} (base {base.tolist()})", file=sys.stderr)
    uni = curve([uniform_mesh(domain, lv, base) for lv in uniform_levels], field, truth, n_rmse)
    out: dict = {"domain": domain.tolist(), "base": base.tolist(), "uniform": {"levels": list(uniform_levels), **uni}}
    print(f"[{name}] PruningAMR, default settings", file=sys.stderr)
    out["default"], res = run_pruning(field, domain, default, truth, n_rmse)
    if preview:
        vals = vertex_values(field, res.mesh)
        shown = preview_png(res.mesh, vals, RESULTS / f"amr_preview_{name}.png",
                            title=f"PruningAMR {name} (defaults): {res.mesh.dofs} DOFs")
        out["default"]["preview"] = {"path": str(Path(shown["path"]).relative_to(ROOT)), "renderer": shown["renderer"]}
    if pvd:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            path = write_mesh(res.mesh, vertex_values(field, res.mesh), Path(tmp) / f"{name}.pvd")
            slices = sorted(Path(tmp).glob(f"{name}_*.vtu"))
            out["default"]["pvd"] = {"slices": len(slices), "seconds": time.perf_counter() - t0,
                                     "bytes": sum(p.stat().st_size for p in slices) + path.stat().st_size}
    out["sweeps"] = {}
    budget = max(out["default"]["dofs"])
    for sname, kw in sweeps.items():
        print(f"[{name}] PruningAMR sweep {sname}", file=sys.stderr)
        run, _ = run_pruning(field, domain, replace(default, **kw), truth, n_rmse)
        run.pop("history")
        out["sweeps"][sname] = run
        budget = max(budget, run["dofs"][-1])
    budget = min(max(budget, 4 * out["default"]["dofs"][-1]), max(uni["dofs"]))  # room to reach equal error
    print(f"[{name}] error-driven AMR to {budget} DOFs, L2 and max indicators (max: the baseline before 2026-12-01)",
          file=sys.stderr)
    out["error_amr"], out["error_amr_max"] = (error_curve(field, domain, budget, base, seed, truth, n_rmse, ind)
                                              for ind in ("l2", "max"))
    keys = ["rmse_inr"] + (["rmse_true"] if truth is not None else [])
    d = out["default"]
    out["comparison"] = {k: compare(d["dofs"][-1], d["true_dofs"][-1], d[k][-1], out["uniform"], out["error_amr"], k)
                         for k in keys}
    out["comparison"]["error_amr_max_dofs_at_equal_error"] = dofs_at_error(out["error_amr_max"], d["rmse_inr"][-1])
    out["comparison"]["per_round"] = [compare(a, b, e, out["uniform"], None, "rmse_inr")
                                      for a, b, e in zip(d["dofs"], d["true_dofs"], d["rmse_inr"])]
    out["sweep_comparison"] = {s: compare(r["dofs"][-1], r["true_dofs"][-1], r["rmse_inr"][-1], out["uniform"],
                                          out["error_amr"], "rmse_inr") for s, r in out["sweeps"].items()}
    plot(out, name)
    c = out["comparison"]["rmse_inr"]
    pct = "n/a" if c["dof_reduction_vs_uniform"] is None else f"{100 * c['dof_reduction_vs_uniform']:.1f}%"
    print(f"[{name}] default: {c['dofs']} DOFs at RMSE {c['rmse_inr']:.3e}; uniform needs "
          f"{c['uniform_dofs_at_equal_error']}; reduction {pct}", file=sys.stderr)
    return out


def error_curve(field: InrField, domain: np.ndarray, budget: int, base: np.ndarray, seed: int, truth, n_rmse: int,
                indicator: str) -> dict:
    """Error-driven AMR up to ``budget`` DOFs; the curve of about 20 of its meshes."""
    ea = error_amr(field, domain, dof_budget=budget, base=base, keep_meshes=True, progress=False, seed=seed,
                   indicator=indicator)
    step = max(1, len(ea.meshes) // 20)
    picked = ea.meshes[::step] + ([ea.meshes[-1]] if (len(ea.meshes) - 1) % step else [])
    return {"seconds": ea.seconds, "fraction": 0.1, "indicator": indicator, **curve(picked, field, truth, n_rmse)}


def plot(result: dict, name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("rmse_inr", "rmse_true") if result["uniform"][k][0] is not None]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 4.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.loglog(result["uniform"]["dofs"], result["uniform"][key], "k-o", label="uniform")
        ax.loglog(result["error_amr"]["dofs"], result["error_amr"][key], "-s", ms=3, color="tab:green",
                  label="error-driven AMR (L2 indicator)")
        if "error_amr_max" in result:
            ax.loglog(result["error_amr_max"]["dofs"], result["error_amr_max"][key], ":s", ms=2, color="tab:olive",
                      label="error-driven AMR (max indicator)")
        d = result["default"]
        ax.loglog(d["dofs"], d[key], "-^", color="tab:red", label="PruningAMR defaults (per round)")
        ax.loglog(d["dofs"][-1:], d[key][-1:], "*", ms=14, color="tab:red")
        for prefix, colour in (("T=", "tab:blue"), ("eps=", "tab:purple")):
            runs = [(r["dofs"][-1], r[key][-1]) for s, r in result["sweeps"].items() if s.startswith(prefix)]
            if runs:
                runs.sort()
                ax.loglog(*zip(*runs), "--D", ms=4, color=colour, label=f"PruningAMR sweep {prefix[:-1]}")
        ax.set_xlabel("DOFs (all vertices, hanging included)")
        ax.set_ylabel(f"RMSE vs {'INR' if key == 'rmse_inr' else 'ground truth'} (conforming interpolant)")
        _style(ax)
    fig.suptitle(f"PruningAMR benchmark: {name}")
    return _save(fig, RESULTS / f"amr_{name}.png")


def _style(ax) -> None:
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_slices(result: dict, name: str) -> Path:
    """DOFs (summed over the time slices) vs RMSE: uniform 3D levels, error-driven AMR, the oracle, the default run,
    the T sweep and the P / error variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    uni = result["uniform"]
    ax.loglog(uni["dofs"], uni["rmse_inr"], "k-o", label="uniform (3D per slice)")
    if "error_amr" in result:
        ea = result["error_amr"]
        ax.loglog(ea["dofs"], ea["rmse_inr"], "-s", ms=3, color="tab:green",
                  label="error-driven AMR, L2 indicator (per slice)")
    if "error_amr_max" in result:
        ea = result["error_amr_max"]
        ax.loglog(ea["dofs"], ea["rmse_inr"], ":s", ms=2, color="tab:olive", label="error-driven AMR, max indicator")
    sweeps = result.get("sweeps", {})
    runs = sorted((r["dofs"], r["rmse_inr"]) for k, r in sweeps.items() if k.startswith("T="))
    if runs:
        ax.loglog(*zip(*runs), "--D", ms=4, color="tab:blue", label="PruningAMR sweep T (max_iters 5)")
    for (key, run), marker in zip(((k, r) for k, r in sweeps.items() if not k.startswith("T=")), "v^P"):
        ax.loglog([run["dofs"]], [run["rmse_inr"]], marker, ms=8, color="tab:purple", label=f"PruningAMR {key}")
    if "two_level_oracle" in result:
        o = result["two_level_oracle"]
        ax.loglog(o["dofs"], o["rmse_inr"], ":x", ms=4, color="tab:gray",
                  label=f"oracle: level {o['level']} + best elements at {o['level'] + 1}")
    d = result["default"]
    ax.loglog([d["dofs"]], [d["rmse_inr"]], "*", ms=14, color="tab:red", label="PruningAMR defaults")
    ax.set_xlabel(f"DOFs summed over {len(result['times'])} time slices (hanging included)")
    ax.set_ylabel("RMS over slices of the RMSE vs INR")
    _style(ax)
    ax.set_title(f"PruningAMR, 4D as 3D time slices: {name}")
    return _save(fig, RESULTS / f"amr_{name}_slices.png")


# ------------------------------------------------------------------- cases
def sweep_configs(full: bool, max_iters: int, max_dofs: int) -> dict:
    Ts = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4] if not full else [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5]
    epss = [1e-2, 1e-3, 1e-4] if not full else [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4]
    deep = {"max_iters": max_iters, "max_dofs": max_dofs}
    return {**{f"T={t:g}": {"T": t, **deep} for t in Ts}, **{f"eps={e:g}": {"eps": e, **deep} for e in epss}}


def _voxel_truth(coords: np.ndarray, voxels: np.ndarray):
    """Ground truth: trilinear interpolation of the voxels (grid points in [-1, 1]^3, axis k = coordinate k)."""
    from scipy.interpolate import RegularGridInterpolator

    centres = np.unique(coords[:, 0])
    n = len(centres)
    interp = RegularGridInterpolator((centres,) * 3, voxels.reshape(n, n, n, -1), method="linear")
    return lambda x: interp(np.clip(x, centres[0], centres[-1]))


@dataclass
class Built:
    """A trained case: the INR as a field, its domain, the ground truth (or None) and how it was trained."""

    field: InrField
    domain: np.ndarray
    truth: object
    training: dict
    network: dict
    extra: dict


def build_2d(args, seed: int, kind: str) -> Built:
    full = args.full
    sig = AnalyticSignal("sin-radial", 2, params={"alpha": ALPHA})
    if kind == "relu":
        model, lr, steps = relu_mlp([2] + [64 if full else 32] * 4 + [1], seed), 3e-3, 20000 if full else 3000
    else:
        model = siren(2, 1, hidden=(64 if full else 32,) * 3, omega0=30.0,
                      generator=torch.Generator().manual_seed(seed))
        lr, steps = 3e-4, 20000 if full else 2000
    print(f"[2d-{kind}] training (seed {seed})", file=sys.stderr)
    model, info = train(model, sig, steps, lr, 4096, seed)
    field = InrField.from_model(model, {"signal": sig.metadata()})
    return Built(field, np.array([[-1.0, 1.0], [-1.0, 1.0]]), true_sin_radial, info,
                 {"widths": model.widths, "activations": model.activations}, {"truth": f"sin(1/({ALPHA} + |x|))"})


def build_hydrogen(args, seed: int) -> Built | None:
    vti = SHARED / "volumes" / "hydrogen.vti"
    if not vti.exists():
        return None
    from inrkit.signals import load_signal

    vol = load_signal(vti)
    print(f"[3d-hydrogen] training (seed {seed})", file=sys.stderr)
    # 4000 steps: with 800 (the first runs) the network was undertrained (25.5-29.3 dB over seeds 0-2), a blurred
    # blob whose mesh RMSE was 2e-3..1e-2 at every level, and the sign of the comparison changed with the seed
    # (-31%, +186%, +216%); 4000 steps give 40.5-43.6 dB and a stable result (docs/amr.md).
    model, info = train(relu_mlp([3] + [64 if args.full else 32] * 4 + [1], seed), vol,
                        8000 if args.full else 4000, 3e-3, 8192, seed)
    field = InrField.from_model(model, {"signal": vol.metadata()})
    coords = vol.coords.double().numpy()
    voxels = np.asarray(vol.denormalize(vol.values), dtype=np.float64).reshape(len(coords), -1)
    return Built(field, field.model_domain, _voxel_truth(coords, voxels), info, {"widths": model.widths},
                 {"truth": "trilinear interpolation of the voxels"})


def build_flow(args, seed: int) -> Built:
    sig = AnalyticSignal("vortex-tube", 3, func=bent_vortex_tube, eval_size=48)
    print(f"[3d-flow] training (seed {seed})", file=sys.stderr)
    model, info = train(relu_mlp([3] + [64 if args.full else 32] * 4 + [1], seed), sig,
                        8000 if args.full else 2000, 3e-3, 8192, seed)
    field = InrField.from_model(model, {"signal": sig.metadata()})

    def truth(x: np.ndarray) -> np.ndarray:
        return bent_vortex_tube(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return Built(field, field.model_domain, truth, info, {"widths": model.widths},
                 {"truth": "bent Lamb-Oseen vortex tube swirl speed, core radius 0.08 (inrkit.amr.flows)"})


FOUR_D = {  # name -> (series kind, size, frames, training steps); --full: 32^3 x 16, longer training
    # 6000 steps: with 1500 (the first runs) the network was undertrained (27.9 dB; 6000 steps: 38.0 dB)
    "4d-vortex": ("vortex", 24, 12, 6000),
    # the paper's kind of 4D data (a CT of a mostly empty volume with a moving part): one localised moving feature
    "4d-sphere": ("sphere", 24, 12, 1500),
}


def moving_sphere(n: int, frames: int) -> np.ndarray:
    """``[frames, n, n, n]``: LeVeque's sphere (the vortex simulator's initial profile: radius 0.15, tanh interface
    of width 0.03) moving along a curved path from (0.3, 0.3, 0.5) to (0.7, 0.7, 0.5) in the unit cube."""
    x = (np.arange(n) + 0.5) / n
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    out = np.empty((frames, n, n, n), np.float32)
    for k in range(frames):
        s = k / max(frames - 1, 1)
        c = (0.3 + 0.4 * s, 0.3 + 0.4 * s, 0.5 + 0.15 * np.sin(np.pi * s))
        r = np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2)
        out[k] = 0.5 * (1.0 - np.tanh((r - 0.15) / 0.03))
    return out


def build_4d(args, seed: int, name: str, hidden: list[int] | None = None, train_steps: int | None = None) -> Built:
    """Train a ReLU MLP on 4D case ``name``: ``hidden`` widths (default 64x4) for ``train_steps`` steps (default:
    the case's; ``bench/amr_networks.py`` varies both)."""
    from inrkit.meta.simulate import generate_series, write_series
    from inrkit.signals.base import GridSignal
    from inrkit.signals.series import load_series

    kind, size, steps, case_steps = FOUR_D[name]
    train_steps = train_steps or case_steps
    if args.full:
        size, steps, train_steps = 32, 16, 4 * train_steps
    if args.series:  # --series NxT: another grid size and frame count, same training
        size, steps = args.series
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sphere":
            write_series(Path(tmp) / kind, moving_sphere(size, steps), name=kind,
                         labels=[float(k) for k in range(steps)], label_name="time")
        else:
            generate_series(kind, Path(tmp) / kind, size=size, steps=steps, seed=0, progress=False)
        series = load_series(Path(tmp) / kind)
    raw = series.denormalize(series.values)  # [T, X, Y, Z]
    t = series.labels.astype(np.float64)
    grid = np.moveaxis(raw, 0, -1)[..., None]  # [X, Y, Z, T, 1]: axis k is coordinate k, time last
    domain = [[0.0, 1.0]] * 3 + [[float(t[0]), float(t[-1])]]
    sig = GridSignal(grid, kind="field", domain=domain, name=f"{kind}-4d")
    print(f"[{name}] training on {grid.shape[:-1]} samples (seed {seed})", file=sys.stderr)
    # 64 wide (as --full): the 48-wide networks used until 2026-12-01 fitted the vortex series worse (37.2-39.5 dB
    # vs 40.7-42.7 dB) and PruningAMR lost to uniform on two of their three seeds (docs/amr.md, "4D network")
    model, info = train(relu_mlp([4] + (hidden or [64] * 4) + [1], seed), sig,
                        train_steps, 2e-3, 16384, seed)
    field = InrField.from_model(model, {"signal": sig.metadata()})
    occupied = float((np.abs(raw - np.median(raw)) > 0.05 * (raw.max() - raw.min())).mean())
    return Built(field, field.model_domain, None, info, {"widths": model.widths},
                 {"series": {"kind": kind, "size": size, "steps": steps, "labels": t.tolist(),
                             "fraction_of_voxels_off_background_by_5pct": occupied}})


def _sweeps_4d(args) -> dict:
    return {f"T={t:g}": {"T": t, "max_iters": 6, "max_dofs": 60_000 if not args.full else 400_000}
            for t in ([1e-2, 1e-3, 1e-4] if not args.full else [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4])}


def slices_curve(field: InrField, domain: np.ndarray, times: np.ndarray, meshes_of, n: int) -> dict:
    """Totals over the time slices: DOFs summed, RMSE = root mean square of the per-slice RMSEs (n points each)."""
    out = {"dofs": 0, "true_dofs": 0, "elements": 0, "per_slice": []}
    sq = []
    for t in times:
        sf = slice_field(field, float(t))
        mesh = meshes_of(sf)
        rmse = mesh_rmse(mesh, vertex_values(sf, mesh), sf, n=n)
        sq.append(rmse ** 2)
        out["dofs"] += mesh.dofs
        out["true_dofs"] += mesh.true_dofs
        out["elements"] += mesh.num_elements
        out["per_slice"].append({"time": float(t), "dofs": mesh.dofs, "rmse_inr": rmse})
    out["rmse_inr"] = float(np.sqrt(np.mean(sq)))
    return out


def uniform_slices(field: InrField, domain: np.ndarray, times: np.ndarray, base: np.ndarray, levels: list[int],
                   n: int = 16384) -> dict:
    """The uniform curve of the slice protocol: uniform 3D meshes of every time slice at each level (DOFs summed,
    RMSE = RMS over slices, ``n`` points per slice)."""
    uni: dict = {"levels": list(levels), "dofs": [], "true_dofs": [], "rmse_inr": []}
    for lv in levels:
        c = slices_curve(field, domain, times, lambda sf, lv=lv: uniform_mesh(domain[:-1], lv, base), n)
        for k in ("dofs", "true_dofs", "rmse_inr"):
            uni[k].append(c[k])
    return uni


def run_slices(field: InrField, domain: np.ndarray, cfg: PruningAMRConfig, times: np.ndarray, n: int,
               meshes: list | None = None) -> dict:
    """PruningAMR on each time slice (3D), as ``inrkit mesh`` does by default for a 4D model (the final mesh of
    each slice is appended to ``meshes`` if given)."""
    space = domain[:-1]
    slice_cfg = replace(cfg, base=tuple(int(v) for v in space_base(cfg.base, space, cfg.init_level)), progress=False)
    t0 = time.perf_counter()
    runs: list = []
    res = slices_curve(field, domain, times, lambda sf: runs.append(pruning_amr(sf, space, slice_cfg)) or runs[-1].mesh,
                       n)
    if meshes is not None:
        meshes.extend(r.mesh for r in runs)
    history = [h for r in runs for h in r.history]
    evaluated = sum(h["evaluated"] for h in history)
    res.update(config=asdict(cfg), seconds=time.perf_counter() - t0, iterations=max(r.iterations for r in runs),
               stopped=[r.stopped for r in runs], p_above_P_everywhere=all(r.p_above_P_everywhere for r in runs),
               elements_tested=evaluated, min_p=min(h["min_p"] for h in history),
               ms_per_element=1e3 * sum(h["seconds"] for h in history) / evaluated if evaluated else None)
    return res


def slices_error_amr(field: InrField, domain: np.ndarray, times: np.ndarray, base: np.ndarray, budgets: list[int],
                     seed: int, n: int, indicator: str = "l2") -> dict:
    """Error-driven AMR on each time slice (same base as PruningAMR's slices), one run per slice to the largest
    per-slice budget; the curve's point k sums, over the slices, the first mesh with at least ``budgets[k]`` DOFs."""
    space = domain[:-1]
    runs = []
    t0 = time.perf_counter()
    for t in times:
        sf = slice_field(field, float(t))
        runs.append((sf, error_amr(sf, space, dof_budget=max(budgets), base=base, keep_meshes=True, progress=False,
                                   seed=seed, indicator=indicator).meshes))
    out: dict = {"per_slice_budgets": list(budgets), "fraction": 0.1, "indicator": indicator, "dofs": [],
                 "true_dofs": [], "rmse_inr": []}
    for bud in budgets:
        sq, dofs, true = [], 0, 0
        for sf, meshes in runs:
            mesh = next((m for m in meshes if m.dofs >= bud), meshes[-1])
            sq.append(mesh_rmse(mesh, vertex_values(sf, mesh), sf, n=n) ** 2)
            dofs, true = dofs + mesh.dofs, true + mesh.true_dofs
        out["dofs"].append(dofs)
        out["true_dofs"].append(true)
        out["rmse_inr"].append(float(np.sqrt(np.mean(sq))))
    out["seconds"] = time.perf_counter() - t0
    return out


def two_level_oracle(field: InrField, domain: np.ndarray, times: np.ndarray, base: np.ndarray, level: int,
                     fractions: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), n: int = 16384,
                     n_elem: int = 64, seed: int = 0) -> dict:
    """The best a one-round adaptive refinement can do on each time slice: refine the fraction of the uniform
    ``level`` mesh's elements whose squared interpolation error (vs the INR, ``n_elem`` points each) drops most
    when refined, for each fraction. An oracle (it uses the INR's error, which no indicator knows for free):
    if even it does not beat the uniform curve, no refinement criterion can on that field at that level."""
    space = domain[:-1]
    rng = np.random.default_rng(seed)
    coarse, fine = uniform_mesh(space, level, base), uniform_mesh(space, level + 1, base)
    out: dict = {"level": level, "fractions": list(fractions), "dofs": [0] * len(fractions),
                 "true_dofs": [0] * len(fractions)}
    sq = np.zeros((len(times), len(fractions)))
    for i, t in enumerate(times):
        sf = slice_field(field, float(t))
        pts = coarse.sample_elements(n_elem, rng).reshape(-1, len(space))
        exact = np.asarray(sf(pts), np.float64).reshape(coarse.num_elements, n_elem, -1)
        err_coarse, err_fine = (((m.interpolate(vertex_values(sf, m), pts).reshape(exact.shape) - exact) ** 2)
                                .mean(axis=(1, 2)) for m in (coarse, fine))
        order = np.argsort(err_fine - err_coarse)  # largest drop of the squared error first
        for j, f in enumerate(fractions):
            mask = np.zeros(coarse.num_elements, bool)
            mask[order[:int(round(f * coarse.num_elements))]] = True
            mesh = coarse.refine(mask) if mask.any() else coarse
            sq[i, j] = mesh_rmse(mesh, vertex_values(sf, mesh), sf, n=n) ** 2
            out["dofs"][j] += mesh.dofs
            out["true_dofs"][j] += mesh.true_dofs
    out["rmse_inr"] = np.sqrt(sq.mean(axis=0)).tolist()
    return out


def marking_diagnosis(field: InrField, domain: np.ndarray, times: np.ndarray, base: np.ndarray,
                      meshes: list[BoxMesh], level: int = 3, n_elem: int = 64, seed: int = 0) -> dict:
    """Where the squared interpolation error of the uniform ``level`` mesh is, and which of its elements each
    slice's PruningAMR mesh refined further (the element containing the uniform element's centre is finer) or
    left coarser; totals over the time slices."""
    space = domain[:-1]
    rng = np.random.default_rng(seed)
    uni = uniform_mesh(space, level, base)
    lo, hi = uni.element_bounds()
    sums = dict.fromkeys(("error", "top10_error", "finer_error", "coarser_error", "elements", "top10", "finer",
                          "coarser", "top10_finer", "top10_coarser"), 0.0)
    for t, mesh in zip(times, meshes):
        sf = slice_field(field, float(t))
        err = element_interp_error(sf, uni, vertex_values(sf, uni), np.arange(uni.num_elements), n_elem, rng,
                                   "l2") ** 2  # each element's share of the squared error
        top = np.zeros(len(err), bool)
        top[np.argsort(-err)[: len(err) // 10]] = True
        lvl = mesh.levels[mesh.locate(0.5 * (lo + hi))]
        finer, coarser = lvl > level, lvl < level
        for key, val in (("error", err.sum()), ("top10_error", err[top].sum()), ("finer_error", err[finer].sum()),
                         ("coarser_error", err[coarser].sum()), ("elements", len(err)), ("top10", top.sum()),
                         ("finer", finer.sum()), ("coarser", coarser.sum()), ("top10_finer", (top & finer).sum()),
                         ("top10_coarser", (top & coarser).sum())):
            sums[key] += float(val)
    return {"level": level,
            "error_share_of_worst_10pct": sums["top10_error"] / sums["error"],
            "refined_fraction": sums["finer"] / sums["elements"],
            "error_share_refined": sums["finer_error"] / sums["error"],
            "coarser_fraction": sums["coarser"] / sums["elements"],
            "error_share_coarser": sums["coarser_error"] / sums["error"],
            "worst_10pct_refined": sums["top10_finer"] / sums["top10"],
            "worst_10pct_coarser": sums["top10_coarser"] / sums["top10"]}


def slices_case(name: str, field: InrField, domain: np.ndarray, args, seed: int, sweeps: bool = True,
                error_driven: bool | None = None) -> dict:
    """The 4D protocol of the reference code (--time_slice): each of the default slice times meshed in 3D,
    against uniform 3D meshes of the same slices, error-driven AMR (``error_driven``, default: with the sweeps)
    and the two-level oracle; sweeps over T give PruningAMR's curve."""
    times = parse_times("auto", domain[-1])
    default = PruningAMRConfig(seed=seed, progress=False)
    base = space_base(default.base, domain[:-1], default.init_level)
    levels = list(range(0, 6))
    print(f"[{name}/slices] uniform 3D levels {levels} on {len(times)} slices (base {base.tolist()})", file=sys.stderr)
    uni = uniform_slices(field, domain, times, base, levels)
    print(f"[{name}/slices] PruningAMR defaults per slice", file=sys.stderr)
    meshes: list[BoxMesh] = []
    out: dict = {"times": times.tolist(), "base": base.tolist(), "uniform": uni,
                 "default": run_slices(field, domain, default, times, 16384, meshes)}
    if sweeps:  # T deeper than the defaults; P and the relative error with the default budget
        out["sweeps"] = {}
        variants = [{"T": t_val, "max_iters": 5, "max_dofs": 40_000} for t_val in (1e-2, 1e-3, 1e-4)]
        variants += [{"P": 0.15}, {"P": 0.25}, {"error": "relative"}]
        for kw in variants:
            print(f"[{name}/slices] sweep {kw}", file=sys.stderr)
            key = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in kw.items())
            out["sweeps"][key] = run_slices(field, domain, replace(default, **kw), times, 16384)
    d = out["default"]
    ea = None
    if error_driven is None:
        error_driven = sweeps
    if error_driven:
        per_slice = d["dofs"] / len(times)  # from the base mesh to 4x the default's DOFs per slice
        budgets = sorted({int(per_slice * f) for f in (0.25, 0.5, 1.0, 2.0, 4.0)})
        print(f"[{name}/slices] error-driven AMR per slice, budgets {budgets}", file=sys.stderr)
        ea = out["error_amr"] = slices_error_amr(field, domain, times, base, budgets, seed, 16384)
        out["error_amr_max"] = slices_error_amr(field, domain, times, base, budgets, seed, 16384, indicator="max")
    print(f"[{name}/slices] two-level oracle (uniform level 3 plus the best-chosen elements at level 4)",
          file=sys.stderr)
    oracle = out["two_level_oracle"] = two_level_oracle(field, domain, times, base, 3, seed=seed)
    oracle["comparison"] = [compare(a, b, e, uni, None, "rmse_inr")
                            for a, b, e in zip(oracle["dofs"], oracle["true_dofs"], oracle["rmse_inr"])]
    oracle["best_dof_reduction"] = max((c["dof_reduction_vs_uniform"] for c in oracle["comparison"]
                                        if c["dof_reduction_vs_uniform"] is not None), default=None)
    out["marking_diagnosis"] = marking_diagnosis(field, domain, times, base, meshes, seed=seed)
    out["comparison"] = compare(d["dofs"], d["true_dofs"], d["rmse_inr"], uni, ea, "rmse_inr")
    if "error_amr_max" in out:
        out["comparison"]["error_amr_max_dofs_at_equal_error"] = dofs_at_error(out["error_amr_max"], d["rmse_inr"])
    out["sweep_comparison"] = {k: compare(r["dofs"], r["true_dofs"], r["rmse_inr"], uni, ea, "rmse_inr")
                               for k, r in out.get("sweeps", {}).items()}
    if sweeps:
        plot_slices(out, name)
    c = out["comparison"]
    pct = "n/a" if c["dof_reduction_vs_uniform"] is None else f"{100 * c['dof_reduction_vs_uniform']:.1f}%"
    print(f"[{name}/slices] default: {c['dofs']} DOFs at RMSE {c['rmse_inr']:.3e}; uniform needs "
          f"{c['uniform_dofs_at_equal_error']}; reduction {pct}", file=sys.stderr)
    return out


# name -> (builder(args, seed), uniform levels, sweeps(args), RMSE points, preview, pvd, ReLU)
CASES = {
    "2d-relu": (lambda a, s: build_2d(a, s, "relu"), lambda a: range(0, 8 if a.full else 7),
                lambda a: sweep_configs(a.full, 8, 100_000 if a.full else 30_000), 16384, True, False, True),
    "2d-siren": (lambda a, s: build_2d(a, s, "siren"), lambda a: range(0, 8 if a.full else 7), lambda a: {},
                 16384, True, False, False),
    "3d-hydrogen": (build_hydrogen, lambda a: range(0, 6), lambda a: {}, 16384, True, False, True),
    "3d-flow": (build_flow, lambda a: range(0, 6), lambda a: {}, 16384, True, False, True),
    **{name: (lambda a, s, n=name: build_4d(a, s, n), lambda a: range(0, 5), _sweeps_4d, 16384, False, True, True)
       for name in FOUR_D},
}


def _default_summary(run: dict, uniform: dict) -> dict:
    c = compare(run["dofs"][-1], run["true_dofs"][-1], run["rmse_inr"][-1], uniform, None, "rmse_inr")
    return {"dofs": c["dofs"], "true_dofs": c["true_dofs"], "rmse_inr": c["rmse_inr"],
            "uniform_dofs_at_equal_error": c["uniform_dofs_at_equal_error"],
            "dof_reduction_vs_uniform": c["dof_reduction_vs_uniform"],
            "marked_by_P": [h["marked_by_P"] for h in run["history"]],
            "marked_by_T": [h["marked_by_T"] for h in run["history"]],
            "evaluated": [h["evaluated"] for h in run["history"]], "min_p": min(h["min_p"] for h in run["history"]),
            "p_above_P_everywhere": run["p_above_P_everywhere"]}


def _stats(values: list) -> dict:
    v = np.asarray([x for x in values if x is not None], float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def seed_spread(name: str, args, main: Built, main_res: dict, seeds: list[int]) -> dict:
    """Default PruningAMR vs uniform for networks trained with other seeds (ID on pruned and original activations)."""
    build, levels, _, n_rmse, *_ = CASES[name]
    per_seed = []
    for seed in seeds:
        if seed == args.seed:
            b, uni = main, main_res["uniform"]
            runs = {DEFAULT_ID: main_res["default"], OTHER_ID: main_res[f"default_id_{OTHER_ID}"]}
        else:
            b = build(args, seed)
            base = resolve_base(None, b.domain, PruningAMRConfig().init_level)
            uni = curve([uniform_mesh(b.domain, lv, base) for lv in levels(args)], b.field, None, n_rmse)
            runs = {ida: run_pruning(b.field, b.domain, PruningAMRConfig(seed=args.seed, progress=False,
                                                                        id_activations=ida), None, n_rmse)[0]
                    for ida in ("pruned", "original")}
        row = {"seed": seed, "psnr": b.training.get("psnr"),
               **{f"id_{k}": _default_summary(r, uni) for k, r in runs.items()}}
        if name in FOUR_D:
            row["slices"] = (main_res["slices"] if seed == args.seed else
                             slices_case(name, b.field, b.domain, args, args.seed, sweeps=False))["comparison"]
        per_seed.append(row)
        print(f"[{name}] seed {seed}: PSNR {row['psnr']:.1f} dB, DOF change vs uniform "
              f"{-100 * (row['id_pruned']['dof_reduction_vs_uniform'] or 0):+.1f}% (ID on pruned), "
              f"{-100 * (row['id_original']['dof_reduction_vs_uniform'] or 0):+.1f}% (ID on original)", file=sys.stderr)
    return {"seeds": seeds, "per_seed": per_seed,
            "dof_reduction_id_pruned": _stats([r["id_pruned"]["dof_reduction_vs_uniform"] for r in per_seed]),
            "dof_reduction_id_original": _stats([r["id_original"]["dof_reduction_vs_uniform"] for r in per_seed]),
            "psnr": _stats([r["psnr"] for r in per_seed]),
            "slices_dof_reduction": _stats([r["slices"]["dof_reduction_vs_uniform"] for r in per_seed
                                            if "slices" in r])}


@torch.no_grad()
def start_mesh_diagnosis(b: Built, n: int = 256) -> dict:
    """Why elements of the start mesh are marked: ``p`` per element against the local signal.

    For every start element (defaults): ``p``, the range of the INR (and of the ground truth when there is one) on
    ``n`` random points as a fraction of its global range, and how many first-layer ReLU hyperplanes cross it. A
    piecewise-affine network restricted to an element where no kink lies is affine: the ID then keeps ``d + 1``
    neurons per layer (``p_floor``), so ``P`` leaves ``P * neurons - p_floor * neurons`` neurons for kinks.
    """
    from inrkit.amr.pruning import element_pruning_stats

    cfg = PruningAMRConfig()
    dom = np.asarray(b.domain, float)
    mesh = uniform_mesh(dom, cfg.init_level, resolve_base(cfg.base, dom, cfg.init_level))
    rng = np.random.default_rng(0)
    el = np.arange(mesh.num_elements)
    x_id = mesh.sample_elements(cfg.n_id, rng, el)
    x_ev = mesh.sample_elements(n, rng, el)
    t = lambda a: torch.as_tensor(b.field.to_model_coords(a), dtype=torch.float64)  # noqa: E731
    p, _, kept = element_pruning_stats(b.field.model64, t(x_id), t(x_ev), cfg.eps)
    d = dom.shape[0]
    flat = x_ev.reshape(-1, d)
    f = b.field.network(flat).reshape(len(el), n, -1)
    local = (f.max(axis=(1, 2)) - f.min(axis=(1, 2))) / max(float(f.max() - f.min()), 1e-300)
    sig = local
    if b.truth is not None:
        tv = np.asarray(b.truth(flat), float).reshape(len(el), n, -1)
        sig = (tv.max(axis=(1, 2)) - tv.min(axis=(1, 2))) / max(float(tv.max() - tv.min()), 1e-300)
    model = b.field.model64
    W, bias = model.weights[0].detach().numpy(), model.biases[0].detach().numpy()
    corners = b.field.to_model_coords(mesh.vertices[mesh.cells].reshape(-1, d)).reshape(len(el), -1, d)
    z = corners @ W.T + bias
    crossing = ((z.max(1) > 0) & (z.min(1) < 0)).sum(1)
    hidden = model.hidden_widths
    bins = []
    for lo, hi in ((0.0, 0.01), (0.01, 0.05), (0.05, 0.2), (0.2, np.inf)):
        s_ = (sig >= lo) & (sig < hi)
        bins.append({"local_range": [lo, None if hi == np.inf else hi], "elements": int(s_.sum()),
                     "marked_by_P": int((p[s_] > cfg.P).sum()),
                     "median_p": float(np.median(p[s_])) if s_.any() else None,
                     "median_layer1_kinks": float(np.median(crossing[s_])) if s_.any() else None})
    return {"elements": int(len(el)), "marked_by_P": int((p > cfg.P).sum()), "P": cfg.P,
            "p_floor_affine": (d + 1) * len(hidden) / sum(hidden),
            "p_quantiles": dict(zip(["min", "q10", "median", "q90", "max"],
                                    np.quantile(p, [0, 0.1, 0.5, 0.9, 1]).round(4).tolist())),
            "kept_per_layer_mean": kept.mean(0).round(2).tolist(), "hidden_widths": list(hidden),
            "signal": "ground truth" if b.truth is not None else "INR",
            "by_local_range": bins,
            "layer1_kinks_per_element": dict(zip(["min", "median", "max"],
                                                 np.quantile(crossing, [0, 0.5, 1]).tolist())),
            "corr_p_local_range": float(np.corrcoef(p, sig)[0, 1]),
            "corr_p_layer1_kinks": float(np.corrcoef(p, crossing)[0, 1])}


def slices_only(name: str, args, main: Built) -> dict:
    """``--slices-only``: the default PruningAMR slice meshes against uniform slices (no space-time mesh, no
    sweeps), for the main seed and every ``--spread-seeds`` seed."""
    seeds = [int(v) for v in args.spread_seeds.split(",") if v.strip()] or [args.seed]
    per_seed = []
    for seed in seeds:
        b = main if seed == args.seed else build_4d(args, seed, name)
        res = slices_case(name, b.field, b.domain, args, seed, sweeps=False, error_driven=seed == args.seed)
        per_seed.append({"seed": seed, "training": b.training, "network": b.network, **b.extra,
                         "uniform": res["uniform"], "default": res["default"], "comparison": res["comparison"],
                         "two_level_oracle": res["two_level_oracle"], "marking_diagnosis": res["marking_diagnosis"],
                         **{k: res[k] for k in ("error_amr", "error_amr_max") if k in res}})
    change = [-r["comparison"]["dof_reduction_vs_uniform"] for r in per_seed
              if r["comparison"]["dof_reduction_vs_uniform"] is not None]
    return {"slices_only": True, "per_seed": per_seed, "dof_change_vs_uniform": change,
            "dof_change_stats": _stats(change)}


def run_named(report: dict, args, name: str) -> None:
    build, levels, sweeps, n_rmse, preview, pvd, relu = CASES[name]
    b = build(args, args.seed)
    if b is None:
        report["cases"][name] = {"skipped": "data not found"}
        return
    if args.diagnose_only:  # add the start-mesh diagnosis to an existing result (training is reproducible)
        diag = start_mesh_diagnosis(b)
        old = report["cases"].get(name, {})
        if old.get("training", {}).get("psnr") is not None and abs(old["training"]["psnr"] - b.training["psnr"]) > 1e-6:
            raise SystemExit(f"[{name}] retrained network differs from the recorded one (PSNR)")
        old["start_mesh_diagnosis"] = diag
        report["cases"][name] = old
        return
    res = run_case(name, b.field, b.domain, b.truth, levels(args), sweeps(args), n_rmse, args.seed, preview, pvd)
    res.update(training=b.training, network=b.network, **b.extra)
    if relu:
        res["start_mesh_diagnosis"] = start_mesh_diagnosis(b)
    print(f"[{name}] PruningAMR defaults with the ID on the {OTHER_ID} network's activations", file=sys.stderr)
    orig, _ = run_pruning(b.field, b.domain, PruningAMRConfig(seed=args.seed, progress=False,
                                                              id_activations=OTHER_ID), b.truth, n_rmse)
    res[f"default_id_{OTHER_ID}"] = orig
    res["comparison"][f"id_{OTHER_ID}"] = compare(orig["dofs"][-1], orig["true_dofs"][-1], orig["rmse_inr"][-1],
                                               res["uniform"], res["error_amr"], "rmse_inr")
    if name in FOUR_D and args.slices_only:  # only the default slice protocol, for each spread seed
        report["cases"][name] = slices_only(name, args, b)
        return
    if name in FOUR_D:  # the default of `inrkit mesh` for a 4D model: 3D time slices (the reference code's way)
        res["slices"] = slices_case(name, b.field, b.domain, args, args.seed)
    seeds = [int(v) for v in args.spread_seeds.split(",") if v.strip()]
    if relu and len(seeds) > 1:
        res["seed_spread"] = seed_spread(name, args, b, res, seeds)
    report["cases"][name] = res


def _series_size(text: str) -> tuple[int, int]:
    """``--series NxT``: grid cells per axis and frames, both >= 2."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 2 for p in parts):
        raise argparse.ArgumentTypeError(f"expected NxT with N, T >= 2 (e.g. 32x20), got {text!r}")
    return int(parts[0]), int(parts[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="longer training, larger networks, denser sweeps")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--spread-seeds", default="0,1,2",
                    help="training seeds of the seed spread of every ReLU case (default run only); '' to skip")
    ap.add_argument("--merge", action="store_true", help="keep the other cases of an existing --out file")
    ap.add_argument("--out", default=str(RESULTS / "amr.json"), help="result JSON (default bench/results/amr.json)")
    ap.add_argument("--series", default=None, metavar="NxT", type=_series_size,
                    help="4D cases: grid cells per axis and frames of the series (default 24x12; "
                         "`inrkit synth`'s defaults are 32x20)")
    ap.add_argument("--slices-only", action="store_true",
                    help="4D cases: only the default slice meshes vs uniform slices, for every --spread-seeds seed")
    ap.add_argument("--diagnose-only", action="store_true",
                    help="with --merge: retrain --cases (seed --seed) and add only the start-mesh diagnosis")
    ap.add_argument("--import-cases", default=None, metavar="JSON",
                    help="copy the cases of another result JSON in (e.g. a parallel run with --out)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report: dict = {"benchmark": "amr", "full": args.full, "seed": args.seed, "threads": args.threads,
                    "device": "cpu", "torch": torch.__version__, "environment": run_environment(threads=args.threads),
                    "defaults": asdict(PruningAMRConfig()),
                    "notes": ["ms_per_element / seconds were measured on a shared 2-core CPU (other jobs running): "
                              "indicative only",
                              "dofs = all mesh vertices, hanging nodes included (MFEM GetNDofs); true_dofs excludes "
                              "hanging nodes; RMSE is of the conforming interpolant (hanging nodes constrained)",
                              "uniform_dofs_at_equal_error: log-log interpolation of the uniform curve"],
                    "cases": {}}
    out_json = Path(args.out)
    if args.merge and out_json.exists():
        import json

        old = json.loads(out_json.read_text())
        report["cases"] = old.get("cases", {})
        report["merged_runs"] = old.get("merged_runs", []) + [{"cases": args.cases,
                                                               "previous_seconds": old.get("seconds")}]
    if args.import_cases:
        import json

        report["cases"].update(json.loads(Path(args.import_cases).read_text())["cases"])
        report.setdefault("merged_runs", []).append({"imported": str(args.import_cases)})
    names = [n for n in args.cases.split(",") if n]
    for name in names:
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    for name in names:
        t0 = time.perf_counter()
        run_named(report, args, name)
        if not args.diagnose_only:
            report["cases"][name]["case_seconds"] = time.perf_counter() - t0
        report["seconds"] = time.perf_counter() - t_start
        write_json(out_json, report)
    report["table"] = table(report)
    report["seconds"] = time.perf_counter() - t_start
    write_json(out_json, report)
    for row in report["table"]:
        print(row)
    print(f"total {report['seconds']:.0f} s -> {out_json}")


def table(report: dict) -> list[dict]:
    """The headline table: default PruningAMR vs uniform at equal RMSE (vs the INR)."""
    rows = []
    for case, res in report["cases"].items():
        if "comparison" not in res:
            continue
        c = res["comparison"]["rmse_inr"]
        spread = res.get("seed_spread", {})
        if "slices" in res:  # 4D: the default is the time-slice protocol; the space-time mesh is reported beside it
            sl = res["slices"]
            rows.append({"case": case, "mode": "slices (default)", "pruning_amr_dofs": sl["comparison"]["dofs"],
                         "pruning_amr_true_dofs": sl["comparison"]["true_dofs"],
                         "rmse_inr": sl["comparison"]["rmse_inr"],
                         "uniform_dofs_at_equal_rmse": sl["comparison"]["uniform_dofs_at_equal_error"],
                         "dof_reduction": sl["comparison"]["dof_reduction_vs_uniform"],
                         "error_amr_dofs_at_equal_rmse": sl["comparison"].get("error_amr_dofs_at_equal_error"),
                         "error_amr_max_dofs_at_equal_rmse":
                             sl["comparison"].get("error_amr_max_dofs_at_equal_error"),
                         "oracle_best_dof_reduction": sl.get("two_level_oracle", {}).get("best_dof_reduction"),
                         "p_above_P_everywhere": sl["default"]["p_above_P_everywhere"],
                         "ms_per_element": sl["default"]["ms_per_element"],
                         "psnr": res.get("training", {}).get("psnr"),
                         "seed_spread_dof_reduction": spread.get("slices_dof_reduction"),
                         "seed_spread_psnr": spread.get("psnr")})
        rows.append({"case": case, "mode": "spacetime" if "slices" in res else "default",
                     "pruning_amr_dofs": c["dofs"], "pruning_amr_true_dofs": c["true_dofs"],
                     "rmse_inr": c["rmse_inr"], "uniform_dofs_at_equal_rmse": c["uniform_dofs_at_equal_error"],
                     "dof_reduction": c["dof_reduction_vs_uniform"],
                     "error_amr_dofs_at_equal_rmse": c.get("error_amr_dofs_at_equal_error"),
                     "error_amr_max_dofs_at_equal_rmse": res["comparison"].get("error_amr_max_dofs_at_equal_error"),
                     "p_above_P_everywhere": res["default"]["p_above_P_everywhere"],
                     "ms_per_element": res["default"]["ms_per_element"],
                     "psnr": res.get("training", {}).get("psnr"),
                     f"dof_reduction_id_{OTHER_ID}":
                         res["comparison"].get(f"id_{OTHER_ID}", {}).get("dof_reduction_vs_uniform"),
                     "seed_spread_dof_reduction": res.get("seed_spread", {}).get(f"dof_reduction_id_{DEFAULT_ID}"),
                     f"seed_spread_dof_reduction_id_{OTHER_ID}":
                         res.get("seed_spread", {}).get(f"dof_reduction_id_{OTHER_ID}"),
                     "seed_spread_psnr": res.get("seed_spread", {}).get("psnr")})
    return rows


if __name__ == "__main__":
    main()
