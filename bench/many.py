"""Many signals: batched fitting (``inrkit.train.batched.fit_many``) against one fit at a time.

Part 1, throughput in signals per minute: ``--crops`` crops of ``--size``x``--size`` pixels from
the Kodak images (``../shared/data/kodak``; positions seeded, written as PNG files first, outside
the timings), each fitted by a SIREN ``--hidden`` (3 hidden layers of 32, omega 30, the seed-0
initialisation ``inrkit fit`` uses) for exactly ``--steps`` full-batch Adam steps (lr 1e-3 cosine,
the CLI defaults; precision fp32 in every arm by default (``--precision``), so all arms compute the same
models; ``--compile`` compiles the batched arm's step, ``--threads`` sets the torch threads of every arm). Arms:

  batched     fit_many over all crops, ``--batch`` signals per call: load, fit, evaluate, save
  one-by-one  inrkit.api.fit_file per crop in this process (load, fit, evaluate, save)
  processes   one ``inrkit fit ... --json`` process per crop (start-up included), one after another

Every arm counts wall time from loading the first PNG to the last saved model. The two slow arms
run on documented subsets (the first ``--single-subset`` / ``--cli-subset`` crops) and report
their per-signal rate; their PSNRs are compared crop by crop with the batched models.

Part 2, ``meta-encode`` of a ``--meta-members``-member vortex series (``inrkit.meta.encode_series``)
from a short meta-learned initialisation: batched (all members adapt at once) vs member by member,
the same steps: seconds and PSNR.

Run ALONE on the machine (timings), one thread:

    OMP_NUM_THREADS=1 .venv/bin/python bench/many.py              # CPU default, ~6 min here
    OMP_NUM_THREADS=1 .venv/bin/python bench/many.py --quick      # smoke run, ~30 s
    .venv/bin/python bench/many.py --threads 2 --compile --name many_2threads_compile   # both cores
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from inrkit.api import ModelSpec, fit_file
from inrkit.meta.finetune import FinetuneConfig, encode_series
from inrkit.meta.pretrain import MetaConfig, meta_train
from inrkit.meta.simulate import SIMULATORS
from inrkit.models.io import save_model
from inrkit.models.mlp import parse_hidden
from inrkit.signals import load_signal
from inrkit.signals.series import VolumeSeries
from inrkit.train import FitConfig, fit, fit_many
from inrkit.train.batched import CPU_STACK_BYTES, stack_size
from inrkit.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 5.0


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    p.add_argument("--crops", type=int, default=256)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--hidden", default="32x3")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=256, help="signals per fit_many call (it stacks a cache-sized share)")
    p.add_argument("--sweep", default="8,32,128", help="stack sizes timed per member and step (empty: none)")
    p.add_argument("--sweep-steps", type=int, default=20)
    p.add_argument("--single-subset", type=int, default=32, help="crops fitted one by one in-process")
    p.add_argument("--cli-subset", type=int, default=6, help="crops fitted by separate inrkit fit processes")
    p.add_argument("--meta-members", type=int, default=20)
    p.add_argument("--meta-size", type=int, default=32)
    p.add_argument("--meta-hidden", default="64x3")
    p.add_argument("--meta-steps", type=int, default=30, help="fine-tuning steps per member")
    p.add_argument("--meta-outer-steps", type=int, default=30, help="meta-training steps of the initialisation")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="training precision of every arm (auto: bf16 on a CPU with native bf16, as a user gets)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the batched arm's training step (the one-by-one arm stays eager: compiling "
                        "each single model costs more than it saves)")
    p.add_argument("--name", default=None, help="result file stem (default many, many_quick with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: few crops, steps and members")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    if a.quick:
        a.crops, a.steps, a.batch, a.single_subset, a.cli_subset = 16, 20, 16, 4, 1
        a.meta_members, a.meta_size, a.meta_steps, a.meta_outer_steps = 4, 16, 10, 3
        a.sweep, a.sweep_steps = "4,8", 4
    return a


def make_crops(folder: Path, n: int, size: int, out: Path, seed: int) -> list[Path]:
    """``n`` crops (seeded positions, round robin over the images) written as PNG files."""
    from PIL import Image

    images = sorted(folder.glob("kodim*.png"))
    if not images:
        raise SystemExit(f"no Kodak images in {folder} (see ../shared/data/README.md)")
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    paths = []
    for k in range(n):
        img = arrays[k % len(arrays)]
        y, x = (int(rng.integers(0, s - size + 1)) for s in img.shape[:2])
        path = out / f"crop{k:04d}_{images[k % len(images)].stem}.png"
        Image.fromarray(img[y:y + size, x:x + size]).save(path)
        paths.append(path)
    return paths


def arm_batched(paths: list[Path], spec: ModelSpec, cfg: FitConfig, batch: int, out: Path) -> dict:
    t0 = time.perf_counter()
    psnrs, fit_seconds = [], 0.0
    for start in range(0, len(paths), batch):
        chunk = paths[start:start + batch]
        signals = [load_signal(p, seed=cfg.seed) for p in chunk]
        models = [spec.build(s.dim, s.out_dim, torch.Generator().manual_seed(cfg.seed)) for s in signals]
        t = time.perf_counter()
        results = fit_many(models, signals, cfg)
        fit_seconds += time.perf_counter() - t
        for p, s, r in zip(chunk, signals, results):
            save_model(r.model.cpu(), out / f"{p.stem}.safetensors", signal=s.metadata(), extra={"steps": r.steps})
            psnrs.append(float(r.metrics["psnr"]))
    seconds = time.perf_counter() - t0
    return {"signals": len(paths), "seconds": seconds, "fit_seconds": fit_seconds,
            "signals_per_minute": 60.0 * len(paths) / seconds, "psnr": psnrs}


def arm_one_by_one(paths: list[Path], spec: ModelSpec, cfg: FitConfig, out: Path) -> dict:
    t0 = time.perf_counter()
    psnrs = [float(fit_file(p, out / f"{p.stem}.safetensors", spec, cfg)[1]["psnr"]) for p in paths]
    seconds = time.perf_counter() - t0
    return {"signals": len(paths), "seconds": seconds, "signals_per_minute": 60.0 * len(paths) / seconds,
            "psnr": psnrs}


def arm_processes(paths: list[Path], a: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    exe = [sys.executable, "-m", "inrkit"]
    t0 = time.perf_counter()
    psnrs = []
    for p in paths:
        cmd = [*exe, "fit", str(p), "-o", str(out / f"{p.stem}.safetensors"), "--arch", "siren", "--hidden", a.hidden,
               "--steps", str(a.steps), "--precision", a.precision, "--seed", str(a.seed), "--no-progress", "--json"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        psnrs.append(float(json.loads(done.stdout)["psnr"]))
    seconds = time.perf_counter() - t0
    return {"signals": len(paths), "seconds": seconds, "signals_per_minute": 60.0 * len(paths) / seconds,
            "psnr": psnrs, "command": " ".join(cmd[2:])}


def stack_sweep(paths: list[Path], spec: ModelSpec, a: argparse.Namespace) -> dict:
    """Fit-only milliseconds per member and step: single fits, and stacks of each size in ``--sweep``.

    Differential timing (``--sweep-steps`` + 5 steps minus 5 steps), so set-up and evaluation cancel."""
    signals = [load_signal(p, seed=a.seed) for p in paths]
    model = spec.build(signals[0].dim, signals[0].out_dim, torch.Generator().manual_seed(a.seed))

    def timed(fn, n: int) -> float:
        out = []
        for steps in (5, 5 + a.sweep_steps):
            cfg = FitConfig(steps=steps, precision="fp32", progress=False, evaluate=False)
            t = time.perf_counter()
            fn(cfg)
            out.append(time.perf_counter() - t)
        return 1e3 * (out[1] - out[0]) / (a.sweep_steps * n)

    rows = {"single": timed(lambda cfg: [fit(model.copy(), s, cfg) for s in signals[:8]], 8)}
    for size in [int(v) for v in a.sweep.split(",") if v]:
        n = max(size, min(64, len(signals)))
        sub = signals[:n]
        rows[f"stack_{size}"] = timed(lambda cfg: fit_many([model] * len(sub), sub, cfg, max_stack=size), n)
    return {"ms_per_member_step": rows, "steps": a.sweep_steps,
            "note": "fit-only time per member and step, (steps+5) minus 5 steps; single = inrkit.train.fit"}


def meta_part(a: argparse.Namespace, out: Path) -> dict:
    hidden = tuple(parse_hidden(a.meta_hidden))
    raw = SIMULATORS["vortex"](a.meta_size, a.meta_members, seed=a.seed)
    series = VolumeSeries.from_arrays(raw, name="vortex")
    t = time.perf_counter()
    meta = meta_train(series, MetaConfig(hidden=hidden, outer_steps=a.meta_outer_steps, seed=a.seed, progress=False))
    meta_seconds = time.perf_counter() - t
    cfg = FinetuneConfig(steps=a.meta_steps, lr=1e-3, progress=False)
    arms = {}
    for name, batched in (("batched", True), ("member_by_member", False)):
        t = time.perf_counter()
        summary = encode_series(series, meta.model, out / name, cfg, batched=batched)
        wall = time.perf_counter() - t
        arms[name] = {"seconds": wall, "training_seconds": summary["total_seconds"],
                      "mean_psnr": summary["mean_psnr"], "min_psnr": summary["min_psnr"],
                      "psnr": [m["psnr"] for m in summary["members"]]}
    diff = np.abs(np.subtract(arms["batched"]["psnr"], arms["member_by_member"]["psnr"]))
    hidden_max = max(hidden)
    stack = stack_size(len(series), int(np.prod(series.dims)), hidden_max, None)
    return {"series": {"kind": "vortex", "dims": list(series.dims), "members": len(series)},
            "members_per_stack": stack,
            "hidden": list(hidden), "finetune_steps": a.meta_steps, "lr": 1e-3,
            "init": {"meta_outer_steps": a.meta_outer_steps, "meta_seconds": meta_seconds},
            **arms, "speedup": arms["member_by_member"]["seconds"] / arms["batched"]["seconds"],
            "max_psnr_diff_db": float(diff.max())}


def _psnr_compare(batched: list[float], other: list[float]) -> dict:
    diff = np.abs(np.subtract(batched[:len(other)], other))
    return {"max_abs_psnr_diff_db": float(diff.max()), "mean_psnr_batched_subset": float(np.mean(batched[:len(other)])),
            "mean_psnr": float(np.mean(other))}


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    arms = result["throughput"]["arms"]
    names = list(arms)
    rates = [arms[n]["signals_per_minute"] for n in names]
    bars = axes[0].bar(names, rates, color=["tab:blue", "tab:orange", "tab:gray"][:len(names)])
    for b, r, n in zip(bars, rates, names):
        axes[0].text(b.get_x() + b.get_width() / 2, r, f"{r:.0f}/min\n{arms[n]['signals']} crops", ha="center",
                     va="bottom", fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylim(min(rates) / 2, max(rates) * 4)
    axes[0].set_ylabel("signals per minute (log)")
    t = result["throughput"]
    axes[0].set_title(f"{t['crops']} crops {t['size']}x{t['size']}, SIREN {t['hidden']}, {t['steps']} steps, "
                      f"{result['environment']['threads']} thread\nbatched / one-by-one = "
                      f"{t['ratio_batched_vs_one_by_one']:.2f}x, / processes = {t['ratio_batched_vs_processes']:.1f}x",
                      fontsize=9)
    m = result["meta_encode"]
    names = ["batched", "member_by_member"]
    secs = [m[n]["seconds"] for n in names]
    bars = axes[1].bar(names, secs, color=["tab:blue", "tab:orange"])
    for b, s, n in zip(bars, secs, names):
        axes[1].text(b.get_x() + b.get_width() / 2, s, f"{s:.1f} s\n{m[n]['mean_psnr']:.2f} dB", ha="center",
                     va="bottom", fontsize=8)
    axes[1].set_ylabel("seconds")
    axes[1].set_ylim(0, max(secs) * 1.3)
    axes[1].set_title(f"meta-encode, vortex {m['series']['members']} x {m['series']['dims'][0]}^3, "
                      f"SIREN {'x'.join(map(str, m['hidden']))}, {m['finetune_steps']} steps\n"
                      f"{m['speedup']:.2f}x, max PSNR diff {m['max_psnr_diff_db']:.1e} dB", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    spec = ModelSpec("siren", tuple(parse_hidden(a.hidden)), 30.0)
    cfg = FitConfig(steps=a.steps, precision=a.precision, seed=a.seed, progress=False)
    batched_cfg = replace(cfg, compile=a.compile)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for d in ("crops", "batched", "one", "proc", "meta"):
            (work / d).mkdir()
        paths = make_crops(Path(a.data), a.crops, a.size, work / "crops", a.seed)
        warm = FitConfig(steps=3, precision=a.precision, seed=a.seed, progress=False)  # first-call costs, untimed
        arm_batched(paths[:2], spec, warm, 2, work / "batched")  # (compiling is part of the batched arm's time)
        arm_one_by_one(paths[:1], spec, warm, work / "one")
        print(f"{len(paths)} crops; batched ...", file=sys.stderr, flush=True)
        batched = arm_batched(paths, spec, batched_cfg, a.batch, work / "batched")
        print(f"batched: {batched['signals_per_minute']:.1f}/min; one by one ...", file=sys.stderr, flush=True)
        one = arm_one_by_one(paths[:a.single_subset], spec, cfg, work / "one")
        print(f"one by one: {one['signals_per_minute']:.1f}/min; processes ...", file=sys.stderr, flush=True)
        proc = arm_processes(paths[:a.cli_subset], a, work / "proc")
        print(f"processes: {proc['signals_per_minute']:.1f}/min; sweep ...", file=sys.stderr, flush=True)
        sweep = stack_sweep(paths[:max([64, *[int(v) for v in a.sweep.split(",") if v]])], spec, a) if a.sweep else None
        print(f"sweep: {sweep and sweep['ms_per_member_step']}; meta-encode ...", file=sys.stderr, flush=True)
        meta = meta_part(a, work / "meta")
    throughput = {
        "crops": a.crops, "size": a.size, "hidden": a.hidden, "steps": a.steps, "batch": a.batch,
        "members_per_stack": stack_size(a.batch, a.size * a.size, max(spec.widths), None),
        "cpu_stack_bytes": CPU_STACK_BYTES,
        "fit": {"lr": cfg.lr, "schedule": cfg.schedule, "precision": cfg.precision, "full_batch": True,
                "seed": a.seed, "batched_compile": a.compile},
        "subsets": {"one_by_one": a.single_subset, "processes": a.cli_subset,
                    "note": "the slow arms fit the first N crops; rates are per signal"},
        "arms": {"batched": batched, "one_by_one": one, "processes": proc},
        "ratio_batched_vs_one_by_one": batched["signals_per_minute"] / one["signals_per_minute"],
        "ratio_batched_vs_processes": batched["signals_per_minute"] / proc["signals_per_minute"],
        "psnr_one_by_one_vs_batched": _psnr_compare(batched["psnr"], one["psnr"]),
        "psnr_processes_vs_batched": _psnr_compare(batched["psnr"], proc["psnr"]),
        "target_ratio": TARGET_RATIO,
    }
    throughput["target_met"] = throughput["ratio_batched_vs_one_by_one"] >= TARGET_RATIO
    result = {
        "benchmark": "many", "threads": a.threads, "torch": torch.__version__,
        "claim": f"batched fitting >= {TARGET_RATIO:g}x one-at-a-time in-process (signals/minute), same PSNR per model",
        "config": {k: v for k, v in vars(a).items() if k not in ("out", "data")},
        "throughput": throughput, "stack_sweep": sweep, "meta_encode": meta,
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "threads": a.threads,
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
                        "loadavg_end": list(os.getloadavg()), "platform": platform.platform()},
    }
    out = Path(a.out)
    tag = a.name or ("many_quick" if a.quick else "many")
    write_json(out / f"{tag}.json", result)
    _plot(result, out / f"{tag}.png")
    t = throughput
    print(f"batched {batched['signals_per_minute']:.1f}/min, one-by-one {one['signals_per_minute']:.1f}/min, "
          f"processes {proc['signals_per_minute']:.1f}/min: {t['ratio_batched_vs_one_by_one']:.2f}x, "
          f"{t['ratio_batched_vs_processes']:.1f}x; meta-encode {meta['batched']['seconds']:.1f} s vs "
          f"{meta['member_by_member']['seconds']:.1f} s; wrote {out / (tag + '.json')}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
