"""A volume series: many volumes on one grid (time steps or ensemble members).

A series is a folder with ``manifest.json`` and one file per member (``.npy``, ``.raw`` or
``.vti``)::

    {"format": "inrkit-series", "version": 1, "name": "vortex", "dims": [64, 64, 64],
     "dtype": "float32", "files": ["vortex_0000.npy", ...],
     "label_name": "time", "labels": [0, 1, ...]}

``timesteps: [...]`` or ``parameters: [{"strength": 0.5}, ...]`` may replace ``labels``.
``dtype`` is required for ``.raw`` members (``x`` varies fastest). A folder without a manifest
is accepted when it holds only ``.npy``/``.vti`` files (sorted by name, labels 0..T-1).
All members are normalised to [-1, 1] with ONE global min/max, so values stay comparable.

Bounds (see :mod:`inrkit.limits`): the manifest is parsed with ``parse_json``; at most
``MAX_SERIES_MEMBERS`` members, each listed once, each a regular file inside the series folder
after resolving symlinks; all members together at most ``MAX_SERIES_VALUES`` values and within the
decode-ratio rule applied to the members' total size, checked before the second member is read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import (
    MAX_SERIES_MEMBERS,
    MAX_SERIES_VALUES,
    decode_budget,
    inside_folder,
)
from inrkit.signals.base import grid_coords
from inrkit.signals.frames import Frame
from inrkit.signals.grid import VolumeSignal
from inrkit.signals.readers import file_size, npy_header, read_json_file, read_npy, read_raw, read_vti_frame

MANIFEST = "manifest.json"
SERIES_FORMAT = "inrkit-series"
MEMBER_EXTS = (".npy", ".raw", ".vti")


@dataclass
class VolumeSeries:
    """Normalised volumes ``values [T, X, Y, Z]`` (float32 in [-1, 1]) and their labels.

    ``raw = values * scale + offset`` (one ``offset``/``scale`` for the whole series).
    """

    values: np.ndarray
    labels: np.ndarray
    label_name: str = "time"
    name: str = "series"
    files: list[str] = field(default_factory=list)
    offset: float = 0.0
    scale: float = 1.0
    folder: Path | None = None
    frame: Frame | None = None  # physical frame of the .vti members (origin, spacing, array name)

    def __post_init__(self) -> None:
        if self.values.ndim != 4 or self.values.shape[0] < 1 or min(self.values.shape[1:]) < 2:
            raise InvalidInputError(f"a volume series needs values [T, X, Y, Z] (sides >= 2), got {self.values.shape}")
        if len(self.labels) != self.values.shape[0]:
            raise InvalidInputError(f"{len(self.labels)} labels for {self.values.shape[0]} members")
        if not self.files:
            self.files = [f"{self.name}_{i:04d}" for i in range(len(self))]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def dims(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.values.shape[1:])  # type: ignore[return-value]

    @property
    def member_names(self) -> list[str]:
        return [Path(f).stem for f in self.files]

    @classmethod
    def from_arrays(cls, volumes: np.ndarray, labels: Sequence[float] | np.ndarray | None = None,
                    **kw: Any) -> "VolumeSeries":
        """Normalise raw ``volumes [T, X, Y, Z]`` with their global min/max."""
        return cls._normalise(np.array(volumes, dtype=np.float32), labels, **kw)

    @classmethod
    def _normalise(cls, raw: np.ndarray, labels: Sequence[float] | np.ndarray | None = None,
                   **kw: Any) -> "VolumeSeries":
        """Normalise the float32 array ``raw`` IN PLACE (no second copy of a large series)."""
        if raw.ndim < 1 or raw.size == 0 or not np.isfinite(raw).all():
            raise InvalidInputError("volume series is empty or contains NaN or infinity")
        lo, hi = float(raw.min()), float(raw.max())
        offset, scale = (hi + lo) / 2.0, ((hi - lo) / 2.0 if hi > lo else 1.0)
        lab = np.arange(raw.shape[0], dtype=np.float64) if labels is None else np.asarray(labels, np.float64)
        raw -= offset
        raw /= scale
        return cls(raw, lab, offset=offset, scale=scale, **kw)

    def coords(self, stride: int = 1, device: torch.device | str = "cpu") -> Tensor:
        """Grid coordinates ``[N, 3]`` in [-1, 1]^3 (the core's grid), every ``stride``-th voxel per axis."""
        full = grid_coords(self.dims, device).reshape(*self.dims, 3)
        return full[::stride, ::stride, ::stride].reshape(-1, 3).contiguous()

    def targets(self, members: Sequence[int] | None = None, stride: int = 1,
                device: torch.device | str = "cpu") -> Tensor:
        """Normalised values ``[M, N, 1]`` of the chosen members, matching :meth:`coords`."""
        idx = np.arange(len(self)) if members is None else np.asarray(members, dtype=np.int64)
        sub = self.values[idx][:, ::stride, ::stride, ::stride]
        return torch.from_numpy(np.ascontiguousarray(sub).reshape(len(idx), -1, 1)).to(device)

    def metadata(self, member: int | None = None) -> dict[str, Any]:
        """Signal metadata (as stored in model headers) for one member or the whole series."""
        meta: dict[str, Any] = {
            "kind": "volume", "name": self.name if member is None else self.member_names[member],
            "shape": list(self.dims), "channels": 1, "domain": [[-1.0, 1.0]] * 3,
            "value_offset": [self.offset], "value_scale": [self.scale],
            "series": self.name, "label_name": self.label_name,
        }
        if self.frame is not None:
            meta.update(self.frame.metadata(self.dims))
        if member is not None:
            meta.update(member=int(member), label=float(self.labels[member]))
        return meta

    def member_signal(self, member: int) -> "VolumeSignal":
        """The member as a core :class:`VolumeSignal` with the series-wide normalisation."""
        raw = self.values[member] * self.scale + self.offset
        lo, hi = self.offset - self.scale, self.offset + self.scale
        return VolumeSignal(raw, name=self.member_names[member], value_range=(lo, hi), frame=self.frame)

    def denormalize(self, values: np.ndarray | Tensor) -> np.ndarray:
        arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
        return arr * self.scale + self.offset


def _manifest_labels(man: dict[str, Any], n: int, path: Path) -> tuple[np.ndarray, str]:
    name = man.get("label_name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidFileError(f"{path}: 'label_name' must be a short string")
    if "labels" in man:
        labels = man["labels"]
    elif "timesteps" in man:
        labels, name = man["timesteps"], name or "time"
    elif "parameters" in man:
        params = man["parameters"]
        if not isinstance(params, list) or not all(isinstance(p, dict) and p for p in params):
            raise InvalidFileError(f"{path}: 'parameters' must be a list of non-empty objects")
        if len(params) != n:
            raise InvalidFileError(f"{path}: {len(params)} parameters for {n} files")
        key = name or next(iter(params[0]))
        try:
            labels = [p[key] for p in params]
        except KeyError as exc:
            raise InvalidFileError(f"{path}: every member's parameters need {key!r}") from exc
        name = key
    else:
        labels = list(range(n))
    if not isinstance(labels, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in labels):
        raise InvalidFileError(f"{path}: labels must be a list of numbers")
    arr = np.asarray(labels, dtype=np.float64)
    if arr.shape != (n,):
        raise InvalidFileError(f"{path}: {arr.size} labels for {n} files")
    if not np.isfinite(arr).all():
        raise InvalidFileError(f"{path}: labels must be finite numbers")
    return arr, name or "time"


def _read_manifest(path: Path) -> dict[str, Any]:
    man = read_json_file(path)
    if not isinstance(man, dict) or man.get("format", SERIES_FORMAT) != SERIES_FORMAT:
        raise InvalidFileError(f"{path}: not an inrkit series manifest")
    files = man.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise InvalidFileError(f"{path}: manifest needs a non-empty list 'files'")
    if len(files) > MAX_SERIES_MEMBERS:
        raise InvalidFileError(f"{path}: {len(files)} members (at most {MAX_SERIES_MEMBERS})")
    for key in ("name", "dtype"):
        if key in man and not (isinstance(man[key], str) and len(man[key]) <= 200):
            raise InvalidFileError(f"{path}: {key!r} must be a short string")
    return man


def _member_paths(folder: Path, files: list[str], what: Path) -> list[Path]:
    """Resolve members inside ``folder``: relative, no escape through ``..`` or symlinks, each file once."""
    if len(files) > MAX_SERIES_MEMBERS:
        raise InvalidFileError(f"{what}: {len(files)} members (at most {MAX_SERIES_MEMBERS})")
    paths: list[Path] = []
    seen: dict[Any, str] = {}
    for name in files:
        pure = Path(name)
        if pure.is_absolute() or ".." in pure.parts:
            raise InvalidFileError(f"{what}: member {name[:200]!r} must be a path inside the series folder")
        if pure.suffix.lower() not in MEMBER_EXTS:
            raise InvalidFileError(f"{folder / name}: unsupported member format (use {', '.join(MEMBER_EXTS)})")
        target = inside_folder(folder, name, f"{what}: member")
        info = target.stat()
        key = (info.st_dev, info.st_ino)
        if key in seen:
            raise InvalidFileError(f"{what}: member {name[:200]!r} repeats {seen[key][:200]!r} "
                                   "(each file may be listed once)")
        seen[key] = name
        paths.append(target)
    return paths


def _read_member(path: Path, dims: tuple[int, ...] | None, dtype: str | None) -> tuple[np.ndarray, Frame | None]:
    """A member's values and (``.vti``) its frame."""
    ext = path.suffix.lower()
    if ext == ".vti":
        return read_vti_frame(path)
    if ext == ".raw":
        if dims is None or dtype is None:
            raise InvalidFileError(f"{path}: .raw members need 'dims' and 'dtype' in the manifest")
        try:
            return read_raw(path, dims, dtype), None
        except InvalidInputError as exc:
            raise InvalidFileError(str(exc)) from exc
    if ext == ".npy":
        if dtype is not None:
            stored = npy_header(path)[1]
            try:
                same = stored == np.dtype(dtype)
            except (TypeError, ValueError, SyntaxError):
                raise InvalidFileError(f"{path}: manifest dtype {dtype[:50]!r} is not a numeric type") from None
            if not same:
                raise InvalidFileError(f"{path}: dtype {stored} differs from the manifest's {dtype}")
    return read_npy(path), None


def _check_total(n: int, dims: Sequence[int], total_bytes: int, path: Path) -> None:
    """All members together: MAX_SERIES_VALUES, and the decode-ratio rule on the members' total size."""
    values = n * math.prod(int(d) for d in dims)
    if values > MAX_SERIES_VALUES or 4 * values > decode_budget(total_bytes):
        raise InvalidFileError(
            f"{path}: {n} members of {list(dims)} are {values} values from {total_bytes} bytes of files (at most "
            f"{MAX_SERIES_VALUES} values, and the decode-ratio rule of docs/limits.md)")


def load_series(path: str | Path) -> VolumeSeries:
    """Load a series folder (or its ``manifest.json``); every member must share one grid.

    Sizes are checked before the data: the member count, each member's place (inside the folder,
    listed once) and the total value count, before the second member is read.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise InvalidFileError(f"{path}: no such series folder")
    man_path = path if path.is_file() else folder / MANIFEST
    dims: tuple[int, ...] | None = None
    dtype: str | None = None
    if man_path.is_file():
        man = _read_manifest(man_path)
        paths, names = _member_paths(folder, man["files"], man_path), list(man["files"])
        if "dims" in man:
            raw_dims = man["dims"]
            if not (isinstance(raw_dims, list) and len(raw_dims) == 3
                    and all(isinstance(d, int) and not isinstance(d, bool) and d >= 2 for d in raw_dims)):
                raise InvalidFileError(f"{man_path}: 'dims' must be three integers >= 2, got {str(raw_dims)[:100]}")
            dims = tuple(raw_dims)
        dtype = man.get("dtype")
        labels, label_name = _manifest_labels(man, len(paths), man_path)
        name = str(man.get("name", folder.name))
    else:
        candidates = []
        for p in folder.iterdir():
            if p.suffix.lower() in (".npy", ".vti"):
                candidates.append(p.name)
                if len(candidates) > MAX_SERIES_MEMBERS:
                    raise InvalidFileError(f"{folder}: more than {MAX_SERIES_MEMBERS} members")
        if not candidates:
            raise InvalidFileError(f"{folder}: no {MANIFEST} and no .npy/.vti members")
        names = sorted(candidates)
        paths = _member_paths(folder, names, folder)
        labels, label_name, name = np.arange(len(paths), dtype=np.float64), "time", folder.name
    total_bytes = sum(file_size(p) for p in paths)
    if dims is not None:
        _check_total(len(paths), dims, total_bytes, man_path)
    out: np.ndarray | None = None
    frame: Frame | None = None
    for i, p in enumerate(paths):
        vol, member_frame = _read_member(p, dims, dtype)
        if frame is None:
            frame = member_frame
        elif member_frame is not None and member_frame != frame:
            raise InvalidFileError(f"{p}: origin {list(member_frame.origin)}, spacing {list(member_frame.spacing)} "
                                   f"and array {member_frame.array!r} differ from the first .vti member's "
                                   f"({list(frame.origin)}, {list(frame.spacing)}, {frame.array!r})")
        if vol.ndim != 3:
            raise InvalidFileError(f"{p}: member is not a 3D volume (shape {list(vol.shape)})")
        ref = dims or (out.shape[1:] if out is not None else vol.shape)
        if tuple(vol.shape) != tuple(ref):
            raise InvalidFileError(
                f"{p}: member shape {list(vol.shape)} differs from the series grid {list(ref)}")
        if not np.isfinite(vol).all():
            raise InvalidFileError(f"{p}: member contains NaN or infinity")
        if out is None:
            _check_total(len(paths), vol.shape, total_bytes, man_path if man_path.is_file() else folder)
            out = np.empty((len(paths), *vol.shape), dtype=np.float32)
        out[i] = vol
        del vol
    assert out is not None
    if frame is not None and len(frame.origin) != 3:
        frame = None  # a member with a size-1 axis: no 3D frame to keep
    return VolumeSeries._normalise(out, labels, label_name=label_name, name=name,
                                   files=[Path(n).name for n in names], folder=folder, frame=frame)
