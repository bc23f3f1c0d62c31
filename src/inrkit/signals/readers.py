"""Readers and writers for grid data: images, ``.npy``, ``.raw``, VTK ``.vti`` and legacy ``.vtk``.

Volumes are returned as float arrays indexed ``[x, y, z]`` (x is the first axis).
Every reader checks sizes, types and ranges BEFORE it allocates (the bounds of
:mod:`inrkit.limits`: values per grid, image pixels, and the decode-ratio rule for compressed
data) and raises :class:`InvalidFileError` for a bad file.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
import struct
import tokenize
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import (
    DECODE_FREE_BYTES,
    MAX_DECODE_RATIO,
    MAX_GRID_AXES,
    MAX_GRID_VALUES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_JSON_BYTES,
    MAX_TEXT_FILE_BYTES,
    check_decode,
    decode_budget,
    parse_json,
    regular_file,
)
from inrkit.signals.frames import Frame, clean_array_name
from inrkit.utils import atomic_write

IMAGE_FORMATS = ("PNG", "JPEG")  # the only Pillow decoders read_image uses (JPEG includes camera MPO files)
_VTK_XML_TYPES = {
    "Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4", "UInt32": "u4",
    "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8",
}
_VTK_LEGACY_TYPES = {
    "unsigned_char": "u1", "char": "i1", "short": "i2", "unsigned_short": "u2", "int": "i4",
    "unsigned_int": "u4", "long": "i8", "unsigned_long": "u8", "float": "f4", "double": "f8",
}
_INFLATE_PIECE = 1 << 22  # bytes inflated at a time (a multiple of every item size)
_ASCII_CHUNK = 1 << 22  # characters of ASCII numbers parsed at a time (bounds the temporary token list)
_LEGACY_KEYWORDS = re.compile(
    rb"\n\s*(SCALARS|VECTORS|NORMALS|TENSORS|FIELD|POINT_DATA|CELL_DATA|LOOKUP_TABLE|COLOR_SCALARS|"
    rb"TEXTURE_COORDINATES|METADATA)\b")
_XML_DECLS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def file_size(path: Path) -> int:
    """Size of a regular file in bytes; :class:`InvalidFileError` naming the reason otherwise (missing, a
    folder, a device, FIFO or socket, unreadable: :func:`inrkit.limits.regular_file`)."""
    return regular_file(path, "file")



def read_json_file(path: Path) -> Any:
    """A JSON file (a manifest, a scene's transforms) read with :func:`inrkit.limits.parse_json`.

    The size is checked before reading; NaN and infinity are refused. Every problem is an
    :class:`InvalidFileError`.
    """
    size = file_size(path)
    if size > MAX_JSON_BYTES:
        raise InvalidFileError(f"{path}: {size} bytes of JSON (at most {MAX_JSON_BYTES})")
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read ({exc})") from None
    return parse_json(text, str(path), allow_nan=False)


def _require_file(path: Path) -> None:
    file_size(path)


def _read_text_file(path: Path) -> bytes:
    size = file_size(path)
    if size > MAX_TEXT_FILE_BYTES:
        raise InvalidFileError(f"{path}: {size} bytes (at most {MAX_TEXT_FILE_BYTES} for this format)")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read ({exc})") from None


def _check_voxels(dims: Sequence[Any], path: Path) -> int:
    """Validate grid dimensions (1 to MAX_GRID_AXES positive integers) and return the value count."""
    ok = 1 <= len(dims) <= MAX_GRID_AXES and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 1 for d in dims)
    if not ok:
        raise InvalidFileError(f"{path}: invalid dimensions {tuple(dims)!r}"[:300])
    count = math.prod(int(d) for d in dims)
    if count > MAX_GRID_VALUES:
        raise InvalidFileError(f"{path}: {tuple(int(d) for d in dims)} is too large ({count} values, "
                               f"at most {MAX_GRID_VALUES})")
    return count


def _parse_ascii(text: bytes, count: int, path: Path) -> np.ndarray:
    """Exactly ``count`` whitespace-separated numbers as float32, parsed a chunk at a time."""
    if len(text) < 2 * count - 1:  # each value takes a character and a separator: refuse before allocating
        raise InvalidFileError(f"{path}: {len(text)} characters cannot hold the expected {count} values")
    out = np.empty(count, dtype=np.float32)
    n, pos, end = 0, 0, len(text)
    space = re.compile(rb"\s")
    while pos < end:
        stop = min(pos + _ASCII_CHUNK, end)
        if stop < end:
            match = space.search(text, stop)
            stop = match.start() if match else end
        tokens = text[pos:stop].split()
        pos = stop
        if not tokens:
            continue
        if n + len(tokens) > count:
            raise InvalidFileError(f"{path}: more than the expected {count} values")
        try:
            out[n: n + len(tokens)] = np.array(tokens, dtype=np.float64)
        except (ValueError, OverflowError) as exc:
            raise InvalidFileError(f"{path}: bad ascii data ({str(exc)[:100]})") from None
        n += len(tokens)
    if n != count:
        raise InvalidFileError(f"{path}: expected {count} values, found {n}")
    return out


# ----------------------------------------------------------------------- images
@contextlib.contextmanager
def open_image(path: Path) -> Iterator[Any]:
    """Open a PNG/JPEG lazily (header only) and check its size against the limits before decoding.

    Yields the PIL image; exceptions from decoding inside the block become :class:`InvalidFileError`.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    size = file_size(path)
    bad = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
           TypeError, KeyError, ZeroDivisionError, Image.DecompressionBombError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise InvalidFileError(f"{path}: image is too large (at most {MAX_IMAGE_PIXELS} pixels)") from None
    except bad as exc:
        raise InvalidFileError(f"{path}: cannot read image ({str(exc)[:200]})") from None
    with img:
        width, height = img.size
        if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE) or width * height > MAX_IMAGE_PIXELS:
            raise InvalidFileError(f"{path}: image is {width}x{height} (at most {MAX_IMAGE_SIDE} per side and "
                                   f"{MAX_IMAGE_PIXELS} pixels)")
        channels = 1 if img.mode in ("1", "L", "LA", "I", "F") or img.mode.startswith("I;") else 3
        if 4 * width * height * channels > decode_budget(size):  # float32 output vs the decode-ratio rule
            raise InvalidFileError(f"{path}: a {width}x{height} image from a {size}-byte file (at most "
                                   f"{MAX_DECODE_RATIO} bytes of float32 per file byte beyond "
                                   f"{DECODE_FREE_BYTES >> 20} MiB)")
        try:
            yield img
        except bad as exc:
            raise InvalidFileError(f"{path}: cannot read image ({str(exc)[:200]})") from None


def read_image(path: Path) -> np.ndarray:
    """Read a PNG/JPEG as float32 ``[H, W, C]`` in 0..255 (C is 1 or 3); the size is checked before decoding."""
    path = Path(path)
    with open_image(path) as img:
        img.load()
        if img.mode.startswith("I"):
            arr = np.asarray(img, dtype=np.float32)[..., None]
            arr *= 255.0 / 65535.0
        elif img.mode in ("1", "L", "LA"):
            arr = np.asarray(img.convert("L"), dtype=np.float32)[..., None]
        else:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InvalidInputError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}; need at least 2x2 pixels")
    return arr


# ------------------------------------------------------------------- .npy / .raw
def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Parse a ``.npy`` header only: ``(shape, dtype, fortran_order, data_offset)``.

    Refuses non-numeric dtypes, more than MAX_GRID_AXES axes or MAX_GRID_VALUES values, and a file
    whose size differs from what the header declares, all before any data is read.
    """
    from numpy.lib import format as npformat

    size = file_size(path)
    try:
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = npformat.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = fh.tell()
    except (ValueError, SyntaxError, TypeError, KeyError, IndexError, EOFError, OverflowError, RecursionError,
            UnicodeDecodeError, tokenize.TokenError, OSError) as exc:
        raise InvalidFileError(f"{path}: cannot read .npy header ({str(exc)[:200]})") from None
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or dtype.hasobject or dtype.itemsize < 1:
        raise InvalidFileError(f"{path}: .npy must hold numbers, not {dtype}")
    count = _check_voxels(tuple(shape), path)
    if size != offset + count * dtype.itemsize:
        raise InvalidFileError(f"{path}: {size} bytes do not match the header's {tuple(shape)} x {dtype} "
                               f"({offset + count * dtype.itemsize} bytes)")
    return tuple(int(d) for d in shape), dtype, bool(fortran), offset


def read_npy(path: Path) -> np.ndarray:
    """Read a numeric ``.npy`` array (no pickles) as float32; the header is checked before any data is read."""
    path = Path(path)
    shape, dtype, fortran, offset = npy_header(path)
    count = math.prod(shape)
    check_decode(count, offset + count * dtype.itemsize, str(path))
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = np.fromfile(fh, dtype=dtype, count=count)
    except (OSError, ValueError) as exc:
        raise InvalidFileError(f"{path}: cannot read .npy data ({exc})") from None
    if data.size != count:
        raise InvalidFileError(f"{path}: .npy data is truncated")
    return data.reshape(shape, order="F" if fortran else "C").astype(np.float32)


def _numeric_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, (str, np.dtype)) or (isinstance(dtype, str) and not re.fullmatch(r"[<>=|]?\w{1,16}",
                                                                                               dtype)):
        raise InvalidInputError(f"unknown raw dtype {str(dtype)[:50]!r}")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"unknown raw dtype {dtype!r}") from exc
    if dt.kind not in "biuf" or dt.hasobject or dt.itemsize < 1:
        raise InvalidInputError(f"raw dtype must be numeric, got {dtype!r}")
    return dt


def read_raw(path: Path, dims: tuple[int, ...], dtype: str = "uint8") -> np.ndarray:
    """Read a headerless volume with ``dims = (nx, ny, nz)``, x varying fastest; the size must match exactly."""
    path = Path(path)
    size = file_size(path)
    dt = _numeric_dtype(dtype)
    dims = tuple(dims)
    try:
        count = _check_voxels(dims, path)
    except InvalidFileError as exc:
        raise InvalidInputError(str(exc)) from None
    if size != count * dt.itemsize:
        raise InvalidInputError(
            f"{path}: {size} bytes do not match dims {tuple(int(d) for d in dims)} x {dt.name} "
            f"({count * dt.itemsize} bytes)")
    check_decode(count, size, str(path))
    dims = tuple(int(d) for d in dims)
    try:
        data = np.fromfile(path, dtype=dt, count=count)
    except (OSError, ValueError) as exc:
        raise InvalidFileError(f"{path}: cannot read raw data ({exc})") from None
    if data.size != count:
        raise InvalidFileError(f"{path}: raw data is truncated")
    data = data.reshape(tuple(reversed(dims)))
    return np.ascontiguousarray(data.transpose(tuple(reversed(range(len(dims)))))).astype(np.float32)


# ------------------------------------------------------------------- VTK XML
def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _inflate_block(data: bytes, want: int, dtype: np.dtype, out: np.ndarray, done: int, path: Path,
                   index: int) -> int:
    """Inflate one zlib block of exactly ``want`` bytes into ``out[done:]`` (float32), a piece at a time.

    Memory stays at one piece (``_INFLATE_PIECE`` bytes) beyond ``out``; returns the new value count.
    """
    if want % dtype.itemsize:
        raise InvalidFileError(f"{path}: compressed block {index} of {want} bytes splits a value")
    inflater, got, carry = zlib.decompressobj(), 0, b""
    while True:
        piece = inflater.decompress(data, _INFLATE_PIECE)
        data = inflater.unconsumed_tail
        if not piece:
            break
        got += len(piece)
        if got > want:
            raise InvalidFileError(f"{path}: compressed block {index} inflates to more than {want} bytes")
        if carry:
            piece, carry = carry + piece, b""
        whole = len(piece) - len(piece) % dtype.itemsize
        if whole < len(piece):
            piece, carry = piece[:whole], piece[whole:]
        values = np.frombuffer(piece, dtype=dtype)
        out[done: done + values.size] = values
        done += values.size
    if got != want:
        raise InvalidFileError(f"{path}: compressed block {index} inflates to {got} bytes, not {want}")
    return done


def _vti_decode_binary(text: str, header_dtype: str, compressed: bool, dtype: np.dtype, count: int,
                       path: Path, file_bytes: int) -> np.ndarray:
    """Decode an inline base64 DataArray; a compressed one is checked block by block before inflating."""
    text = "".join(text.split())
    hsize = np.dtype(header_dtype).itemsize
    nbytes = count * dtype.itemsize
    try:
        if not compressed:
            if 3 * len(text) // 4 < hsize + nbytes:
                found = max(3 * len(text) // 4 - hsize, 0)
                raise InvalidFileError(f"{path}: expected {nbytes} data bytes, found {found}")
            blob = _b64(text)
            declared = int(np.frombuffer(blob[:hsize], header_dtype)[0])
            if declared != nbytes:
                raise InvalidFileError(f"{path}: data header declares {declared} bytes, the grid needs {nbytes}")
            data = np.frombuffer(blob, dtype=dtype, count=count, offset=hsize)
            return data
        first = _b64(text[: 4 * ((3 * hsize + 2) // 3)])
        if len(first) < 3 * hsize:
            raise InvalidFileError(f"{path}: compressed data header is truncated")
        nblocks, block, last = (int(v) for v in np.frombuffer(first[: 3 * hsize], header_dtype))
        last = last or block
        if nblocks < 1 or block < 1 or last > block or (nblocks - 1) * block + last != nbytes or (
                nblocks > 1 and block < 1024):
            raise InvalidFileError(f"{path}: compressed blocks ({nblocks} x {block}, last {last}) do not "
                                   f"match the grid's {nbytes} bytes")
        hlen = (3 + nblocks) * hsize
        hchars = 4 * ((hlen + 2) // 3)
        if hchars > len(text):
            raise InvalidFileError(f"{path}: compressed data header is truncated")
        check_decode(count, file_bytes, str(path))  # the decode-ratio rule, before inflating anything
        sizes = np.frombuffer(_b64(text[:hchars])[:hlen], header_dtype)[3:].astype(np.int64)
        payload = _b64(text[hchars:])
        if int(sizes.sum()) > len(payload):
            raise InvalidFileError(f"{path}: compressed data is truncated")
        out = np.empty(count, dtype=np.float32)
        start, done = 0, 0
        for i, csize in enumerate(sizes.tolist()):
            want = block if i < nblocks - 1 else last
            done = _inflate_block(payload[start: start + csize], want, dtype, out, done, path, i)
            start += csize
        return out
    except (ValueError, zlib.error, IndexError, binascii.Error, OverflowError) as exc:
        if isinstance(exc, InvalidFileError):
            raise
        raise InvalidFileError(f"{path}: corrupt binary data ({str(exc)[:200]})") from None


def _floats(text: str | None, n: int, default: float) -> tuple[float, ...] | None:
    """``n`` finite numbers from an attribute (``default`` each when absent); ``None`` if unusable."""
    if text is None:
        return (default,) * n
    try:
        values = tuple(float(v) for v in text.split()[: n + 1])
    except ValueError:
        return None
    return values if len(values) == n and all(math.isfinite(v) for v in values) else None


def _frame(origin: tuple[float, ...] | None, spacing: tuple[float, ...] | None, name: str | None,
           axes: Sequence[int], path: Path) -> Frame:
    """The frame of the kept ``axes``; an unusable origin/spacing is refused."""
    if origin is None or spacing is None or min(spacing[a] for a in axes) <= 0:
        raise InvalidFileError(f"{path}: bad Origin/Spacing (finite numbers, positive spacing)")
    return Frame(tuple(origin[a] for a in axes), tuple(spacing[a] for a in axes), clean_array_name(name))


def read_vti(path: Path, array: str | None = None) -> np.ndarray:
    """Read the first (or named) point-data array of a VTK XML ImageData file."""
    return read_vti_frame(path, array)[0]


def read_vti_frame(path: Path, array: str | None = None) -> tuple[np.ndarray, Frame]:
    """Read the first (or named) point-data array of a VTK XML ImageData file, and its :class:`Frame`.

    The frame holds ``Origin``, ``Spacing`` and the array's ``Name`` for the axes kept (size-1 axes are
    dropped, as in the array); a ``Direction`` other than identity is not kept.
    """
    path = Path(path)
    blob = _read_text_file(path)
    if b"<AppendedData" in blob and b'encoding="raw"' in blob:
        raise InvalidFileError(f"{path}: raw appended .vti data is not supported; save as inline binary or ascii")
    if _XML_DECLS.search(blob):
        raise InvalidFileError(f"{path}: XML with a DOCTYPE or ENTITY declaration is not accepted")
    try:
        root = ET.fromstring(blob)
    except (ET.ParseError, ValueError, RecursionError) as exc:
        raise InvalidFileError(f"{path}: not valid VTK XML ({str(exc)[:200]})") from None
    del blob
    if root.tag != "VTKFile" or root.get("type") != "ImageData":
        raise InvalidFileError(f"{path}: not a VTK ImageData file")
    if root.get("byte_order", "LittleEndian") != "LittleEndian":
        raise InvalidFileError(f"{path}: big-endian .vti is not supported")
    image = root.find("ImageData")
    try:
        text = image.get("WholeExtent") or "" if image is not None else ""
        ext = [int(v) for v in text.split()[:7]]
        if len(ext) != 6 or any(abs(v) > 1 << 31 for v in ext):
            raise ValueError("six integers needed")
        dims = tuple(ext[2 * i + 1] - ext[2 * i] + 1 for i in range(3))
    except (AttributeError, ValueError, IndexError) as exc:
        raise InvalidFileError(f"{path}: missing or bad WholeExtent") from exc
    _check_voxels(dims, path)
    axes = [k for k, d in enumerate(dims) if d > 1] or [0]
    frame = _frame(_floats(image.get("Origin"), 3, 0.0), _floats(image.get("Spacing"), 3, 1.0),  # type: ignore[union-attr]
                   None, axes, path)
    dims = tuple(d for d in dims if d > 1) or (1,)
    count = _check_voxels(dims, path)
    arrays = root.findall("./ImageData/Piece/PointData/DataArray") or root.findall(".//PointData/DataArray")
    node = next((a for a in arrays if array is None or a.get("Name") == array), None)
    if node is None:
        raise InvalidFileError(f"{path}: no point-data array {array or ''}".strip())
    vtype = node.get("type") or ""
    if vtype not in _VTK_XML_TYPES:
        raise InvalidFileError(f"{path}: unsupported data type {vtype[:50]!r}")
    dtype = np.dtype("<" + _VTK_XML_TYPES[vtype])
    ncomp = node.get("NumberOfComponents", "1")
    if ncomp.strip() != "1":
        raise InvalidFileError(f"{path}: only scalar arrays are supported ({ncomp[:20]} components)")
    fmt = node.get("format", "ascii")
    size = file_size(path)
    if fmt == "ascii":
        check_decode(count, size, str(path))
        values = _parse_ascii((node.text or "").encode("latin-1", "replace"), count, path)
    elif fmt == "binary":
        htype = root.get("header_type", "UInt32")
        if htype not in ("UInt32", "UInt64"):
            raise InvalidFileError(f"{path}: unsupported header_type {htype[:50]!r}")
        compressor = root.get("compressor")
        if compressor not in (None, "vtkZLibDataCompressor"):
            raise InvalidFileError(f"{path}: unsupported compressor {compressor[:50]!r} (only zlib)")
        if compressor is None:
            check_decode(count, size, str(path))
        header_dtype = "<u8" if htype == "UInt64" else "<u4"
        values = _vti_decode_binary(node.text or "", header_dtype, compressor is not None, dtype, count, path, size)
    else:
        raise InvalidFileError(f"{path}: unsupported DataArray format {fmt[:50]!r}")
    frame = Frame(frame.origin, frame.spacing, clean_array_name(node.get("Name")), dtype.name)
    return values.reshape(tuple(reversed(dims))).transpose().astype(np.float32, copy=False), frame


VTI_BLOCK = 1 << 16  # bytes per zlib block of a written .vti (VTK uses 32 KiB)


def _zlib_payload(data: bytes) -> str:
    """VTK's compressed inline binary: a base64 block header, then the base64 of the zlib blocks."""
    blocks = [zlib.compress(data[i: i + VTI_BLOCK], 6) for i in range(0, len(data), VTI_BLOCK)] or [zlib.compress(b"")]
    last = len(data) - (len(blocks) - 1) * VTI_BLOCK
    header = struct.pack(f"<{3 + len(blocks)}I", len(blocks), VTI_BLOCK, last, *(len(b) for b in blocks))
    return base64.b64encode(header).decode() + base64.b64encode(b"".join(blocks)).decode()


def write_vti(path: Path, volume: np.ndarray, name: str = "values", origin: Sequence[float] | None = None,
              spacing: Sequence[float] | None = None, compress: bool = True) -> Path:
    """Write a 3D ``[x, y, z]`` float volume as VTK XML ImageData (inline binary, zlib unless ``compress=False``).

    ``origin``/``spacing`` place it in physical space (default 0 and 1); ``name`` names the array.
    """
    from xml.sax.saxutils import quoteattr

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise InvalidInputError(f"write_vti needs a 3D array, got shape {vol.shape}")
    frame = Frame(tuple(float(v) for v in (origin if origin is not None else (0.0,) * 3)),
                  tuple(float(v) for v in (spacing if spacing is not None else (1.0,) * 3)))
    if len(frame.origin) != 3:
        raise InvalidInputError(f"write_vti needs 3 origin and spacing values, got {len(frame.origin)}")
    nx, ny, nz = vol.shape
    data = np.ascontiguousarray(vol.transpose()).tobytes()
    if compress:
        payload, compressor = _zlib_payload(data), ' compressor="vtkZLibDataCompressor"'
    else:
        payload, compressor = base64.b64encode(struct.pack("<I", len(data)) + data).decode(), ""
    attr = quoteattr(clean_array_name(name) or "values")
    text = (
        '<?xml version="1.0"?>\n'
        f'<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian" header_type="UInt32"{compressor}>\n'
        f'  <ImageData WholeExtent="0 {nx - 1} 0 {ny - 1} 0 {nz - 1}" '
        f'Origin="{" ".join(repr(v) for v in frame.origin)}" Spacing="{" ".join(repr(v) for v in frame.spacing)}">\n'
        f'  <Piece Extent="0 {nx - 1} 0 {ny - 1} 0 {nz - 1}">\n'
        f'    <PointData Scalars={attr}>\n'
        f'      <DataArray type="Float32" Name={attr} format="binary" RangeMin="{float(vol.min())!r}" '
        f'RangeMax="{float(vol.max())!r}">\n{payload}\n      </DataArray>\n'
        "    </PointData>\n  </Piece>\n  </ImageData>\n</VTKFile>\n"
    )
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path


# ---------------------------------------------------------------- VTK legacy
def read_vtk_legacy(path: Path) -> np.ndarray:
    """Read scalars of a legacy VTK STRUCTURED_POINTS file (ASCII or big-endian BINARY)."""
    return read_vtk_legacy_frame(path)[0]


def read_vtk_legacy_frame(path: Path) -> tuple[np.ndarray, Frame]:
    """Scalars of a legacy VTK STRUCTURED_POINTS file and their frame (``ORIGIN``, ``SPACING``, scalar name)."""
    path = Path(path)
    blob = _read_text_file(path)
    if not blob.startswith(b"# vtk DataFile"):
        raise InvalidFileError(f"{path}: not a legacy VTK file with scalar point data")
    match = re.search(rb"LOOKUP_TABLE[^\n]*\n", blob[: 1 << 16])
    if match is None:
        raise InvalidFileError(f"{path}: not a legacy VTK file with scalar point data")
    head = blob[: match.end()].decode("latin-1").split("\n")
    fields = {line.split()[0].upper(): line.split()[1:] for line in head if line.strip()}
    if fields.get("DATASET") != ["STRUCTURED_POINTS"]:
        raise InvalidFileError(f"{path}: only DATASET STRUCTURED_POINTS is supported")
    try:
        dims_text = fields["DIMENSIONS"]
        if len(dims_text) != 3 or any(len(v) > 12 for v in dims_text):
            raise ValueError("three integers needed")
        dims = tuple(int(v) for v in dims_text)
        vtype = fields["SCALARS"][1]
        ncomp = int(fields["SCALARS"][2][:12]) if len(fields["SCALARS"]) > 2 else 1
    except (KeyError, ValueError, IndexError) as exc:
        raise InvalidFileError(f"{path}: missing DIMENSIONS or SCALARS") from exc
    if vtype not in _VTK_LEGACY_TYPES or ncomp != 1:
        raise InvalidFileError(f"{path}: unsupported scalar type {vtype[:50]!r} with {ncomp} components")
    count = _check_voxels(dims, path)
    check_decode(count, len(blob), str(path))
    body = blob[match.end():]
    if "BINARY" in [line.strip().upper() for line in head[:4]]:
        dtype = np.dtype(">" + _VTK_LEGACY_TYPES[vtype])
        if len(body) < count * dtype.itemsize:
            raise InvalidFileError(f"{path}: data truncated ({len(body)} of {count * dtype.itemsize} bytes)")
        values = np.frombuffer(body, dtype=dtype, count=count)
    else:
        end = _LEGACY_KEYWORDS.search(body)
        values = _parse_ascii(body[: end.start() if end else len(body)], count, path)
    axes = [k for k, d in enumerate(dims) if d > 1] or [0]
    spacing_text = fields.get("SPACING") or fields.get("ASPECT_RATIO")
    frame = _frame(_floats(" ".join(fields["ORIGIN"]) if "ORIGIN" in fields else None, 3, 0.0),
                   _floats(" ".join(spacing_text) if spacing_text else None, 3, 1.0), fields["SCALARS"][0], axes, path)
    frame = Frame(frame.origin, frame.spacing, frame.array, np.dtype(_VTK_LEGACY_TYPES[vtype]).name)
    dims = tuple(d for d in dims if d > 1) or (1,)
    return values.reshape(tuple(reversed(dims))).transpose().astype(np.float32), frame
