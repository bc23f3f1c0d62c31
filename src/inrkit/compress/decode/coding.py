"""Quantisation, support-index coding and bounded Brotli, all in NumPy.

Everything a decoder computes here is exact integer or IEEE float64 arithmetic, so
it gives the same bits on every machine.
"""
from __future__ import annotations

import math

import brotli
import numpy as np

from inrkit.errors import InvalidFileError
from inrkit.limits import INRZ_BROTLI_FREE, INRZ_BROTLI_RATIO

MAX_BITS = 16


# ------------------------------------------------------------------ quantisation
def short_float(x: float) -> float:
    """``x`` rounded to float32, as the float64 with the shortest decimal form (compact JSON)."""
    return float(repr(np.float32(x)).removeprefix("np.float32(").removesuffix(")"))


STEP_MANTISSA = 12  # significant bits of a quantiser step
LO_FRACTION = 16  # the grid's origin is a multiple of step / 16


def quantize(x: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """Uniform quantisation of ``x`` to ``bits`` bits covering ``[min, max]``.

    Returns ``(codes, lo, step)`` with ``codes`` uint8 (``bits <= 8``) or uint16, and
    ``x ~= lo + codes * step``. ``step`` has 12 significant bits (rounded up) and
    ``lo = -(z / 16) * step`` for an integer ``z`` (the largest such ``lo <= min``), so that the
    ``.inrz`` v2 header stores the pair in a few bytes; the step is a factor of at most
    ``(1 + 2**-11) * L / (L - 1/16)`` (``L = 2**bits - 1``) wider than ``(max - min) / L``: +0.15 % at
    6 bits, +6.7 % at 1 bit. A constant ``x`` gives ``step = 0``, ``lo = min`` (float32).
    """
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in [1, {MAX_BITS}], got {bits}")
    x = np.asarray(x, dtype=np.float64).ravel()
    dtype = np.uint8 if bits <= 8 else np.uint16
    if x.size == 0:
        return np.zeros(0, dtype), 0.0, 0.0
    mn, mx = float(x.min()), float(x.max())
    levels = (1 << bits) - 1
    if not mx > mn:
        return np.zeros(x.shape, dtype), short_float(mn), 0.0
    step = _round_up(max((mx - mn) / (levels - 1 / LO_FRACTION), 1e-300), STEP_MANTISSA)
    z = math.ceil(-mn * LO_FRACTION / step)
    lo = -(z / LO_FRACTION) * step
    while lo > mn:  # rounding guard: the grid starts at or below the minimum
        z += 1
        lo = -(z / LO_FRACTION) * step
    codes = np.rint((x - lo) / step).astype(np.int64)
    return np.clip(codes, 0, levels).astype(dtype), lo, step


def row_steps(w: np.ndarray, bits: int) -> np.ndarray:
    """Per-row steps that cover each row of ``w`` [out, in] with the signed codes of :func:`quantize_rows`."""
    if not 2 <= bits <= MAX_BITS:
        raise ValueError(f"per-row quantisation needs bits in [2, {MAX_BITS}], got {bits}")
    half = 1 << (bits - 1)
    w = np.asarray(w, np.float64)
    return np.maximum(w.max(axis=1) / (half - 1), -w.min(axis=1) / half).clip(min=0.0)


def row_grid(steps: np.ndarray, row_bits: int, up: bool = False) -> tuple[np.ndarray, float]:
    """Per-row steps as ``k * base``: ``(k, base)``, ``k`` in ``[1, 2**row_bits)``, ``base`` with 12 significant bits.

    ``up`` rounds each step up (no row is clipped more than its own step would), else to the nearest.
    Idempotent: steps already of the form ``k * base`` give the same ``(k, base)``.
    """
    steps = np.asarray(steps, np.float64).ravel()
    kmax = (1 << row_bits) - 1
    base = row_base(float(steps.max()) if steps.size else 0.0, row_bits)
    if not base > 0:
        return np.ones(steps.shape, np.int64), 0.0
    k = np.ceil(steps / base) if up else np.rint(steps / base)
    return np.clip(k, 1, kmax).astype(np.int64), base


def row_base(top: float, row_bits: int) -> float:
    """The unit ``base`` of per-row steps whose largest is ``top``: ``top / (2**row_bits - 1)`` rounded up to
    12 significant bits (0 when ``top`` is not positive)."""
    return _round_up(top / ((1 << row_bits) - 1), STEP_MANTISSA) if top > 0 else 0.0


def round_step(v: float) -> float:
    """A step ``v > 0`` rounded to the nearest value of 12 significant bits (a bias step of :func:`quantize_rows`)."""
    m, e = math.frexp(v)
    return math.ldexp(round(math.ldexp(m, STEP_MANTISSA)), e - STEP_MANTISSA)


def quantize_rows(w: np.ndarray, bits: int, k: np.ndarray, base: float) -> np.ndarray:
    """Codes ``c`` in ``[0, 2**bits)`` of ``w`` [out, in] with row ``r``'s step ``k[r] * base``:
    ``w[r] ~= (c - 2**(bits - 1)) * k[r] * base`` (symmetric, signed codes; see :func:`dequantize_rows`)."""
    half = 1 << (bits - 1)
    step = (np.asarray(k, np.float64) * base)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step > 0, np.rint(np.asarray(w, np.float64) / step), 0.0)
    return (np.clip(q, -half, half - 1) + half).astype(np.int64)


def dequantize_rows(codes: np.ndarray, bits: int, k: np.ndarray, base: float) -> np.ndarray:
    """float64 ``(codes - 2**(bits - 1)) * (k * base)`` per row: exact IEEE products (at most 16 + 28 bits)."""
    step = np.asarray(k, np.float64) * base
    return (np.asarray(codes, np.float64) - float(1 << (bits - 1))) * step[:, None]


def _round_up(v: float, bits: int) -> float:
    """``v > 0`` rounded up to ``bits`` significant bits."""
    m, e = math.frexp(v)
    return math.ldexp(math.ceil(math.ldexp(m, bits)), e - bits)


def dequantize(codes: np.ndarray, lo: float, step: float) -> np.ndarray:
    """float64 values ``lo + codes * step`` (exact IEEE operations)."""
    return codes.astype(np.float64) * step + lo


def code_dtype(bits: int) -> np.dtype:
    """Storage type of ``bits``-bit codes (little-endian)."""
    return np.dtype(np.uint8) if bits <= 8 else np.dtype("<u2")


# --------------------------------------------------------------- support coding
def encode_gaps(idx: np.ndarray) -> bytes:
    """Sorted support rows ``[n, s]`` as gap varints (1 byte below 128, else 2 bytes; < 2**14)."""
    idx = np.sort(np.asarray(idx, dtype=np.int64), axis=1)
    gaps = np.diff(idx, axis=1, prepend=-1) - 1  # >= 0 since indices are distinct
    gaps = gaps.ravel()
    if gaps.size and (gaps.min() < 0 or gaps.max() >= 1 << 14):
        raise ValueError("support indices must be distinct and below 2**14")
    two = gaps >= 128
    out = np.empty(gaps.size + int(two.sum()), np.uint8)
    pos = np.arange(gaps.size) + np.concatenate([[0], np.cumsum(two)[:-1]]) if gaps.size else gaps
    out[pos] = np.where(two, (gaps & 127) | 128, gaps).astype(np.uint8)
    out[pos[two] + 1] = (gaps[two] >> 7).astype(np.uint8)
    return out.tobytes()


def decode_gaps(data: bytes, n: int, s: int, k2: int) -> np.ndarray:
    """Inverse of :func:`encode_gaps`; validates counts and ranges. Returns ``[n, s]`` int64."""
    raw = np.frombuffer(data, np.uint8)
    cont = raw >= 128
    if raw.size and cont[-1]:
        raise InvalidFileError("corrupt support stream (dangling continuation byte)")
    # a value starts at every byte that does not follow a continuation byte
    starts = np.ones(raw.size, bool)
    starts[1:] = ~cont[:-1]
    if int(starts.sum()) != n * s:
        raise InvalidFileError(f"corrupt support stream: {int(starts.sum())} indices, expected {n * s}")
    first = np.flatnonzero(starts)
    vals = raw[first].astype(np.int64) & 127
    two = cont[first]
    vals[two] += raw[first[two] + 1].astype(np.int64) << 7
    idx = np.cumsum(vals.reshape(n, s) + 1, axis=1) - 1
    if idx.size and idx[:, -1].max() >= k2:
        raise InvalidFileError("corrupt support stream: atom index out of range")
    return idx


def encode_bitmask(idx: np.ndarray, k2: int) -> bytes:
    """Support rows ``[n, s]`` as an ``n x k2`` bitmask (packed, little bit order)."""
    mask = np.zeros((idx.shape[0], k2), bool)
    np.put_along_axis(mask, np.asarray(idx, np.int64), True, axis=1)
    return np.packbits(mask, axis=None, bitorder="little").tobytes()


def decode_bitmask(data: bytes, n: int, s: int, k2: int) -> np.ndarray:
    """Inverse of :func:`encode_bitmask`; every row must hold exactly ``s`` bits."""
    if len(data) != bitmask_size(n, k2):
        raise InvalidFileError("corrupt support bitmask size")
    bits = np.unpackbits(np.frombuffer(data, np.uint8), count=n * k2, bitorder="little").reshape(n, k2)
    if n and not np.all(bits.sum(axis=1) == s):
        raise InvalidFileError("corrupt support bitmask: wrong number of atoms in a row")
    return np.nonzero(bits)[1].reshape(n, s).astype(np.int64)


def bitmask_size(n: int, k2: int) -> int:
    return (n * k2 + 7) // 8


# ----------------------------------------------------------------------- brotli
def brotli_compress(data: bytes) -> bytes:
    return brotli.compress(data, quality=11)


def brotli_decompress(data: bytes, size: int, ratio: int = INRZ_BROTLI_RATIO, free: int = INRZ_BROTLI_FREE) -> bytes:
    """Decompress a Brotli stream that must expand to exactly ``size`` bytes.

    The stream is fed in 4 KiB pieces with the output capped at ``min(size, ratio * len(data) +
    free)`` (plus one byte to detect overruns): a stream that expands further, like a constant
    stream claiming more than its size allows, is refused without ever being held whole.
    """
    limit = min(size, ratio * len(data) + free)
    dec = brotli.Decompressor()
    out, pos, step = bytearray(), 0, 4096
    try:
        while not dec.is_finished() and len(out) <= limit:
            if dec.can_accept_more_data():
                if pos >= len(data):
                    break  # input exhausted, stream not finished: truncated
                piece, pos = data[pos : pos + step], pos + step
            else:
                piece = b""
            chunk = dec.process(piece, output_buffer_limit=limit + 1 - len(out))
            if not piece and not chunk:
                break  # no progress
            out += chunk
    except brotli.error as exc:
        raise InvalidFileError(f"corrupt compressed stream ({exc})") from None
    if len(out) > ratio * len(data) + free:
        raise InvalidFileError(f"compressed stream expands more than {ratio}x (a constant or crafted stream)")
    if len(out) != size or not dec.is_finished():
        raise InvalidFileError(f"compressed stream does not expand to the declared {size} bytes")
    return bytes(out)


def max_expansion(compressed: int) -> int:
    """Largest raw size accepted for a Brotli stream of ``compressed`` bytes (bomb and constant-stream guard)."""
    return INRZ_BROTLI_RATIO * compressed + INRZ_BROTLI_FREE
