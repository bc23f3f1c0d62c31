"""The SINR transform: every weight matrix but the last as sparse codes by batched OMP (torch)."""
from __future__ import annotations

import numpy as np
import torch

from inrkit.compress.decode.dictionary import sensing_matrix
from inrkit.compress.decode.layout import (
    SinrOptions,
    SparseLayer,
    SparseModel,
    as_array,
    atoms_in_dictionary,
    split_vectors,
)
from inrkit.compress.encode.omp import omp
from inrkit.models.mlp import MLP


def sparse_code(model: MLP, options: SinrOptions | None = None,
                device: str | torch.device | None = None) -> SparseModel:
    """Sparse-code every weight matrix but the last with batched OMP (the SINR transform).

    Args:
        model: the network to code.
        options: the codec's parameters (sparsity, dictionary redundancy, block, seed, code_first).
        device: where OMP runs (``None``: CPU).
    """
    opts = options or SinrOptions()
    layers = [_code_layer(model, i, opts, device) for i in range(model.num_layers - 1)]
    return SparseModel(model, layers, opts)


def _code_layer(model: MLP, i: int, opts: SinrOptions, device: str | torch.device | None) -> SparseLayer | None:
    split = split_vectors(as_array(model.weights[i]), opts) if (i > 0 or opts.code_first) else None
    if split is None:
        return None
    mode, k1, vectors = split
    s, k2 = opts.atoms(k1), atoms_in_dictionary(k1, opts)
    if s < 1 or k1 < 3:
        return None
    idx_t, coef_t = omp(sensing_matrix(k1, k2, opts.seed), vectors, s, device=device)
    idx, coef = idx_t.cpu().numpy(), coef_t.cpu().double().numpy()
    order = np.argsort(idx, axis=1)
    return SparseLayer(mode, k1, k2, np.take_along_axis(idx, order, 1), np.take_along_axis(coef, order, 1))
