"""The ``.inrz`` container: magic, version, JSON header, payload sections, checksum.

Layout (all integers little-endian)::

    0   4 bytes  magic b"INRZ"
    4   1 byte   format version (1)
    5   4 bytes  n = length of the Brotli-compressed JSON header
    9   n bytes  header (Brotli of UTF-8 JSON; at most 1 MiB once expanded)
    .   ...      payload: the sections, back to back; header["sizes"] lists their lengths
    -4  4 bytes  CRC-32 of every byte before it

Version 2 (written by default; version 1 files keep decoding)::

    0   4 bytes  magic b"INRZ"
    4   1 byte   format version (2)
    5   varint   n = length of the binary header
    .   n bytes  header: one tagged value (see :func:`dump_value`), the same object as v1's JSON
    .   varint   number of sections c, then c - 1 varints: their lengths (the last one is the rest)
    .   ...      payload: the sections, back to back; quantised and Brotli sections start with a
                 method byte (:mod:`inrkit.compress.decode.entropy`)
    -4  4 bytes  CRC-32 of every byte before it

Reading checks the checksum and every length before it allocates anything; all
failures raise :class:`inrkit.errors.InvalidFileError`.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator

import brotli

from inrkit.compress.decode.coding import brotli_compress
from inrkit.compress.decode.entropy import read_varint, write_varint
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import INRZ_MAX_FILE, INRZ_MAX_HEADER, MAX_JSON_DEPTH, parse_json

MAGIC = b"INRZ"
VERSION = 2  # written by default
VERSIONS = (1, 2)  # read
_WRITE_VERSION: contextvars.ContextVar[int] = contextvars.ContextVar("inrz_write_version", default=VERSION)
MAX_HEADER = INRZ_MAX_HEADER
_PREFIX = struct.Struct("<4sBI")
_MIN_SIZE = _PREFIX.size + 4


def write_version() -> int:
    """The container version the encoder writes now (2 unless inside :func:`writing_version`)."""
    return _WRITE_VERSION.get()


@contextlib.contextmanager
def writing_version(version: int) -> Iterator[None]:
    """Write ``.inrz`` version ``version`` (1 or 2: container and section coding) inside the block."""
    if version not in VERSIONS:
        raise InvalidInputError(f".inrz version must be one of {VERSIONS}")
    token = _WRITE_VERSION.set(version)
    try:
        yield
    finally:
        _WRITE_VERSION.reset(token)


def pack(header: dict[str, Any], sections: list[bytes], version: int | None = None) -> bytes:
    """Serialise ``header`` (JSON-able) and ``sections`` into ``.inrz`` bytes of ``version``
    (default: :func:`write_version`); the sections must be coded for that version."""
    version = write_version() if version is None else version
    if version == 2:
        return _pack_v2(header, sections)
    header = dict(header, sizes=[len(s) for s in sections])
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    head = brotli_compress(text)
    body = _PREFIX.pack(MAGIC, 1, len(head)) + head + b"".join(sections)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Parse ``.inrz`` bytes into ``(header, sections)``; validates structure, not meaning."""
    data = bytes(data)
    version = version_of(data)
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise InvalidFileError(".inrz checksum mismatch: the file is truncated or altered")
    if version == 2:
        return _unpack_v2(data)
    _, _, head_len = _PREFIX.unpack_from(data)
    payload_start = _PREFIX.size + head_len
    if head_len == 0 or payload_start > len(data) - 4:
        raise InvalidFileError(f".inrz header length {head_len} exceeds the file")
    text = _bounded_brotli(data[_PREFIX.size : payload_start])
    header = parse_json(text, ".inrz header", allow_nan=False)
    if not isinstance(header, dict):
        raise InvalidFileError(".inrz header is not a JSON object")
    sizes = header.get("sizes")
    payload = memoryview(data)[payload_start:-4]
    if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
        raise InvalidFileError(".inrz header field 'sizes' must be a list of non-negative integers")
    if sum(sizes) != len(payload):
        raise InvalidFileError(f".inrz sections total {sum(sizes)} bytes but the payload has {len(payload)}")
    sections, pos = [], 0
    for n in sizes:
        sections.append(bytes(payload[pos : pos + n]))
        pos += n
    return header, sections


def _bounded_brotli(data: bytes) -> bytes:
    """Expand the header stream, refusing more than MAX_HEADER bytes."""
    dec = brotli.Decompressor()
    try:
        out = dec.process(data, output_buffer_limit=MAX_HEADER + 1)
        finished = dec.is_finished()
    except brotli.error:
        raise InvalidFileError(".inrz header is corrupt (Brotli)") from None
    if len(out) > MAX_HEADER:
        raise InvalidFileError(".inrz header larger than 1 MiB")
    if not finished:
        raise InvalidFileError(".inrz header stream is truncated")
    return out


def version_of(data: bytes) -> int:
    """The container version of ``.inrz`` bytes (checks the size, magic and version byte only)."""
    if len(data) < _MIN_SIZE:
        raise InvalidFileError(f"not an .inrz file: only {len(data)} bytes")
    if data[:4] != MAGIC:
        raise InvalidFileError("not an .inrz file (bad magic bytes)")
    if data[4] not in VERSIONS:
        raise InvalidFileError(f"unsupported .inrz format version {data[4]} (this reader knows {list(VERSIONS)})")
    return int(data[4])


# ------------------------------------------------------------------ version 2
def _pack_v2(header: dict[str, Any], sections: list[bytes]) -> bytes:
    head = dump_value({k: v for k, v in header.items() if k != "sizes"})
    if len(head) > MAX_HEADER:
        raise InvalidInputError(".inrz header larger than 1 MiB")
    index = write_varint(len(sections)) + b"".join(write_varint(len(s)) for s in sections[:-1])
    body = MAGIC + bytes([2]) + write_varint(len(head)) + head + index + b"".join(sections)
    return body + struct.pack("<I", zlib.crc32(body))


def _unpack_v2(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    end = len(data) - 4
    head_len, pos = read_varint(data, 5, limit=min(MAX_HEADER, end))
    if head_len == 0 or pos + head_len > end:
        raise InvalidFileError(f".inrz header length {head_len} exceeds the file")
    header = load_value(data[pos : pos + head_len])
    if not isinstance(header, dict):
        raise InvalidFileError(".inrz header is not an object")
    pos += head_len
    count, pos = read_varint(data, pos, limit=end - pos)
    sizes = []
    for _ in range(max(count - 1, 0)):
        n, pos = read_varint(data, pos, limit=end)
        sizes.append(n)
    rest = end - pos - sum(sizes)
    if rest < 0 or (count == 0 and rest != 0):
        raise InvalidFileError(f".inrz sections total {sum(sizes)} bytes but the payload has {end - pos}")
    if count:
        sizes.append(rest)
    sections = []
    for n in sizes:
        sections.append(data[pos : pos + n])
        pos += n
    header["sizes"] = sizes
    return header, sections


# A tagged binary value (the v2 header): one byte says what follows.
_NONE, _FALSE, _TRUE, _INT, _F16, _F32, _F64, _STR, _LIST, _DICT, _REPEAT, _QPAIR = range(12)
MAX_NODES = 1 << 20  # values a v2 header may unfold to (repeats counted in full)
_SMALL_DICT, _SMALL_LIST, _SMALL_INT, _KNOWN = 0x10, 0x20, 0x40, 0x80
# strings written as one byte (keys and values); append only, never reorder (the format depends on it)
KNOWN_STRINGS = (
    "format", "codec", "model", "widths", "activations", "omegas", "fourier", "encoding", "params", "layers",
    "signal", "extra", "bits", "dense_bits", "seed", "generator", "w", "b", "coef", "mode", "k1", "k2", "s",
    "support", "support_bytes", "type", "dim", "levels", "features", "base", "finest", "table_size", "rows", "q",
    "kind", "name", "shape", "channels", "domain", "value_offset", "value_scale", "origin", "spacing", "array",
    "crop", "source_shape", "series", "label_name", "inrz-mlp", "sinr", "quant", "coin", "sine", "finer", "relu",
    "tanh", "sigmoid", "identity", "pcg64-boxmuller-v1", "gaps", "bitmask", "blocks", "grid", "image", "volume",
    "sdf", "audio", "video", "nerf", "points", "psnr", "steps", "lr", "arch", "hidden", "bpp", "target_psnr",
    "target_bytes", "finetune", "sparsity", "overcomplete", "block", "code_first", "fit", "time", "source",
    "inrz-latent", "latent", "v", "a", "fw", "ab", "sb", "qb",
)
assert len(KNOWN_STRINGS) <= 128 and len(set(KNOWN_STRINGS)) == len(KNOWN_STRINGS)
_KNOWN_ID = {s: i for i, s in enumerate(KNOWN_STRINGS)}


def dump_value(value: Any) -> bytes:
    """``value`` (None, bool, int, finite float, str, list, dict with str keys) as tagged bytes.

    Floats keep their type and value: float16 when exact, else float32 when exact, else float64.
    A list of equal items is one item and a count; a pair of floats ``[lo, step]`` with ``step = m 2**e``
    (``m`` odd) and ``lo = -(z / 16) * step`` (a quantiser, :func:`inrkit.compress.decode.coding.quantize`) is
    the three integers ``z``, ``m``, ``e`` (used only where the reader rebuilds the same float64 bits).
    """
    out = bytearray()
    _dump(value, out, 0)
    return bytes(out)


def _dump(v: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInputError(".inrz header nests too deeply")
    if v is None or isinstance(v, bool):
        out.append(_NONE if v is None else _TRUE if v else _FALSE)
    elif isinstance(v, int):
        if 0 <= v < 64:
            out.append(_SMALL_INT + v)
        elif -(1 << 63) <= v < 1 << 63:
            out.append(_INT)
            out += write_varint(v << 1 if v >= 0 else ((-v - 1) << 1) | 1)
        else:
            raise InvalidInputError(f"integer {v} out of the .inrz header's range")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise InvalidInputError("non-finite number in an .inrz header")
        for tag, fmt in ((_F16, "<e"), (_F32, "<f")):
            try:
                packed = struct.pack(fmt, v)
            except OverflowError:
                continue
            if struct.unpack(fmt, packed)[0] == v:
                out.append(tag)
                out += packed
                return
        out.append(_F64)
        out += struct.pack("<d", v)
    elif isinstance(v, str):
        if v in _KNOWN_ID:
            out.append(_KNOWN + _KNOWN_ID[v])
        else:
            raw = v.encode()
            out.append(_STR)
            out += write_varint(len(raw)) + raw
    elif isinstance(v, (list, tuple)):
        qpair = _qpair(v)
        if qpair is not None:
            out.append(_QPAIR)
            out += qpair
            return
        items = [dump_value(item) if depth < MAX_JSON_DEPTH else b"" for item in v]
        if len(v) >= 2 and all(item == items[0] for item in items):
            out.append(_REPEAT)
            out += write_varint(len(v))
            _dump(v[0], out, depth + 1)
            return
        out += bytes([_SMALL_LIST + len(v)]) if len(v) < 32 else bytes([_LIST]) + write_varint(len(v))
        for item in v:
            _dump(item, out, depth + 1)
    elif isinstance(v, dict):
        out += bytes([_SMALL_DICT + len(v)]) if len(v) < 16 else bytes([_DICT]) + write_varint(len(v))
        for key, item in v.items():
            if not isinstance(key, str):
                raise InvalidInputError(".inrz header keys must be strings")
            _dump(key, out, depth + 1)
            _dump(item, out, depth + 1)
    else:
        raise InvalidInputError(f"cannot store a {type(v).__name__} in an .inrz header")


def _zigzag(v: int) -> bytes:
    return write_varint(v << 1 if v >= 0 else ((-v - 1) << 1) | 1)


def _unzigzag(z: int) -> int:
    return (z >> 1) if not z & 1 else -(z >> 1) - 1


def _qpair_floats(z: int, m: int, e: int) -> tuple[float, float] | None:
    """The pair ``[lo, step]`` of the integers (None when out of range); the writer checks the same bits."""
    if not (0 < m < 1 << 53 and -1100 < e < 1100 and abs(z) < 1 << 62):
        return None
    try:
        step = math.ldexp(m, e)
        lo = -(z / 16) * step
    except OverflowError:
        return None
    return (lo, step) if math.isfinite(step) and math.isfinite(lo) and step > 0 else None


def _qpair(v: Any) -> bytes | None:
    """The compact form of a quantiser pair ``[lo, step]``, or None."""
    if not (isinstance(v, list) and len(v) == 2 and all(type(x) is float for x in v)):
        return None
    lo, step = v
    if not (math.isfinite(lo) and math.isfinite(step) and step > 0):
        return None
    num, den = step.as_integer_ratio()
    e = -(den.bit_length() - 1)
    while num % 2 == 0:
        num //= 2
        e += 1
    ratio = (-lo * 16) / step if abs(lo) < 1e300 else math.inf
    if not (math.isfinite(ratio) and abs(ratio) < 1 << 62):
        return None
    for z in (round(ratio), round(ratio) - 1, round(ratio) + 1):  # lo = -(z / 16) * step may be rounded
        got = _qpair_floats(z, num, e)
        if got is not None and struct.pack("<2d", *got) == struct.pack("<2d", lo, step):
            return _zigzag(z) + write_varint(num) + _zigzag(e)
    return None


def load_value(data: bytes) -> Any:
    """Inverse of :func:`dump_value`; every byte must be used. Raises ``InvalidFileError``."""
    nodes = [0]
    value, pos = _load(data, 0, 0, nodes)
    if pos != len(data):
        raise InvalidFileError(".inrz header has trailing bytes")
    return value


def _load(data: bytes, pos: int, depth: int, nodes: list[int]) -> tuple[Any, int]:
    if depth > MAX_JSON_DEPTH:
        raise InvalidFileError(".inrz header nests too deeply")
    if pos >= len(data):
        raise InvalidFileError(".inrz header is truncated")
    nodes[0] += 1
    if nodes[0] > MAX_NODES:
        raise InvalidFileError(f".inrz header holds more than {MAX_NODES} values")
    tag, pos = data[pos], pos + 1
    if tag >= _KNOWN:
        if tag - _KNOWN >= len(KNOWN_STRINGS):
            raise InvalidFileError(f".inrz header holds an unknown string id {tag - _KNOWN}")
        return KNOWN_STRINGS[tag - _KNOWN], pos
    if tag >= _SMALL_INT:
        return tag - _SMALL_INT, pos
    if tag in (_NONE, _FALSE, _TRUE):
        return (None, False, True)[tag], pos
    if tag == _INT:
        z, pos = read_varint(data, pos, limit=(1 << 64) - 1)
        return _unzigzag(z), pos
    if tag == _QPAIR:
        z, pos = read_varint(data, pos, limit=(1 << 64) - 1)
        m, pos = read_varint(data, pos, limit=1 << 53)
        e, pos = read_varint(data, pos, limit=1 << 12)
        pair = _qpair_floats(_unzigzag(z), m, _unzigzag(e))
        if pair is None:
            raise InvalidFileError(".inrz header holds an out-of-range quantiser")
        return list(pair), pos
    if tag == _REPEAT:
        n, pos = read_varint(data, pos, limit=MAX_NODES)
        before = nodes[0]
        item, pos = _load(data, pos, depth + 1, nodes)
        nodes[0] += (n - 1) * (nodes[0] - before)  # the copies count in full
        if n < 2 or nodes[0] > MAX_NODES:
            raise InvalidFileError(f".inrz header repeats a value {n} times (at most {MAX_NODES} values in all)")
        return [item if not isinstance(item, (list, dict)) else _copy(item) for _ in range(n)], pos
    if tag in (_F16, _F32, _F64):
        fmt = {_F16: "<e", _F32: "<f", _F64: "<d"}[tag]
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise InvalidFileError(".inrz header is truncated")
        (x,) = struct.unpack_from(fmt, data, pos)
        if not math.isfinite(x):
            raise InvalidFileError("non-finite number in the .inrz header")
        return float(x), pos + size
    if tag == _STR:
        n, pos = read_varint(data, pos, limit=len(data) - pos)
        try:
            return data[pos : pos + n].decode("utf-8"), pos + n
        except UnicodeDecodeError:
            raise InvalidFileError(".inrz header holds bad UTF-8") from None
    if tag in (_LIST, _DICT) or _SMALL_DICT <= tag < _SMALL_INT:
        if tag in (_LIST, _DICT):
            n, pos = read_varint(data, pos, limit=len(data) - pos)  # every item takes at least one byte
        else:
            n = tag - (_SMALL_LIST if tag >= _SMALL_LIST else _SMALL_DICT)
        if tag == _LIST or tag >= _SMALL_LIST:
            items = []
            for _ in range(n):
                item, pos = _load(data, pos, depth + 1, nodes)
                items.append(item)
            return items, pos
        obj: dict[str, Any] = {}
        for _ in range(n):
            key, pos = _load(data, pos, depth + 1, nodes)
            if not isinstance(key, str) or key in obj:
                raise InvalidFileError(".inrz header has a non-string or repeated key")
            obj[key], pos = _load(data, pos, depth + 1, nodes)
        return obj, pos
    raise InvalidFileError(f".inrz header holds an unknown tag {tag}")


def _copy(v: Any) -> Any:
    """A deep copy of a loaded list/dict (repeated items are independent objects, as JSON gives)."""
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v




def read_file(path: str | os.PathLike, limit: int = INRZ_MAX_FILE) -> bytes:
    """The bytes of an ``.inrz`` file (refusing missing files and files over ``limit`` bytes)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such file")
    if path.stat().st_size > limit:
        raise InvalidFileError(f"{path}: larger than {limit} bytes, not an .inrz file")
    return path.read_bytes()

__all__ = ["KNOWN_STRINGS", "MAGIC", "VERSION", "VERSIONS", "dump_value", "load_value", "pack", "read_file", "unpack",
           "version_of", "write_version", "writing_version"]
