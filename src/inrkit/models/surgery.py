"""Physical surgery on an :class:`~inrkit.models.mlp.MLP`: neurons are removed, never masked."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInputError
from .mlp import MLP


def _check_hidden(model: MLP, layer: int) -> None:
    if not 0 <= layer < model.num_layers - 1:
        raise InvalidInputError(f"layer {layer} is not a hidden layer (0..{model.num_layers - 2})")


def _as_index(keep_idx: Tensor | list[int], width: int) -> Tensor:
    idx = torch.as_tensor(keep_idx, dtype=torch.long).reshape(-1)
    if idx.numel() == 0:
        raise InvalidInputError("cannot remove every neuron of a layer")
    if int(idx.min()) < 0 or int(idx.max()) >= width or torch.unique(idx).numel() != idx.numel():
        raise InvalidInputError(f"neuron indices must be unique and in [0, {width})")
    return idx


def keep_neurons(model: MLP, layer: int, keep_idx: Tensor | list[int], out_scale: Tensor | None = None) -> MLP:
    """Keep only neurons ``keep_idx`` of hidden ``layer`` (rows of W/b, columns of the next W).

    ``out_scale[k]`` multiplies the outgoing column of kept neuron ``k`` (coreset re-weighting).
    Works in place and returns ``model``; the touched layers get new Parameter objects.
    """
    _check_hidden(model, layer)
    w, b, w_next = model.weights[layer], model.biases[layer], model.weights[layer + 1]
    idx = _as_index(keep_idx, w.shape[0]).to(w.device)
    with torch.no_grad():
        cols = w_next[:, idx]
        if out_scale is not None:
            cols = cols * torch.as_tensor(out_scale, dtype=cols.dtype, device=cols.device).reshape(1, -1)
        model.set_layer(layer, w[idx], b[idx])
        model.set_layer(layer + 1, cols, model.biases[layer + 1])
    return model


def fold_interpolation(model: MLP, layer: int, keep_idx: Tensor | list[int], interp: Tensor) -> MLP:
    """ID pruning fold: with hidden ``H ≈ H[:, keep] @ interp`` (``interp``: ``[k, n]``),
    keep neurons ``keep_idx`` of ``layer`` and replace the next weight by ``W_next @ interp^T``."""
    _check_hidden(model, layer)
    w, b, w_next = model.weights[layer], model.biases[layer], model.weights[layer + 1]
    idx = _as_index(keep_idx, w.shape[0]).to(w.device)
    interp = torch.as_tensor(interp, dtype=w_next.dtype, device=w_next.device)
    if interp.shape != (idx.numel(), w.shape[0]):
        raise InvalidInputError(f"interpolation matrix must be {(idx.numel(), w.shape[0])}, got {tuple(interp.shape)}")
    with torch.no_grad():
        model.set_layer(layer, w[idx], b[idx])
        model.set_layer(layer + 1, w_next @ interp.t(), model.biases[layer + 1])
    return model
