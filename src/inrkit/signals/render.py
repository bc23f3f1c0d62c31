"""Renderers of the signal kinds: a model back to data from its signal metadata alone.

PNG for images and 2D fields, ``.npy``/``.vti`` for volumes, a mesh for SDFs. The kinds that use
them register in their own modules (see :mod:`inrkit.signals.kinds`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_RENDER_POINTS, MAX_RENDER_SIDE
from inrkit.signals.base import PREDICT_BAR_POINTS, predict
from inrkit.signals.frames import DEFAULT_ARRAY, output_frame
from inrkit.signals.readers import write_vti
from inrkit.utils import atomic_path, atomic_write, terminal_bar, to_uint8


def save_png(path: Path, pixels: np.ndarray) -> Path:
    """Write uint8 ``[H, W]`` or ``[H, W, C]`` pixels as PNG, atomically."""
    from PIL import Image

    arr = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")
    return path


def save_field_png(path: Path, field: np.ndarray, cmap: str = "viridis") -> Path:
    """Write a 2D scalar field ``[X, Y]`` as a colour-mapped PNG (x to the right, y up)."""
    import matplotlib

    lo, hi = float(field.min()), float(field.max())
    norm = (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)
    rgba = matplotlib.colormaps[cmap](norm.T[::-1])
    return save_png(path, (rgba[..., :3] * 255).astype(np.uint8))


def save_npy(path: Path, array: np.ndarray) -> Path:
    """Write an array as ``.npy``, atomically (no pickles)."""
    with atomic_write(path) as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)
    return path


RENDER_CHUNK = 1 << 16  # grid points evaluated at a time by grid_values (memory: the output + one chunk) ...
RENDER_CHUNK_VALUES = 1 << 22  # ... fewer for a wide network: at most this many values (16 MiB) per layer output


def chunk_coords(shape: Sequence[int], start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of :func:`inrkit.signals.base.grid_coords` (the same values), without the rest."""
    axes = [torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape]
    index = np.unravel_index(np.arange(start, stop, dtype=np.int64), tuple(int(n) for n in shape))
    return torch.stack([axis[torch.from_numpy(np.ascontiguousarray(i))] for axis, i in zip(axes, index)], dim=-1)


def grid_values(model: torch.nn.Module, meta: dict[str, Any], shape: Sequence[int],
                convert: Callable[[np.ndarray], np.ndarray] | None = None, dtype: Any = np.float64) -> np.ndarray:
    """The model on the grid ``shape`` in the header's units, ``[*shape, C]``.

    Evaluated :data:`RENDER_CHUNK` points at a time (fewer for a wide network, see
    :data:`RENDER_CHUNK_VALUES`) into one preallocated ``dtype`` array (after
    ``convert``, e.g. to 8-bit pixels), so memory is the output plus one chunk, whatever the grid.
    """
    channels = int(meta.get("channels", 1))
    offset = np.asarray(meta.get("value_offset", [0.0] * channels), dtype=np.float64)
    scale = np.asarray(meta.get("value_scale", [1.0] * channels), dtype=np.float64)
    total = int(np.prod([int(n) for n in shape], dtype=np.int64))
    widest = max([int(w) for w in getattr(model, "widths", [1])] or [1])
    chunk = max(1, min(RENDER_CHUNK, RENDER_CHUNK_VALUES // widest))
    from tqdm.auto import tqdm

    out: np.ndarray | None = None
    with tqdm(total=total, desc="evaluate model", unit="pt", unit_scale=True, file=sys.stderr, leave=False,
              disable=terminal_bar(total > PREDICT_BAR_POINTS), dynamic_ncols=True) as bar:
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            pred = predict(model, chunk_coords(shape, start, stop), batch=chunk).numpy().astype(np.float64)
            values = pred * scale + offset
            if convert is not None:
                values = convert(values)
            if out is None:
                out = np.empty((total, values.shape[-1]), dtype=dtype)
            out[start:stop] = values
            bar.update(stop - start)
    assert out is not None  # a grid has at least one point
    return out.reshape(*shape, out.shape[-1])


def extract_sdf_mesh(model: torch.nn.Module, resolution: int):
    """Zero level set of an SDF model on a ``resolution^3`` grid in [-1, 1]^3 (a trimesh)."""
    import trimesh
    from skimage.measure import marching_cubes

    sdf = grid_values(model, {"channels": 1}, [resolution] * 3, dtype=np.float32)[..., 0]
    if not (sdf.min() < 0.0 < sdf.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    verts, faces, _, _ = marching_cubes(sdf, level=0.0, spacing=(2.0 / (resolution - 1),) * 3)
    return trimesh.Trimesh(verts - 1.0, faces[:, ::-1], process=False)


def render_sdf(model: torch.nn.Module, meta: dict[str, Any], path: Path, size: Sequence[int] | None) -> Path:
    """Marching-cubes mesh (``.ply``/``.obj``/``.stl``) of an SDF model, in the signal's physical box,
    or (``.vti``) the distance sampled on a grid over that box, in the mesh's units (array ``sdf``)."""
    if path.suffix.lower() not in (".ply", ".obj", ".stl", ".vti"):
        raise InvalidInputError(f"an SDF renders to a mesh (.ply/.obj/.stl) or a distance volume (.vti), "
                                f"not {path.suffix!r}")
    if size:
        resolution = check_render_shape([size[0]] * 3, InvalidInputError, "render size")[0]
    else:
        shape = meta.get("shape") or [128]
        side = shape[0] if isinstance(shape, list) else shape
        resolution = check_render_shape([side] * 3, InvalidFileError, "header 'signal.shape'")[0]
    if resolution < 2:
        raise InvalidInputError("an SDF mesh needs a resolution of at least 2")
    domain = np.asarray(meta.get("domain", [[-1.0, 1.0]] * 3), dtype=np.float64)
    if path.suffix.lower() == ".vti":
        values = grid_values(model, meta, [resolution] * 3)[..., 0]
        spacing = (domain[:, 1] - domain[:, 0]) / (resolution - 1)
        return write_vti(path, values, name="sdf", origin=domain[:, 0].tolist(), spacing=spacing.tolist())
    mesh = extract_sdf_mesh(model, resolution)
    mesh.apply_transform(np.diag([*((domain[:, 1] - domain[:, 0]) / 2.0), 1.0]))
    mesh.apply_translation(domain.mean(axis=1))
    with atomic_path(path) as tmp:
        mesh.export(tmp)
    return path


def check_render_shape(shape: Any, error: type[Exception], what: str) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, each in ``[1, MAX_RENDER_SIDE]``, at most ``MAX_RENDER_POINTS`` in all.

    Checked before anything is allocated; ``error`` is :class:`InvalidInputError` for a ``--size`` and
    :class:`InvalidFileError` for a shape read from a file header.
    """
    if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 4:
        raise error(f"{what} must list 1 to 4 sizes, got {str(shape)[:80]}")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 1 <= s <= MAX_RENDER_SIDE
               for s in shape):
        raise error(f"{what} must hold integers in [1, {MAX_RENDER_SIDE}], got {str(list(shape))[:80]}")
    points = int(np.prod([int(s) for s in shape], dtype=object))
    if points > MAX_RENDER_POINTS:
        raise error(f"{what} {[int(s) for s in shape]} asks for {points} points (at most {MAX_RENDER_POINTS})")
    return tuple(int(s) for s in shape)


def render_shape(model: torch.nn.Module, meta: dict[str, Any], size: Sequence[int] | None) -> tuple[int, ...]:
    """The grid to render: ``size``, else the signal's shape, else 256 per axis (bounded before allocating)."""
    header_shape = meta.get("shape")
    dim = getattr(model, "coord_dim", len(header_shape) if isinstance(header_shape, list) else 2)
    if size:
        shape = check_render_shape(list(size), InvalidInputError, "render size")
    elif header_shape:
        shape = check_render_shape(header_shape, InvalidFileError, "header 'signal.shape'")
    else:
        shape = check_render_shape([256] * int(dim), InvalidInputError, "default render size")
    if len(shape) != dim:
        raise InvalidInputError(f"render size needs {dim} numbers, got {list(shape)}")
    return shape


def header_render_points(model: torch.nn.Module, meta: dict[str, Any]) -> int:
    """Grid points a render without a size evaluates: the header's ``signal.shape`` (an SDF: its side cubed),
    else the default of 256 (SDF: 128) per axis."""
    if not isinstance(meta, dict):
        raise InvalidFileError("signal metadata must be an object")
    if meta.get("kind") == "sdf":
        shape = meta.get("shape") or [128]
        side = shape[0] if isinstance(shape, list) else shape
        return int(np.prod(check_render_shape([side] * 3, InvalidFileError, "header 'signal.shape'"), dtype=np.int64))
    return int(np.prod(render_shape(model, meta, None), dtype=np.int64))


def render_image(model: torch.nn.Module, meta: dict[str, Any], path: Path, size: Sequence[int] | None) -> Path:
    """An image model as an 8-bit PNG."""
    shape = render_shape(model, meta, size)
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"images render to .png, not {path.suffix.lower()!r}")
    pixels = grid_values(model, meta, shape, convert=lambda v: to_uint8(v, peak=255.0), dtype=np.uint8)
    return save_png(path, pixels)


def render_grid(model: torch.nn.Module, meta: dict[str, Any], path: Path, size: Sequence[int] | None) -> Path:
    """A field or volume model as ``.npy`` (raw values), ``.png`` (2D colour map) or ``.vti`` (3D)."""
    shape, suffix, kind = render_shape(model, meta, size), path.suffix.lower(), meta.get("kind") or ""
    dim = len(shape)
    values = grid_values(model, meta, shape, dtype=np.float32)
    values = values[..., 0] if values.shape[-1] == 1 else values
    if suffix == ".npy":
        return save_npy(path, values)
    if dim == 2 and suffix == ".png" and values.ndim == 2:
        return save_field_png(path, values)
    if dim == 3 and suffix == ".vti" and values.ndim == 3:
        frame = output_frame(meta, shape)
        return write_vti(path, values, name=frame.array or DEFAULT_ARRAY, origin=frame.origin, spacing=frame.spacing)
    formats = ".npy or .png" if dim == 2 else ".npy or .vti"
    raise InvalidInputError(f"a {dim}D {kind or 'model'} renders to {formats}, not {suffix!r}")
