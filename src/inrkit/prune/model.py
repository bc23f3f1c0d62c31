"""Apply a pruning criterion to an :class:`inrkit.models.MLP`, physically.

``prune_model`` prunes one or several hidden layers with any criterion of
:mod:`inrkit.prune.criteria` or with interpolative decomposition (``"id"``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.models.surgery import keep_neurons
from inrkit.prune.criteria import METHODS, keep_count, neuron_scores, select_neurons
from inrkit.prune.interpolative import id_prune_layer

ALL_METHODS: tuple[str, ...] = METHODS + ("id",)


def layer_weights(model: MLP, layer: int) -> tuple[Tensor, Tensor]:
    """``(w_in, w_out)`` of hidden ``layer``: its rows ``W_layer`` and the next layer's ``W_{layer+1}``."""
    if not 0 <= layer < model.num_layers - 1:
        raise InvalidInputError(f"layer {layer} is not a hidden layer (0..{model.num_layers - 2})")
    return model.weights[layer].detach(), model.weights[layer + 1].detach()


def domain_points(model: MLP, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points uniform in ``[-1, 1]^coord_dim`` on the model's device."""
    pts = torch.rand(n, model.coord_dim, generator=generator) * 2.0 - 1.0
    return pts.to(model.weights[0].device, model.weights[0].dtype)


def _eps_keep(scores: Tensor, eps: float) -> Tensor:
    idx = torch.nonzero(scores > eps).reshape(-1)
    if idx.numel() == 0:  # keep the single strongest neuron rather than emptying the layer
        idx = scores.argmax().reshape(1)
    return idx.cpu()


def prune_layer(model: MLP, layer: int, method: str = "l1", keep: float | int | None = None,
                eps: float | None = None, points: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[MLP, Tensor]:
    """Prune hidden ``layer`` in place; return ``(model, kept indices)``.

    ``keep``: fraction in (0, 1] or a neuron count; ``eps``: for score criteria, drop
    neurons scoring ``<= eps`` (AIRe uses ``l1`` with eps 0.01); for ``id``, the ID's
    relative tolerance. ``points`` (``id`` only) are where activations are sampled.
    """
    if method not in ALL_METHODS:
        raise InvalidInputError(f"unknown pruning method {method!r}; expected one of {', '.join(ALL_METHODS)}")
    if (keep is None) == (eps is None):
        raise InvalidInputError("give exactly one of keep or eps")
    w_in, w_out = layer_weights(model, layer)
    n = w_in.shape[0]
    if method == "id":
        if points is None:
            raise InvalidInputError("ID pruning needs sample points")
        rank = keep_count(n, keep) if keep is not None else None
        _, idx = id_prune_layer(model, layer, points, eps=eps, rank=rank)
        return model, torch.as_tensor(idx, dtype=torch.long)
    if eps is not None:
        if method in ("uniform",):
            raise InvalidInputError("uniform pruning needs --keep, not --eps")
        scores = neuron_scores(method, w_in, w_out)
        idx, scale = _eps_keep(scores, eps), None
    else:
        idx, scale = select_neurons(method, w_in, w_out, keep_count(n, keep), generator)
    keep_neurons(model, layer, idx, scale)
    return model, idx.cpu()


def prune_model(model: MLP, method: str = "l1", layers: Sequence[int] | None = None,
                keep: float | int | None = None, eps: float | None = None,
                points: Tensor | None = None, generator: torch.Generator | None = None
                ) -> tuple[MLP, list[int]]:
    """Prune ``layers`` (default: every hidden layer) in turn; return the model and the new hidden widths."""
    layers = list(range(model.num_layers - 1)) if layers is None else [int(i) for i in layers]
    for layer in layers:
        prune_layer(model, layer, method, keep, eps, points, generator)
    model.validate()
    return model, model.hidden_widths
