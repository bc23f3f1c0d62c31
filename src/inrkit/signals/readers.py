"""Readers and writers for grid data: images, ``.npy``, ``.raw``, VTK ``.vti`` and legacy ``.vtk``.

Volumes are returned as float arrays indexed ``[x, y, z]`` (x is the first axis).
Every reader checks sizes before it allocates and raises :class:`InvalidFileError`.
"""
from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.utils import atomic_write

MAX_VOXELS = 1 << 31
_VTK_XML_TYPES = {
    "Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4", "UInt32": "u4",
    "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8",
}
_VTK_LEGACY_TYPES = {
    "unsigned_char": "u1", "char": "i1", "short": "i2", "unsigned_short": "u2", "int": "i4",
    "unsigned_int": "u4", "long": "i8", "unsigned_long": "u8", "float": "f4", "double": "f8",
}


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such file")


def _check_voxels(dims: tuple[int, ...], path: Path) -> int:
    if not dims or any(d < 1 for d in dims):
        raise InvalidFileError(f"{path}: invalid dimensions {dims}")
    count = int(np.prod(np.asarray(dims, dtype=np.int64)))
    if count > MAX_VOXELS:
        raise InvalidFileError(f"{path}: {dims} is too large ({count} values)")
    return count


def read_image(path: Path) -> np.ndarray:
    """Read a PNG/JPEG as float32 ``[H, W, C]`` in 0..255 (C is 1 or 3)."""
    from PIL import Image, UnidentifiedImageError

    _require_file(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(img, dtype=np.float32) * (255.0 / 65535.0)
                arr = arr[..., None]
            elif img.mode in ("1", "L", "LA", "P") and img.mode != "P":
                arr = np.asarray(img.convert("L"), dtype=np.float32)[..., None]
            else:
                arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidFileError(f"{path}: cannot read image ({exc})") from exc
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InvalidInputError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}; need at least 2x2 pixels")
    return arr


def read_npy(path: Path) -> np.ndarray:
    """Read a numeric ``.npy`` array (no pickles)."""
    _require_file(path)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidFileError(f"{path}: cannot read .npy ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise InvalidFileError(f"{path}: .npy must hold numbers, not {arr.dtype}")
    _check_voxels(tuple(arr.shape), path)
    return np.asarray(arr, dtype=np.float32)


def read_raw(path: Path, dims: tuple[int, ...], dtype: str = "uint8") -> np.ndarray:
    """Read a headerless volume with ``dims = (nx, ny, nz)``, x varying fastest."""
    _require_file(path)
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidInputError(f"unknown raw dtype {dtype!r}") from exc
    if dt.kind not in "biuf":
        raise InvalidInputError(f"raw dtype must be numeric, got {dtype!r}")
    count = _check_voxels(tuple(dims), path)
    size = path.stat().st_size
    if size != count * dt.itemsize:
        raise InvalidInputError(
            f"{path}: {size} bytes do not match dims {tuple(dims)} x {dt.name} ({count * dt.itemsize} bytes)"
        )
    data = np.fromfile(path, dtype=dt, count=count).reshape(tuple(reversed(dims)))
    return np.ascontiguousarray(data.transpose(tuple(reversed(range(len(dims)))))).astype(np.float32)


# ------------------------------------------------------------------- VTK XML
def _vti_decode_binary(text: str, header_dtype: str, compressed: bool, dtype: np.dtype, count: int,
                       path: Path) -> np.ndarray:
    text = "".join(text.split())
    hsize = np.dtype(header_dtype).itemsize
    try:
        if not compressed:
            blob = base64.b64decode(text)
            nbytes = int(np.frombuffer(blob[:hsize], header_dtype)[0])
            data = blob[hsize: hsize + nbytes]
        else:
            first = base64.b64decode(text[: 4 * ((3 * hsize + 2) // 3)])
            nblocks = int(np.frombuffer(first[:hsize], header_dtype)[0])
            if nblocks > 1 + count * dtype.itemsize // 1:
                raise InvalidFileError(f"{path}: absurd block count {nblocks}")
            hlen = (3 + nblocks) * hsize
            hchars = 4 * ((hlen + 2) // 3)
            header = np.frombuffer(base64.b64decode(text[:hchars])[:hlen], header_dtype)
            sizes = header[3:].astype(np.int64)
            payload = base64.b64decode(text[hchars:])
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            if offsets[-1] > len(payload):
                raise InvalidFileError(f"{path}: compressed data is truncated")
            out, limit = [], count * dtype.itemsize
            for i in range(nblocks):
                block = zlib.decompressobj().decompress(payload[offsets[i]: offsets[i + 1]], limit + 1)
                limit -= len(block)
                out.append(block)
            data = b"".join(out)
    except (ValueError, zlib.error, IndexError) as exc:
        raise InvalidFileError(f"{path}: corrupt binary data ({exc})") from exc
    if len(data) != count * dtype.itemsize:
        raise InvalidFileError(f"{path}: expected {count * dtype.itemsize} data bytes, found {len(data)}")
    return np.frombuffer(data, dtype=dtype)


def read_vti(path: Path, array: str | None = None) -> np.ndarray:
    """Read the first (or named) point-data array of a VTK XML ImageData file."""
    _require_file(path)
    blob = path.read_bytes()
    if b"<AppendedData" in blob and b'encoding="raw"' in blob:
        raise InvalidFileError(f"{path}: raw appended .vti data is not supported; save as inline binary or ascii")
    try:
        root = ET.fromstring(blob)
    except ET.ParseError as exc:
        raise InvalidFileError(f"{path}: not valid VTK XML ({exc})") from exc
    if root.tag != "VTKFile" or root.get("type") != "ImageData":
        raise InvalidFileError(f"{path}: not a VTK ImageData file")
    if root.get("byte_order", "LittleEndian") != "LittleEndian":
        raise InvalidFileError(f"{path}: big-endian .vti is not supported")
    image = root.find("ImageData")
    try:
        ext = [int(v) for v in (image.get("WholeExtent") or "" if image is not None else "").split()]
        dims = tuple(ext[2 * i + 1] - ext[2 * i] + 1 for i in range(3))
    except (AttributeError, ValueError, IndexError) as exc:
        raise InvalidFileError(f"{path}: missing or bad WholeExtent") from exc
    dims = tuple(d for d in dims if d > 1) or (1,)
    count = _check_voxels(dims, path)
    arrays = root.findall(".//PointData/DataArray")
    node = next((a for a in arrays if array is None or a.get("Name") == array), None)
    if node is None:
        raise InvalidFileError(f"{path}: no point-data array {array or ''}".strip())
    vtype = node.get("type") or ""
    if vtype not in _VTK_XML_TYPES:
        raise InvalidFileError(f"{path}: unsupported data type {node.get('type')!r}")
    dtype = np.dtype("<" + _VTK_XML_TYPES[vtype])
    ncomp = int(node.get("NumberOfComponents", "1"))
    if ncomp != 1:
        raise InvalidFileError(f"{path}: only scalar arrays are supported ({ncomp} components)")
    fmt = node.get("format", "ascii")
    if fmt == "ascii":
        try:
            values = np.array((node.text or "").split(), dtype=dtype)
        except (AttributeError, ValueError) as exc:
            raise InvalidFileError(f"{path}: bad ascii data") from exc
        if values.size != count:
            raise InvalidFileError(f"{path}: expected {count} values, found {values.size}")
    elif fmt == "binary":
        header_dtype = "<u8" if root.get("header_type") == "UInt64" else "<u4"
        compressed = root.get("compressor") is not None
        values = _vti_decode_binary(node.text or "", header_dtype, compressed, dtype, count, path)
    else:
        raise InvalidFileError(f"{path}: unsupported DataArray format {fmt!r}")
    return values.reshape(tuple(reversed(dims))).transpose().astype(np.float32)


def write_vti(path: Path, volume: np.ndarray, name: str = "values") -> Path:
    """Write a 3D ``[x, y, z]`` float volume as VTK XML ImageData (inline binary, uncompressed)."""
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise InvalidInputError(f"write_vti needs a 3D array, got shape {vol.shape}")
    nx, ny, nz = vol.shape
    data = np.ascontiguousarray(vol.transpose()).tobytes()
    payload = base64.b64encode(struct.pack("<I", len(data)) + data).decode()
    text = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian" header_type="UInt32">\n'
        f'  <ImageData WholeExtent="0 {nx - 1} 0 {ny - 1} 0 {nz - 1}" Origin="0 0 0" Spacing="1 1 1">\n'
        f'  <Piece Extent="0 {nx - 1} 0 {ny - 1} 0 {nz - 1}">\n'
        f'    <PointData Scalars="{name}">\n'
        f'      <DataArray type="Float32" Name="{name}" format="binary">\n{payload}\n      </DataArray>\n'
        "    </PointData>\n  </Piece>\n  </ImageData>\n</VTKFile>\n"
    )
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path


# ---------------------------------------------------------------- VTK legacy
def read_vtk_legacy(path: Path) -> np.ndarray:
    """Read scalars of a legacy VTK STRUCTURED_POINTS file (ASCII or big-endian BINARY)."""
    _require_file(path)
    blob = path.read_bytes()
    match = re.search(rb"LOOKUP_TABLE[^\n]*\n", blob)
    if not blob.startswith(b"# vtk DataFile") or match is None:
        raise InvalidFileError(f"{path}: not a legacy VTK file with scalar point data")
    head = blob[: match.end()].decode("latin-1").split("\n")
    fields = {line.split()[0].upper(): line.split()[1:] for line in head if line.strip()}
    if fields.get("DATASET") != ["STRUCTURED_POINTS"]:
        raise InvalidFileError(f"{path}: only DATASET STRUCTURED_POINTS is supported")
    try:
        dims = tuple(int(v) for v in fields["DIMENSIONS"])
        vtype = fields["SCALARS"][1]
        ncomp = int(fields["SCALARS"][2]) if len(fields["SCALARS"]) > 2 else 1
    except (KeyError, ValueError, IndexError) as exc:
        raise InvalidFileError(f"{path}: missing DIMENSIONS or SCALARS") from exc
    if vtype not in _VTK_LEGACY_TYPES or ncomp != 1:
        raise InvalidFileError(f"{path}: unsupported scalar type {vtype!r} with {ncomp} components")
    count = _check_voxels(dims, path)
    body = blob[match.end():]
    if "BINARY" in [line.strip().upper() for line in head[:4]]:
        dtype = np.dtype(">" + _VTK_LEGACY_TYPES[vtype])
        if len(body) < count * dtype.itemsize:
            raise InvalidFileError(f"{path}: data truncated ({len(body)} of {count * dtype.itemsize} bytes)")
        values = np.frombuffer(body, dtype=dtype, count=count)
    else:
        try:
            values = np.array(body.split()[:count], dtype=np.float64)
        except ValueError as exc:
            raise InvalidFileError(f"{path}: bad ascii data") from exc
        if values.size != count:
            raise InvalidFileError(f"{path}: expected {count} values, found {values.size}")
    dims = tuple(d for d in dims if d > 1) or (1,)
    return values.reshape(tuple(reversed(dims))).transpose().astype(np.float32)
