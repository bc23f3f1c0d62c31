"""The three codecs on :class:`inrkit.models.MLP`: ``sinr``, ``quant`` and ``coin``.

* ``sinr`` (SINR, arXiv 2503.19576): every weight matrix but the last is cut into
  vectors of length ``k1`` (its rows, or flattened blocks of ``block`` values for layers
  with fewer than 50 inputs); each vector is sparse-coded with ``s`` atoms of the seeded
  Gaussian dictionary ``A`` (``k1 x k2``) by OMP; the coefficients are quantised to
  ``bits`` bits, the supports stored as sorted gaps or bitmasks (whichever is smaller),
  biases and the last layer quantised to ``dense_bits``; every stream is Brotli-coded.
* ``quant``: every tensor uniformly quantised to ``bits`` bits, Brotli-coded.
* ``coin``: every tensor in float16, no entropy coding (COIN, Dupont et al. 2021).

Decoding is exact float64 NumPy arithmetic in a fixed order, then a cast to float32,
so the decoded weights are the same bits on every machine and device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InvalidFileError, InvalidInputError
from ..models import MLP
from ..models.mlp import ACTIVATIONS
from . import coding
from .container import pack, unpack
from .dictionary import GENERATOR_NAME, sensing_matrix
from .omp import omp

CODECS = ("sinr", "quant", "coin")
FORMAT = "inrz-mlp"
TINY_INPUTS = 50  # layers with fewer inputs are coded as flattened blocks (as the paper)
MAX_LAYERS = 64
MAX_WIDTH = 1 << 16
MAX_PARAMS = 1 << 25
MAX_DICT = 1 << 24  # k1 * k2 entries
MAX_K2 = 1 << 14


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

    def atoms(self, k1: int) -> int:
        s = round(self.sparsity * k1) if self.sparsity < 1 else int(self.sparsity)
        return int(min(max(s, 1), (k1 - 1) // 2))

    def dense(self) -> int:
        return int(self.dense_bits if self.dense_bits is not None else min(16, self.bits + 2))


@dataclass
class SparseLayer:
    """Sparse code of one weight matrix: ``vectors[b] ~= A[:, idx[b]] @ coef[b]``."""

    mode: str  # "rows" or "blocks"
    k1: int
    k2: int
    idx: np.ndarray  # [n, s] sorted atom indices
    coef: np.ndarray  # [n, s] float64


@dataclass
class SparseModel:
    """A model whose hidden weight matrices are sparse-coded (``None`` = kept dense)."""

    model: MLP
    layers: list[SparseLayer | None]
    options: SinrOptions
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------ helpers
def _tensor(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _split(w: np.ndarray, opts: SinrOptions) -> tuple[str, int, np.ndarray] | None:
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


def _k2(k1: int, opts: SinrOptions) -> int:
    return int(min(max(k1, round(opts.overcomplete * k1)), MAX_K2 - 1))


def reconstruct(layer: SparseLayer, coef: np.ndarray, seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Weights [out, in] (float64) from a sparse code, summed atom by atom in a fixed order."""
    atoms = sensing_matrix(layer.k1, layer.k2, seed).T  # [k2, k1]
    vec = np.zeros((layer.idx.shape[0], layer.k1))
    for j in range(layer.idx.shape[1]):
        vec = vec + coef[:, j : j + 1] * atoms[layer.idx[:, j]]
    return vec.ravel()[: shape[0] * shape[1]].reshape(shape)


# ------------------------------------------------------------------ sparse coding
def sparse_code(model: MLP, options: SinrOptions | None = None, device: str | torch.device | None = None) -> SparseModel:
    """Sparse-code every weight matrix but the last with batched OMP (the SINR transform)."""
    opts = options or SinrOptions()
    layers: list[SparseLayer | None] = []
    for i in range(model.num_layers - 1):
        split = _split(_tensor(model.weights[i]), opts) if (i > 0 or opts.code_first) else None
        if split is None:
            layers.append(None)
            continue
        mode, k1, vectors = split
        s, k2 = opts.atoms(k1), _k2(k1, opts)
        if s < 1 or k1 < 3:
            layers.append(None)
            continue
        idx, coef = omp(sensing_matrix(k1, k2, opts.seed), vectors, s, device=device)
        idx, coef = idx.cpu().numpy(), coef.cpu().double().numpy()
        order = np.argsort(idx, axis=1)
        layers.append(SparseLayer(mode, k1, k2, np.take_along_axis(idx, order, 1), np.take_along_axis(coef, order, 1)))
    return SparseModel(model, layers, opts)


# ------------------------------------------------------------------ serialisation
def _arch(model: MLP) -> dict[str, Any]:
    fourier = None if model.fourier is None else list(model.fourier.shape)
    return {"widths": model.widths, "activations": model.activations, "omegas": model.omegas, "fourier": fourier}


def _quant_section(x: np.ndarray, bits: int) -> tuple[bytes, list[float]]:
    codes, lo, step = coding.quantize(x, bits)
    return coding.brotli_compress(codes.astype(coding.code_dtype(bits)).tobytes()), [lo, step]


def _fourier_section(model: MLP) -> list[bytes]:
    if model.fourier is None:
        return []
    return [model.fourier.detach().cpu().float().numpy().astype("<f4").tobytes()]


def _header(codec: str, model: MLP, params: dict, layers: list, signal: dict | None, extra: dict | None) -> dict:
    return {"format": FORMAT, "codec": codec, "model": _arch(model), "params": params,
            "layers": layers, "signal": signal or {}, "extra": extra or {}}


def encode_sinr(code: SparseModel, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Quantise and entropy-code a :class:`SparseModel` into ``.inrz`` bytes."""
    opts, model = code.options, code.model
    bits, dbits = int(opts.bits), opts.dense()
    sections, records = [], []
    n = model.num_layers
    for i in range(n):
        rec: dict[str, Any] = {}
        layer = code.layers[i] if i < n - 1 else None
        if layer is None:
            sec, rec["w"] = _quant_section(_tensor(model.weights[i]), dbits)
            sections.append(sec)
        else:
            gaps = coding.encode_gaps(layer.idx)
            cand = {"gaps": (coding.brotli_compress(gaps), len(gaps)),
                    "bitmask": (coding.brotli_compress(coding.encode_bitmask(layer.idx, layer.k2)),
                                coding.bitmask_size(layer.idx.shape[0], layer.k2))}
            kind = min(cand, key=lambda k: len(cand[k][0]))
            coef_sec, rec["coef"] = _quant_section(layer.coef, bits)
            rec.update(mode=layer.mode, k1=layer.k1, k2=layer.k2, s=int(layer.idx.shape[1]), support=kind)
            if kind == "gaps":
                rec["support_bytes"] = cand[kind][1]
            sections += [cand[kind][0], coef_sec]
        sec, rec["b"] = _quant_section(_tensor(model.biases[i]), dbits)
        sections.append(sec)
        records.append(rec)
    params = {"bits": bits, "dense_bits": dbits, "seed": int(opts.seed), "generator": GENERATOR_NAME}
    return pack(_header("sinr", model, params, records, signal, extra), sections + _fourier_section(model))


def encode_quant(model: MLP, bits: int = 8, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Uniform ``bits``-bit quantisation of every tensor, Brotli-coded (INRIC-style baseline)."""
    sections, records = [], []
    for w, b in zip(model.weights, model.biases):
        sw, qw = _quant_section(_tensor(w), bits)
        sb, qb = _quant_section(_tensor(b), bits)
        sections += [sw, sb]
        records.append({"w": qw, "b": qb})
    return pack(_header("quant", model, {"bits": int(bits)}, records, signal, extra), sections + _fourier_section(model))


def encode_coin(model: MLP, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Every tensor as raw float16, no entropy coding (COIN)."""
    sections = []
    for w, b in zip(model.weights, model.biases):
        sections += [_tensor(w).astype("<f2").tobytes(), _tensor(b).astype("<f2").tobytes()]
    records = [{} for _ in range(model.num_layers)]
    return pack(_header("coin", model, {}, records, signal, extra), sections + _fourier_section(model))


def compress_model(
    model: MLP,
    codec: str = "sinr",
    *,
    sparsity: float = 0.4,
    bits: int = 8,
    dense_bits: int | None = None,
    overcomplete: float = 8.0,
    block: int = 64,
    seed: int = 0,
    code_first: bool = False,
    signal: dict | None = None,
    extra: dict | None = None,
    device: str | torch.device | None = None,
) -> bytes:
    """Compress ``model`` with ``codec`` (``sinr``, ``quant`` or ``coin``) into ``.inrz`` bytes."""
    if codec not in CODECS:
        raise InvalidInputError(f"unknown codec {codec!r}; choose from {list(CODECS)}")
    if not 1 <= bits <= coding.MAX_BITS or (dense_bits is not None and not 1 <= dense_bits <= coding.MAX_BITS):
        raise InvalidInputError(f"bit depths must be in [1, {coding.MAX_BITS}]")
    if codec == "coin":
        return encode_coin(model, signal, extra)
    if codec == "quant":
        return encode_quant(model, bits, signal, extra)
    if not sparsity > 0 or overcomplete < 1 or block < 8:
        raise InvalidInputError("need sparsity > 0, overcomplete >= 1 and block >= 8")
    opts = SinrOptions(sparsity, bits, dense_bits, overcomplete, block, seed, code_first)
    return encode_sinr(sparse_code(model, opts, device), signal, extra)


# ------------------------------------------------------------------ decoding
def _bad(msg: str) -> InvalidFileError:
    return InvalidFileError(f"invalid .inrz header: {msg}")


def _int(obj: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = obj.get(key) if isinstance(obj, dict) else None
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{where}.{key} must be an integer in [{lo}, {hi}]")
    return v


def _qparams(obj: dict, key: str, where: str) -> tuple[float, float]:
    v = obj.get(key) if isinstance(obj, dict) else None
    if not (isinstance(v, list) and len(v) == 2 and all(type(x) in (int, float) for x in v)):
        raise _bad(f"{where}.{key} must be [lo, step]")
    lo, step = float(v[0]), float(v[1])
    if not (math.isfinite(lo) and math.isfinite(step) and step >= 0 and abs(lo) < 1e30 and step < 1e30):
        raise _bad(f"{where}.{key} holds out-of-range numbers")
    return lo, step


def _check_arch(arch: Any) -> tuple[list[int], list[str], list[float], list[int] | None]:
    if not isinstance(arch, dict):
        raise _bad("'model' must be an object")
    widths, acts, omegas, fourier = (arch.get(k) for k in ("widths", "activations", "omegas", "fourier"))
    if not (isinstance(widths, list) and 2 <= len(widths) <= MAX_LAYERS + 1
            and all(type(w) is int and 1 <= w <= MAX_WIDTH for w in widths)):
        raise _bad(f"'model.widths' must list 2 to {MAX_LAYERS + 1} sizes in [1, {MAX_WIDTH}]")
    n = len(widths) - 1
    if sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(n)) > MAX_PARAMS:
        raise _bad("model too large")
    if not (isinstance(acts, list) and len(acts) == n and all(isinstance(a, str) and a in ACTIVATIONS for a in acts)):
        raise _bad(f"'model.activations' must list {n} of {list(ACTIVATIONS)}")
    if not (isinstance(omegas, list) and len(omegas) == n and all(type(o) in (int, float) and math.isfinite(o)
                                                                  and abs(o) < 1e6 for o in omegas)):
        raise _bad(f"'model.omegas' must list {n} finite numbers")
    if fourier is not None:
        if not (isinstance(fourier, list) and len(fourier) == 2 and all(type(x) is int for x in fourier)
                and 2 * fourier[0] == widths[0] and 1 <= fourier[1] <= 16):
            raise _bad("'model.fourier' must be [widths[0] / 2, coord_dim]")
    return widths, acts, [float(o) for o in omegas], fourier


class _Sections:
    """Hands out sections in order, checking sizes before decompressing."""

    def __init__(self, sections: list[bytes]) -> None:
        self.sections, self.pos = sections, 0

    def next(self, raw_size: int, compressed: bool = True) -> bytes:
        if self.pos >= len(self.sections):
            raise _bad("fewer payload sections than the layers need")
        data = self.sections[self.pos]
        self.pos += 1
        if not compressed:
            if len(data) != raw_size:
                raise InvalidFileError(f"payload section {self.pos - 1} has {len(data)} bytes, expected {raw_size}")
            return data
        if raw_size > coding.max_expansion(len(data)):
            raise InvalidFileError(f"payload section {self.pos - 1} claims an implausible size")
        return coding.brotli_decompress(data, raw_size)

    def done(self) -> None:
        if self.pos != len(self.sections):
            raise _bad("more payload sections than the layers need")


def _dequant(sec: _Sections, count: int, bits: int, q: tuple[float, float]) -> np.ndarray:
    dt = coding.code_dtype(bits)
    codes = np.frombuffer(sec.next(count * dt.itemsize), dt)
    if codes.size and int(codes.max()) >= 1 << bits:
        raise InvalidFileError("quantised code above its bit depth")
    return coding.dequantize(codes, *q)


def _decode_sinr_layer(rec: dict, sec: _Sections, shape: tuple[int, int], bits: int, seed: int,
                       where: str, pending: list) -> None:
    mode = rec.get("mode")
    if mode not in ("rows", "blocks"):
        raise _bad(f"{where}.mode must be 'rows' or 'blocks'")
    out, inp = shape
    k1 = _int(rec, "k1", 3, MAX_K2 - 1, where)
    if (mode == "rows" and k1 != inp) or (mode == "blocks" and k1 > out * inp):
        raise _bad(f"{where}.k1 does not fit the layer shape")
    k2 = _int(rec, "k2", k1, MAX_K2 - 1, where)
    if k1 * k2 > MAX_DICT:
        raise _bad(f"{where}: dictionary too large")
    s = _int(rec, "s", 1, k1 - 1, where)
    n = out if mode == "rows" else math.ceil(out * inp / k1)
    kind = rec.get("support")
    if kind == "gaps":
        nbytes = _int(rec, "support_bytes", n * s, 2 * n * s, where)
        idx = coding.decode_gaps(sec.next(nbytes), n, s, k2)
    elif kind == "bitmask":
        idx = coding.decode_bitmask(sec.next(coding.bitmask_size(n, k2)), n, s, k2)
    else:
        raise _bad(f"{where}.support must be 'gaps' or 'bitmask'")
    coef = _dequant(sec, n * s, bits, _qparams(rec, "coef", where)).reshape(n, s)
    # the dictionary is generated only once every section has been read and checked
    pending.append((SparseLayer(mode, k1, k2, idx, coef), coef, seed, shape))


def decode_model(data: bytes) -> tuple[MLP, dict]:
    """Decode ``.inrz`` bytes into ``(model, header)``; every problem is an ``InvalidFileError``."""
    header, sections = unpack(data)
    if header.get("format") != FORMAT:
        raise _bad("'format' is not 'inrz-mlp'")
    codec = header.get("codec")
    if codec not in CODECS:
        raise _bad(f"unknown codec {codec!r}")
    widths, acts, omegas, fourier = _check_arch(header.get("model"))
    params, records = header.get("params"), header.get("layers")
    if not isinstance(params, dict) or not isinstance(records, list) or len(records) != len(widths) - 1:
        raise _bad("'params' must be an object and 'layers' one record per layer")
    if not isinstance(header.get("signal", {}), dict) or not isinstance(header.get("extra", {}), dict):
        raise _bad("'signal' and 'extra' must be objects")
    sec = _Sections(sections)
    weights: list[Any] = []
    biases: list[np.ndarray] = []
    pending: list = []
    bits = _int(params, "bits", 1, coding.MAX_BITS, "params") if codec != "coin" else 16
    dbits = _int(params, "dense_bits", 1, coding.MAX_BITS, "params") if codec == "sinr" else bits
    seed = _int(params, "seed", 0, 2**63 - 1, "params") if codec == "sinr" else 0
    if codec == "sinr" and params.get("generator") != GENERATOR_NAME:
        raise _bad(f"unknown dictionary generator {params.get('generator')!r}")
    for i, rec in enumerate(records):
        where, shape = f"layers[{i}]", (widths[i + 1], widths[i])
        if not isinstance(rec, dict):
            raise _bad(f"{where} must be an object")
        if codec == "coin":
            w = np.frombuffer(sec.next(2 * shape[0] * shape[1], compressed=False), "<f2").reshape(shape)
            b = np.frombuffer(sec.next(2 * shape[0], compressed=False), "<f2")
            weights.append(w.astype(np.float64))
            biases.append(b.astype(np.float64))
            continue
        if codec == "sinr" and "coef" in rec and i < len(records) - 1:
            _decode_sinr_layer(rec, sec, shape, bits, seed, where, pending)
            weights.append(len(pending) - 1)
        else:
            wbits = dbits if codec == "sinr" else bits
            weights.append(_dequant(sec, shape[0] * shape[1], wbits, _qparams(rec, "w", where)).reshape(shape))
        biases.append(_dequant(sec, shape[0], dbits, _qparams(rec, "b", where)))
    fourier_t = None
    if fourier is not None:
        fb = np.frombuffer(sec.next(4 * fourier[0] * fourier[1], compressed=False), "<f4").reshape(fourier)
        if not np.all(np.isfinite(fb)):
            raise InvalidFileError("non-finite Fourier features")
        fourier_t = torch.from_numpy(fb.copy())
    sec.done()
    model = MLP(widths, acts, omegas, fourier=fourier_t)
    with torch.no_grad():
        for i, w in enumerate(weights):
            if isinstance(w, int):
                w = reconstruct(*pending[w])
            with np.errstate(over="ignore", invalid="ignore"):
                w32, b32 = w.astype(np.float32), biases[i].astype(np.float32)
            if not (np.all(np.isfinite(w32)) and np.all(np.isfinite(b32))):
                raise InvalidFileError(f"layer {i} decodes to non-finite values")
            model.weights[i].copy_(torch.from_numpy(w32))
            model.biases[i].copy_(torch.from_numpy(b32))
    return model, header
