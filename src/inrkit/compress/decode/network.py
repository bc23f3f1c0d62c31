"""The decode half of every network codec (``sinr``, ``quant``, ``coin``) and :data:`DECODERS`, the table the
standalone decoder reads: NumPy only.

A :class:`NetworkDecoder` reads a file's sections back into layers (:meth:`~NetworkDecoder.decode`) and says, from
the header alone, what that will cost (:meth:`~NetworkDecoder.work`). The encode halves subclass these
(:mod:`inrkit.compress.encode.network`, where :data:`~inrkit.compress.encode.network.NETWORK_CODECS` lives).

* ``sinr`` (SINR, arXiv 2503.19576): weight vectors sparse-coded over a seeded Gaussian dictionary, the supports
  stored as gaps or bitmasks, the coefficients quantised; biases and the last layer quantised.
* ``quant``: every tensor uniformly quantised (per tensor, or per weight row with coded step multipliers).
* ``coin``: every tensor in float16 (COIN, Dupont et al. 2021).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Union

import numpy as np

from inrkit.compress.decode import coding
from inrkit.compress.decode.dictionary import GENERATOR_NAME
from inrkit.compress.decode.layout import (
    MAX_DICT,
    MAX_K2,
    DecodeWork,
    Sections,
    SparseLayer,
    bad,
    read_float,
    read_int,
    read_qparams,
    reconstruct,
)
from inrkit.registry import Registry

# a decoded layer: (weight [out, in] or a deferred reconstruction of it, bias [out]), float64
DecodedLayer = tuple[Union[np.ndarray, Callable[[], np.ndarray]], np.ndarray]


class NetworkDecoder:
    """The decode half of a network codec.

    Attributes:
        name: the codec's name, stored in every file's header.
    """

    name: str = ""

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        """Read every layer's weight and bias from ``sections`` (float64), validating as it goes."""
        raise NotImplementedError

    def work(self, params: dict, records: list[dict], widths: list[int]) -> DecodeWork:
        """What :meth:`decode` will cost, from the header alone (default: each weight and bias decoded once)."""
        return DecodeWork(values=sum(o * (n + 1) for o, n in (shape_of(widths, i) for i in range(len(records)))))

    def table_bits(self, params: dict) -> int | None:
        """Bit depth of a grid encoding's table (from the validated ``params``); None: raw float16."""
        return None


DECODERS: Registry[NetworkDecoder] = Registry("codec")
"""The decode half of every network codec, by the name files store (the standalone decoder reads it)."""


def shape_of(widths: list[int], i: int) -> tuple[int, int]:
    """Shape ``[out, in]`` of layer ``i``."""
    return widths[i + 1], widths[i]


# ------------------------------------------------------------------ sinr
class SinrDecoder(NetworkDecoder):
    """SINR: sparse codes over a seeded Gaussian dictionary (decode half)."""

    name = "sinr"

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        bits = read_int(params, "bits", 1, coding.MAX_BITS, "params")
        dbits = read_int(params, "dense_bits", 1, coding.MAX_BITS, "params")
        seed = read_int(params, "seed", 0, 2**63 - 1, "params")
        if params.get("generator") != GENERATOR_NAME:
            raise bad(f"unknown dictionary generator {params.get('generator')!r}")
        out: list[DecodedLayer] = []
        for i, rec in enumerate(records):
            where, shape = f"layers[{i}]", shape_of(widths, i)
            w: np.ndarray | Callable[[], np.ndarray]
            if "coef" in rec and i < len(records) - 1:
                w = _read_sparse(rec, sections, shape, bits, seed, where)
            else:
                w = sections.quantised(shape[0] * shape[1], dbits, read_qparams(rec, "w", where)).reshape(shape)
            out.append((w, sections.quantised(shape[0], dbits, read_qparams(rec, "b", where))))
        return out


    def work(self, params: dict, records: list[dict], widths: list[int]) -> DecodeWork:
        work = DecodeWork()
        for i, rec in enumerate(records):
            out, inp = shape_of(widths, i)
            if "coef" in rec and i < len(records) - 1:
                _, k1, k2, s, n = _sparse_dims(rec, (out, inp), f"layers[{i}]")
                work.values += n * s + out
                work.dictionaries.add((k1, k2))
                work.recon += n * s * k1 + n * k2
            else:
                work.values += out * (inp + 1)
        return work


    def table_bits(self, params: dict) -> int | None:
        return read_int(params, "dense_bits", 1, coding.MAX_BITS, "params")



def _sparse_dims(rec: dict, shape: tuple[int, int], where: str) -> tuple[str, int, int, int, int]:
    """``(mode, k1, k2, s, vectors)`` of a coded layer's record, checked against the layer's shape."""
    mode = rec.get("mode")
    if mode not in ("rows", "blocks"):
        raise bad(f"{where}.mode must be 'rows' or 'blocks'")
    out, inp = shape
    k1 = read_int(rec, "k1", 3, MAX_K2 - 1, where)
    if (mode == "rows" and k1 != inp) or (mode == "blocks" and k1 > out * inp):
        raise bad(f"{where}.k1 does not fit the layer shape")
    k2 = read_int(rec, "k2", k1, MAX_K2 - 1, where)
    if k1 * k2 > MAX_DICT:
        raise bad(f"{where}: dictionary too large")
    s = read_int(rec, "s", 1, k1 - 1, where)
    return str(mode), k1, k2, s, out if mode == "rows" else math.ceil(out * inp / k1)


def _read_sparse(rec: dict, sections: Sections, shape: tuple[int, int], bits: int, seed: int,
                 where: str) -> Callable[[], np.ndarray]:
    """Read a coded layer; the dictionary is generated later, once every section has been checked."""
    mode, k1, k2, s, n = _sparse_dims(rec, shape, where)
    kind = rec.get("support")
    if kind == "gaps":
        nbytes = read_int(rec, "support_bytes", n * s, 2 * n * s, where)
        idx = coding.decode_gaps(sections.next(nbytes), n, s, k2)
    elif kind == "bitmask":
        idx = coding.decode_bitmask(sections.next(coding.bitmask_size(n, k2)), n, s, k2)
    else:
        raise bad(f"{where}.support must be 'gaps' or 'bitmask'")
    coef = sections.quantised(n * s, bits, read_qparams(rec, "coef", where)).reshape(n, s)
    return functools.partial(reconstruct, SparseLayer(mode, k1, k2, idx, coef), coef, seed, shape)


# ------------------------------------------------------------------ quant
class QuantDecoder(NetworkDecoder):
    """Every tensor uniformly quantised, per tensor or per weight row (decode half)."""

    name = "quant"

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        rows = "row_bits" in params
        bits = read_int(params, "bits", 2 if rows else 1, coding.MAX_BITS, "params")
        row_bits = read_int(params, "row_bits", 1, coding.MAX_BITS, "params") if rows else 0
        out: list[DecodedLayer] = []
        for i, rec in enumerate(records):
            where, (o, n) = f"layers[{i}]", shape_of(widths, i)
            if rows:
                w = sections.rows((o, n), bits, row_bits, read_float(rec, "wr", 1e20, where))  # |w| < 1e30
            else:
                w = sections.quantised(o * n, bits, read_qparams(rec, "w", where)).reshape(o, n)
            out.append((w, sections.quantised(o, bits, read_qparams(rec, "b", where))))
        return out


    def work(self, params: dict, records: list[dict], widths: list[int]) -> DecodeWork:
        rows = "row_bits" in params  # the row step codes: one value more per row
        return DecodeWork(values=sum(o * (n + 1 + rows) for o, n in (shape_of(widths, i) for i in range(len(records)))))


    def table_bits(self, params: dict) -> int | None:
        return read_int(params, "bits", 1, coding.MAX_BITS, "params")



# ------------------------------------------------------------------ coin
class CoinDecoder(NetworkDecoder):
    """Every tensor as raw float16 (decode half)."""

    name = "coin"

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        out: list[DecodedLayer] = []
        for i in range(len(records)):
            shape = shape_of(widths, i)
            w = sections.raw(shape, "<f2").astype(np.float64)
            out.append((w, sections.raw((shape[0],), "<f2").astype(np.float64)))
        return out




for _decoder in (SinrDecoder(), QuantDecoder(), CoinDecoder()):
    DECODERS.register(_decoder.name, _decoder)

__all__ = ["DECODERS", "CoinDecoder", "DecodedLayer", "NetworkDecoder", "QuantDecoder", "SinrDecoder", "shape_of"]
