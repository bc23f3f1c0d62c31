"""AIRe densification on the shared pruning graph: new first-layer neurons with a ``state_map``.

:func:`densify` grows the first hidden group through :func:`inrkit.models.surgery.add_neurons`,
which returns the optimizer state map (zero moments for the new neurons, the old moments of
every surviving weight), as AIRe does. Pruning uses :func:`inrkit.models.surgery.remove_neurons`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP, PERIODIC
from inrkit.models.surgery import StateMap, add_neurons, find_group, group_weights
from inrkit.prune.criteria import CRITERIA


def densify_indices(model: MLP, n_new: int) -> Tensor:
    """First-layer neurons whose outgoing column of W^1 has the largest L1 norm (``n_new`` of them)."""
    if model.num_layers < 2:
        raise InvalidInputError("densification needs a hidden layer")
    width = model.widths[1]
    if not 1 <= n_new <= width:
        raise InvalidInputError(f"can add 1..{width} neurons to a first layer of width {width}, got {n_new}")
    scores = CRITERIA.get("l1").scores(*group_weights(model, find_group(model, 0)))
    return torch.sort(torch.topk(scores, n_new).indices).values.cpu()


@torch.no_grad()
def densify(model: MLP, n_new: int, generator: torch.Generator | None = None,
            init_scale: float = 1e-4) -> tuple[MLP, StateMap]:
    """Append ``n_new`` first-layer neurons with doubled frequency (AIRe densification).

    For each selected neuron ``j`` (largest outgoing L1 norm in W^1) a neuron with
    row ``2 W^0_j`` and bias ``2 b^0_j`` is added, i.e. ``sin(2 (omega (W_j x + b_j)))``:
    the second harmonic of neuron ``j`` with doubled phase. The new columns of W^1 are
    drawn from ``U(-init_scale, init_scale)`` so the network output barely changes.

    Args:
        model: a SIREN/FINER MLP (edited in place and returned).
        n_new: neurons to add.
        generator: random source of the new outgoing columns.
        init_scale: bound of the new outgoing columns.
    """
    if model.activations[0] not in PERIODIC or model.fourier is not None or model.encoding is not None:
        raise InvalidInputError("densification needs a sine/finer first layer on raw coordinates (SIREN or FINER; "
                                "not a Fourier-feature or grid model: docs/grid.md)")
    src = densify_indices(model, n_new)
    w0, b0, w1 = model.weights[0].detach(), model.biases[0].detach(), model.weights[1].detach()
    src_d = src.to(w0.device)
    new_cols = torch.empty(w1.shape[0], n_new, dtype=w1.dtype)
    new_cols.uniform_(-init_scale, init_scale, generator=generator)
    state_map = add_neurons(model, find_group(model, 0), 2.0 * w0[src_d], 2.0 * b0[src_d], new_cols)
    return model, state_map
