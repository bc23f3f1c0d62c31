"""A sine and cosine made of plain float32 tensor ops, for compiled training steps.

``fast_sin(x)`` and ``fast_cos(x)`` reduce ``x`` by multiples of pi (Cody-Waite, three parts of pi:
the first two with few enough significant bits that ``k * part`` is exact for ``|k| < 4096``, i.e.
``|x|`` up to about 1.28e4), then evaluate an odd degree-9 polynomial (sine) or an even degree-10
polynomial (cosine) on ``[-pi/2, pi/2]`` and restore the sign ``(-1)^k``. The coefficients are a
minimax fit in float64 (approximation error 3.3e-9 and 2.2e-10); the float32 arithmetic brings the
total to at most 2e-7 absolute against float64 ``sin``/``cos`` of the same float32 input, on every
``|x| <= 1e4`` (``tests/test_compiled_step.py``). Beyond that the reduction loses bits gradually.

Eager PyTorch runs each op as its own pass, so these are slower than ``torch.sin`` there; under
``torch.compile`` (inductor) they fuse into one loop with the surrounding elementwise work and beat
the compiled ``torch.sin`` (AMD Zen 3, one thread: 0.58 against 0.80 ns per element, sine and cosine
together 0.81; docs/speed.md). :mod:`inrkit.train.compiled` uses them inside its compiled step.
"""
from __future__ import annotations

from torch import Tensor

INV_PI = 0.31830987334251404
PI_PARTS = (3.140625, 0.0009675025939941406, 1.5099580252808664e-07)  # pi = sum, first two exact in k * part
SIN_COEFFS = (0.9999999765912143, -0.16666647635368848, 0.008332899834000915, -0.00019800898333383046,
              2.590489511948159e-06)  # sin(r) = r * P(r^2), |r| <= pi/2
COS_COEFFS = (0.999999999780684, -0.4999999935851697, 0.041666636259389614, -0.001388836141439295,
              2.4760161978425458e-05, -2.6051504981779913e-07)  # cos(r) = Q(r^2)


def reduce_pi(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(r, sign)`` with ``x = r + k pi``, ``|r| <= pi/2`` (to rounding) and ``sign = (-1)^k``."""
    k = (x * INV_PI).round()
    r = ((x - k * PI_PARTS[0]) - k * PI_PARTS[1]) - k * PI_PARTS[2]
    sign = 1.0 - 2.0 * (k - 2.0 * (k * 0.5).floor())
    return r, sign


def _horner(r2: Tensor, coeffs: tuple[float, ...]) -> Tensor:
    acc = r2 * coeffs[-1] + coeffs[-2]
    for c in reversed(coeffs[:-2]):
        acc = acc * r2 + c
    return acc


def fast_sin(x: Tensor) -> Tensor:
    """``sin(x)`` to 2e-7 absolute for ``|x| <= 1e4`` (float32 in, float32 out)."""
    r, sign = reduce_pi(x)
    return sign * (r * _horner(r * r, SIN_COEFFS))


def fast_cos(x: Tensor) -> Tensor:
    """``cos(x)`` to 2e-7 absolute for ``|x| <= 1e4``."""
    r, sign = reduce_pi(x)
    return sign * _horner(r * r, COS_COEFFS)


def fast_sincos(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(sin(x), cos(x))`` sharing one range reduction."""
    r, sign = reduce_pi(x)
    r2 = r * r
    return sign * (r * _horner(r2, SIN_COEFFS)), sign * _horner(r2, COS_COEFFS)


__all__ = ["fast_cos", "fast_sin", "fast_sincos", "reduce_pi"]
