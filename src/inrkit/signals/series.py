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
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.signals.base import grid_coords
from inrkit.signals.grid import VolumeSignal
from inrkit.signals.readers import read_npy, read_raw, read_vti

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
        raw = np.asarray(volumes, dtype=np.float32)
        if not np.isfinite(raw).all():
            raise InvalidInputError("volume series contains NaN or infinity")
        lo, hi = float(raw.min()), float(raw.max())
        offset, scale = (hi + lo) / 2.0, ((hi - lo) / 2.0 if hi > lo else 1.0)
        lab = np.arange(raw.shape[0], dtype=np.float64) if labels is None else np.asarray(labels, np.float64)
        return cls(((raw - offset) / scale).astype(np.float32), lab, offset=offset, scale=scale, **kw)

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
        if member is not None:
            meta.update(member=int(member), label=float(self.labels[member]))
        return meta

    def member_signal(self, member: int) -> "VolumeSignal":
        """The member as a core :class:`VolumeSignal` with the series-wide normalisation."""
        raw = self.values[member] * self.scale + self.offset
        lo, hi = self.offset - self.scale, self.offset + self.scale
        return VolumeSignal(raw, name=self.member_names[member], value_range=(lo, hi))

    def denormalize(self, values: np.ndarray | Tensor) -> np.ndarray:
        arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
        return arr * self.scale + self.offset


def _manifest_labels(man: dict[str, Any], n: int, path: Path) -> tuple[np.ndarray, str]:
    name = str(man.get("label_name", ""))
    if "labels" in man:
        labels = man["labels"]
    elif "timesteps" in man:
        labels, name = man["timesteps"], name or "time"
    elif "parameters" in man:
        params = man["parameters"]
        if not isinstance(params, list) or not all(isinstance(p, dict) and p for p in params):
            raise InvalidFileError(f"{path}: 'parameters' must be a list of non-empty objects")
        key = name or next(iter(params[0]))
        try:
            labels = [p[key] for p in params]
        except KeyError as exc:
            raise InvalidFileError(f"{path}: every member's parameters need {key!r}") from exc
        name = key
    else:
        labels = list(range(n))
    try:
        arr = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidFileError(f"{path}: labels must be numbers") from exc
    if arr.shape != (n,):
        raise InvalidFileError(f"{path}: {arr.size} labels for {n} files")
    return arr, name or "time"


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        man = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidFileError(f"{path}: not a readable JSON manifest ({exc})") from exc
    if not isinstance(man, dict) or man.get("format", SERIES_FORMAT) != SERIES_FORMAT:
        raise InvalidFileError(f"{path}: not an inrkit series manifest")
    files = man.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise InvalidFileError(f"{path}: manifest needs a non-empty list 'files'")
    return man


def _member_paths(folder: Path, files: list[str]) -> list[Path]:
    paths = []
    for name in files:
        p = (folder / name)
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InvalidFileError(f"{folder / MANIFEST}: member {name!r} must be a path inside the series folder")
        if p.suffix.lower() not in MEMBER_EXTS:
            raise InvalidFileError(f"{p}: unsupported member format (use {', '.join(MEMBER_EXTS)})")
        paths.append(p)
    return paths


def _read_member(path: Path, dims: tuple[int, ...] | None, dtype: str | None) -> np.ndarray:
    ext = path.suffix.lower()
    if ext == ".raw":
        if dims is None or dtype is None:
            raise InvalidFileError(f"{path}: .raw members need 'dims' and 'dtype' in the manifest")
        try:
            return read_raw(path, dims, dtype)
        except InvalidInputError as exc:
            raise InvalidFileError(str(exc)) from exc
    if ext == ".npy":
        arr = read_npy(path)
        if dtype is not None:
            stored = np.load(path, allow_pickle=False, mmap_mode="r").dtype
            if stored != np.dtype(dtype):
                raise InvalidFileError(f"{path}: dtype {stored} differs from the manifest's {dtype}")
        return arr
    return read_vti(path)


def load_series(path: str | Path) -> VolumeSeries:
    """Load a series folder (or its ``manifest.json``); every member must share one grid."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise InvalidFileError(f"{path}: no such series folder")
    man_path = path if path.is_file() else folder / MANIFEST
    dims: tuple[int, ...] | None = None
    dtype: str | None = None
    if man_path.is_file():
        man = _read_manifest(man_path)
        paths = _member_paths(folder, man["files"])
        if "dims" in man:
            try:
                dims = tuple(int(d) for d in man["dims"])
            except (TypeError, ValueError) as exc:
                raise InvalidFileError(f"{man_path}: 'dims' must be three integers") from exc
            if len(dims) != 3 or min(dims) < 2:
                raise InvalidFileError(f"{man_path}: 'dims' must be three integers >= 2, got {list(dims)}")
        dtype = man.get("dtype")
        labels, label_name = _manifest_labels(man, len(paths), man_path)
        name = str(man.get("name", folder.name))
    else:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".npy", ".vti"))
        if not paths:
            raise InvalidFileError(f"{folder}: no {MANIFEST} and no .npy/.vti members")
        labels, label_name, name = np.arange(len(paths), dtype=np.float64), "time", folder.name
    volumes: list[np.ndarray] = []
    for p in paths:
        vol = _read_member(p, dims, dtype)
        if vol.ndim != 3:
            raise InvalidFileError(f"{p}: member is not a 3D volume (shape {list(vol.shape)})")
        ref = dims or (volumes[0].shape if volumes else vol.shape)
        if tuple(vol.shape) != tuple(ref):
            raise InvalidFileError(
                f"{p}: member shape {list(vol.shape)} differs from the series grid {list(ref)}")
        if not np.isfinite(vol).all():
            raise InvalidFileError(f"{p}: member contains NaN or infinity")
        volumes.append(vol)
    return VolumeSeries.from_arrays(np.stack(volumes), labels, label_name=label_name, name=name,
                                    files=[p.name for p in paths], folder=folder)
