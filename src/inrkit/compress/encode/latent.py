"""The ``latent`` image codec (latent grids), encoder side (torch): model, rate-distortion task, encoding.

Written from Cool-chic (Ladune et al. 2023; Leguay et al. 2023) and C3 (Kim et al. 2024): hierarchical dense
latent grids (full, 1/2, 1/4 ... resolution), quantised with noise (C3's noisy soft rounding) for the first part of
training, then rounded and fixed while the networks adapt; a rate from a Laplace per latent whose mode and scale a tiny
auto-regressive context MLP (ARM) predicts from causal neighbours; bilinear upsampling; a small synthesis MLP.
It trains on ``rate (bits per pixel) + lambda * MSE`` (MSE of values in [0, 1]) through
:func:`inrkit.train.fit` as a :class:`LatentTask`. The file format and the decoder are in
:mod:`inrkit.compress.decode.latent` (NumPy only).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence, cast

import numpy as np
import torch
from torch import Tensor, nn

from inrkit.compress.decode import latent as lc
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import check_range
from inrkit.metrics import psnr_from_mse
from inrkit.train import FitConfig, fit
from inrkit.train.compiled import COMPILE_MODES, COMPILE_SECONDS, CompileMode, resolve_compile
from inrkit.utils import atomic_write

_LOG2 = math.log(2.0)
_MAX_BITS = 17.0  # the coder's costliest symbol: weight FLOOR = 2**-17 (latent_codec)


@dataclass
class LatentOptions:
    """Settings of the ``latent`` codec.

    Args:
        lmbda: rate-distortion trade-off: the loss is ``bpp + lmbda * MSE`` (pixel values in [0, 1]); larger
            gives higher quality and more bits.
        levels: latent grids (full, 1/2, 1/4 ... resolution).
        hidden: synthesis MLP hidden widths (ReLU).
        arm_hidden: context model hidden widths (ReLU).
        steps: training steps.
        lr: Adam's learning rate (latents and networks).
        noise_fraction: fraction of the steps trained with noise (the soft phase); for the rest the latents are
            rounded and fixed while the networks adapt to them.
        temperature: soft-rounding temperature at the start and the end of the soft phase (linear in between):
            the latents are quantised as ``softround(softround(y, T) + n, T)`` (C3, Kim et al. 2024, after
            Agustsson & Theis 2020); ``None``: ``y + n`` (Cool-chic v1).
        noise: the noise ``n`` of the soft phase: ``("kumaraswamy", a0, a1)`` (Kumaraswamy noise of parameter ``a``
            with its mode at 0 on ``(-1/2, 1/2)``; ``a = 1`` is uniform), or ``("gaussian", s0, s1)`` (standard
            deviation ``s``); the parameter goes linearly from the first value to the second.
        seed: seed of the initialisation and the noise.
        compile: run the noise phase's forward pass through ``torch.compile``: ``auto`` where
            :func:`compile_pays` says the seconds saved exceed the compile seconds (``$INRKIT_COMPILE`` overrides
            ``auto``), ``on``, ``off``. Compiled, the noise comes from inductor's generator: the same seed gives
            the same file on one machine, another file than uncompiled.
    """

    lmbda: float = 1000.0
    levels: int = 7
    hidden: Sequence[int] = (40,)
    arm_hidden: Sequence[int] = (16, 16)
    steps: int = 2000
    lr: float = 2e-2
    noise_fraction: float = 0.75
    temperature: tuple[float, float] | None = (0.5, 0.2)
    noise: tuple[str, float, float] = ("kumaraswamy", 1.0, 1.5)
    seed: int = 0
    compile: CompileMode = "auto"

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise InvalidInputError(f"latent codec: compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")
        check_range("lambda", self.lmbda, 0, 1e7, low_open=True, optional=False)
        check_range("levels", self.levels, 1, lc.MAX_LEVELS, optional=False)
        check_range("steps", self.steps, 1, 10**6, optional=False)
        check_range("lr", self.lr, 0, 1, low_open=True, optional=False)
        check_range("noise_fraction", self.noise_fraction, 0, 1, optional=False)
        if self.temperature is not None and (len(self.temperature) != 2
                                             or not all(0 < t <= 10 for t in self.temperature)):
            raise InvalidInputError(f"latent codec: temperature must be two values in (0, 10], got {self.temperature}")
        kind, *params = self.noise
        if kind not in ("kumaraswamy", "gaussian") or len(params) != 2 or not all(0 < v <= 10 for v in params):
            raise InvalidInputError(f"latent codec: noise must be ('kumaraswamy' or 'gaussian', start, end) with "
                                    f"values in "
                                    f"(0, 10], got {self.noise}")
        if len(self.hidden) > 4 or any(not 1 <= int(h) <= lc.MAX_HIDDEN for h in self.hidden):
            raise InvalidInputError(f"latent codec synthesis: at most 4 hidden layers of 1..{lc.MAX_HIDDEN}")
        if len(self.arm_hidden) > 3 or any(not 1 <= int(h) <= lc.MAX_ARM_HIDDEN for h in self.arm_hidden):
            raise InvalidInputError(f"latent codec context model: at most 3 hidden layers of 1..{lc.MAX_ARM_HIDDEN}")


PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"steps": 600},
    "default": {"steps": 2000},
    "best": {"steps": 5000},
}
"""Encoder presets: training steps (measured times in docs/compress.md)."""


LOW_RATE_BPP = 0.15
"""At a bit-rate target up to this, :func:`preset_options` gives the smaller :data:`LOW_RATE_NETWORKS`."""
LOW_RATE_NETWORKS: dict[str, Any] = {"hidden": (24,), "arm_hidden": (8, 8)}
"""Synthesis 7 -> 24 -> 3 and ARM 12 -> 8 -> 8 -> 2 (461 parameters instead of 957): at lambda 45 (0.12-0.16 bpp,
384x256 Kodak/2, fast preset) their files cost less rate-distortion (``bpp + lambda MSE``: kodim01 0.409 vs
0.418, kodim23 0.282 vs 0.315); at lambda 150 (0.21-0.25 bpp) the larger ones win (kodim01 0.790 vs 0.850)."""


def preset_options(preset: str = "default", bpp: float | None = None, **overrides: Any) -> LatentOptions:
    """:class:`LatentOptions` of a preset, with ``overrides`` (``None`` values ignored); at a bit-rate target
    ``bpp`` up to :data:`LOW_RATE_BPP`, the smaller :data:`LOW_RATE_NETWORKS` (unless overridden)."""
    if preset not in PRESETS:
        raise InvalidInputError(f"unknown latent preset {preset!r}; choose from {sorted(PRESETS)}")
    low = LOW_RATE_NETWORKS if bpp is not None and bpp <= LOW_RATE_BPP else {}
    values = {**PRESETS[preset], **low, **{k: v for k, v in overrides.items() if v is not None}}
    return LatentOptions(**values)


def linears(layers: nn.ModuleList) -> list[nn.Linear]:
    """The layers of an MLP built by :func:`_mlp`, typed."""
    return [cast(nn.Linear, m) for m in layers]


def _mlp(dims: list[int], generator: torch.Generator) -> nn.ModuleList:
    layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1))
    for layer in linears(layers):  # seeded init (uniform, fan-in scaled as PyTorch's default)
        bound = 1.0 / math.sqrt(layer.in_features)
        with torch.no_grad():
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
    return layers


def _run(layers: nn.ModuleList, x: Tensor) -> Tensor:
    """The MLP on the columns of ``x`` ``[features, points]`` (points along the long axis: measured 1.2-1.3x faster
    than rows on one CPU thread for these 7-40 wide layers, forward and backward)."""
    for i, layer in enumerate(linears(layers)):
        x = torch.addmm(layer.bias[:, None], layer.weight, x)
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x


SAVED_NS_PER_PIXEL_STEP = 120.0
"""Eager minus compiled nanoseconds per pixel of a noise-phase step (forward and backward; one CPU thread, AMD EPYC
Zen 3, default networks): measured 250 on a 384x256 and 130 on a 768x512 Kodak image (docs/compress.md, "Encoding
speed"). In the last phase (latents rounded, no latent gradients) compiling measured no faster, so it stays eager."""


def compile_pays(pixels: int, noise_steps: int) -> bool:
    """The ``auto`` rule: compile the noise phase when ``pixels x noise_steps x`` :data:`SAVED_NS_PER_PIXEL_STEP`
    exceeds :data:`~inrkit.train.compiled.COMPILE_SECONDS` (a warm inductor cache; a cold one measured 12-16 s)."""
    return pixels * noise_steps * SAVED_NS_PER_PIXEL_STEP * 1e-9 > COMPILE_SECONDS


class LatentImageModel(nn.Module):
    """Latent grids, ARM and synthesis of one image.

    Args:
        shape: ``(H, W)``.
        channels: colour channels.
        options: the codec's settings.
        compile: run the noise phase's forward pass through ``torch.compile`` (falls back to eager, with a
            warning, where compiling fails).
    """

    _progress: Tensor

    def __init__(self, shape: tuple[int, int], channels: int, options: LatentOptions, compile: bool = False) -> None:
        super().__init__()
        h, w = shape
        self.shape, self.channels = (h, w), channels
        gen = torch.Generator().manual_seed(options.seed)
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(r, c)) for r, c in lc.level_shapes(h, w,
                                                                                                      options.levels))
        for i, (r, c) in enumerate(lc.level_shapes(h, w, options.levels)):
            self.register_buffer(f"up_h{i}", torch.from_numpy(lc.interp_matrix(h, r)).float(), persistent=False)
            self.register_buffer(f"up_w{i}", torch.from_numpy(lc.interp_matrix(w, c)).float(), persistent=False)
        self.synthesis = _mlp([options.levels, *map(int, options.hidden), channels], gen)
        self.arm = _mlp([len(lc.CONTEXT), *map(int, options.arm_hidden), 2], gen)
        with torch.no_grad():  # start at a Laplace scale of about 1 (s = log2(8 b))
            linears(self.arm)[-1].bias[1] = 3.0
        self.temperature, self.noise = options.temperature, options.noise
        self.quant_mode = "noise"  # "noise" (training), then "round" (latents rounded and fixed)
        # through the noise phase, 0..1 (the task sets it): schedules temperature and noise; a tensor, so that a
        # compiled forward pass reads it instead of recompiling for every value
        self.register_buffer("_progress", torch.zeros(()), persistent=False)
        self.compile_noise = compile
        self.compile_seconds = 0.0  # wall seconds of the call that compiled
        self._compiled: Any = None

    @property
    def progress(self) -> float:
        """How far through the noise phase training is, 0..1."""
        return float(self._progress)

    @progress.setter
    def progress(self, value: float) -> None:
        self._progress.fill_(value)

    def _noise(self, y: Tensor) -> Tensor:
        kind, start, end = self.noise
        value = start + (end - start) * self._progress
        if kind == "gaussian":
            return value * torch.randn_like(y)
        return kumaraswamy_noise(torch.rand_like(y), value)

    def quantised(self) -> list[Tensor]:
        """The latents after the current quantisation: noisy soft rounding while training in the noise phase,
        else rounding (without gradient: in the last phase only the networks train, as in Cool-chic's C3
        preset, whose straight-through phase passes the gradient of a soft rounding at temperature 1e-4)."""
        if not self.training or self.quant_mode == "round":
            return [torch.round(y).detach() for y in self.latents]
        if self.temperature is None:
            return [y + self._noise(y) for y in self.latents]
        t = self.temperature[0] + (self.temperature[1] - self.temperature[0]) * self._progress
        return [soft_round(soft_round(y, t) + self._noise(y), t) for y in self.latents]

    def synthesise(self, q: list[Tensor]) -> Tensor:
        """``[H, W, C]`` values in [0, 1] scale from (quantised) latents."""
        h, w = self.shape
        feats = [getattr(self, f"up_h{i}") @ g @ getattr(self, f"up_w{i}").T if g.shape != (h, w) else g
                 for i, g in enumerate(q)]
        x = torch.stack(feats).reshape(len(q), h * w)
        return _run(self.synthesis, x).T.reshape(h, w, self.channels)

    def rate_bits(self, q: list[Tensor]) -> Tensor:
        """Estimated bits of the latents: discretised Laplace, mode and scale from the ARM (one ARM call over
        every level; the causal context is the first 12 entries of a 3x5 window, row-major)."""
        ctx = [nn.functional.unfold(nn.functional.pad(g[None, None], (lc.PAD, lc.PAD, lc.PAD, 0)),
                                    (lc.PAD + 1, 2 * lc.PAD + 1))[0, :len(lc.CONTEXT)] for g in q]
        out = _run(self.arm, torch.cat(ctx, dim=1))
        return laplace_bits(torch.cat([g.reshape(-1) for g in q]), out[0], out[1])

    def forward(self) -> tuple[Tensor, Tensor]:
        """The image ``[H, W, C]`` and the latents' estimated bits."""
        if self.compile_noise and self.training and self.quant_mode == "noise":
            return self._compiled_forward()
        return self._forward()

    def _forward(self) -> tuple[Tensor, Tensor]:
        q = self.quantised()
        return self.synthesise(q), self.rate_bits(q)

    def _compiled_forward(self) -> tuple[Tensor, Tensor]:
        if self._compiled is not None:
            return self._compiled()
        t = time.perf_counter()
        compiled = torch.compile(self._forward, fullgraph=True, dynamic=False)
        try:
            out = compiled()
        except Exception as exc:  # no C++ compiler, an unsupported platform...: train eagerly
            warnings.warn(f"latent codec: torch.compile failed ({type(exc).__name__}: {exc}); training eagerly",
                          RuntimeWarning, stacklevel=2)
            self.compile_noise = False
            return self._forward()
        self._compiled, self.compile_seconds = compiled, time.perf_counter() - t
        return out


def soft_round(y: Tensor, t: Tensor | float) -> Tensor:
    """Soft rounding of temperature ``t`` (Agustsson & Theis 2020): ``m + tanh(r / t) / (2 tanh(1 / (2 t)))``
    with ``m = floor(y) + 1/2``, ``r = y - m``; the identity as ``t`` grows, ``round`` as it goes to 0."""
    m = torch.floor(y) + 0.5
    return m + torch.tanh((y - m) / t) / (2 * torch.tanh(torch.as_tensor(0.5 / t)))


def kumaraswamy_noise(u: Tensor, a: Tensor | float) -> Tensor:
    """Noise on ``(-1/2, 1/2)`` from uniform ``u``: Kumaraswamy(``a``, ``b``) with ``b`` putting its mode at the
    centre, ``b = (2**a (a - 1) + 1) / a`` (C3; ``a = 1`` is uniform, larger is more peaked), minus 1/2."""
    b = (2.0 ** a * (a - 1) + 1) / a
    return (1 - (1 - u) ** (1 / b)) ** (1 / a) - 0.5


def laplace_scale(s: Tensor) -> Tensor:
    """The Laplace scale ``b`` of the ARM's scale output ``s``: the coder's index is ``j = round(8 s)`` with
    ``1 - rho_j ~= 0.996 * 2**(-j/8)`` and ``rho = exp(-1 / (8 b))`` (so ``s ~= log2(8 b)``)."""
    j = 8 * s
    j = j + (j.clamp(0.0, lc.SCALES - 1) - j).detach()  # the coder's range; gradients pass (straight through)
    return -1.0 / (lc.MODE_STEPS * torch.log1p(-0.996 * torch.exp2(-j / 8)))


def laplace_bits(y: Tensor, mu: Tensor, s: Tensor) -> Tensor:
    """Sum of ``-log2 P(y)``, ``P`` the Laplace(mu, b(s)) mass of ``[y - 1/2, y + 1/2]`` (each term capped
    at 17 bits, as the coder's smallest probabilities; gradients pass the cap)."""
    b = laplace_scale(s)

    def cdf(x: Tensor) -> Tensor:
        d = x - mu
        e = torch.exp(-d.abs() / b)
        return torch.where(d < 0, 0.5 * e, 1 - 0.5 * e)

    upper, lower = cdf(y + 0.5), cdf(y - 0.5)
    # above the mode, 1 - F is computed directly (exact tails): P = S(y - 1/2) - S(y + 1/2), S = 1 - F
    d_lo = y - 0.5 - mu
    tail = 0.5 * (torch.exp(-d_lo.clamp(min=0) / b) - torch.exp(-(d_lo + 1).clamp(min=0) / b))
    p = torch.where(d_lo > 0, tail, upper - lower).clamp_min(2.0 ** -_MAX_BITS)
    bits = -torch.log2(p)
    return (bits + (bits.clamp(max=_MAX_BITS) - bits).detach()).sum()


@dataclass
class RateTarget:
    """Steer lambda during training toward a bit rate or a PSNR (inrkit's addition: the papers fix lambda).

    While the latents are trained with noise (from :data:`CONTROL_START` of those steps on), after every step
    ``lambda *= exp(-gain * (ln bpp - ln target))`` (``bpp``: ``latent_scale`` x the ARM's estimate of the
    latents rounded, as the file codes them, plus ``overhead_bits`` per image) or ``lambda *= exp(gain * (target -
    psnr))`` (dB, of the training step); then lambda stays fixed for the last phase (latents rounded), so the result
    is the rate-distortion optimum of one lambda. The step's error is clipped to +-5 and lambda to
    :data:`LAMBDA_RANGE`.

    Args:
        bpp: target bits per pixel of the whole file.
        psnr: target PSNR in dB.
        overhead_bits: bits of the file besides the latents (header, networks): estimated
            (:func:`overhead_bits`), or measured on an earlier training of the same image.
        latent_scale: coded latent bits per steered estimated bit (1 until an earlier training measured it: the
            ARM still learns after the control ends, the coder's fixed-point model costs a little more, and at a
            fixed lambda the rate keeps falling while the noise and temperature anneal).
        gain: the controller's step.
    """

    bpp: float | None = None
    psnr: float | None = None
    overhead_bits: float = 0.0
    latent_scale: float = 1.0
    gain: float = 0.02

    def update(self, lmbda: float, bits: float, mse: float, pixels: int) -> float:
        """The next lambda after a step whose latents cost ``bits`` with distortion ``mse`` (values in [0, 1])."""
        if self.bpp is not None:
            err = -math.log(max(self.latent_scale * bits + self.overhead_bits, 1.0) / pixels / self.bpp)
        elif self.psnr is not None:
            err = self.psnr - psnr_from_mse(max(mse, 1e-12), 1.0)
        else:
            return lmbda
        return float(min(max(lmbda * math.exp(self.gain * max(min(err, 5.0), -5.0)), LAMBDA_RANGE[0]),
                         LAMBDA_RANGE[1]))


LAMBDA_RANGE = (0.1, 1e6)
"""Where :class:`RateTarget` keeps lambda."""
CONTROL_EVERY = 4
"""With a bit-rate target, the rounded latents' rate is estimated every this many steps (an ARM pass without
gradient: about 5 % more time) and steers lambda until the next estimate."""
CONTROL_START = 0.1
""":class:`RateTarget` steers from this fraction of the noise steps on (before, the latents are still growing
from zero and the rate says little about the final one)."""


class LatentTask:
    """``bpp + lmbda * MSE`` of a :class:`LatentImageModel` on one image (a :class:`~inrkit.train.task.Task`).

    Args:
        pixels: ``[H, W, C]`` values in 0..255.
        lmbda: weight of the MSE (values in [0, 1]); with ``control``, where lambda starts.
        noise_steps: steps trained with noise before the latents are rounded and fixed.
        control: steer lambda toward a bit rate or a PSNR during the noise steps.
    """

    supports_bf16 = False
    data_range = 1.0

    def __init__(self, pixels: np.ndarray, lmbda: float, noise_steps: int, control: RateTarget | None = None) -> None:
        self.target = torch.from_numpy(np.ascontiguousarray(pixels, np.float32) / 255.0)
        self.lmbda, self.noise_steps = float(lmbda), int(noise_steps)
        self.pixels = int(pixels.shape[0] * pixels.shape[1])
        self.control = control
        self._last = (0.0, 0.0)
        self.rounded_bits = 0.0  # the rounded latents' estimated bits at the last control step (bit-rate target)
        self._calls = 0

    def num_samples(self) -> int:
        """0: the whole image every step."""
        return 0

    def train_batch(self, batch_size: int | None, generator: torch.Generator, device: torch.device) -> tuple:
        """Nothing: the model holds the whole image."""
        if self.target.device != device:
            self.target = self.target.to(device)
        return ()

    def loss(self, model: nn.Module, *batch: Any) -> tuple[Tensor, Tensor]:
        """Rate-distortion loss and the MSE (values in [0, 1])."""
        img, bits = model()
        mse = torch.mean((img - self.target) ** 2)
        if self.control is not None:
            self._last = (self._control_bits(model, float(bits.detach())), float(mse.detach()))
        return bits / self.pixels + self.lmbda * mse, mse

    def _control_bits(self, model: nn.Module, noisy: float) -> float:
        """The bits the controller steers: with a bit-rate target, the rounded latents' (what the file codes;
        the noisy ones cost 5-20 % more), refreshed every :data:`CONTROL_EVERY` steps; else the step's."""
        if self.control is None or self.control.bpp is None or not isinstance(model, LatentImageModel) \
                or model.quant_mode == "round":
            return noisy
        self._calls += 1
        if self._calls % CONTROL_EVERY == 1 or not self.rounded_bits:
            with torch.no_grad():
                self.rounded_bits = float(model.rate_bits([torch.round(y) for y in model.latents]))
        return self.rounded_bits

    def on_step_end(self, state: Any) -> None:
        """Steer lambda (with a ``control``, during the noise steps); round and fix the latents after
        ``noise_steps``."""
        state.model.progress = min(state.step / max(self.noise_steps, 1), 1.0)
        if state.step >= self.noise_steps:
            state.model.quant_mode = "round"
        elif self.control is not None and state.step >= CONTROL_START * self.noise_steps:
            self.lmbda = self.control.update(self.lmbda, *self._last, self.pixels)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """PSNR of the rounded latents (float networks) and their estimated bits per pixel."""
        was = model.training
        model.eval()
        img, bits = model()
        model.train(was)
        mse = float(torch.mean((img.clamp(0, 1) - self.target.to(img.device)) ** 2))
        return {"psnr": psnr_from_mse(mse, 1.0), "bpp_estimate": float(bits) / self.pixels}


# ------------------------------------------------------------------ encoding
def fixed_arm(model: LatentImageModel, fw: int) -> lc.FixedArm:
    """The model's ARM in fixed point with ``fw`` fraction bits (values clipped to 16-bit integers)."""
    arm = lc.FixedArm([], [], fw)
    top = (1 << 15) - 1
    for layer in linears(model.arm):
        for t, out in ((layer.weight, arm.weights), (layer.bias, arm.biases)):
            out.append(np.clip(np.rint(t.detach().cpu().double().numpy() * 2.0 ** fw), -top, top).astype(np.int64))
    return arm


def _synth_error(img: lc.LatentImage, feats: np.ndarray, target: np.ndarray, q: list[int]) -> float:
    """MSE (values in [0, 1]) of the 8-bit image decoded with the synthesis quantised at exponents ``q`` (one per
    layer's weights, a last one for the biases)."""
    e = lc.tensor_exponents(q, len(img.synth_w))
    ws = [np.rint(w * float(1 << k)) / float(1 << k) for w, k in zip(img.synth_w, e[0::2])]
    bs = [np.rint(b * float(1 << k)) / float(1 << k) for b, k in zip(img.synth_b, e[1::2])]
    out = lc.to_uint8(lc.synthesise(feats, ws, bs), *img.shape).astype(np.float64) / 255.0
    return float(np.mean((out - target) ** 2))


def _synth_bytes(img: lc.LatentImage, q: list[int]) -> int:
    return len(lc.encode_signed(lc.synth_integers(replace(img, q=q)))[0])


SYNTH_EXPONENTS = range(0, 14)
"""Synthesis step exponents the encoder tries (step ``2**-q``)."""


def choose_synth_steps(img: lc.LatentImage, feats: np.ndarray, target: np.ndarray, lmbda: float) -> list[int]:
    """The synthesis exponents (one per layer's weights, one for the biases) of the least rate-distortion cost
    ``8 bytes / pixels + lambda * MSE`` of the decoded 8-bit image: the best single exponent, then each one moved
    alone while the cost falls (Cool-chic chooses its networks' quantisation steps by the same cost)."""
    pixels = img.shape[0] * img.shape[1]
    layers = len(img.synth_w)
    memo: dict[tuple[int, ...], float] = {}

    def cost(q: list[int]) -> float:
        key = tuple(q)
        if key not in memo:
            memo[key] = 8.0 * _synth_bytes(img, q) / pixels + lmbda * _synth_error(img, feats, target, q)
        return memo[key]

    q = min(([e] * (layers + 1) for e in SYNTH_EXPONENTS), key=cost)
    improved = True
    while improved:
        improved = False
        for i in range(layers + 1):
            for step in (-1, 1):
                trial = list(q)
                trial[i] += step
                if trial[i] in SYNTH_EXPONENTS and cost(trial) < cost(q):
                    q, improved = trial, True
    return q


@dataclass
class LatentEncoded:
    """An encoded image: the bytes and what was measured."""

    data: bytes
    report: dict[str, Any] = field(default_factory=dict)
    latents: list[np.ndarray] = field(default_factory=list)


def encode_pixels(pixels: np.ndarray, options: LatentOptions | None = None, *, signal: dict | None = None,
                  device: str | None = None, progress: bool = False,
                  control: RateTarget | None = None) -> LatentEncoded:
    """Train a latent-grid representation of ``pixels`` ``[H, W, C]`` (0..255) and code it.

    Training runs through :func:`inrkit.train.fit` (:class:`LatentTask`); then the ARM is put in fixed
    point, the synthesis quantisation step is chosen by the real rate-distortion cost, and the file is
    written and decoded back (the reported PSNR is that of the decoded file). ``control`` steers lambda
    toward a bit rate or a PSNR during training (:class:`RateTarget`); the report's ``lambda`` is the final one.
    """
    options = options or LatentOptions()
    pixels = np.asarray(pixels, np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or min(pixels.shape[:2]) < 2:
        raise InvalidInputError(f"latent codec: need an [H, W, 1 or 3] image of at least 2x2, got {pixels.shape}")
    h, w, ch = pixels.shape
    t0 = time.perf_counter()
    noise_steps = round(options.noise_fraction * options.steps)
    mode = resolve_compile(options.compile)
    model = LatentImageModel((h, w), ch, options,
                             compile=mode == "on" or (mode == "auto" and compile_pays(h * w, noise_steps)))
    task = LatentTask(pixels, options.lmbda, noise_steps, control)
    config = FitConfig(steps=options.steps, lr=options.lr, schedule="cosine", lr_min_factor=0.01,
                       seed=options.seed, log_every=50, progress=progress, device=device, precision="fp32")
    result = fit(model, task, config)
    fit_s = time.perf_counter() - t0
    model = cast(LatentImageModel, result.model.cpu().eval())
    top = (1 << (lc.MAX_LATENT_BITS - 1)) - 1
    latents = [torch.round(y.detach()).clamp(-top, top).to(torch.int64).numpy() for y in model.latents]
    bits = lc.latent_bits(latents)
    arm_cost = {}
    for fw in range(3, 10):  # ARM precision: the fewest latent + ARM bytes
        arm = fixed_arm(model, fw)
        arm_cost[fw] = (len(lc.encode_latents(latents, arm, bits))
                        + len(lc.encode_signed(np.concatenate([t.reshape(-1) for t in arm.tensors()]))[0]))
    img = lc.LatentImage((h, w), ch, latents, fixed_arm(model, min(arm_cost, key=lambda k: arm_cost[k])),
                         [layer.weight.detach().double().numpy() for layer in linears(model.synthesis)],
                         [layer.bias.detach().double().numpy() for layer in linears(model.synthesis)], 0,
                         signal or {})
    target = pixels.astype(np.float64) / 255.0
    feats = lc.upsampled(latents, h, w)
    img.q = choose_synth_steps(img, feats, target, task.lmbda)
    t1 = time.perf_counter()
    data = lc.write(img)
    enc_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    try:
        decoded = lc.read(data)
    except InvalidFileError as exc:  # a decoder's work bound (docs/limits.md): too large an image for its bytes
        raise InvalidInputError(f"latent codec: decoders would refuse this file ({exc}); encode at a higher rate "
                                f"(--lambda, --bpp) or a smaller image") from None
    dec_s = time.perf_counter() - t2
    out = decoded.render().astype(np.float64) / 255.0
    mse = float(np.mean((out - target) ** 2))
    latent_bytes = len(lc.encode_latents(latents, img.arm, bits))
    report = {"codec": lc.CODEC, "bytes": len(data), "bpp": 8.0 * len(data) / (h * w), "psnr": psnr_from_mse(mse, 1.0),
              "lambda": task.lmbda, "control_latent_bits": task.rounded_bits, "steps": result.steps,
              "levels": options.levels,
              "hidden": list(map(int, options.hidden)), "q": img.q, "fw": img.arm.fw, "latent_bytes": latent_bytes,
              "bpp_estimate": float(result.metrics.get("bpp_estimate", float("nan"))),
              "fit_psnr": float(result.metrics.get("psnr", float("nan"))),
              "bytes_by_part": lc.bytes_by_part(data), "fit_seconds": fit_s, "compiled": model.compile_noise,
              "compile_seconds": model.compile_seconds, "code_seconds": enc_s,
              "decode_seconds": dec_s,
              "encode_seconds": time.perf_counter() - t0 - dec_s}
    return LatentEncoded(data, report, latents)


def overhead_bits(shape: tuple[int, int], channels: int, options: LatentOptions) -> float:
    """Rough bits of a file besides the latents: container and header (about 90 bytes) and both networks' weights
    (about 4.5 bits each after quantisation and coding: measured 3.2-5.7 on Kodak/2 and astronaut files)."""
    synth = sum((a + 1) * b for a, b in zip([options.levels, *options.hidden], [*options.hidden, channels]))
    arm = sum((a + 1) * b for a, b in zip([len(lc.CONTEXT), *options.arm_hidden], [*options.arm_hidden, 2]))
    return 8.0 * 90 + 4.5 * (synth + arm)


def start_lambda(bpp: float) -> float:
    """Where the lambda search for a bit rate starts: ``1000 bpp**2`` (within 1..10**4). Measured final lambdas
    at 0.1-1 bpp span two orders of magnitude between images; the controller moves from here."""
    return float(min(max(1000.0 * bpp * bpp, 1.0), 1e4))


TARGET_ATTEMPTS = 3
"""Trainings at most to meet a ``bpp`` or ``target_psnr`` (each later one aims at the corrected target)."""
BPP_TOLERANCE = 0.05
"""A bit-rate target is met within 5 % (relative)."""
PSNR_SLACK = 0.5
"""A PSNR target is met at or up to 0.5 dB above it."""


def encode_to_target(pixels: np.ndarray, options: LatentOptions, *, bpp: float | None = None,
                     target_psnr: float | None = None, signal: dict | None = None, device: str | None = None,
                     progress: bool = False) -> LatentEncoded:
    """:func:`encode_pixels` at a bit rate (within 5 %) or a PSNR (at most 0.5 dB above it).

    Each training steers lambda toward the goal (:class:`RateTarget`); if the written file misses it, the next
    training (at most :data:`TARGET_ATTEMPTS`) starts from the last lambda moved by the miss and, for a bit rate,
    steers with what the last file measured: its networks' and header's bytes (``overhead_bits``) and its coded
    latent bits per latent bit the controller aimed at (``latent_scale``). The report says ``target_met``,
    ``attempts``, ``trainings`` and, when missed, ``target_note`` (the closest file is kept).
    """
    if (bpp is None) == (target_psnr is None):
        raise InvalidInputError("give one of bpp and target_psnr")
    pixels = np.asarray(pixels, np.float32)
    shape, ch = (int(pixels.shape[0]), int(pixels.shape[1])), int(pixels.shape[2]) if pixels.ndim == 3 else 1

    goal = float(bpp) if bpp is not None else float(cast(float, target_psnr))

    def miss(enc: LatentEncoded) -> float:  # 0 inside the accepted band
        if bpp is not None:
            return max(abs(enc.report["bpp"] / goal - 1) - BPP_TOLERANCE, 0.0)
        d = enc.report["psnr"] - goal
        return max(-d, d - PSNR_SLACK, 0.0) + (1.0 if d < 0 else 0.0)  # below the target is worse than above

    aim = goal
    lmbda, best, attempt, tried = options.lmbda, None, 0, []
    control = RateTarget(bpp=goal if bpp is not None else None, psnr=aim if target_psnr is not None else None,
                         overhead_bits=overhead_bits(shape, ch, options))
    while attempt < TARGET_ATTEMPTS and (best is None or miss(best) > 0):
        attempt += 1
        enc = encode_pixels(pixels, replace(options, lmbda=lmbda), signal=signal, device=device, progress=progress,
                            control=control)
        best = enc if best is None or miss(enc) < miss(best) else best
        tried.append({"lambda": enc.report["lambda"], "bpp": enc.report["bpp"], "psnr": enc.report["psnr"]})
        if bpp is not None:
            control, lmbda = _next_rate_control(enc.report, goal, shape[0] * shape[1], control)
        else:
            aim += goal + PSNR_SLACK / 2 - enc.report["psnr"]
            control, lmbda = replace(control, psnr=aim), enc.report["lambda"]
    assert best is not None
    best.report.update(attempts=attempt, target_met=miss(best) == 0, trainings=tried)
    if miss(best) > 0:
        wanted = f"{bpp} bpp" if bpp is not None else f"{target_psnr} dB"
        best.report["target_note"] = (f"missed {wanted} after {attempt} trainings: closest file "
                                      f"{best.report['bpp']:.3f} bpp, {best.report['psnr']:.2f} dB")
    return best


RATE_EXPONENT = 3.0
"""Latent bits grow about as ``lambda**(1/3)`` (measured: astronaut 256x256, fast preset, lambda 33 -> 4227: slope
0.33-0.35 in log-log), so a latent miss by a factor ``r`` moves the next training's start by ``r**3``."""


def _next_rate_control(report: dict[str, Any], goal: float, pixels: int,
                       control: RateTarget) -> tuple[RateTarget, float]:
    """The controller and the starting lambda of the next training toward ``goal`` bpp, from a file's report and
    the controller that steered it: the file's measured overhead; a latent scale that turns what that controller
    aimed at into what the file coded (it includes the rate's drift after the steering: at a fixed lambda the
    rate keeps falling while the noise and temperature anneal); lambda moved by the latent miss."""
    parts = report["bytes_by_part"]
    coded = 8.0 * parts["latents"]
    overhead = 8.0 * (report["bytes"] - parts["latents"])
    aimed = max(goal * pixels - control.overhead_bits, 8.0)  # the latent bits the controller steered toward
    scale = min(max(control.latent_scale * max(coded, 8.0) / aimed, 0.5), 2.0)
    want = max(goal * pixels - overhead, 8.0)
    move = min(max((want / max(coded, 8.0)) ** RATE_EXPONENT, 1 / 16), 16.0)
    lmbda = min(max(report["lambda"] * move, LAMBDA_RANGE[0]), LAMBDA_RANGE[1])
    return RateTarget(bpp=goal, overhead_bits=overhead, latent_scale=scale), lmbda


def encode_latent_image(image_path: str | os.PathLike, out_path: str | os.PathLike, *, lmbda: float | None = None,
                      bpp: float | None = None, target_psnr: float | None = None, preset: str = "default",
                      steps: int | None = None, crop: Sequence[int] | None = None, seed: int = 0,
                      device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Encode an image file with the ``latent`` codec; writes ``out_path`` (.inrz) and returns the report.

    Args:
        image_path: PNG or JPEG image.
        out_path: the ``.inrz`` file to write.
        lmbda: rate-distortion trade-off: ``bpp + lambda * MSE`` (pixel values in [0, 1]); larger: better, bigger
            (default 1000). With ``bpp`` or ``target_psnr``: where the search starts (default: with ``bpp``,
            :func:`start_lambda`; else 1000).
        bpp: target bits per pixel of the file (met within 5 %, or the report says it was missed).
        target_psnr: target PSNR in dB (met at or up to 0.5 dB above it, or the report says it was missed).
        preset: encoder preset: fast, default or best (training steps).
        steps: training steps (default: the preset's).
        crop: image window ROW0:ROW1,COL0:COL1.
        seed: seed of the initialisation and the noise.
        device: where to train (cpu, cuda...; default: pick automatically).
        progress: show a progress bar.
    """
    from inrkit.signals.readers import read_image

    pixels = read_image(Path(image_path))
    source = [int(pixels.shape[0]), int(pixels.shape[1])]
    if crop is not None:
        r0, r1, c0, c1 = (int(v) for v in crop)
        if not (0 <= r0 < r1 <= pixels.shape[0] and 0 <= c0 < c1 <= pixels.shape[1]):
            raise InvalidInputError(f"crop {list(crop)} is outside the {pixels.shape[0]}x{pixels.shape[1]} image")
        pixels = pixels[r0:r1, c0:c1]
    if lmbda is None:
        lmbda = start_lambda(bpp) if bpp is not None else 1000.0
    options = preset_options(preset, bpp=bpp, lmbda=lmbda, steps=steps, seed=seed)
    # the source's shape and the crop only when cropped (the header's shape is the image's otherwise)
    meta: dict[str, Any] = {"kind": "image"}
    if crop is not None:
        meta.update(crop=list(map(int, crop)), source_shape=source)
    if bpp is None and target_psnr is None:
        enc = encode_pixels(pixels, options, signal=meta, device=device, progress=progress)
    else:
        enc = encode_to_target(pixels, options, bpp=bpp, target_psnr=target_psnr, signal=meta, device=device,
                               progress=progress)
    with atomic_write(out_path) as handle:
        handle.write(enc.data)
    raw = int(pixels.size)  # 8-bit samples
    return {**enc.report, "output": str(out_path), "preset": preset, "shape": list(pixels.shape[:2]),
            "raw_bytes": raw, "ratio": round(enc.report["bytes"] / raw, 4)}


__all__ = ["LatentEncoded", "LatentOptions", "LatentImageModel", "LatentTask", "PRESETS", "RateTarget",
           "compile_pays", "encode_latent_image", "encode_pixels", "encode_to_target", "kumaraswamy_noise",
           "laplace_bits", "preset_options", "soft_round"]
