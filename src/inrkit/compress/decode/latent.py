"""The ``latent`` image codec (latent grids): file format and decoder (NumPy and ``constriction`` only, no torch).

A Cool-chic / C3-style image (Ladune et al. 2023; Leguay et al. 2023; Kim et al. 2024): ``L`` dense 2D grids
of integer latents at full, 1/2, 1/4 ... resolution (one latent per level per position), each upsampled
bilinearly to the image size (:func:`interp_matrix`; two-tap interpolation on both sides in the decoder and
the encoder's reconstruction); a synthesis MLP maps the ``L`` upsampled values of a pixel to its colour. The
latents are range-coded with a discrete Laplace whose mode and scale an auto-regressive context model (ARM, a
tiny MLP over the :data:`CONTEXT` causal neighbours of the same level) predicts from latents already decoded.

**Coding order (format version 2).** Latent ``(y, x)`` of every level belongs to the wavefront ``t = x + 3 y``:
each of its causal neighbours ``(y + dy, x + dx)`` (two rows above, columns -2..+2, and two to the left) has
``dx + 3 dy <= 2 - 3 < 0``, i.e. lies in an earlier wavefront. The latents are coded wavefront by wavefront
(all levels together, within a wavefront by level, then row), so the decoder runs the ARM once per wavefront
on all its latents and decodes a whole wavefront in one call of the range coder: about ``W + 3 H`` steps for
an ``H x W`` image instead of one per latent (Cool-chic's decoder codes in raster order in C).

**Symbols.** With ``c`` the predicted mode rounded to an integer, a latent ``k`` is coded as ``d = k - c``:
one of :data:`SYMBOLS` symbols, ``d`` itself for ``|d| <= WINDOW``, else the high or the low escape; after
a wavefront's symbols come its escapes' categories ``e`` (``m = |d| - WINDOW`` in ``[2**e, 2**(e+1))``, one of
:data:`CATEGORIES` symbols), then their offsets ``m - 2**e`` as ``e`` uniform bits. So the work per latent
does not depend on the bit depth. Every symbol's weight is its Laplace mass (an escape: the mass beyond the
window; a category: the mass of its range) plus :data:`FLOOR`, so no symbol is ever nearly certain: each
latent costs at least :data:`MIN_BITS_PER_LATENT` bits, which bounds the latents a stream of ``n`` bytes can
hold (checked before decoding: :func:`check_work`). The weights depend only on the mode's fraction ``mq + 4
- 8 c`` and the scale index: one table of ``8 x SCALES`` rows (:func:`coder_table`) serves every file.

**Determinism.** The ARM runs in integer fixed point (:func:`arm_fixed`): contexts are integers shifted by
``FA`` fraction bits, weights and biases ``round(w * 2**fw)`` (``fw`` chosen per file), biases shifted left by
``FA``, ReLU then an arithmetic right shift by ``fw``, hidden activations clipped to ``2**31 - 1``; the two
outputs (the mode, and a scale ``s``) become the integers ``mq = round(8 mode)`` and ``j = round(8 s)`` by
integer rounding (``mq`` clipped so that the rounded mode ``c = (mq + 4) >> 3`` is in the code range, ``j`` to
``[0, SCALES)``). With the clip every product and partial sum is an integer below ``2**53`` (12 x ``2**21`` x
``2**15`` in the first layer, 64 x ``2**31`` x ``2**15`` after), so the accumulations are computed exactly in
float64 (BLAS, any summation order) and shifted by exact power-of-two scaling and ``floor``. The symbol
weights: the Laplace mass of ``[k - 1/2, k + 1/2]`` (mode ``mq / 8``, ``exp(-1/(8 b)) = rho_j``, ``1 - rho_j =
MANTISSAS[j % 8] * 2**-(8 + j // 8)``, exact in float64 as :func:`inrkit.compress.decode.entropy.ratio`) from powers
``rho**n`` computed by binary powering (a fixed sequence of IEEE multiplications, values below ``2**-100`` set
to 0), quantised by constriction's categorical model (``perfect=False``); the range coder is integer
arithmetic. So the decoded latents are the same integers on every machine. The upsampling is elementwise
float64 (deterministic); the synthesis is float64 BLAS: the decoded 8-bit image may differ across BLAS
builds only where a value lies within about 1e-12 of a rounding boundary.

A file is an ``.inrz`` v2 container (:mod:`inrkit.compress.decode.container`) with header ``{"format": "inrz-latent",
"codec": "latent", "shape": [H, W], "channels": C, "params": {"v": 3, ...}, "signal": {...}}`` and the
sections: the latents (one range-coded stream), the ARM's integers and the synthesis's integers (tensor ``t`` as
``round(t * 2**q_t)``; ``params["q"]`` lists one exponent per layer's weights and a last one for the biases,
chosen by the encoder for the rate-distortion cost), each network's tensors concatenated into one
:func:`inrkit.compress.decode.entropy.encode_codes` section of signed integers, its bit depth in ``params``.
Format version 2 (one exponent ``q`` for every synthesis tensor; files of the codec's former name ``grid``) is
decoded too; version 1 (raster order) is refused with a message to re-encode. :func:`bytes_by_part` reports a
file's bytes by part (latents, ARM, synthesis, header).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from inrkit.compress.decode import entropy
from inrkit.compress.decode.container import pack, unpack
from inrkit.compress.decode.container import read_file as read_bytes
from inrkit.errors import InvalidFileError
from inrkit.limits import (
    INRZ_GRID_KNEE_BYTES,
    INRZ_GRID_MAX_PIXELS,
    INRZ_GRID_PIXELS_BEYOND,
    INRZ_GRID_PIXELS_FREE,
    INRZ_GRID_PIXELS_PER_BYTE,
    INRZ_GRID_WORK_BEYOND,
    INRZ_GRID_WORK_FREE,
    INRZ_GRID_WORK_PER_BYTE,
    INRZ_MAX_FILE,
    check_inrz_image,
)

FORMAT = "inrz-latent"
CODEC = "latent"
LEGACY_NAMES = {"grid": CODEC}
"""Names older files store for this codec (``grid`` until the codec was named ``latent``)."""
VERSION = 3  # params["v"]: 3 = one synthesis step per layer's weights and one for the biases ("q" a list)
VERSIONS = (2, 3)  # decoded: 2 = wavefront order, windowed symbols with escapes, one synthesis step ("q" an integer);
# version 1 (raster order) is refused
FA = 8  # fraction bits of the ARM's activations
FW_RANGE = (2, 12)  # fraction bits of the ARM's weights (chosen per file by the encoder)
# causal neighbours (row, column offset) in the same level: two rows above (columns -2..2) and two to the left
CONTEXT = ((-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
           (0, -2), (0, -1))
PAD = 2
WAVE = 3  # wavefront of latent (y, x): x + WAVE * y (every CONTEXT offset has dx + WAVE * dy < 0)
MANTISSAS = (255, 235, 215, 197, 181, 166, 152, 140)  # round(256 * 2**(-k/8)), k = 0..7 (k = 0: 255)
SCALES = 8 * 15  # scale indices j: 1 - R_j = MANTISSAS[j % 8] * 2**-(8 + j // 8)
MAX_LEVELS = 12
MAX_HIDDEN = 256
MAX_ARM_HIDDEN = 64
MAX_LATENT_BITS = 14
MAX_WEIGHT_BITS = 16
MAX_QEXP = 24
_HIDDEN_CLIP = (1 << 31) - 1  # ARM hidden activations (keeps every accumulation below 2**53: exact in float64)
_TINY = 2.0 ** -100
MODE_STEPS = 8  # mode resolution of the coder's Laplace: 1/8 of a latent step
WINDOW = 12  # latents within +-WINDOW of the rounded mode are coded as one symbol each
CATEGORIES = MAX_LATENT_BITS  # escape categories: |d| - WINDOW in [2**e, 2**(e+1)), e < 14
SYMBOLS = 2 * WINDOW + 3  # the coder's alphabet: d + WINDOW for |d| <= WINDOW, then the high and the low escape
FLOOR = 2.0 ** -17  # added to every symbol's weight (the Laplace masses of all symbols sum to at most 1)
# (SYMBOLS - 1) * FLOOR / (1 + SYMBOLS * FLOOR) = 1.98e-4 is the least probability of "not this symbol", so every
# latent costs at least -log2(1 - 1.98e-4) = 2.86e-4 bits, 2.84e-4 after constriction's 24-bit quantisation
# (which moves a probability by at most SYMBOLS * 2**-24); the bound used is the rounder, smaller 2**-12:
MIN_BITS_PER_LATENT = 2.0 ** -12
STREAM_SLACK_BITS = 64  # bits a range coder's stream may fall short of its information content (its state)
_ROWS = 1 << 16  # latents per encoder call (bounds the temporary arrays)
_SYNTH_PIXELS = 1 << 13  # pixels per synthesis chunk (its activations stay in the cache: measured 2x faster than 2**16)


def bad(msg: str) -> InvalidFileError:
    """An :class:`InvalidFileError` about a latent-grid file."""
    return InvalidFileError(f"invalid latent .inrz: {msg}")


# ------------------------------------------------------------------ geometry
def level_shapes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each latent level: ``ceil(h / 2**l), ceil(w / 2**l)``."""
    return [(-(-h // (1 << lv)), -(-w // (1 << lv))) for lv in range(levels)]


def interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``[n_out, n_in]`` float64 linear interpolation (half-pixel centres, edges clamped, as
    ``torch.nn.functional.interpolate(..., align_corners=False)``); the training's upsampling."""
    i0, i1, t = interp_taps(n_out, n_in)
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    m[rows, i0] += 1.0 - t
    m[rows, i1] += t
    return m


def interp_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two taps ``i0, i1`` and the weight ``t`` of :func:`interp_matrix`'s rows: out = ``(1 - t) g[i0] +
    t g[i1]``."""
    if n_in == 1:
        zero = np.zeros(n_out, np.int64)
        return zero, zero, np.zeros(n_out)
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 2)
    return i0, i0 + 1, src - i0


def contexts(grid: np.ndarray) -> np.ndarray:
    """``[rows * cols, len(CONTEXT)]`` int64 causal contexts of every latent of one level (zeros outside)."""
    r, c = grid.shape
    padded = np.zeros((r + PAD, c + 2 * PAD), np.int64)
    padded[PAD:, PAD:PAD + c] = grid
    cols = [padded[PAD + dr : PAD + dr + r, PAD + dc : PAD + dc + c].reshape(-1) for dr, dc in CONTEXT]
    return np.stack(cols, axis=1)


@dataclass
class Layout:
    """All levels in one zero-padded buffer (``PAD`` zero rows above each level, ``PAD`` zero columns on both
    sides, one row stride) and the coding order.

    Attributes:
        shapes: ``(rows, cols)`` per level.
        stride: the buffer's row length (widest level + ``2 PAD``).
        first_row: the buffer row of each level's row 0.
        size: buffer entries.
        order: buffer positions of every latent in coding order (wavefront, level, row).
        bounds: ``order[bounds[i]:bounds[i + 1]]`` is the ``i``-th non-empty wavefront.
    """

    shapes: list[tuple[int, int]]
    stride: int
    first_row: list[int]
    size: int
    order: np.ndarray
    bounds: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """Buffer offsets of the :data:`CONTEXT` neighbours."""
        return np.array([dr * self.stride + dc for dr, dc in CONTEXT], np.int64)

    def fill(self, latents: list[np.ndarray], dtype: Any = np.int16) -> np.ndarray:
        """The buffer holding ``latents``."""
        buf = np.zeros((self.size // self.stride, self.stride), dtype)
        for row, g in zip(self.first_row, latents):
            buf[row:row + g.shape[0], PAD:PAD + g.shape[1]] = g
        return buf.reshape(-1)

    def split(self, buf: np.ndarray) -> list[np.ndarray]:
        """The level grids (int32) of a buffer."""
        b = buf.reshape(-1, self.stride)
        return [b[row:row + r, PAD:PAD + c].astype(np.int32) for row, (r, c) in zip(self.first_row, self.shapes)]


def wavefronts(shapes: list[tuple[int, int]]) -> int:
    """The number of wavefronts ``x + 3 y`` of levels ``shapes`` (the decoder's steps; empty ones included)."""
    return max((c - 1) + WAVE * (r - 1) + 1 for r, c in shapes)


def layout(shapes: list[tuple[int, int]]) -> Layout:
    """The :class:`Layout` of levels ``shapes``: one arithmetic progression (step ``stride - 3``) per level and
    wavefront, the progressions concatenated by :func:`numpy.repeat` (no per-latent Python)."""
    stride = max(c for _, c in shapes) + 2 * PAD
    first_row, rows = [], 0
    for height, _ in shapes:
        rows += PAD
        first_row.append(rows)
        rows += height
    t = np.arange(wavefronts(shapes), dtype=np.int64)[:, None]
    r = np.array([s[0] for s in shapes], np.int64)[None, :]
    c = np.array([s[1] for s in shapes], np.int64)[None, :]
    ylo = np.maximum(0, -((c - 1 - t) // WAVE))  # ceil((t - c + 1) / 3): the top latent of the wavefront
    yhi = np.minimum(r - 1, t // WAVE)
    count = np.maximum(yhi - ylo + 1, 0)
    start = (np.array(first_row, np.int64)[None, :] + ylo) * stride + PAD + t - WAVE * ylo
    step = stride - WAVE  # from (y, x) to (y + 1, x - 3) in the same wavefront
    count, start = count.reshape(-1), start.reshape(-1)
    ends = np.cumsum(count)
    base = start - step * (ends - count)  # order[i] = base[segment of i] + step * i
    total = int(ends[-1])
    dtype = np.int32 if rows * stride < 1 << 31 else np.int64
    order = np.empty(total, dtype)
    cuts = np.searchsorted(ends, np.arange(0, total, _ROWS * 16), side="right")
    for s0, s1 in zip(cuts, [*cuts[1:], len(count)]):  # segments in groups (bounded temporaries)
        a, b = int(ends[s0] - count[s0]), int(ends[s1 - 1])
        order[a:b] = np.repeat(base[s0:s1], count[s0:s1]) + step * np.arange(a, b, dtype=np.int64)
    per_wave = count.reshape(t.shape[0], -1).sum(axis=1)
    bounds = np.concatenate([[0], np.cumsum(per_wave[per_wave > 0])]).astype(np.int64)
    return Layout(list(shapes), stride, first_row, rows * stride, order, bounds)


# ------------------------------------------------------------------ fixed-point ARM
@dataclass
class FixedArm:
    """The ARM in fixed point: integer weights ``[out, in]`` and biases, both at scale ``2**fw``."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    fw: int = 8

    def tensors(self) -> list[np.ndarray]:
        """Weights and biases, layer by layer (the order of the file)."""
        return [t for wb in zip(self.weights, self.biases) for t in wb]

    def exact_layers(self, bits: int) -> ExactArm:
        """The :class:`ExactArm` of latents of ``bits`` bits."""
        return ExactArm(self, bits)


class ExactArm:
    """A :class:`FixedArm` prepared for float64 evaluation with exact integer results (module docstring).

    Contexts come with a last column of ones, and every hidden layer passes a column of ones on, so each
    layer is one matrix product (its bias a last row of the matrix). A hidden layer's matrix is scaled by
    ``2**-fw`` (the shift; the first layer's also by ``2**FA``, the contexts' shift), then clipped at ``0`` and
    ``2**31 - 1`` and floored. The last layer's matrix is scaled by ``2**-(fw + FA - 3)`` and its bias carries
    the rounding of ``(8 h + 2**(FA-1)) >> FA`` and the offset ``4 - 8 WINDOW``, so that ``floor`` of its output
    is ``z``: ``z[:, 0] = mq + 4 - 8 (2**(bits-1) + WINDOW)`` (``mq``: 8 x the mode in code units), ``z[:, 1] =
    j``. Exact: every value is an integer multiple of a power of two, below ``2**53`` times it.
    """

    def __init__(self, arm: FixedArm, bits: int) -> None:
        shift = float(1 << FA)
        ws = [np.asarray(w, np.float64) for w in arm.weights]
        bs = [np.asarray(b, np.float64) * shift for b in arm.biases]
        ws[0] = ws[0] * shift
        self.matrices: list[np.ndarray] = []
        scale = 2.0 ** -arm.fw
        for w, b in zip(ws[:-1], bs[:-1]):  # [in + 1, out + 1]: the bias row, the ones column
            m = np.zeros((w.shape[1] + 1, w.shape[0] + 1))
            m[:-1, :-1] = w.T * scale
            m[-1, :-1] = b * scale
            m[-1, -1] = 1.0
            self.matrices.append(m)
        s = 2.0 ** -(arm.fw + FA - 3)
        last = np.vstack([ws[-1].T * s, (bs[-1] + float(1 << (arm.fw + FA - 4))) * s])
        last[-1, 0] += 4.0 - 8 * WINDOW
        self.matrices.append(last)
        half = 1 << (bits - 1)
        self.z_range = (8.0 * (-half - WINDOW), 8.0 * (half - WINDOW) - 1)  # c = (mq + 4) >> 3 in 0..2**bits - 1

    def __call__(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(q, row)`` of contexts ``ctx [N, K]`` (latent values; ``K = 13``: a last column of ones): the coded
        symbol of latent ``v`` is ``v - q`` (``q = c - 2**(bits-1) - WINDOW``, ``c`` the rounded mode in code
        units, clipped to the code range) and ``row`` its :func:`coder_table` row (the mode's fraction ``mq + 4
        - 8 c`` and the scale index ``j``, clipped to ``[0, SCALES)``)."""
        h = ctx.astype(np.float64)
        if h.shape[1] == len(CONTEXT):
            h = np.hstack([h, np.ones((len(h), 1))])
        return _arm_rows(h, self.matrices[:-1], self.matrices[-1], *self.z_range)


def _arm_rows(h: np.ndarray, hidden: list[np.ndarray], last: np.ndarray, low: float, high: float,
              clip: float = float(_HIDDEN_CLIP), dot: Any = np.dot, floor: Any = np.floor,
              ravel: Any = np.ravel_multi_index) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`ExactArm.__call__` on float64 contexts with their column of ones (the decoder's inner loop: no
    attribute lookups)."""
    for m in hidden:
        h = dot(h, m)
        h.clip(0.0, clip, out=h)
        floor(h, out=h)
    z = floor(dot(h, last))
    z[:, 0].clip(low, high, out=z[:, 0])
    zi = z.astype(np.int64)
    return zi[:, 0] >> 3, ravel((zi[:, 0] & 7, zi[:, 1]), _TABLE_SHAPE, mode="clip")


_TABLE_SHAPE = (MODE_STEPS, SCALES)


def arm_fixed(arm: FixedArm, ctx: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mq, j)`` (int64) of contexts ``ctx [N, K]`` for latents coded with offset ``2**(bits-1)``: ``mq`` is 8 x
    the mode in code units, clipped to ``-4 .. 8 * 2**bits - 5`` (the rounded mode ``c = (mq + 4) >> 3`` in the
    code range), ``j`` the scale index clipped to ``[0, SCALES)``. Exact."""
    q, row = ExactArm(arm, bits)(np.asarray(ctx, np.float64))
    return MODE_STEPS * (q + (1 << (bits - 1)) + WINDOW) + row // SCALES - MODE_STEPS // 2, row % SCALES


def scale_param(j: int) -> int:
    """The 16-bit :func:`inrkit.compress.decode.entropy.ratio` parameter of scale index ``j``."""
    return (j // 8) << 8 | MANTISSAS[j % 8]


def rho_powers(rho: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``rho[:, None] ** n[None, :]`` by binary powering: squarings and products in a fixed order, each result
    below ``2**-100`` set to 0 (so no subnormal ever occurs). Bit-identical on every IEEE-754 machine."""
    n = np.asarray(n, np.int64)
    out = np.ones((len(rho), len(n)))
    p = np.asarray(rho, np.float64)[:, None].copy()
    bit = 0
    while (n >> bit).any():
        sel = ((n >> bit) & 1).astype(bool)[None, :]
        out = np.where(sel, out * p, out)
        out[out < _TINY] = 0.0
        p = p * p
        p[p < _TINY] = 0.0
        bit += 1
    return out


@functools.lru_cache(maxsize=1)
def coder_table() -> tuple[np.ndarray, np.ndarray]:
    """The symbol weights (float64): ``[8 * SCALES, SYMBOLS]`` for the latents (row ``(mq - 8 c + 4) * SCALES +
    j``) and ``[2 * 8 * SCALES, CATEGORIES]`` for the escape categories (row: the latent's row, plus ``8 *
    SCALES`` for the low escape).

    With the mode at ``f / 8`` from ``c`` (``f = mq - 8 c`` in -4..3) and ``T[n] = rho_j**n`` (:func:`rho_powers`):
    the symbol ``d`` (``|d| <= WINDOW``) weighs ``(T[n-4] - T[n+4]) / 2`` (``n = |8 d - f|``) when the mode is
    outside its bin, ``1 - (T[4-n] + T[4+n]) / 2`` inside; the high escape ``T[8 W + 4 - f] / 2`` (the mass
    above ``W + 1/2``), the low one ``T[8 W + 4 + f] / 2``; the high category ``e`` (``d`` in ``[W + 2**e, W +
    2**(e+1))``) ``(T[a] - T[b]) / 2``, ``a = 8 (W + 2**e) - 4 - f``, ``b = 8 (W + 2**(e+1)) - 4 - f`` (low:
    ``+ f``). Every weight plus :data:`FLOOR`."""
    rho = np.array([entropy.ratio(scale_param(j)) for j in range(SCALES)])
    half = MODE_STEPS // 2
    f = np.arange(-half, half)[:, None]
    n = np.abs(MODE_STEPS * np.arange(-WINDOW, WINDOW + 1)[None, :] - f)  # [8, 2W+1]
    e = 2 ** np.arange(CATEGORIES)[None, :]
    edge = MODE_STEPS * WINDOW + half
    idx = [np.abs(n - half), n + half, edge - f, edge + f,
           MODE_STEPS * (WINDOW + e) - half - f, MODE_STEPS * (WINDOW + 2 * e) - half - f,
           MODE_STEPS * (WINDOW + e) - half + f, MODE_STEPS * (WINDOW + 2 * e) - half + f]
    flat = rho_powers(rho, np.concatenate([i.reshape(-1) for i in idx]))
    parts = np.split(flat, np.cumsum([i.size for i in idx])[:-1], axis=1)
    t_a, t_b, up, down, h_a, h_b, l_a, l_b = (p.reshape(SCALES, *i.shape) for p, i in zip(parts, idx))
    window = np.where(n < half, 1.0 - 0.5 * (t_a + t_b), 0.5 * (t_a - t_b))
    main = np.concatenate([window, 0.5 * up, 0.5 * down], axis=2)  # [SCALES, 8, SYMBOLS]
    cats = np.stack([0.5 * (h_a - h_b), 0.5 * (l_a - l_b)])  # [2, SCALES, 8, CATEGORIES]
    main = main.transpose(1, 0, 2).reshape(MODE_STEPS * SCALES, SYMBOLS) + FLOOR
    cats = cats.transpose(0, 2, 1, 3).reshape(2 * MODE_STEPS * SCALES, CATEGORIES) + FLOOR
    main.setflags(write=False)
    cats.setflags(write=False)
    return main, cats


def coder_weights(mq: int, j: int, alphabet: int) -> np.ndarray:
    """Probabilities of the codes ``k < alphabet`` under the model ``(mq, j)`` (an escaped code: its escape's
    probability x its category's x ``2**-e``): for analysis and tests; the coder uses :func:`coder_table`."""
    main, cats = coder_table()
    c, row = (mq + MODE_STEPS // 2) >> 3, ((mq + MODE_STEPS // 2) & 7) * SCALES + j
    p_main, p_hi, p_lo = main[row] / main[row].sum(), cats[row], cats[row + MODE_STEPS * SCALES]
    d = np.arange(alphabet) - c
    m = np.abs(d) - WINDOW
    e = np.where(m > 0, np.floor(np.log2(np.maximum(m, 1))).astype(np.int64), 0).clip(0, CATEGORIES - 1)
    inside = p_main[np.clip(d + WINDOW, 0, 2 * WINDOW)]
    high = p_main[2 * WINDOW + 1] * p_hi[e] / p_hi.sum() * 2.0 ** -e
    low = p_main[2 * WINDOW + 2] * p_lo[e] / p_lo.sum() * 2.0 ** -e
    return np.where(m <= 0, inside, np.where(d > 0, high, low))


def latent_bits(latents: list[np.ndarray]) -> int:
    """Smallest bit depth whose signed range holds every latent (at least 2)."""
    top = max((int(np.abs(g).max()) if g.size else 0) for g in latents)
    bits = 2
    while top > (1 << (bits - 1)) - 1:
        bits += 1
    return bits


def _constriction() -> tuple[Any, Any, Any]:
    import constriction

    model = constriction.stream.model
    return constriction.stream.queue, model.Categorical(perfect=False), model.Uniform()


def encode_latents(latents: list[np.ndarray], arm: FixedArm, bits: int) -> bytes:
    """Range-code every level's integer latents in wavefront order (module docstring) with the ARM's models:
    per wavefront its symbols, then its escapes' categories, then their offset bits."""
    queue, family, uniform = _constriction()
    lay = layout([g.shape for g in latents])
    buf = lay.fill(latents, np.int32)
    model, offsets, (main, cats) = arm.exact_layers(bits), lay.offsets, coder_table()
    n = len(lay.order)
    symbols, rows = np.empty(n, np.int32), np.empty(n, np.int64)
    esc_at, esc_row, esc_e, esc_o = [], [], [], []
    for a in range(0, n, _ROWS):  # every latent's symbol, from its context in the final buffer
        pos = lay.order[a:a + _ROWS]
        q, row = model(buf[pos[:, None] + offsets])
        d = buf[pos] - q - WINDOW
        m = np.abs(d) - WINDOW
        esc = np.flatnonzero(m > 0)
        high = d[esc] > 0
        symbols[a:a + len(pos)] = np.clip(d + WINDOW, 0, 2 * WINDOW)
        symbols[a + esc] = np.where(high, 2 * WINDOW + 1, 2 * WINDOW + 2)
        rows[a:a + len(pos)] = row
        e = np.searchsorted(2 ** np.arange(1, CATEGORIES + 1), m[esc], side="right")
        esc_at.append(a + esc)
        esc_row.append(row[esc] + np.where(high, 0, MODE_STEPS * SCALES))
        esc_e.append(e)
        esc_o.append(m[esc] - (1 << e))
    at, crow, ee, oo = (np.concatenate(v) for v in (esc_at, esc_row, esc_e, esc_o))
    wave = np.searchsorted(lay.bounds, at, side="right") - 1  # the wavefront of each escape
    enc = queue.RangeEncoder()

    def symbols_of(a: int, b: int) -> None:
        for s in range(a, b, _ROWS):
            e_ = min(s + _ROWS, b)
            enc.encode(symbols[s:e_], family, main[rows[s:e_]])

    done = 0
    for w, first, count in zip(*np.unique(wave, return_index=True, return_counts=True)):
        end = int(lay.bounds[w + 1])
        symbols_of(done, end)
        sl = slice(first, first + count)
        enc.encode(ee[sl].astype(np.int32), family, cats[crow[sl]])
        more = ee[sl] > 0
        if more.any():
            enc.encode(oo[sl][more].astype(np.int32), uniform, (1 << ee[sl][more]).astype(np.int32))
        done = end
    symbols_of(done, n)
    return enc.get_compressed().astype(">u4").tobytes()


def decode_latents(data: bytes, shapes: list[tuple[int, int]], arm: FixedArm, bits: int) -> list[np.ndarray]:
    """Inverse of :func:`encode_latents`: one ARM evaluation and one range-decoder call per wavefront (two more
    for a wavefront with escapes). A latent is checked against the bit depth once all are decoded (until then
    it lies within ``WINDOW`` of the range, which keeps the ARM exact)."""
    queue, family, uniform = _constriction()
    words = np.frombuffer(data + b"\0" * (-len(data) % 4), ">u4").astype(np.uint32)
    dec = queue.RangeDecoder(words)
    lay = layout(shapes)
    buf = np.append(lay.fill([np.zeros(s, np.int16) for s in shapes]), np.int16(1))  # the last cell: the ARM's 1
    model, (main, cats) = arm.exact_layers(bits), coder_table()
    offsets = lay.offsets.astype(lay.order.dtype)
    order, bounds = lay.order, lay.bounds.tolist()
    half = 1 << (bits - 1)
    arm_rows, hidden, last, (low, high) = _arm_rows, model.matrices[:-1], model.matrices[-1], model.z_range
    block = 64  # wavefronts whose context indices are formed at once
    for i0 in range(0, len(bounds) - 1, block):
        i1 = min(i0 + block, len(bounds) - 1)
        base = bounds[i0]
        ctx_at = np.empty((bounds[i1] - base, len(CONTEXT) + 1), order.dtype)
        np.add(order[base:bounds[i1], None], offsets, out=ctx_at[:, :-1])
        ctx_at[:, -1] = lay.size
        for i in range(i0, i1):
            a, b = bounds[i], bounds[i + 1]
            q, row = arm_rows(buf.take(ctx_at[a - base:b - base]).astype(np.float64), hidden, last, low, high)
            try:
                sym = dec.decode(family, main.take(row, axis=0))
                if sym.max() > 2 * WINDOW:
                    sym = _escaped(dec, family, uniform, sym, row, cats, q, half)
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except BaseException as exc:  # noqa: BLE001 - constriction raises AssertionError or a Rust panic
                if isinstance(exc, InvalidFileError):
                    raise
                raise bad(f"corrupt latent stream ({type(exc).__name__})") from None
            q += sym
            buf[order[a:b]] = q
    lay.order = order = order[:0]  # (freed before the grids are copied out)
    grids = lay.split(buf[:-1])
    if any(g.size and (int(g.min()) < -half or int(g.max()) >= half) for g in grids):
        raise bad("corrupt latent stream (a latent outside its bit depth)")
    return grids


def _escaped(dec: Any, family: Any, uniform: Any, sym: np.ndarray, row: np.ndarray, cats: np.ndarray,
             q: np.ndarray, half: int) -> np.ndarray:
    """The symbols of a wavefront with escapes, as ``latent - q``: their categories, then their offset bits."""
    out = sym.astype(np.int64)
    esc = np.flatnonzero(sym > 2 * WINDOW)
    high = sym[esc] == 2 * WINDOW + 1
    e = dec.decode(family, cats[row[esc] + np.where(high, 0, MODE_STEPS * SCALES)]).astype(np.int64)
    m = 1 << e
    more = e > 0
    if more.any():
        m[more] += dec.decode(uniform, (1 << e[more]).astype(np.int32)).astype(np.int64)
    out[esc] = WINDOW + np.where(high, WINDOW + m, -(WINDOW + m))
    v = q[esc] + out[esc]
    if v.size and (int(v.min()) < -half or int(v.max()) >= half):
        raise bad("corrupt latent stream (a latent outside its bit depth)")
    return out


# ------------------------------------------------------------------ synthesis
def features(latents: list[np.ndarray], h: int, w: int, y0: int = 0, y1: int | None = None,
             taps: list[tuple] | None = None, ones: bool = False) -> np.ndarray:
    """``[(y1 - y0) * w, L]`` float64 (with ``ones``, a last column of ones): rows ``y0:y1`` of every level
    interpolated to the image size (two taps along the rows, then along the columns: elementwise, the same
    values however the rows are chunked)."""
    y1 = h if y1 is None else y1
    taps = taps if taps is not None else [(interp_taps(h, g.shape[0]), interp_taps(w, g.shape[1])) for g in latents]
    out = np.empty((y1 - y0, w, len(latents) + ones))
    if ones:
        out[:, :, -1] = 1.0
    for lv, (g, ((r0, r1, rt), (c0, c1, ct))) in enumerate(zip(latents, taps)):
        if g.shape == (h, w):
            out[:, :, lv] = g[y0:y1]
            continue
        t = rt[y0:y1, None]
        rows = g[r0[y0:y1]] * (1.0 - t) + g[r1[y0:y1]] * t
        out[:, :, lv] = rows[:, c0] * (1.0 - ct) + rows[:, c1] * ct
    return out.reshape(-1, len(latents) + ones)


def upsampled(latents: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """``[h * w, L]`` float64: every level interpolated to the image size (:func:`features` of all rows)."""
    return features(latents, h, w)


def synthesis_matrices(weights: list[np.ndarray], biases: list[np.ndarray]) -> list[np.ndarray]:
    """Per layer ``[in + 1, out]`` float64, the bias as a last row (inputs with a column of ones); hidden layers
    ``[in + 1, out + 1]``, passing the ones on."""
    mats = []
    for i, (wt, b) in enumerate(zip(weights, biases)):
        hidden = i < len(weights) - 1
        m = np.zeros((wt.shape[1] + 1, wt.shape[0] + hidden))
        m[:-1, :wt.shape[0]] = wt.T
        m[-1, :wt.shape[0]] = b
        if hidden:
            m[-1, -1] = 1.0
        mats.append(m)
    return mats


def synthesise(features: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray],
               matrices: list[np.ndarray] | None = None) -> np.ndarray:
    """The synthesis MLP (ReLU hidden layers, linear output) in float64: ``[P, C]`` values in [0, 1] scale from
    ``[P, L]`` features (or ``[P, L + 1]`` with a last column of ones); one matrix product per layer
    (:func:`synthesis_matrices`)."""
    mats = matrices if matrices is not None else synthesis_matrices(weights, biases)
    x = features if features.shape[1] == mats[0].shape[0] else np.hstack([features, np.ones((len(features), 1))])
    for m in mats[:-1]:
        x = np.dot(x, m)
        np.maximum(x, 0.0, out=x)
    return np.dot(x, mats[-1])


def to_uint8(values: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[h, w, C]`` uint8 from ``[h * w, C]`` values in [0, 1]."""
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8).reshape(h, w, -1)


# ------------------------------------------------------------------ signed tensors
def signed_bits(values: np.ndarray) -> int:
    """Bit depth holding the signed integers ``values`` with offset ``2**(bits-1)`` (2..16)."""
    top = int(np.abs(values).max()) if values.size else 0
    bits = 2
    while top > (1 << (bits - 1)) - 1:
        bits += 1
    if bits > MAX_WEIGHT_BITS:
        raise ValueError("integer tensor beyond 16 bits")
    return bits


def encode_signed(values: np.ndarray) -> tuple[bytes, int]:
    """A section of signed integers (entropy-coded) and its bit depth."""
    bits = signed_bits(values)
    return entropy.encode_codes(values.reshape(-1).astype(np.int64) + (1 << (bits - 1)), bits), bits


def decode_signed(section: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`encode_signed`."""
    return entropy.decode_codes(section, count, bits) - (1 << (bits - 1))


# ------------------------------------------------------------------ the file
@dataclass
class LatentImage:
    """Everything a grid file holds, decoded.

    Args:
        shape: ``(H, W)``.
        channels: 1 or 3.
        latents: integer grids, finest first.
        arm: the fixed-point ARM.
        synth_w, synth_b: synthesis weights ``[out, in]`` and biases (float64, ``integer * 2**-q``).
        q: synthesis quantisation exponents: one for every tensor (step ``2**-q``), or one per layer's weights
            and a last one for the biases (format version 3).
        signal: the signal metadata of the header.
    """

    shape: tuple[int, int]
    channels: int
    latents: list[np.ndarray]
    arm: FixedArm
    synth_w: list[np.ndarray]
    synth_b: list[np.ndarray]
    q: int | list[int]
    signal: dict[str, Any]

    def steps(self) -> list[int]:
        """The exponent of every synthesis tensor, in file order (weights then bias, layer by layer)."""
        return tensor_exponents(self.q, len(self.synth_w))

    def render(self) -> np.ndarray:
        """The decoded ``[H, W, C]`` uint8 image, synthesised a few rows (about ``2**13`` pixels) at a time: the
        temporary arrays stay small whatever the image's size."""
        h, w = self.shape
        out = np.empty((h, w, self.channels), np.uint8)
        taps = [(interp_taps(h, g.shape[0]), interp_taps(w, g.shape[1])) for g in self.latents]
        step = max(1, _SYNTH_PIXELS // w)
        mats = synthesis_matrices(self.synth_w, self.synth_b)
        for y0 in range(0, h, step):
            y1 = min(y0 + step, h)
            feats = features(self.latents, h, w, y0, y1, taps, ones=True)
            out[y0:y1] = to_uint8(synthesise(feats, self.synth_w, self.synth_b, mats), y1 - y0, w)
        return out

    @property
    def widths(self) -> list[int]:
        """Synthesis widths ``[L, h_1, ..., C]``."""
        return [len(self.latents)] + [int(w.shape[0]) for w in self.synth_w]

    @property
    def arm_widths(self) -> list[int]:
        """ARM widths ``[K, h_1, ..., 2]``."""
        return [len(CONTEXT)] + [int(w.shape[0]) for w in self.arm.weights]


def arm_shapes(hidden: list[int]) -> list[tuple[int, int]]:
    """``[out, in]`` of every ARM layer."""
    dims = [len(CONTEXT), *hidden, 2]
    return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]


def synth_shapes(levels: int, hidden: list[int], channels: int) -> list[tuple[int, int]]:
    """``[out, in]`` of every synthesis layer."""
    dims = [levels, *hidden, channels]
    return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]


def tensor_exponents(q: int | list[int], layers: int) -> list[int]:
    """The exponent of every synthesis tensor (weights then bias, layer by layer) from a file's ``q``: one integer
    for all (version 2), or one per layer's weights and a last one for every bias (version 3)."""
    if isinstance(q, int):
        return [q] * (2 * layers)
    if len(q) != layers + 1:
        raise ValueError(f"q lists {len(q)} exponents for {layers} layers")
    return [e for lw in q[:-1] for e in (int(lw), int(q[-1]))]


def synth_integers(img: LatentImage) -> np.ndarray:
    """The synthesis as the integers the file codes: ``round(t * 2**q)`` of every tensor, concatenated."""
    tensors = [t for wb in zip(img.synth_w, img.synth_b) for t in wb]
    return np.concatenate([np.rint(t * float(1 << e)).astype(np.int64).reshape(-1)
                           for t, e in zip(tensors, img.steps())])


def write(img: LatentImage) -> bytes:
    """``.inrz`` bytes of a latent image (the latents must fit its ARM's alphabet; format :data:`VERSION`)."""
    bits = latent_bits(img.latents)
    if bits > MAX_LATENT_BITS:
        raise ValueError("latents beyond the supported range")
    layers = len(img.synth_w)
    q = [img.q] * (layers + 1) if isinstance(img.q, int) else [int(e) for e in img.q]
    tensor_exponents(q, layers)  # checks the length
    if any(not 0 <= e <= MAX_QEXP for e in q):
        raise ValueError("synthesis exponents beyond the supported range")
    arm_sec, abits = encode_signed(np.concatenate([t.reshape(-1) for t in img.arm.tensors()]))
    synth_sec, sbits = encode_signed(synth_integers(img))
    sections = [encode_latents(img.latents, img.arm, bits), arm_sec, synth_sec]
    # short keys: "a" ARM hidden widths, "fw" its fraction bits, "ab"/"sb" bit depths of the ARM/synthesis ints
    params = {"v": VERSION, "levels": len(img.latents), "hidden": img.widths[1:-1], "a": img.arm_widths[1:-1],
              "bits": bits, "q": q, "fw": int(img.arm.fw), "ab": abits, "sb": sbits}
    header = {"format": FORMAT, "codec": CODEC, "shape": list(img.shape), "channels": img.channels,
              "params": params, "signal": img.signal}
    return pack(header, sections, version=2)


def bytes_by_part(data: bytes) -> dict[str, int]:
    """Bytes of a latent file by part: ``latents`` (the coded latents), ``arm`` and ``synthesis`` (the two
    networks) and ``header`` (container, header and checksum); they sum to the file's size."""
    _, sections = unpack(data)
    parts = {"latents": len(sections[0]) if sections else 0,
             "arm": len(sections[1]) if len(sections) > 1 else 0,
             "synthesis": sum(len(s) for s in sections[2:])}
    return {**parts, "header": len(data) - sum(parts.values())}


def _int(obj: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = obj.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise bad(f"{where}.{key} must be an integer in [{lo}, {hi}]")
    return v


def _int_list(obj: dict, key: str, lo: int, hi: int, n: tuple[int, int], where: str) -> list[int]:
    v = obj.get(key)
    if not (isinstance(v, list) and n[0] <= len(v) <= n[1] and all(type(x) is int and lo <= x <= hi for x in v)):
        raise bad(f"{where}.{key} must list {n[0]}..{n[1]} integers in [{lo}, {hi}]")
    return list(v)


def is_latent_file(data: bytes) -> bool:
    """Whether ``data`` is a valid container holding a latent-grid image (the checksum is verified)."""
    try:
        header, _ = unpack(data)
    except InvalidFileError:
        return False
    return header.get("format") == FORMAT


def read(data: bytes, what: str = ".inrz file") -> LatentImage:
    """Decode ``.inrz`` bytes of the ``latent`` codec (``grid``, its name in older files); every size is
    validated before any allocation.

    Raises:
        InvalidFileError: for anything but a valid file.
    """
    header, sections = unpack(data)
    name = str(header.get("codec"))
    if header.get("format") != FORMAT or LEGACY_NAMES.get(name, name) != CODEC:
        raise bad(f"not a latent-grid file (format {header.get('format')!r})")
    shape = _int_list(header, "shape", 1, 1 << 15, (2, 2), "header")
    channels = _int(header, "channels", 1, 4, "header")
    params = header.get("params")
    signal = header.get("signal", {})
    if not isinstance(params, dict) or not isinstance(signal, dict):
        raise bad("'params' and 'signal' must be objects")
    levels = _int(params, "levels", 1, MAX_LEVELS, "params")
    hidden = _int_list(params, "hidden", 1, MAX_HIDDEN, (0, 4), "params")
    arm_hidden = _int_list(params, "a", 1, MAX_ARM_HIDDEN, (0, 3), "params")
    bits = _int(params, "bits", 2, MAX_LATENT_BITS, "params")
    a_shapes, s_shapes = arm_shapes(arm_hidden), synth_shapes(levels, hidden, channels)
    fw = _int(params, "fw", FW_RANGE[0], FW_RANGE[1], "params")
    abits = _int(params, "ab", 2, MAX_WEIGHT_BITS, "params")
    sbits = _int(params, "sb", 2, MAX_WEIGHT_BITS, "params")
    h, w = shape
    version = params.get("v", 1)
    if version not in VERSIONS:
        raise bad(f"latent format version {str(version)[:20]} is not decoded by this inrkit (versions "
                  f"{', '.join(map(str, VERSIONS))}); re-encode the image")
    q: int | list[int] = (_int(params, "q", 0, MAX_QEXP, "params") if version == 2 else
                          _int_list(params, "q", 0, MAX_QEXP, (len(s_shapes) + 1, len(s_shapes) + 1), "params"))
    if len(sections) != 3:
        raise bad(f"{len(sections)} sections, expected 3")
    shapes = level_shapes(h, w, levels)
    macs = sum(o * i for o, i in s_shapes) + levels * 4 + sum(o * i for o, i in a_shapes)
    check_work(len(data), len(sections[0]), shapes, hidden, arm_hidden, channels, what)
    check_inrz_image(len(data), h * w, macs, what)
    arm_vals = decode_signed(sections[1], sum(o * i + o for o, i in a_shapes), abits)
    sizes = [n for o, i in s_shapes for n in (o * i, o)]
    scales = np.repeat(np.ldexp(1.0, [-e for e in tensor_exponents(q, len(s_shapes))]), sizes)
    synth_vals = decode_signed(sections[2], sum(sizes), sbits) * scales
    arm = FixedArm(*_split(arm_vals, a_shapes), fw=fw)
    synth_w, synth_b = _split(synth_vals, s_shapes)
    latents = decode_latents(sections[0], shapes, arm, bits)
    return LatentImage((h, w), channels, latents, arm, synth_w, synth_b, q, signal)


def decode_cost(shapes: list[tuple[int, int]], hidden: list[int], arm_hidden: list[int], channels: int) -> int:
    """Estimated CPU time (ns, one core) of decoding levels ``shapes`` with these networks to a PNG: per
    wavefront (NumPy and constriction calls), per latent (context gathering, range decoding, the ARM at 8
    multiply-adds per ns) and per pixel (upsampling per level, 8-bit conversion and PNG, the synthesis at 8
    multiply-adds per ns; measured: 15-18). Fitted, rounded up, to decodes of crafted files on the development
    machine (2 shared cores): a 2040^2 image with an escape per wavefront, 8 x 32768 and 32768 x 8 strips,
    3 x 64 ARMs and 4 x 256 syntheses; it overestimates them by 1.1-2.3x."""
    h, w = shapes[0]
    latents = sum(r * c for r, c in shapes)
    arm = sum(o * i for o, i in arm_shapes(arm_hidden))
    synth = sum(o * i for o, i in synth_shapes(len(shapes), hidden, channels))
    return (COST_WAVEFRONT * wavefronts(shapes) + latents * (COST_LATENT + arm // 8)
            + h * w * (COST_PIXEL + COST_PIXEL_LEVEL * len(shapes) + synth // 8))


COST_WAVEFRONT = 1 << 15  # decode_cost (ns) per wavefront (measured: 14-20 us)
COST_LATENT = 1 << 7  # per latent, besides the ARM (measured: about 100 ns)
COST_PIXEL = 1 << 8  # per pixel, besides the upsampling and the synthesis (8-bit conversion, PNG: up to 110 ns)
COST_PIXEL_LEVEL = 1 << 3  # per pixel and level (two-tap upsampling)


def check_work(file_bytes: int, stream_bytes: int, shapes: list[tuple[int, int]], hidden: list[int],
               arm_hidden: list[int], channels: int, what: str = ".inrz file") -> None:
    """Refuse, from the header and the section sizes alone, a file whose decoding its bytes cannot justify.

    - the latent stream: every latent costs at least :data:`MIN_BITS_PER_LATENT` bits, so ``latents *
      MIN_BITS_PER_LATENT <= 8 * stream_bytes + STREAM_SLACK_BITS``;
    - pixels at most ``INRZ_GRID_PIXELS_FREE + INRZ_GRID_PIXELS_PER_BYTE * file_bytes`` (bytes beyond
      ``INRZ_GRID_KNEE_BYTES``: ``INRZ_GRID_PIXELS_BEYOND`` each) and ``INRZ_GRID_MAX_PIXELS`` (memory: ``decode``
      peaks at about 14 bytes per pixel);
    - :func:`decode_cost` at most ``INRZ_GRID_WORK_FREE + INRZ_GRID_WORK_PER_BYTE * file_bytes`` (bytes beyond
      the knee: ``INRZ_GRID_WORK_BEYOND`` each): any file of up to 64 KB decodes in about 2 s of CPU at most.

    Raises:
        InvalidFileError: one line, naming the bound (docs/limits.md).
    """
    def refuse(msg: str) -> InvalidFileError:
        return InvalidFileError(f"{what}: {msg} ({file_bytes}-byte latent file; see docs/limits.md)")

    h, w = shapes[0]
    latents = sum(r * c for r, c in shapes)
    if latents * MIN_BITS_PER_LATENT > 8 * stream_bytes + STREAM_SLACK_BITS:
        raise refuse(f"{latents} latents cannot fit a {stream_bytes}-byte latent stream (each costs at least "
                     f"{MIN_BITS_PER_LATENT:g} bit)")
    small, large = min(file_bytes, INRZ_GRID_KNEE_BYTES), max(file_bytes - INRZ_GRID_KNEE_BYTES, 0)
    limit = min(INRZ_GRID_MAX_PIXELS,
                INRZ_GRID_PIXELS_FREE + INRZ_GRID_PIXELS_PER_BYTE * small + INRZ_GRID_PIXELS_BEYOND * large)
    if h * w > limit:
        raise refuse(f"an image of {h * w} pixels, more than the file's size justifies ({limit})")
    cost = decode_cost(shapes, hidden, arm_hidden, channels)
    limit = INRZ_GRID_WORK_FREE + INRZ_GRID_WORK_PER_BYTE * small + INRZ_GRID_WORK_BEYOND * large
    if cost > limit:
        raise refuse(f"decoding needs an estimated {cost / 1e9:.2f} s of CPU, more than the file's size justifies "
                     f"({limit / 1e9:.2f} s)")


def _split(values: np.ndarray, shapes: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases of layers ``shapes`` from their concatenation (weights then bias, per layer)."""
    ws, bs, pos = [], [], 0
    for o, i in shapes:
        ws.append(values[pos:pos + o * i].reshape(o, i))
        bs.append(values[pos + o * i:pos + o * i + o])
        pos += o * i + o
    return ws, bs


def read_file(path: str | os.PathLike) -> LatentImage:
    """:func:`read` the file at ``path`` (refusing files over the ``.inrz`` size limit)."""
    return read(read_bytes(path, INRZ_MAX_FILE), str(path))


__all__ = ["CODEC", "CONTEXT", "FORMAT", "LEGACY_NAMES", "VERSION", "FixedArm", "LatentImage", "Layout", "arm_fixed",
           "bytes_by_part", "check_work",
           "coder_table", "contexts", "decode_cost", "decode_latents", "encode_latents", "interp_matrix",
           "is_latent_file", "layout", "level_shapes", "read", "read_file", "write"]
