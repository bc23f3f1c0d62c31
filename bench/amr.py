"""PruningAMR benchmark: DOFs vs RMSE of PruningAMR, uniform refinement and error-driven AMR.

2D: the paper's f(r) = sin(1/(alpha + r)) on [-1, 1]^2, represented by a 2->32x4->1 ReLU MLP (as in the
paper) and by a SIREN, both trained here with inrkit.train.fit on inrkit.signals.analytic. 3D: a SIREN of
../shared/data/volumes/hydrogen.vti. For every mesh: DOFs and RMSE of the mesh interpolant against the
INR (and against the true function / the voxels). Reports the DOF reduction at equal error and the
runtime per PruningAMR iteration. Writes bench/results/amr.json and PNG plots.

    .venv/bin/python bench/amr.py            # CPU default, a few minutes
    .venv/bin/python bench/amr.py --full     # longer training, more iterations (GPU scale)
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from inrkit.amr import (BoxMesh, InrField, PruningAMRConfig, error_amr, mesh_rmse, preview_png, pruning_amr,
                        uniform_mesh, vertex_values)
from inrkit.models import MLP, siren
from inrkit.signals.analytic import AnalyticSignal
from inrkit.train import FitConfig, fit
from inrkit.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "data"
ALPHA = 0.1


def true_sin_radial(x: np.ndarray) -> np.ndarray:
    return np.sin(1.0 / (ALPHA + np.linalg.norm(x, axis=1)))[:, None]


def relu_mlp(seed: int) -> MLP:
    """2 -> 32x4 -> 1 ReLU MLP (the paper's 2D example network), nn.Linear initialisation."""
    return _linear_init(MLP([2, 32, 32, 32, 32, 1], ["relu"] * 4 + ["identity"]), seed)


def _linear_init(m: MLP, seed: int) -> MLP:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w, b in zip(m.weights, m.biases):
            bound = 1.0 / math.sqrt(w.shape[1])
            w.uniform_(-bound, bound, generator=g)
            b.uniform_(-bound, bound, generator=g)
    return m


def train(model: MLP, signal, steps: int, lr: float, batch: int | None, seed: int) -> tuple[MLP, dict]:
    t0 = time.perf_counter()
    res = fit(model, signal, FitConfig(steps=steps, lr=lr, batch_size=batch, seed=seed, progress=True,
                                       device="cpu", log_every=max(steps // 10, 1)))
    return res.model.eval(), {"steps": steps, "lr": lr, "batch": batch, "seconds": time.perf_counter() - t0,
                              **{k: float(v) for k, v in res.metrics.items()}}


def curve(meshes: list[BoxMesh], field: InrField, truth=None, n: int = 16384) -> dict:
    """DOFs, elements and RMSE (vs INR, vs truth) of each mesh."""
    out = {"dofs": [], "elements": [], "rmse_inr": [], "rmse_true": []}
    for m in meshes:
        vals = vertex_values(field, m)
        out["dofs"].append(m.dofs)
        out["elements"].append(m.num_elements)
        out["rmse_inr"].append(mesh_rmse(m, vals, field, n=n))
        out["rmse_true"].append(mesh_rmse(m, vals, truth, n=n) if truth is not None else None)
    return out


def dofs_at_error(ref: dict, err: float, key: str = "rmse_inr") -> float | None:
    """DOFs the reference curve needs to reach ``err`` (log-log interpolation); None if out of its range."""
    d, e = np.asarray(ref["dofs"], float), np.asarray(ref[key], float)
    for i in range(len(d) - 1):
        if e[i] >= err >= e[i + 1] and e[i] > e[i + 1]:
            t = (np.log(e[i]) - np.log(err)) / (np.log(e[i]) - np.log(e[i + 1]))
            return float(np.exp(np.log(d[i]) + t * (np.log(d[i + 1]) - np.log(d[i]))))
    return float(d[0]) if err >= e[0] else None


def error_at_dofs(ref: dict, dofs: float, key: str = "rmse_inr") -> float | None:
    """RMSE of the reference curve at ``dofs`` (log-log interpolation); None if out of its range."""
    d, e = np.asarray(ref["dofs"], float), np.asarray(ref[key], float)
    for i in range(len(d) - 1):
        if d[i] <= dofs <= d[i + 1]:
            t = (np.log(dofs) - np.log(d[i])) / max(np.log(d[i + 1]) - np.log(d[i]), 1e-12)
            return float(np.exp(np.log(e[i]) + t * (np.log(e[i + 1]) - np.log(e[i]))))
    return None


def compare(amr: dict, uniform: dict, err_amr: dict, key: str = "rmse_inr") -> dict:
    """DOF reduction vs uniform refinement at equal error, for the final PruningAMR mesh and after each
    iteration (log-log interpolation of the uniform curve), and error-driven AMR at equal DOFs."""
    per_iter = []
    for d, e in zip(amr["dofs"], amr[key]):
        need = dofs_at_error(uniform, e, key)
        per_iter.append({"dofs": d, key: e, "uniform_dofs_at_equal_error": need,
                         "dof_reduction_vs_uniform": None if need is None else 1.0 - d / need})
    final = per_iter[-1]
    reds = [p["dof_reduction_vs_uniform"] for p in per_iter[2:] if p["dof_reduction_vs_uniform"] is not None]
    return {**final, "best_dof_reduction_vs_uniform_over_iterations": max(reds) if reds else None,
            "per_iteration": per_iter,
            "uniform_rmse_at_equal_dofs": error_at_dofs(uniform, final["dofs"], key),
            "error_amr_rmse_at_equal_dofs": error_at_dofs(err_amr, final["dofs"], key),
            "error_amr_dofs_at_equal_error": dofs_at_error(err_amr, final[key], key)}


def run_amr_suite(name: str, field: InrField, domain: np.ndarray, truth, configs: dict, uniform_levels: range,
                  base: int, preview: bool, n_rmse: int) -> dict:
    """Uniform levels, PruningAMR for each config, error-driven AMR up to the largest PruningAMR budget."""
    print(f"[{name}] uniform levels {list(uniform_levels)}", file=sys.stderr)
    uni = curve([uniform_mesh(domain, lv, base) for lv in uniform_levels], field, truth, n_rmse)
    out = {"uniform": {"levels": list(uniform_levels), **uni}, "pruning_amr": {}}
    budget = 0
    for cname, cfg in configs.items():
        print(f"[{name}] PruningAMR {cname}", file=sys.stderr)
        res = pruning_amr(field, domain, cfg, keep_meshes=True)
        c = curve(res.meshes, field, truth, n_rmse)
        out["pruning_amr"][cname] = {"config": asdict(cfg), "seconds": res.seconds, "iterations": res.iterations,
                                     "hanging": res.mesh.num_hanging, "history": res.history, **c}
        budget = max(budget, res.mesh.dofs)
        if preview:
            path = RESULTS / f"amr_preview_{name}_{cname}.png"
            preview_png(res.mesh, vertex_values(field, res.mesh), path,
                        title=f"PruningAMR {name} ({cname}): {res.mesh.dofs} DOFs")
    print(f"[{name}] error-driven AMR to {budget} DOFs", file=sys.stderr)
    ea = error_amr(field, domain, dof_budget=budget, base=base, keep_meshes=True, progress=True)
    step = max(1, len(ea.meshes) // 25)
    picked = ea.meshes[::step] + ([ea.meshes[-1]] if (len(ea.meshes) - 1) % step else [])
    out["error_amr"] = {"seconds": ea.seconds, **curve(picked, field, truth, n_rmse)}
    out["comparison"] = {cname: {k: compare(c, out["uniform"], out["error_amr"], k)
                                 for k in (["rmse_inr", "rmse_true"] if truth is not None else ["rmse_inr"])}
                         for cname, c in out["pruning_amr"].items()}
    return out


def plot(result: dict, name: str, keys=("rmse_inr", "rmse_true")) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if result["uniform"].get(k) and result["uniform"][k][0] is not None]
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.loglog(result["uniform"]["dofs"], result["uniform"][key], "k-o", label="uniform")
        ax.loglog(result["error_amr"]["dofs"], result["error_amr"][key], "-s", ms=3, label="error-driven AMR")
        for cname, c in result["pruning_amr"].items():
            ax.loglog(c["dofs"], c[key], "-^", label=f"PruningAMR {cname}")
        ax.set_xlabel("DOFs (unique vertices)")
        ax.set_ylabel(f"RMSE vs {'INR' if key == 'rmse_inr' else 'ground truth'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"PruningAMR benchmark: {name}")
    fig.tight_layout()
    path = RESULTS / f"amr_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="GPU-scale training and refinement")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: small batched ops)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-3d", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    full = args.full
    t_start = time.perf_counter()
    report: dict = {"benchmark": "amr", "full": full, "seed": args.seed, "threads": args.threads,
                    "device": "cpu", "torch": torch.__version__, "cases": {}}
    domain2 = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    sig = AnalyticSignal("sin-radial", 2, params={"alpha": ALPHA})
    steps = 20000 if full else 3000
    iters = 12 if full else 8
    cap = 2_000_000 if full else 20_000  # max elements: keeps the CPU default within minutes
    relu_cfgs = {"default": PruningAMRConfig(max_iters=iters, max_elements=cap, seed=args.seed),
                 "eps1e-4": PruningAMRConfig(eps=1e-4, max_iters=iters, max_elements=cap, seed=args.seed)}
    siren_cfgs = {"default": PruningAMRConfig(max_iters=iters, max_elements=cap, seed=args.seed)}
    width = 64 if full else 32
    nets = {
        "relu": (relu_mlp(args.seed), 3e-3, 4096, steps, relu_cfgs),
        "siren": (siren(2, 1, hidden=(width,) * 3, omega0=30.0, generator=torch.Generator().manual_seed(args.seed)),
                  3e-4, 4096, steps if full else 2000, siren_cfgs),
    }
    for name, (model, lr, batch, n_steps, configs) in nets.items():
        print(f"[2d-{name}] training {n_steps} steps", file=sys.stderr)
        model, train_info = train(model, sig, n_steps, lr, batch, args.seed)
        field = InrField.from_model(model, {"signal": sig.metadata()})
        res = run_amr_suite(f"2d-{name}", field, domain2, true_sin_radial, configs,
                            range(0, 8 if full else 7), base=4, preview=True, n_rmse=32768 if full else 16384)
        res["training"] = train_info
        res["network"] = {"widths": model.widths, "activations": model.activations}
        report["cases"][f"2d-{name}"] = res
        plot(res, f"2d-{name}")
        write_json(RESULTS / "amr.json", report)

    vti = SHARED / "volumes" / "hydrogen.vti"
    if args.skip_3d:
        report["cases"]["3d-hydrogen"] = {"skipped": "--skip-3d"}
    elif not vti.exists():
        report["cases"]["3d-hydrogen"] = {"skipped": f"{vti} not found"}
    else:
        from inrkit.signals import load_signal

        vol = load_signal(vti)
        model = MLP([3] + [64 if full else 32] * 4 + [1], ["relu"] * 4 + ["identity"])
        _linear_init(model, args.seed)
        print("[3d-hydrogen] training a 3->32x4->1 ReLU MLP", file=sys.stderr)
        model, train_info = train(model, vol, 5000 if full else 800, 3e-3, 16384 if full else 8192, args.seed)
        field = InrField.from_model(model, {"signal": vol.metadata()})
        coords = vol.coords.double().numpy()  # voxel positions in [-1, 1]^3 (= the physical domain here)
        voxels = np.asarray(vol.denormalize(vol.values), dtype=np.float64).reshape(len(coords), -1)
        truth3 = _voxel_truth(coords, voxels)
        cfg3 = {"default": PruningAMRConfig(max_iters=8 if full else 5, max_elements=cap * (4 if full else 2),
                                            seed=args.seed)}
        res = run_amr_suite("3d-hydrogen", field, field.model_domain, truth3, cfg3, range(0, 5 if full else 4),
                            base=4, preview=True, n_rmse=16384)
        res["training"] = train_info
        res["truth"] = "RMSE vs the voxels: mesh interpolant at random voxel centres"
        report["cases"]["3d-hydrogen"] = res
        plot(res, "3d-hydrogen")
    report["seconds"] = time.perf_counter() - t_start
    write_json(RESULTS / "amr.json", report)
    _summary(report)


def _voxel_truth(coords: np.ndarray, voxels: np.ndarray):
    """Ground truth: trilinear interpolation of the voxels (their grid points in [-1, 1]^3, axis k = coordinate k)."""
    from scipy.interpolate import RegularGridInterpolator

    centres = np.unique(coords[:, 0])
    n = len(centres)
    interp = RegularGridInterpolator((centres,) * 3, voxels.reshape(n, n, n, -1), method="linear")

    def truth(x: np.ndarray) -> np.ndarray:
        return interp(np.clip(x, centres[0], centres[-1]))

    return truth


def _summary(report: dict) -> None:
    for case, res in report["cases"].items():
        if "comparison" not in res:
            continue
        for cname, comp in res["comparison"].items():
            c = comp["rmse_inr"]
            red, best = c["dof_reduction_vs_uniform"], c["best_dof_reduction_vs_uniform_over_iterations"]
            ms = [h["ms_per_element"] for h in res["pruning_amr"][cname]["history"]]
            pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
            print(f"{case:14s} {cname:8s} final dofs={c['dofs']:7d} rmse_inr={c['rmse_inr']:.3e} "
                  f"reduction vs uniform: final {pct(red)}, best iteration {pct(best)}; "
                  f"error-AMR rmse at equal dofs {c['error_amr_rmse_at_equal_dofs']}; "
                  f"ms/element {min(ms):.2f}-{max(ms):.2f}")
    print(f"total {report['seconds']:.0f} s -> {RESULTS / 'amr.json'}")


if __name__ == "__main__":
    main()
