"""Rate-distortion evaluation of a codec over a folder of images, written as CompressAI-style JSON.

:func:`evaluate_codec` encodes every image of a folder at each target bit rate with the inrkit
image workflow (:func:`inrkit.compress.encode.api.encode_image`, then
:func:`~inrkit.compress.encode.api.decode_image`), measures the decoded PNG against the original (bpp,
PSNR on 8-bit RGB, MS-SSIM as CompressAI computes it, encode and decode seconds) and writes one
JSON file: ``results`` holds the means over the images as parallel lists (``bpp``, ``psnr-rgb``,
``ms-ssim-rgb``, ``encoding_time``, ``decoding_time``), one entry per target, as the reference
curves in ``data/reference/kodak-rd`` do; ``per_image`` holds the same lists per image. Classical
baselines (JPEG, WebP, JPEG 2000 through Pillow) are evaluated at the same targets when asked.
"""
from __future__ import annotations

import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inrkit.compress.encode.api import EncodeConfig
from inrkit.compress.encode.image import IMAGE_CODECS, decode_image, encode_image
from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_BPP, MAX_CODEC_IMAGES, check_hidden, check_range
from inrkit.metrics import ms_ssim, psnr
from inrkit.signals.readers import read_image
from inrkit.utils import write_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
PIL_FORMATS = {"jpeg": ("JPEG", "jpg", "JPEG (Pillow)"), "webp": ("WEBP", "webp", "WebP (Pillow)"),
               "jpeg2000": ("JPEG2000", "jpg_2000", "JPEG 2000 (Pillow/OpenJPEG)")}


def list_images(folder: str | os.PathLike, max_images: int | None = None) -> list[Path]:
    """The PNG/JPEG files of ``folder`` (not recursive), sorted by name; at most ``max_images``.

    Refuses a missing folder, a file, a folder without images and one with more than
    :data:`inrkit.limits.MAX_CODEC_IMAGES` images (:class:`InvalidInputError`).
    """
    root = Path(folder)
    if not root.exists():
        raise InvalidInputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a folder (eval-codec reads a folder of PNG/JPEG images)")
    images = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise InvalidInputError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images in the folder")
    if len(images) > MAX_CODEC_IMAGES:
        raise InvalidInputError(f"{root}: {len(images)} images (at most {MAX_CODEC_IMAGES}; use --max-images)")
    return images[:max_images] if max_images else images


def available_baselines() -> tuple[str, ...]:
    """The classical codecs this Pillow build can write."""
    from PIL import features

    return tuple(name for name, (_, feature, _) in PIL_FORMATS.items() if features.check(feature))


def evaluate_codec(
    folder: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    codec: str = "latent",
    bpp: Sequence[float] = (0.3,),
    baseline: Sequence[str] = (),
    hidden: Sequence[int] | None = None,
    arch: str = "siren",
    finetune_steps: int = 0,
    qat_steps: int | None = None,
    crop: Sequence[int] | None = None,
    max_images: int | None = None,
    config: EncodeConfig | None = None,
) -> dict[str, Any]:
    """Encode and decode every image of ``folder`` at each ``bpp`` and write the RD results as JSON.

    Args:
        folder: a folder of PNG/JPEG images (e.g. the 24 Kodak images).
        output: the JSON file to write (atomically, rewritten after each image so a long run can be
            watched); ``None`` writes nothing.
        codec: a registered image codec (see :data:`inrkit.compress.IMAGE_CODECS`).
        bpp: target bits per pixel, one RD point each (each in (0, 64]).
        baseline: classical codecs evaluated at the same targets: jpeg, webp, jpeg2000 (Pillow).
        hidden: hidden widths of the fitted networks (default: sized to each target).
        arch: architecture of the fitted networks.
        finetune_steps: coefficient fine-tuning steps after sparse coding (sinr).
        qat_steps: network codecs: steps of quantisation-aware fine-tuning per bit depth tried (default
            :data:`inrkit.compress.encode.qat.QAT_STEPS`; 0: off).
        crop: evaluate this window ROW0:ROW1,COL0:COL1 of every image (CPU-sized runs).
        max_images: the first N images (by name) only.
        config: fitting settings (default :class:`~inrkit.compress.encode.api.EncodeConfig`); its
            ``progress`` also shows a bar over images x targets.
    """
    targets = [float(b) for b in bpp]
    if not targets:
        raise InvalidInputError("--bpp: give at least one target bit rate")
    for b in targets:
        check_range("bpp", b, 0, MAX_BPP, optional=False, low_open=True)
    check_range("finetune_steps", finetune_steps, 0, optional=False)
    check_range("qat_steps", qat_steps, 0)
    check_range("max_images", max_images, 1)
    if hidden:
        check_hidden(hidden)
    IMAGE_CODECS.get(codec)
    names = [b.strip().lower() for b in baseline if b.strip()]
    usable = available_baselines()
    for name in names:
        if name not in PIL_FORMATS:
            raise InvalidInputError(f"--baseline {name!r}: choose from {', '.join(PIL_FORMATS)}")
        if name not in usable:
            raise InvalidInputError(f"--baseline {name}: this Pillow cannot write it (available: "
                                    f"{', '.join(usable) or 'none'})")
    window = _check_crop(crop)
    images = list_images(folder, max_images)
    config = config or EncodeConfig()
    result: dict[str, Any] = {
        "name": f"inrkit-{codec}", "description": f"inrkit encode/decode, codec {codec}, {arch} networks",
        "results": {}, "target_bpp": targets, "images": [], "per_image": {},
        "baselines": {n: {"name": PIL_FORMATS[n][2], "description": f"{PIL_FORMATS[n][2]}, quality searched "
                          f"for the largest file within each target", "results": {}, "per_image": {}}
                      for n in names},
        "settings": {"folder": str(folder), "codec": codec, "arch": arch, "hidden": list(hidden) if hidden else None,
                     "finetune_steps": finetune_steps, "qat_steps": qat_steps,
                     "crop": list(window) if window else None,
                     "steps": config.steps, "lr": config.lr, "seed": config.seed, "precision": config.precision},
    }
    from tqdm.auto import tqdm

    with tempfile.TemporaryDirectory(prefix="inrkit-eval-codec-") as tmp, \
            tqdm(total=len(images) * len(targets), desc=f"eval-codec ({codec})", unit="point", file=sys.stderr,
                 disable=not config.progress, dynamic_ncols=True) as bar:
        work = Path(tmp)
        for path in images:
            source = _prepared(path, window, work)
            original = read_image(source)
            rows: list[dict[str, Any]] = []
            for b in targets:
                bar.set_postfix_str(f"{path.name} @ {b:g} bpp")
                rows.append(_inrkit_point(source, original, b, work, config, codec=codec, hidden=hidden, arch=arch,
                                          finetune_steps=finetune_steps, qat_steps=qat_steps))
                bar.update(1)
            result["images"].append(path.name)
            result["per_image"][path.name] = _columns(rows)
            for name in names:
                base_rows = [_pil_point(original, b, name) for b in targets]
                result["baselines"][name]["per_image"][path.name] = _columns(base_rows)
            _summarise(result)
            if output is not None:
                write_json(output, result)
    if output is not None:
        result["output"] = str(output)
    return result


# ------------------------------------------------------------------ one RD point
def _check_crop(crop: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    if crop is None:
        return None
    if len(crop) != 4:
        raise InvalidInputError(f"--crop needs ROW0:ROW1,COL0:COL1, got {list(crop)}")
    r0, r1, c0, c1 = (int(v) for v in crop)
    if not (0 <= r0 < r1 and 0 <= c0 < c1):
        raise InvalidInputError(f"--crop {r0}:{r1},{c0}:{c1}: needs 0 <= ROW0 < ROW1 and 0 <= COL0 < COL1")
    return r0, r1, c0, c1


def _prepared(path: Path, window: tuple[int, int, int, int] | None, work: Path) -> Path:
    """``path`` itself, or its ``window`` written as a PNG under ``work``."""
    if window is None:
        return path
    from PIL import Image

    img = read_image(path)
    r0, r1, c0, c1 = window
    if r1 > img.shape[0] or c1 > img.shape[1]:
        raise InvalidInputError(f"--crop {r0}:{r1},{c0}:{c1} does not fit {path.name} "
                                f"({img.shape[1]}x{img.shape[0]} pixels)")
    out = work / f"crop-{path.stem}.png"
    part = img[r0:r1, c0:c1].astype(np.uint8)
    Image.fromarray(part[..., 0] if part.shape[-1] == 1 else part).save(out)
    return out


def _quality(decoded: np.ndarray, original: np.ndarray) -> dict[str, float | None]:
    """PSNR (8-bit, peak 255) and MS-SSIM (None for images too small for five scales)."""
    try:
        mss: float | None = ms_ssim(decoded, original, data_range=255.0)
    except InvalidInputError:
        mss = None
    return {"psnr-rgb": psnr(decoded, original, data_range=255.0), "ms-ssim-rgb": mss}


def _inrkit_point(source: Path, original: np.ndarray, bpp: float, work: Path, config: EncodeConfig,
                  **options: Any) -> dict[str, Any]:
    """One RD point: :func:`encode_image` of ``source`` at ``bpp`` with ``options`` (codec, hidden, arch, tuning
    steps), then :func:`decode_image`, timed."""
    inrz, png = work / "point.inrz", work / "point.png"
    start = time.perf_counter()
    encode_image(source, inrz, bpp=bpp, config=config, **options)
    encoded = time.perf_counter()
    decode_image(inrz, png)
    decoded = time.perf_counter()
    pixels = original.shape[0] * original.shape[1]
    return {"bpp": 8.0 * inrz.stat().st_size / pixels, **_quality(read_image(png), original),
            "encoding_time": encoded - start, "decoding_time": decoded - encoded}


def _pil_point(original: np.ndarray, bpp: float, name: str) -> dict[str, Any]:
    """The largest file of a Pillow codec within ``bpp`` (the smallest one if none fits)."""
    from PIL import Image

    fmt = PIL_FORMATS[name][0]
    arr = original.astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    pixels = arr.shape[0] * arr.shape[1]
    budget = bpp * pixels / 8.0

    def encode(q: int) -> bytes:
        buf = io.BytesIO()
        if name == "jpeg2000":  # q is a compression ratio against 8 bits per sample; RGB through the colour
            # transform (mct=1), as opj_compress does: Pillow's default mct=0 codes R, G, B apart (1.5-2.5 dB worse)
            img.save(buf, fmt, quality_mode="rates", quality_layers=[q], irreversible=True,
                     mct=1 if arr.shape[-1] == 3 else 0)
        else:
            img.save(buf, fmt, quality=q)
        return buf.getvalue()

    if name == "jpeg2000":
        raw_bits = 8.0 * arr.shape[-1]
        candidates = sorted({max(1, math.ceil(raw_bits / bpp * f)) for f in (1.0, 1.1, 1.25, 1.5, 2.0, 3.0)})
        best = None
        for ratio in candidates:  # the mildest ratio whose file fits
            data = encode(ratio)
            if len(data) <= budget or ratio == candidates[-1]:
                best = ratio
                break
        param = best or candidates[-1]
    else:
        lo, hi = 1, 95 if name == "jpeg" else 100
        param = lo
        while lo <= hi:  # the highest quality whose file fits
            mid = (lo + hi) // 2
            if len(encode(mid)) <= budget:
                param, lo = mid, mid + 1
            else:
                hi = mid - 1
    start = time.perf_counter()
    data = encode(param)
    encoded = time.perf_counter()
    with Image.open(io.BytesIO(data)) as dec:
        dec.load()
        out = np.asarray(dec.convert("L" if arr.shape[-1] == 1 else "RGB"), dtype=np.float64)
    decoded = time.perf_counter()
    out = out[..., None] if out.ndim == 2 else out
    return {"bpp": 8.0 * len(data) / pixels, **_quality(out, original.astype(np.float64)),
            "encoding_time": encoded - start, "decoding_time": decoded - encoded,
            "quality" if name != "jpeg2000" else "ratio": param}


# ------------------------------------------------------------------ tables
def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Parallel lists (CompressAI's layout) from one dict per RD point."""
    return {key: [row.get(key) for row in rows] for key in rows[0]}


def _mean(values: list[Any]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _summarise(result: dict[str, Any]) -> None:
    """``results``: per target, the mean of every metric over the images so far."""
    def means(per_image: dict[str, dict[str, list[Any]]]) -> dict[str, list[Any]]:
        n = len(result["target_bpp"])
        return {key: [_mean([col[key][i] for col in per_image.values()]) for i in range(n)] for key in METRICS}

    result["results"] = means(result["per_image"])
    for entry in result["baselines"].values():
        entry["results"] = means(entry["per_image"])


def rd_summary(result: dict[str, Any]) -> dict[str, Any]:
    """A short summary for the terminal: mean bpp/PSNR/MS-SSIM per target, per codec."""
    def line(entry: dict[str, Any]) -> list[dict[str, Any]]:
        r = entry["results"]
        return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in zip(METRICS, vals)}
                for vals in zip(*(r[k] for k in METRICS))]

    out: dict[str, Any] = {"images": len(result["images"]), "target_bpp": result["target_bpp"],
                           result["name"]: line(result)}
    for name, entry in result["baselines"].items():
        out[name] = line(entry)
    if "output" in result:
        out["output"] = result["output"]
    return out


