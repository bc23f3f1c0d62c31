"""Rate-distortion of the ``grid`` latent-grid codec against JPEG, WebP, JPEG 2000 and AVIF.

Every codec runs in this one process on the same images: Kodak images downscaled 2x (384x256, Lanczos) and
images of another source (scikit-image's bundled ``chelsea``, ``coffee``, ``astronaut``, resized to a width
of 384), so that the codec is not judged on Kodak alone. Every point is a real file decoded and measured
(PSNR on RGB 0..255; bpp counts the whole file).

  grid      inrkit.compress.encode.latent.encode_pixels at each ``--lambdas`` value, ``--preset``
  jpeg      Pillow, quality 10..95
  webp      Pillow (libwebp, method 6), quality 5..95
  jpeg2000  Pillow (OpenJPEG), irreversible 9/7 wavelet WITH the colour transform (``mct=1``, what
            ``opj_compress`` does for RGB; Pillow's default ``mct=0`` codes R, G, B separately and loses
            1.5-2.5 dB), rates 0.1..2 bpp
  avif      imagecodecs (libavif), quality 20..90

Reported per image and averaged over each image set (CompressAI style: points of one setting averaged):
BD-rate and BD-PSNR of grid against every baseline (Bjontegaard, ``bench/compress_rd.py``; the BD-rate also
restricted to 0.2-1.0 bpp, ``bd_rate_percent_window``: the PSNR interval where both curves are in it), the grid
codec's encode and decode seconds, and ``psnr_vs_<codec>_at_same_bpp`` (each grid point against the
baseline's log-bpp-interpolated curve). CompressAI-format curves under ``curves``.

    .venv/bin/python bench/grid_rd.py --jobs 2    # CPU default: 6 Kodak + 3 other images, 30 min (2 x 1 thread)
    .venv/bin/python bench/grid_rd.py --kodak 2 --other 1 --preset fast   # what fits in ~10 min
    .venv/bin/python bench/grid_rd.py --presets             # CPU s of each preset, uncompiled and compiled (11 min)
    .venv/bin/python bench/grid_rd.py --encode-speed        # encode CPU s/MP, uncompiled vs compiled (~25 min)
    .venv/bin/python bench/grid_rd.py --encode-speed kodim23,kodim20 --seeds 1,2,3   # their spread (~20 min)
    .venv/bin/python bench/grid_rd.py --rescore bench/results/grid_rd.json  # comparisons again, no encoding
    .venv/bin/python bench/grid_rd.py --all --jobs 2        # all 24 Kodak images (downscaled), 3 other
    .venv/bin/python bench/grid_rd.py --full                # 24 full-size Kodak images (GPU), published curves
    .venv/bin/python bench/grid_rd.py --bpp-targets         # encode --bpp: 3 images x 0.25/0.5/1.0 bpp (fast preset)
    .venv/bin/python bench/grid_rd.py --side-info           # bytes by part at 0.1 bpp, format v2 vs v3 (2 images)
    .venv/bin/python bench/grid_rd.py --full-size --lambdas 600   # kodim20, kodim13 at full size (~40 min)
    .venv/bin/python bench/grid_rd.py --decode-speed --lambdas 150,2400,20000   # decode s/MP (~10 min)
    .venv/bin/python bench/grid_rd.py --artefacts --lambdas 150   # kodim13 /2 beside JPEG 2000, AVIF (~4 min)

``--bpp-targets`` (-> grid_bpp_targets.json): ``encode_to_target`` at 0.25, 0.5 and 1.0 bpp on three 256x256 photos
(scikit-image's astronaut resized, the centre crops of kodim05 and kodim23), ``--preset`` (default here: fast), plus
the astronaut at 0.5 bpp with the default preset: achieved bpp, relative error, trainings, PSNR, seconds.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from compress_rd import bd_psnr, bd_rate, pareto, published_curves
from PIL import Image

from inrkit.compress.encode.latent import encode_pixels, preset_options
from inrkit.utils import run_environment, write_json

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
OTHER = ("chelsea", "coffee", "astronaut")
BASELINES = ("jpeg", "webp", "jpeg2000", "avif")


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kodak", type=int, default=6, help="Kodak images (the first N)")
    p.add_argument("--other", type=int, default=3, help="non-Kodak images (chelsea, coffee, astronaut)")
    p.add_argument("--preset", default="default", help="grid encoder preset")
    p.add_argument("--lambdas", default="150,600,2400", help="grid lambda values")
    p.add_argument("--all", action="store_true", help="all 24 Kodak images (downscaled 2x)")
    p.add_argument("--full", action="store_true",
                   help="24 full-size Kodak images, no other images (GPU); the published Kodak curves in the plot")
    p.add_argument("--presets", action="store_true",
                   help="instead: time every preset on kodim23 (downscaled 2x) at lambda 600 -> grid_presets.json")
    p.add_argument("--rescore", metavar="JSON", help="recompute the comparisons of a saved run's points (no encoding)")
    p.add_argument("--bpp-targets", action="store_true", help="instead: encode --bpp accuracy -> grid_bpp_targets.json")
    p.add_argument("--side-info", action="store_true", help="instead: bytes by part at 0.1 bpp -> grid_side_info.json")
    p.add_argument("--full-size", metavar="IMAGES", nargs="?", const="kodim20,kodim13",
                   help="instead: full-size Kodak images (default kodim20,kodim13) at --lambdas against every baseline "
                        "and Cool-chic's published per-image points, with encode and decode CPU seconds per megapixel "
                        "(one thread) -> grid_full_size.json")
    p.add_argument("--encode-speed", metavar="IMAGES", nargs="?", const="kodim23,kodim20,kodim13,kodim05",
                   help="instead: encode CPU s/MP uncompiled vs compiled (half size; kodim20 full size, compiled) "
                        "-> grid_encode_speed.json")
    p.add_argument("--seeds", default="0", help="--encode-speed seeds (other than 0 alone: half size only, "
                                                "-> grid_encode_seeds.json)")
    p.add_argument("--decode-speed", action="store_true",
                   help="instead: decode CPU seconds per megapixel, one thread, of kodim20 at full size and a 384x256 "
                        "crop over --lambdas (trained --steps) -> grid_decode_speed.json")
    p.add_argument("--steps", type=int, default=300, help="training steps of the --decode-speed files")
    p.add_argument("--artefacts", metavar="IMAGE", nargs="?", const="kodim13",
                   help="instead: a Kodak image (default kodim13) downscaled 2x at a low rate (--lambdas, the first), "
                        "side by side with JPEG 2000 and AVIF at the same bpp -> grid_artefacts.png/.json")
    p.add_argument("--jobs", type=int, default=1,
                   help="images encoded in parallel, one thread each (times then include the sharing)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "grid_rd.json"))
    a = p.parse_args(argv)
    if a.full or a.all:
        a.kodak = 24
    if a.full:
        a.other = 0
    return a


def kodak_images(n: int, scale: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for path in sorted(KODAK.glob("kodim*.png"))[:n]:
        img = Image.open(path).convert("RGB")
        if scale > 1:
            img = img.resize((img.width // scale, img.height // scale), Image.LANCZOS)
        out.append((path.stem, np.asarray(img)))
    return out


def other_images(n: int, width: int = 384) -> list[tuple[str, np.ndarray]]:
    import skimage.data

    out = []
    for name in OTHER[:n]:
        img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        h = round(img.height * width / img.width)
        out.append((name, np.asarray(img.resize((width, h), Image.LANCZOS))))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def _pil(fmt: str, **kw: Any) -> Callable[[np.ndarray], bytes]:
    def enc(img: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, **kw)
        return buf.getvalue()
    return enc


def _pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def baseline_settings(name: str, values: Sequence[float] | None = None,
                      ) -> list[tuple[str, Callable[[np.ndarray], bytes], Callable]]:
    """``(setting, encode, decode)`` of a classical codec, at ``values`` (its qualities, or JPEG 2000's bpp) or
    the codec's default grid."""
    if name == "jpeg":
        return [(f"q{q}", _pil("JPEG", quality=q), _pil_decode) for q in values or (10, 20, 30, 45, 60, 75, 85, 95)]
    if name == "webp":
        return [(f"q{q}", _pil("WEBP", quality=q, method=6), _pil_decode)
                for q in values or (5, 15, 30, 50, 70, 85, 95)]
    if name == "jpeg2000":
        return [(f"{b}bpp", _pil("JPEG2000", quality_mode="rates", quality_layers=[24.0 / b], irreversible=True,
                                 mct=1), _pil_decode) for b in values or (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)]
    import imagecodecs

    return [(f"q{q}", lambda img, q=q: imagecodecs.avif_encode(img, level=q), imagecodecs.avif_decode)
            for q in values or (20, 35, 50, 60, 70, 80, 90)]


def classic_points(name: str, img: np.ndarray) -> list[dict]:
    out = []
    for setting, enc, dec in baseline_settings(name):
        t0 = time.perf_counter()
        data = enc(img)
        t1 = time.perf_counter()
        back = dec(data)
        t2 = time.perf_counter()
        out.append({"setting": setting, "bpp": 8.0 * len(data) / (img.shape[0] * img.shape[1]),
                    "psnr": _psnr(img, back), "encoding_time": t1 - t0, "decoding_time": t2 - t1})
    return out


def grid_points(img: np.ndarray, lambdas: list[float], preset: str) -> list[dict]:
    out = []
    for lmbda in lambdas:
        enc = encode_pixels(img, preset_options(preset, lmbda=lmbda))
        r = enc.report
        out.append({"setting": f"lambda{lmbda:g}", "bpp": r["bpp"], "psnr": r["psnr"],
                    "encoding_time": r["encode_seconds"], "decoding_time": r["decode_seconds"],
                    "latent_bytes": r["latent_bytes"], "bytes": r["bytes"], "steps": r["steps"]})
        print(f"  grid lambda {lmbda:g}: {r['bpp']:.3f} bpp {r['psnr']:.2f} dB "
              f"({r['encode_seconds']:.0f} s encode, {r['decode_seconds']:.1f} s decode)", flush=True)
    return out


def at_same_bpp(ours: list[dict], base: list[dict]) -> list[float | None]:
    """PSNR of each of ``ours`` minus the baseline's at the same bpp (log-bpp interpolation; None outside)."""
    front = pareto(base)
    lb, pb = np.log([p["bpp"] for p in front]), [p["psnr"] for p in front]
    return [float(p["psnr"] - np.interp(np.log(p["bpp"]), lb, pb)) if lb[0] <= np.log(p["bpp"]) <= lb[-1]
            else None for p in ours]


BPP_WINDOW = (0.2, 1.0)
"""The target's bit rates (docs/compress.md): ``bd_rate_percent_window`` integrates only where both curves lie in it."""


def psnr_window(a: list[dict], b: list[dict], bpp: tuple[float, float] = BPP_WINDOW) -> tuple[float, float]:
    """PSNR interval where both Pareto curves ``a`` and ``b`` are within ``bpp`` (log-bpp interpolation)."""
    ends = []
    for front in (a, b):
        lb, pb = np.log([p["bpp"] for p in front]), [p["psnr"] for p in front]
        ends.append([float(np.interp(np.log(v), lb, pb)) for v in bpp])
    return max(ends[0][0], ends[1][0]), min(ends[0][1], ends[1][1])


def compare(points: dict[str, list[dict]]) -> dict[str, Any]:
    """BD-rate / BD-PSNR of grid against each baseline (over the curves' overlap, and over the part of it
    within :data:`BPP_WINDOW`), and the per-point PSNR differences."""
    g = pareto(points["grid"])
    out: dict[str, Any] = {}
    for name in BASELINES:
        b = pareto(points[name])
        args = ([p["bpp"] for p in b], [p["psnr"] for p in b], [p["bpp"] for p in g], [p["psnr"] for p in g])
        out[name] = {"bd_rate_percent": bd_rate(*args), "bd_psnr_db": bd_psnr(*args),
                     "bd_rate_percent_window": bd_rate(*args, window=psnr_window(g, b)),
                     "psnr_diff_at_same_bpp": at_same_bpp(points["grid"], points[name])}
    return out


def average(per_image: list[dict[str, list[dict]]]) -> dict[str, list[dict]]:
    """Points of one setting averaged over the images (bpp, PSNR and times)."""
    out = {}
    for codec in per_image[0]:
        rows = []
        for i, first in enumerate(per_image[0][codec]):
            pts = [img[codec][i] for img in per_image]
            rows.append({"setting": first["setting"], **{k: float(np.mean([p[k] for p in pts])) for k in
                                                         ("bpp", "psnr", "encoding_time", "decoding_time")}})
        out[codec] = rows
    return out


def image_points(name: str, stem: str, img: np.ndarray, lambdas: list[float], preset: str,
                 threads: int) -> dict[str, list[dict]]:
    """Every codec's points on one image (``threads`` torch threads for the grid codec)."""
    torch.set_num_threads(threads)
    print(f"{name}: {stem} {img.shape[1]}x{img.shape[0]}", flush=True)
    return {"grid": grid_points(img, lambdas, preset), **{b: classic_points(b, img) for b in BASELINES}}


def all_points(sets: dict[str, list[tuple[str, np.ndarray]]], lambdas: list[float], preset: str,
               jobs: int) -> dict[str, list[dict[str, list[dict]]]]:
    """Points of every image of every set; with ``jobs`` > 1, images in parallel processes of one thread each."""
    work = [(name, stem, img) for name, images in sets.items() for stem, img in images]
    if jobs <= 1:
        done = [image_points(n, s, i, lambdas, preset, torch.get_num_threads()) for n, s, i in work]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(image_points, n, s, i, lambdas, preset, 1) for n, s, i in work]
            done = [f.result() for f in futures]
    out: dict[str, list[dict[str, list[dict]]]] = {name: [] for name in sets}
    for (name, _, _), pts in zip(work, done):
        out[name].append(pts)
    return out


def summarise(name: str, images: list[tuple[str, np.ndarray]],
              per_image: list[dict[str, list[dict]]]) -> dict[str, Any]:
    rows = [{"image": stem, "shape": list(img.shape), "points": pts, "comparison": compare(pts)}
            for (stem, img), pts in zip(images, per_image)]
    mean = average(per_image)
    comp = compare(mean)
    per_image_bd = {b: [r["comparison"][b]["bd_rate_percent"] for r in rows] for b in BASELINES}
    curves = {c: {"name": c, "description": f"{c} on {name} (this run)",
                  "results": {"bpp": [p["bpp"] for p in pareto(v)], "psnr-rgb": [p["psnr"] for p in pareto(v)],
                              "encoding_time": [p["encoding_time"] for p in pareto(v)],
                              "decoding_time": [p["decoding_time"] for p in pareto(v)]}} for c, v in mean.items()}
    return {"images": [r["image"] for r in rows], "mean_points": mean, "comparison": comp,
            "per_image_bd_rate_percent": per_image_bd, "per_image": rows, "curves": curves}


def plot(sets: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, (name, s) in zip(axes[0], sets.items()):
        for codec, pts in s["mean_points"].items():
            front = pareto(pts)
            ax.plot([p["bpp"] for p in front], [p["psnr"] for p in front], "o-" if codec == "grid" else ".-",
                    lw=2.5 if codec == "grid" else 1.2, label=codec)
        if name == "kodak":  # full size: the published curves are comparable
            for ref, curve in published_curves().items():
                ax.plot(curve["results"]["bpp"], curve["results"]["psnr-rgb"], "--", lw=0.8, alpha=0.6,
                        label=f"{ref} (published)")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel("PSNR RGB (dB)")
        ax.set_title(f"{name}: {len(s['images'])} images", fontsize=9)
        ax.axvspan(0.2, 1.0, color="0.9", zorder=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rescore(path: Path) -> dict[str, Any]:
    """A saved run with every comparison recomputed from its points."""
    result = json.loads(path.read_text())
    for s in result["sets"].values():
        for row in s["per_image"]:
            row["comparison"] = compare(row["points"])
        s["comparison"] = compare(s["mean_points"])
        s["per_image_bd_rate_percent"] = {b: [r["comparison"][b]["bd_rate_percent"] for r in s["per_image"]]
                                          for b in BASELINES}
    result["bpp_window"] = list(BPP_WINDOW)
    return result


def report(sets: dict[str, Any]) -> None:
    for name, s in sets.items():
        for b, c in s["comparison"].items():
            print(f"{name}: grid vs {b}: BD-rate {c['bd_rate_percent']}, in {BPP_WINDOW} bpp "
                  f"{c['bd_rate_percent_window']}, BD-PSNR {c['bd_psnr_db']}")


def timed_encode(img: np.ndarray, preset: str, lmbda: float, compile: str = "auto",
                 seed: int = 0) -> tuple[dict[str, Any], bytes]:
    """One encode on one thread (PyTorch and NumPy's BLAS): its row (bpp, PSNR, bytes by part, CPU seconds per
    megapixel, whether the noise phase was compiled; ``compile``: the codec's ``auto`` rule, or ``off``) and file."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
        c0 = time.process_time()
        enc = encode_pixels(img, preset_options(preset, lmbda=lmbda, compile=compile, seed=seed))
        cpu = time.process_time() - c0
    r, mp = enc.report, img.shape[0] * img.shape[1] / 1e6
    return {"seed": seed, "compile": compile, "compiled": r["compiled"], "compile_seconds": r["compile_seconds"],
            "steps": r["steps"], "bpp": r["bpp"], "psnr": r["psnr"], "bytes_by_part": r["bytes_by_part"],
            "encode_cpu_seconds": cpu, "encode_cpu_seconds_per_mp": cpu / mp,
            "encode_wall_seconds": r["encode_seconds"], "decode_seconds": r["decode_seconds"]}, enc.data


def time_presets(out: Path) -> None:
    """Every preset on one image (kodim23 /2, lambda 600), uncompiled and with the ``auto`` rule: encode CPU
    seconds (one thread), bpp, PSNR, and the PSNR against JPEG 2000 at the same bpp."""
    from inrkit.compress.encode.latent import PRESETS

    img = dict(kodak_images(24, 2))["kodim23"]
    jpeg2000 = classic_points("jpeg2000", img)
    rows: dict[str, dict[str, Any]] = {}
    for preset in PRESETS:
        for compile in ("off", "auto"):
            row, _ = timed_encode(img, preset, 600.0, compile)
            row["psnr_vs_jpeg2000_at_same_bpp"] = at_same_bpp([row], jpeg2000)[0]
            rows.setdefault(preset, {})[compile] = row
            print(preset, json.dumps(row), flush=True)
    write_json(out, {"benchmark": "grid_presets", "image": "kodim23 downscaled 2x (384x256)", "lambda": 600.0,
                     "claim": "encode CPU seconds of each preset on one thread, uncompiled and compiled (auto rule)",
                     "presets": rows, "environment": run_environment(threads=1)})


def encode_speed(out: Path, stems: list[str], full: str, seeds: list[int]) -> None:
    """Default preset, lambda 600: encode CPU seconds per megapixel on one thread, uncompiled and with the ``auto``
    rule (which compiles the noise phase at these sizes), on half-size Kodak images ``stems`` at every seed and,
    ``auto`` only, on the full-size image ``full``; bpp and PSNR of each, to show the compiled files are as good
    (the seeds give the spread of one setting: compiled, the noise comes from another generator)."""
    images = dict(kodak_images(24, 2))
    rows = []
    for stem in stems:
        for seed in seeds:
            for compile in ("off", "auto"):
                rows.append({"image": f"{stem} /2", **timed_encode(images[stem], "default", 600.0, compile, seed)[0]})
                print(json.dumps(rows[-1]), flush=True)
    if full:
        img = np.asarray(Image.open(KODAK / f"{full}.png").convert("RGB"))
        rows.append({"image": full, **timed_encode(img, "default", 600.0)[0]})
        print(json.dumps(rows[-1]), flush=True)
    pairs = [(a, b) for a, b in zip(rows[0::2], rows[1::2]) if a["image"] == b["image"] and a["seed"] == b["seed"]]
    write_json(out, {"benchmark": "grid_encode_speed",
                     "claim": "compiling the noise phase encodes faster at the same rate-distortion (default preset, "
                              "lambda 600, one thread)",
                     "config": {"preset": "default", "lambda": 600.0, "half_size": stems, "seeds": seeds,
                                "full_size": full},
                     "rows": rows,
                     "speedup": [a["encode_cpu_seconds"] / b["encode_cpu_seconds"] for a, b in pairs],
                     "bpp_change_percent": [100 * (b["bpp"] / a["bpp"] - 1) for a, b in pairs],
                     "psnr_change_db": [b["psnr"] - a["psnr"] for a, b in pairs],
                     "environment": run_environment(threads=1)})


def target_images() -> list[tuple[str, np.ndarray]]:
    """Three 256x256 photos: the astronaut (scikit-image) resized, and the centre crops of kodim05 and kodim23."""
    import skimage.data

    astro = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.LANCZOS))
    out = [("astronaut", astro)]
    for stem in ("kodim05", "kodim23"):
        img = np.asarray(Image.open(KODAK / f"{stem}.png").convert("RGB"))
        r, c = (img.shape[0] - 256) // 2, (img.shape[1] - 256) // 2
        out.append((f"{stem}-centre", img[r:r + 256, c:c + 256]))
    return out


def bpp_targets(out: Path, preset: str) -> None:
    """``encode --bpp`` accuracy: achieved bpp against the target (within 5 % is the promise)."""
    from inrkit.compress.encode.latent import BPP_TOLERANCE, encode_to_target, start_lambda

    torch.set_num_threads(1)
    rows = []
    runs = [(name, img, bpp, preset) for name, img in target_images() for bpp in (0.25, 0.5, 1.0)]
    runs.append(("astronaut", target_images()[0][1], 0.5, "default"))
    for name, img, bpp, pre in runs:
        t0 = time.perf_counter()
        enc = encode_to_target(img, preset_options(pre, bpp=bpp, lmbda=start_lambda(bpp)), bpp=bpp)
        r = enc.report
        row = {"image": name, "preset": pre, "target_bpp": bpp, "bpp": r["bpp"], "error": r["bpp"] / bpp - 1,
               "within": abs(r["bpp"] / bpp - 1) <= BPP_TOLERANCE, "attempts": r["attempts"], "psnr": r["psnr"],
               "lambda": r["lambda"], "bytes_by_part": r["bytes_by_part"], "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    within = sum(r["within"] for r in rows)
    write_json(out, {"benchmark": "grid_bpp_targets",
                     "claim": f"encode --bpp meets its target within {BPP_TOLERANCE:.0%} (up to 3 trainings)",
                     "config": {"preset": preset, "targets": [0.25, 0.5, 1.0],
                                "images": [n for n, _ in target_images()],
                                "extra": "astronaut at 0.5 bpp with the default preset"},
                     "rows": rows, "within": f"{within} of {len(rows)}",
                     "max_abs_error": max(abs(r["error"]) for r in rows),
                     "environment": {**run_environment(threads=1),
                                     "note": "seconds are indicative, the claim is about bpp"}})


def previous_format_bytes(img: Any, feats: np.ndarray, target: np.ndarray, lmbda: float) -> dict[str, int]:
    """Bytes by part of the file the previous format wrote for the same latents and networks: version 2 (one
    synthesis exponent for every tensor, chosen by the same cost), codec name ``grid``, the signal's ``crop``
    and ``source_shape`` always stored, and the container's string table before ``inrz-latent``, ``latent``,
    ``v``, ``a``, ``fw``, ``ab``, ``sb`` and ``qb`` were added (their first 86 entries)."""
    from dataclasses import replace

    from inrkit.compress.decode import container
    from inrkit.compress.decode import latent as lc
    from inrkit.compress.encode.latent import SYNTH_EXPONENTS, _synth_bytes, _synth_error

    layers = len(img.synth_w)
    pixels = img.shape[0] * img.shape[1]
    q = min(SYNTH_EXPONENTS, key=lambda e: 8.0 * _synth_bytes(img, [e] * (layers + 1)) / pixels
            + lmbda * _synth_error(img, feats, target, [e] * (layers + 1)))
    old = replace(img, q=q)
    bits = lc.latent_bits(old.latents)
    arm_sec, abits = lc.encode_signed(np.concatenate([t.reshape(-1) for t in old.arm.tensors()]))
    synth_sec, sbits = lc.encode_signed(lc.synth_integers(old))
    sections = [lc.encode_latents(old.latents, old.arm, bits), arm_sec, synth_sec]
    params = {"v": 2, "levels": len(old.latents), "hidden": old.widths[1:-1], "a": old.arm_widths[1:-1],
              "bits": bits, "q": int(q), "fw": int(old.arm.fw), "ab": abits, "sb": sbits}
    header = {"format": lc.FORMAT, "codec": "grid", "shape": list(old.shape), "channels": old.channels,
              "params": params, "signal": {"kind": "image", "crop": None, "source_shape": list(old.shape)}}
    saved = container._KNOWN_ID
    container._KNOWN_ID = {s: i for i, s in enumerate(container.KNOWN_STRINGS[:86])}
    try:
        data = container.pack(header, sections, version=2)
    finally:
        container._KNOWN_ID = saved
    return lc.bytes_by_part(data)


def side_info(out: Path, preset: str) -> None:
    """Bytes by part at about 0.1 bpp (one training steered to it) on two 384x256 Kodak/2 images. For the
    networks of the previous release (synthesis 40, ARM 16, 16): the previous format's bytes
    (:func:`previous_format_bytes`) and this format's for the same trained latents and networks; then the file
    ``encode --bpp 0.1`` trains now (:data:`~inrkit.compress.encode.latent.LOW_RATE_NETWORKS`)."""
    from inrkit.compress.encode import latent as enc_mod

    torch.set_num_threads(1)
    captured: dict[str, Any] = {}
    original = enc_mod.choose_synth_steps

    def capture(img: Any, feats: np.ndarray, target: np.ndarray, lmbda: float) -> list[int]:
        captured.update(img=img, feats=feats, target=target, lmbda=lmbda)
        return original(img, feats, target, lmbda)

    def share(parts: dict[str, int]) -> float:
        return (parts["arm"] + parts["synthesis"] + parts["header"]) / sum(parts.values())

    enc_mod.choose_synth_steps = capture
    rows = []
    try:
        for stem, img in kodak_images(24, 2):
            if stem not in ("kodim01", "kodim23"):
                continue
            row: dict[str, Any] = {"image": stem, "shape": list(img.shape[:2]), "steered_to_bpp": 0.1}
            for name, options in (("previous_networks", preset_options(preset, lmbda=enc_mod.start_lambda(0.1))),
                                  ("now", preset_options(preset, bpp=0.1, lmbda=enc_mod.start_lambda(0.1)))):
                t0 = time.perf_counter()
                control = enc_mod.RateTarget(bpp=0.1, overhead_bits=enc_mod.overhead_bits(img.shape[:2], 3, options))
                e = enc_mod.encode_pixels(img, options, control=control)  # one training: its networks captured
                r = e.report
                row[name] = {"synthesis": list(options.hidden), "arm": list(options.arm_hidden), "bpp": r["bpp"],
                             "psnr": r["psnr"], "q": r["q"], "bytes_by_part": r["bytes_by_part"],
                             "side_share": share(r["bytes_by_part"]), "seconds": time.perf_counter() - t0}
                if name == "previous_networks":
                    c = captured
                    before = previous_format_bytes(c["img"], c["feats"], c["target"], c["lmbda"])
                    row["previous_format"] = {"bytes_by_part": before, "bytes": sum(before.values()),
                                              "bpp": 8 * sum(before.values()) / (img.shape[0] * img.shape[1]),
                                              "side_share": share(before)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        enc_mod.choose_synth_steps = original
    write_json(out, {"benchmark": "grid_side_info",
                     "claim": "at 0.1 bpp on 384x256 images, networks and header are less than half of the file",
                     "config": {"preset": preset, "steered_to_bpp": 0.1, "images": [r["image"] for r in rows]},
                     "rows": rows,
                     "environment": {**run_environment(threads=1), "note": "byte counts and PSNR (no timing claim)"}})


COOLCHIC = ROOT.parent / "shared" / "data" / "reference" / "coolchic" / "kodak-v5.0.tsv"


def coolchic_points(stem: str) -> list[dict]:
    """Cool-chic 5's published full-resolution points of one Kodak image (``kodak-v5.0.tsv``), by bpp."""
    rows = [line.split("\t") for line in COOLCHIC.read_text().splitlines()[1:] if line.strip()]
    pts = [{"setting": f"lambda{r[0]}", "bpp": float(r[5]), "psnr": float(r[4])} for r in rows if r[1] == stem]
    return sorted(pts, key=lambda p: p["bpp"])


def decode_seconds(data: bytes, repeats: int = 3) -> float:
    """Least CPU seconds of ``repeats`` decodes (parse, latents, synthesis to 8-bit pixels) of a latent file, NumPy's
    BLAS limited to one thread."""
    from threadpoolctl import threadpool_limits

    from inrkit.compress.decode import latent as lc

    best = float("inf")
    with threadpool_limits(1, user_api="blas"):  # one thread (OpenBLAS's second one only spins: 2x the CPU)
        for _ in range(repeats):
            t0 = time.process_time()
            lc.read(data).render()
            best = min(best, time.process_time() - t0)
    return best


def full_size(out: Path, stems: list[str], lambdas: list[float], preset: str) -> None:
    """The codec on full-size Kodak images, one thread: rate-distortion against JPEG, WebP, JPEG 2000, AVIF and
    Cool-chic's published points of the same images, bytes by part, encode and decode CPU seconds per megapixel
    (decode: the least of 3, measured after all encoding)."""
    rows = []
    for stem in stems:
        img = np.asarray(Image.open(KODAK / f"{stem}.png").convert("RGB"))
        mp = img.shape[0] * img.shape[1] / 1e6
        points, files = [], []
        for lmbda in lambdas:
            row, data = timed_encode(img, preset, lmbda)
            points.append({"setting": f"lambda{lmbda:g}", **row})
            files.append(data)
            print(f"{stem} lambda {lmbda:g}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB, encode "
                  f"{row['encode_cpu_seconds']:.0f} CPU s ({row['encode_cpu_seconds_per_mp']:.0f} s/MP)", flush=True)
        baselines = {b: classic_points(b, img) for b in BASELINES}
        baselines["coolchic"] = coolchic_points(stem)
        for p, data in zip(points, files):
            p["decode_cpu_seconds"] = decode_seconds(data)
            p["decode_cpu_seconds_per_mp"] = p["decode_cpu_seconds"] / mp
            for name, base in baselines.items():
                p[f"psnr_vs_{name}_at_same_bpp"] = at_same_bpp([p], base)[0]
            print(f"{stem} {p['setting']}: decode {p['decode_cpu_seconds_per_mp']:.2f} CPU s/MP; vs same bpp "
                  + ", ".join(f"{n} {p[f'psnr_vs_{n}_at_same_bpp']}" for n in baselines), flush=True)
        rows.append({"image": stem, "shape": list(img.shape), "megapixels": mp, "grid": points,
                     "baselines": baselines})
    write_json(out, {"benchmark": "grid_full_size",
                     "claim": "the latent codec on full-size Kodak images: PSNR against every baseline and Cool-chic 5 "
                              "at the same bpp; encode and decode CPU seconds per megapixel on one thread",
                     "config": {"images": stems, "lambdas": lambdas, "preset": preset,
                                "coolchic": "../shared/data/reference/coolchic/kodak-v5.0.tsv (published, not run)"},
                     "images": rows, "environment": run_environment(threads=1)})


def decode_speed(out: Path, lambdas: list[float], steps: int) -> None:
    """Decode CPU seconds per megapixel (least of 5, one thread) of kodim20 at full size and of a 384x256 crop,
    at each lambda. The files are trained only ``steps`` steps: the decoder's work depends on the image size and
    the rate (escapes), not on how well the latents were trained."""
    torch.set_num_threads(1)
    full = np.asarray(Image.open(KODAK / "kodim20.png").convert("RGB"))
    images = [("kodim20", full), ("kodim20 crop 384x256 (rows 128:384, cols 192:576)", full[128:384, 192:576])]
    rows = []
    for name, img in images:
        mp = img.shape[0] * img.shape[1] / 1e6
        for lmbda in lambdas:
            enc = encode_pixels(img, preset_options("fast", lmbda=lmbda, steps=steps))
            sec = decode_seconds(enc.data, repeats=5)
            rows.append({"image": name, "shape": list(img.shape), "lambda": lmbda, "steps": steps,
                         "bpp": enc.report["bpp"], "psnr": enc.report["psnr"],
                         "bytes_by_part": enc.report["bytes_by_part"],
                         "decode_cpu_seconds": sec, "decode_cpu_seconds_per_mp": sec / mp})
            print(json.dumps(rows[-1]), flush=True)
    write_json(out, {"benchmark": "grid_decode_speed",
                     "claim": "the latent decoder (parse, latents, synthesis to 8-bit pixels) takes <= 0.5 CPU s per "
                              "megapixel on one thread at any rate",
                     "config": {"lambdas": lambdas, "steps": steps, "repeats": 5},
                     "rows": rows, "max_seconds_per_mp": max(r["decode_cpu_seconds_per_mp"] for r in rows),
                     "environment": run_environment(threads=1)})


def closest_below(name: str, img: np.ndarray, bpp: float) -> tuple[dict, np.ndarray]:
    """A classical codec's file of the largest bpp not above ``bpp`` (its smallest if none is): point and pixels.
    JPEG 2000 is asked for ``bpp`` itself; AVIF's qualities 5..95 are tried in steps of 2."""
    files = [(8.0 * len(data) / (img.shape[0] * img.shape[1]), setting, data, dec)
             for setting, enc, dec in baseline_settings(name, [bpp] if name == "jpeg2000" else range(5, 96, 2))
             for data in [enc(img)]]
    under = [f for f in files if f[0] <= bpp]
    rate, setting, data, dec = max(under, key=lambda f: f[0]) if under else min(files, key=lambda f: f[0])
    out = np.asarray(dec(data))[..., :3]
    return {"setting": setting, "bpp": rate, "psnr": _psnr(img, out)}, out


def artefacts(out: Path, stem: str, lmbda: float, preset: str) -> None:
    """The latent codec at a low rate beside JPEG 2000 and AVIF at the same bpp (or just below): one PNG of the
    three decoded images and the original, with a 2x enlarged detail, for looking at the artefacts."""
    torch.set_num_threads(1)
    img = dict(kodak_images(24, 2))[stem]
    enc = encode_pixels(img, preset_options(preset, lmbda=lmbda))
    from inrkit.compress.decode import latent as lc

    ours = lc.read(enc.data).render()
    rows = {"latent": ({"setting": f"lambda{lmbda:g}", "bpp": enc.report["bpp"], "psnr": enc.report["psnr"]}, ours)}
    for name in ("jpeg2000", "avif"):
        rows[name] = closest_below(name, img, enc.report["bpp"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = img.shape[:2]
    y0, x0 = h // 4, w // 4  # the detail: the centre quarter, enlarged 2x (nearest neighbour)
    panels = [("original", img)] + [(f"{n}: {p['bpp']:.3f} bpp, {p['psnr']:.2f} dB", px) for n, (p, px) in rows.items()]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    for col, (title, px) in enumerate(panels):
        axes[0, col].imshow(px)
        axes[0, col].set_title(title, fontsize=10)
        axes[1, col].imshow(np.repeat(np.repeat(px[y0:y0 + h // 2, x0:x0 + w // 2], 2, 0), 2, 1))
        axes[1, col].set_title("centre, 2x", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"{stem} downscaled 2x ({w}x{h}): latent codec ({preset} preset) and the classical codecs at "
                 f"the same bpp or just below", fontsize=11)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=80)
    write_json(out, {"benchmark": "grid_artefacts", "image": f"{stem} downscaled 2x", "preset": preset,
                     "points": {n: p for n, (p, _) in rows.items()},
                     "environment": run_environment(threads=1)})


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
    if a.artefacts:
        artefacts(Path(a.out).with_name("grid_artefacts.json"), a.artefacts, float(a.lambdas.split(",")[0]),
                  a.preset)
        return
    if a.encode_speed:
        seeds = [int(v) for v in a.seeds.split(",")]
        name = "grid_encode_speed.json" if seeds == [0] else "grid_encode_seeds.json"
        encode_speed(Path(a.out).with_name(name), a.encode_speed.split(","), "kodim20" if seeds == [0] else "", seeds)
        return
    if a.decode_speed:
        decode_speed(Path(a.out).with_name("grid_decode_speed.json"), [float(v) for v in a.lambdas.split(",")],
                     a.steps)
        return
    if a.full_size:
        full_size(Path(a.out).with_name("grid_full_size.json"), a.full_size.split(","),
                  [float(v) for v in a.lambdas.split(",")], a.preset)
        return
    if a.side_info:
        side_info(Path(a.out).with_name("grid_side_info.json"), a.preset if a.preset != "default" else "fast")
        return
    if a.bpp_targets:
        bpp_targets(Path(a.out).with_name("grid_bpp_targets.json"), a.preset if a.preset != "default" else "fast")
        return
    if a.presets:
        time_presets(Path(a.out).with_name("grid_presets.json"))
        return
    if a.rescore:
        result = rescore(Path(a.rescore))
        write_json(Path(a.out), result)
        report(result["sets"])
        return
    torch.manual_seed(0)
    lambdas = [float(v) for v in a.lambdas.split(",")]
    t0 = time.perf_counter()
    images = {"kodak" if a.full else "kodak-half": kodak_images(a.kodak, 1 if a.full else 2),
              "other": other_images(a.other) if a.other else []}
    images = {k: v for k, v in images.items() if v}
    points = all_points(images, lambdas, a.preset, a.jobs)
    sets = {name: summarise(name, imgs, points[name]) for name, imgs in images.items()}
    result = {"benchmark": "grid_rd",
              "claim": "grid codec: negative BD-rate against JPEG 2000 over 0.2-1.0 bpp on Kodak/2, beats WebP "
                       "on other images",
              "config": {"kodak": a.kodak, "other": a.other, "preset": a.preset, "lambdas": lambdas,
                         "full": a.full, "kodak_scale": 1 if a.full else 2, "jobs": a.jobs},
              "sets": sets, "bpp_window": list(BPP_WINDOW), "seconds": time.perf_counter() - t0,
              "environment": run_environment(threads=1 if a.jobs > 1 else None)}
    out = Path(a.out)
    write_json(out, result)
    plot(sets, out.with_suffix(".png"))
    report(sets)


if __name__ == "__main__":
    main()
