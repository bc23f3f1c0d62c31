"""The measurements behind ``--arch auto``: grid layouts against their size on the tuning inputs.

Each row fits one grid-encoded model (:func:`inrkit.models.grid`) for a fixed number of steps on one thread and
records its PSNR with float16 weights and its float16 size against the raw data (8-bit pixels, the volume's own
sample type). The tuning inputs are kodim05 and kodim13 (Kodak, full size; kodim13 is the hardest Kodak image for
these models) and the two volumes of ../shared/data; bench/realdata.py then checks the chosen rule on inputs
that were not used here.

    python bench/auto_rule.py            # about 25 minutes on one thread
    python bench/auto_rule.py --quick    # the rows of the chosen rule only
    python bench/auto_rule.py --resume   # keep the fixed-layout rows already measured
Writes bench/results/auto_rule.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from inrkit.models.mlp import grid
from inrkit.signals import load_signal
from inrkit.train import FitConfig, fit
from inrkit.utils import run_environment

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "auto_rule.json"

HASHED = {"levels": 8, "features": 2}
ROWS: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # input, grid fields (+ hidden), fit settings, part of the chosen rule
    ("kodim13", {**HASHED, "table_size": 1 << 14, "hidden": (64, 64)}, {"lr": 3e-3}, False),
    ("kodim13", {**HASHED, "table_size": 1 << 14, "hidden": (32, 32)}, {"lr": 3e-3}, False),
    ("kodim13", {**HASHED, "table_size": 1 << 14, "hidden": (32, 32)}, {"lr": 1e-3, "encoding_lr": 0.3}, False),
    ("kodim13", {**HASHED, "table_size": 24000, "hidden": (32, 32)}, {"lr": 3e-3}, False),
    ("kodim13", {**HASHED, "table_size": 1 << 15, "hidden": (64, 64)}, {"lr": 1e-3}, False),
    ("kodim13", {"levels": 6, "features": 1, "base": 12, "finest": 384, "table_size": 385**2, "hidden": (64, 64)},
     {"lr": 1e-3}, False),
    ("kodim13", "auto", {}, True),
    ("kodim05", {**HASHED, "table_size": 1 << 14, "hidden": (64, 64)}, {"lr": 1e-3}, False),
    ("kodim05", {**HASHED, "table_size": 1 << 14, "hidden": (64, 64)}, {"lr": 3e-3}, False),
    ("kodim05", {"levels": 6, "features": 1, "base": 12, "finest": 384, "table_size": 385**2, "hidden": (64, 64)},
     {"lr": 1e-3}, False),
    ("kodim05", {"levels": 6, "features": 1, "base": 12, "finest": 384, "table_size": 385**2, "hidden": (32, 32)},
     {"lr": 1e-3}, False),
    ("kodim05", "auto", {}, True),
    ("ironProt", {"levels": 6, "features": 2, "base": 4, "finest": 32, "table_size": 33**3, "hidden": (64, 64)},
     {"lr": 1e-3}, False),
    ("ironProt", {"levels": 6, "features": 1, "base": 3, "finest": 28, "table_size": 29**3, "hidden": (32, 32)},
     {"lr": 1e-3}, False),
    ("ironProt", {"levels": 6, "features": 2, "base": 2, "finest": 22, "table_size": 23**3, "hidden": (32, 32)},
     {"lr": 3e-3}, False),
    ("ironProt", "auto", {}, True),
    ("hydrogen", "auto", {}, True),
]
INPUTS = {"kodim05": SHARED / "kodak" / "kodim05.png", "kodim13": SHARED / "kodak" / "kodim13.png",
          "ironProt": SHARED / "volumes" / "ironProt.vtk", "hydrogen": SHARED / "volumes" / "hydrogen.vti"}


def run_row(name: str, fields: dict[str, Any] | str, fit_kw: dict[str, Any], steps: int) -> dict[str, Any]:
    """One fit; its PSNR with float16 weights and its float16 size against the raw data."""
    from inrkit.api import ModelSpec, resolve_spec, round_weights
    from inrkit.metrics import raw_bytes

    signal = load_signal(INPUTS[name])
    if fields == "auto":
        spec, choice = resolve_spec(ModelSpec(), signal)
        assert choice is not None
        model = spec.build(signal.dim, signal.out_dim, torch.Generator().manual_seed(0))
        config = choice.fit_config(FitConfig(progress=False, log_every=100))
        layout: dict[str, Any] = {"auto": choice.summary()}
    else:
        kw = dict(fields)
        hidden = kw.pop("hidden")
        model = grid(signal.dim, signal.out_dim, hidden, generator=torch.Generator().manual_seed(0), **kw)
        config = FitConfig(steps=steps, progress=False, log_every=100, **fit_kw)
        layout = {"grid": {**kw, "hidden": list(hidden)}, "fit": fit_kw}
    start = time.perf_counter()
    result = fit(model, signal, config)
    seconds = time.perf_counter() - start
    round_weights(result.model, "float16")
    raw = raw_bytes(signal.metadata()) or 0
    params = int(result.model.num_params())
    psnr = float(signal.evaluate(result.model)["psnr"])
    return {"input": name, **layout, "steps": result.steps, "params": params, "raw_bytes": raw,
            "weights_ratio_f16": round(2 * params / raw, 4), "psnr_f16": round(psnr, 3), "seconds": round(seconds, 1)}


CHOOSING = ROOT / "docs" / "choosing.md"
BEGIN, END = "<!-- auto-rule:begin -->", "<!-- auto-rule:end -->"


def markdown(results: dict[str, Any]) -> str:
    """The table of docs/choosing.md: one row per fit."""
    lines = ["| input | layout | MLP | lr | weights / raw bytes | PSNR (dB, float16) |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if "auto" in r:
            g, fit_kw = r["auto"], {"lr": r["auto"]["lr"]}
            name = "**auto**: "
        else:
            g, fit_kw, name = r["grid"], r["fit"], ""
        dim = 3 if r["input"] in ("ironProt", "hydrogen") else 2
        dense = g.get("finest") is not None and g["table_size"] >= (g["finest"] + 1) ** dim
        layout = (f"{name}{g['levels']} levels x {g['features']}, "
                  + (f"dense to {g['finest']}" if dense else f"hashed, table {g['table_size']}"))
        lr = f"{fit_kw['lr']:g}" + (f" (tables {fit_kw['encoding_lr']:g})" if fit_kw.get("encoding_lr") else "")
        lines.append(f"| {r['input']} | {layout} | {'x'.join(str(h) for h in g['hidden'])} | {lr} | "
                     f"{r['weights_ratio_f16']:.3f} | {r['psnr_f16']:.2f} |")
    return "\n".join(lines)


def with_table(doc: str, results: dict[str, Any]) -> str:
    """``doc`` with the generated table between the auto-rule markers."""
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the rows of the chosen rule")
    parser.add_argument("--steps", type=int, default=2000, help="steps of the fixed-layout rows")
    parser.add_argument("--resume", action="store_true", help="keep the fixed-layout rows already in the results")
    parser.add_argument("--docs", action="store_true", help="write the table of the results into docs/choosing.md")
    args = parser.parse_args()
    if args.docs:
        CHOOSING.write_text(with_table(CHOOSING.read_text(), json.loads(RESULTS.read_text())))
        return
    torch.set_num_threads(1)
    env = run_environment(threads=1)
    done = {_key(r): r for r in json.loads(RESULTS.read_text())["rows"]} if args.resume and RESULTS.exists() else {}
    rows = []
    for name, fields, fit_kw, chosen in ROWS:
        if (args.quick and not chosen) or not INPUTS[name].exists():
            continue
        key = _key({"input": name, "grid": fields, "fit": fit_kw})
        row = done.get(key) if fields != "auto" else None
        rows.append(row or {**run_row(name, fields, fit_kw, args.steps), "chosen_rule": chosen})
        print(json.dumps(rows[-1]), flush=True)
        RESULTS.write_text(json.dumps({"name": "auto_rule", "description": __doc__.split("\n")[0],
                                       "environment": env, "rows": rows}, indent=1) + "\n")


def _key(row: dict[str, Any]) -> str:
    """What identifies a fixed-layout row (its input, grid fields and fit settings)."""
    grid_fields = row.get("grid")
    if isinstance(grid_fields, dict):
        grid_fields = {k: list(v) if isinstance(v, tuple) else v for k, v in grid_fields.items()}
    return json.dumps([row.get("input"), grid_fields, row.get("fit")], sort_keys=True)


if __name__ == "__main__":
    main()
