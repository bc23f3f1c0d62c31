"""Quantisation-aware fine-tuning (QAT) of an MLP through the one trainer, :func:`inrkit.train.fit`.

The INRIC recipe (Strümpler et al. 2022): after fitting, train on with the weights fake-quantised, so the
network learns weights that survive quantisation. Here each weight row ``r`` has its own step ``s_r``
(signed codes in ``[-2**(b-1), 2**(b-1))``), learned as in LSQ (Esser et al. 2020): the forward pass uses
``clamp(round(w / s_r)) * s_r`` with straight-through rounding, so both ``w`` and ``s_r`` get gradients.
``s_r = exp(STEP_GAIN * p_r)`` (log-parameterised; the gain lets one learning rate serve weights and
steps). Each bias has one learned step the same way. The forward pass puts the steps on the grids the file
stores (row steps ``k * base``, bias steps with 12 significant bits), so the decoded network is the trained
one; for ``coin`` (float16) weights and biases are rounded to float16 instead. The result is a
:class:`inrkit.compress.decode.layout.RowModel` holding the quantised weights and the learned steps, which the
``quant`` codec stores exactly and ``sinr`` sparse-codes.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from inrkit.compress.decode import coding
from inrkit.compress.decode.layout import RowModel, as_array
from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.signals.base import Signal
from inrkit.train import FitConfig, fit
from inrkit.utils import resolve_device

STEP_GAIN = 20.0  # log-step = STEP_GAIN * parameter
QAT_LR = 3e-4  # Adam's initial learning rate (cosine schedule to a tenth; docs/compress.md)
QAT_STEPS = 300  # steps of `inrkit encode` with a network codec (docs/compress.md)
ROW_BITS = 8  # bit depth of the per-row step multipliers


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def _snap(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` forward, identity backward (``x`` put on a grid the file can store)."""
    return x + (value - x).detach()


def row_grid_steps(steps: torch.Tensor, row_bits: int) -> torch.Tensor:
    """Row steps put on the stored grid ``k * base`` (:func:`~inrkit.compress.decode.coding.row_grid`),
    straight-through."""
    base = coding.row_base(float(steps.detach().max()), row_bits)
    k = torch.clamp(torch.round(steps.detach() / base), 1, (1 << row_bits) - 1)
    return _snap(steps, k * base)


def fake_signed(w: torch.Tensor, step: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` [out, in] quantised with row steps ``step`` [out, 1] (signed codes, straight-through rounding)."""
    half = 1 << (bits - 1)
    return _round_ste(torch.clamp(w / step, -half, half - 1)) * step


def fake_range(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` on the grid :func:`inrkit.compress.decode.coding.quantize` gives its current range (straight-through)."""
    _, lo, step = coding.quantize(np.array([float(x.detach().min()), float(x.detach().max())]), bits)
    if not step > 0:
        return x
    return lo + torch.clamp(_round_ste((x - lo) / step), 0, (1 << bits) - 1) * step


def fake_half(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to float16 (straight-through)."""
    return _snap(x, x.detach().half().float())


def _log_step(x: np.ndarray, bits: int) -> torch.Tensor:
    """The parameter of the steps covering ``x``'s rows (:func:`inrkit.compress.decode.coding.row_steps`)."""
    s = coding.row_steps(np.atleast_2d(x), bits).clip(min=1e-8)
    return torch.from_numpy(np.log(s) / STEP_GAIN).float()


class QatMLP(nn.Module):
    """An MLP whose weights and biases are fake-quantised in the forward pass, on the grids the file stores.

    Trainable: the latent weights and biases, and (``bits`` given) one log-step per weight row and one
    per bias.

    Args:
        model: the fitted network (copied).
        bits: bit depth of the weights and biases; ``None``: round to float16 instead (``coin``).
        row_bits: bit depth of the stored row step multipliers.
        device: where the parameters live.
    """

    def __init__(self, model: MLP, bits: int | None, row_bits: int, device: torch.device) -> None:
        super().__init__()
        self.base = model.copy().to(device).float()
        self.bits, self.row_bits = bits, row_bits
        self.log_steps, self.bias_log_steps = nn.ParameterList(), nn.ParameterList()
        if bits is not None:
            for w, b in zip(self.base.weights, self.base.biases):
                self.log_steps.append(nn.Parameter(_log_step(as_array(w), bits).to(device)))
                self.bias_log_steps.append(nn.Parameter(_log_step(as_array(b), bits).to(device)))

    def steps(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row steps [out, 1] of weight matrix ``i`` and the step of bias ``i``, on the stored grids."""
        rows = row_grid_steps(torch.exp(STEP_GAIN * self.log_steps[i]), self.row_bits)
        bias = torch.exp(STEP_GAIN * self.bias_log_steps[i])
        return rows[:, None], _snap(bias, torch.tensor(coding.round_step(float(bias.detach())), device=bias.device))

    def quantised(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fake-quantised weight and bias of layer ``i``."""
        w, b = self.base.weights[i], self.base.biases[i]
        if self.bits is None:
            return fake_half(w), fake_half(b)
        rows, bias = self.steps(i)
        return fake_signed(w, rows, self.bits), fake_signed(b[None], bias.reshape(1, 1), self.bits)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {}
        for i in range(self.base.num_layers):
            params[f"weights.{i}"], params[f"biases.{i}"] = self.quantised(i)
        return torch.func.functional_call(self.base, params, (x,), strict=False)

    def export(self) -> RowModel:
        """The trained model on the CPU with its weights and biases set to their quantised values, and the
        steps that give them (row steps as :func:`inrkit.compress.decode.coding.row_grid` stores them)."""
        model = self.base.cpu()
        if self.bits is None:
            with torch.no_grad():
                for t in (*model.weights, *model.biases):
                    t.copy_(t.half().float())
            return RowModel(model)
        steps, bias_steps = [], []
        with torch.no_grad():
            for i, (w, b) in enumerate(zip(model.weights, model.biases)):
                raw = np.exp(STEP_GAIN * self.log_steps[i].detach().cpu().double().numpy())
                k, base = coding.row_grid(raw, self.row_bits)
                codes = coding.quantize_rows(as_array(w), self.bits, k, base)
                w.copy_(torch.from_numpy(coding.dequantize_rows(codes, self.bits, k, base)))
                steps.append(k.astype(np.float64) * base)
                sb = coding.round_step(float(np.exp(STEP_GAIN * float(self.bias_log_steps[i].detach().cpu()))))
                one = np.ones(1, np.int64)
                codes = coding.quantize_rows(as_array(b)[None], self.bits, one, sb)
                b.copy_(torch.from_numpy(coding.dequantize_rows(codes, self.bits, one, sb)[0]))
                bias_steps.append(sb)
        return RowModel(model, steps, self.bits, bias_steps)


def quantisation_aware(model: MLP, signal: Signal, bits: int | None, steps: int, lr: float = QAT_LR, *,
                       row_bits: int = ROW_BITS, batch_size: int | None = None, device: str | None = None,
                       seed: int = 0, progress: bool = False) -> RowModel:
    """Fine-tune ``model`` on ``signal`` with its weights fake-quantised (per-row learned steps, or float16).

    Adam with a cosine learning-rate schedule (to ``lr / 10``), in float32, through :func:`inrkit.train.fit`.
    If training lowers the quantised network's PSNR (it can at 10+ bits, where quantisation costs little and
    re-training disturbs the fit), the steps of each row's range are kept instead.

    Args:
        model: the fitted network (not changed).
        signal: the signal it represents (any fit task).
        bits: bit depth of the weights (per row) and biases (per tensor), >= 2; ``None``: float16 (``coin``).
        steps: optimisation steps (0: no training; the steps are then each row's range).
        lr: Adam's learning rate.
        row_bits: bit depth of the stored step multipliers (:func:`inrkit.compress.decode.coding.row_grid`).
        batch_size: points per step (``None``: fit's rule).
        device: where to train.
        seed: seed of the batches.
        progress: show fit's progress bar (stderr).
    """
    if bits is not None and not 2 <= bits <= coding.MAX_BITS:
        raise InvalidInputError(f"quantisation-aware training needs bits in [2, {coding.MAX_BITS}], got {bits}")
    net = QatMLP(model, bits, row_bits, resolve_device(device))
    if steps > 0:
        before = _psnr(signal, net)
        config = FitConfig(steps=steps, lr=lr, schedule="cosine", batch_size=batch_size, seed=seed, device=device,
                           progress=progress, precision="fp32", log_every=steps, evaluate=False)
        fit(net, signal, config)
        if _psnr(signal, net) < before:
            net = QatMLP(model, bits, row_bits, resolve_device(device))
    return net.export()


def _psnr(signal: Signal, net: QatMLP) -> float:
    """PSNR of the fake-quantised network on ``signal`` (``-inf`` for a task without one)."""
    with torch.no_grad():
        return float(signal.evaluate(net).get("psnr", -math.inf))
