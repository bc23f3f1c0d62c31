"""Batched orthogonal matching pursuit in torch (CPU or GPU).

OMP-Cholesky over a batch of signals at once: each step picks, for every signal, the
atom with the largest absolute correlation with the residual and extends a per-signal
Cholesky factor of the selected Gram sub-matrix by one row (with the matching
orthonormal direction, so the residual update is a rank-one step and the new
correlations one GEMM for the whole batch); the coefficients come from one triangular
solve at the end. Selection and coefficients follow scikit-learn's
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


def _omp_chunk(atoms: Tensor, dictionary: Tensor, y: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """OMP for one chunk of signals ``y`` ``[B, k1]``; returns (idx, coef) ``[B, s]``.

    ``L`` is the Cholesky factor of the selected Gram sub-matrix ``G[S, S] = L L^T``; row ``t``
    is appended at step ``t``. With ``A_S = Q L^T`` (``Q`` orthonormal, built alongside),
    the new row of ``L`` is ``Q^T a_lam``, the residual drops its component along the new
    direction ``q_t``, and the correlations ``A^T r`` are one GEMM per step. The
    coefficients solve ``L^T coef = Q^T y`` once at the end.
    """
    batch, k1 = y.shape
    dt, dev = y.dtype, y.device
    rows = torch.arange(batch, device=dev)
    idx = torch.zeros(batch, s, dtype=torch.long, device=dev)
    chol = torch.zeros(batch, s, s, dtype=dt, device=dev)
    proj = torch.zeros(batch, s, dtype=dt, device=dev)  # Q^T y
    q = torch.empty(batch, s, k1, dtype=dt, device=dev)  # row t: q_t
    taken = torch.zeros(batch, dictionary.shape[1], dtype=torch.bool, device=dev)
    tiny = torch.finfo(dt).tiny
    resid = y.clone()
    corr = y @ dictionary
    for t in range(s):
        lam = corr.abs().masked_fill_(taken, -1.0).argmax(dim=1)
        idx[:, t] = lam
        taken[rows, lam] = True
        a_lam = atoms[lam]  # [B, k1]
        q_t = a_lam
        if t > 0:
            row = torch.bmm(q[:, :t], a_lam.unsqueeze(2))[:, :, 0]  # q_j . a_lam = L[t, j]
            chol[:, t, :t] = row
            q_t = a_lam - torch.bmm(row.unsqueeze(1), q[:, :t])[:, 0]
            diag = torch.sqrt(((a_lam * a_lam).sum(dim=1) - (row * row).sum(dim=1)).clamp_min(tiny))
        else:
            diag = torch.sqrt((a_lam * a_lam).sum(dim=1).clamp_min(tiny))
        chol[:, t, t] = diag
        q_t = q_t / diag.unsqueeze(1)
        q[:, t] = q_t
        z_t = corr[rows, lam] / diag
        proj[:, t] = z_t
        if t + 1 < s:
            resid.sub_(z_t.unsqueeze(1) * q_t)
            corr = resid @ dictionary
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
        chunk_bytes: memory cap of the per-chunk work buffers.

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
    atoms = a.t().contiguous()
    step = max(1, chunk_bytes // ((sparsity * k1 + 3 * k2) * a.element_size()))
    out_idx, out_coef = [], []
    for start in range(0, y.shape[0], step):
        i, c = _omp_chunk(atoms, a, y[start : start + step], sparsity)
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
