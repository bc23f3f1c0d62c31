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
import warnings
from typing import Any, Sequence

from inrkit.errors import InvalidInputError
from inrkit.signals.kinds import load_signal

GRID_KINDS = ("image", "volume", "field")


class SignalMatchWarning(UserWarning):
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
    for note in notes:  # shown as "inrkit:0: SignalMatchWarning: ..." (no source line of ours)
        warnings.warn_explicit(f"{source}: {note}", SignalMatchWarning, "inrkit", 0)
    return notes


def load_matching_signal(path: str | os.PathLike, header: dict[str, Any], what: str = "--signal",
                         crop: Sequence[int] | None = None, **options: Any) -> Any:
    """Load ``path`` (with ``crop`` and other :func:`load_signal` options) and check it against ``header``.

    A grid signal is then expressed in the header's value normalisation (``value_offset``/``value_scale``),
    so PSNR is measured in the model's units. Raises :class:`InvalidInputError` on a mismatch.
    """
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
