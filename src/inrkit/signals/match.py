"""Signal-vs-header checks: a ``--signal``/``--reference``/``eval`` input must be the signal a model was fitted to.

A model header records its signal (``kind``, ``shape``, ``channels``, image ``crop``, frame, value
normalisation). :func:`load_matching_signal` reads a signal file with the options given (``crop``...)
and refuses, with an :class:`InvalidInputError` that says what differs, a signal of another kind,
shape, channel count or crop; it then expresses the signal's values in the model's normalisation so
the metrics are in the model's units. A header from before these fields were recorded gives a warning
(:class:`SignalMatchWarning`), not a refusal.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

from inrkit.errors import InrkitWarning, InvalidFileError, InvalidInputError, warn
from inrkit.signals.kinds import load_signal

GRID_KINDS = ("image", "volume", "field")


class SignalMatchWarning(InrkitWarning):
    """A signal could not be fully checked against an older model header."""


def _crop_text(crop: Sequence[int] | None) -> str:
    return "none" if crop is None else f"{crop[0]}:{crop[1]},{crop[2]}:{crop[3]}"


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def header_crop(header: dict[str, Any]) -> tuple[bool, list[int] | None]:
    """``(recorded, crop)``: the image crop a model was fitted with (newer headers, else the fit config)."""
    meta = header.get("signal") or {}
    if "crop" in meta:
        return True, meta["crop"]
    config = ((header.get("extra") or {}).get("config") or {}).get("signal") or {}
    if isinstance(config, dict) and "crop" in config:
        crop = config["crop"]
        return True, None if crop is None else [int(v) for v in crop]
    return False, None


def check_signal_matches(header: dict[str, Any], signal: Any, what: str = "--signal",
                         crop: Sequence[int] | None = None) -> list[str]:
    """Refuse ``signal`` unless it is the signal described by ``header``; return the warnings given.

    Checked when recorded: kind, channels, image crop, grid shape; the frame (origin/spacing) only
    warns. Raises :class:`InvalidInputError` naming what differs (exit 2 in the CLI).
    """
    meta = header.get("signal") or {}
    notes: list[str] = []
    source = f"{what} {getattr(signal, 'name', '') or ''}".strip()
    kind = meta.get("kind")
    if isinstance(kind, str) and kind != getattr(signal, "kind", kind) and (kind in GRID_KINDS or kind == "sdf"):
        raise InvalidInputError(f"{source} is {_a(signal.kind)} but the model was fitted to {_a(kind)}")
    channels = meta.get("channels")
    if isinstance(channels, int) and channels != getattr(signal, "out_dim", channels):
        raise InvalidInputError(f"{source} has {signal.out_dim} channels but the model was fitted to {channels}")
    given = None if crop is None else [int(v) for v in crop]
    if given is not None and getattr(signal, "kind", None) != "image":
        raise InvalidInputError(f"{source}: --crop applies to images, not to {_a(str(signal.kind))}")
    if getattr(signal, "kind", None) == "image":
        recorded, fitted = header_crop(header)
        if recorded and fitted != given:
            hint = f"pass --crop {_crop_text(fitted)}" if fitted is not None else "drop --crop"
            raise InvalidInputError(f"{source}: crop {_crop_text(given)} differs from the crop the model was "
                                    f"fitted to ({_crop_text(fitted)}); {hint}")
        if not recorded:
            notes.append("the model header does not record the image crop (an older file): only the shape is checked")
    shape = meta.get("shape")
    sig_shape = getattr(signal, "shape", None)
    if kind in GRID_KINDS and isinstance(shape, list) and sig_shape is not None and list(sig_shape) != shape:
        extra = f" with crop {_crop_text(given)}" if given is not None else ""
        raise InvalidInputError(f"{source} is {_shape_text(sig_shape)}{extra} but the model was fitted to "
                                f"{_a(_shape_text(shape))} {kind}")
    if kind is None or (shape is None and sig_shape is not None):
        notes.append("the model header does not record the signal's kind and shape (an older or imported file): "
                     f"cannot check that {what} is the fitted signal")
    frame = getattr(signal, "frame", None)
    if frame is not None and "origin" in meta and (
            [float(v) for v in meta["origin"]] != list(frame.origin)
            or [float(v) for v in meta["spacing"]] != list(frame.spacing)):
        notes.append(f"it lies at origin {list(frame.origin)}, spacing {list(frame.spacing)} but the model "
                     f"was fitted at origin {meta['origin']}, spacing {meta['spacing']} (values compared sample by "
                     "sample)")
    for note in notes:  # the CLI shows it as one line, "inrkit: warning: ..."
        warn(f"{source}: {note}", SignalMatchWarning)
    return notes


_HEAD_BYTES = 1 << 16  # bytes of a .vti/.vtk file searched for its grid dimensions
_WHOLE_EXTENT = re.compile(rb'WholeExtent\s*=\s*"([^"]{0,200})"')
_DIMENSIONS = re.compile(rb"\n\s*DIMENSIONS\s+(\d{1,12})\s+(\d{1,12})\s+(\d{1,12})", re.IGNORECASE)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off")


def _grid_kind(dims: Sequence[int]) -> str | None:
    return {2: "field", 3: "volume"}.get(len(dims))


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def peek_signal(path: str | os.PathLike, crop: Sequence[int] | None = None,
                dims: Sequence[int] | None = None) -> SimpleNamespace | None:
    """What a signal file holds, from its header alone: ``kind``, ``shape`` and ``out_dim`` (channels).

    Reads the PNG/JPEG header (Pillow opens lazily; ``crop`` applied when it lies inside the image), the
    ``.npy`` header, ``.raw`` ``dims``, the ``WholeExtent`` of a ``.vti`` or the ``DIMENSIONS`` of a legacy
    ``.vtk`` (size-1 axes dropped, as the readers do); a mesh is an ``sdf`` (no shape). ``None`` when the
    format gives nothing cheaply (the full reader then checks).
    """
    from inrkit.signals.readers import file_size, npy_header, open_image

    p = Path(path)
    suffix = p.suffix.lower()
    if str(path).startswith("analytic:") or p.is_dir():
        return None
    if suffix in _MESH_SUFFIXES:
        return SimpleNamespace(kind="sdf", shape=None, out_dim=1, name=p.name, frame=None)
    shape: list[int] | None = None
    if suffix in _IMAGE_SUFFIXES:
        with open_image(p) as img:
            width, height = img.size
            channels = 1 if img.mode.startswith("I") or img.mode in ("1", "L", "LA") else 3  # as read_image
        shape = [height, width]
        if crop is not None:
            r0, r1, c0, c1 = (int(v) for v in crop)
            if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
                return None  # the reader explains a crop outside the image
            shape = [r1 - r0, c1 - c0]
        return SimpleNamespace(kind="image", shape=shape, out_dim=channels, name=p.name, frame=None)
    if suffix == ".npy":
        shape = list(npy_header(p)[0])
    elif suffix == ".raw" and dims:
        shape = [int(d) for d in dims]
    elif suffix in (".vti", ".vtk"):
        file_size(p)
        head = _read_head(p)
        if suffix == ".vti":
            match = _WHOLE_EXTENT.search(head)
            try:
                ext = [int(v) for v in match.group(1).split()] if match else []
            except ValueError:
                ext = []
            if len(ext) != 6:
                return None
            shape = [ext[2 * i + 1] - ext[2 * i] + 1 for i in range(3)]
        else:
            found = _DIMENSIONS.search(head)
            if found is None:
                return None
            shape = [int(v) for v in found.groups()]
        if any(d < 1 for d in shape):
            return None
        shape = [d for d in shape if d > 1] or [1]
    if shape is None or _grid_kind(shape) is None:
        return None
    return SimpleNamespace(kind=_grid_kind(shape), shape=shape, out_dim=1, name=p.name, frame=None)


def check_signal_header(path: str | os.PathLike, header: dict[str, Any], what: str = "--signal",
                        crop: Sequence[int] | None = None, dims: Sequence[int] | None = None) -> None:
    """Refuse a signal file whose header already shows that it is not the model's signal (kind, channels,
    crop, shape), before any sample is decoded; the full check follows the load."""
    peeked = peek_signal(path, crop, dims)
    if peeked is None:
        return
    with warnings.catch_warnings():  # notes are given once, by the check after loading
        warnings.simplefilter("ignore", SignalMatchWarning)
        check_signal_matches(header, peeked, what, crop)


def load_matching_signal(path: str | os.PathLike, header: dict[str, Any], what: str = "--signal",
                         crop: Sequence[int] | None = None, **options: Any) -> Any:
    """Load ``path`` (with ``crop`` and other :func:`load_signal` options) and check it against ``header``.

    A grid signal is then expressed in the header's value normalisation (``value_offset``/``value_scale``),
    so PSNR is measured in the model's units. Raises :class:`InvalidInputError` on a mismatch.
    """
    check_signal_header(path, header, what, crop, options.get("dims"))  # headers before pixels
    if crop is not None:
        options["crop"] = tuple(int(v) for v in crop)
    signal = load_signal(path, **options)
    check_signal_matches(header, signal, what, crop)
    meta = header.get("signal") or {}
    offset, scale = meta.get("value_offset"), meta.get("value_scale")
    renormalize = getattr(signal, "renormalize", None)
    if (renormalize is not None and meta.get("kind") in GRID_KINDS and isinstance(offset, list)
            and isinstance(scale, list) and offset and scale and len(set(offset)) == 1 and len(set(scale)) == 1):
        renormalize(float(offset[0]), float(scale[0]))
    return signal
