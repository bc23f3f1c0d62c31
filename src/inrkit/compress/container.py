"""The ``.inrz`` container: magic, version, JSON header, payload sections, checksum.

Layout (all integers little-endian)::

    0   4 bytes  magic b"INRZ"
    4   1 byte   format version (1)
    5   4 bytes  n = length of the Brotli-compressed JSON header
    9   n bytes  header (Brotli of UTF-8 JSON; at most 1 MiB once expanded)
    .   ...      payload: the sections, back to back; header["sizes"] lists their lengths
    -4  4 bytes  CRC-32 of every byte before it

Reading checks the checksum and every length before it allocates anything; all
failures raise :class:`inrkit.errors.InvalidFileError`.
"""
from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import brotli

from inrkit.compress.coding import brotli_compress
from inrkit.errors import InvalidFileError
from inrkit.limits import INRZ_MAX_HEADER, parse_json

MAGIC = b"INRZ"
VERSION = 1
MAX_HEADER = INRZ_MAX_HEADER
_PREFIX = struct.Struct("<4sBI")
_MIN_SIZE = _PREFIX.size + 4


def pack(header: dict[str, Any], sections: list[bytes]) -> bytes:
    """Serialise ``header`` (JSON-able; ``sizes`` is filled in) and ``sections`` into ``.inrz`` bytes."""
    header = dict(header, sizes=[len(s) for s in sections])
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    head = brotli_compress(text)
    body = _PREFIX.pack(MAGIC, VERSION, len(head)) + head + b"".join(sections)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Parse ``.inrz`` bytes into ``(header, sections)``; validates structure, not meaning."""
    data = bytes(data)
    if len(data) < _MIN_SIZE:
        raise InvalidFileError(f"not an .inrz file: only {len(data)} bytes")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise InvalidFileError("not an .inrz file (bad magic bytes)")
    if version != VERSION:
        raise InvalidFileError(f"unsupported .inrz format version {version} (this reader knows {VERSION})")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise InvalidFileError(".inrz checksum mismatch: the file is truncated or altered")
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


__all__ = ["MAGIC", "VERSION", "pack", "unpack"]
