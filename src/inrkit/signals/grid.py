"""Image, volume and 2D-field signals."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from ..metrics import ssim
from .base import GridSignal
from .readers import read_image


class ImageSignal(GridSignal):
    """An RGB or grey image; pixel values 0..255 map to [-1, 1] (PSNR is the usual 8-bit PSNR).

    Args:
        pixels: ``[H, W, C]`` array in 0..255 (C is 1 or 3).
        crop: optional ``(row0, row1, col0, col1)`` window.
        test_fraction, seed: held-out pixels for evaluation.
    """

    def __init__(self, pixels: np.ndarray, crop: Sequence[int] | None = None, test_fraction: float = 0.0,
                 seed: int = 0, name: str = "") -> None:
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if crop is not None:
            r0, r1, c0, c1 = (int(v) for v in crop)
            if not (0 <= r0 < r1 <= pixels.shape[0] and 0 <= c0 < c1 <= pixels.shape[1]):
                raise InvalidInputError(f"crop {list(crop)} is outside the {pixels.shape[0]}x{pixels.shape[1]} image")
            pixels = pixels[r0:r1, c0:c1]
        if pixels.shape[0] < 2 or pixels.shape[1] < 2:
            raise InvalidInputError(f"image is {pixels.shape[1]}x{pixels.shape[0]}; need at least 2x2 pixels")
        super().__init__(pixels, "image", (0.0, 255.0), test_fraction, seed, name=name)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "ImageSignal":
        path = Path(path)
        return cls(read_image(path), name=path.name, **kwargs)

    def to_uint8(self, values: np.ndarray) -> np.ndarray:
        """Raw predictions to 8-bit pixels."""
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)

    def _extra_metrics(self, pred: torch.Tensor) -> dict[str, float]:
        recon = self.denormalize(pred).reshape(*self.shape, self.out_dim)
        truth = self.denormalize(self.values).reshape(*self.shape, self.out_dim)
        return {"ssim": ssim(np.clip(recon, 0, 255), truth, data_range=255.0)}


class VolumeSignal(GridSignal):
    """A scalar volume ``[X, Y, Z]`` normalised by its min and max."""

    def __init__(self, volume: np.ndarray, test_fraction: float = 0.0, seed: int = 0, name: str = "",
                 value_range: tuple[float, float] | None = None) -> None:
        volume = np.asarray(volume, dtype=np.float32)
        if volume.ndim != 3 or min(volume.shape) < 2:
            raise InvalidInputError(f"a volume needs 3 axes of at least 2 samples, got shape {volume.shape}")
        super().__init__(volume[..., None], "volume", value_range, test_fraction, seed, name=name)


class FieldSignal(GridSignal):
    """A 2D scalar field ``[X, Y]`` (e.g. ``inrkit synth sin-radial``), normalised by min and max."""

    def __init__(self, field: np.ndarray, test_fraction: float = 0.0, seed: int = 0, name: str = "",
                 value_range: tuple[float, float] | None = None) -> None:
        field = np.asarray(field, dtype=np.float32)
        if field.ndim != 2 or min(field.shape) < 2:
            raise InvalidInputError(f"a 2D field needs 2 axes of at least 2 samples, got shape {field.shape}")
        super().__init__(field[..., None], "field", value_range, test_fraction, seed, name=name)
