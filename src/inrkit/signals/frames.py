"""Physical frames of grid signals: origin, spacing and array name, from the source file to every output.

A ``.vti`` (or legacy ``.vtk``) volume places sample ``i`` of axis ``k`` at ``origin[k] + i * spacing[k]``
and names its values (``probability_density``). The loaders keep that :class:`Frame`; a signal writes
it into its metadata (hence the model header) as ``origin``, ``spacing``, ``array`` and the physical
``domain`` ``[[origin, origin + spacing * (n - 1)], ...]``; ``render`` writes ``.vti`` with the same
origin and bounds (the spacing follows ``--size``) and ``mesh`` writes VTU/PVD points in the same box.
A source without a frame (``.npy``, ``.raw``, images) keeps the model's ``[-1, 1]^d`` domain.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from inrkit.errors import InvalidFileError

ARRAY_NAME = re.compile(r"[A-Za-z0-9_.\-+ ()\[\]]{1,64}")  # kept names: safe in XML, headers and ParaView
DEFAULT_ARRAY = "values"
FRAME_KEYS = ("origin", "spacing", "array")


def clean_array_name(name: Any) -> str | None:
    """``name`` if it is a short plain array name (letters, digits, ``_.-+ ()[]``), else ``None``."""
    if isinstance(name, str) and ARRAY_NAME.fullmatch(name) and name.strip():
        return name
    return None


@dataclass(frozen=True)
class Frame:
    """Where grid samples lie in physical space, and what the values are called.

    Args:
        origin: physical position of sample 0 along each axis.
        spacing: distance between samples along each axis (positive).
        array: name of the value array (``None``: unnamed).
        dtype: NumPy name of the source's sample type (``uint8``, ``float32``...; ``None``: unknown). It sizes
            the raw data a model is compared with (:func:`inrkit.signals.base.raw_bytes`).
    """

    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    array: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if len(self.origin) != len(self.spacing) or not self.origin:
            raise InvalidFileError(f"frame origin {list(self.origin)[:4]} and spacing {list(self.spacing)[:4]} "
                                   "differ in length")
        if not all(math.isfinite(v) for v in (*self.origin, *self.spacing)) or min(self.spacing) <= 0:
            raise InvalidFileError(f"frame origin {list(self.origin)[:4]} / spacing {list(self.spacing)[:4]} must be "
                                   "finite with positive spacing")

    @property
    def is_identity(self) -> bool:
        """Origin 0 and spacing 1 (VTK's defaults: index space)."""
        return all(o == 0.0 for o in self.origin) and all(s == 1.0 for s in self.spacing)

    def domain(self, shape: Sequence[int]) -> list[list[float]]:
        """Physical box ``[[lo, hi], ...]`` of a grid of ``shape`` samples in this frame."""
        return [[float(o), float(o + s * max(int(n) - 1, 1))] for o, s, n in zip(self.origin, self.spacing, shape)]

    def metadata(self, shape: Sequence[int]) -> dict[str, Any]:
        """Signal-metadata fields: ``origin``, ``spacing``, ``array`` (if named) and the physical ``domain``."""
        out: dict[str, Any] = {"origin": [float(v) for v in self.origin], "spacing": [float(v) for v in self.spacing],
                               "domain": self.domain(shape)}
        if self.array:
            out["array"] = self.array
        return out

    def select(self, axes: Sequence[int]) -> "Frame":
        """The frame of the listed axes only (e.g. a ``.vti`` whose size-1 axes were dropped)."""
        return Frame(tuple(self.origin[a] for a in axes), tuple(self.spacing[a] for a in axes), self.array, self.dtype)


def frame_from_meta(meta: dict[str, Any]) -> Frame | None:
    """The frame recorded in signal metadata (``None`` when it has no ``origin``/``spacing``)."""
    if "origin" not in meta or "spacing" not in meta:
        return None
    return Frame(tuple(float(v) for v in meta["origin"]), tuple(float(v) for v in meta["spacing"]),
                 clean_array_name(meta.get("array")))


def output_frame(meta: dict[str, Any], shape: Sequence[int]) -> Frame:
    """The frame to write a ``shape`` render in: the recorded box resampled to ``shape``, else index space.

    The rendered grid spans the same box as the source (first and last samples at the source's), so the
    spacing scales with ``(n_source - 1) / (n - 1)``; array name from the header, else ``values``.
    """
    frame = frame_from_meta(meta)
    name = clean_array_name(meta.get("array")) or DEFAULT_ARRAY
    src = meta.get("shape")
    if frame is None or not isinstance(src, list) or len(src) != len(shape) or len(frame.origin) != len(shape):
        return Frame((0.0,) * len(shape), (1.0,) * len(shape), name)
    spacing = tuple(s * (int(m) - 1) / (int(n) - 1) if int(n) > 1 and int(m) > 1 else s
                    for s, m, n in zip(frame.spacing, src, shape))
    return Frame(frame.origin, spacing, name)


def check_frame_meta(meta: dict[str, Any], dims: int | None) -> None:
    """Check the frame keys of signal metadata that are present (raises :class:`InvalidFileError`)."""
    if "array" in meta and clean_array_name(meta["array"]) is None:
        raise InvalidFileError(f"signal 'array' {str(meta['array'])[:80]!r} is not a plain array name "
                               "(at most 64 letters, digits and _.-+ ()[])")
    if ("origin" in meta) != ("spacing" in meta):
        raise InvalidFileError("signal metadata needs both 'origin' and 'spacing' (or neither)")
    if "origin" not in meta:
        return
    n = dims if dims is not None else (len(meta["origin"]) if isinstance(meta["origin"], list) else 0)
    for key in ("origin", "spacing"):
        value = meta[key]
        if not (isinstance(value, list) and 1 <= len(value) <= 4 and len(value) == n
                and all(type(x) in (int, float) and math.isfinite(x) for x in value)):
            raise InvalidFileError(f"signal {key!r} {str(value)[:80]} must list {n} finite numbers")
    if min(meta["spacing"]) <= 0:
        raise InvalidFileError(f"signal 'spacing' {str(meta['spacing'])[:80]} must be positive")
