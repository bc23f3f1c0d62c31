"""Image codecs: an image file into ``.inrz`` and back; each registered once in :data:`IMAGE_CODECS`.

* ``latent``: latent grids, a context model and a synthesis trained on the image (Cool-chic / C3;
  :mod:`inrkit.compress.encode.latent`, format and decoder in :mod:`inrkit.compress.decode.latent`). Files written
  before it had this name store ``grid``; they decode as ``latent``.
* ``sinr``, ``quant``, ``coin``: fit an INR to the image, then compress its weights with the network codec of the
  same name (:data:`inrkit.compress.encode.network.NETWORK_CODECS`).

:func:`encode_image` and :func:`decode_image` (``inrkit encode``/``decode``) read this
registry; the codec a file is decoded with is the one its header names (:func:`image_codec_of`).
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from inrkit.compress.decode import latent as lc
from inrkit.compress.decode.container import unpack
from inrkit.compress.decode.network import DECODERS
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.registry import Registry


class ImageCodec:
    """Base of an image codec: :meth:`encode` an image file, :meth:`decode` a file it wrote.

    Attributes:
        name: the registered name (``encode --codec``); files store it in their header.
    """

    name: str = ""

    def encode(self, image_path: str | os.PathLike, out_path: str | os.PathLike, *, bpp: float | None,
               target_psnr: float | None, config: Any, steps: int | None = None, **options: Any) -> dict[str, Any]:
        """Encode ``image_path`` into ``out_path``; the report (``bytes``, ``bpp``, ``psnr``, ``bytes_by_part``...).

        ``options``: the fields of :func:`encode_image` (``lmbda``, ``preset``,
        ``hidden``, ``arch``, ``finetune_steps``, ``qat_steps``); a codec refuses those it cannot honour.
        """
        raise NotImplementedError

    def decode(self, data: bytes, header: dict[str, Any], inrz_path: str | os.PathLike, out_path: str | os.PathLike,
               reference: str | os.PathLike | None = None, crop: Sequence[int] | None = None) -> dict[str, Any]:
        """Decode ``data`` (the bytes of ``inrz_path``, whose container header is ``header``) to the PNG
        ``out_path``; with ``reference``, the PSNR against it."""
        raise NotImplementedError


IMAGE_CODECS: Registry[ImageCodec] = Registry("image codec")
"""The image codecs by name (``inrkit encode --codec``)."""


def image_codec_of(header: dict[str, Any], what: str = ".inrz file") -> ImageCodec:
    """The codec that decodes a file with this container ``header``: the one it names (an older name mapped to
    today's), or, for a network file of a network codec without an image codec, the generic network one."""
    name = header.get("codec")
    name = lc.LEGACY_NAMES.get(name, name) if isinstance(name, str) else name
    if isinstance(name, str) and name in IMAGE_CODECS:
        return IMAGE_CODECS.get(name)
    if isinstance(name, str) and name in DECODERS:
        return NetworkImageCodec(name)
    raise InvalidFileError(f"{what}: unknown codec {str(name)[:40]!r}")


# ------------------------------------------------------------------ latent
class LatentCodec(ImageCodec):
    """Latent grids with an auto-regressive context model and a small synthesis (Cool-chic / C3)."""

    name = lc.CODEC

    def encode(self, image_path: str | os.PathLike, out_path: str | os.PathLike, *, bpp: float | None,
               target_psnr: float | None, config: Any, steps: int | None = None, **options: Any) -> dict[str, Any]:
        from inrkit.compress.encode.api import refuse_network_options
        from inrkit.compress.encode.latent import encode_latent_image

        refuse_network_options(options.get("hidden"), options.get("arch", "siren"), options.get("finetune_steps", 0),
                               options.get("qat_steps"))
        return encode_latent_image(image_path, out_path, lmbda=options.get("lmbda"), bpp=bpp,
                                   target_psnr=target_psnr, preset=options.get("preset", "default"), steps=steps,
                                   seed=config.seed, device=config.device, progress=config.progress)

    def decode(self, data: bytes, header: dict[str, Any], inrz_path: str | os.PathLike, out_path: str | os.PathLike,
               reference: str | os.PathLike | None = None, crop: Sequence[int] | None = None) -> dict[str, Any]:
        return decode_latent_image(data, inrz_path, out_path, reference, crop)


def _stored_crop(header: dict[str, Any]) -> list[int] | None:
    raw = header.get("signal")
    crop = raw.get("crop") if isinstance(raw, dict) else None
    if crop is None:
        return None
    if not (isinstance(crop, list) and len(crop) == 4 and all(type(v) is int and v >= 0 for v in crop)):
        raise InvalidFileError("the .inrz file's stored crop must be four non-negative integers")
    return crop


def signal_header(header: dict[str, Any]) -> dict[str, Any]:
    """A latent file's header as the model header :mod:`inrkit.signals.match` checks a signal against (kind,
    shape, channels, crop)."""
    shape, channels = header.get("shape"), header.get("channels")
    return {"signal": {"kind": "image", "shape": shape if isinstance(shape, list) else None,
                       "channels": channels if type(channels) is int else None, "crop": _stored_crop(header)}}


def check_reference(reference: str | os.PathLike, header: dict[str, Any], crop: Sequence[int] | None) -> None:
    """Refuse a ``--signal`` image that is not the file's (kind, size, channels, crop), from its header alone:
    :func:`inrkit.signals.match.check_signal_header`, as every command that compares a model with a signal."""
    from inrkit.signals.match import check_signal_header, peek_signal

    if peek_signal(reference, crop) is None:
        where = " holding the crop " + ",".join(map(str, crop)) if crop is not None else ""
        raise InvalidInputError(f"--signal {reference}: not a PNG or JPEG image{where}")
    check_signal_header(reference, header, "--signal", crop)


def reference_pixels(reference: str | os.PathLike, header: dict[str, Any], crop: Sequence[int] | None) -> np.ndarray:
    """The ``--signal`` image's pixels (``[H, W, C]`` uint8, cropped), checked against ``header`` (a
    :func:`signal_header`) by :func:`inrkit.signals.match.check_signal_matches`."""
    from inrkit.signals.match import check_signal_matches
    from inrkit.signals.readers import read_image

    pixels = read_image(Path(reference))
    if crop is not None:
        r0, r1, c0, c1 = (int(v) for v in crop)
        pixels = pixels[r0:r1, c0:c1]
    peeked = SimpleNamespace(kind="image", shape=list(pixels.shape[:2]), out_dim=int(pixels.shape[2]),
                             name=Path(reference).name, frame=None)
    check_signal_matches(header, peeked, "--signal", crop)
    return pixels


def decode_latent_image(data: bytes, inrz_path: str | os.PathLike, out_path: str | os.PathLike,
                        reference: str | os.PathLike | None = None,
                        crop: Sequence[int] | None = None) -> dict[str, Any]:
    """Decode a ``latent`` file (``data``, the bytes of ``inrz_path``) to PNG; with ``reference``, the PSNR
    against it (cropped as the file records; ``crop``, if given, must be that crop)."""
    from PIL import Image
    from threadpoolctl import threadpool_limits

    from inrkit.metrics import psnr_from_mse
    from inrkit.utils import atomic_write

    if Path(out_path).suffix.lower() != ".png":
        raise InvalidInputError("decoded images are written as .png")
    header, _ = unpack(data)
    if reference is None and crop is not None:
        raise InvalidInputError("--crop applies to the --signal image; give --signal too")
    crop = crop if crop is not None else _stored_crop(header)
    if reference is not None:  # checked against the file's header before anything is decoded or written
        check_reference(reference, signal_header(header), crop)
    t0, cpu0 = time.perf_counter(), time.process_time()
    with threadpool_limits(1, user_api="blas"):  # its products are small: more BLAS threads only spin
        img = lc.read(data, str(inrz_path))
        pixels = img.render()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    with atomic_write(out_path) as handle:
        # zlib level 1: 4x faster than the default 6 on kodim20 (0.025 vs 0.104 s), 7 % larger
        Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(handle, format="PNG",
                                                                                 compress_level=1)
    h, w = img.shape
    rep: dict[str, Any] = {"output": str(out_path), "bytes": len(data), "bpp": 8.0 * len(data) / (h * w),
                           "codec": lc.CODEC, "shape": [h, w], "decode_seconds": seconds, "decode_cpu_seconds": cpu,
                           "bytes_by_part": lc.bytes_by_part(data)}
    if reference is not None:
        ref = reference_pixels(reference, signal_header(header), crop)
        mse = float(np.mean((pixels.astype(np.float64) - ref) ** 2)) / 255.0 ** 2
        rep["psnr"] = psnr_from_mse(mse, 1.0)
    return rep


IMAGE_CODECS.register(LatentCodec.name, LatentCodec())


# ------------------------------------------------------------------ network codecs on images
class NetworkImageCodec(ImageCodec):
    """Fit an INR to the image (:func:`inrkit.train.fit`), then compress it with the network codec ``name``.

    Args:
        name: a network codec (:data:`inrkit.compress.encode.network.NETWORK_CODECS`).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def encode(self, image_path: str | os.PathLike, out_path: str | os.PathLike, *, bpp: float | None,
               target_psnr: float | None, config: Any, steps: int | None = None, **options: Any) -> dict[str, Any]:
        import torch

        from inrkit.compress.encode.api import CompressConfig, _as_mlp, compress_to_target, default_hidden, write_bytes
        from inrkit.compress.encode.qat import QAT_STEPS
        from inrkit.limits import check_hidden
        from inrkit.metrics import size_report
        from inrkit.models import build_model
        from inrkit.signals import ImageSignal, load_signal
        from inrkit.train import fit

        signal = load_signal(Path(image_path))
        if not isinstance(signal, ImageSignal):
            raise InvalidInputError(f"{image_path}: not an image")
        pixels = signal.shape[0] * signal.shape[1]
        hidden = options.get("hidden")
        hidden = list(check_hidden(hidden if hidden else default_hidden(pixels, self.name, bpp)))
        model = build_model(options.get("arch", "siren"), 2, signal.out_dim, hidden,
                            generator=torch.Generator().manual_seed(config.seed))
        if steps is not None:
            config = replace(config, steps=steps)
        if target_psnr is not None:
            config = replace(config, target_psnr=target_psnr + 1.0)
        t0 = time.perf_counter()
        fitted = fit(model, signal, config)
        fit_s = time.perf_counter() - t0
        target_bytes = None if bpp is None else int(bpp * pixels / 8)
        qat_steps = options.get("qat_steps")
        settings = CompressConfig(self.name, target_psnr=target_psnr, target_bytes=target_bytes,
                                  finetune_steps=options.get("finetune_steps", 0),
                                  qat_steps=QAT_STEPS if qat_steps is None else qat_steps, seed=config.seed,
                                  device=config.device, progress=config.progress)
        result = compress_to_target(_as_mlp(fitted.model.cpu()), signal, settings, meta=signal.metadata())
        write_bytes(out_path, result.data)
        rep = result.report(pixels)
        rep.update(output=str(out_path), hidden=hidden, fit_psnr=float(fitted.metrics["psnr"]),
                   fit_steps=fitted.steps, fit_seconds=fit_s, seconds=time.perf_counter() - t0,
                   bytes_by_part=network_parts(result.data),
                   **size_report(len(result.data), signal.metadata()))
        return rep

    def decode(self, data: bytes, header: dict[str, Any], inrz_path: str | os.PathLike, out_path: str | os.PathLike,
               reference: str | os.PathLike | None = None, crop: Sequence[int] | None = None) -> dict[str, Any]:
        import functools

        from inrkit.compress.encode.api import _check_image
        from inrkit.compress.encode.model import decode_model
        from inrkit.signals import check_metadata, render_model
        from inrkit.signals.match import load_matching_signal

        model, header = decode_model(data, check=functools.partial(_check_image, len(data), str(inrz_path)))
        meta = check_metadata(header.get("signal"), model.out_dim, kind="image")
        # the reference is read and checked against the header before the output is written
        ref = None if reference is None else load_matching_signal(Path(reference), header, "--signal", crop=crop)
        render_model(model, meta, Path(out_path))
        h, w = meta["shape"]
        rep: dict[str, Any] = {"output": str(out_path), "bytes": len(data), "bpp": 8.0 * len(data) / (h * w),
                               "codec": header["codec"], "shape": [h, w], "bytes_by_part": network_parts(data)}
        if ref is not None:
            rep["psnr"] = float(ref.evaluate(model)["psnr"])
        return rep


def network_parts(data: bytes) -> dict[str, int]:
    """Bytes of a network file by part: ``weights`` (every section) and ``header`` (container and header)."""
    _, sections = unpack(data)
    weights = sum(len(s) for s in sections)
    return {"weights": weights, "header": len(data) - weights}


def register_network_image_codecs() -> None:
    """An image codec for every built-in network codec (``sinr``, ``quant``, ``coin``)."""
    for name in ("sinr", "quant", "coin"):
        IMAGE_CODECS.register(name, NetworkImageCodec(name))


register_network_image_codecs()


def encode_image(
    image_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    bpp: float | None = None,
    target_psnr: float | None = None,
    codec: str = "latent",
    lmbda: float | None = None,
    preset: str = "default",
    hidden: Sequence[int] | None = None,
    arch: str = "siren",
    config: Any = None,
    steps: int | None = None,
    finetune_steps: int = 0,
    qat_steps: int | None = None,
) -> dict[str, Any]:
    """Encode an image with a registered image codec (:data:`inrkit.compress.IMAGE_CODECS`) to a bit rate, a PSNR
    or (``latent``) a rate-distortion trade-off; writes ``out_path`` (.inrz).

    ``latent`` (the default) trains latent grids and two tiny networks on the image
    (:mod:`inrkit.compress.encode.latent`); the network codecs (sinr, quant, coin) fit an INR and compress its weights.

    Args:
        image_path: PNG or JPEG image.
        out_path: the ``.inrz`` file to write.
        bpp: target bits per pixel (network codecs: sizes the network too; latent: steers lambda, within 5 %).
        target_psnr: target PSNR in dB (network codecs: the fit stops 1 dB above it; latent: steers lambda).
        codec: a registered image codec.
        lmbda: latent: rate-distortion trade-off ``bpp + lambda * MSE`` (without ``bpp``/``target_psnr``; default
            1000), or where the lambda search starts (default with ``bpp``: ``1000 bpp**2``).
        preset: latent: encoder preset (fast, default, best: training steps).
        hidden: network codecs: hidden widths, e.g. 64x3 (default: sized to the target).
        arch: network codecs: architecture of the fitted network.
        config: fitting settings (default :class:`inrkit.compress.encode.api.EncodeConfig`); its seed also seeds the
            network and the dictionary, its device runs the compression. Latent uses its seed, device and
            progress.
        steps: training steps (default: the preset's for latent, ``config.steps`` for the network codecs).
        finetune_steps: network codecs: steps of coefficient fine-tuning after sparse coding.
        qat_steps: network codecs: steps of quantisation-aware fine-tuning before coding, per bit depth
            tried (``quant`` then stores per-row steps; default :data:`inrkit.compress.encode.qat.QAT_STEPS`, 0: off).
    """
    from inrkit.compress.encode.api import EncodeConfig, check_bpp_target
    from inrkit.limits import MAX_BPP, check_hidden, check_range

    check_range("bpp", bpp, 0, MAX_BPP, low_open=True)
    check_range("target_psnr", target_psnr)
    check_range("steps", steps, 0)
    if hidden:
        check_hidden(hidden)
    image_codec = IMAGE_CODECS.get(codec)
    check_bpp_target(image_path, bpp)
    return image_codec.encode(image_path, out_path, bpp=bpp, target_psnr=target_psnr, config=config or EncodeConfig(),
                              steps=steps, lmbda=lmbda, preset=preset, hidden=hidden, arch=arch,
                              finetune_steps=finetune_steps, qat_steps=qat_steps)


def decode_image(inrz_path: str | os.PathLike, out_path: str | os.PathLike,
                 reference: str | os.PathLike | None = None, crop: Sequence[int] | None = None) -> dict[str, Any]:
    """Decode an image ``.inrz`` to PNG with the image codec its header names; with ``reference`` also report the
    PSNR against it.

    Args:
        inrz_path: the ``.inrz`` file.
        out_path: the ``.png`` to write.
        reference: original image, to report the PSNR (checked against the file's shape and crop).
        crop: image window of the reference, ROW0:ROW1,COL0:COL1 (as the model was fitted; a latent file records
            its own).
    """
    from inrkit.compress.decode.container import read_file

    if Path(out_path).suffix.lower() != ".png":
        raise InvalidInputError("decoded images are written as .png")
    data = read_file(inrz_path)
    header, _ = unpack(data)
    return image_codec_of(header, str(inrz_path)).decode(data, header, inrz_path, out_path, reference, crop)


__all__ = ["IMAGE_CODECS", "ImageCodec", "LatentCodec", "NetworkImageCodec", "check_reference", "decode_image",
           "decode_latent_image", "encode_image", "image_codec_of",
           "network_parts", "reference_pixels", "signal_header"]
