"""The bounds every loader checks BEFORE it allocates or computes (docs/limits.md).

One place for the limits on what a file may ask of inrkit: sizes of tensors, files, grids and
dictionaries, the work a compressed file implies, and the shape of JSON headers. Every loader
(model files, ``.npz`` imports, ``.inrz`` files, volumes, images, meshes, series manifests, NeRF
scenes) reads its bounds from here and raises :class:`~inrkit.errors.InvalidFileError` (exit 2 in
the CLI) when a file exceeds them. The numbers are documented in docs/limits.md.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from inrkit.errors import InvalidFileError

# ---------------------------------------------------------------- general
MIB = 1 << 20

# ---------------------------------------------------------------- JSON headers and model files
MAX_JSON_BYTES = 16 * MIB  # longest JSON text (UTF-8 bytes) any loader parses
MAX_JSON_DEPTH = 64  # deepest nesting of arrays/objects in a JSON text
MAX_JSON_NUMBER_CHARS = 64  # longest integer or float literal (digits, sign, exponent)
MAX_TENSOR_ELEMENTS = 1 << 26  # elements of one model tensor (64 Mi: 256 MiB as float32)
MAX_MODEL_ELEMENTS = 1 << 27  # elements of all tensors of one model file or checkpoint (512 MiB as float32)
MAX_MODEL_LAYERS = 1024  # dense layers of an MLP
MAX_MLP_WIDTH = 1 << 20  # neurons of one MLP layer (the element limits bind first for wide layers)
MAX_NERF_WIDTH = 4096  # neurons of one NeRF layer (the paper uses 256)
MAX_NERF_LAYERS = 64  # trunk or view layers of a NeRF
MAX_OMEGA = 1e5  # largest SIREN/FINER frequency factor in a model header (omegas must be finite and > 0)
MIN_OMEGA = 1e-3  # smallest omega_0 a new SIREN/FINER is built with (its init divides by omega)
MAX_GRID_LEVELS = 64  # resolution levels of a grid encoding
MAX_GRID_FEATURES = 64  # features per level of a grid encoding
MAX_GRID_RESOLUTION = 1 << 20  # cells per axis of a grid level
MAX_GRID_TABLE = 1 << 26  # entries of one hashed grid level (the element limits bind first)
MAX_NPZ_MEMBERS = 4 * MAX_MODEL_LAYERS + 16  # arrays in an .npz weight list
MAX_NPZ_RATIO = 64  # an .npz member may inflate to at most 64 x its compressed size + MAX_NPZ_SLACK
MAX_NPZ_SLACK = 1 * MIB  # uncompressed bytes every .npz member may have regardless of its ratio
MAX_NPY_HEADER = 10_000  # bytes of an .npy header (NumPy's own default)
MAX_RENDER_POINTS = 1 << 27  # grid points one render may evaluate (512^3 or 11585^2)
MAX_RENDER_SIDE = 1 << 16  # samples per axis of a render or of a header 'signal.shape'
RENDER_FREE_POINTS = 1 << 20  # points `render` without --size evaluates for any model file (1024^2, ~101^3)
RENDER_POINTS_PER_BYTE = 16  # more points per byte of the model file (a 530 KB SIREN 256x3: 9.5 M points)
RENDER_FREE_WORK = 1 << 32  # floating-point operations (points x (the network's FLOPs per point + 256)) for any file
RENDER_WORK_PER_BYTE = 1 << 18  # more operations per byte (a 530 KB SIREN 256x3: a 768x512 image, not 1024^2)
RENDER_POINT_COST = 256  # operations of one point besides its network (coordinates, conversion, writing)


def check_header_render(points: int, file_bytes: int, what: str, flops_per_point: int = 0) -> None:
    """Refuse rendering the ``points`` a model header's ``signal.shape`` asks for (``render`` without ``--size``)
    when the model file's size cannot justify them: at most ``RENDER_FREE_POINTS + RENDER_POINTS_PER_BYTE x
    file_bytes`` points and ``RENDER_FREE_WORK + RENDER_WORK_PER_BYTE x file_bytes`` operations (``points x
    (flops_per_point + RENDER_POINT_COST)``); a larger render needs an explicit ``--size`` (bounded by
    ``MAX_RENDER_POINTS``)."""
    limit = inrz_budget(RENDER_FREE_POINTS, RENDER_POINTS_PER_BYTE, file_bytes)
    if points > limit:
        raise InvalidFileError(f"{what}: its header asks for {points} points, more than a {file_bytes}-byte model "
                               f"file justifies ({limit}; see docs/limits.md); choose the resolution with --size")
    work = points * (max(int(flops_per_point), 0) + RENDER_POINT_COST)
    limit = inrz_budget(RENDER_FREE_WORK, RENDER_WORK_PER_BYTE, file_bytes)
    if work > limit:
        raise InvalidFileError(f"{what}: rendering the {points} points its header asks for takes {work:.3g} "
                               f"operations, more than a {file_bytes}-byte model file justifies ({limit:.3g}; see "
                               "docs/limits.md); choose the resolution with --size")


def check_count(value: Any, name: str, limit: int, error: type[Exception]) -> int:
    """``value`` as an int in ``[1, limit]`` (bools, floats and other types refused with ``error``)."""
    if type(value) is not int or not 1 <= value <= limit:
        raise error(f"{name} must be an integer in [1, {limit}], got {str(value)[:40]}")
    return value


def check_finite(value: Any, name: str, low: float, high: float, error: type[Exception]) -> float:
    """``value`` as a finite float in ``[low, high]`` (bools and other types refused with ``error``)."""
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise error(f"{name} must be a finite number in [{low:g}, {high:g}], got {str(value)[:40]}")
    return float(value)


def _json_depth(value: Any) -> int:
    """Deepest nesting of lists/dicts in a parsed JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return deepest


def _json_number(kind: type) -> Any:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_JSON_NUMBER_CHARS:
            raise ValueError(f"a number with {len(literal)} characters (at most {MAX_JSON_NUMBER_CHARS})")
        return kind(literal)
    return parse


def parse_json(text: str | bytes, what: str, *, allow_nan: bool = True) -> Any:
    """Parse a JSON text from a file, bounded in length, nesting depth and number size.

    Args:
        text: the JSON text (``bytes`` must be UTF-8).
        what: what the text is, for the error message (e.g. ``"model.safetensors: header"``).
        allow_nan: accept the ``NaN``/``Infinity`` constants Python's ``json`` writes.

    Raises :class:`~inrkit.errors.InvalidFileError` (never another exception) when the text is
    longer than :data:`MAX_JSON_BYTES`, nests deeper than :data:`MAX_JSON_DEPTH`, holds a number
    literal longer than :data:`MAX_JSON_NUMBER_CHARS` characters, or is not valid JSON.
    """
    try:
        if isinstance(text, (bytes, bytearray, memoryview)):
            if len(text) > MAX_JSON_BYTES:
                raise InvalidFileError(f"{what}: JSON of {len(text)} bytes (at most {MAX_JSON_BYTES})")
            text = bytes(text).decode("utf-8")
        if not isinstance(text, str):
            raise InvalidFileError(f"{what}: expected JSON text, got {type(text).__name__}")
        if len(text) > MAX_JSON_BYTES:
            raise InvalidFileError(f"{what}: JSON of {len(text)} characters (at most {MAX_JSON_BYTES})")

        def constant(name: str) -> float:
            if not allow_nan:
                raise ValueError(f"non-finite constant {name}")
            return float(name)

        value = json.loads(text, parse_int=_json_number(int), parse_float=_json_number(float),
                           parse_constant=constant)
    except (ValueError, RecursionError, TypeError, OverflowError, MemoryError) as exc:
        if isinstance(exc, InvalidFileError):
            raise
        if isinstance(exc, RecursionError):
            raise InvalidFileError(f"{what}: JSON nested too deep (at most {MAX_JSON_DEPTH})") from None
        raise InvalidFileError(f"{what}: invalid JSON ({str(exc)[:200]})") from None
    depth = _json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise InvalidFileError(f"{what}: JSON nested {depth} deep (at most {MAX_JSON_DEPTH})")
    return value


# ---------------------------------------------------------------- .inrz decoding
# Rule: the work a decoder does for an .inrz file is at most FREE + PER_BYTE * (the file's size in
# bytes), for each kind of work below, plus an absolute cap. FREE covers every small legitimate
# file (a SIREN 256x3 sinr file at overcomplete 8 uses a quarter of it); PER_BYTE is what
# legitimate encoder output needs per stored byte (larger networks store more coefficients).
INRZ_MAX_FILE = 1 << 30  # largest .inrz file read at all
INRZ_MAX_HEADER = MIB  # JSON header bytes once the header's Brotli stream is expanded
INRZ_MAX_DICT = 1 << 24  # k1 * k2 entries of one SINR dictionary (128 MiB as float64)
INRZ_MAX_DICTS = 32  # distinct dictionaries (k1, k2) one file may ask for
INRZ_DICT_FREE = 1 << 22  # dictionary entries (all distinct dictionaries) any file may ask for
INRZ_DICT_PER_BYTE = 32  # more dictionary entries per byte of file
INRZ_RECON_FREE = 1 << 25  # sparse reconstruction multiply-adds (vectors x s x k1 + vectors x k2)
INRZ_RECON_PER_BYTE = 2048  # more reconstruction multiply-adds per byte of file
INRZ_VALUES_FREE = 1 << 20  # decoded numbers (weights, biases, sparse coefficients) any file may hold
INRZ_VALUES_PER_BYTE = 64  # more decoded numbers per byte of file
INRZ_PIXELS_FREE = 1 << 20  # pixels `decode` renders from any image file (1024 x 1024: every Kodak image)
INRZ_PIXELS_PER_BYTE = 64  # more pixels per byte of file (1/8 bit per pixel, below the lowest published Kodak rates)
INRZ_MAX_PIXELS = 1 << 26  # pixels `decode` renders at most, whatever the file's size
INRZ_RENDER_FREE = 1 << 31  # pixels x (weights per pixel + INRZ_PIXEL_COST) `decode` spends on any image file
INRZ_RENDER_PER_BYTE = 1 << 23  # more of that work per byte of file (a SIREN 256x3 Kodak file at ~0.15 bpp needs it)
INRZ_PIXEL_COST = 256  # render work of one pixel besides its network (coordinates, conversion, PNG), in multiply-adds
INRZ_BROTLI_RATIO = 256  # a payload stream may expand at most this many times its compressed size ...
INRZ_BROTLI_FREE = 256 * 1024  # ... plus this many bytes (measured while expanding, so constant streams stop)
INRZ_CACHE_BYTES = 64 * MIB  # the decoder's dictionary cache holds at most this many bytes

# ---------------------------------------------------------------- .inrz grid (latent-grid image) codec
# Checked by inrkit.compress.decode.latent.check_work from the header, before decoding (docs/limits.md, "The grid
# codec"), besides the general image rule above; the latent stream must also be long enough for its latents
# (each costs at least 2**-12 bit). Up to the knee, any file decodes within about 2 s of CPU (one core).
INRZ_GRID_KNEE_BYTES = 64 * 1024  # the per-byte allowances below hold up to this size; beyond, the BEYOND ones
INRZ_GRID_PIXELS_FREE = 1 << 20  # pixels any grid file may ask for (1024 x 1024: every Kodak image)
INRZ_GRID_PIXELS_PER_BYTE = 48  # more pixels per byte of file (1/6 bpp; 64 KB: 2048 x 2048)
INRZ_GRID_PIXELS_BEYOND = 64  # more per byte beyond the knee (1/8 bpp, as INRZ_PIXELS_PER_BYTE)
INRZ_GRID_MAX_PIXELS = 1 << 24  # pixels at most (16.8 MP); `decode` peaks at 14 bytes per pixel (226 MB at 4096^2)
INRZ_GRID_WORK_FREE = 1 << 30  # estimated decoding ns (latent_codec.decode_cost, one core) of any grid file
INRZ_GRID_WORK_PER_BYTE = 3 << 12  # more per byte of file (64 KB: 1.9 s estimated, 1.2-1.3 s measured at 1752^2)
INRZ_GRID_WORK_BEYOND = 1 << 16  # more per byte beyond the knee (files at 1/8 bpp: 33,000 ns per byte needed)


def inrz_budget(free: int, per_byte: int, file_bytes: int) -> int:
    """The amount of one kind of work a file of ``file_bytes`` bytes justifies: ``free + per_byte * file_bytes``."""
    return int(free) + int(per_byte) * max(int(file_bytes), 0)


def check_inrz_work(file_bytes: int, *, values: int = 0, dictionaries: tuple[int, ...] = (), recon: int = 0,
                    what: str = ".inrz file") -> None:
    """Refuse an ``.inrz`` file whose decoding work its size cannot justify (before any of it is done).

    Args:
        file_bytes: size of the whole file.
        values: numbers decoded from its sections.
        dictionaries: ``k1 * k2`` of each distinct SINR dictionary it needs.
        recon: multiply-adds of the sparse reconstruction.
        what: the file, for the message.
    """
    def refuse(msg: str) -> InvalidFileError:
        return InvalidFileError(f"{what}: {msg} ({file_bytes}-byte file; see docs/limits.md)")

    if len(dictionaries) > INRZ_MAX_DICTS:
        raise refuse(f"{len(dictionaries)} distinct dictionaries (at most {INRZ_MAX_DICTS})")
    if dictionaries and max(dictionaries) > INRZ_MAX_DICT:
        raise refuse(f"a {max(dictionaries)}-entry dictionary (at most {INRZ_MAX_DICT})")
    checks = (("decoded numbers", values, INRZ_VALUES_FREE, INRZ_VALUES_PER_BYTE),
              ("dictionary entries", sum(dictionaries), INRZ_DICT_FREE, INRZ_DICT_PER_BYTE),
              ("reconstruction multiply-adds", recon, INRZ_RECON_FREE, INRZ_RECON_PER_BYTE))
    for name, amount, free, per_byte in checks:
        limit = inrz_budget(free, per_byte, file_bytes)
        if amount > limit:
            raise refuse(f"asks for {amount} {name}, more than its size justifies ({limit})")


def check_inrz_image(file_bytes: int, pixels: int, macs_per_pixel: int, what: str = ".inrz file") -> None:
    """Refuse rendering ``pixels`` pixels (``macs_per_pixel`` each) from an image ``.inrz`` file of ``file_bytes``."""
    limit = min(INRZ_MAX_PIXELS, inrz_budget(INRZ_PIXELS_FREE, INRZ_PIXELS_PER_BYTE, file_bytes))
    if pixels > limit:
        raise InvalidFileError(f"{what}: an image of {pixels} pixels, more than a {file_bytes}-byte file "
                               f"justifies ({limit}; see docs/limits.md)")
    work = pixels * (max(int(macs_per_pixel), 1) + INRZ_PIXEL_COST)
    limit = inrz_budget(INRZ_RENDER_FREE, INRZ_RENDER_PER_BYTE, file_bytes)
    if work > limit:
        raise InvalidFileError(f"{what}: rendering needs {work} multiply-adds, more than a {file_bytes}-byte file "
                               f"justifies ({limit}; see docs/limits.md)")


# ---------------------------------------------------------------- grids, images, meshes, series, scenes
MAX_GRID_VALUES = 1 << 27  # values in one decoded grid (.npy/.raw/.vti/.vtk): 512^3, 512 MiB as float32
MAX_GRID_AXES = 4  # most axes a grid file or --dims may declare
MAX_IMAGE_SIDE = 1 << 15  # widest or tallest image, read from the PNG/JPEG header before decoding
MAX_IMAGE_PIXELS = 1 << 26  # pixels of one image, read from the header before decoding
DECODE_FREE_BYTES = 128 * MIB  # float32 output any grid/image file may decode to, whatever its size
MAX_DECODE_RATIO = 64  # above that: float32 output bytes per byte of the file (zlib/PNG bombs)
MAX_TEXT_FILE_BYTES = 1 << 30  # largest XML/ASCII grid or mesh file read into memory
MAX_MESH_VERTICES = 1 << 24  # vertices a mesh file may declare
MAX_MESH_FACES = 1 << 24  # faces a mesh file may declare
MAX_SERIES_MEMBERS = 4096  # members listed in a series manifest or found in a series folder
MAX_SERIES_VALUES = 1 << 28  # values of all members of a series together (1 GiB as float32)
MAX_SCENE_FRAMES = 4096  # frames per split of a NeRF scene
MAX_CONFIG_BYTES = 1 << 20  # a schedule/config file (.toml/.json) given to a command
MAX_SCENE_PIXELS = 1 << 28  # pixels of all loaded NeRF frames together (after downscaling)


def decode_budget(file_bytes: int) -> int:
    """Float32 output bytes a file of ``file_bytes`` bytes may decode to (the decode-ratio rule)."""
    return max(DECODE_FREE_BYTES, MAX_DECODE_RATIO * max(int(file_bytes), 0))


def check_decode(values: int, file_bytes: int, what: str) -> None:
    """Refuse decoding ``values`` numbers from ``file_bytes`` bytes of file when the file cannot justify them.

    Raises :class:`~inrkit.errors.InvalidFileError` when ``values`` exceeds :data:`MAX_GRID_VALUES`
    or ``4 * values`` exceeds :func:`decode_budget` of the file's size.
    """
    if values > MAX_GRID_VALUES:
        raise InvalidFileError(f"{what}: {values} values (at most {MAX_GRID_VALUES})")
    if 4 * values > decode_budget(file_bytes):
        raise InvalidFileError(
            f"{what}: {values} values from a {file_bytes}-byte file (at most {MAX_DECODE_RATIO} bytes of "
            f"float32 per file byte beyond {DECODE_FREE_BYTES // MIB} MiB); save it uncompressed")


def regular_file(path: str | os.PathLike, what: str = "file") -> int:
    """The size of ``path``, a regular file; else :class:`InvalidFileError` giving the reason (no such
    file, a folder, a device/FIFO/socket, unreadable)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: no such {what}") from None
    except (OSError, ValueError) as exc:
        raise InvalidFileError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidFileError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a character device" if stat.S_ISCHR(info.st_mode) else "a block device" if stat.S_ISBLK(info.st_mode)
                else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "not a regular file")
        raise InvalidFileError(f"{path}: {kind}, not a {what} (a regular file is needed)")
    if not os.access(path, os.R_OK):
        raise InvalidFileError(f"{path}: permission denied")
    return int(info.st_size)


def inside_folder(folder: str | os.PathLike, name: str, what: str) -> Path:
    """Resolve ``name`` (relative, from a file) under ``folder``; refuse escapes (``..``, absolute, symlinks).

    Returns the resolved path, which is a regular file inside ``folder`` (after resolving every symlink).
    """
    if not name or "\0" in name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute():
        raise InvalidFileError(f"{what}: path {name[:200]!r} must be relative to its folder")
    root = Path(folder).resolve()
    try:
        target = (root / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidFileError(f"{what}: cannot resolve path {name[:200]!r} ({exc})") from None
    if target != root and root not in target.parents:
        raise InvalidFileError(f"{what}: path {name[:200]!r} leads outside {root}")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        raise InvalidFileError(f"{target}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InvalidFileError(f"{target}: cannot read ({exc})") from None
    if not stat.S_ISREG(mode):
        raise InvalidFileError(f"{target}: not a regular file")
    return target


# ---------------------------------------------------------------- CLI arguments
MAX_HIDDEN_WIDTH = 16384  # widest hidden layer a command builds (--hidden, --width)
MAX_HIDDEN_LAYERS = 64  # most hidden layers a command builds
MAX_HIDDEN_WEIGHTS = 1 << 27  # most hidden-to-hidden weights (sum of w_i * w_i+1): 512 MB of float32
MAX_OUTPUT_SIDE = 1 << 14  # longest side of an image a command writes (synth, demo, nerf-render --size)
MAX_GRID_VOXELS = 1 << 27  # most voxels of a volume a command simulates (synth vortex/grayscott)
MAX_SERIES_VOXELS = 1 << 28  # most voxels of all the volumes of a simulated series together
MAX_SCENE_PIXELS = 1 << 28  # most pixels of all the views of a synthetic NeRF scene (synth scene)
MAX_RAY_SAMPLES = 4096  # most coarse or fine samples per NeRF ray (--samples, --importance)
MAX_PRUNE_POINTS = 1 << 22  # most domain points sampled for ID pruning (prune --points)
MAX_BPP = 64.0  # highest bits per pixel a compression target may ask (24-bit RGB is raw)
MIN_INRZ_BYTES = 64  # no .inrz image file is smaller (container + header; the smallest measured: 122 bytes)
MAX_LR = 10.0  # highest learning rate a command accepts (SIREN: 1e-4..1e-2; grid tables: up to ~1)
MAX_OVERCOMPLETE = 64.0  # most SINR dictionary atoms per vector length (the paper: 2 to 8)
MAX_SPARSITY_COUNT = 1 << 14  # most atoms per vector a sparsity count may ask (the dictionary's own bound)
MAX_THREADS = 1024  # most CPU threads --threads may ask PyTorch for
MAX_SEED = (1 << 32) - 1  # largest --seed (every generator used takes it: torch, NumPy, Python)
MAX_CODEC_IMAGES = 10_000  # most images eval-codec reads from one folder


def check_hidden(widths: Any, what: str = "hidden widths") -> tuple[int, ...]:
    """``widths`` as a tuple of ints, refused (:class:`InvalidInputError`) beyond the bounds above.

    Every width must be in ``[1, MAX_HIDDEN_WIDTH]``, at most ``MAX_HIDDEN_LAYERS`` layers, and the
    hidden-to-hidden weights at most ``MAX_HIDDEN_WEIGHTS``: checked before any layer is allocated.
    """
    from inrkit.errors import InvalidInputError

    try:
        out = tuple(int(w) for w in widths)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be integers, got {str(widths)[:80]}") from None
    if not out or min(out) < 1:
        raise InvalidInputError(f"{what} must be positive, got {short_list(out)}")
    if max(out) > MAX_HIDDEN_WIDTH or len(out) > MAX_HIDDEN_LAYERS:
        raise InvalidInputError(f"{what} {_short(out)} exceed the limits (at most {MAX_HIDDEN_LAYERS} layers "
                                f"of at most {MAX_HIDDEN_WIDTH} neurons)")
    weights = sum(a * b for a, b in zip(out, out[1:]))
    if weights > MAX_HIDDEN_WEIGHTS:
        raise InvalidInputError(f"{what} {_short(out)} need {weights} weights (at most {MAX_HIDDEN_WEIGHTS})")
    return out


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, optional: bool = True) -> Any:
    """``value`` if it is a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``), else
    :class:`InvalidInputError` naming ``name``; ``None`` passes when ``optional``."""
    import math
    import numbers

    from inrkit.errors import InvalidInputError

    if value is None and optional:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    number = float(value)
    if low is not None and (number <= low if low_open else number < low):
        raise InvalidInputError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and number > high:
        raise InvalidInputError(f"{name} must be <= {high:g}, got {value!r}")
    return value


def check_fraction_or_count(name: str, value: Any, max_count: int | None = None) -> Any:
    """``value`` if it is a fraction in (0, 1) or a whole count in ``[1, max_count]``; ``None`` passes.

    Anything else (``1.5``, ``0``, ``-2``, NaN, a count beyond ``max_count``) is an
    :class:`InvalidInputError` naming ``name``.
    """
    import numbers

    from inrkit.errors import InvalidInputError

    if value is None:
        return value
    number = float(value) if not isinstance(value, bool) and isinstance(value, numbers.Real) else math.nan
    ok = math.isfinite(number) and (0 < number < 1 or (number >= 1 and number.is_integer()
                                                       and (max_count is None or number <= max_count)))
    if not ok:
        most = "" if max_count is None else f" up to {max_count}"
        raise InvalidInputError(f"{name} must be a fraction in (0, 1) or a whole count >= 1{most}, "
                                f"got {str(value)[:40]}")
    return value


def _short(widths: tuple[int, ...]) -> str:
    """``256x3`` for equal widths, else ``a,b,c`` (a long list shortened to its ends)."""
    if len(set(widths)) == 1 and len(widths) > 3:
        return f"{widths[0]}x{len(widths)}"
    return short_list(widths)


def short_list(values: Any, keep: int = 6, sep: str = ",") -> str:
    """``values`` joined by ``sep``, shortened to the first and last few (``1,2,3,...,9 (40 values)``)."""
    items = [str(v) for v in values]
    if len(items) <= 2 * keep:
        return sep.join(items)
    return f"{sep.join(items[:keep])}{sep}...{sep}{sep.join(items[-2:])} ({len(items)} values)"
