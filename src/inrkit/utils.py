"""Small shared helpers: device choice, atomic writes, JSON, 8-bit conversion."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from inrkit.errors import InvalidInputError

NO_PROGRESS_ENV = "INRKIT_NO_PROGRESS"  # set (the CLI does under --json): no progress bar, not even on a terminal


def terminal_bar(show: bool = True) -> bool | None:
    """tqdm's ``disable`` for a bar shown on a terminal only: ``None`` (tqdm checks for a terminal) when
    ``show``, else ``True``; always ``True`` while ``$INRKIT_NO_PROGRESS`` is set."""
    return None if show and not os.environ.get(NO_PROGRESS_ENV) else True


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


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (the target, not the temporary file): a full disk or a file-size limit
    (``ENOSPC``, ``EFBIG``, ``EDQUOT``) raised by a write names no file."""
    if exc.filename is not None and Path(exc.filename).name.startswith(f".{path.stem}"):
        exc.filename = None  # the temporary file: name the target instead
    if exc.filename is None:
        err = OSError(exc.errno, exc.strerror or str(exc) or type(exc).__name__, str(path))
        return err
    return exc


def _mkdir(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _named(exc, path.parent) from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and move it into place on success.

    On any failure the temporary file is removed and ``path`` is left as it was; an ``OSError``
    (a full disk, a file-size limit) is raised naming ``path``.
    """
    path = Path(path)
    _mkdir(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
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
    _mkdir(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise _named(exc, path) from None
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        os.close(fd)
        yield tmp
        if tmp.is_symlink() or not tmp.is_file():
            raise OSError(f"{tmp}: temporary file was replaced during the write")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
        if isinstance(exc, Exception) and _is_write_error(exc):  # a library's own error for a failed write
            raise OSError(errno.EIO, f"cannot write ({str(exc)[:160]})", str(path)) from None
        raise


def _is_write_error(exc: Exception) -> bool:
    """A library error that reports a failed write (safetensors, Pillow, trimesh wrap the OSError)."""
    text = str(exc).lower()
    return any(word in text for word in ("no space", "file too large", "quota", "ioerror", "i/o error",
                                         "errno 27", "errno 28", "errno 122"))


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


def run_environment(threads: int | None = None) -> dict[str, Any]:
    """Where a benchmark's numbers come from, the one ``environment`` block of every bench JSON: UTC date and
    time, machine, CPU model and count, torch's threads (or ``threads``), Python, torch, the device a default run
    uses, the load average at the start, and the inrkit source tree that ran (path, git commit, uncommitted
    changes under ``src/``)."""
    import datetime
    import platform
    import subprocess

    import inrkit

    package = Path(inrkit.__file__).resolve().parent
    git = ["git", "-C", str(package.parents[1])]

    def _git(*args: str) -> str:
        try:
            return subprocess.run([*git, *args], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": platform.machine(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "threads": threads if threads is not None else torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "device": str(resolve_device()),
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "inrkit": str(package), "commit": _git("rev-parse", "HEAD") or None,
            "dirty": bool(_git("status", "--porcelain", "--", "src"))}
