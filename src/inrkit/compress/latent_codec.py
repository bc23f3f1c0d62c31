"""The ``grid`` latent-grid image codec: file format and decoder (NumPy and ``constriction`` only, no torch).

A Cool-chic / C3-style image (Ladune et al. 2023; Leguay et al. 2023; Kim et al. 2024): ``L`` dense 2D grids
of integer latents at full, 1/2, 1/4 ... resolution (one latent per level per position), each upsampled
bilinearly to the image size (:func:`interp_matrix`, the same float64 matrices on both sides); a synthesis MLP
maps the ``L`` upsampled values of a pixel to its colour. The latents are range-coded in raster order, level
by level, with a discrete Laplace whose mode and scale an auto-regressive context model (ARM, a tiny MLP over
the :data:`CONTEXT` causal neighbours of the same level) predicts from latents already decoded.

**Determinism.** The ARM runs in integer fixed point (:func:`arm_fixed`): contexts are integers shifted by
``FA`` fraction bits, weights and biases ``round(w * 2**fw)`` (``fw`` chosen per file), biases shifted left by
``FA``, int64 accumulations, ReLU then an arithmetic right shift by ``fw``; the two outputs (the mode, and
a scale ``s``) become the integers ``mq = round(8 mode)`` and ``j = round(8 s)`` by integer rounding. The
distribution of a latent is the Laplace mass of ``[k - 1/2, k + 1/2]`` (mode ``mq / 8``, ``exp(-1/(8 b)) =
rho_j``, ``1 - rho_j = MANTISSAS[j % 8] * 2**-(8 + j // 8)``, exact in float64 as
:func:`inrkit.compress.entropy.ratio`), computed from running products ``rho**n`` (``numpy.multiply.accumulate``,
sequential IEEE multiplications and subtractions, entries below ``2**-100`` set to 0: :func:`coder_weights`),
quantised by constriction; the range coder is integer arithmetic. So the decoded
latents are the same integers on every machine. The synthesis (float64 NumPy) and the upsampling are not
integer arithmetic: the decoded 8-bit image may differ across BLAS builds only where a value lies within
about 1e-12 of a rounding boundary.

A file is an ``.inrz`` v2 container (:mod:`inrkit.compress.container`) with header ``{"format": "inrz-latent",
"codec": "grid", "shape": [H, W], "channels": C, "params": {...}, "signal": {...}}`` and the sections:
the latents (one range-coded stream), the ARM's integers and the synthesis's integers (weights ``* 2**q``),
each network's tensors concatenated into one :func:`inrkit.compress.entropy.encode_codes` section of signed
integers, its bit depth in ``params``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from inrkit.compress import entropy
from inrkit.compress.container import pack, unpack
from inrkit.errors import InvalidFileError
from inrkit.limits import INRZ_MAX_FILE, check_inrz_image

FORMAT = "inrz-latent"
CODEC = "grid"
FA = 8  # fraction bits of the ARM's activations
FW_RANGE = (2, 12)  # fraction bits of the ARM's weights (chosen per file by the encoder)
# causal neighbours (row, column offset) in the same level: two rows above (columns -2..2) and two to the left
CONTEXT = ((-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
           (0, -2), (0, -1))
PAD = 2
MANTISSAS = (255, 235, 215, 197, 181, 166, 152, 140)  # round(256 * 2**(-k/8)), k = 0..7 (k = 0: 255)
SCALES = 8 * 15  # scale indices j: 1 - R_j = MANTISSAS[j % 8] * 2**-(8 + j // 8)
MAX_LEVELS = 12
MAX_HIDDEN = 256
MAX_ARM_HIDDEN = 64
MAX_LATENT_BITS = 14
MAX_WEIGHT_BITS = 16
MAX_QEXP = 24
_HIDDEN_CLIP = 1 << 40
_TINY = 2.0 ** -100
MODE_STEPS = 8  # mode resolution of the coder's Laplace: 1/8 of a latent step


def bad(msg: str) -> InvalidFileError:
    """An :class:`InvalidFileError` about a latent-grid file."""
    return InvalidFileError(f"invalid grid .inrz: {msg}")


# ------------------------------------------------------------------ geometry
def level_shapes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each latent level: ``ceil(h / 2**l), ceil(w / 2**l)``."""
    return [(-(-h // (1 << lv)), -(-w // (1 << lv))) for lv in range(levels)]


def interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``[n_out, n_in]`` float64 linear interpolation (half-pixel centres, edges clamped, as
    ``torch.nn.functional.interpolate(..., align_corners=False)``)."""
    m = np.zeros((n_out, n_in))
    if n_in == 1:
        m[:, 0] = 1.0
        return m
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 2)
    t = src - i0
    rows = np.arange(n_out)
    m[rows, i0] += 1.0 - t
    m[rows, i0 + 1] += t
    return m


def contexts(grid: np.ndarray) -> np.ndarray:
    """``[rows * cols, len(CONTEXT)]`` int64 causal contexts of every latent of one level (zeros outside)."""
    r, c = grid.shape
    padded = np.zeros((r + PAD, c + 2 * PAD), np.int64)
    padded[PAD:, PAD:PAD + c] = grid
    cols = [padded[PAD + dr : PAD + dr + r, PAD + dc : PAD + dc + c].reshape(-1) for dr, dc in CONTEXT]
    return np.stack(cols, axis=1)


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


def arm_fixed(arm: FixedArm, ctx: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mq, j)`` (int64) of contexts ``ctx [N, K]`` for latents coded with offset ``2**(bits-1)``.

    Integer arithmetic only: the same result on every machine.
    """
    h = ctx.astype(np.int64) << FA
    n = len(arm.weights)
    for i, (w, b) in enumerate(zip(arm.weights, arm.biases)):
        acc = h @ w.T + (b << FA)
        if i < n - 1:
            h = np.clip(np.maximum(acc, 0) >> arm.fw, 0, _HIDDEN_CLIP)
        else:
            h = acc >> arm.fw
    half = 1 << (FA - 1)
    alphabet = 1 << bits
    mq = ((MODE_STEPS * h[:, 0] + half) >> FA) + MODE_STEPS * (alphabet >> 1)  # 8 x the mode, in code units
    j = (8 * h[:, 1] + half) >> FA
    return np.clip(mq, 0, MODE_STEPS * (alphabet - 1)), np.clip(j, 0, SCALES - 1)


def scale_param(j: int) -> int:
    """The 16-bit :func:`inrkit.compress.entropy.ratio` parameter of scale index ``j``."""
    return (j // 8) << 8 | MANTISSAS[j % 8]


def coder_weights(mq: int, j: int, alphabet: int) -> np.ndarray:
    """Unnormalised float64 weights of the codes ``k < alphabet``: the Laplace mass of ``[k - 1/2, k + 1/2]``,
    mode ``mq / 8``, ``exp(-1/(8 b)) = rho_j``. With ``T[n] = rho**n`` (sequential products, values below
    ``2**-100`` set to 0) and ``n = |8 k - mq|``: ``(T[n-4] - T[n+4]) / 2`` when the mode is outside the bin,
    ``1 - (T[4-n] + T[4+n]) / 2`` inside. Bit-identical on every machine."""
    half = MODE_STEPS // 2
    steps = np.full(MODE_STEPS * alphabet + MODE_STEPS, entropy.ratio(scale_param(j)))
    steps[0] = 1.0
    table = np.multiply.accumulate(steps)
    table[table < _TINY] = 0.0
    n = np.abs(MODE_STEPS * np.arange(alphabet) - mq)
    inside = n < half
    out = np.empty(alphabet)
    out[~inside] = 0.5 * (table[n[~inside] - half] - table[n[~inside] + half])
    out[inside] = 1.0 - 0.5 * (table[half - n[inside]] + table[half + n[inside]])
    return out


class ModelCache:
    """constriction categorical models per ``(m2, j)``, built on first use."""

    def __init__(self, bits: int) -> None:
        self.alphabet = 1 << bits
        self.models: dict[tuple[int, int], Any] = {}

    def get(self, m2: int, j: int) -> Any:
        key = (int(m2), int(j))
        model = self.models.get(key)
        if model is None:
            import constriction

            w = coder_weights(key[0], key[1], self.alphabet)
            model = constriction.stream.model.Categorical(w, perfect=False)
            self.models[key] = model
        return model

    def bits(self, code: int, m2: int, j: int) -> float:
        """Ideal code length of ``code`` under the (unquantised) model weights."""
        w = coder_weights(int(m2), int(j), self.alphabet)
        return -math.log2(max(w[code] / w.sum(), 2.0 ** -24))


def latent_bits(latents: list[np.ndarray]) -> int:
    """Smallest bit depth whose signed range holds every latent (at least 2)."""
    top = max((int(np.abs(g).max()) if g.size else 0) for g in latents)
    bits = 2
    while top > (1 << (bits - 1)) - 1:
        bits += 1
    return bits


def encode_latents(latents: list[np.ndarray], arm: FixedArm, bits: int) -> bytes:
    """Range-code every level's integer latents (raster order, coarse levels last) with the ARM's Laplaces."""
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    cache = ModelCache(bits)
    off = 1 << (bits - 1)
    for grid in latents:
        m2, j = arm_fixed(arm, contexts(grid), bits)
        codes = grid.reshape(-1).astype(np.int64) + off
        for k, a, b in zip(codes.tolist(), m2.tolist(), j.tolist()):
            enc.encode(k, cache.get(a, b))
    return enc.get_compressed().astype(">u4").tobytes()


def decode_latents(data: bytes, shapes: list[tuple[int, int]], arm: FixedArm, bits: int) -> list[np.ndarray]:
    """Inverse of :func:`encode_latents`: each latent's context from the latents already decoded."""
    import constriction

    words = np.frombuffer(data + b"\0" * (-len(data) % 4), ">u4").astype(np.uint32)
    dec = constriction.stream.queue.RangeDecoder(words)
    cache = ModelCache(bits)
    off = 1 << (bits - 1)
    memo: dict[bytes, Any] = {}
    out = []
    for r, c in shapes:
        stride = c + 2 * PAD
        padded = np.zeros((r + PAD) * stride, np.int64)
        offsets = np.array([dr * stride + dc for dr, dc in CONTEXT], np.int64)
        for y in range(r):
            base = (y + PAD) * stride + PAD
            for x in range(c):
                pos = base + x
                ctx = padded[pos + offsets]
                key = ctx.tobytes()
                model = memo.get(key)
                if model is None:  # the ARM of a context seen before gives the same integers: reuse them
                    m2, j = arm_fixed(arm, ctx[None, :], bits)
                    model = memo[key] = cache.get(int(m2[0]), int(j[0]))
                try:
                    code = dec.decode(model)
                except (KeyboardInterrupt, SystemExit, MemoryError):
                    raise
                except BaseException as exc:  # noqa: BLE001 - constriction raises AssertionError or a Rust panic
                    raise bad(f"corrupt latent stream ({type(exc).__name__})") from None
                padded[pos] = int(code) - off
        out.append(padded.reshape(r + PAD, stride)[PAD:, PAD:PAD + c].copy())
    return out


# ------------------------------------------------------------------ synthesis
def upsampled(latents: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """``[h * w, L]`` float64: every level interpolated to the image size."""
    cols = []
    for grid in latents:
        r, c = grid.shape
        g = grid.astype(np.float64)
        if (r, c) != (h, w):
            g = interp_matrix(h, r) @ g @ interp_matrix(w, c).T
        cols.append(g.reshape(-1))
    return np.stack(cols, axis=1)


def synthesise(features: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray]) -> np.ndarray:
    """The synthesis MLP (ReLU hidden layers, linear output) in float64: ``[P, C]`` values in [0, 1] scale."""
    x = features
    for i, (wt, b) in enumerate(zip(weights, biases)):
        x = x @ wt.T + b
        if i < len(weights) - 1:
            x = np.maximum(x, 0.0)
    return x


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
        q: synthesis quantisation exponent (step ``2**-q``).
        signal: the signal metadata of the header.
    """

    shape: tuple[int, int]
    channels: int
    latents: list[np.ndarray]
    arm: FixedArm
    synth_w: list[np.ndarray]
    synth_b: list[np.ndarray]
    q: int
    signal: dict[str, Any]

    def render(self) -> np.ndarray:
        """The decoded ``[H, W, C]`` uint8 image."""
        h, w = self.shape
        return to_uint8(synthesise(upsampled(self.latents, h, w), self.synth_w, self.synth_b), h, w)

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


def write(img: LatentImage) -> bytes:
    """``.inrz`` bytes of a latent image (the latents must fit its ARM's alphabet)."""
    bits = latent_bits(img.latents)
    if bits > MAX_LATENT_BITS:
        raise ValueError("latents beyond the supported range")
    scale = float(1 << img.q)
    arm_sec, abits = encode_signed(np.concatenate([t.reshape(-1) for t in img.arm.tensors()]))
    synth = [np.rint(t * scale).astype(np.int64).reshape(-1) for wb in zip(img.synth_w, img.synth_b) for t in wb]
    synth_sec, sbits = encode_signed(np.concatenate(synth))
    sections = [encode_latents(img.latents, img.arm, bits), arm_sec, synth_sec]
    # short keys: "a" ARM hidden widths, "fw" its fraction bits, "ab"/"sb" bit depths of the ARM/synthesis ints
    params = {"levels": len(img.latents), "hidden": img.widths[1:-1], "a": img.arm_widths[1:-1],
              "bits": bits, "q": int(img.q), "fw": int(img.arm.fw), "ab": abits, "sb": sbits}
    header = {"format": FORMAT, "codec": CODEC, "shape": list(img.shape), "channels": img.channels,
              "params": params, "signal": img.signal}
    return pack(header, sections, version=2)


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


def is_grid_file(data: bytes) -> bool:
    """Whether ``data`` is a valid container holding a latent-grid image (the checksum is verified)."""
    try:
        header, _ = unpack(data)
    except InvalidFileError:
        return False
    return header.get("format") == FORMAT


def read(data: bytes, what: str = ".inrz file") -> LatentImage:
    """Decode ``.inrz`` bytes of the ``grid`` codec; every size is validated before any allocation.

    Raises:
        InvalidFileError: for anything but a valid file.
    """
    header, sections = unpack(data)
    if header.get("format") != FORMAT or header.get("codec") != CODEC:
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
    q = _int(params, "q", 0, MAX_QEXP, "params")
    a_shapes, s_shapes = arm_shapes(arm_hidden), synth_shapes(levels, hidden, channels)
    fw = _int(params, "fw", FW_RANGE[0], FW_RANGE[1], "params")
    abits = _int(params, "ab", 2, MAX_WEIGHT_BITS, "params")
    sbits = _int(params, "sb", 2, MAX_WEIGHT_BITS, "params")
    h, w = shape
    macs = sum(o * i for o, i in s_shapes) + levels * 4 + sum(o * i for o, i in a_shapes)
    check_inrz_image(len(data), h * w, macs, what)
    if len(sections) != 3:
        raise bad(f"{len(sections)} sections, expected 3")
    arm_vals = decode_signed(sections[1], sum(o * i + o for o, i in a_shapes), abits)
    synth_vals = decode_signed(sections[2], sum(o * i + o for o, i in s_shapes), sbits) * 2.0 ** -q
    arm = FixedArm(*_split(arm_vals, a_shapes), fw=fw)
    synth_w, synth_b = _split(synth_vals, s_shapes)
    latents = decode_latents(sections[0], level_shapes(h, w, levels), arm, bits)
    return LatentImage((h, w), channels, latents, arm, synth_w, synth_b, q, signal)


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
    from inrkit.compress.decoder import read_file as read_bytes

    return read(read_bytes(path, INRZ_MAX_FILE), str(path))


__all__ = ["CODEC", "CONTEXT", "FORMAT", "FixedArm", "LatentImage", "arm_fixed", "contexts", "decode_latents",
           "encode_latents", "interp_matrix", "is_grid_file", "level_shapes", "read", "read_file", "write"]
