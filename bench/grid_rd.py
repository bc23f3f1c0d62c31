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

    .venv/bin/python bench/grid_rd.py --jobs 2    # CPU default: 6 Kodak + 3 other images, 34 min (2 x 1 thread)
    .venv/bin/python bench/grid_rd.py --kodak 2 --other 1 --preset fast   # what fits in ~10 min
    .venv/bin/python bench/grid_rd.py --presets             # seconds of each preset (5 min)
    .venv/bin/python bench/grid_rd.py --rescore bench/results/grid_rd.json  # comparisons again, no encoding
    .venv/bin/python bench/grid_rd.py --all --jobs 2        # all 24 Kodak images (downscaled), 3 other
    .venv/bin/python bench/grid_rd.py --full                # 24 full-size Kodak images (GPU), published curves
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compress_rd import bd_psnr, bd_rate, pareto, published_curves  # noqa: E402

from inrkit.compress.encode.latent import encode_pixels, preset_options  # noqa: E402
from inrkit.utils import write_json  # noqa: E402

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


def baseline_settings(name: str) -> list[tuple[str, Callable[[np.ndarray], bytes], Callable]]:
    """``(setting, encode, decode)`` of a classical codec."""
    if name == "jpeg":
        return [(f"q{q}", _pil("JPEG", quality=q), _pil_decode) for q in (10, 20, 30, 45, 60, 75, 85, 95)]
    if name == "webp":
        return [(f"q{q}", _pil("WEBP", quality=q, method=6), _pil_decode) for q in (5, 15, 30, 50, 70, 85, 95)]
    if name == "jpeg2000":
        return [(f"{b}bpp", _pil("JPEG2000", quality_mode="rates", quality_layers=[24.0 / b], irreversible=True,
                                 mct=1), _pil_decode) for b in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)]
    import imagecodecs

    return [(f"q{q}", lambda img, q=q: imagecodecs.avif_encode(img, level=q), imagecodecs.avif_decode)
            for q in (20, 35, 50, 60, 70, 80, 90)]


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


def time_presets(out: Path) -> None:
    """Encode and decode seconds, bpp and PSNR of every preset on one image (kodim23 /2, lambda 600)."""
    from inrkit.compress.encode.latent import PRESETS

    img = dict(kodak_images(24, 2))["kodim23"]
    rows = {}
    for preset in PRESETS:
        r = encode_pixels(img, preset_options(preset, lmbda=600.0)).report
        rows[preset] = {k: r[k] for k in ("steps", "bpp", "psnr", "encode_seconds", "decode_seconds")}
        rows[preset]["psnr_vs_jpeg2000_at_same_bpp"] = at_same_bpp([r], classic_points("jpeg2000", img))[0]
        print(preset, rows[preset], flush=True)
    write_json(out, {"benchmark": "grid_presets", "image": "kodim23 downscaled 2x (384x256)", "lambda": 600.0,
                     "presets": rows, "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                                                      "machine": platform.machine()}})


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
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
              "environment": {"torch": torch.__version__, "python": platform.python_version(),
                              "threads": 1 if a.jobs > 1 else torch.get_num_threads(),
                              "machine": platform.machine()}}
    out = Path(a.out)
    write_json(out, result)
    plot(sets, out.with_suffix(".png"))
    report(sets)


if __name__ == "__main__":
    main()
