"""Fast compute paths for :class:`~inrkit.models.mlp.MLP` layers.

The default path is plain float32. Inside ``with compute_precision("bf16"):`` every
dense layer multiplies in bfloat16 (float32 accumulation inside oneDNN/cuBLAS),
which roughly triples GEMM throughput on CPUs with ``avx512_bf16``/AMX and on
GPUs with tensor cores. Phases stay accurate where it matters:

* the first periodic layer (coordinates -> phases up to ``omega * |Wx + b|``, tens of
  radians) runs entirely in float32 and only its output is rounded to bfloat16;
* hidden sine layers are one fused autograd function: ``omega`` is folded into the
  small weight matrix, so forward is one GEMM + one ``sin`` and backward is
  ``cos * grad`` + two GEMMs + one reduction (no extra scaling passes);
* the last (linear) layer returns float32, so the loss is computed in float32;
* master weights, gradients given to the optimizer and Adam's state stay float32.

The fused backward is once-differentiable: losses that differentiate the network
with ``create_graph=True`` (e.g. the SDF eikonal term) must use ``fp32``;
:func:`resolve_precision` picks that automatically for ``"auto"``.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..errors import InvalidInputError

PRECISIONS = ("fp32", "bf16", "auto")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16}
_local = threading.local()


# ------------------------------------------------------------------ selection
def active_dtype() -> torch.dtype | None:
    """The reduced compute dtype in effect on this thread (``None`` means plain float32)."""
    return getattr(_local, "dtype", None)


@contextmanager
def compute_precision(precision: str) -> Iterator[None]:
    """Run MLP forward passes inside the block in ``precision`` (``"fp32"`` or ``"bf16"``)."""
    if precision not in _DTYPES:
        raise InvalidInputError(f"unknown compute precision {precision!r}; choose from {list(_DTYPES)}")
    previous = active_dtype()
    _local.dtype = _DTYPES[precision]
    try:
        yield
    finally:
        _local.dtype = previous


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (fast), not by emulation."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str, plain_mse: bool = True) -> str:
    """Turn ``"auto"`` into ``"bf16"`` or ``"fp32"``; validate the others.

    ``auto`` is ``bf16`` when the device has native bfloat16 GEMMs and the loss is a plain
    first-order loss (``plain_mse``); otherwise ``fp32``.
    """
    if precision not in PRECISIONS:
        raise InvalidInputError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if plain_mse and bf16_supported(device) else "fp32"
    return precision


# ---------------------------------------------------------------- layer math
class _SineLayer(torch.autograd.Function):
    """``sin(omega * (h W^T + b))`` with the GEMM in ``dtype`` and ``omega`` folded into ``W``.

    ``first=True`` keeps the GEMM and the phase in float32 (coordinates in, phases of
    tens of radians) and rounds only ``sin``'s output to ``dtype``. The backward pass works
    in ``dtype`` (``cos(z) * grad``, two GEMMs, one reduction) and hands float32
    gradients to the float32 master weights.
    """

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor, omega: float, dtype: torch.dtype, first: bool) -> Tensor:
        gemm_dtype = torch.float32 if first else dtype
        w = (weight * omega).to(gemm_dtype)
        hx = h.to(gemm_dtype)
        z = torch.addmm((bias * omega).to(gemm_dtype), hx, w.t())
        ctx.save_for_backward(hx, w, z)
        ctx.omega, ctx.in_dtype, ctx.dtype = omega, h.dtype, dtype
        return torch.sin(z).to(dtype)  # (a separate cast is faster than sin(..., out=bf16) on CPU)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        hx, w, z = ctx.saved_tensors
        dtype = ctx.dtype
        gz = torch.cos(z).to(dtype).mul_(grad.to(dtype))
        gh = gw = gb = None
        if ctx.needs_input_grad[0]:
            gh = (gz.to(w.dtype) @ w).to(ctx.in_dtype)
        if ctx.needs_input_grad[1]:
            gw = (gz.t() @ hx.to(dtype)).float().mul_(ctx.omega)
        if ctx.needs_input_grad[2]:
            gb = gz.sum(0).float().mul_(ctx.omega)
        return gh, gw, gb, None, None, None


def apply_activation(z: Tensor, activation: str) -> Tensor:
    """A non-periodic activation (``relu``, ``tanh``, ``sigmoid``; anything else is identity)."""
    if activation == "relu":
        return torch.relu(z)
    if activation == "tanh":
        return torch.tanh(z)
    if activation == "sigmoid":
        return torch.sigmoid(z)
    return z


def _dense(h: Tensor, weight: Tensor, bias: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.addmm(bias.to(dtype), h.to(dtype), weight.to(dtype).t())


def layer_forward(model, i: int, h: Tensor, dtype: torch.dtype) -> Tensor:
    """Layer ``i`` of ``model`` computed with ``dtype`` GEMMs (see the module notes).

    Hidden outputs are ``dtype``; the last layer's output is float32.
    """
    weight, bias = model.weights[i], model.biases[i]
    activation, omega = model.activations[i], float(model.omegas[i])
    first = i == 0 and model.fourier is None
    if activation == "sine":
        return _SineLayer.apply(h, weight, bias, omega, dtype, first)
    if activation == "finer":
        z = torch.addmm(bias, h.float(), weight.t()) if first else _dense(h, weight, bias, dtype).float()
        return torch.sin(omega * (z.abs() + 1.0) * z).to(dtype)
    z = _dense(h, weight, bias, dtype)
    if i == len(model.weights) - 1:
        z = z.float()
    return apply_activation(z, activation)
