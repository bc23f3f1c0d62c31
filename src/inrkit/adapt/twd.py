"""Targeted weight decay (TWD, AIRe) as a fit callback.

``loss = L_data + alpha * sum_{i in layers} sum_{j in I_i} ||W^{i+1}_{:, j}||_1`` where
``I_i`` holds the ``K`` neurons of hidden layer ``i`` with the smallest outgoing L1
norm, chosen once when the stage starts, and ``alpha`` rises linearly from 0 to
``alpha_max`` over the stage.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.models.surgery import find_group, group_weights
from inrkit.prune.criteria import CRITERIA


def outgoing_l1(model: MLP, layer: int) -> Tensor:
    """AIRe's criterion (``CRITERIA["l1"]``): L1 norm of each neuron's outgoing column ``||W^{layer+1}_{:, j}||_1``."""
    return CRITERIA.get("l1").scores(*group_weights(model, find_group(model, layer)))


def smallest_neurons(model: MLP, layer: int, k: int) -> Tensor:
    """Indices (sorted) of the ``k`` neurons of ``layer`` with the smallest outgoing L1 norm."""
    width = model.widths[layer + 1]
    if not 1 <= k < width:
        raise InvalidInputError(f"TWD on layer {layer} needs 1 <= K < {width}, got {k}")
    return torch.sort(torch.topk(outgoing_l1(model, layer), k, largest=False).indices).values


def twd_penalty(model: MLP, targets: dict[int, Tensor]) -> Tensor:
    """``sum_i sum_{j in I_i} ||W^{i+1}_{:, j}||_1`` for ``targets = {layer: I}``."""
    total = model.weights[0].new_zeros(())
    for layer, idx in targets.items():
        w = model.weights[layer + 1]
        total = total + w[:, idx.to(w.device)].abs().sum()
    return total


class TargetedWeightDecay:
    """Fit callback adding the TWD penalty during steps ``[start, start + steps)``.

    Args:
        layers: hidden layers whose neurons are targeted.
        k: neurons to target per layer (one int, or one per layer).
        start: first step (0-based, as ``FitState.step`` when the loss is computed).
        steps: stage length; alpha = alpha_max * (step - start + 1) / steps.
        alpha_max: final penalty weight (the paper ramps to 1).
    """

    def __init__(self, layers: Sequence[int], k: int | Sequence[int], start: int, steps: int,
                 alpha_max: float = 1.0) -> None:
        self.layers = [int(i) for i in layers]
        ks = [int(k)] * len(self.layers) if isinstance(k, int) else [int(v) for v in k]
        if len(ks) != len(self.layers) or steps < 1:
            raise InvalidInputError("TWD needs one K per layer and at least one step")
        self.ks, self.start, self.steps, self.alpha_max = ks, int(start), int(steps), float(alpha_max)
        self.targets: dict[int, Tensor] | None = None

    def alpha(self, step: int) -> float:
        return self.alpha_max * min(1.0, (step - self.start + 1) / self.steps)

    def select(self, model: MLP) -> dict[int, Tensor]:
        self.targets = {i: smallest_neurons(model, i, k) for i, k in zip(self.layers, self.ks)}
        return self.targets

    def extra_loss(self, state: Any) -> Tensor | None:
        step = int(state.step)
        if not self.start <= step < self.start + self.steps:
            return None
        targets = self.targets if self.targets is not None else self.select(state.model)
        return self.alpha(step) * twd_penalty(state.model, targets)
