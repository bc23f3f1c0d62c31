"""The seeded sensing dictionary of SINR, bit-identical on every machine.

The dictionary ``A`` (``k1 x k2``, Gaussian entries, unit-norm columns) is never
stored: a decoder regenerates it from ``(k1, k2, seed)``. To make it bit-identical
everywhere, it uses only operations whose result IEEE 754 fixes exactly:

* uniforms from NumPy's ``PCG64`` raw 64-bit stream (the bit generator's stream is
  fixed; ``Generator.standard_normal`` is not used because its algorithm may change);
* the Box-Muller transform with ``log``, ``sin`` and ``cos`` written as polynomials in
  separate element-wise NumPy additions, multiplications and divisions (NumPy's own
  transcendental functions use CPU-specific SIMD code and may differ in the last bit);
* column norms summed row by row in a fixed order, then ``sqrt`` (correctly rounded).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from inrkit.limits import INRZ_CACHE_BYTES

GENERATOR_NAME = "pcg64-boxmuller-v1"
_LN2 = 0.6931471805599453
_HALF_PI = 1.5707963267948966
_SQRT_HALF = 0.7071067811865476
_TWO53 = 2.0**-53
_CHUNK = 1 << 16  # values generated at a time


def _log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive float64 values (about 1 ulp) from exact IEEE operations."""
    mant, expo = np.frexp(x)  # exact: x = mant * 2**expo, mant in [0.5, 1)
    small = mant < _SQRT_HALF
    mant = np.where(small, mant * 2.0, mant)
    expo = np.where(small, expo - 1, expo).astype(np.float64)
    t = (mant - 1.0) / (mant + 1.0)  # |t| <= 0.1716
    t2 = t * t
    acc = np.full_like(t, 1.0 / 27.0)
    for k in range(25, 0, -2):  # atanh series: t + t^3/3 + ... + t^27/27
        acc = acc * t2
        acc = acc + 1.0 / k
    return expo * _LN2 + 2.0 * (t * acc)


def _sincos_quarter(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sin`` and ``cos`` of ``phi`` in ``[0, pi/2)`` by Taylor series (Horner form)."""
    p2 = phi * phi
    s = np.full_like(phi, 1.0)
    c = np.full_like(phi, 1.0)
    for n in range(24, 0, -2):  # terms up to phi^25 / 25!, error < 1e-17
        s = 1.0 - s * (p2 / (n * (n + 1)))
        c = 1.0 - c * (p2 / ((n - 1) * n))
    return phi * s, c


def _normals(bitgen: np.random.PCG64, n: int) -> np.ndarray:
    """The next ``n`` standard normal values of ``bitgen`` by Box-Muller (``n`` even, or the last call)."""
    pairs = (n + 1) // 2
    raw = bitgen.random_raw(2 * pairs).reshape(pairs, 2)
    u1 = ((raw[:, 0] >> np.uint64(11)).astype(np.float64) + 1.0) * _TWO53  # (0, 1]
    u2 = (raw[:, 1] >> np.uint64(11)).astype(np.float64) * _TWO53  # [0, 1)
    radius = np.sqrt(-2.0 * _log(u1))
    quarter = u2 * 4.0
    quadrant = np.floor(quarter)
    sin_p, cos_p = _sincos_quarter((quarter - quadrant) * _HALF_PI)
    q = quadrant.astype(np.int64)
    cos_t = np.choose(q, [cos_p, -sin_p, -cos_p, sin_p])
    sin_t = np.choose(q, [sin_p, cos_p, -sin_p, -cos_p])
    out = np.empty((pairs, 2))
    out[:, 0] = radius * cos_t
    out[:, 1] = radius * sin_t
    return out.reshape(-1)[:n]


def gaussian(n: int, seed: int) -> np.ndarray:
    """``n`` standard normal float64 values from PCG64(``seed``) by Box-Muller."""
    return _normals(np.random.PCG64(int(seed)), n)


def _generate(k1: int, k2: int, seed: int) -> np.ndarray:
    """The dictionary, generated in row chunks (element-wise IEEE operations: the same bits as in one go).

    Peak memory is the result plus about ``10 * _CHUNK`` float64 temporaries.
    """
    bitgen = np.random.PCG64(int(seed))
    a = np.empty((k1, k2))
    rows = max(1, _CHUNK // k2)
    if k2 % 2 and rows % 2:  # every chunk but the last must draw whole Box-Muller pairs
        rows += 1
    sumsq = np.zeros(k2)
    for r0 in range(0, k1, rows):
        block = a[r0 : r0 + rows]
        block[...] = _normals(bitgen, block.size).reshape(block.shape)
        for row in block:  # fixed summation order
            sumsq = sumsq + row * row
    a /= np.sqrt(sumsq)
    return a


class _Cache:
    """Least-recently-used dictionaries, at most ``limit`` bytes in all (one larger is not kept)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.items, self.lock = limit, OrderedDict[tuple, np.ndarray](), threading.Lock()

    def get(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        value.setflags(write=False)
        with self.lock:
            if value.nbytes <= self.limit:
                self.items[key] = value
                while self.nbytes() > self.limit:
                    self.items.popitem(last=False)
        return value

    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.items.values())

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_CACHE = _Cache(INRZ_CACHE_BYTES)


def cache_bytes() -> int:
    """Bytes the dictionary cache holds now (at most :data:`inrkit.limits.INRZ_CACHE_BYTES`)."""
    return _CACHE.nbytes()


def clear_cache() -> None:
    """Drop every cached dictionary."""
    _CACHE.clear()


def sensing_matrix(k1: int, k2: int, seed: int) -> np.ndarray:
    """The ``k1 x k2`` Gaussian dictionary with unit-norm columns for ``seed`` (read-only, float64).

    Recently used dictionaries are cached, at most :data:`inrkit.limits.INRZ_CACHE_BYTES` in all.

    Args:
        k1: signal length (rows).
        k2: number of atoms (columns), ``k2 >= k1``.
        seed: non-negative integer seed of PCG64.
    """
    if not (1 <= k1 <= k2):
        raise ValueError(f"need 1 <= k1 <= k2, got k1={k1}, k2={k2}")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    k1, k2, seed = int(k1), int(k2), int(seed)
    return _CACHE.get((k1, k2, seed), lambda: _generate(k1, k2, seed))
