"""Fast compute paths for :class:`~inrkit.models.mlp.MLP` layers.

``MLP.forward`` is plain float32. Reduced precision is an explicit wrapper:
``with_precision(model, "bf16")`` returns a module that shares ``model``'s parameters and
multiplies every dense layer in bfloat16 (float32 accumulation inside oneDNN/cuBLAS), which
roughly triples GEMM throughput on CPUs with ``avx512_bf16``/AMX and on GPUs with tensor
cores. Phases stay accurate where it matters:

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

from typing import cast

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP, apply_activation, dense

PRECISIONS = ("fp32", "bf16", "auto")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


# ------------------------------------------------------------------ selection
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
def _mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for one network (2D) or a stack of networks (3D, batched)."""
    return torch.bmm(a, b) if a.dim() == 3 else a @ b


class _SineLayer(torch.autograd.Function):
    """``sin(omega * (h W^T + b))`` with the GEMM in ``dtype`` and ``omega`` folded into ``W``.

    One network (``h [N, in]``, ``W [out, in]``) or a stack of networks (``h [B, N, in]``,
    ``W [B, out, in]``, ``b [B, out]``; see :class:`~inrkit.models.stacked.StackedModel`).
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
        z = dense(hx, w, (bias * omega).to(gemm_dtype))
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
            gh = _mm(gz.to(w.dtype), w).to(ctx.in_dtype)
        if ctx.needs_input_grad[1]:
            gw = _mm(gz.transpose(-1, -2), hx.to(dtype)).float().mul_(ctx.omega)
        if ctx.needs_input_grad[2]:
            gb = gz.sum(-2).float().mul_(ctx.omega)
        return gh, gw, gb, None, None, None


def _dense(h: Tensor, weight: Tensor, bias: Tensor, dtype: torch.dtype) -> Tensor:
    return dense(h.to(dtype), weight.to(dtype), bias.to(dtype))


def reduced_layer(h: Tensor, weight: Tensor, bias: Tensor, activation: str, omega: float, dtype: torch.dtype,
                  first: bool, last: bool) -> Tensor:
    """One layer with ``dtype`` GEMMs, for one network or a stack of networks (see the module notes).

    Args:
        h: the layer's input (``[N, in]``, or ``[B, N, in]`` for a stack).
        weight, bias: ``[out, in]`` and ``[out]`` (a stack: ``[B, out, in]`` and ``[B, out]``), float32.
        activation, omega: the layer's activation and frequency.
        dtype: the GEMM dtype (``torch.bfloat16``).
        first: the layer reads raw coordinates (a periodic layer then keeps its GEMM in float32).
        last: the output layer (its output is float32).
    """
    if activation == "sine":
        return cast(Tensor, _SineLayer.apply(h, weight, bias, omega, dtype, first))
    if activation == "finer":
        z = dense(h.float(), weight, bias) if first else _dense(h, weight, bias, dtype).float()
        return torch.sin(omega * (z.abs() + 1.0) * z).to(dtype)
    z = _dense(h, weight, bias, dtype)
    if last:
        z = z.float()
    return apply_activation(z, activation)


def layer_forward(model: MLP, i: int, h: Tensor, dtype: torch.dtype) -> Tensor:
    """Layer ``i`` of ``model`` computed with ``dtype`` GEMMs (see the module notes).

    Hidden outputs are ``dtype``; the last layer's output is float32.
    """
    return reduced_layer(h, model.weights[i], model.biases[i], model.activations[i], float(model.omegas[i]), dtype,
                         i == 0 and model.fourier is None, i == len(model.weights) - 1)


# ------------------------------------------------------------------ wrapper
class ReducedPrecisionMLP(nn.Module):
    """``model`` evaluated with ``dtype`` GEMMs (see the module notes); shares ``model``'s parameters.

    Args:
        model: the float32 MLP (its parameters are the master weights).
        dtype: the GEMM dtype (``torch.bfloat16``).
    """

    def __init__(self, model: MLP, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def layer_forward(self, i: int, h: Tensor) -> Tensor:
        """Layer ``i`` in reduced precision (hidden outputs ``dtype``, the last layer float32)."""
        return layer_forward(self.model, i, h, self.dtype)

    def forward(self, x: Tensor) -> Tensor:
        h = self.model.encode(x)
        for i in range(self.model.num_layers):
            h = self.layer_forward(i, h)
        return h.float()

    def forward_with_hidden(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The float32 output and every hidden layer's (reduced-precision) output."""
        h, hidden = self.model.encode(x), []
        for i in range(self.model.num_layers):
            h = self.layer_forward(i, h)
            if i < self.model.num_layers - 1:
                hidden.append(h)
        return h.float(), hidden


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself for ``"fp32"``; for ``"bf16"`` a :class:`ReducedPrecisionMLP` sharing its parameters.

    Args:
        model: the model to evaluate; only an :class:`~inrkit.models.mlp.MLP` has bf16 layers (any other
            model is returned as it is, float32).
        precision: ``"fp32"`` or ``"bf16"`` (resolve ``"auto"`` first with :func:`resolve_precision`).
    """
    if precision not in _DTYPES:
        raise InvalidInputError(f"unknown compute precision {precision!r}; choose from {list(_DTYPES)}")
    dtype = _DTYPES[precision]
    if dtype is None or not isinstance(model, MLP):  # other models have no reduced-precision layers
        return model
    return ReducedPrecisionMLP(model, dtype)
