"""PruningAMR on 4D series: how the outcome depends on the network that represents the series.

For each NETWORK spec ``width,depth,steps,seed``: train a 4->width^depth->1 ReLU MLP on a 4D case of bench/amr.py
(the same data, training and pinned fp32 as there), mesh it with the default PruningAMR slice protocol (9 time
slices, ``PruningAMRConfig()``) and compare with uniform slice meshes (levels 0-4) at equal RMSE. This is the study
behind the choice of bench/amr.py's 4D networks (docs/amr.md, "4D network"). Writes bench/results/amr_networks.json
(rows are appended to an existing file, so several invocations build one table) and the plot amr_networks.png.

    OMP_NUM_THREADS=1 .venv/bin/python bench/amr_networks.py 4d-vortex 48,4,6000,0 64,4,6000,0   # ~4 min each
"""
from __future__ import annotations

import argparse
import json
import time
import types
from pathlib import Path

import amr  # bench/amr.py, beside this script: the cases, training and curves
import torch

from inrkit.amr import PruningAMRConfig
from inrkit.amr.timeslices import parse_times, space_base
from inrkit.utils import run_environment, write_json

OUT = amr.RESULTS / "amr_networks.json"


def run(name: str, width: int, depth: int, steps: int, seed: int) -> dict:
    """Train one network on case ``name`` and compare its default slice mesh with uniform slices."""
    b = amr.build_4d(types.SimpleNamespace(full=False, series=None), seed, name, [width] * depth, steps)
    times = parse_times("auto", b.domain[-1])
    base = space_base("auto", b.domain[:-1], 2)
    uniform = amr.uniform_slices(b.field, b.domain, times, base, list(range(5)))
    r = amr.run_slices(b.field, b.domain, PruningAMRConfig(progress=False), times, 16384)
    cmp = amr.compare(r["dofs"], r["true_dofs"], r["rmse_inr"], uniform, None, "rmse_inr")
    need = cmp["uniform_dofs_at_equal_error"]
    return {"case": name, "width": width, "depth": depth, "steps": steps, "seed": seed,
            "psnr": b.training.get("psnr"), "dofs": r["dofs"], "rmse_inr": r["rmse_inr"],
            "uniform_dofs_at_equal_rmse": need, "dof_change_vs_uniform": None if need is None else r["dofs"] / need - 1,
            "uniform": uniform}


def plot(report: dict, path: Path) -> Path:
    """DOF change against uniform vs the network's PSNR, one marker per network (colour: width, shape: case)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = {32: "tab:blue", 48: "tab:orange", 64: "tab:green"}
    for case, marker in (("4d-vortex", "o"), ("4d-sphere", "^")):
        for width, colour in colours.items():
            rows = [r for r in report["rows"] if r["case"] == case and r["width"] == width]
            if rows:
                ax.scatter([r["psnr"] for r in rows], [100 * r["dof_change_vs_uniform"] for r in rows], c=colour,
                           marker=marker, label=f"{case}, width {width}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("network PSNR on its series (dB)")
    ax.set_ylabel("PruningAMR DOFs vs uniform at equal RMSE (%)")
    ax.set_title("default PruningAMR on 4D time slices: one point per network")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(amr.FOUR_D))
    ap.add_argument("networks", nargs="*", metavar="WIDTH,DEPTH,STEPS,SEED", help="none: only redraw the plot")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    report = (json.loads(out.read_text()) if out.exists() else
              {"benchmark": "amr_networks", "device": "cpu", "threads": 1, "torch": torch.__version__,
               "environment": run_environment(threads=1),
               "notes": ["dof_change_vs_uniform = PruningAMR DOFs / uniform DOFs at equal RMSE - 1 (negative: fewer)",
                         "DOFs summed over the 9 default time slices; RMSE = RMS of the per-slice RMSEs"],
               "rows": []})
    for spec in args.networks:
        width, depth, steps, seed = (int(v) for v in spec.split(","))
        t0 = time.perf_counter()
        row = run(args.case, width, depth, steps, seed)
        row["seconds"] = time.perf_counter() - t0
        report["rows"] = [r for r in report["rows"] if (r["case"], r["width"], r["depth"], r["steps"], r["seed"])
                          != (row["case"], width, depth, steps, seed)] + [row]
        write_json(out, report)
        print(json.dumps({k: v for k, v in row.items() if k != "uniform"}), flush=True)
    print(plot(report, out.with_suffix(".png")))


if __name__ == "__main__":
    main()
