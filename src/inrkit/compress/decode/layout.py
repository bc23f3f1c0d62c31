"""Building blocks of the ``.inrz`` payload shared by the codecs, the decoder and the encoder.

NumPy and the standard library only: the SINR options and sparse-code types, how a
weight matrix is cut into vectors, the reconstruction ``A[:, idx] @ coef`` in a fixed
order, quantised sections, and the checked reader of header fields and sections.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from inrkit.compress.decode import coding, entropy
from inrkit.compress.decode.container import write_version
from inrkit.compress.decode.dictionary import sensing_matrix
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import INRZ_MAX_DICT, MAX_OVERCOMPLETE

if TYPE_CHECKING:
    from inrkit.models.mlp import MLP

FORMAT = "inrz-mlp"
TINY_INPUTS = 50  # layers with fewer inputs are coded as flattened blocks (as the paper)
MAX_LAYERS = 64
MAX_WIDTH = 1 << 16
MAX_PARAMS = 1 << 25
MAX_DICT = INRZ_MAX_DICT  # k1 * k2 entries of one dictionary
MAX_K2 = 1 << 14
_RECON_BLOCK = 1 << 15  # float64 values per block of the reconstruction


@dataclass
class SinrOptions:
    """Parameters of the ``sinr`` codec.

    Args:
        sparsity: atoms per vector, as a fraction of ``k1`` (< 1) or a count (>= 1);
            clipped so that ``2 s < k1``.
        bits: bit depth of the sparse coefficients.
        dense_bits: bit depth of biases, the last layer and layers too small to code
            (default ``min(16, bits + 2)``).
        overcomplete: ``k2 / k1`` (dictionary redundancy), ``k2 < 2**14``.
        block: vector length for layers with fewer than 50 inputs.
        seed: dictionary seed.
        code_first: also sparse-code the first layer (as the paper); by default it is
            kept as quantised values, since its errors are amplified by ``omega_0``.
    """

    sparsity: float = 0.4
    bits: int = 8
    dense_bits: int | None = None
    overcomplete: float = 8.0
    block: int = 64
    seed: int = 0
    code_first: bool = False

    def __post_init__(self) -> None:
        check_bits(self.bits, self.dense_bits)
        if not self.sparsity > 0 or self.block < 8 or self.seed < 0:
            raise InvalidInputError("need sparsity > 0, block >= 8 and a non-negative seed")
        if not 1 <= self.overcomplete <= MAX_OVERCOMPLETE:
            raise InvalidInputError(f"overcomplete must be in [1, {MAX_OVERCOMPLETE:g}], got {self.overcomplete:g}")

    def atoms(self, k1: int) -> int:
        """Atoms per vector of length ``k1``."""
        s = round(self.sparsity * k1) if self.sparsity < 1 else int(self.sparsity)
        return int(min(max(s, 1), (k1 - 1) // 2))

    def dense(self) -> int:
        """Bit depth of the dense (quantised, not sparse-coded) tensors."""
        return int(self.dense_bits if self.dense_bits is not None else min(16, self.bits + 2))


def check_bits(*bits: int | None) -> None:
    """Raise :class:`InvalidInputError` unless every given bit depth is in ``[1, 16]``."""
    if any(b is not None and not 1 <= int(b) <= coding.MAX_BITS for b in bits):
        raise InvalidInputError(f"bit depths must be in [1, {coding.MAX_BITS}]")


@dataclass
class SparseLayer:
    """Sparse code of one weight matrix: ``vectors[b] ~= A[:, idx[b]] @ coef[b]``."""

    mode: str  # "rows" or "blocks"
    k1: int
    k2: int
    idx: np.ndarray  # [n, s] sorted atom indices
    coef: np.ndarray  # [n, s] float64


@dataclass
class DecodeWork:
    """What decoding a file will cost, read from its header before any section is expanded.

    Attributes:
        values: numbers decoded from the sections (weights, biases, sparse coefficients).
        dictionaries: the distinct SINR dictionaries ``(k1, k2)`` it needs.
        recon: multiply-adds of the sparse reconstruction (``vectors x s x k1 + vectors x k2``).
    """

    values: int = 0
    dictionaries: set[tuple[int, int]] = field(default_factory=set)
    recon: int = 0


@dataclass
class SparseModel:
    """A model whose hidden weight matrices are sparse-coded (``None`` = kept dense)."""

    model: MLP
    layers: list[SparseLayer | None]
    options: SinrOptions
    extra: dict = field(default_factory=dict)


@dataclass
class RowModel:
    """A model with per-row weight steps (from quantisation-aware training, or ``None``: each row's range).

    Attributes:
        model: the network; after QAT its weights are the quantised values the steps give.
        steps: per weight matrix, its rows' steps (float64 ``[out]``), or ``None`` (per tensor or row range).
        bits: the bit depth the steps were learned for (``None``: not learned).
        bias_steps: per bias, its learned step (signed codes, :func:`bias_section`), or ``None``.
    """

    model: MLP
    steps: list[np.ndarray] | None = None
    bits: int | None = None
    bias_steps: list[float] | None = None


# ------------------------------------------------------------------ vectors
def split_vectors(w: np.ndarray, opts: SinrOptions) -> tuple[str, int, np.ndarray] | None:
    """Vectors to code for ``w`` [out, in]: ``(mode, k1, vectors)``, or None to keep it dense."""
    out, inp = w.shape
    if inp >= TINY_INPUTS:
        return "rows", inp, w
    k1 = min(opts.block, w.size)
    if k1 < 8:
        return None
    flat = np.zeros(math.ceil(w.size / k1) * k1)
    flat[: w.size] = w.ravel()
    return "blocks", k1, flat.reshape(-1, k1)


def atoms_in_dictionary(k1: int, opts: SinrOptions) -> int:
    """``k2`` for vectors of length ``k1``."""
    return int(min(max(k1, round(opts.overcomplete * k1)), MAX_K2 - 1))


def reconstruct(layer: SparseLayer, coef: np.ndarray, seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Weights [out, in] (float64) from a sparse code, summed atom by atom in a fixed order."""
    atoms = np.ascontiguousarray(sensing_matrix(layer.k1, layer.k2, seed).T)  # [k2, k1]
    n, s = layer.idx.shape
    vec = np.zeros((n, layer.k1))
    idx_t = np.ascontiguousarray(layer.idx.T)
    coef_t = np.ascontiguousarray(np.asarray(coef, np.float64).T)[:, :, None]
    rows = max(1, _RECON_BLOCK // layer.k1)  # a block of vectors stays in cache across the s atoms
    term = np.empty((min(rows, n), layer.k1))
    for r0 in range(0, n, rows):
        block = vec[r0 : r0 + rows]
        part = term[: len(block)]
        for j in range(s):  # block + coef_j * atom_j, in place: the same IEEE operations in the same order
            np.take(atoms, idx_t[j, r0 : r0 + rows], axis=0, out=part, mode="clip")  # indices checked < k2
            part *= coef_t[j, r0 : r0 + rows]
            block += part
    return vec.ravel()[: shape[0] * shape[1]].reshape(shape)


# ------------------------------------------------------------------ writing
def as_array(t: Any) -> np.ndarray:
    """A torch tensor (or array) as a float64 NumPy array."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64)


def quant_section(x: np.ndarray, bits: int) -> tuple[bytes, list[float]]:
    """``x`` quantised to ``bits`` bits and entropy-coded; returns the section and ``[lo, step]``.

    Version 2 (:func:`inrkit.compress.decode.container.write_version`) keeps the smallest of range coding, bit
    packing and Brotli (:func:`inrkit.compress.decode.entropy.encode_codes`); version 1 Brotli-codes the codes.
    """
    codes, lo, step = coding.quantize(x, bits)
    return codes_section(codes, bits), [lo, step]


def codes_section(codes: np.ndarray, bits: int) -> bytes:
    """Integer codes in ``[0, 2**bits)`` as a section: v2 :func:`~inrkit.compress.decode.entropy.encode_codes`,
    v1 Brotli."""
    if write_version() >= 2:
        return entropy.encode_codes(codes, bits)
    return coded_section(np.asarray(codes).astype(coding.code_dtype(bits)).tobytes())


def row_sections(w: np.ndarray, bits: int, row_bits: int, steps: np.ndarray | None) -> tuple[list[bytes], float]:
    """``w`` [out, in] quantised with one step per row: ``[row step codes, weight codes]`` and ``base``.

    Args:
        w: the weight matrix.
        bits: bit depth of the weights (signed codes, :func:`inrkit.compress.decode.coding.quantize_rows`).
        row_bits: bit depth of the step multipliers ``k`` (row ``r``'s step is ``k[r] * base``).
        steps: the rows' steps (e.g. learned by QAT; put on the grid to the nearest); ``None``: each row's range.
    """
    if steps is None:
        k, base = coding.row_grid(coding.row_steps(w, bits), row_bits, up=True)
    else:
        k, base = coding.row_grid(steps, row_bits)
    codes = coding.quantize_rows(w, bits, k, base)
    return [codes_section(k - 1, row_bits), codes_section(codes, bits)], base


def byte_section(raw: bytes, varints: bool = False) -> bytes:
    """A byte stream as a section: v2 the smallest of stored, Brotli and (``varints``: a stream of gap
    varints) range-coded values (:func:`~inrkit.compress.decode.entropy.encode_bytes`); v1 Brotli
    (:func:`coded_section`)."""
    if write_version() >= 2:
        return entropy.encode_bytes(raw, varints)
    return coded_section(raw)


def bias_section(b: np.ndarray, bits: int, step: float | None) -> tuple[bytes, list[float]]:
    """A bias quantised with a given (learned) ``step`` (signed codes: ``lo = -2**(bits - 1) * step``), stored as
    :func:`quant_section` stores it; ``step`` ``None`` or not positive: :func:`quant_section`."""
    if step is None or not step > 0:
        return quant_section(b, bits)
    codes = coding.quantize_rows(np.asarray(b, np.float64)[None], bits, np.ones(1, np.int64), step)[0]
    return codes_section(codes, bits), [-float(1 << (bits - 1)) * step, step]


def coded_section(raw: bytes) -> bytes:
    """``raw`` Brotli-coded; refuses (``InvalidInputError``) a stream the decoder's ratio guard would refuse."""
    out = coding.brotli_compress(raw)
    if len(raw) > coding.max_expansion(len(out)):
        raise InvalidInputError(f"a tensor of {len(raw)} bytes compresses to {len(out)} (nearly constant): "
                                "beyond the .inrz decoder's expansion guard (docs/limits.md)")
    return out


def architecture(model: MLP) -> dict[str, Any]:
    """The ``model`` record of the header."""
    fourier = None if model.fourier is None else list(as_array(model.fourier).shape)
    arch = {"widths": model.widths, "activations": model.activations, "omegas": model.omegas, "fourier": fourier}
    encoding = getattr(model, "encoding", None)
    if encoding is not None:  # a grid encoding: its config and table shape (the table is a section)
        arch["encoding"] = {"type": "grid", **encoding.config.to_dict(), "rows": int(encoding.table.shape[0])}
    return arch


def table_section(model: MLP, bits: int | None) -> tuple[list[bytes], Any]:
    """A grid encoding's table as one section: quantised to ``bits`` bits and Brotli-coded, or raw float16
    (``bits`` None); returns the sections (none without a grid) and the quantiser ``[lo, step]`` (or None)."""
    encoding = getattr(model, "encoding", None)
    if encoding is None:
        return [], None
    table = as_array(encoding.table).ravel()
    if bits is None:
        return [table.astype("<f2").tobytes()], None
    sec, q = quant_section(table, bits)
    return [sec], q


def fourier_sections(model: MLP) -> list[bytes]:
    """The Fourier-feature matrix as raw float32 (the last section), if the model has one."""
    if model.fourier is None:
        return []
    return [as_array(model.fourier).astype("<f4").tobytes()]


# ------------------------------------------------------------------ reading
def bad(msg: str) -> InvalidFileError:
    """The error for an invalid header field."""
    return InvalidFileError(f"invalid .inrz header: {msg}")


def read_int(obj: Any, key: str, lo: int, hi: int, where: str) -> int:
    """``obj[key]``, which must be an integer in ``[lo, hi]``."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if type(v) is not int or not lo <= v <= hi:
        raise bad(f"{where}.{key} must be an integer in [{lo}, {hi}]")
    return v


def read_float(obj: Any, key: str, hi: float, where: str) -> float:
    """``obj[key]``, which must be a finite number in ``[0, hi)``."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 <= v < hi and math.isfinite(v)):
        raise bad(f"{where}.{key} must be a number in [0, {hi:g})")
    return float(v)


def read_qparams(obj: Any, key: str, where: str) -> tuple[float, float]:
    """The quantiser ``[lo, step]`` stored as ``obj[key]``."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if not (isinstance(v, list) and len(v) == 2 and all(type(x) in (int, float) for x in v)):
        raise bad(f"{where}.{key} must be [lo, step]")
    lo, step = float(v[0]), float(v[1])
    if not (math.isfinite(lo) and math.isfinite(step) and step >= 0 and abs(lo) < 1e30 and step < 1e30):
        raise bad(f"{where}.{key} holds out-of-range numbers")
    return lo, step


class Sections:
    """Hands out payload sections in order, checking sizes before decompressing.

    Args:
        sections: the payload sections of the container.
        version: the container version (2: coded sections start with a method byte).
    """

    def __init__(self, sections: list[bytes], version: int = 1) -> None:
        self.sections, self.pos, self.version = sections, 0, version

    def _take(self) -> bytes:
        if self.pos >= len(self.sections):
            raise bad("fewer payload sections than the layers need")
        self.pos += 1
        return self.sections[self.pos - 1]

    def next(self, raw_size: int, compressed: bool = True) -> bytes:
        """The next section, expanded to exactly ``raw_size`` bytes."""
        data = self._take()
        if not compressed:
            if len(data) != raw_size:
                raise InvalidFileError(f"payload section {self.pos - 1} has {len(data)} bytes, expected {raw_size}")
            return data
        if self.version >= 2:
            return entropy.decode_bytes(data, raw_size)
        if raw_size > coding.max_expansion(len(data)):
            raise InvalidFileError(f"payload section {self.pos - 1} claims an implausible size")
        return coding.brotli_decompress(data, raw_size)

    def quantised(self, count: int, bits: int, q: tuple[float, float]) -> np.ndarray:
        """The next section as ``count`` dequantised float64 values."""
        if self.version >= 2:
            return coding.dequantize(entropy.decode_codes(self._take(), count, bits), *q)
        dt = coding.code_dtype(bits)
        codes = np.frombuffer(self.next(count * dt.itemsize), dt)
        if codes.size and int(codes.max()) >= 1 << bits:
            raise InvalidFileError("quantised code above its bit depth")
        return coding.dequantize(codes, *q)

    def rows(self, shape: tuple[int, int], bits: int, row_bits: int, base: float) -> np.ndarray:
        """The next two sections (row step codes, weight codes) as a per-row quantised ``shape`` matrix."""
        k = self.quantised(shape[0], row_bits, (1.0, 1.0))  # k - 1 is stored: k in [1, 2**row_bits]
        codes = self.quantised(shape[0] * shape[1], bits, (0.0, 1.0)).reshape(shape)
        return coding.dequantize_rows(codes, bits, k, base)

    def raw(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """The next (uncompressed) section as an array of ``shape`` and little-endian ``dtype``."""
        dt = np.dtype(dtype)
        return np.frombuffer(self.next(dt.itemsize * math.prod(shape), compressed=False), dt).reshape(shape)

    def done(self) -> None:
        """Check that every section was used."""
        if self.pos != len(self.sections):
            raise bad("more payload sections than the layers need")
