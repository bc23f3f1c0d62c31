"""Entropy coding of ``.inrz`` v2 sections: range coding (``constriction``), bit packing, Brotli or stored.

NumPy, Brotli and ``constriction`` only (no torch). Every v2 section that the v1 format Brotli-coded starts
with one method byte; the encoder tries every method that applies and keeps the smallest section:

* quantised codes (``count`` codes of ``bits`` bits): ``BROTLI`` (the v1 stream), ``PACKED`` (``bits`` bits
  per code, little bit order), ``LAPLACE`` or ``GAUSS`` (range-coded with a discretised Laplace or Gaussian
  over the ``2**bits`` codes, parameters in the section);
* other byte streams: ``STORED`` or ``BROTLI``; a stream of 1-2 byte varints below ``2**14`` (SINR's support
  gaps, :func:`inrkit.compress.decode.coding.encode_gaps`) also ``VARINTS``: the values, coded as 14-bit codes
  (``[varint count][a codes section]``), written back to the same bytes by the decoder.

**The models.** With ``n = |2 k - m2|`` for code ``k`` (``m2``: twice the mode, an integer) the weight of
``k`` is ``T[n]``, ``T[n] = R**n`` (Laplace) or ``T[n] = R**(n*n)`` (Gaussian), where
``R = 1 - mant * 2**-(8 + e)`` is exact in float64 (``mant`` in [128, 255], ``e`` in [0, 40], stored as
one 16-bit word). ``T`` is built by running products (``numpy.multiply.accumulate``, sequential IEEE
multiplications; no ``exp`` or ``pow``, whose last bits vary between machines), entries below ``2**-100``
are set to 0 (so subnormal handling never matters); ``constriction.stream.model.Categorical(T,
perfect=False)`` turns the weights into a 24-bit fixed-point table (IEEE arithmetic, every code keeps a
nonzero probability) and its range coder is integer arithmetic: decoding gives the same codes on every
machine. A section is ``[method][param u16 LE][varint m2][range-coder words, big-endian, trailing bytes
the decoder does not need removed]``; the decoder pads with zero bytes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from inrkit.compress.decode import coding
from inrkit.errors import InvalidFileError

STORED, BROTLI, PACKED, LAPLACE, GAUSS, VARINTS = 0, 1, 2, 3, 4, 5
METHOD_NAMES = {STORED: "stored", BROTLI: "brotli", PACKED: "packed", LAPLACE: "laplace", GAUSS: "gauss",
                VARINTS: "varints"}
VARINT_BITS = 14  # values of a VARINTS stream (SINR's support gaps) are below 2**14
_MAX_E = 40
_TINY = 2.0 ** -100
_CHUNK = 1024


# ------------------------------------------------------------------ varints
def write_varint(n: int) -> bytes:
    """Unsigned LEB128."""
    if n < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, n = n & 127, n >> 7
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes, pos: int, limit: int = 1 << 64) -> tuple[int, int]:
    """An unsigned LEB128 at ``pos`` (at most 10 bytes, value <= ``limit``); returns ``(value, next pos)``."""
    value = shift = 0
    for i in range(10):
        if pos + i >= len(data):
            raise InvalidFileError("truncated varint in .inrz data")
        byte = data[pos + i]
        value |= (byte & 127) << shift
        shift += 7
        if not byte & 128:
            if value > limit or (byte == 0 and i > 0):
                raise InvalidFileError("out-of-range or non-minimal varint in .inrz data")
            return value, pos + i + 1
    raise InvalidFileError("overlong varint in .inrz data")


# ------------------------------------------------------------------ models
def ratio(param: int) -> float:
    """``R = 1 - mant * 2**-(8 + e)`` for the 16-bit ``param = e << 8 | mant``."""
    e, mant = param >> 8, param & 255
    if mant < 128 or e > _MAX_E:
        raise InvalidFileError("invalid entropy-model parameter in .inrz section")
    return 1.0 - math.ldexp(mant, -(8 + e))


def param_for(one_minus_r: float) -> int:
    """The 16-bit parameter whose ``1 - R`` is nearest (relatively) to ``one_minus_r`` (clipped to the range)."""
    one_minus_r = min(max(one_minus_r, 2.0 ** -(_MAX_E + 1)), 255 / 256)
    m, e = math.frexp(one_minus_r)  # one_minus_r = m * 2**e, m in [0.5, 1)
    mant, e = round(m * 256), -e
    if mant == 256:
        mant, e = 128, e - 1
    e = min(max(e, 0), _MAX_E)
    return e << 8 | mant


def model_weights(method: int, param: int, m2: int, alphabet: int) -> np.ndarray:
    """The (unnormalised) float64 weights of the ``alphabet`` codes; bit-identical on every machine."""
    r = ratio(param)
    if method not in (LAPLACE, GAUSS):
        raise ValueError(method)
    n = 2 * alphabet + 1
    table = np.zeros(n)
    # T[0] = 1, T[i] = T[i-1] * step_i with step_i = R (Laplace) or R**(2i-1) = R**(2i-3) * R*R (Gaussian),
    # in chunks that continue the same sequential products (bit-identical to one pass); it stops once T
    # is below 2**-100 (T only decreases), as those entries are set to 0 anyway
    last, odd_last, chunk = 1.0, 0.0, _CHUNK
    table[0] = 1.0
    for start in range(1, n, chunk):
        size = min(chunk, n - start)
        if method == LAPLACE:
            steps = np.full(size, r)
        else:
            odd = np.full(size, r * r)
            odd[0] = r if start == 1 else odd[0] * odd_last
            steps = np.multiply.accumulate(odd)
            odd_last = steps[-1]
        steps[0] *= last
        table[start : start + size] = np.multiply.accumulate(steps)
        last = table[start + size - 1]
        if last < _TINY:
            break
    table[table < _TINY] = 0.0
    k = np.arange(alphabet)
    return table[np.abs(2 * k - m2)]


def _categorical(weights: np.ndarray) -> Any:
    import constriction

    return constriction.stream.model.Categorical(weights, perfect=False)


def _range_encode(codes: np.ndarray, model: Any) -> bytes:
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(codes.astype(np.int32), model)
    return enc.get_compressed().astype(">u4").tobytes()


def _range_decode(data: bytes, count: int, model: Any) -> np.ndarray:
    import constriction

    words = np.frombuffer(data + b"\0" * (-len(data) % 4), ">u4").astype(np.uint32)
    try:
        out = constriction.stream.queue.RangeDecoder(words).decode(model, count)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # noqa: BLE001 - constriction raises AssertionError or a Rust panic
        raise InvalidFileError(f"corrupt range-coded .inrz section ({type(exc).__name__})") from None
    return np.asarray(out, np.int64)


# ------------------------------------------------------------------ quantised codes
def _packed(codes: np.ndarray, bits: int) -> bytes:
    b = ((codes.astype(np.uint32)[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(b.ravel(), bitorder="little").tobytes()


def _unpacked(data: bytes, count: int, bits: int) -> np.ndarray:
    if len(data) != (count * bits + 7) // 8:
        raise InvalidFileError(f"bit-packed .inrz section has {len(data)} bytes, expected {(count * bits + 7) // 8}")
    b = np.unpackbits(np.frombuffer(data, np.uint8), count=count * bits, bitorder="little").reshape(count, bits)
    return (b.astype(np.int64) << np.arange(bits)).sum(axis=1)


def _candidates(codes: np.ndarray, alphabet: int) -> list[tuple[float, int, int, int]]:
    """``(estimated bits, method, param, m2)`` of the parametric models around the moment estimates."""
    counts = np.bincount(codes, minlength=alphabet).astype(np.float64)
    x = codes.astype(np.float64)
    med, mean = float(np.median(x)), float(x.mean())
    mode2 = sorted({min(max(int(v), 0), 2 * alphabet - 2) for v in
                    (round(2 * med), round(2 * mean), round(2 * med) - 1, round(2 * med) + 1)})
    nz = counts > 0
    out = []
    for m2 in mode2:
        dev = np.abs(x - m2 / 2)
        b = max(float(dev.mean()), 0.05)  # Laplace scale (codes)
        s = max(float(np.sqrt((dev ** 2).mean())), 0.05)  # Gaussian sigma (codes)
        for method, base in ((LAPLACE, 1 / (2 * b)), (GAUSS, 1 / (8 * s * s))):
            for i in range(-4, 5):
                param = param_for(-math.expm1(-base * 2.0 ** (i / 3)))
                w = model_weights(method, param, m2, alphabet)
                total = w.sum()
                if total <= 0:
                    continue
                p = np.maximum(w[nz] / total, 2.0 ** -24)
                out.append((float(-(counts[nz] * np.log2(p)).sum()), method, param, m2))
    return sorted(out)


def encode_codes(codes: np.ndarray, bits: int, *, range_coding: bool = True) -> bytes:
    """A v2 section for ``codes`` (integers in ``[0, 2**bits)``): the smallest of every applicable method."""
    codes = np.asarray(codes, np.int64).ravel()
    alphabet = 1 << bits
    raw = codes.astype(coding.code_dtype(bits)).tobytes()
    options = [bytes([PACKED]) + _packed(codes, bits)]
    br = coding.brotli_compress(raw)
    if len(raw) <= coding.max_expansion(len(br)):
        options.append(bytes([BROTLI]) + br)
    if range_coding and codes.size:
        for _, method, param, m2 in _candidates(codes, alphabet)[:2]:
            model = _categorical(model_weights(method, param, m2, alphabet))
            head = bytes([method]) + param.to_bytes(2, "little") + write_varint(m2)
            options.append(head + _trimmed(codes, model))
    return min(options, key=len)


def _trimmed(codes: np.ndarray, model: Any) -> bytes:
    """The range-coded words without the trailing bytes decoding does not need (checked by decoding)."""
    data = _range_encode(codes, model)
    keep = len(data)
    for cut in range(1, min(len(data), 8) + 1):
        try:
            if np.array_equal(_range_decode(data[: len(data) - cut], codes.size, model), codes):
                keep = len(data) - cut
                continue
        except InvalidFileError:
            pass
        break
    return data[:keep]


def decode_codes(section: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`encode_codes`: ``count`` codes (int64, each below ``2**bits``)."""
    if not section:
        raise InvalidFileError("empty .inrz section")
    method, body = section[0], section[1:]
    if method == PACKED:
        return _unpacked(body, count, bits)
    if method == BROTLI:
        dt = coding.code_dtype(bits)
        if count * dt.itemsize > coding.max_expansion(len(body)):
            raise InvalidFileError("Brotli-coded .inrz section claims an implausible size")
        codes = np.frombuffer(coding.brotli_decompress(body, count * dt.itemsize), dt).astype(np.int64)
        if codes.size and int(codes.max()) >= 1 << bits:
            raise InvalidFileError("quantised code above its bit depth")
        return codes
    if method in (LAPLACE, GAUSS):
        if len(body) < 3:
            raise InvalidFileError("truncated range-coded .inrz section")
        param = int.from_bytes(body[:2], "little")
        m2, pos = read_varint(body, 2, limit=(2 << bits) - 2)
        if count == 0:
            return np.zeros(0, np.int64)
        model = _categorical(model_weights(method, param, m2, 1 << bits))
        return _range_decode(body[pos:], count, model)
    raise InvalidFileError(f"unknown coding method {method} in a quantised .inrz section")


# ------------------------------------------------------------------ byte streams
def encode_bytes(raw: bytes, varints: bool = False) -> bytes:
    """A v2 section for a byte stream: the smallest of stored, Brotli (within the ratio guard) and, with
    ``varints`` (``raw`` is a stream of 1-2 byte varints, e.g. support gaps), the values range-coded."""
    options = [bytes([STORED]) + raw]
    br = coding.brotli_compress(raw)
    if len(raw) <= coding.max_expansion(len(br)):
        options.append(bytes([BROTLI]) + br)
    if varints and raw:
        values = _parse_varints(raw)
        options.append(bytes([VARINTS]) + write_varint(values.size) + encode_codes(values, VARINT_BITS))
    return min(options, key=len)


def _parse_varints(raw: bytes) -> np.ndarray:
    """The values of a stream of 1-2 byte varints (the format of :func:`inrkit.compress.decode.coding.encode_gaps`)."""
    data = np.frombuffer(raw, np.uint8)
    cont = data >= 128
    if cont[-1]:
        raise ValueError("dangling continuation byte")
    starts = np.ones(data.size, bool)
    starts[1:] = ~cont[:-1]
    first = np.flatnonzero(starts)
    vals = data[first].astype(np.int64) & 127
    two = cont[first]
    vals[two] += data[first[two] + 1].astype(np.int64) << 7
    return vals


def _varint_bytes(values: np.ndarray) -> bytes:
    """Inverse of :func:`_parse_varints` (values below ``2**14``)."""
    two = values >= 128
    out = np.empty(values.size + int(two.sum()), np.uint8)
    pos = np.arange(values.size) + np.concatenate([[0], np.cumsum(two)[:-1]]).astype(np.int64)
    out[pos] = np.where(two, (values & 127) | 128, values).astype(np.uint8)
    out[pos[two] + 1] = (values[two] >> 7).astype(np.uint8)
    return out.tobytes()


def decode_bytes(section: bytes, size: int) -> bytes:
    """Inverse of :func:`encode_bytes`, expanding to exactly ``size`` bytes."""
    if not section:
        raise InvalidFileError("empty .inrz section")
    method, body = section[0], section[1:]
    if method == STORED:
        if len(body) != size:
            raise InvalidFileError(f"stored .inrz section has {len(body)} bytes, expected {size}")
        return body
    if method == BROTLI:
        if size > coding.max_expansion(len(body)):
            raise InvalidFileError("Brotli-coded .inrz section claims an implausible size")
        return coding.brotli_decompress(body, size)
    if method == VARINTS:
        count, pos = read_varint(body, 0, limit=size)  # every varint takes at least one byte
        if count == 0 or count * 2 < size:
            raise InvalidFileError("range-coded varint .inrz section has the wrong count")
        raw = _varint_bytes(decode_codes(body[pos:], count, VARINT_BITS))
        if len(raw) != size:
            raise InvalidFileError(f"range-coded varint .inrz section gives {len(raw)} bytes, expected {size}")
        return raw
    raise InvalidFileError(f"unknown coding method {method} in an .inrz section")


def section_method(section: bytes) -> str:
    """Name of a v2 section's coding method (for reports)."""
    return METHOD_NAMES.get(section[0], "?") if section else "?"


__all__ = ["BROTLI", "GAUSS", "LAPLACE", "PACKED", "STORED", "decode_bytes", "decode_codes", "encode_bytes",
           "encode_codes", "model_weights", "read_varint", "write_varint"]
