"""Many networks of one architecture evaluated as one: stacked weights, batched matmuls.

:class:`StackedModel` holds ``B`` networks' parameters stacked on a leading axis and evaluates
all of them at once: for an inrkit :class:`~inrkit.models.mlp.MLP` with batched matmuls
(``torch.baddbmm``; a sine layer computes ``h (omega W)^T + omega b``), for any other
module with ``torch.func.vmap`` of ``functional_call``. Its ``precision`` ``"bf16"`` multiplies the stacked
MLP layers in bfloat16 through the same layers as one MLP (:func:`inrkit.models.fast.reduced_layer`: first
periodic layer in float32, hidden sine layers fused, last layer float32, float32 master weights).
:mod:`inrkit.train.batched` trains stacks (``fit_many``, ``fit_stacked``); Meta-INR adapts them.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from inrkit.errors import InvalidInputError
from inrkit.models.fast import reduced_layer
from inrkit.models.mlp import MLP, fourier_features, layer_output

Params = dict[str, Tensor]


def architecture(model: nn.Module) -> tuple[Any, ...]:
    """What must agree between members: type, parameter names and shapes, MLP activations and omegas."""
    shapes = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    if isinstance(model, MLP):
        return type(model), shapes, tuple(model.activations), tuple(model.omegas), model.fourier is None
    return type(model), shapes

GRID_STACK_ERROR = ("models with a grid encoding cannot be stacked (fit-many, Meta-INR): each grid is a large "
                    "table of its own; fit them one by one with `inrkit fit --arch grid`")


class StackedModel(nn.Module):
    """``copies`` independent copies of ``base`` (same initial weights), evaluated together.

    Use :meth:`from_models` for members with distinct weights and :meth:`members` to get
    ordinary models back.

    Args:
        base: the network (its architecture; its parameters are copied, never changed).
        copies: number of stacked copies ``B``.
    """

    base: nn.Module

    def __init__(self, base: nn.Module, copies: int) -> None:
        super().__init__()
        if copies < 1:
            raise InvalidInputError(f"a stacked model needs at least one member, got {copies}")
        if getattr(base, "encoding", None) is not None:
            raise InvalidInputError(GRID_STACK_ERROR)
        self.__dict__["base"] = base  # not a submodule: its own parameters are not trained
        self.copies = int(copies)
        self.precision = "fp32"  # "bf16": the stacked MLP layers multiply in bfloat16 (fit_stacked sets it)
        self.names = [name for name, _ in base.named_parameters()]
        self.stacked = nn.ParameterList(
            nn.Parameter(p.detach().unsqueeze(0).expand(copies, *p.shape).clone()) for p in base.parameters())
        self.buffer_names = [name for name, b in base.named_buffers() if b is not None]
        for k, name in enumerate(self.buffer_names):  # per-member buffers (e.g. Fourier features)
            buf = base.get_buffer(name)
            self.register_buffer(f"member_buffer_{k}", buf.detach().unsqueeze(0).expand(copies, *buf.shape).clone())

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> "StackedModel":
        """Stack ``models`` (same architecture, distinct weights and buffers); the models are not changed."""
        models = list(models)
        if not models:
            raise InvalidInputError("no models to stack")
        arch = architecture(models[0])
        for i, m in enumerate(models[1:], 1):
            if architecture(m) != arch:
                raise InvalidInputError(f"model {i} differs in architecture from model 0; stacked models "
                                        f"must share type, widths, activations and frequencies")
        stacked = cls(models[0], len(models))
        with torch.no_grad():
            for name, p in zip(stacked.names, stacked.stacked):
                p.copy_(torch.stack([m.get_parameter(name).detach() for m in models]))
            for k, name in enumerate(stacked.buffer_names):
                stacked.get_buffer(f"member_buffer_{k}").copy_(torch.stack([m.get_buffer(name) for m in models]))
        return stacked

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001 - nn.Module's signature
        self.base._apply(fn, *args, **kwargs)  # buffers of the base follow
        return super()._apply(fn, *args, **kwargs)

    def _buffers_of_members(self) -> Params:
        return {name: self.get_buffer(f"member_buffer_{k}") for k, name in enumerate(self.buffer_names)}

    def forward(self, x: Tensor) -> Tensor:
        """Outputs ``[B, N, C]`` for shared ``x [N, d]`` or per-member ``x [B, N, d]``."""
        if isinstance(self.base, MLP):
            return self._mlp_forward(x)
        params = {**dict(zip(self.names, self.stacked)), **self._buffers_of_members()}
        call = lambda p, xi: functional_call(self.base, p, (xi,))  # noqa: E731
        return vmap(call, in_dims=(0, 0 if x.dim() == 3 else None))(params, x)

    def _mlp_forward(self, x: Tensor) -> Tensor:
        """The MLP's layers with batched matmuls: ``act(omega * (h W^T + b))`` per member."""
        base = self.base
        assert isinstance(base, MLP)
        params = dict(zip(self.names, self.stacked))
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(self.copies, *x.shape)
        if base.fourier is not None:
            h = fourier_features(h, self._buffers_of_members()["fourier"])
        if self.precision == "bf16":
            last = len(base.activations) - 1
            for i, (act, omega) in enumerate(zip(base.activations, base.omegas)):
                h = reduced_layer(h, params[f"weights.{i}"], params[f"biases.{i}"], act, float(omega),
                                  torch.bfloat16, i == 0 and base.fourier is None, i == last)
            return h.float()
        for i, (act, omega) in enumerate(zip(base.activations, base.omegas)):
            h = layer_output(h, params[f"weights.{i}"], params[f"biases.{i}"], act, omega)
        return h

    def member_params(self) -> Params:
        """The stacked parameters ``{name: [B, ...]}``, detached."""
        return {name: p.detach() for name, p in zip(self.names, self.stacked)}

    def member(self, i: int) -> nn.Module:
        """Member ``i`` as an ordinary model (a copy of its current weights, on the stack's device)."""
        model = copy.deepcopy(self.base)
        with torch.no_grad():
            for name, p in zip(self.names, self.stacked):
                model.get_parameter(name).data = p[i].detach().clone()
            for name, buf in self._buffers_of_members().items():
                _set_buffer(model, name, buf[i].detach().clone())
        return model.to(self.stacked[0].device)

    def members(self) -> list[MLP]:
        """Every member as an ordinary model (copies of the current weights): MLPs for a stack of MLPs."""
        return [self.member(i) for i in range(self.copies)]  # type: ignore[misc]


def _set_buffer(model: nn.Module, name: str, value: Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    (model.get_submodule(owner) if owner else model).register_buffer(leaf, value)


__all__ = ["GRID_STACK_ERROR", "Params", "StackedModel", "architecture"]
