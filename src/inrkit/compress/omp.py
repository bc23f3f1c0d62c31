"""Batched orthogonal matching pursuit in torch (CPU or GPU).

OMP-Cholesky over a batch of signals at once, Batch-OMP style (Rubinstein, Zibulevsky &
Elad 2008) for the factor: the Gram matrix ``G = A^T A`` is computed once; each step
picks, for every signal, the atom with the largest absolute correlation with the
residual, gets the new row of the Cholesky factor ``L`` of ``G[S, S]`` from a gather
``G[S, lam]`` and the running inverse ``L^-1`` (``B t^2`` work instead of ``B t k1``),
and updates the residual along ``q_t = A_S L^-T e_t`` (a sparse product over ``t + 1``
atoms). The coefficients come from one triangular solve at the end. Selection and
coefficients follow scikit-learn's ``orthogonal_mp`` (first index on ties).

Speed (float64): the per-step correlations ``A^T r`` -- the only ``B k1 k2`` work -- are
*screened* in float32 (one float32 GEMM, about 2.5x faster than float64 on CPU) with a
rigorous bound on the float32 error. A signal whose best atom beats every other atom by
more than twice the bound (and was not selected before) has the same float64 argmax;
the others (rare: near-ties, zero residuals) are re-scored exactly in float64. Everything
else (residual, Cholesky factor, coefficients) is float64, so supports and coefficients
are those of float64 OMP. The screened argmax is two-level (64-wide block maxima, then
the winning block), since a full ``argmax``/first-index search costs several passes; the
residual update is one CSR x dense product; from 24 atoms on, the ``L^-1`` products loop
over columns of the triangle instead of materialising ``[t, t, B]`` temporaries.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_SCREEN_ROWS = 1024  # chunk rows: the float32 scores of a chunk stay in the L2/L3 cache


def _as_tensor(x: np.ndarray | Tensor, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    if not isinstance(x, Tensor):
        x = np.array(x, dtype=np.float64, copy=not (isinstance(x, np.ndarray) and x.flags.writeable))
        x = torch.from_numpy(np.ascontiguousarray(x))
    t = x
    return t.to(device=device if device is not None else t.device, dtype=dtype)


_BLOCK = 64  # block width of the two-level argmax over the k2 scores


def _pick_exact(score: Tensor, cols: Tensor) -> Tensor:
    """First index of each row's maximum of ``score`` (``cols``: ``arange(k2)`` in its dtype)."""
    top = score.amax(dim=1, keepdim=True)
    return torch.where(score == top, cols, float(score.shape[1])).amin(dim=1).long().clamp_(max=score.shape[1] - 1)


def _pick_screened(score: Tensor, slack: Tensor, block: int, base: Tensor) -> tuple[Tensor, Tensor]:
    """Best column of each row of ``score`` ``[B, nb * block]`` (non-negative) and whether
    every other column is more than ``slack`` below it. Two-level: block maxima (one
    vectorised pass), then the winning block of each row; ``base`` is ``arange(B) * nb``.
    ``score`` is overwritten."""
    batch = score.shape[0]
    blocks = score.view(batch, -1, block)
    bmax = blocks.amax(dim=2)  # [B, nb]
    blk = bmax.argmax(dim=1)
    top = bmax.gather(1, blk.unsqueeze(1))[:, 0]
    inner = score.view(-1, block).index_select(0, base + blk)  # [B, block]
    pos = inner.argmax(dim=1)
    inner.scatter_(1, pos.unsqueeze(1), -1.0)
    bmax.scatter_(1, blk.unsqueeze(1), inner.amax(dim=1, keepdim=True))
    sure = bmax.amax(dim=1) < top - slack
    return blk * block + pos, sure


_LOOP_FROM = 24  # from this many atoms on, the L^-1 products loop over columns (no [t, t, B] temporary)


def _lower_mv(w: Tensor, g: Tensor) -> Tensor:
    """``W g`` per signal for lower-triangular ``w`` ``[t, t, B]`` and ``g`` ``[t, B]``."""
    t = g.shape[0]
    if t < _LOOP_FROM:
        return (w * g.unsqueeze(0)).sum(dim=1)
    out = w[:, 0] * g[0]
    for j in range(1, t):
        out[j:].addcmul_(w[j:, j], g[j])
    return out


def _lower_vm(v: Tensor, w: Tensor) -> Tensor:
    """``v^T W`` per signal for lower-triangular ``w`` ``[t, t, B]`` and ``v`` ``[t, B]``."""
    t = v.shape[0]
    if t < _LOOP_FROM:
        return (v.unsqueeze(1) * w).sum(dim=0)
    out = w[t - 1] * v[t - 1]
    for i in range(t - 1):
        out[: i + 1].addcmul_(w[i, : i + 1], v[i])
    return out


def _omp_chunk(atoms: Tensor, dictionary: Tensor, gram: Tensor, screen: Tensor | None, y: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """OMP for one chunk of signals ``y`` ``[B, k1]``; returns (idx, coef) ``[B, s]``.

    ``L`` is the Cholesky factor of the selected Gram sub-matrix ``G[S, S] = L L^T``; row ``t``
    is appended at step ``t``. With ``A_S = Q L^T`` (``Q`` orthonormal, never stored), the
    new row of ``L`` is ``Q^T a_lam = L^-1 G[S, lam]`` and the residual drops its component
    along the new direction ``q_t = A_S L^-T e_t``. ``screen`` (the dictionary in float32,
    zero-padded to whole blocks, or None) selects with float32 correlations when their
    error bound allows, else with exact ones. The coefficients solve ``L^T coef = Q^T y``
    once at the end.
    """
    batch, k1 = y.shape
    k2 = dictionary.shape[1]
    dt, dev = y.dtype, y.device
    cols = torch.arange(k2, device=dev, dtype=dt)
    idx = torch.zeros(batch, s, dtype=torch.long, device=dev)
    idx_t = torch.zeros(s, batch, dtype=torch.long, device=dev)  # idx transposed (contiguous steps)
    chol = torch.zeros(batch, s, s, dtype=dt, device=dev)
    proj = torch.zeros(batch, s, dtype=dt, device=dev)  # Q^T y
    inv_l = torch.zeros(s, s, batch, dtype=dt, device=dev)  # L^-1, batch last (vectorises over signals)
    tiny, eps = torch.finfo(dt).tiny, torch.finfo(dt).eps
    gram_diag = gram.diagonal()
    gram_flat = gram.reshape(-1)
    if screen is not None:
        # |fl32(r . a) - r . a| <= (k1 + 2) eps32 |r|.|a| <= (k1 + 2) eps32 ||r|| ||a||  (+ rounding of r)
        eps32 = torch.finfo(torch.float32).eps
        slack_scale = 2.0 * (k1 + 4) * eps32 * float(torch.linalg.vector_norm(dictionary, dim=0).max()) * 1.01
        block = _BLOCK if screen.shape[1] % _BLOCK == 0 else screen.shape[1]
        base = torch.arange(batch, device=dev) * (screen.shape[1] // block)
        r32 = torch.empty(batch, k1, dtype=torch.float32, device=dev)
        score = torch.empty(batch, screen.shape[1], dtype=torch.float32, device=dev)
    crow = torch.arange(batch + 1, device=dev)
    resid = y.clone()
    for t in range(s):
        if screen is not None:
            torch.mm(r32.copy_(resid), screen, out=score).abs_()
            slack = (slack_scale * torch.linalg.vector_norm(resid, dim=1)).to(torch.float32)
            lam, sure = _pick_screened(score, slack, block, base)
            if t:  # a taken atom never wins here: it goes to the exact path (no scatter over score)
                sure &= ~(idx_t[:t] == lam).any(dim=0)
            redo = None if bool(sure.all()) else torch.nonzero(~sure)[:, 0]
        else:
            redo = None
            exact = (resid @ dictionary).abs_()
            if t:
                exact.scatter_(1, idx[:, :t], -1.0)
            lam = _pick_exact(exact, cols)
        if redo is not None:
            exact = (resid[redo] @ dictionary).abs_()
            if t:
                exact.scatter_(1, idx[redo, :t], -1.0)
            lam[redo] = _pick_exact(exact, cols)
        idx[:, t] = lam
        idx_t[t] = lam
        a_lam = atoms.index_select(0, lam)  # [B, k1]
        g_lam = gram_diag.index_select(0, lam)
        if t > 0:
            g_s = gram_flat.index_select(0, (idx_t[:t] + lam * k2).view(-1)).view(t, batch)  # G[S, lam], [t, B]
            w_prev = inv_l[:t, :t]
            row = _lower_mv(w_prev, g_s)  # L[t, :t] = L^-1 G[S, lam] = Q^T a_lam, [t, B]
            chol[:, t, :t] = row.t()
            # floor at eps * ||a||^2: a numerically dependent atom must not blow up L^-1
            diag = torch.sqrt((g_lam - (row * row).sum(dim=0)).clamp_min(eps * g_lam + tiny))
            inv_l[t, :t] = _lower_vm(row, w_prev).div_(-diag)
        else:
            diag = torch.sqrt(g_lam.clamp_min(tiny))
        chol[:, t, t] = diag
        inv_l[t, t] = 1.0 / diag
        z_t = (a_lam * resid).sum(dim=1) / diag  # a_lam . r = q_t . y (r is orthogonal to q_<t)
        proj[:, t] = z_t
        if t + 1 < s:
            # q_t = A_S L^-T e_t: a weighted sum of t + 1 atoms, as one sparse (CSR) x dense product
            weights = torch.sparse_csr_tensor(crow * (t + 1), idx[:, : t + 1].reshape(-1),
                                              inv_l[t, : t + 1].t().reshape(-1), size=(batch, k2),
                                              check_invariants=False)
            resid.sub_(z_t.unsqueeze(1) * (weights @ atoms))
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
        signals: ``Y`` of shape ``[B, k1]`` (one signal per row), finite.
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
    if not (bool(torch.isfinite(y).all()) and bool(torch.isfinite(a).all())):
        raise ValueError("dictionary and signals must be finite")
    atoms = a.t().contiguous()
    gram = atoms @ a
    screen = None
    if dtype == torch.float64:
        pad = -k2 % _BLOCK if k2 > _BLOCK else 0
        screen = F.pad(a, (0, pad)).to(torch.float32)  # zero columns: scores 0, never a sure winner
    per_row = (2 * sparsity * sparsity + 3 * k1 + 2 * sparsity) * a.element_size() + 6 * k2 * 4
    step = max(1, min(_SCREEN_ROWS, chunk_bytes // per_row))
    out_idx, out_coef = [], []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for start in range(0, y.shape[0], step):
            i, c = _omp_chunk(atoms, a, gram, screen, y[start : start + step], sparsity)
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
