"""Signals an INR can fit: images, volumes, 2D fields, analytic functions, SDFs from meshes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidFileError, InvalidInputError
from .analytic import FUNCTIONS, AnalyticSignal, sin_radial
from .base import GridSignal, Signal, grid_coords, predict
from .grid import FieldSignal, ImageSignal, VolumeSignal
from .readers import read_image, read_npy, read_raw, read_vti, read_vtk_legacy, write_vti
from .render import render_model
from .sdf import SDFSignal

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off")
VOLUME_SUFFIXES = (".npy", ".raw", ".vti", ".vtk")


def read_grid(path: str | Path, dims: tuple[int, ...] | None = None, dtype: str = "uint8") -> Any:
    """Read a ``.npy``/``.raw``/``.vti``/``.vtk`` grid as a float32 array (x is axis 0)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path)
    if suffix == ".raw":
        if not dims:
            raise InvalidInputError(f"{path}: a .raw volume needs its dims (e.g. --dims 64,64,64) and dtype")
        return read_raw(path, tuple(dims), dtype)
    if suffix == ".vti":
        return read_vti(path)
    if suffix == ".vtk":
        return read_vtk_legacy(path)
    raise InvalidFileError(f"{path}: unsupported grid format {suffix!r}")


def load_signal(path: str | Path, test_fraction: float = 0.0, seed: int = 0, **options: Any) -> Signal:
    """Load a signal from a file, choosing the type by extension.

    ``analytic:NAME`` (e.g. ``analytic:sin-radial``) gives an analytic function; options:
    ``crop=(r0, r1, c0, c1)`` for images, ``dims``/``dtype`` for ``.raw``, ``num_points`` for meshes,
    ``params`` for analytic functions.
    """
    text = str(path)
    if text.startswith("analytic:"):
        return AnalyticSignal(text.split(":", 1)[1], params=options.get("params"))
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InvalidFileError(f"{path}: no such file")
    if suffix in IMAGE_SUFFIXES:
        return ImageSignal.from_file(path, crop=options.get("crop"), test_fraction=test_fraction, seed=seed)
    if suffix in MESH_SUFFIXES:
        return SDFSignal.from_file(path, num_points=options.get("num_points", 100_000), seed=seed)
    if suffix in VOLUME_SUFFIXES:
        grid = read_grid(path, options.get("dims"), options.get("dtype", "uint8"))
        cls = {2: FieldSignal, 3: VolumeSignal}.get(grid.ndim)
        if cls is None:
            raise InvalidInputError(f"{path}: expected a 2D field or a 3D volume, got shape {grid.shape}")
        return cls(grid, test_fraction=test_fraction, seed=seed, name=path.name)
    known = IMAGE_SUFFIXES + VOLUME_SUFFIXES + MESH_SUFFIXES
    raise InvalidFileError(f"{path}: unsupported format {suffix!r} (known: {', '.join(known)})")


__all__ = [
    "FUNCTIONS", "AnalyticSignal", "FieldSignal", "GridSignal", "ImageSignal", "SDFSignal", "Signal",
    "VolumeSignal", "grid_coords", "load_signal", "predict", "read_grid", "read_image", "read_npy",
    "read_raw", "read_vti", "read_vtk_legacy", "render_model", "sin_radial", "write_vti",
]
