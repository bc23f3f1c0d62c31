"""Quick looks at a volume model: its three mid-planes side by side, or one plane, as a greyscale PNG.

``inrkit render vol.safetensors -o look.png`` writes the planes through the middle of x, y and z
(left to right: the x plane with y to the right and z up, the y plane with x to the right and z up,
the z plane with x to the right and y up), at the signal's own grid (or ``--size``).
``--slice z:32`` writes the one plane ``z = 32`` of that grid. Only the planes are evaluated, never
the whole volume. Grey levels span the source's value range (recorded in the model header), so
planes and slices of one model compare directly.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from inrkit.errors import InvalidInputError
from inrkit.signals.base import predict
from inrkit.signals.render import render_grid, render_shape, save_png

AXES = "xyz"


def parse_slice(text: str) -> tuple[int, int]:
    """``"z:32"`` (or ``"2:32"``) as ``(axis, index)``; :class:`InvalidInputError` when malformed."""
    match = re.fullmatch(r"\s*([xyzXYZ012])\s*:\s*(\d{1,9})\s*", str(text))
    if match is None:
        raise InvalidInputError(f"--slice {str(text)[:40]!r}: expected AXIS:INDEX, e.g. z:32 (axis x, y or z)")
    name = match.group(1).lower()
    return (AXES.index(name) if name in AXES else int(name)), int(match.group(2))


def _plane_coords(shape: Sequence[int], axis: int, index: int) -> torch.Tensor:
    """Coordinates in [-1, 1]^3 of the plane ``axis = index`` of a ``shape`` grid, ``[a, b, 3]`` flattened
    (``a``, ``b`` the other two axes in order)."""
    axes = [torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape]
    axes[axis] = axes[axis][index: index + 1]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def plane_values(model: torch.nn.Module, meta: dict[str, Any], shape: Sequence[int], axis: int,
                 index: int) -> np.ndarray:
    """The model's values (raw units, first channel) on the plane ``axis = index``: ``[n_a, n_b]``."""
    channels = int(meta.get("channels", 1))
    offset = float(np.asarray(meta.get("value_offset", [0.0] * channels), dtype=np.float64)[0])
    scale = float(np.asarray(meta.get("value_scale", [1.0] * channels), dtype=np.float64)[0])
    pred = predict(model, _plane_coords(shape, axis, index)).numpy().astype(np.float64)[:, 0]
    rest = [n for k, n in enumerate(shape) if k != axis]
    return (pred * scale + offset).reshape(rest)


def _grey(planes: list[np.ndarray], meta: dict[str, Any]) -> list[np.ndarray]:
    """Planes as uint8 images (first axis to the right, second up), over the source's value range."""
    if "value_offset" in meta and "value_scale" in meta:
        offset, scale = float(meta["value_offset"][0]), float(meta["value_scale"][0])
        lo, hi = offset - abs(scale), offset + abs(scale)
    else:
        lo, hi = min(float(p.min()) for p in planes), max(float(p.max()) for p in planes)
    span = hi - lo if hi > lo else 1.0
    return [(np.clip((p - lo) / span, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).T[::-1] for p in planes]


def _check_volume(model: torch.nn.Module, meta: dict[str, Any], what: str) -> None:
    if getattr(model, "coord_dim", 3) != 3 or getattr(model, "out_dim", 1) != 1 or meta.get("kind") != "volume":
        raise InvalidInputError(f"{what} needs a volume model (3D coordinates, one value); this one is "
                                f"{meta.get('kind') or 'of no known kind'!s:.40}")


def quicklook_points(model: torch.nn.Module, meta: dict[str, Any], output: str | os.PathLike, plane: str | None,
                     size: Sequence[int] | None = None) -> int | None:
    """Points a mid-plane render (a volume model to ``.png``) or a ``plane`` slice evaluates; ``None`` for
    other renders. What the render-work bounds count instead of the whole grid."""
    is_volume = meta.get("kind") == "volume" and getattr(model, "coord_dim", 3) == 3
    if not is_volume or (plane is None and Path(output).suffix.lower() != ".png"):
        return None
    shape = render_shape(model, meta, size)
    total = int(np.prod(shape, dtype=np.int64))
    if plane is not None:
        return total // shape[parse_slice(plane)[0]]
    return sum(total // n for n in shape)


def render_planes(model: torch.nn.Module, meta: dict[str, Any], path: Path, size: Sequence[int] | None) -> Path:
    """The x, y and z mid-planes of a volume model side by side in one greyscale PNG (bottoms aligned).

    The PNG is ``n_y + n_x + n_x`` pixels wide and ``max(n_z, n_y)`` high for a render grid
    ``(n_x, n_y, n_z)`` (the signal's shape, or ``size``).
    """
    _check_volume(model, meta, "a mid-plane render")
    shape = render_shape(model, meta, size)
    images = _grey([plane_values(model, meta, shape, axis, shape[axis] // 2) for axis in range(3)], meta)
    height = max(img.shape[0] for img in images)
    canvas = np.zeros((height, sum(img.shape[1] for img in images)), dtype=np.uint8)
    left = 0
    for img in images:
        canvas[height - img.shape[0]:, left: left + img.shape[1]] = img
        left += img.shape[1]
    return save_png(path, canvas)


def render_slice(model: torch.nn.Module, meta: dict[str, Any], path: Path, size: Sequence[int] | None,
                 plane: str) -> Path:
    """One plane ``AXIS:INDEX`` (e.g. ``z:32``) of a volume model's render grid as a greyscale PNG.

    The index is checked against the grid (the signal's shape, or ``size``) before anything is evaluated.
    """
    axis, index = parse_slice(plane)
    _check_volume(model, meta, "--slice")
    if Path(path).suffix.lower() != ".png":
        raise InvalidInputError(f"--slice writes a .png, not {Path(path).suffix or 'no suffix'!r}")
    shape = render_shape(model, meta, size)
    if not 0 <= index < shape[axis]:
        raise InvalidInputError(f"--slice {AXES[axis]}:{index} is outside the render grid "
                                f"{'x'.join(map(str, shape))} (index 0 to {shape[axis] - 1})")
    return save_png(Path(path), _grey([plane_values(model, meta, shape, axis, index)], meta)[0])


def render_volume(model: torch.nn.Module, meta: dict[str, Any], path: Path, size: Sequence[int] | None) -> Path:
    """The volume kind's renderer: ``.png`` gives the mid-planes (:func:`render_planes`), the rest as
    :func:`inrkit.signals.render.render_grid` (``.npy``, ``.vti``)."""
    suffix = Path(path).suffix.lower()
    if getattr(model, "coord_dim", 3) == 3 and suffix not in (".png", ".npy", ".vti"):
        raise InvalidInputError(f"a volume renders to .png (mid-planes), .npy or .vti, not {suffix or 'no suffix'!r}")
    if suffix == ".png" and getattr(model, "coord_dim", 3) == 3:
        return render_planes(model, meta, Path(path), size)
    return render_grid(model, meta, path, size)
