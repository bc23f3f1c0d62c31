"""The signal-kind registry: each kind registers once (name, file suffixes, loader, renderer, metadata check).

``load_signal`` (file -> signal), ``render_model`` (model + header metadata -> file) and
``check_metadata`` dispatch on :data:`KINDS`. Adding a kind is one ``KINDS.register(...)`` call
beside its signal class::

    KINDS.register("image", SignalKind("image", (".png", ".jpg"), load_image, render_image, check_image))
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_RENDER_POINTS, MAX_RENDER_SIDE
from inrkit.metrics import SAMPLE_DTYPE_NAMES
from inrkit.registry import Registry
from inrkit.signals.frames import check_frame_meta

Loader = Callable[..., Any]  # returns a Signal (not imported here: base.py imports this module)
Renderer = Callable[[torch.nn.Module, dict, Path, "Sequence[int] | None"], Path]
Check = Callable[[dict, int], dict]
MAX_SIDE, MAX_VALUES = 1 << 15, MAX_RENDER_POINTS  # header 'signal.shape' bounds (renders must stay bounded)
DEFAULT_KIND = "field"  # renders models whose header names no registered kind (e.g. .npz imports)
FOLDER = "/"  # the "suffix" of a folder: a kind listing it reads folders (a DICOM series, TIFF slices)


@dataclass(frozen=True)
class SignalKind:
    """One kind of signal.

    Args:
        name: the ``kind`` written into model headers (``header["signal"]["kind"]``).
        suffixes: lower-case file suffixes the loader reads (empty: not read from files; ``"/"``: folders).
        load: ``load(path, test_fraction=, seed=, **options) -> Signal``.
        render: ``render(model, meta, path, size) -> Path`` from header metadata alone.
        check: ``check(meta, out_dim) -> meta``; raises :class:`InvalidFileError` on bad metadata.
        scheme: ``"analytic"`` lets ``load_signal("analytic:NAME")`` reach this kind.
    """

    name: str
    suffixes: tuple[str, ...]
    load: Loader | None
    render: Renderer
    check: Check
    scheme: str | None = None


KINDS: Registry[SignalKind] = Registry("signal kind")


def register_kind(kind: SignalKind) -> SignalKind:
    """Register ``kind`` under its name (the one place a new signal kind is added)."""
    return KINDS.register(kind.name, kind)  # type: ignore[return-value]


def suffixes() -> tuple[str, ...]:
    """Every file suffix some registered kind reads."""
    return tuple(s for _, kind in KINDS.items() for s in kind.suffixes)


def kind_for_path(path: str | os.PathLike) -> tuple[SignalKind, str]:
    """The kind that reads ``path`` and the path/name to hand its loader."""
    text = str(path)
    scheme, sep, rest = text.partition(":")
    for _, kind in KINDS.items():
        if sep and kind.scheme == scheme and kind.load is not None:
            return kind, rest
    suffix = FOLDER if Path(text).is_dir() else Path(text).suffix.lower()
    name = Path(text).name.lower()
    for _, kind in KINDS.items():
        if kind.load is not None and (suffix in kind.suffixes or any(
                s.count(".") > 1 and name.endswith(s) for s in kind.suffixes)):  # ".nii.gz"
            if not Path(text).exists():
                raise InvalidFileError(f"{text}: no such file")
            return kind, text
    if not Path(text).exists():
        raise InvalidFileError(f"{text}: no such file")
    raise InvalidFileError(f"{text}: unsupported format {suffix!r} (known: {', '.join(suffixes())})")


def load_signal(path: str | os.PathLike, test_fraction: float = 0.0, seed: int = 0, **options: Any) -> Any:
    """Load a signal from a file, choosing its kind by suffix (or ``scheme:NAME``, e.g. ``analytic:sin-radial``).

    Options: ``crop=(r0, r1, c0, c1)`` for images, ``dims``/``dtype`` for ``.raw``, ``num_points`` for
    meshes, ``params`` for analytic functions; a kind ignores options it does not use.
    """
    kind, target = kind_for_path(path)
    assert kind.load is not None
    return kind.load(target, test_fraction=test_fraction, seed=seed, **options)


def check_metadata(meta: Any, out_dim: int, kind: str | None = None) -> dict[str, Any]:
    """Validate header signal metadata with its kind's check (``kind`` demands that kind)."""
    if not isinstance(meta, dict):
        raise InvalidFileError("signal metadata must be an object")
    name = meta.get("kind")
    if kind is not None and name != kind:
        raise InvalidFileError(f"the file does not hold a {kind} signal (kind {str(name)[:40]!r})")
    if not isinstance(name, str) or name not in KINDS:
        return check_grid_meta(meta, out_dim)
    return KINDS.get(str(name)).check(meta, out_dim)


def render_model(model: torch.nn.Module, meta: dict[str, Any], path: str | os.PathLike,
                 size: Sequence[int] | None = None) -> Path:
    """Render ``model`` to ``path`` from its signal metadata alone; the kind and the suffix pick the format.

    The metadata is checked first (an unknown or missing kind as a plain grid), so a header's
    ``shape`` is bounded before the renderer allocates anything.
    """
    meta = meta or {}
    if not isinstance(meta, dict):
        raise InvalidFileError("signal metadata must be an object")
    name = meta.get("kind") or ""
    known = isinstance(name, str) and name in KINDS
    kind = KINDS.get(name if known else DEFAULT_KIND)
    out_dim = getattr(model, "out_dim", None)
    if not isinstance(out_dim, int):
        channels = meta.get("channels", 1)
        out_dim = channels if type(channels) is int else 1
    if known:
        kind.check(meta, out_dim)
    else:
        check_grid_meta(meta, out_dim)
    return kind.render(model, meta, Path(path), size)


# ------------------------------------------------------------------ checks
def _numbers(value: Any, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(type(x) in (int, float) and math.isfinite(x) for x in value))


def check_grid_meta(meta: dict[str, Any], out_dim: int, dims: int | None = None, required: Sequence[str] = (),
                    max_side: int = MAX_RENDER_SIDE, max_values: int = MAX_VALUES) -> dict:
    """Check the grid keys of signal metadata that are present (and the ``required`` ones)."""
    missing = [k for k in required if k not in meta]
    if missing:
        raise InvalidFileError(f"signal metadata lacks {', '.join(missing)}")
    shape = meta.get("shape")
    if shape is not None:
        ok = (isinstance(shape, list) and 1 <= len(shape) <= 4
              and all(type(s) is int and 1 <= s <= max_side for s in shape))
        if not ok or (dims is not None and len(shape) != dims) or math.prod(shape) > max_values:
            raise InvalidFileError(f"signal shape {str(shape)[:80]} is invalid (at most {max_side} per side, "
                                   f"{max_values} in all)")
    if "channels" in meta and meta["channels"] != out_dim:
        raise InvalidFileError(f"signal has {str(meta['channels'])[:20]} channels but the model has {out_dim} outputs")
    for key in ("value_offset", "value_scale"):
        if key in meta and not _numbers(meta[key], out_dim):
            raise InvalidFileError(f"signal field {key!r} is invalid")
    if "dtype" in meta and meta["dtype"] not in SAMPLE_DTYPE_NAMES:
        raise InvalidFileError(f"signal 'dtype' {str(meta['dtype'])[:40]!r} is not one of "
                               f"{', '.join(SAMPLE_DTYPE_NAMES)}")
    check_frame_meta(meta, len(shape) if isinstance(shape, list) else dims)
    return meta


@dataclass
class SignalOptions:
    """How to read a signal file (each kind uses the options it knows).

    Args:
        crop: image window ROW0:ROW1,COL0:COL1 (e.g. 128:384,256:512).
        dims: dimensions of a .raw volume, x first (e.g. 64,64,64).
        dtype: sample type of a .raw volume.
        spacing: physical distance between the samples of a .raw volume per axis, x first (e.g. 4,4,4;
            kept in the model like a .vti's spacing).
        test_fraction: hold out this share of samples for the metrics (e.g. 0.1).
    """

    crop: tuple[int, int, int, int] | None = None
    dims: tuple[int, ...] | None = None
    dtype: str = "uint8"
    spacing: tuple[float, ...] | None = None
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise InvalidInputError(f"test fraction must be in [0, 1), got {self.test_fraction}")
        if self.spacing is not None:
            check_raw_spacing(self.spacing, self.dims)

    def kwargs(self) -> dict[str, Any]:
        """Keyword options of :func:`load_signal` (``test_fraction`` included)."""
        out: dict[str, Any] = {"test_fraction": self.test_fraction}
        if self.crop is not None:
            out["crop"] = tuple(self.crop)
        if self.dims is not None:
            out.update(dims=tuple(self.dims), dtype=self.dtype)
        if self.spacing is not None:
            out["spacing"] = tuple(float(v) for v in self.spacing)
        return out


def check_raw_spacing(spacing: Sequence[Any], dims: Sequence[int] | None) -> tuple[float, ...]:
    """A ``.raw`` volume's ``spacing``: one finite positive number per axis of ``dims`` (InvalidInputError)."""
    if not dims:
        raise InvalidInputError("spacing (--spacing) is for a .raw volume and needs its dims (--dims)")
    values = tuple(spacing)
    if len(values) != len(dims) or not all(
            type(v) in (int, float) and math.isfinite(v) and v > 0 for v in values):
        raise InvalidInputError(f"spacing {list(values)[:8]} must give {len(dims)} finite numbers > 0, "
                                f"one per axis of dims {list(dims)[:8]}")
    return tuple(float(v) for v in values)
