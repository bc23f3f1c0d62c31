"""SINR on a quantisation-aware-trained (QAT) baseline against that baseline, at equal PSNR (INRIC-style).

The SINR paper says SINR integrates with existing INR codecs and saves 42-49 % of their storage. The
strong network-codec baseline is INRIC's recipe: quantisation-aware fine-tuning, here with one learned
step per weight row (:mod:`inrkit.compress.encode.qat`), entropy-coded. For each image and SIREN width, one
network is fitted, then encoded as:

* ``quant``: per-tensor quantisation, no QAT (the plain baseline), bits 4-10;
* ``quant-rows``: per-row steps from each row's range, no QAT, bits 4-10;
* ``qat``: per-row QAT, then the per-row ``quant`` file, bits 3-10; ``--qat-steps`` + ``--finetune`` steps,
  the same training budget as ``sinr-qat-ft``;
* ``sinr``: SINR on the fitted network (no QAT), sparsities x coefficient bits;
* ``sinr-qat``: SINR on the QAT model (``--qat-steps``) of the same bit depth as its coefficients;
* ``sinr-qat-ft``: the same, plus SINR's coefficient fine-tuning (``--finetune`` steps).

Every point is a real ``.inrz`` file, decoded and measured (bpp of the whole file and of the payload
alone). Settings are averaged over images (CompressAI style), each codec's curve is its Pareto front,
and the storage difference at equal PSNR interpolates log-bpp along PSNR.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sinr_qat.py     # 3 Kodak crops 96x96 (of the 2x-downscaled images)
    OMP_NUM_THREADS=1 .venv/bin/python bench/sinr_qat.py --depth 2 --widths 32 --out bench/results/sinr_qat_h2m32.json
                                                             # the SINR paper's (h=2, m=32), same crops
"""
from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from compress_rd import PAPER_SAVING, bd_psnr, bd_rate, compressai_json, network, pareto
from compress_rd import saving_at_equal_psnr as saving

from inrkit.compress.decode.layout import RowModel, SinrOptions
from inrkit.compress.encode.finetune import finetune_codes
from inrkit.compress.encode.model import decode_model
from inrkit.compress.encode.network import NETWORK_CODECS
from inrkit.compress.encode.qat import QAT_LR, quantisation_aware
from inrkit.compress.encode.sparse import sparse_code
from inrkit.signals import ImageSignal
from inrkit.train import FitConfig, fit
from inrkit.utils import run_environment, write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
IMAGES = ("kodim05.png", "kodim15.png", "kodim23.png")
COLORS = {"quant": "tab:blue", "quant-rows": "tab:cyan", "qat": "tab:green", "sinr": "tab:orange",
          "sinr-qat": "tab:red", "sinr-qat-ft": "tab:purple"}
PAIRS = (("sinr-qat", "qat"), ("sinr-qat-ft", "qat"), ("sinr", "quant"), ("qat", "quant"), ("sinr-qat", "sinr"))


def load_crop(path: Path, size: int) -> np.ndarray:
    """The centre ``size x size`` crop of the image downscaled 2x (Lanczos)."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    r0, c0 = (img.height - size) // 2, (img.width - size) // 2
    return np.asarray(img)[r0 : r0 + size, c0 : c0 + size]


def measure(signal: ImageSignal, pixels: int, codec: str, setting: str, make: Callable[[], bytes],
            seconds: float = 0.0) -> dict[str, Any]:
    """Encode (``make``), decode and measure one file; ``seconds`` of earlier work count as encoding time."""
    t0 = time.perf_counter()
    data = make()
    enc = seconds + time.perf_counter() - t0
    t0 = time.perf_counter()
    model, header = decode_model(data)
    dec = time.perf_counter() - t0
    return {"codec": codec, "setting": setting, "bytes": len(data), "bpp": 8 * len(data) / pixels,
            "bpp_payload": 8 * sum(header["sizes"]) / pixels, "psnr": float(signal.evaluate(model)["psnr"]),
            "encoding_time": enc, "decoding_time": dec}


def network_points(model: Any, signal: ImageSignal, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every codec setting on one fitted network."""
    meta, pixels = signal.metadata(), signal.shape[0] * signal.shape[1]
    quant, sinr = NETWORK_CODECS.get("quant"), NETWORK_CODECS.get("sinr")
    out = []
    for bits in args.quant_bits:
        for codec, rows in (("quant", False), ("quant-rows", True)):
            o = quant.make_options(bits=bits, per_row=rows)
            out.append(measure(signal, pixels, codec, f"b{bits}", partial(quant.encode, model, o, signal=meta)))
    def qat(bits: int, steps: int) -> tuple[RowModel, float]:
        t0 = time.perf_counter()
        return quantisation_aware(model, signal, bits, steps, args.qat_lr), time.perf_counter() - t0

    for bits in args.qat_bits:  # the baseline gets the training steps SINR's fine-tuning adds
        rm, qat_s = qat(bits, args.qat_steps + args.finetune)
        o = quant.make_options(bits=bits, per_row=True)
        out.append(measure(signal, pixels, "qat", f"b{bits}", partial(quant.encode, rm, o, signal=meta),
                           qat_s))
    tuned = {bits: qat(bits, args.qat_steps) for bits in args.sinr_bits}
    for sp in args.sparsities:
        for bits in args.sinr_bits:
            opts = SinrOptions(sparsity=sp, bits=bits, overcomplete=args.overcomplete)
            out.append(measure(signal, pixels, "sinr", f"s{sp}-b{bits}",
                               partial(sinr.encode, model, opts, signal=meta)))
            rm, qat_s = tuned[bits]
            t0 = time.perf_counter()
            code = sparse_code(rm.model, opts)
            code_s = qat_s + time.perf_counter() - t0
            out.append(measure(signal, pixels, "sinr-qat", f"s{sp}-b{bits}",
                               partial(sinr.encode_prepared, code, opts, meta), code_s))
            if args.finetune:
                t0 = time.perf_counter()
                ft = finetune_codes(code, signal, steps=args.finetune, lr=args.finetune_lr)
                out.append(measure(signal, pixels, "sinr-qat-ft", f"s{sp}-b{bits}",
                                   partial(sinr.encode_prepared, ft, opts, meta),
                                   code_s + time.perf_counter() - t0))
    return out


def average(points: list[dict[str, Any]], n_images: int) -> dict[str, list[dict[str, Any]]]:
    """Mean bpp/PSNR over images per (codec, setting), for settings every image has."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["codec"], p["setting"]), []).append(p)
    curves: dict[str, list[dict[str, Any]]] = {}
    for (codec, setting), ps in groups.items():
        if len(ps) == n_images:
            keys = ("bytes", "bpp", "bpp_payload", "psnr", "encoding_time", "decoding_time")
            curves.setdefault(codec, []).append({"setting": setting, **{k: float(np.mean([p[k] for p in ps]))
                                                                        for k in keys}})
    return curves


def per_image(points: list[dict[str, Any]], ours: str, base: str) -> dict[str, float | None]:
    """Mean storage difference at equal PSNR of each image's own fronts (None where they do not overlap)."""
    out: dict[str, float | None] = {}
    for name in sorted({p["image"] for p in points}):
        a = pareto([p for p in points if p["image"] == name and p["codec"] == base])
        b = pareto([p for p in points if p["image"] == name and p["codec"] == ours])
        rows = saving(b, a)
        out[name] = float(np.mean([r["saving_percent"] for r in rows])) if rows else None
    return out


def compare(fronts: dict[str, list[dict[str, Any]]], ours: str, base: str) -> dict[str, Any]:
    """Storage difference of ``ours`` against ``base`` at equal PSNR (whole file and payload only), BD numbers."""
    a, b = fronts[base], fronts[ours]
    rows = saving(b, a)
    pa = pareto([dict(x, bpp=x["bpp_payload"]) for x in a])
    pb = pareto([dict(x, bpp=x["bpp_payload"]) for x in b])
    prow = saving(pb, pa)
    args = ([x["bpp"] for x in a], [x["psnr"] for x in a], [x["bpp"] for x in b], [x["psnr"] for x in b])
    return {"saving_at_equal_psnr": rows,
            "mean_saving_percent": float(np.mean([r["saving_percent"] for r in rows])) if rows else None,
            "payload_mean_saving_percent": float(np.mean([r["saving_percent"] for r in prow])) if prow else None,
            "psnr_range": [rows[0]["psnr"], rows[-1]["psnr"]] if rows else None,
            "bd_rate_percent": bd_rate(*args), "bd_psnr_db": bd_psnr(*args), "paper_claim_percent": PAPER_SAVING}


def plot(fronts: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """The codecs' Pareto fronts, PSNR against whole-file bpp (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, front in fronts.items():
        ax.plot([p["bpp"] for p in front], [p["psnr"] for p in front], "o-", lw=2, ms=4, color=COLORS.get(name),
                label=name)
    ax.set(xlabel="bits per pixel (whole file)", ylabel="PSNR RGB (dB)", xscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parser() -> argparse.ArgumentParser:
    """The command line (``main`` parses it; the tests use it too)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=96, help="crop size (pixels) of the 2x-downscaled images")
    p.add_argument("--widths", default="24,32,48", help="SIREN hidden widths (each with --depth layers)")
    p.add_argument("--depth", type=int, default=3,
                   help="hidden layers of the SIRENs (default 3; the SINR paper's h: --depth 2 --widths 32)")
    p.add_argument("--steps", type=int, default=1500, help="fitting steps")
    p.add_argument("--qat-steps", type=int, default=300)
    p.add_argument("--finetune", type=int, default=100, help="SINR coefficient fine-tuning steps (sinr-qat-ft)")
    p.add_argument("--out", default=str(RESULTS / "sinr_qat.json"), help="result JSON (and .png beside it)")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.depth < 1:
        raise SystemExit(f"--depth must be >= 1, got {args.depth}")
    args.qat_lr, args.finetune_lr, args.overcomplete = QAT_LR, 1e-4, 8.0
    args.quant_bits, args.qat_bits, args.sinr_bits = [4, 5, 6, 7, 8, 10], [3, 4, 5, 6, 8, 10], [5, 6, 8]
    args.sparsities = [0.1, 0.2, 0.3, 0.4, 0.48]
    widths = [int(w) for w in args.widths.split(",")]
    torch.set_num_threads(1)
    t_start, points = time.perf_counter(), []
    for name in IMAGES:
        signal = ImageSignal(load_crop(DATA / "kodak" / name, args.size), name=name)
        for w in widths:
            model = network(w, args.depth)  # compress_rd's SIREN (seed 0), so both benches fit the same networks
            t0 = time.perf_counter()
            res = fit(model, signal, FitConfig(steps=args.steps, lr=1e-3, progress=False, precision="fp32"))
            fit_s = time.perf_counter() - t0
            for pt in network_points(res.model.cpu(), signal, args):
                points.append(dict(pt, image=name, width=w, depth=args.depth, setting=f"w{w}-{pt['setting']}",
                                   fit_seconds=fit_s, fit_psnr=float(res.metrics["psnr"])))
            print(f"{name} depth={args.depth} w={w}: fit {res.metrics['psnr']:.2f} dB in {fit_s:.0f} s "
                  f"[{time.perf_counter() - t_start:.0f} s total]", flush=True)
    curves = average(points, len(IMAGES))
    fronts = {c: pareto(v) for c, v in curves.items()}
    summary = {f"{a}_vs_{b}": dict(compare(fronts, a, b), per_image_mean_saving_percent=per_image(points, a, b))
               for a, b in PAIRS if a in fronts and b in fronts}
    out = Path(args.out)
    setup = {"images": list(IMAGES), "crop": f"centre {args.size}x{args.size} of the 2x-downscaled image",
             "arch": "siren", "depth": args.depth, "hidden_widths": widths, "fit_steps": args.steps,
             "fit_lr": 1e-3,
             "qat_steps": args.qat_steps, "qat_lr": args.qat_lr, "qat": "per-row LSQ steps, cosine schedule",
             "qat_baseline_steps": args.qat_steps + args.finetune,
             "quant_bits": args.quant_bits, "qat_bits": args.qat_bits, "sinr_bits": args.sinr_bits,
             "sparsities": args.sparsities, "overcomplete": args.overcomplete, "finetune_steps": args.finetune,
             "finetune_lr": args.finetune_lr, "seed": 0, "container": "inrz v2"}
    write_json(out, {"benchmark": "sinr_qat",
                     "claim": "SINR on the QAT baseline vs that baseline at equal PSNR; the SINR paper: 42-49 % "
                              "smaller",
                     "setup": setup, "summary": summary, "fronts": fronts,
                     "compressai": {c: compressai_json(c, f"inrkit {c}, {setup['crop']}, SIREN {args.depth} x {widths}",
                                                       f) for c, f in fronts.items()},
                     "curves": curves, "points": points, "seconds": time.perf_counter() - t_start,
                     "environment": run_environment()})
    plot(fronts, out.with_suffix(".png"), f"SINR on QAT: {len(IMAGES)} Kodak crops {args.size}x{args.size}, "
                                          f"SIREN {args.depth} x {widths}")
    for key, row in summary.items():
        print(f"{key}: mean saving {row['mean_saving_percent']}, payload {row['payload_mean_saving_percent']}, "
              f"BD-rate {row['bd_rate_percent']}, PSNR range {row['psnr_range']}, "
              f"per image {row['per_image_mean_saving_percent']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
