"""Image, volume and 2D-field signals, and their signal kinds."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.metrics import ssim
from inrkit.signals.base import GridSignal
from inrkit.signals.frames import Frame
from inrkit.signals.kinds import FOLDER, SignalKind, check_grid_meta, check_raw_spacing, register_kind
from inrkit.signals.planes import render_volume
from inrkit.signals.readers import npy_header, read_image, read_npy, read_raw, read_vti_frame, read_vtk_legacy_frame
from inrkit.signals.render import render_grid, render_image
from inrkit.signals.vtkformats import SUFFIXES as VTK_SUFFIXES
from inrkit.signals.vtkformats import read_vtk_volume, vtk_suffix


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
        self.crop = None if crop is None else [int(v) for v in crop]
        self.source_shape = [int(pixels.shape[0]), int(pixels.shape[1])]
        if crop is not None:
            r0, r1, c0, c1 = (int(v) for v in crop)
            if not (0 <= r0 < r1 <= pixels.shape[0] and 0 <= c0 < c1 <= pixels.shape[1]):
                raise InvalidInputError(f"crop {list(crop)} is outside the {pixels.shape[0]}x{pixels.shape[1]} image")
            pixels = pixels[r0:r1, c0:c1]
        if pixels.shape[0] < 2 or pixels.shape[1] < 2:
            raise InvalidInputError(f"image is {pixels.shape[1]}x{pixels.shape[0]}; need at least 2x2 pixels")
        super().__init__(pixels, "image", (0.0, 255.0), test_fraction, seed, name=name, sample_dtype="uint8")

    def metadata(self) -> dict[str, Any]:
        """Grid metadata plus ``crop`` (``[r0, r1, c0, c1]`` or ``None``) and the uncropped ``source_shape``."""
        return {**super().metadata(), "crop": self.crop, "source_shape": self.source_shape}

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "ImageSignal":
        path = Path(path)
        return cls(read_image(path), name=path.name, **kwargs)

    def _extra_metrics(self, pred: torch.Tensor) -> dict[str, float]:
        recon = self.denormalize(pred).reshape(*self.shape, self.out_dim)
        truth = self.denormalize(self.values).reshape(*self.shape, self.out_dim)
        return {"ssim": ssim(np.clip(recon, 0, 255), truth, data_range=255.0)}


class VolumeSignal(GridSignal):
    """A scalar volume ``[X, Y, Z]`` normalised by its min and max."""

    def __init__(self, volume: np.ndarray, test_fraction: float = 0.0, seed: int = 0, name: str = "",
                 value_range: tuple[float, float] | None = None, frame: Frame | None = None,
                 sample_dtype: str | None = None) -> None:
        volume = np.asarray(volume, dtype=np.float32)
        if volume.ndim != 3 or min(volume.shape) < 2:
            raise InvalidInputError(f"a volume needs 3 axes of at least 2 samples, got shape {volume.shape}")
        super().__init__(volume[..., None], "volume", value_range, test_fraction, seed, name=name, frame=frame,
                         sample_dtype=sample_dtype)


class FieldSignal(GridSignal):
    """A 2D scalar field ``[X, Y]`` (e.g. ``inrkit synth sin-radial``), normalised by min and max."""

    def __init__(self, field: np.ndarray, test_fraction: float = 0.0, seed: int = 0, name: str = "",
                 value_range: tuple[float, float] | None = None, frame: Frame | None = None,
                 sample_dtype: str | None = None) -> None:
        field = np.asarray(field, dtype=np.float32)
        if field.ndim != 2 or min(field.shape) < 2:
            raise InvalidInputError(f"a 2D field needs 2 axes of at least 2 samples, got shape {field.shape}")
        super().__init__(field[..., None], "field", value_range, test_fraction, seed, name=name, frame=frame,
                         sample_dtype=sample_dtype)


def read_grid(path: str | Path, dims: Sequence[int] | None = None, dtype: str = "uint8") -> Any:
    """Read a ``.npy``/``.raw``/``.vti``/``.vtk`` grid as a float32 array (x is axis 0)."""
    return read_grid_frame(path, dims, dtype)[0]


def read_grid_frame(path: str | Path, dims: Sequence[int] | None = None,
                    dtype: str = "uint8") -> tuple[Any, Frame | None]:
    """A grid (see :func:`read_grid`) and its physical frame (``.vti``/``.vtk`` and the formats of
    :mod:`inrkit.signals.vtkformats`; ``None`` for ``.npy``/``.raw``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path), None
    if suffix == ".raw":
        if not dims:
            raise InvalidInputError(f"{path}: a .raw volume needs its dims (e.g. --dims 64,64,64) and dtype")
        return read_raw(path, tuple(dims), dtype), None
    if suffix == ".vti":
        return read_vti_frame(path)
    if suffix == ".vtk":
        return read_vtk_legacy_frame(path)
    if path.is_dir() or vtk_suffix(path) in VTK_SUFFIXES:
        return read_vtk_volume(path)
    raise InvalidFileError(f"{path}: unsupported grid format {suffix!r}")


def load_image(path: str | Path, test_fraction: float = 0.0, seed: int = 0,
               crop: Sequence[int] | None = None, **_: Any) -> ImageSignal:
    """An image file (``crop=(r0, r1, c0, c1)`` optional)."""
    return ImageSignal.from_file(path, crop=crop, test_fraction=test_fraction, seed=seed)


def load_grid(path: str | Path, test_fraction: float = 0.0, seed: int = 0, dims: Sequence[int] | None = None,
              dtype: str | None = None, spacing: Sequence[float] | None = None, **_: Any) -> GridSignal:
    """A grid file: a 2D array gives a :class:`FieldSignal`, a 3D one a :class:`VolumeSignal`.

    ``spacing`` places a ``.raw`` volume (origin 0; other formats carry their own frame, or none).
    """
    path = Path(path)
    if spacing is not None and path.suffix.lower() != ".raw":
        raise InvalidInputError(f"{path}: --spacing is for .raw volumes (this format gives its own, or none)")
    grid, frame = read_grid_frame(path, dims, dtype or "uint8")
    if spacing is not None:
        values = check_raw_spacing(spacing, dims)
        frame = Frame((0.0,) * len(values), values)
    cls = {2: FieldSignal, 3: VolumeSignal}.get(grid.ndim)
    if cls is None:
        raise InvalidInputError(f"{path}: expected a 2D field or a 3D volume, got shape {grid.shape}")
    return cls(grid, test_fraction=test_fraction, seed=seed, name=path.name, frame=frame,
               sample_dtype=_source_dtype(path, frame, dtype))


def _source_dtype(path: Path, frame: Frame | None, raw_dtype: str | None) -> str | None:
    """NumPy name of a grid file's sample type: the frame's, a ``.npy`` header's or a ``.raw``'s ``dtype``."""
    if frame is not None and frame.dtype:
        return frame.dtype
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return npy_header(path)[1].name
    if suffix == ".raw":
        return np.dtype(raw_dtype or "uint8").name
    return None


def check_image_meta(meta: dict[str, Any], out_dim: int) -> dict[str, Any]:
    """An image header: 2D shape (<= 2^15 per side, 2^26 pixels), channels and value normalisation."""
    check_grid_meta(meta, out_dim, dims=2, required=("shape", "channels", "value_offset", "value_scale"),
                    max_side=1 << 15, max_values=1 << 26)
    for key in ("crop", "source_shape"):
        value, n = meta.get(key), 4 if key == "crop" else 2
        if value is not None and not (isinstance(value, list) and len(value) == n
                                      and all(type(v) is int and 0 <= v <= 1 << 15 for v in value)):
            raise InvalidFileError(f"signal {key!r} {str(value)[:80]} must list {n} integers in [0, 32768]")
    return meta


register_kind(SignalKind("image", (".png", ".jpg", ".jpeg"), load_image, render_image, check_image_meta))
register_kind(SignalKind("volume", (".npy", ".raw", ".vti", ".vtk", *VTK_SUFFIXES, FOLDER), load_grid, render_volume,
                         lambda meta, out_dim: check_grid_meta(meta, out_dim)))
register_kind(SignalKind("field", (), None, render_grid, lambda meta, out_dim: check_grid_meta(meta, out_dim, dims=2)))
