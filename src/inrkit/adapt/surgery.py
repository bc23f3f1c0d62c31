"""Surgery that keeps the optimizer usable: pruning and densification with a ``state_map``.

Each function edits the model in place (through :mod:`inrkit.models.surgery` or
``MLP.set_layer``) and returns ``(model, state_map)`` where ``state_map`` maps every
NEW parameter object to ``(old_parameter, index_fn)``. ``FitState.replace_model``
uses it to carry Adam's moments: sliced for kept neurons, zero for new ones, so the
state of the surviving weights is preserved as AIRe does.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP, PERIODIC
from inrkit.models.surgery import keep_neurons

IndexFn = Callable[[Tensor], Tensor]
StateMap = dict[nn.Parameter, tuple[nn.Parameter, IndexFn]]


def _guard(shape: torch.Size, fn: IndexFn) -> IndexFn:
    """Apply ``fn`` only to per-element state (shape == the old parameter's); pass scalars (Adam's step)."""
    def index(t: Tensor) -> Tensor:
        return fn(t) if t.shape == shape else t
    return index


def _rows(idx: Tensor) -> IndexFn:
    return lambda t: t[idx.to(t.device)]


def _cols(idx: Tensor) -> IndexFn:
    return lambda t: t[:, idx.to(t.device)]


def _same(t: Tensor) -> Tensor:
    return t


def _grow(extra: int, dim: int) -> IndexFn:
    def grow(t: Tensor) -> Tensor:
        shape = list(t.shape)
        shape[dim] = extra
        return torch.cat([t, t.new_zeros(shape)], dim=dim)
    return grow


def _layer_params(model: MLP, layer: int) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter, nn.Parameter]:
    return model.weights[layer], model.biases[layer], model.weights[layer + 1], model.biases[layer + 1]


def prune_neurons(model: MLP, layer: int, keep_idx: Tensor,
                  out_scale: Tensor | None = None) -> tuple[MLP, StateMap]:
    """Physically keep neurons ``keep_idx`` of hidden ``layer``; return the optimizer state map."""
    old = _layer_params(model, layer)
    idx = torch.as_tensor(keep_idx, dtype=torch.long).reshape(-1).cpu()
    keep_neurons(model, layer, idx, out_scale)
    new = _layer_params(model, layer)
    fns = (_rows(idx), _rows(idx), _cols(idx), _same)
    # Moments of re-weighted columns are carried unscaled (Adam is scale-invariant per step).
    return model, {n: (o, _guard(o.shape, f)) for n, o, f in zip(new, old, fns)}


def densify_indices(model: MLP, n_new: int) -> Tensor:
    """First-layer neurons whose outgoing column of W^1 has the largest L1 norm (``n_new`` of them)."""
    width = model.widths[1]
    if model.num_layers < 2:
        raise InvalidInputError("densification needs a hidden layer")
    if not 1 <= n_new <= width:
        raise InvalidInputError(f"can add 1..{width} neurons to a first layer of width {width}, got {n_new}")
    scores = model.weights[1].detach().abs().sum(dim=0)
    return torch.sort(torch.topk(scores, n_new).indices).values.cpu()


@torch.no_grad()
def densify(model: MLP, n_new: int, generator: torch.Generator | None = None,
            init_scale: float = 1e-4) -> tuple[MLP, StateMap]:
    """Append ``n_new`` first-layer neurons with doubled frequency (AIRe densification).

    For each selected neuron ``j`` (largest outgoing L1 norm in W^1) a neuron with
    row ``2 W^0_j`` and bias ``2 b^0_j`` is added, i.e. ``sin(2 (omega (W_j x + b_j)))``:
    the second harmonic of neuron ``j`` with doubled phase. The new columns of W^1 are
    drawn from ``U(-init_scale, init_scale)`` so the network output barely changes.
    """
    if model.activations[0] not in PERIODIC or model.fourier is not None:
        raise InvalidInputError("densification needs a sine/finer first layer on raw coordinates (SIREN or FINER)")
    src = densify_indices(model, n_new)
    old = _layer_params(model, 0)
    w0, b0, w1, b1 = (p.detach() for p in old)
    src_d = src.to(w0.device)
    new_cols = torch.empty(w1.shape[0], n_new, dtype=w1.dtype)
    new_cols.uniform_(-init_scale, init_scale, generator=generator)
    model.set_layer(0, torch.cat([w0, 2.0 * w0[src_d]]), torch.cat([b0, 2.0 * b0[src_d]]))
    model.set_layer(1, torch.cat([w1, new_cols.to(w1.device)], dim=1), b1)
    new = _layer_params(model, 0)
    fns = (_grow(n_new, 0), _grow(n_new, 0), _grow(n_new, 1), _same)
    return model, {n: (o, _guard(o.shape, f)) for n, o, f in zip(new, old, fns)}
