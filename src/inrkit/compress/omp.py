"""Batched orthogonal matching pursuit in torch (CPU or GPU).

Gram-matrix OMP (Rubinstein, Zibulevsky & Elad 2008, "OMP-Cholesky") over a batch of
signals at once: each step picks, for every signal, the atom with the largest
absolute correlation with the residual, extends a per-signal Cholesky factor of the
selected Gram sub-matrix by one row, and re-solves the least-squares coefficients
with two triangular solves. Selection and coefficients follow scikit-learn's
``orthogonal_mp`` (first index on ties).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _as_tensor(x: np.ndarray | Tensor, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    if not isinstance(x, Tensor):
        x = np.array(x, dtype=np.float64, copy=not (isinstance(x, np.ndarray) and x.flags.writeable))
        x = torch.from_numpy(np.ascontiguousarray(x))
    t = x
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def _omp_chunk(gram: Tensor, corr: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """OMP for one chunk: ``corr = Y @ A`` ``[B, k2]``, ``gram = A^T A``; returns (idx, coef) ``[B, s]``.

    ``L`` is the Cholesky factor of the selected Gram sub-matrix ``G[S, S] = L L^T``; row ``t``
    is appended at step ``t``. With ``A_S = Q L^T`` (``Q`` orthonormal), ``U[t] = A^T q_t`` is
    kept so that the new row of ``L`` is a gather, ``U[t] = (G[lam] - L[t, :t] U[:t]) / L[t, t]``,
    and the correlations update by one rank-one step, ``corr -= (q_t . y) U[t]``. The
    coefficients solve ``L^T coef = Q^T y`` once at the end.
    """
    batch, k2 = corr.shape
    dt, dev = corr.dtype, corr.device
    rows = torch.arange(batch, device=dev)
    idx = torch.zeros(batch, s, dtype=torch.long, device=dev)
    chol = torch.zeros(batch, s, s, dtype=dt, device=dev)
    proj = torch.zeros(batch, s, dtype=dt, device=dev)  # Q^T y
    u = torch.empty(batch, s, k2, dtype=dt, device=dev)  # row t: A^T q_t
    taken = torch.zeros(batch, k2, dtype=torch.bool, device=dev)
    tiny = torch.finfo(dt).tiny
    for t in range(s):
        lam = corr.abs().masked_fill_(taken, -1.0).argmax(dim=1)
        idx[:, t] = lam
        taken[rows, lam] = True
        row = u[:, :t].gather(2, lam.view(batch, 1, 1).expand(batch, t, 1))[:, :, 0]  # q_j . a_lam
        diag = torch.sqrt((gram[lam, lam] - (row * row).sum(dim=1)).clamp_min(tiny))
        chol[:, t, :t] = row
        chol[:, t, t] = diag
        u_t = gram[lam]
        if t > 0:
            u_t = u_t - torch.bmm(row.unsqueeze(1), u[:, :t])[:, 0]
        u_t = u_t / diag.unsqueeze(1)
        u[:, t] = u_t
        z_t = corr[rows, lam] / diag
        proj[:, t] = z_t
        corr.sub_(z_t.unsqueeze(1) * u_t)
    coef = torch.linalg.solve_triangular(chol.transpose(1, 2), proj.unsqueeze(2), upper=True)[:, :, 0]
    return idx, coef


def omp(
    dictionary: np.ndarray | Tensor,
    signals: np.ndarray | Tensor,
    sparsity: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    chunk_bytes: int = 256 * 2**20,
) -> tuple[Tensor, Tensor]:
    """Sparse-code many signals over one dictionary with OMP.

    Args:
        dictionary: ``A`` of shape ``[k1, k2]`` with unit-norm columns.
        signals: ``Y`` of shape ``[B, k1]`` (one signal per row).
        sparsity: number of atoms ``s`` per signal (``1 <= s <= k1``).
        device: where to compute (default: the signals' device).
        dtype: computation precision (float64 by default, as scikit-learn).
        chunk_bytes: memory cap of the per-chunk Gram-row buffer.

    Returns:
        ``(idx, coef)``, both ``[B, s]``: atom indices in selection order and their
        least-squares coefficients, so that ``Y[b] ~= A[:, idx[b]] @ coef[b]``.
    """
    a = _as_tensor(dictionary, device, dtype)
    y = _as_tensor(signals, a.device, dtype)
    k1, k2 = a.shape
    if y.ndim != 2 or y.shape[1] != k1:
        raise ValueError(f"signals must be [B, {k1}], got {tuple(y.shape)}")
    if not 1 <= sparsity <= k1:
        raise ValueError(f"sparsity must be in [1, {k1}], got {sparsity}")
    gram = a.t() @ a
    step = max(1, chunk_bytes // (sparsity * k2 * a.element_size()))
    out_idx, out_coef = [], []
    for start in range(0, y.shape[0], step):
        i, c = _omp_chunk(gram, y[start : start + step] @ a, sparsity)
        out_idx.append(i)
        out_coef.append(c)
    if not out_idx:
        z = torch.zeros(0, sparsity, device=a.device)
        return z.long(), z.to(dtype)
    return torch.cat(out_idx), torch.cat(out_coef)


def to_dense(idx: Tensor, coef: Tensor, k2: int) -> Tensor:
    """Scatter ``(idx, coef)`` ``[B, s]`` into dense codes ``[B, k2]``."""
    dense = torch.zeros(idx.shape[0], k2, dtype=coef.dtype, device=coef.device)
    return dense.scatter_(1, idx, coef)
