"""Quality metrics: PSNR, SSIM and MS-SSIM (images), Chamfer distance, normal consistency, IoU (shapes), and
the size of a file against the raw data it represents (:func:`size_report`).

:func:`psnr` and :func:`psnr_from_mse` are inrkit's only PSNR (normalised values: ``data_range=2``;
colours in [0, 1]: ``data_range=1``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from inrkit.errors import InvalidInputError, warn


def psnr_from_mse(mse: float | torch.Tensor, data_range: float = 2.0) -> float:
    """PSNR in dB of a mean squared error (MSE floored at 1e-20).

    Args:
        mse: the mean squared error (a number or a one-element tensor).
        data_range: peak-to-peak range of the values (2 for [-1, 1], 1 for colours in [0, 1]).
    """
    if isinstance(mse, torch.Tensor):
        mse = float(mse.detach())
    return 10.0 * math.log10(data_range**2 / max(float(mse), 1e-20))


def psnr(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, data_range: float = 2.0) -> float:
    """PSNR in dB between two arrays (or tensors) of equal shape.

    Args:
        pred: the approximation.
        target: the reference.
        data_range: peak-to-peak range of the values.
    """
    a, b = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
            for v in (pred, target))
    if a.shape != b.shape:
        raise InvalidInputError(f"PSNR needs equal shapes, got {a.shape} and {b.shape}")
    return psnr_from_mse(float(np.mean((a - b) ** 2)), data_range)


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity of two images ``[H, W]`` or ``[H, W, C]`` (scikit-image, Gaussian window)."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if a.shape != b.shape:
        raise InvalidInputError(f"SSIM needs equal shapes, got {a.shape} and {b.shape}")
    a, b = (a[..., 0], b[..., 0]) if a.ndim == 3 and a.shape[-1] == 1 else (a, b)
    channel_axis = -1 if a.ndim == 3 else None
    side = min(a.shape[:2])
    if side < 3:
        return float("nan")
    if side >= 11:  # the standard Gaussian window (sigma 1.5, 11 taps), as Wang et al.
        kwargs = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    else:  # tiny images: the largest odd uniform window that fits
        kwargs = {"win_size": side if side % 2 else side - 1}
    return float(structural_similarity(a, b, data_range=data_range, channel_axis=channel_axis, **kwargs))


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli, Bovik 2003 (5 scales)


def ms_ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 255.0,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM of two images ``[H, W]`` or ``[H, W, C]``, as CompressAI reports it.

    The computation of ``pytorch_msssim.ms_ssim`` (what CompressAI's ``ms-ssim-rgb`` uses): an
    11-tap Gaussian window (sigma 1.5) without padding, K1 = 0.01, K2 = 0.03, contrast-structure
    terms of the first scales and SSIM of the last one (each clipped at 0) raised to the standard
    weights, 2x average pooling between scales (odd sides padded with zeros); the mean over channels.
    The shorter side must exceed ``10 * 2^(scales - 1)`` (160 pixels for 5 scales).

    Args:
        pred: the approximation.
        target: the reference.
        data_range: peak-to-peak range of the values (255 for 8-bit images).
        weights: per-scale exponents (their count is the number of scales).
    """
    a, b = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if a.shape != b.shape:
        raise InvalidInputError(f"MS-SSIM needs equal shapes, got {a.shape} and {b.shape}")
    a, b = (a[..., None], b[..., None]) if a.ndim == 2 else (a, b)
    if a.ndim != 3:
        raise InvalidInputError(f"MS-SSIM needs images [H, W] or [H, W, C], got shape {a.shape}")
    need = 10 * 2 ** (len(weights) - 1)
    if min(a.shape[:2]) <= need:
        raise InvalidInputError(f"MS-SSIM with {len(weights)} scales needs both sides > {need} pixels, "
                                f"got {a.shape[1]}x{a.shape[0]}")
    taps = np.arange(11, dtype=np.float64) - 5
    window = np.exp(-(taps**2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    terms = []
    for level in range(len(weights)):
        mu_a, mu_b = _gauss_valid(a, window), _gauss_valid(b, window)
        var_a = _gauss_valid(a * a, window) - mu_a**2
        var_b = _gauss_valid(b * b, window) - mu_b**2
        cov = _gauss_valid(a * b, window) - mu_a * mu_b
        cs_map = (2 * cov + c2) / (var_a + var_b + c2)
        if level < len(weights) - 1:
            terms.append(np.maximum(cs_map.mean(axis=(0, 1)), 0.0))
            a, b = _pool2(a), _pool2(b)
        else:
            ssim_map = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs_map
            terms.append(np.maximum(ssim_map.mean(axis=(0, 1)), 0.0))
    per_channel = np.prod(np.stack(terms) ** np.asarray(weights)[:, None], axis=0)
    return float(per_channel.mean())


def _gauss_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable ``window`` along axes 0 and 1 of ``x [H, W, C]``, 'valid' (no padding)."""
    k = len(window)
    rows = sum(window[i] * x[i: x.shape[0] - k + 1 + i] for i in range(k))
    return sum(window[i] * rows[:, i: rows.shape[1] - k + 1 + i] for i in range(k))


def _pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling, stride 2; an odd side padded with one zero each end (as torch's
    ``avg_pool2d(padding=side % 2)``, zeros counted)."""
    pads = [(s % 2, s % 2) for s in x.shape[:2]] + [(0, 0)]
    x = np.pad(x, pads)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric Chamfer distance: mean nearest-neighbour L2 distance, averaged both ways."""
    a, b = np.asarray(points_a, dtype=np.float64), np.asarray(points_b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return float(0.5 * (d_ab.mean() + d_ba.mean()))


def normal_consistency(points_a: np.ndarray, normals_a: np.ndarray, points_b: np.ndarray,
                       normals_b: np.ndarray) -> float:
    """Mean |cos| between each point's normal and its nearest neighbour's, averaged both ways."""
    if len(points_a) == 0 or len(points_b) == 0:
        return 0.0
    _, j = cKDTree(points_b).query(points_a)
    _, i = cKDTree(points_a).query(points_b)
    ab = np.abs(np.sum(_unit(normals_a) * _unit(normals_b)[j], axis=1)).mean()
    ba = np.abs(np.sum(_unit(normals_b) * _unit(normals_a)[i], axis=1)).mean()
    return float(0.5 * (ab + ba))


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def iou(occupancy_a: np.ndarray, occupancy_b: np.ndarray) -> float:
    """Intersection over union of two boolean occupancy arrays."""
    a, b = np.asarray(occupancy_a, dtype=bool), np.asarray(occupancy_b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


SAMPLE_DTYPE_NAMES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                      "float16", "float32", "float64")
"""Source sample types a signal's metadata may name (``dtype``: what the raw data is sized by)."""


def raw_bytes(meta: dict[str, Any] | None) -> int | None:
    """Bytes of a grid signal's samples at their native precision: ``prod(shape) x channels x item size``
    (``dtype`` from the metadata; float32 when it names none). ``None`` without a grid shape."""
    shape, channels = (meta or {}).get("shape"), (meta or {}).get("channels", 1)
    if not (isinstance(shape, list) and shape and all(type(s) is int and s > 0 for s in shape)
            and type(channels) is int and channels > 0):
        return None
    dtype = (meta or {}).get("dtype")
    itemsize = np.dtype(dtype).itemsize if dtype in SAMPLE_DTYPE_NAMES else 4
    return int(math.prod(shape)) * channels * itemsize


def size_report(nbytes: int, meta: dict[str, Any] | None) -> dict[str, Any]:
    """``bytes`` and, when the signal's raw size is known, ``raw_bytes`` (its samples at their native
    precision) and ``ratio`` (bytes / raw bytes)."""
    out: dict[str, Any] = {"bytes": int(nbytes)}
    raw = raw_bytes(meta)
    if raw:
        out.update(raw_bytes=raw, ratio=round(nbytes / raw, 4))
    return out


def warn_if_larger(report: dict[str, Any], what: str) -> None:
    """One warning when a written file (a :func:`size_report`) is larger than the data it represents."""
    if report.get("ratio") is not None and report["ratio"] > 1:
        warn(f"{what} is {report['ratio']:.2f}x the size of its data ({report['bytes']} bytes for "
             f"{report['raw_bytes']} raw bytes): an INR larger than its data saves nothing; fewer or narrower "
             "layers, --weight-dtype float16 or --arch auto make it smaller")
