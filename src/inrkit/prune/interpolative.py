"""Interpolative-decomposition (ID) pruning of hidden layers (Chee et al.; PruningAMR).

For a layer's activations ``H`` (points x neurons), the ID picks ``k`` columns and an
interpolation matrix ``T`` with ``H ≈ H[:, keep] @ T``. Folding ``T`` into the next
layer gives a smaller network that approximates the original without retraining.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.interpolative as sli
import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.models.surgery import PrunableGroup, find_group, fold_interpolation


def id_select(hidden: np.ndarray, eps: float | None = None, rank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Choose columns of ``hidden`` ``[N, n]`` by ID (float64, deterministic).

    Give either a relative tolerance ``eps`` or a target ``rank``. Returns ``(keep_idx, T)``
    with ``keep_idx`` sorted and ``hidden ≈ hidden[:, keep_idx] @ T`` (``T``: ``[k, n]``).
    """
    if (eps is None) == (rank is None):
        raise InvalidInputError("give exactly one of eps or rank for ID pruning")
    H = np.asarray(hidden, dtype=np.float64)
    n = H.shape[1]
    if H.ndim != 2 or H.shape[0] == 0 or n == 0:
        raise InvalidInputError(f"ID needs a non-empty 2D activation matrix, got shape {H.shape}")
    norm = np.linalg.norm(H)
    if norm == 0.0:  # every neuron is dead: keep one, it reproduces zeros exactly
        return np.array([0]), np.zeros((1, n))
    if rank is not None:
        k = int(min(max(rank, 1), n, H.shape[0]))
        if k == n:
            return np.arange(n), np.eye(n)
        idx, proj = sli.interp_decomp(np.asfortranarray(H), k, rand=False)
    else:
        assert eps is not None  # exactly one of eps, rank was checked above
        k, idx, proj = sli.interp_decomp(np.asfortranarray(H), float(eps), rand=False)
        if k >= n:
            return np.arange(n), np.eye(n)
    T = sli.reconstruct_interp_matrix(idx, proj)  # [k, n] in the permuted order of idx
    keep = np.asarray(idx[:k])
    order = np.argsort(keep)
    return keep[order], np.asarray(T)[order]


@torch.no_grad()
def group_activations(model: nn.Module, group: PrunableGroup, points: Tensor) -> np.ndarray:
    """Activations ``[N, n]`` (float64) of an MLP's hidden ``group`` at ``points``."""
    if not isinstance(model, MLP):
        raise InvalidInputError(f"ID pruning needs activations at points: an MLP, not a {type(model).__name__}")
    h = model.encode(points)
    for i in range(int(group.name) + 1):
        h = model.layer_forward(i, h)
    return h.double().cpu().numpy()


@torch.no_grad()
def id_prune_layer(
    model: MLP, layer: int, points: Tensor, eps: float | None = None, rank: int | None = None
) -> tuple[MLP, np.ndarray]:
    """ID-prune hidden ``layer`` using its activations on ``points``; fold into the next layer."""
    group = find_group(model, layer)
    keep, T = id_select(group_activations(model, group, points), eps=eps, rank=rank)
    fold_interpolation(model, group, torch.from_numpy(keep), torch.from_numpy(T))
    return model, keep


@torch.no_grad()
def id_prune_model(model: MLP, points: Tensor, eps: float) -> tuple[MLP, list[int]]:
    """ID-prune every hidden layer in turn (each on the already-pruned network's activations).

    Returns the pruned model (in place) and the number of neurons kept per hidden layer.
    """
    kept = []
    for layer in range(model.num_layers - 1):
        _, keep = id_prune_layer(model, layer, points, eps=eps)
        kept.append(int(keep.size))
    return model, kept
