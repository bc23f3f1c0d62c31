#!/usr/bin/env bash
# One device check, one JSON: on a machine with a CUDA GPU it runs the CUDA tests and times `inrkit fit`
# (SIREN and grid), fit_many batched against one at a time, the latent-grid image codec's encode and decode,
# and NeRF training steps, in at most about 8 minutes; on a CPU it runs the same parts at tiny sizes
# (under 2 minutes) and reports the GPU-only parts as skipped.
#
#   bench/device_check.sh                       # writes bench/results/device_check_<cuda|cpu>.json
#   bench/device_check.sh --out /tmp/dc.json    # elsewhere ($OUT/device_check.json on the device tool)
#
# Inputs come from `inrkit sample` (bundled kodim23 and the lego scene), so the check needs no data folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" - "$@" <<'PYTHON'
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import torch

ap = argparse.ArgumentParser(prog="bench/device_check.sh")
ap.add_argument("--out", default=None, help="JSON to write (default bench/results/device_check_<device>.json)")
ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
args = ap.parse_args()
cuda = torch.cuda.is_available()
device = "cuda" if cuda else "cpu"
t_start = time.perf_counter()
# sizes: (GPU, CPU)
S = {"siren_steps": (1000, 5), "grid_steps": (1000, 10), "many_crops": (64, 4), "many_steps": (200, 10),
     "codec_preset": ("fast", "fast"), "codec_steps": (None, 10), "nerf_steps": (300, 3), "tests_timeout": (200, 1)}
size = {k: v[0 if cuda else 1] for k, v in S.items()}
report = {"benchmark": "device_check", "device": device,
          "claim": "the GPU paths run and are timed in one short script (<= 8 min on a CUDA GPU)",
          "environment": {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
                          "gpu": torch.cuda.get_device_name(0) if cuda else None, "date": time.strftime("%Y-%m-%d"),
                          "threads": torch.get_num_threads()},
          "sizes": size, "parts": {}}
work = Path(tempfile.mkdtemp(prefix="inrkit-device-check-"))
inrkit = [sys.executable, "-m", "inrkit"]


def left() -> float:
    return args.budget - (time.perf_counter() - t_start)


def run(name: str, cmd: list[str], timeout: float, parse_json: bool = True) -> dict:
    """One command, timed; its --json summary (or the tail of its output) in the report."""
    if left() < 5:
        return {"skipped": "the time budget is spent"}
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=min(timeout, left()), cwd=work)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {min(timeout, left()):.0f} s", "command": " ".join(cmd[2:])}
    row = {"wall_seconds": round(time.perf_counter() - t, 3), "exit": done.returncode,
           "command": " ".join(str(c) for c in cmd[2:] if c)}
    if done.returncode != 0:
        row["error"] = (done.stderr or done.stdout).strip()[-600:]
    elif not parse_json:
        row["stdout"] = done.stdout.strip().splitlines()[-1:] or [""]
    else:
        try:
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            row.update({k: summary[k] for k in ("psnr", "seconds", "steps", "bytes", "bpp", "params") if k in summary})
        except (ValueError, IndexError):
            row["output"] = done.stdout.strip()[-300:]
    print(f"device_check {name}: {json.dumps(row)[:300]}", file=sys.stderr, flush=True)
    return row


parts = report["parts"]
for name, target in (("kodim23", "kodim23.png"), ("lego", "lego")):
    subprocess.run([*inrkit, "sample", name, "-o", str(work / target)], check=True, capture_output=True)
crop = "128:384,256:512"

# 1. CUDA tests (the tests that skip without a GPU, and the compiled-step and codec tests on the device)
if cuda:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-x", "tests/test_omp.py", "tests/test_codec.py",
                           "tests/test_compiled_step.py", "tests/test_speed_paths.py", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, timeout=min(size["tests_timeout"], left()))
    parts["cuda_tests"] = {"exit": done.returncode, "wall_seconds": round(time.perf_counter() - t, 1),
                           "tail": done.stdout.strip().splitlines()[-3:]}
else:
    parts["cuda_tests"] = {"skipped": "no CUDA device"}

# 2. inrkit fit: SIREN 256x3 on the 256x256 crop (compile auto and off) and the grid model on the full photo
dev = ["--device", device, "--no-progress", "--json"]
for mode in ("auto", "off"):
    parts[f"fit_siren_compile_{mode}"] = run(
        f"fit siren ({mode})", [*inrkit, "fit", "kodim23.png", "--crop", crop, "-o", f"s_{mode}.safetensors",
                                "--arch", "siren", "--hidden", "256x3", "--steps", str(size["siren_steps"]),
                                "--compile", mode, *dev], 120)
parts["fit_grid"] = run("fit grid", [*inrkit, "fit", "kodim23.png", "-o", "g.safetensors", "--arch", "grid",
                                     "--steps", str(size["grid_steps"]), *dev], 120)

# 3. fit_many: batched stacks against one fit at a time (the same crops, steps and seeds)
code = f"""
import json, sys, time, numpy as np, torch
from PIL import Image
from inrkit.models.mlp import siren
from inrkit.signals.grid import ImageSignal
from inrkit.train import FitConfig, fit_many
img = np.asarray(Image.open('kodim23.png').convert('RGB'), dtype=np.float32)
rng = np.random.default_rng(0)
sig = [ImageSignal(img[y:y + 64, x:x + 64], name='c') for y, x in
       zip(rng.integers(0, 448, {size['many_crops']}), rng.integers(0, 704, {size['many_crops']}))]
cfg = FitConfig(steps={size['many_steps']}, progress=False, device='{device}')
out = {{}}
for path in ('batched', 'single', 'auto'):
    models = [siren(2, 3, [32] * 3, generator=torch.Generator().manual_seed(0)) for _ in sig]
    t = time.perf_counter()
    res = fit_many(models, sig, cfg, path=path)
    if '{device}' == 'cuda':
        torch.cuda.synchronize()
    out[path] = {{'seconds': time.perf_counter() - t, 'mean_psnr': float(np.mean([r.metrics['psnr'] for r in res])),
                 'batched': res[0].batched, 'step_path': res[0].step_path}}
print(json.dumps(out))
"""
row = run("fit_many", [sys.executable, "-c", code], 150, parse_json=False)
if row.get("exit") == 0:
    row["paths"] = json.loads(row.pop("stdout")[0])
    row["command"] = "fit_many(path=batched|single|auto) of 64x64 crops of kodim23, SIREN 32x3"
parts["fit_many"] = row

# 4. the latent-grid image codec: encode (fit + code) and decode
codec = "latent" if "latent" in subprocess.run([*inrkit, "encode", "--help"], capture_output=True, text=True).stdout \
    else "grid"
steps = ["--steps", str(size["codec_steps"])] if size["codec_steps"] else []
parts["codec_encode"] = run("encode", [*inrkit, "encode", "kodim23.png", "-o", "k.inrz", "--codec", codec,
                                       "--preset", size["codec_preset"], *steps, *dev], 150)
parts["codec_decode"] = run("decode", [*inrkit, "decode", "k.inrz", "-o", "k.png", "--json"], 60)
parts["codec_encode"]["codec"] = codec

# 5. NeRF: training steps on the lego scene (grid field)
parts["nerf_train"] = run("nerf", [*inrkit, "nerf-train", "lego", "-o", "n.safetensors", "--steps",
                                   str(size["nerf_steps"]), "--eval-views", "1", *dev], 150)
if not cuda:
    parts["gpu_timings"] = {"skipped": "no CUDA device: the parts above ran on the CPU at tiny sizes"}
report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
report["failed"] = sorted(k for k, v in parts.items() if v.get("error") or v.get("exit") not in (None, 0))
out = Path(args.out or (Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT")
                        else Path("bench/results") / f"device_check_{device}.json"))
out.parent.mkdir(parents=True, exist_ok=True)
tmp = out.with_suffix(".tmp")
tmp.write_text(json.dumps(report, indent=1) + "\n")
tmp.replace(out)
shutil.rmtree(work, ignore_errors=True)
print(json.dumps({"json": str(out), "wall_seconds": report["wall_seconds"], "failed": report["failed"]}))
sys.exit(1 if report["failed"] else 0)
PYTHON
