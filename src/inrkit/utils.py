"""Small shared helpers: device choice, atomic writes, JSON, 8-bit conversion."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from inrkit.errors import InvalidInputError


def resolve_device(name: str | None = None) -> torch.device:
    """Pick a device: ``None``/``"auto"`` tries CUDA, then MPS, then CPU."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r} requested but CUDA is not available")
    return device


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and move it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_path(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path beside ``path`` for libraries that write by filename.

    The temporary file is created by :func:`tempfile.mkstemp` in the target folder (a fresh,
    unpredictable name opened with ``O_EXCL``: a planted file or symlink is never followed), keeps
    ``path``'s suffix (libraries pick the format from it), replaces ``path`` on success (``os.replace``
    replaces a symlink at ``path`` instead of writing through it) and is removed on failure.
    """
    return _atomic_path(Path(path))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        os.close(fd)
        yield tmp
        if tmp.is_symlink() or not tmp.is_file():
            raise OSError(f"{tmp}: temporary file was replaced during the write")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text of ``obj``; NumPy/torch scalars and arrays become plain numbers and lists."""
    return json.dumps(obj, indent=indent, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(to_json(obj) + "\n")
    return Path(path)


def to_uint8(img: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Values in ``[0, peak]`` (``peak=1``: an image in [0, 1]) to 8-bit pixels, rounded and clipped."""
    return np.clip(np.rint(np.asarray(img) * (255.0 / peak)), 0, 255).astype(np.uint8)
