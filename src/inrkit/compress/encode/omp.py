"""Batched orthogonal matching pursuit in torch (CPU or GPU).

OMP-Cholesky over a batch of signals at once, Batch-OMP style (Rubinstein, Zibulevsky &
Elad 2008) for the factor: the Gram matrix ``G = A^T A`` is computed once; each step
picks, for every signal, the atom with the largest absolute correlation with the
residual, gets the new row of the Cholesky factor ``L`` of ``G[S, S]`` from a gather
``G[S, lam]`` and the running inverse ``L^-1`` (``B t^2`` work instead of ``B t k1``),
and updates the residual along ``q_t = A_S L^-T e_t`` (a sparse product over ``t + 1``
atoms). The coefficients are ``L^-T Q^T y``, once at the end. Selection and
coefficients follow scikit-learn's ``orthogonal_mp`` (first index on ties).

Speed (float64): the per-step correlations ``A^T r`` -- the only ``B k1 k2`` work -- are
*screened* in low precision (bfloat16 on CPUs with native bfloat16 dot products, about
2.6x faster than float32 there; float32 elsewhere) with a rigorous per-row bound on the
screening error, built from the measured rounding of ``r`` and ``A``. Only atoms whose
screened score comes within twice that bound of the best can hold the float64 argmax;
a signal with one such candidate takes it, a signal with several compares them by their
exact float64 scores, and rows where the bound says nothing (a near-zero residual) are
scored exactly in full. Everything else (residual, ``L^-1``, coefficients) is float64,
so supports and coefficients are those of float64 OMP. The float32 mode is screened the
same way in bfloat16 where that is available (a float32 screen would gain nothing). The
residual update is one CSR x dense product; the ``L^-1`` products loop over the columns
of the triangle instead of materialising ``[t, t, B]`` temporaries.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_CHUNK_ROWS = 2048  # signals per chunk: the scores of a chunk stay in the L2/L3 cache
_BLOCK = 64  # block width of the two-level search over the k2 scores
_MAX_BLOCKS = 8  # rows whose candidates span more blocks than this are scored exactly in full


def _as_tensor(x: np.ndarray | Tensor, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    if not isinstance(x, Tensor):
        x = np.array(x, dtype=np.float64, copy=not (isinstance(x, np.ndarray) and x.flags.writeable))
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x.to(device=device if device is not None else x.device, dtype=dtype)


# --- screening -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Screen:
    """A low-precision copy of the dictionary and the constants of its error bound."""

    matrix: Tensor  # [k1, nb * block]; zero-padded columns score 0 and never pass the threshold
    block: int
    unit: float  # unit roundoff u of the screening type
    col_norm: float  # max_j ||a_j||
    rounding: float  # max_j ||a_j - fl(a_j)||
    sum_scale: float  # float32 summation error per unit ||fl(r)||: (k1 + 4) eps32 max_j ||fl(a_j)||


@functools.lru_cache(maxsize=None)
def _bf16_sums_in_fp32(k1: int, k2: int) -> bool:
    """Whether this CPU's bfloat16 matmul (at these sizes) keeps float32 sums: a long row of
    terms below bfloat16's resolution must add up, as they do in float32."""
    tail = 2.0**-9
    col = torch.full((k1, 1), tail)
    col[0] = 1.0
    exact = 1.0 + (k1 - 1) * tail
    mat = col.expand(k1, k2).to(torch.bfloat16)
    for rows in (1, 512):
        out = torch.mm(torch.ones(rows, k1, dtype=torch.bfloat16), mat).double()
        if not bool(((out - exact).abs() <= 2.0**-8 * exact + 1e-12).all()):
            return False
    return True


def _screen_dtype(device: torch.device, k1: int, k2: int) -> torch.dtype | None:
    """bfloat16 on CPUs with native bfloat16 dot products (from k1 = 64 on: below, the
    matmul is cheap and float32's tighter bound saves more), else float32; None (exact
    scores only) when float32 matmuls may run in TF32 on a GPU."""
    if device.type == "cpu":
        fast = k1 >= 64 and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        return torch.bfloat16 if fast and _bf16_sums_in_fp32(k1, k2) else torch.float32
    matmul = torch.backends.cuda.matmul
    if device.type == "cuda" and (torch.get_float32_matmul_precision() != "highest" or matmul.allow_tf32
                                  or getattr(matmul, "fp32_precision", "") == "tf32"):
        return None
    return torch.float32


def _make_screen(dictionary: Tensor, dtype: torch.dtype | None = None) -> _Screen | None:
    """Screening copy of the dictionary (zero-padded to whole blocks) and its bound's
    constants; ``dtype`` None picks the type for the device (or no screening)."""
    k1, k2 = dictionary.shape
    pad = -k2 % _BLOCK if k2 > _BLOCK else 0
    dtype = dtype or _screen_dtype(dictionary.device, k1, k2 + pad)
    if dtype is None or torch.finfo(dtype).eps <= torch.finfo(dictionary.dtype).eps:
        return None  # no screening, or none that would be cheaper than the exact scores
    matrix = F.pad(dictionary, (0, pad)).to(dtype)
    rounded = matrix[:, :k2].to(dictionary.dtype)
    eps32 = torch.finfo(torch.float32).eps
    return _Screen(
        matrix=matrix,
        block=_BLOCK if matrix.shape[1] % _BLOCK == 0 else matrix.shape[1],
        unit=torch.finfo(dtype).eps / 2,
        col_norm=float(torch.linalg.vector_norm(dictionary, dim=0).max()),
        rounding=float(torch.linalg.vector_norm(dictionary - rounded, dim=0).max()),
        sum_scale=(k1 + 4) * eps32 * float(torch.linalg.vector_norm(rounded, dim=0).max()),
    )


def _screen_error(screen: _Screen, resid: Tensor, rounded: Tensor) -> Tensor:
    """Per row, ``E`` with ``|fl(r . a_j) - r . a_j| <= u/(1-u) |fl(r . a_j)| + E`` for every atom.

    ``r . a - fl(r) . fl(a) = (r - fl(r)) . a + fl(r) . (a - fl(a))`` is at most
    ``||r - fl(r)|| max||a|| + ||fl(r)|| max||a - fl(a)||`` (both roundings measured, not
    assumed); the float32 sum adds ``(k1 + 4) eps32 ||fl(r)|| max||fl(a)||`` and rounding the
    result to the screening type ``u/(1-u)`` of its magnitude. The 1% margin and the tiny
    absolute term cover the float64 rounding of these norms and of the exact scores, and
    subnormals flushed to zero; residuals large enough to overflow get an infinite bound
    (and so the exact path).
    """
    k1 = resid.shape[1]
    r_err = torch.linalg.vector_norm(resid - rounded, dim=1)
    r_norm = torch.linalg.vector_norm(resid, dim=1)
    per_norm = screen.rounding + screen.sum_scale + 2 * k1 * torch.finfo(resid.dtype).eps * screen.col_norm
    bound = r_err.mul_(1.01 * (screen.col_norm + per_norm)).add_(r_norm, alpha=1.01 * per_norm)
    bound.add_(k1 * 2.0**-100 * screen.col_norm).masked_fill_(r_norm > 2.0**100, float("inf"))  # may overflow
    return bound.float()


def _screen_candidates(score: Tensor, rel: float, err: Tensor, block: int) -> tuple[Tensor, Tensor, Tensor]:
    """(signal, atom) pairs that may hold a row's best exact score, and the rows to score in full.

    ``score`` ``[B, nb * block]`` holds screened absolute correlations, each within
    ``rel * score + err`` (``err`` per row) of the exact one; excluded atoms are negative.
    An atom can win only if ``score (1 + rel) + err >= top (1 - rel) - err``. Two-level
    search: block maxima first, then the blocks that pass. Pairs come sorted by signal, then
    atom. Rows whose threshold is not positive (a near-zero residual) or whose candidates
    span many blocks go to the exact full path instead.

    A bfloat16 ``score`` is searched through its bit patterns as int16, whose order is the
    order of non-negative values, so no pass converts it to float32.
    """
    batch = score.shape[0]
    nb = score.shape[1] // block
    keys = score.view(torch.int16) if score.dtype == torch.bfloat16 else score
    bmax = keys.view(batch, nb, block).amax(dim=2)  # [B, nb]
    top = bmax.amax(dim=1)
    top = top.view(torch.bfloat16).float() if keys is not score else top
    thr = (top * (1.0 - rel) - 2.0 * err) / (1.0 + rel)
    full = ~(thr > 0)  # NaN-safe: an overflowed screen scores in full
    if keys is not score:  # smallest bfloat16 >= thr, as int16 bits
        rounded = thr.clamp_min(0).to(torch.bfloat16)
        thr = rounded.view(torch.int16) + (rounded.float() < thr).to(torch.int16)
    hot = bmax >= thr.unsqueeze(1)
    full |= hot.sum(dim=1) > _MAX_BLOCKS
    hot &= ~full.unsqueeze(1)
    rows_b, blks = hot.nonzero(as_tuple=True)
    sub = keys.view(batch * nb, block).index_select(0, rows_b * nb + blks)  # [P, block]
    pair, pos = (sub >= thr.index_select(0, rows_b).unsqueeze(1)).nonzero(as_tuple=True)
    return rows_b.index_select(0, pair), blks.index_select(0, pair) * block + pos, full


# --- selection -------------------------------------------------------------------------


def _pick_exact(score: Tensor, cols: Tensor) -> Tensor:
    """First index of each row's maximum of ``score`` (``cols``: ``arange(k2)`` in its dtype)."""
    top = score.amax(dim=1, keepdim=True)
    return torch.where(score == top, cols, float(score.shape[1])).amin(dim=1).long().clamp_(max=score.shape[1] - 1)


def _first_argmax(rows: Tensor, cols: Tensor, vals: Tensor, batch: int, k2: int) -> Tensor:
    """Per row, the smallest of ``cols`` among the entries with that row's largest ``vals``
    (``rows``, ``cols``, ``vals``: a list of scored (signal, atom) pairs)."""
    best = torch.full((batch,), -1.0, dtype=vals.dtype, device=vals.device)
    best.scatter_reduce_(0, rows, vals, "amax")
    key = torch.where(vals == best.index_select(0, rows), cols, k2)
    first = torch.full((batch,), k2, dtype=torch.long, device=vals.device)
    return first.scatter_reduce_(0, rows, key, "amin")


def _select(resid: Tensor, atoms: Tensor, dictionary: Tensor, screen: _Screen | None, taken: Tensor,
            cols: Tensor) -> tuple[Tensor, Tensor]:
    """Per signal, the atom with the largest absolute float64 correlation with the residual
    (atoms in ``taken`` ``[B, t]`` excluded, first index on ties) and that correlation, signed."""
    batch, k2 = resid.shape[0], dictionary.shape[1]
    corr = torch.zeros(batch, dtype=resid.dtype, device=resid.device)
    if screen is None:
        lam = torch.zeros(batch, dtype=torch.long, device=resid.device)
        rows_full: Tensor | None = torch.arange(batch, device=resid.device)
    else:
        rounded = resid.to(screen.matrix.dtype)
        score = torch.mm(rounded, screen.matrix).abs_()
        if taken.shape[1]:  # index_fill_ on the flat view: scatter_ is several times slower in bfloat16
            flat = taken + torch.arange(0, score.numel(), score.shape[1], device=score.device).unsqueeze(1)
            score.view(-1).index_fill_(0, flat.view(-1), -1.0)
        rel = screen.unit / (1.0 - screen.unit)
        rows, cand, full = _screen_candidates(score, rel, _screen_error(screen, resid, rounded), screen.block)
        exact = torch.linalg.vecdot(resid.index_select(0, rows), atoms.index_select(0, cand))
        lam = _first_argmax(rows, cand, exact.abs(), batch, k2)
        corr.index_add_(0, rows, exact.where(cand == lam.index_select(0, rows), 0.0))
        rows_full = torch.nonzero(full)[:, 0] if bool(full.any()) else None
    if rows_full is not None:
        exact = resid.index_select(0, rows_full) @ dictionary
        score = exact.abs()
        if taken.shape[1]:
            score.scatter_(1, taken.index_select(0, rows_full), -1.0)
        pick = _pick_exact(score, cols)
        lam[rows_full] = pick
        corr[rows_full] = exact.gather(1, pick.unsqueeze(1))[:, 0]
    return lam, corr


# --- Cholesky bookkeeping ----------------------------------------------------------------


def _lower_mv(w: Tensor, g: Tensor) -> Tensor:
    """``W g`` per signal for lower-triangular ``w`` ``[t, t, B]`` and ``g`` ``[t, B]``; reads
    only the lower triangle, one column at a time (no ``[t, t, B]`` temporary)."""
    out = w[:, 0] * g[0]
    for j in range(1, g.shape[0]):
        out[j:].addcmul_(w[j:, j], g[j])
    return out


def _lower_vm(v: Tensor, w: Tensor, out: Tensor | None = None) -> Tensor:
    """``v^T W`` per signal for lower-triangular ``w`` ``[t, t, B]`` and ``v`` ``[t, B]``
    (into ``out`` if given); reads only the lower triangle, one row at a time."""
    t = v.shape[0]
    out = torch.mul(w[t - 1], v[t - 1], out=out)
    for i in range(t - 1):
        out[: i + 1].addcmul_(w[i, : i + 1], v[i])
    return out


def _omp_chunk(atoms: Tensor, dictionary: Tensor, gram: Tensor, screen: _Screen | None, y: Tensor,
               s: int) -> tuple[Tensor, Tensor]:
    """OMP for one chunk of signals ``y`` ``[B, k1]``; returns (idx, coef) ``[B, s]``.

    ``L`` is the Cholesky factor of the selected Gram sub-matrix ``G[S, S] = L L^T``, kept as
    its inverse ``L^-1``, row ``t`` appended at step ``t``. With ``A_S = Q L^T`` (``Q``
    orthonormal, never stored), the new row of ``L`` is ``Q^T a_lam = L^-1 G[S, lam]`` and
    the residual drops its component along ``q_t = A_S L^-T e_t``. The coefficients are
    ``L^-T (Q^T y)``, once at the end.
    """
    batch = y.shape[0]
    k2 = dictionary.shape[1]
    dt, dev = y.dtype, y.device
    cols = torch.arange(k2, device=dev, dtype=dt)
    idx = torch.zeros(batch, s, dtype=torch.long, device=dev)
    idx_t = torch.zeros(s, batch, dtype=torch.long, device=dev)  # idx transposed (contiguous steps)
    proj = torch.empty(s, batch, dtype=dt, device=dev)  # Q^T y
    inv_l = torch.empty(s, s, batch, dtype=dt, device=dev)  # L^-1, batch last; only its lower triangle is used
    tiny, eps = torch.finfo(dt).tiny, torch.finfo(dt).eps
    gram_diag = gram.diagonal()
    gram_flat = gram.reshape(-1)
    crow = torch.arange(batch + 1, device=dev)
    resid = y.clone()
    for t in range(s):
        lam, corr = _select(resid, atoms, dictionary, screen, idx[:, :t], cols)
        idx[:, t] = lam
        idx_t[t] = lam
        g_lam = gram_diag.index_select(0, lam)
        if t > 0:
            g_s = gram_flat.index_select(0, (idx_t[:t] + lam * k2).view(-1)).view(t, batch)  # G[S, lam], [t, B]
            w_prev = inv_l[:t, :t]
            row = _lower_mv(w_prev, g_s)  # L[t, :t] = L^-1 G[S, lam] = Q^T a_lam, [t, B]
            # floor at eps * ||a||^2: a numerically dependent atom must not blow up L^-1
            diag = torch.sqrt((g_lam - torch.linalg.vecdot(row, row, dim=0)).clamp_min(eps * g_lam + tiny))
            _lower_vm(row, w_prev, out=inv_l[t, :t]).div_(-diag)
        else:
            diag = torch.sqrt(g_lam.clamp_min(tiny))
        inv_l[t, t] = 1.0 / diag
        proj[t] = z_t = corr / diag  # a_lam . r = q_t . y (r is orthogonal to q_<t)
        if t + 1 < s:
            # q_t = A_S L^-T e_t: a weighted sum of t + 1 atoms, as one sparse (CSR) x dense product
            weights = torch.sparse_csr_tensor(crow * (t + 1), idx[:, : t + 1].reshape(-1),
                                              (inv_l[t, : t + 1] * z_t).t().reshape(-1), size=(batch, k2),
                                              check_invariants=False)
            resid.sub_(weights @ atoms)
    return idx, _lower_vm(proj, inv_l).t()


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
    screen = _make_screen(a) if dtype in (torch.float64, torch.float32) else None
    per_row = (sparsity * sparsity + 3 * k1 + 2 * sparsity) * a.element_size() + 6 * k2 * 4  # L^-1, residual, scores
    step = max(1, min(_CHUNK_ROWS, chunk_bytes // per_row))
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
