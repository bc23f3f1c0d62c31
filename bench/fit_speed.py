"""Fitting speed: inrkit against ``siren-pytorch`` and a textbook PyTorch SIREN loop.

All methods fit the same image with the same architecture (SIREN, 3 hidden layers of
256, omega_0 = 30, full batch, Adam, MSE) for the same number of steps, in ONE process.
The machine this runs on may be shared, so the methods are interleaved: each runs in its
own thread, but only one thread runs at a time, ``--chunk`` steps per turn, round robin.
Contention therefore hits all methods alike; per-step times are medians over chunks.
PSNR is measured after every chunk on the full image in float32 (untimed).

Methods (``same settings`` = the SIREN paper's Adam lr 1e-4, constant, for everyone):
  textbook          nn.Linear + torch.sin(30 x), Sitzmann init, float32
  siren-pytorch     siren_pytorch.SirenNet(w0 = w0_initial = 30), float32
  inrkit-fp32       inrkit.train.fit, precision fp32, compile off (the eager step)
  inrkit            inrkit.train.fit with FitConfig's defaults for precision and compile (auto: bf16 GEMMs where
                    the CPU/GPU has them; the compiled step of inrkit.train.compiled where its rule says it pays)
  inrkit-compiled   the same with compile="on"; the compile is counted in its time
  inrkit-fp32-compiled  precision fp32, compile on: the default path on a CPU without native bfloat16
  inrkit-defaults   inrkit.train.fit with its CLI defaults: lr 1e-3 cosine, precision and compile auto
  autocast-bf16     (reference, only where bf16 is native) the textbook loop under torch.autocast(bfloat16)

A second part checks the CLI case: ``inrkit fit`` of the 256x256 kodim23 crop with
SIREN 64x3, omega 30, 300 steps (CLI defaults: lr 1e-3 cosine): ``inrkit.train.fit`` with the
FitConfig the CLI builds (compile off, and the defaults), interleaved in the same way with a
plain PyTorch SIREN loop using the same schedule, all on ``--threads``; then the same three with each tool's
default threads (PyTorch: all cores; inrkit: ``inrkit.cli.default_threads()``); ``--cli`` adds one real
``inrkit fit --json`` run.

Compile cost (``--compile-cost``, on by default): the first fit step of SIREN 32x3 (64x64), 64x3 (256x256)
and 256x3 (128x128) in fresh processes with an empty inductor cache (the first run on a machine) and again
with that cache warm.

    .venv/bin/python bench/fit_speed.py --alone   # CPU default: 128x128 crop, 1 thread, ~9 min here alone
    .venv/bin/python bench/fit_speed.py --docs    # rewrite the tables of docs/speed.md from the JSON
    .venv/bin/python bench/fit_speed.py --full    # GPU scale: 512x512 image, 1000 steps

Grid part (``--grid``; writes results/fit_speed_grid.json + .png): time to 30 and 35 dB on
full kodim05 and kodim19 (768x512) and to 40 dB on hydrogen.vti for inrkit's grid model, a textbook
per-level hash-grid loop (nn.Embedding per level, same config), inrkit SIREN 256x3 (its best setting:
lr 1e-3, bf16) and siren-pytorch (lr 1e-4); grids: MLP lr 1e-2, tables 1e-1, random batches of
16384, constant lr; one run each with per-arm training-time budgets:

    OMP_NUM_THREADS=1 .venv/bin/python bench/fit_speed.py --grid      # ~25 min on one CPU thread
    .venv/bin/python bench/fit_speed.py --grid --signals kodim05 --budget-s 5 --grid-budget-s 5   # smoke
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from inrkit.metrics import psnr_from_mse
from inrkit.models.fast import bf16_supported, resolve_precision, with_precision
from inrkit.models.grid import GridConfig
from inrkit.models.mlp import siren
from inrkit.signals.grid import ImageSignal
from inrkit.train import FitConfig, fit
from inrkit.train.fit import lr_factor
from inrkit.utils import resolve_device, run_environment, write_json

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
KODIM23 = ROOT.parents[1] / "shared" / "data" / "kodak" / "kodim23.png"
CROP = (128, 384, 256, 512)  # rows 128-383, columns 256-511 of kodim23


# ---------------------------------------------------------------------- data
def load_pixels(size: int) -> tuple[np.ndarray, str]:
    """The kodim23 256x256 crop (its centred ``size`` window when smaller; tiled up when larger)."""
    if KODIM23.is_file():
        from PIL import Image

        full = np.asarray(Image.open(KODIM23).convert("RGB"), dtype=np.float32)
        r0, r1, c0, c1 = CROP
        if size > 256:  # --full: a larger window of the same picture, centred on the crop
            rc, cc = (r0 + r1) // 2, (c0 + c1) // 2
            r0 = max(0, min(rc - size // 2, full.shape[0] - size))
            c0 = max(0, min(cc - size // 2, full.shape[1] - size))
            return full[r0:r0 + size, c0:c0 + size], f"kodim23.png rows {r0}-{r0 + size - 1}, cols {c0}-{c0 + size - 1}"
        off = (256 - size) // 2
        r0, c0 = r0 + off, c0 + off
        return full[r0:r0 + size, c0:c0 + size], f"kodim23.png rows {r0}-{r0 + size - 1}, cols {c0}-{c0 + size - 1}"
    print(f"fit_speed: {KODIM23} is absent; using skimage.data.astronaut() instead", file=sys.stderr)
    from skimage import data

    img = data.astronaut().astype(np.float32)
    return img[:size, 128:128 + size], f"skimage astronaut rows 0-{size - 1}, cols 128-{127 + size}"


# --------------------------------------------------------------------- peers
class TextbookSine(nn.Module):
    """The SIREN paper's sine layer: ``sin(omega_0 * Linear(x))`` with Sitzmann's init."""

    def __init__(self, n_in: int, n_out: int, first: bool, omega: float = 30.0) -> None:
        super().__init__()
        self.omega, self.linear = omega, nn.Linear(n_in, n_out)
        bound = 1.0 / n_in if first else math.sqrt(6.0 / n_in) / omega
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega * self.linear(x))


def textbook_siren(hidden: list[int], omega: float = 30.0) -> nn.Module:
    """A plain PyTorch SIREN as in the paper's reference code (linear last layer)."""
    widths = [2, *hidden]
    layers: list[nn.Module] = [TextbookSine(a, b, i == 0, omega) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
    last = nn.Linear(widths[-1], 3)
    with torch.no_grad():
        bound = math.sqrt(6.0 / widths[-1]) / omega
        last.weight.uniform_(-bound, bound)
    return nn.Sequential(*layers, last)


def siren_pytorch_net(hidden: list[int], omega: float = 30.0) -> nn.Module:
    from siren_pytorch import SirenNet

    return SirenNet(dim_in=2, dim_hidden=hidden[0], dim_out=3, num_layers=len(hidden), w0=omega, w0_initial=omega)


# ------------------------------------------------------------ interleaving
class Turn:
    """One method in its own thread; it runs only while it holds the baton."""

    def __init__(self, name: str, body: Callable[["Turn"], None], evaluate: Callable[[nn.Module], float],
                 threads: int) -> None:
        self.name, self.body, self.evaluate, self.threads = name, body, evaluate, threads
        self.go, self.done = threading.Event(), threading.Event()
        self.chunks: list[dict[str, float]] = []
        self.train_psnr: list[float] = []
        self.finished, self.error = False, None
        self.extra: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        torch.set_num_threads(self.threads)
        self._wait()
        try:
            self.body(self)
        except BaseException as exc:  # reported by the scheduler
            self.error = exc
        finally:
            self.finished = True
            self.done.set()

    def _wait(self) -> None:
        self.go.wait()
        self.go.clear()

    def pause(self, step: int, seconds: float, model: nn.Module) -> None:
        """Record a chunk (its step time and the float32 PSNR), then hand the baton back."""
        self.chunks.append({"step": step, "seconds": seconds, "psnr": self.evaluate(model)})
        self.done.set()
        self._wait()


def run_interleaved(turns: list[Turn], total_chunks: int) -> None:
    """Round robin: each unfinished method runs one chunk per round."""
    from tqdm.auto import tqdm

    for turn in turns:
        turn.thread.start()
    with tqdm(total=total_chunks * len(turns), file=sys.stderr, desc="chunks", leave=False) as bar:
        while not all(t.finished for t in turns):
            for turn in turns:
                if turn.finished:
                    continue
                turn.done.clear()
                turn.go.set()
                turn.done.wait()
                if turn.error is not None:
                    raise RuntimeError(f"{turn.name} failed: {turn.error!r}") from turn.error
                if not turn.finished:
                    bar.update(1)
    for turn in turns:
        turn.thread.join()


def autocast_bf16(device: torch.device) -> Callable[[], Any]:
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def peer_body(make: Callable[[], nn.Module], coords: Tensor, targets: Tensor, steps: int, chunk: int, lr: float,
              schedule: str, context: Callable[[], Any] = contextlib.nullcontext,
              precision: str = "fp32") -> Callable[[Turn], None]:
    """The plain training loop every peer uses: Adam, MSE, full batch (forward inside ``context()``,
    through ``inrkit.models.fast.with_precision(model, precision)``; evaluated in float32)."""

    def body(turn: Turn) -> None:
        t0 = time.perf_counter()
        model = make()
        forward = with_precision(model, precision)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(schedule, step, steps, 0.1)
            with context():
                loss = ((forward(coords) - targets) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            turn.train_psnr.append(psnr_from_mse(loss.item()))
            if (step + 1) % chunk == 0 or step + 1 == steps:
                _sync(coords.device)
                turn.pause(step + 1, time.perf_counter() - t0, model)
                t0 = time.perf_counter()

    return body


class _ChunkCallback:
    """Hands the baton back every ``chunk`` steps of :func:`inrkit.train.fit`."""

    def __init__(self, turn: Turn, chunk: int, steps: int, device: torch.device) -> None:
        self.turn, self.chunk, self.steps, self.device = turn, chunk, steps, device
        self.t0 = time.perf_counter()

    def on_step_end(self, state) -> None:
        if state.psnr is not None:
            self.turn.train_psnr.append(state.psnr)
        if state.step % self.chunk == 0 or state.step == self.steps:
            _sync(self.device)
            self.turn.pause(state.step, time.perf_counter() - self.t0, state.model)
            self.t0 = time.perf_counter()


def inrkit_body(signal: ImageSignal, hidden: list[int], steps: int, chunk: int, lr: float, schedule: str,
                precision: str, device: torch.device, seed: int, compile: Any = "auto") -> Callable[[Turn], None]:
    def body(turn: Turn) -> None:
        callback = _ChunkCallback(turn, chunk, steps, device)  # the clock starts here: setup is counted
        model = siren(2, 3, hidden, 30.0, 30.0, generator=torch.Generator().manual_seed(seed))
        config = FitConfig(steps=steps, lr=lr, schedule=schedule, seed=seed, log_every=1, progress=False,
                           device=str(device), precision=precision, compile=compile)
        result = fit(model, signal, config, callbacks=[callback])
        turn.extra.update(step_path=result.step_path, compile_seconds=round(result.compile_seconds, 3),
                          compile=compile)

    return body


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------ summary
def summarize(turn: Turn, target: float) -> dict[str, Any]:
    steps = [c["step"] for c in turn.chunks]
    sizes = np.diff([0, *steps])
    per_step = [c["seconds"] / n for c, n in zip(turn.chunks, sizes)]
    cumulative = np.cumsum([c["seconds"] for c in turn.chunks]).tolist()
    hit = next((i for i, c in enumerate(turn.chunks) if c["psnr"] >= target), None)
    median = statistics.median(per_step[1:] if len(per_step) > 2 else per_step)  # first chunk = warm-up
    return {
        "median_seconds_per_step": median, "steps_per_second": 1.0 / median,
        "psnr_final": turn.chunks[-1]["psnr"], "steps": steps[-1],
        "seconds_total": cumulative[-1],
        "seconds_to_target": None if hit is None else cumulative[hit],
        "steps_to_target": None if hit is None else steps[hit],
        "curve": {"step": steps, "psnr": [c["psnr"] for c in turn.chunks], "seconds": cumulative,
                  "chunk_seconds_per_step": per_step},
        "train_psnr_per_step": [round(p, 4) for p in turn.train_psnr],
        **turn.extra,
    }


def ratios(results: dict[str, dict], ours: str, peers: list[str]) -> dict[str, Any]:
    """Speed and time-to-target ratios of ``ours`` against each peer and the best peer."""
    best = max(peers, key=lambda p: results[p]["steps_per_second"])
    out: dict[str, Any] = {"best_peer": best}
    for peer in peers:
        a, b = results[ours], results[peer]
        out[f"steps_per_second_vs_{peer}"] = a["steps_per_second"] / b["steps_per_second"]
        out[f"psnr_final_minus_{peer}"] = a["psnr_final"] - b["psnr_final"]
        if a["seconds_to_target"] and b["seconds_to_target"]:
            out[f"time_to_target_speedup_vs_{peer}"] = b["seconds_to_target"] / a["seconds_to_target"]
    return out


def psnr_per_step_gap(a: dict, b: dict) -> dict[str, float]:
    """PSNR of ``a`` minus PSNR of ``b`` at the same chunk boundaries (min, mean, last)."""
    diffs = np.array(a["curve"]["psnr"]) - np.array(b["curve"]["psnr"])
    return {"min": float(diffs.min()), "mean": float(diffs.mean()), "last": float(diffs[-1])}


def psnr_evaluator(coords: torch.Tensor, targets: torch.Tensor) -> Callable[[nn.Module], float]:
    """PSNR (float32 evaluation of the full image, values in [-1, 1]) of a model on fixed points."""
    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return psnr_from_mse(float(((model(coords).float() - targets) ** 2).mean()))
    return evaluate


# ---------------------------------------------------------------- part one
def speed_part(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    pixels, source = load_pixels(args.size)
    signal = ImageSignal(pixels, name="kodim23")
    coords, targets = signal.coords.to(device), signal.values.to(device)

    evaluate = psnr_evaluator(coords, targets)

    hidden, steps, chunk, lr = [256, 256, 256], args.steps, args.chunk, args.lr

    def seeded(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            torch.manual_seed(args.seed)
            return make().to(device)
        return build

    methods = {
        "textbook": peer_body(seeded(lambda: textbook_siren(hidden)), coords, targets, steps, chunk, lr, "constant"),
        "siren-pytorch": peer_body(seeded(lambda: siren_pytorch_net(hidden)), coords, targets, steps, chunk, lr,
                                   "constant"),
        "inrkit-fp32": inrkit_body(signal, hidden, steps, chunk, lr, "constant", "fp32", device, args.seed, "off"),
        "inrkit": inrkit_body(signal, hidden, steps, chunk, lr, "constant", "auto", device, args.seed),
        "inrkit-compiled": inrkit_body(signal, hidden, steps, chunk, lr, "constant", "auto", device, args.seed, "on"),
        "inrkit-fp32-compiled": inrkit_body(signal, hidden, steps, chunk, lr, "constant", "fp32", device, args.seed,
                                            "on"),
        "inrkit-defaults": inrkit_body(signal, hidden, steps, chunk, 1e-3, "cosine", "auto", device, args.seed),
    }
    if bf16_supported(device):  # emulated bfloat16 GEMMs (no native support) run at a few GFLOP/s: skipped
        methods["autocast-bf16"] = peer_body(seeded(lambda: textbook_siren(hidden)), coords, targets, steps, chunk,
                                             lr, "constant", autocast_bf16(device))
    turns = [Turn(name, body, evaluate, args.threads) for name, body in methods.items()]
    run_interleaved(turns, math.ceil(steps / chunk))
    results = {t.name: summarize(t, args.target_psnr) for t in turns}
    peers = ["textbook", "siren-pytorch"]
    return {
        "image": source, "points": int(coords.shape[0]), "hidden": hidden, "omega0": 30.0, "steps": steps,
        "chunk": chunk, "target_psnr": args.target_psnr, "seed": args.seed,
        "same_settings": {"optimizer": "Adam", "lr": lr, "schedule": "constant", "batch": "full", "loss": "MSE"},
        "inrkit_precision": resolve_precision("auto", device),
        "inrkit_defaults_settings": {"lr": 1e-3, "schedule": "cosine to 0.1x", "precision": "auto"},
        "methods": results,
        "ratios": {name: ratios(results, name, peers) for name in ("inrkit", "inrkit-compiled", "inrkit-defaults",
                                                                   "inrkit-fp32", "inrkit-fp32-compiled")},
        "psnr_gap_inrkit_minus_inrkit_fp32": psnr_per_step_gap(results["inrkit"], results["inrkit-fp32"]),
        "psnr_gap_inrkit_minus_textbook": psnr_per_step_gap(results["inrkit"], results["textbook"]),
        "psnr_gap_inrkit_minus_siren_pytorch": psnr_per_step_gap(results["inrkit"], results["siren-pytorch"]),
        "psnr_gap_compiled_minus_inrkit_fp32": psnr_per_step_gap(results["inrkit-compiled"], results["inrkit-fp32"]),
        "psnr_gap_autocast_minus_textbook": (psnr_per_step_gap(results["autocast-bf16"], results["textbook"])
                                             if "autocast-bf16" in results else "skipped: no native bfloat16"),
    }


# ---------------------------------------------------------------- part two
def cli_part(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """SIREN 64x3 on the 256x256 crop, 300 steps, CLI defaults, against a plain loop; plus the real CLI."""
    pixels, source = load_pixels(256)
    signal = ImageSignal(pixels, name="kodim23")
    coords, targets = signal.coords.to(device), signal.values.to(device)

    evaluate = psnr_evaluator(coords, targets)

    hidden, steps, chunk = [64, 64, 64], args.cli_steps, args.cli_chunk

    def plain() -> nn.Module:
        torch.manual_seed(args.seed)
        return textbook_siren(hidden).to(device)

    def arms(threads: tuple[int, int]) -> dict[str, Any]:
        methods = {
            "plain-loop": peer_body(plain, coords, targets, steps, chunk, 1e-3, "cosine"),
            "inrkit-fit-fp32": inrkit_body(signal, hidden, steps, chunk, 1e-3, "cosine", "fp32", device, args.seed,
                                           "off"),
            "inrkit-fit-auto": inrkit_body(signal, hidden, steps, chunk, 1e-3, "cosine", "auto", device, args.seed),
            "inrkit-fit-fp32-compiled": inrkit_body(signal, hidden, steps, chunk, 1e-3, "cosine", "fp32", device,
                                                    args.seed, "auto"),
        }
        turns = [Turn(name, body, evaluate, threads[0] if name == "plain-loop" else threads[1])
                 for name, body in methods.items()]
        run_interleaved(turns, math.ceil(steps / chunk))
        results = {t.name: summarize(t, 27.0) for t in turns}
        for r in results.values():
            r.pop("train_psnr_per_step")
        plain_speed = results["plain-loop"]["steps_per_second"]
        total = {name: r["seconds_total"] for name, r in results.items()}
        return {
            "threads": {"plain-loop": threads[0], "inrkit": threads[1]}, "methods": results,
            "speedup_fp32_vs_plain": results["inrkit-fit-fp32"]["steps_per_second"] / plain_speed,
            "speedup_auto_vs_plain": results["inrkit-fit-auto"]["steps_per_second"] / plain_speed,
            "speedup_fp32_compiled_vs_plain": results["inrkit-fit-fp32-compiled"]["steps_per_second"] / plain_speed,
            "total_seconds": total,
            "total_time_speedup_auto_vs_plain": total["plain-loop"] / total["inrkit-fit-auto"],
            "total_time_speedup_fp32_compiled_vs_plain": total["plain-loop"] / total["inrkit-fit-fp32-compiled"],
            "psnr_gap_auto_minus_fp32": psnr_per_step_gap(results["inrkit-fit-auto"], results["inrkit-fit-fp32"]),
            "reaches_27db": {name: r["psnr_final"] >= 27.0 for name, r in results.items()},
        }

    from inrkit.cli import default_threads

    equal = arms((args.threads, args.threads))
    out: dict[str, Any] = {
        "image": source, "points": int(coords.shape[0]), "hidden": hidden, "steps": steps,
        "settings": {"lr": 1e-3, "schedule": "cosine to 0.1x", "batch": "full"}, **equal,
    }
    if args.defaults_part:  # the defaults in a clean environment (no $OMP_NUM_THREADS, no $INRKIT_THREADS)
        torch_default = os.cpu_count() or 1  # torch's own default intra-op threads (all cores)
        saved = {k: os.environ.pop(k) for k in ("OMP_NUM_THREADS", "INRKIT_THREADS") if k in os.environ}
        inrkit_default = default_threads()
        os.environ.update(saved)
        out["tool_defaults"] = arms((torch_default, inrkit_default))
    if args.cli and KODIM23.is_file():
        out["cli"] = run_cli(args, steps)
    return out


def run_cli(args: argparse.Namespace, steps: int) -> dict[str, Any]:
    """One real ``inrkit fit --json`` run (its own timing; not interleaved)."""
    exe = Path(sys.executable).with_name("inrkit")
    tmp = tempfile.TemporaryDirectory()
    out = Path(tmp.name) / "kodim23_64x3.safetensors"
    cmd = [str(exe), "fit", str(KODIM23), "--crop", "128:384,256:512", "-o", str(out), "--arch", "siren",
           "--hidden", "64x3", "--omega0", "30", "--steps", str(steps), "--no-progress", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    tmp.cleanup()
    command = "inrkit " + " ".join(cmd[1:])
    if proc.returncode != 0:
        return {"command": command, "error": proc.stderr.strip()[-500:]}
    summary = json.loads(proc.stdout)
    return {"command": command, "psnr": summary["psnr"], "seconds": summary["seconds"],
            "steps": summary["steps"], "params": summary["params"], "reaches_27db": summary["psnr"] >= 27.0}


# -------------------------------------------------------------- part three
def precision_part(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Same inrkit SIREN 256x3 and init, three compute modes: where does bfloat16 cost PSNR?

    The 256x256 crop subsampled 4x (64x64 pixels of the whole crop: much detail per pixel)
    is fitted to high PSNR, where rounding shows. ``autocast`` runs every layer (the first
    one too) in bfloat16, as ``torch.autocast`` does; ``bf16`` is inrkit's fast path.
    """
    pixels, source = load_pixels(256)
    signal = ImageSignal(pixels[::4, ::4], name="kodim23")
    coords, targets = signal.coords.to(device), signal.values.to(device)

    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return 10.0 * math.log10(4.0 / float(((model(coords).float() - targets) ** 2).mean()))

    def make() -> nn.Module:
        return siren(2, 3, [256] * 3, generator=torch.Generator().manual_seed(args.seed)).to(device)

    steps, chunk = args.study_steps, 20
    methods = {
        "fp32": peer_body(make, coords, targets, steps, chunk, args.lr, "constant"),
        "bf16 (inrkit fast path)": peer_body(make, coords, targets, steps, chunk, args.lr, "constant",
                                             precision="bf16"),
        "autocast bf16 (all layers)": peer_body(make, coords, targets, steps, chunk, args.lr, "constant",
                                                autocast_bf16(device)),
    }
    turns = [Turn(name, body, evaluate, args.threads) for name, body in methods.items()]
    run_interleaved(turns, math.ceil(steps / chunk))
    results = {t.name: summarize(t, args.target_psnr) for t in turns}
    for r in results.values():
        r.pop("train_psnr_per_step")
    return {
        "image": source + ", every 4th pixel (64x64)", "points": int(coords.shape[0]), "hidden": [256] * 3,
        "steps": steps, "lr": args.lr, "methods": results,
        "psnr_gap_bf16_minus_fp32": psnr_per_step_gap(results["bf16 (inrkit fast path)"], results["fp32"]),
        "psnr_gap_autocast_minus_fp32": psnr_per_step_gap(results["autocast bf16 (all layers)"], results["fp32"]),
    }


# ------------------------------------------------------------ compile cost
COMPILE_SHAPES = ((32, 64), (64, 256), (256, 128))  # (SIREN width x3, image side)


def compile_probe(width: int, side: int) -> int:
    """Child process: one compiled fit step of SIREN ``width``x3 on a ``side``^2 image; prints its seconds."""
    torch.set_num_threads(1)
    pixels, _ = load_pixels(side) if side <= 256 else load_pixels(256)
    signal = ImageSignal(pixels, name="kodim23")
    model = siren(2, 3, [width] * 3, generator=torch.Generator().manual_seed(0))
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # imports torch._dynamo: not part of the compile
    result = fit(model, signal, FitConfig(steps=1, compile="on", progress=False, evaluate=False, precision="fp32"))
    print(json.dumps({"compile_seconds": result.compile_seconds, "step_path": result.step_path}))
    return 0


def compile_cost(args: argparse.Namespace) -> dict[str, Any]:
    """First-step seconds of the compiled step in fresh processes: empty inductor cache, then warm."""
    rows = {}
    for width, side in COMPILE_SHAPES:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": "1"}
            runs = []
            for _ in ("cold", "warm"):
                cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-probe", str(width), str(side)]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1])["compile_seconds"])
        rows[f"siren_{width}x3_{side}x{side}"] = {"first_run_seconds": round(runs[0], 2),
                                                  "warm_cache_seconds": round(runs[1], 2)}
        print(f"compile {width}x3 {side}^2: {rows[f'siren_{width}x3_{side}x{side}']}", file=sys.stderr)
    return {"rows": rows, "note": "wall seconds of the first compiled step (compiling it included, one thread) "
                                  "in a fresh process: an empty $TORCHINDUCTOR_CACHE_DIR, then the same cache"}


# -------------------------------------------------------------- docs tables
DOCS = ROOT.parent / "docs" / "speed.md"
MARK = "<!-- generated by bench/fit_speed.py --docs: {} -->"


def _fmt(v: Any, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def docs_tables(fs: dict[str, Any], many: dict[str, Any] | None) -> str:
    """The measured tables of docs/speed.md from fit_speed.json (and many.json)."""
    part = fs["siren_256x3"]
    lines = [f"SIREN 256x3 on the {part['points']}-point kodim23 crop, {part['steps']} steps, Adam lr "
             f"{part['same_settings']['lr']:g} constant for all, {fs['threads']} thread, methods interleaved "
             f"(`bench/results/fit_speed.json`, {fs['environment'].get('date', '')}, ran alone: "
             f"{fs['environment'].get('ran_alone')}):", "",
             "| method | steps/s | x textbook | PSNR @end (dB) | total s (compile incl.) | step path | compile s |",
             "|---|---|---|---|---|---|---|"]
    text = part["methods"]["textbook"]["steps_per_second"]
    for name, r in part["methods"].items():
        lines.append(f"| {name} | {r['steps_per_second']:.2f} | {r['steps_per_second'] / text:.2f}x | "
                     f"{r['psnr_final']:.2f} | {r['seconds_total']:.1f} | {r.get('step_path', '-')} | "
                     f"{_fmt(r.get('compile_seconds'), 1)} |")
    cli = fs.get("cli_fit_64x3")
    if cli:
        for key, title in (("methods", "equal threads"), ("tool_defaults", "each tool's default threads")):
            block = cli if key == "methods" else cli.get(key)
            if not block:
                continue
            th = block["threads"]
            lines += ["", f"SIREN 64x3 on the 256x256 crop, {cli['steps']} steps, lr 1e-3 cosine ({title}: plain loop "
                      f"{th['plain-loop']}, inrkit {th['inrkit']} threads):", "",
                      "| method | steps/s | x plain loop | total s | PSNR @end (dB) | step path |",
                      "|---|---|---|---|---|---|"]
            plain = block["methods"]["plain-loop"]
            for name, r in block["methods"].items():
                lines.append(f"| {name} | {r['steps_per_second']:.2f} | "
                             f"{r['steps_per_second'] / plain['steps_per_second']:.2f}x | {r['seconds_total']:.1f} | "
                             f"{r['psnr_final']:.2f} | {r.get('step_path', '-')} |")
    cost = fs.get("compile_cost", {}).get("rows")
    if cost:
        lines += ["", "Compiling the step (first fit step, one thread, a fresh process):", "",
                  "| model | empty inductor cache (first run) s | warm cache s |", "|---|---|---|"]
        lines += [f"| {k} | {v['first_run_seconds']:.1f} | {v['warm_cache_seconds']:.1f} |" for k, v in cost.items()]
    if many:
        t = many["throughput"]
        lines += ["", f"{t['crops']} Kodak crops {t['size']}x{t['size']}, SIREN {t['hidden']}, {t['steps']} "
                  f"full-batch steps each, precision {t['fit']['precision']}, {many['threads']} thread "
                  f"(`bench/results/many.json`, ran alone: {many['environment'].get('ran_alone')}):", "",
                  "| arm | signals per CPU-minute | per wall minute | mean PSNR (dB) | ran |", "|---|---|---|---|---|"]
        for name, r in t["arms"].items():
            ran = ", ".join(r.get("ran", [])) or r.get("compile", "")
            lines.append(f"| {name} | {r['signals_per_cpu_minute']:.1f} | {r['signals_per_minute']:.1f} | "
                         f"{sum(r['psnr']) / len(r['psnr']):.2f} | {ran} |")
    return "\n".join(lines)


def write_docs() -> int:
    """Replace the generated block of docs/speed.md with tables from the committed JSON."""
    fs = json.loads((RESULTS / "fit_speed.json").read_text())
    many_path = RESULTS / "many.json"
    many = json.loads(many_path.read_text()) if many_path.is_file() else None
    text = DOCS.read_text()
    start, end = MARK.format("start"), MARK.format("end")
    if start not in text or end not in text:
        raise SystemExit(f"{DOCS}: no generated block ({start} ... {end})")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    DOCS.write_text(f"{head}{start}\n{docs_tables(fs, many)}\n{end}{tail}")
    print(f"wrote {DOCS}")
    return 0


# ------------------------------------------------------------------- plots
def plot(part: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, res in part["methods"].items():
        curve = res["curve"]
        axes[0].plot(curve["step"], curve["psnr"], marker=".", label=name)
        label = f"{name} ({res['steps_per_second']:.2f} steps/s)"
        axes[1].plot(curve["seconds"], curve["psnr"], marker=".", label=label)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("seconds (timed steps only)")
    for ax in axes:
        ax.set_ylabel("PSNR (dB, float32 eval)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------- main
# ------------------------------------------------------------ grid part
DATA = ROOT.parents[1] / "shared" / "data"
GRID_SIGNALS = {"kodim05": (DATA / "kodak" / "kodim05.png", (30.0, 35.0)),
                "kodim19": (DATA / "kodak" / "kodim19.png", (30.0, 35.0)),
                "hydrogen": (DATA / "volumes" / "hydrogen.vti", (40.0,))}
GRID_LR, GRID_ENC_LR, GRID_BATCH = 1e-2, 1e-1, 16384  # MLP lr, table lr, random batch (measured: docs/grid.md)
SIREN_LR = 1e-3  # inrkit SIREN's best measured setting (docs/speed.md: lr 1e-3, bf16 GEMMs), full batch


class TextbookHashGrid(nn.Module):
    """A multi-resolution hash grid written the way tutorials write it: a Python loop over levels,
    one ``nn.Embedding`` per level, corners looped per level, features concatenated.

    Same resolutions, table sizes, hash (instant-NGP primes) and init as :class:`inrkit.models.grid.GridEncoding`.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.dim, self.res, self.size = config.dim, config.resolutions(), config.level_sizes()
        self.dense = config.dense()
        self.tables = nn.ModuleList(nn.Embedding(n, config.features) for n in self.size)
        for table in self.tables:
            assert isinstance(table, nn.Embedding)
            nn.init.uniform_(table.weight, -1e-4, 1e-4)

    def forward(self, x: Tensor) -> Tensor:
        primes = (1, 2654435761, 805459861, 3674653429)
        u = (x.clamp(-1, 1) + 1) / 2
        feats: list[Tensor] = []
        for res, size, dense, table in zip(self.res, self.size, self.dense, self.tables):
            pos = u * res
            cell = torch.minimum(pos.floor(), torch.tensor(res - 1.0))
            frac, cell = pos - cell, cell.long()
            out = torch.zeros(())
            for corner in range(1 << self.dim):
                bits = [(corner >> a) & 1 for a in range(self.dim)]
                c = cell + torch.tensor(bits)
                if dense:
                    idx = sum(c[:, a] * (res + 1) ** a for a in range(self.dim))
                else:
                    idx = c[:, 0] * primes[0]
                    for a in range(1, self.dim):
                        idx = idx ^ (c[:, a] * primes[a])
                    idx = (idx % (1 << 32)) % size
                w = torch.ones_like(frac[:, 0])
                for a in range(self.dim):
                    w = w * (frac[:, a] if bits[a] else 1 - frac[:, a])
                out = out + w[:, None] * table(idx)
            feats.append(out)
        return torch.cat(feats, dim=-1)


def textbook_grid_net(config: Any, out_dim: int, hidden: list[int]) -> nn.Module:
    """The textbook grid followed by an ``nn.Linear`` ReLU MLP (the widths inrkit's grid model uses)."""
    widths = [config.levels * config.features, *hidden]
    layers: list[nn.Module] = [TextbookHashGrid(config)]
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], out_dim))


class Watch:
    """Training clock, PSNR curve and stop rule shared by every arm of the grid part.

    The full signal is evaluated (float32, untimed) every ``eval_s`` training seconds; an arm stops
    at its last target or after ``budget`` training seconds.
    """

    def __init__(self, coords: Tensor, values: Tensor, target: float, budget: float, eval_s: float) -> None:
        self.coords, self.values, self.target, self.budget, self.eval_s = coords, values, target, budget, eval_s
        self.curve: list[list[float]] = []
        self.steps, self.excluded, self.next_eval = 0, 0.0, 0.0
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.excluded

    def psnr(self, model: nn.Module) -> float:
        was = model.training
        model.eval()
        with torch.no_grad():
            mse = sum(float(((model(self.coords[i:i + 65536]).float() - self.values[i:i + 65536]) ** 2).sum())
                      for i in range(0, self.coords.shape[0], 65536)) / self.values.numel()
        model.train(was)
        return psnr_from_mse(mse, 2.0)

    def tick(self, model: nn.Module) -> bool:
        """Count a step; evaluate when due; True when the arm should stop."""
        self.steps += 1
        t = self.seconds()
        if t < self.next_eval and t < self.budget:
            return False
        e0 = time.perf_counter()
        p = self.psnr(model)
        self.excluded += time.perf_counter() - e0
        self.curve.append([self.steps, round(t, 3), round(p, 3)])
        self.next_eval = t + self.eval_s
        return p >= self.target or t >= self.budget

    def on_step_end(self, state: Any) -> None:  # an inrkit.train.fit callback
        if self.tick(state.model):
            state.stop = True

    def result(self, targets: tuple[float, ...], params: int, nbytes: int, extra: dict[str, Any]) -> dict[str, Any]:
        reach = {}
        for target in targets:
            hit = next((row for row in self.curve if row[2] >= target), None)
            reach[f"seconds_to_{target:g}db"] = hit[1] if hit else None
            reach[f"steps_to_{target:g}db"] = hit[0] if hit else None
            if hit is None:  # a lower bound: not reached within the budget
                reach[f"seconds_to_{target:g}db_lower_bound"] = self.curve[-1][1] if self.curve else 0.0
        train = self.curve[-1][1] if self.curve else 0.0
        return {**reach, "final_psnr": self.curve[-1][2] if self.curve else None, "steps": self.steps,
                "train_seconds": train, "seconds_per_step": train / max(self.steps, 1), "params": params,
                "file_bytes": nbytes, "curve": self.curve, **extra}


def _state_bytes(model: nn.Module) -> int:
    from safetensors.torch import save

    return len(save({k: v.detach().contiguous() for k, v in model.state_dict().items()}))


def plain_loop(model: nn.Module, watch: Watch, batch: int | None, groups: list[dict[str, Any]], seed: int) -> None:
    """Adam on MSE, random batches (or the full set), until ``watch`` says stop."""
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    coords, values = watch.coords, watch.values
    n = coords.shape[0]
    watch.t0 = time.perf_counter()
    while True:
        if batch is None or batch >= n:
            x, y = coords, values
        else:
            idx = torch.randint(0, n, (batch,), generator=gen)
            x, y = coords[idx], values[idx]
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if watch.tick(model):
            return


def grid_arm(name: str, signal: Any, targets: tuple[float, ...], budget: float, args: argparse.Namespace
             ) -> dict[str, Any]:
    """One method on one signal: ``inrkit-grid`` (bf16 MLP where native), ``inrkit-grid-fp32``, ``textbook-grid``,
    ``inrkit-siren`` or ``siren-pytorch``."""
    from inrkit.api import ModelSpec
    from inrkit.models.io import save_model

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    coords, values = signal.coords, signal.values
    is_grid = "grid" in name
    watch = Watch(coords, values, max(targets), budget, args.grid_eval_s if is_grid else args.siren_eval_s)
    spec = ModelSpec(arch="grid") if is_grid else ModelSpec(arch="siren", hidden=(256, 256, 256), omega0=30.0)
    model = spec.build(signal.dim, signal.out_dim, gen, resolution=max(signal.shape))
    extra: dict[str, Any] = {}
    if name in ("inrkit-grid", "inrkit-grid-fp32", "inrkit-siren"):
        precision = "fp32" if name.endswith("fp32") else resolve_precision("auto", torch.device("cpu"), True)
        batch = args.grid_batch if is_grid else None
        lr = args.grid_lr if is_grid else SIREN_LR
        cfg = FitConfig(steps=10**9, lr=lr, encoding_lr=args.grid_encoding_lr if is_grid else None, precision=precision,
                        schedule="constant", batch_size=batch, evaluate=False, progress=False, log_every=10**9,
                        seed=args.seed)
        signal.train_batch(batch, torch.Generator(), torch.device("cpu"))  # warm-up, untimed: data cache,
        with torch.no_grad():  # oneDNN's bf16 kernels
            with_precision(model, precision)(coords[:64])
        watch.t0 = time.perf_counter()
        fit(model, signal, cfg, callbacks=[watch])
        with tempfile.TemporaryDirectory() as tmp:
            nbytes = save_model(model.cpu(), Path(tmp) / "m.safetensors").stat().st_size
        extra = {"batch": batch, "lr": lr, "encoding_lr": cfg.encoding_lr,
                 "precision": precision,
                 "model": spec.arch, "hidden": list(spec.widths)}
        if is_grid:
            extra["grid"] = model.encoding.summary()
        return watch.result(targets, model.num_params(), nbytes, extra)
    if name == "textbook-grid":
        net = textbook_grid_net(model.encoding.config, signal.out_dim, list(spec.widths))
        tables = list(net.get_submodule("0").parameters())
        rest = [p for p in net.parameters() if all(p is not t for t in tables)]
        groups = [{"params": rest, "lr": args.grid_lr}, {"params": tables, "lr": args.grid_encoding_lr}]
        plain_loop(net, watch, args.grid_batch, groups, args.seed)
        extra = {"batch": args.grid_batch, "lr": args.grid_lr, "encoding_lr": args.grid_encoding_lr,
                 "precision": "fp32"}
    else:  # siren-pytorch (the package when installed), the SIREN paper's lr 1e-4, full batch
        try:
            from siren_pytorch import SirenNet

            net = SirenNet(dim_in=signal.dim, dim_hidden=256, dim_out=signal.out_dim, num_layers=3, w0=30.0,
                           w0_initial=30.0)
            impl = "siren_pytorch.SirenNet"
        except ImportError:  # the same module re-implemented (see textbook_siren)
            net, impl = textbook_siren([256, 256, 256]), "re-implementation of siren_pytorch.SirenNet"
        plain_loop(net, watch, None, [{"params": list(net.parameters()), "lr": 1e-4}], args.seed)
        extra = {"batch": None, "lr": 1e-4, "precision": "fp32", "implementation": impl}
    params = sum(p.numel() for p in net.parameters())
    return watch.result(targets, params, _state_bytes(net), extra)


GRID_ARMS = ("inrkit-grid", "inrkit-grid-fp32", "textbook-grid", "inrkit-siren", "siren-pytorch")


def grid_part(args: argparse.Namespace) -> dict[str, Any]:
    """Time to 30/35 dB (Kodak) and 40 dB (hydrogen) for the grid and SIREN arms, one run each."""
    from inrkit.signals import load_signal

    out: dict[str, Any] = {}
    for key in args.signals.split(","):
        path, targets = GRID_SIGNALS[key]
        signal = load_signal(path)
        rows: dict[str, Any] = {}
        for arm in args.arms.split(","):
            budget = args.grid_budget_s if "grid" in arm else args.budget_s
            t = time.perf_counter()
            rows[arm] = grid_arm(arm, signal, targets, budget, args)
            rows[arm]["wall_seconds"] = round(time.perf_counter() - t, 1)
            print(f"{key} {arm}: " + json.dumps({k: v for k, v in rows[arm].items()
                                                  if k not in ("curve", "grid")}), file=sys.stderr)
        res: dict[str, Any] = {"signal": str(path.relative_to(DATA)) if path.is_relative_to(DATA) else str(path),
                               "points": int(signal.coords.shape[0]), "targets": list(targets), "methods": rows}
        for ours in ("inrkit-grid", "inrkit-grid-fp32"):  # fp32: the same precision as the textbook loop
            if ours in rows and "textbook-grid" in rows:
                res[f"per_step_textbook_over_{ours}"] = (rows["textbook-grid"]["seconds_per_step"]
                                                         / max(rows[ours]["seconds_per_step"], 1e-12))
        first = f"seconds_to_{targets[0]:g}db"
        sirens = [rows[a] for a in ("inrkit-siren", "siren-pytorch") if a in rows]
        if "inrkit-grid" in rows and rows["inrkit-grid"][first] and sirens:
            best = [r[first] if r[first] is not None else r[first + "_lower_bound"] for r in sirens]
            res[f"speedup_to_{targets[0]:g}db_vs_best_siren"] = min(best) / rows["inrkit-grid"][first]
            res["speedup_is_lower_bound"] = any(r[first] is None for r in sirens)
        out[key] = res
    return out


def grid_step_times(points: int = 768 * 512, reps: int = 3, seed: int = 0) -> dict[str, Any]:
    """Forward + backward seconds of the 2D grid encoding alone (default image config) at ``points`` random
    points: inrkit's GridEncoding against the textbook per-level loop (best of ``reps``)."""
    from inrkit.models.grid import GridEncoding
    from inrkit.models.mlp import GRID_DEFAULTS

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(points, 2, generator=gen) * 2 - 1
    enc = GridEncoding(GridConfig(dim=2, **GRID_DEFAULTS[2]), gen)
    textbook = TextbookHashGrid(enc.config)
    out: dict[str, Any] = {"points": points, "config": enc.config.to_dict()}
    for name, module in (("inrkit", enc), ("textbook", textbook)):
        times = []
        for _ in range(reps + 1):
            module.zero_grad(set_to_none=True)
            t = time.perf_counter()
            module(x).square().sum().backward()
            times.append(time.perf_counter() - t)
        out[f"{name}_seconds"] = min(times[1:])
    out["textbook_over_inrkit"] = out["textbook_seconds"] / out["inrkit_seconds"]
    return out


def plot_grid(part: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(part), figsize=(5.2 * len(part), 4.2), squeeze=False)
    for ax, (key, res) in zip(axes[0], part.items()):
        for arm, row in res["methods"].items():
            curve = np.asarray(row["curve"]) if row["curve"] else np.zeros((0, 3))
            ax.plot(curve[:, 1], curve[:, 2], label=arm, marker=".", ms=3)
        for target in res["targets"]:
            ax.axhline(target, color="grey", lw=0.6, ls="--")
        ax.set_xscale("log")  # every curve starts after its first step (t > 0)
        ax.set(title=f"{key} ({res['points']} points)", xlabel="training seconds (1 CPU thread)", ylabel="PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    torch.set_num_threads(args.threads or 1)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "fit_speed_grid", "device": "cpu", "threads": args.threads or 1, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "bf16_native": bf16_supported(torch.device("cpu")),
        "command": " ".join(["bench/fit_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "timing": "arms run one after another in one process; training seconds exclude the float32 full-signal "
                  "PSNR evaluations (every --grid-eval-s / --siren-eval-s training seconds, so times to a target "
                  "are resolved to that interval); a target not reached within the arm's budget is reported as "
                  "a lower bound (seconds_to_X_lower_bound)",
        "settings": {"grid_lr": args.grid_lr, "grid_encoding_lr": args.grid_encoding_lr, "grid_batch": args.grid_batch,
                     "siren_lr": SIREN_LR, "siren_pytorch_lr": 1e-4, "budget_s": args.budget_s,
                     "grid_budget_s": args.grid_budget_s, "seed": args.seed},
    }
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # the first optimizer imports torch._dynamo (~3 s): not timed
    report["encoding_step"] = grid_step_times()
    print("encoding forward+backward: " + json.dumps(report["encoding_step"]), file=sys.stderr)
    report["signals"] = grid_part(args)
    report["wall_seconds"] = time.perf_counter() - t0
    report["environment"] = run_environment(threads=args.threads or 1)
    out = Path(args.grid_out)
    write_json(out, report)
    plot_grid(report["signals"], out.with_suffix(".png"))
    print(json.dumps({"json": str(out), "wall_seconds": round(report["wall_seconds"], 1)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="GPU scale: 512x512 image, 1000 steps, all threads")
    parser.add_argument("--size", type=int, help="image side (default 128; 512 with --full)")
    parser.add_argument("--steps", type=int, help="steps per method (default 100; 1000 with --full)")
    parser.add_argument("--chunk", type=int, default=10, help="steps per turn in the round robin")
    parser.add_argument("--lr", type=float, default=1e-4, help="the shared learning rate (SIREN paper: 1e-4)")
    parser.add_argument("--target-psnr", type=float, help="PSNR target for time-to-target (default 28; 35 --full)")
    parser.add_argument("--threads", type=int, help="torch threads (default 1 on CPU: the machine is shared)")
    parser.add_argument("--cli-steps", type=int, default=300)
    parser.add_argument("--cli-chunk", type=int, default=25)
    parser.add_argument("--skip-cli-part", action="store_true", help="skip the SIREN 64x3 / inrkit fit part")
    parser.add_argument("--study-steps", type=int, default=300, help="steps of the precision study (0 skips it)")
    parser.add_argument("--cli", action="store_true",
                        help="also time one real `inrkit fit --json` run (not interleaved)")
    parser.add_argument("--no-defaults-part", dest="defaults_part", action="store_false",
                        help="skip the 64x3 arms at each tool's default threads")
    parser.add_argument("--no-compile-cost", dest="compile_cost", action="store_false",
                        help="skip the first-run / warm-cache compile seconds")
    parser.add_argument("--compile-probe", nargs=2, type=int, metavar=("WIDTH", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--alone", action="store_true", help="record that the run held the exclusive CPU lock")
    parser.add_argument("--docs", action="store_true",
                        help="only rewrite the tables of docs/speed.md from results/fit_speed.json and many.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=str(RESULTS / "fit_speed.json"))
    grid = parser.add_argument_group("grid part (--grid runs only this part)")
    grid.add_argument("--grid", action="store_true", help="time-to-PSNR of grid vs SIREN arms (~25 min on 1 thread)")
    grid.add_argument("--signals", default="kodim05,kodim19,hydrogen", help="of " + ",".join(GRID_SIGNALS))
    grid.add_argument("--arms", default=",".join(GRID_ARMS), help="of " + ",".join(GRID_ARMS))
    grid.add_argument("--budget-s", type=float, default=150.0, help="training seconds per SIREN arm")
    grid.add_argument("--grid-budget-s", type=float, default=90.0, help="training seconds per grid arm")
    grid.add_argument("--grid-eval-s", type=float, default=1.0, help="training seconds between PSNR evals (grids)")
    grid.add_argument("--siren-eval-s", type=float, default=8.0, help="training seconds between PSNR evals (SIRENs)")
    grid.add_argument("--grid-lr", type=float, default=GRID_LR, help="MLP lr of the grid arms")
    grid.add_argument("--grid-encoding-lr", type=float, default=GRID_ENC_LR, help="table lr of the grid arms")
    grid.add_argument("--grid-batch", type=int, default=GRID_BATCH, help="random batch of the grid arms")
    grid.add_argument("--grid-out", default=str(RESULTS / "fit_speed_grid.json"))
    args = parser.parse_args(argv)
    if args.compile_probe:
        return compile_probe(*args.compile_probe)
    if args.docs:
        return write_docs()
    if args.grid:
        return grid_main(args, argv)
    device = resolve_device(args.device)
    args.size = args.size or (512 if args.full else 128)
    args.steps = args.steps or (1000 if args.full else 100)
    args.target_psnr = args.target_psnr or (35.0 if args.full else 28.0)
    args.threads = args.threads or ((os.cpu_count() or 1) if args.full or device.type != "cpu" else 1)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "fit_speed", "device": str(device), "threads": args.threads, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "bf16_native": bf16_supported(device),
        "full": args.full, "command": " ".join(["bench/fit_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "timing": "methods interleaved round robin in one process (one at a time, --chunk steps per turn); "
                  "seconds/step = median over chunks after the first; seconds_total = every chunk, the first "
                  "(compiling) one included; PSNR = float32 full-image eval per chunk",
        "claim": "steps/s of inrkit fit against a textbook PyTorch SIREN loop and siren-pytorch at equal threads "
                 "(target 2.5x the textbook loop) and with each tool's default threads (target: faster), "
                 "at equal PSNR; first-run and warm-cache compile seconds",
        "environment": {**run_environment(threads=args.threads), "ran_alone": args.alone,
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }
    report["siren_256x3"] = speed_part(args, device)
    if not args.skip_cli_part:
        report["cli_fit_64x3"] = cli_part(args, device)
    if args.study_steps and bf16_supported(device):
        report["precision_study"] = precision_part(args, device)
    elif args.study_steps:
        report["precision_study"] = {"skipped": "no native bfloat16 GEMMs on this device (emulated: a few GFLOP/s)"}
    if args.compile_cost:
        report["compile_cost"] = compile_cost(args)
    report["environment"]["loadavg_end"] = list(os.getloadavg())
    report["wall_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    write_json(out, report)
    plot(report["siren_256x3"], out.with_suffix(".png"),
         f"SIREN 256x3, {report['siren_256x3']['image']}, {report['device']} x{args.threads} threads")
    if "cli_fit_64x3" in report:
        plot(report["cli_fit_64x3"], out.with_name(out.stem + "_64x3.png"),
             "SIREN 64x3, kodim23 256x256 crop, 1e-3 cosine")
    if "methods" in report.get("precision_study", {}):
        plot(report["precision_study"], out.with_name(out.stem + "_precision.png"),
             "precision study: SIREN 256x3, same init, 64x64 subsampled crop, lr 1e-4")
    brief = {k: {m: round(r["steps_per_second"], 3) for m, r in report[k]["methods"].items()}
             for k in ("siren_256x3", "cli_fit_64x3", "precision_study") if "methods" in report.get(k, {})}
    print(json.dumps({"steps_per_second": brief, "ratios": report["siren_256x3"]["ratios"]["inrkit"],
                      "json": str(out)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
