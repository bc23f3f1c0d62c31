"""Rate-distortion on Kodak: SINR against the COIN and quantisation baselines, JPEG and WebP.

For every image and network size a SIREN is fitted once; each INR codec then encodes
that same network at several settings (sinr: sparsity x bits; quant: bits; coin: one).
Every point is a real ``.inrz`` file (bpp counts the whole file: header, payload,
checksum) decoded and measured. Settings are averaged over images (CompressAI style)
and each codec's curve is its Pareto front. JPEG and WebP (Pillow) run on the same images.
Reported: BD-rate of sinr against coin and quant, and the storage saving of sinr at
equal PSNR (the paper claims 42-49 %).

    .venv/bin/python bench/compress_rd.py          # CPU: 3 images at 1/4 size, 500 steps (~10 min)
    .venv/bin/python bench/compress_rd.py --full   # GPU: 24 images, full size, long fits
    .venv/bin/python bench/compress_rd.py --full --depth 2 --widths 32 --out bench/results/compress_rd_h2m32.json
                                                   # the paper's (h=2, m=32): 2 hidden layers of 32
    .venv/bin/python bench/compress_rd.py --default-rule   # compress's default rate rule (3 min, 1 thread)

``--default-rule``: a 64x3 SIREN fitted to a 128x128 crop of three Kodak images, then ``inrkit compress``'s
defaults: with the signal (the rule: the smallest file within 1 dB of the model's own PSNR) and without it (the
fixed conservative setting), beside fixed settings -> bench/results/compress_default_rule.json.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inrkit import metrics
from inrkit.compress.decode.layout import SinrOptions
from inrkit.compress.encode.encoder import compress_model, encode_sinr
from inrkit.compress.encode.finetune import finetune_codes
from inrkit.compress.encode.model import decode_model
from inrkit.compress.encode.sparse import sparse_code
from inrkit.models import MLP, siren
from inrkit.signals import ImageSignal
from inrkit.train import FitConfig, fit
from inrkit.utils import resolve_device, run_environment, write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
PAPER_SAVING = (42.0, 49.0)  # SINR paper: storage reduction at equal quality, in %


# ------------------------------------------------------------------ metrics
def bd_rate(rate_a: list[float], psnr_a: list[float], rate_b: list[float], psnr_b: list[float],
            window: tuple[float, float] | None = None) -> float | None:
    """Bjontegaard delta rate of curve B against A, in % (negative: B needs fewer bits).

    Fits log-rate as a polynomial of PSNR (cubic with 4+ points) on each curve and compares
    the integrals over the overlapping PSNR interval (Bjontegaard, VCEG-M33), narrowed to the PSNR
    ``window`` when one is given.
    """
    if min(len(rate_a), len(rate_b)) < 2:
        return None
    lo, hi = max(min(psnr_a), min(psnr_b)), min(max(psnr_a), max(psnr_b))
    if window is not None:
        lo, hi = max(lo, window[0]), min(hi, window[1])
    if hi <= lo:
        return None
    ints = []
    for rate, psnr in ((rate_a, psnr_a), (rate_b, psnr_b)):
        deg = min(3, len(rate) - 1)
        poly = np.polyint(np.polyfit(psnr, np.log(rate), deg))
        ints.append((np.polyval(poly, hi) - np.polyval(poly, lo)) / (hi - lo))
    return float((np.exp(ints[1] - ints[0]) - 1.0) * 100.0)


def bd_psnr(rate_a: list[float], psnr_a: list[float], rate_b: list[float], psnr_b: list[float]) -> float | None:
    """Bjontegaard delta PSNR of curve B against A, in dB (positive: B is better)."""
    if min(len(rate_a), len(rate_b)) < 2:
        return None
    la, lb = np.log(rate_a), np.log(rate_b)
    lo, hi = max(la.min(), lb.min()), min(la.max(), lb.max())
    if hi <= lo:
        return None
    ints = []
    for lr, psnr in ((la, psnr_a), (lb, psnr_b)):
        poly = np.polyint(np.polyfit(lr, psnr, min(3, len(lr) - 1)))
        ints.append((np.polyval(poly, hi) - np.polyval(poly, lo)) / (hi - lo))
    return float(ints[1] - ints[0])


def published_curves() -> dict[str, dict]:
    """The published full-size Kodak curves (CompressAI format) of ../shared/data/reference/kodak-rd, by name."""
    return {f.stem: json.loads(f.read_text()) for f in sorted((DATA / "reference" / "kodak-rd").glob("*.json"))}


def pareto(points: list[dict]) -> list[dict]:
    """Points not beaten by another with lower bpp and higher PSNR, sorted by bpp."""
    front, best = [], -np.inf
    for p in sorted(points, key=lambda p: (p["bpp"], -p["psnr"])):
        if p["psnr"] > best:
            front.append(p)
            best = p["psnr"]
    return front


def saving_at_equal_psnr(ours: list[dict], base: list[dict], n: int = 9) -> list[dict]:
    """1 - bpp_ours / bpp_base at PSNRs both curves reach (log-bpp interpolated along PSNR)."""
    lo = max(ours[0]["psnr"], base[0]["psnr"])
    hi = min(ours[-1]["psnr"], base[-1]["psnr"])
    if hi <= lo:
        return []
    rows = []
    for q in np.linspace(lo, hi, n):
        b_ours = np.exp(np.interp(q, [p["psnr"] for p in ours], np.log([p["bpp"] for p in ours])))
        b_base = np.exp(np.interp(q, [p["psnr"] for p in base], np.log([p["bpp"] for p in base])))
        rows.append({"psnr": float(q), "bpp": float(b_ours), "bpp_base": float(b_base),
                     "saving_percent": float(100 * (1 - b_ours / b_base))})
    return rows


# ------------------------------------------------------------------ codecs
def load_image(path: Path, scale: int) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    if scale > 1:
        img = img.resize((img.width // scale, img.height // scale), Image.Resampling.LANCZOS)
    return np.asarray(img)


def classic(img: np.ndarray, fmt: str, quality: int) -> tuple[int, float, float, float]:
    buf = io.BytesIO()
    t0 = time.perf_counter()
    Image.fromarray(img).save(buf, format=fmt, quality=quality)
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return len(buf.getvalue()), metrics.psnr(dec, img, data_range=255.0), enc, time.perf_counter() - t0


def inr_points(model, signal: ImageSignal, pixels: int, args) -> list[dict]:
    """Encode one fitted network with every codec setting; each point is a decoded real file."""
    meta = signal.metadata()
    out = []

    def add(codec: str, setting: str, data: bytes, enc_s: float) -> None:
        t0 = time.perf_counter()
        dec, header = decode_model(data)
        dec_s = time.perf_counter() - t0
        payload = sum(header["sizes"])
        out.append({"codec": codec, "setting": setting, "bytes": len(data), "bpp": 8 * len(data) / pixels,
                    "bpp_payload": 8 * payload / pixels, "psnr": float(signal.evaluate(dec)["psnr"]),
                    "encoding_time": enc_s, "decoding_time": dec_s})

    t0 = time.perf_counter()
    add("coin", "fp16", compress_model(model, "coin", signal=meta), time.perf_counter() - t0)
    for bits in args.quant_bits:
        t0 = time.perf_counter()
        add("quant", f"b{bits}", compress_model(model, "quant", bits=bits, signal=meta), time.perf_counter() - t0)
    for sp in args.sparsities:
        t0 = time.perf_counter()  # the paper's variant: the first layer sparse-coded too (flattened blocks)
        paper = sparse_code(model, SinrOptions(sparsity=sp, overcomplete=args.overcomplete, code_first=True))
        for bits in args.sinr_bits:
            add("sinr-paper", f"s{sp}-b{bits}", encode_sinr(replace(paper, options=replace(paper.options, bits=bits)),
                                                            meta), time.perf_counter() - t0)
        t0 = time.perf_counter()
        code = sparse_code(model, SinrOptions(sparsity=sp, overcomplete=args.overcomplete))
        code_s = time.perf_counter() - t0
        tuned, tune_s = None, 0.0
        if args.finetune:
            t0 = time.perf_counter()
            tuned = finetune_codes(code, signal, steps=args.finetune, lr=args.finetune_lr, device=args.device)
            tune_s = time.perf_counter() - t0
        for bits in args.sinr_bits:
            opts = replace(code.options, bits=bits)
            t0 = time.perf_counter()
            add("sinr", f"s{sp}-b{bits}", encode_sinr(replace(code, options=opts), meta),
                code_s + time.perf_counter() - t0)
            if tuned is not None:
                t0 = time.perf_counter()
                add("sinr-ft", f"s{sp}-b{bits}", encode_sinr(replace(tuned, options=opts), meta),
                    code_s + tune_s + time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------ main
def network(width: int, depth: int = 3) -> MLP:
    """The SIREN every arm (coin, quant, sinr, sinr-ft, sinr-paper) encodes: 2 -> ``depth`` hidden layers of
    ``width`` -> 3, seed 0. The SINR paper's (h, m) is ``network(m, h)``."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return siren(2, 3, [width] * depth, generator=torch.Generator().manual_seed(0))


def rd_folder(out: Path, rd_dir: str | None = None) -> Path:
    """Where the CompressAI-style curves go: ``rd_dir`` if given; ``kodak-rd/`` beside the default output
    (``compress_rd.json``); else ``STEM_kodak-rd/`` beside ``out``, so runs with other ``--out`` names (one per
    configuration, as bench/reproduce.py writes them) do not overwrite each other's curves."""
    if rd_dir:
        return Path(rd_dir)
    return out.parent / ("kodak-rd" if out.name == "compress_rd.json" else f"{out.stem}_kodak-rd")


def average(points: list[dict], n_images: int) -> dict[str, list[dict]]:
    """Average bpp/PSNR over images for each (codec, setting); keep settings present for every image."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["codec"], p["setting"]), []).append(p)
    curves: dict[str, list[dict]] = {}
    for (codec, setting), ps in groups.items():
        if len(ps) != n_images:
            continue
        row = {"setting": setting, **{k: float(np.mean([p[k] for p in ps]))
                                      for k in ("bpp", "bpp_payload", "psnr", "encoding_time", "decoding_time")}}
        curves.setdefault(codec, []).append(row)
    return curves


def compressai_json(name: str, desc: str, front: list[dict]) -> dict:
    return {"name": name, "description": desc,
            "results": {k: [p[src] for p in front] for k, src in
                        (("bpp", "bpp"), ("psnr-rgb", "psnr"), ("encoding_time", "encoding_time"),
                         ("decoding_time", "decoding_time"))}}


def plot(fronts: dict[str, list[dict]], refs: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    styles = ["--", ":", "-."]
    for j, (name, ref) in enumerate(sorted(refs.items())):
        r = ref["results"]
        ax.plot(r["bpp"], r["psnr-rgb"], styles[j % 3], color="0.55", lw=0.9,
                label=f"{ref.get('name', name)} (published)")
    colors = {"sinr": "tab:red", "sinr-ft": "tab:purple", "sinr-paper": "tab:pink", "quant": "tab:blue",
              "coin": "tab:green", "jpeg": "tab:orange", "webp": "tab:brown"}
    for name, front in fronts.items():
        ax.plot([p["bpp"] for p in front], [p["psnr"] for p in front], "o-", lw=2, ms=4,
                color=colors.get(name), label=f"{name} (this run)")
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel("PSNR RGB (dB)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parser() -> argparse.ArgumentParser:
    """The command line (``main`` parses it; tests and bench/reproduce.py use it too)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="24 images at full size, long fits (GPU)")
    p.add_argument("--default-rule", action="store_true",
                   help="instead: compress's default rate rule on 64x3 SIRENs of 128x128 Kodak crops")
    p.add_argument("--images", type=int, default=None, help="number of Kodak images")
    p.add_argument("--scale", type=int, default=None, help="downsampling factor")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--widths", default=None, help="hidden widths to try (each with --depth layers), e.g. 20,28,40")
    p.add_argument("--depth", type=int, default=3,
                   help="hidden layers of the fitted SIRENs (default 3; the SINR paper's h: --depth 2 --widths 32)")
    p.add_argument("--finetune", type=int, default=None, help="coefficient fine-tuning steps (sinr-ft curve)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=str(RESULTS / "compress_rd.json"),
                   help="result JSON (the plot is written beside it, as .png); name it per configuration")
    p.add_argument("--rd-dir", default=None, help="folder of the CompressAI-style curves (default: kodak-rd/ "
                   "beside the default --out, else OUT-STEM_kodak-rd/ beside --out)")
    return p


RULE_IMAGES = ("kodim05", "kodim13", "kodim23")
RULE_CROP = (192, 320, 320, 448)  # rows, columns of the 768x512 image: its centre 128x128


def default_rule(out: Path, steps: int) -> dict:
    """PSNR loss and size of ``compress_file``'s defaults (with and without the signal) and of fixed settings, on
    64x3 SIRENs fitted to 128x128 Kodak crops."""
    import tempfile

    from inrkit.compress.encode.api import DEFAULT_MAX_LOSS_DB, CompressConfig, compress_file
    from inrkit.models import save_model

    torch.set_num_threads(1)
    rows = []
    r0, r1, c0, c1 = RULE_CROP
    with tempfile.TemporaryDirectory() as tmp:
        for stem in RULE_IMAGES:
            path = DATA / "kodak" / f"{stem}.png"
            signal = ImageSignal(load_image(path, 1)[r0:r1, c0:c1], name=path.name)
            crop_png = Path(tmp) / f"{stem}.png"
            Image.fromarray(load_image(path, 1)[r0:r1, c0:c1]).save(crop_png)
            t0 = time.perf_counter()
            res = fit(network(64), signal, FitConfig(steps=steps, lr=1e-3, progress=False, precision="fp32"))
            model = res.model.cpu()
            own = float(signal.evaluate(model)["psnr"])
            model_path = Path(tmp) / f"{stem}.safetensors"
            save_model(model, model_path, signal=signal.metadata())
            row: dict = {"image": stem, "crop": list(RULE_CROP), "fit_psnr": own,
                         "fit_seconds": time.perf_counter() - t0, "points": []}
            runs = [("sinr", "default, with --signal (rule)", {"signal_path": crop_png}),
                    ("sinr", "default, no signal", {}),
                    ("quant", "default, with --signal (rule)", {"signal_path": crop_png}),
                    ("quant", "default, no signal", {})]
            runs += [("sinr", f"sparsity {sp}, {b} bits", {"sparsity": sp, "bits": b})
                     for sp in (0.2, 0.3, 0.4, 0.48) for b in (8, 10, 12)]
            runs += [("quant", f"{b} bits", {"bits": b}) for b in (6, 8, 10, 12)]
            for codec, setting, kw in runs:
                t0 = time.perf_counter()
                signal_path = kw.pop("signal_path", None)
                rep = compress_file(model_path, Path(tmp) / "m.inrz", CompressConfig(codec, progress=False, **kw),
                                    signal_path=signal_path)
                dec, _ = decode_model((Path(tmp) / "m.inrz").read_bytes())
                psnr = float(signal.evaluate(dec)["psnr"])
                row["points"].append({"codec": codec, "setting": setting, "bytes": rep["bytes"],
                                      "bpp": 8 * rep["bytes"] / (128 * 128), "psnr": psnr, "loss_db": own - psnr,
                                      "chosen": {k: rep.get(k) for k in ("sparsity", "bits", "rate_rule")},
                                      "seconds": time.perf_counter() - t0})
                print(f"{stem} {codec:5s} {setting:32s} {rep['bytes']:6d} B  {psnr:6.2f} dB  (-{own - psnr:.2f})",
                      flush=True)
            rows.append(row)
    result = {"benchmark": "compress_default_rule",
              "claim": f"compress's default keeps the PSNR within {DEFAULT_MAX_LOSS_DB:g} dB of the model's own when "
                       "the signal is given (the smallest such file), and its fixed no-signal default loses at most "
                       "about 1 dB on these models",
              "config": {"images": list(RULE_IMAGES), "crop": list(RULE_CROP), "network": "SIREN 2-64-64-64-3",
                         "fit_steps": steps, "lr": 1e-3},
              "rows": rows,
              "environment": {**run_environment(threads=1),
                              "note": "shared lock (sizes and PSNR only; no timing claim)"}}
    write_json(out, result)
    return result


def main() -> None:
    args = parser().parse_args()
    if args.default_rule:
        default_rule(RESULTS / "compress_default_rule.json", args.steps or 2000)
        return
    if args.depth < 1:
        raise SystemExit(f"--depth must be >= 1, got {args.depth}")
    full = args.full
    args.images = args.images or (24 if full else 3)
    args.scale = args.scale or (1 if full else 4)
    args.steps = args.steps or (20000 if full else 500)
    args.lr = args.lr or (2e-4 if full else 1e-3)
    args.finetune = (1000 if full else 100) if args.finetune is None else args.finetune
    args.finetune_lr = 1e-4
    widths = [int(w) for w in (args.widths or ("16,24,32,48,64,96" if full else "20,28,40,56")).split(",")]
    args.sparsities = [0.2, 0.3, 0.4, 0.48]
    args.sinr_bits = [6, 8]
    args.quant_bits = [5, 6, 7, 8]
    args.overcomplete = 8.0
    if not full:
        torch.set_num_threads(1)
    kodak = DATA / "kodak"
    if not kodak.is_dir():
        raise SystemExit(f"Kodak images not found at {kodak}")
    paths = sorted(kodak.glob("kodim*.png"))[: args.images]
    device = resolve_device(args.device)
    points, t_start = [], time.perf_counter()
    for path in paths:
        img = load_image(path, args.scale)
        pixels = img.shape[0] * img.shape[1]
        signal = ImageSignal(img, name=path.name)
        for q in range(5, 100, 10):
            for fmt, name in (("JPEG", "jpeg"), ("WEBP", "webp")):
                n, ps, enc, dec = classic(img, fmt, q)
                points.append({"image": path.name, "codec": name, "setting": f"q{q}", "bytes": n, "bpp": 8 * n / pixels,
                               "bpp_payload": 8 * n / pixels, "psnr": ps, "encoding_time": enc, "decoding_time": dec})
        for w in widths:
            model = network(w, args.depth)
            t0 = time.perf_counter()
            config = FitConfig(steps=args.steps, lr=args.lr, device=str(device), progress=False, precision="fp32")
            res = fit(model, signal, config)
            fit_s = time.perf_counter() - t0
            model = res.model.cpu()
            for pt in inr_points(model, signal, pixels, args):
                pt.update(image=path.name, setting=f"w{w}-{pt['setting']}", width=w, depth=args.depth,
                          fit_seconds=fit_s)
                points.append(pt)
            print(f"{path.name} depth={args.depth} w={w}: fit {res.metrics['psnr']:.2f} dB in {fit_s:.0f}s "
                  f"[{time.perf_counter() - t_start:.0f}s total]", flush=True)
    curves = average(points, len(paths))
    fronts = {c: pareto(v) for c, v in curves.items()}
    summary: dict = {}
    for base in ("coin", "quant"):
        for ours in ("sinr", "sinr-ft", "sinr-paper"):
            if ours not in fronts or base not in fronts:
                continue
            a, b = fronts[base], fronts[ours]
            rows = saving_at_equal_psnr(b, a)
            summary[f"{ours}_vs_{base}"] = {
                "bd_rate_percent": bd_rate([x["bpp"] for x in a], [x["psnr"] for x in a],
                                           [x["bpp"] for x in b], [x["psnr"] for x in b]),
                "bd_psnr_db": bd_psnr([x["bpp"] for x in a], [x["psnr"] for x in a],
                                      [x["bpp"] for x in b], [x["psnr"] for x in b]),
                "storage_saving_at_equal_psnr": rows,
                "mean_saving_percent": float(np.mean([r["saving_percent"] for r in rows])) if rows else None,
                "paper_claim_percent": PAPER_SAVING,
            }
    payload_fronts = {c: pareto([dict(x, bpp=x["bpp_payload"]) for x in v]) for c, v in curves.items()}
    for base in ("coin", "quant"):
        for ours in ("sinr", "sinr-ft", "sinr-paper"):
            if f"{ours}_vs_{base}" in summary:
                a, b = payload_fronts[base], payload_fronts[ours]
                rows = saving_at_equal_psnr(b, a)
                summary[f"{ours}_vs_{base}"]["payload_only"] = {
                    "bd_rate_percent": bd_rate([x["bpp"] for x in a], [x["psnr"] for x in a],
                                               [x["bpp"] for x in b], [x["psnr"] for x in b]),
                    "mean_saving_percent": float(np.mean([r["saving_percent"] for r in rows])) if rows else None}
    refs = published_curves()
    out = Path(args.out)
    rd_dir = rd_folder(out, args.rd_dir)
    for codec, front in fronts.items():
        desc = (f"inrkit {codec}, {len(paths)} Kodak images at 1/{args.scale} size, {args.steps} fitting steps, "
                f"SIREN {args.depth} x {widths}")
        write_json(rd_dir / f"{codec}.json", compressai_json(codec, desc, front))
    setup = {"images": [p.name for p in paths], "scale": args.scale, "steps": args.steps, "lr": args.lr,
             "hidden_widths": widths, "depth": args.depth, "arch": "siren", "sparsities": args.sparsities,
             "sinr_bits": args.sinr_bits, "quant_bits": args.quant_bits, "overcomplete": args.overcomplete,
             "finetune_steps": args.finetune, "device": str(device), "full": full, "rd_dir": str(rd_dir),
             "seconds": time.perf_counter() - t_start}
    write_json(out, {"benchmark": "compress_rd", "setup": setup, "summary": summary,
                     "fronts": fronts, "curves": curves, "points": points, "environment": run_environment()})
    title = (f"Kodak, {len(paths)} images at 1/{args.scale} size, {args.steps} steps, SIREN depth {args.depth}"
             + ("" if args.scale == 1 else " (published curves: full size, not comparable in bpp)"))
    plot(fronts, refs, out.with_suffix(".png"), title)
    print(json.dumps(summary, indent=1)[:4000])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
