"""Matrix-level neuron pruning criteria, usable on any MLP (SIREN, NeRF, ...).

A hidden layer with ``n`` neurons is described by ``w_in`` (``[n, in]``, the rows
that produce the neurons) and ``w_out`` (``[out, n]``, the columns that consume
them). Every criterion returns a score per neuron (larger = more important) or a
selection of neurons to keep.

Methods (``METHODS``):

- ``l1``: AIRe's criterion, the L1 norm of the outgoing column ``||w_out[:, j]||_1``.
- ``w_in``: mean absolute incoming weight ``mean_k |w_in[j, k]|`` (NeRF pruning study).
- ``w_out``: mean absolute outgoing weight ``mean_k |w_out[k, j]|``.
- ``product``: ``w_in`` score times ``w_out`` score.
- ``uniform``: keep a uniformly random subset (no re-weighting).
- ``coreset``: data-independent coreset selection, see :func:`coreset_select`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from inrkit.errors import InvalidInputError

SCORE_METHODS: tuple[str, ...] = ("l1", "w_in", "w_out", "product", "coreset")
METHODS: tuple[str, ...] = ("l1", "w_in", "w_out", "product", "uniform", "coreset")


def _check(w_in: Tensor, w_out: Tensor) -> int:
    if w_in.dim() != 2 or w_out.dim() != 2:
        raise InvalidInputError("w_in and w_out must be 2-D matrices ([n, in] and [out, n])")
    n = w_in.shape[0]
    if w_out.shape[1] != n:
        raise InvalidInputError(
            f"w_out has {w_out.shape[1]} columns but w_in has {n} rows (neurons)")
    if n == 0:
        raise InvalidInputError("layer has no neurons")
    return n


def sensitivity(w_in: Tensor, w_out: Tensor) -> Tensor:
    """Data-independent sensitivity ``s_j = ||w_in[j]||_2 * ||w_out[:, j]||_2``.

    For inputs with ``||x||_2 <= 1`` and a 1-Lipschitz activation with ``act(0) = 0``
    (ReLU, tanh, sine up to the constant omega), ``s_j`` bounds the norm of neuron
    ``j``'s contribution ``w_out[:, j] * act(w_in[j] @ x)`` to the next layer.
    """
    _check(w_in, w_out)
    return w_in.detach().norm(dim=1) * w_out.detach().norm(dim=0)


def neuron_scores(method: str, w_in: Tensor, w_out: Tensor) -> Tensor:
    """Importance score per neuron (``[n]``, larger = keep). ``method`` in ``SCORE_METHODS``."""
    _check(w_in, w_out)
    w_in, w_out = w_in.detach(), w_out.detach()
    if method == "l1":
        return w_out.abs().sum(dim=0)
    if method == "w_in":
        return w_in.abs().mean(dim=1)
    if method == "w_out":
        return w_out.abs().mean(dim=0)
    if method == "product":
        return w_in.abs().mean(dim=1) * w_out.abs().mean(dim=0)
    if method == "coreset":
        return sensitivity(w_in, w_out)
    raise InvalidInputError(
        f"unknown score method {method!r}; expected one of {', '.join(SCORE_METHODS)}")


def inclusion_probabilities(scores: Tensor, keep: int) -> Tensor:
    """Inclusion probabilities ``pi_j = min(1, c * s_j)`` with ``sum(pi) = keep``.

    ``c`` is found in closed form after sorting: the ``t`` largest scores are capped
    at 1 and the rest share ``keep - t`` proportionally to their score.
    """
    s = scores.detach().double().clamp_min(0)
    n = s.numel()
    if keep >= n:
        return torch.ones(n, dtype=scores.dtype, device=scores.device)
    top = float(s.max()) if n else 0.0
    s = torch.ones_like(s) if top <= 0 else s.clamp_min(1e-9 * top)
    desc, order = torch.sort(s, descending=True)
    # suffix[t] = sum of desc[t:]; with t capped, the free scale is (keep - t) / suffix[t]
    suffix = torch.flip(torch.cumsum(torch.flip(desc, [0]), 0), [0])
    t = torch.arange(n, device=s.device, dtype=s.dtype)
    ok = (keep - t) * desc / suffix <= 1.0 + 1e-12
    ok &= t < keep
    t_cap = int(torch.nonzero(ok)[0]) if bool(ok.any()) else keep
    pi_sorted = torch.ones_like(desc)
    pi_sorted[t_cap:] = (keep - t_cap) * desc[t_cap:] / suffix[t_cap]
    pi = torch.empty_like(pi_sorted)
    pi[order] = pi_sorted.clamp(max=1.0)
    return pi.to(scores.dtype)


def systematic_sample(pi: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``round(sum(pi))`` distinct indices, index ``j`` with probability exactly ``pi_j``.

    Systematic (Madow) sampling in random order: one uniform offset ``u`` and the
    points ``u, u+1, ..., u+k-1`` on the cumulative sum of ``pi`` (each ``pi_j <= 1``,
    so no interval holds two points).
    """
    n = pi.numel()
    k = int(round(float(pi.sum())))
    perm = torch.randperm(n, generator=generator)
    p = pi.detach().double().cpu()[perm]
    cum = torch.cumsum(p, 0)
    cum = cum * (k / float(cum[-1]))
    u = torch.rand(1, generator=generator, dtype=torch.float64)
    points = u + torch.arange(k, dtype=torch.float64)
    pos = torch.searchsorted(cum, points, right=True).clamp(max=n - 1)
    return torch.sort(perm[pos]).values


def coreset_select(w_in: Tensor, w_out: Tensor, keep: int,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Coreset neuron selection with Horvitz-Thompson re-weighting.

    1. sensitivity ``s_j`` (:func:`sensitivity`);
    2. inclusion probabilities ``pi_j = min(1, c s_j)`` with ``sum(pi) = keep``;
    3. exactly ``keep`` distinct neurons by systematic sampling, ``P(j kept) = pi_j``;
    4. kept outgoing columns are scaled by ``1 / pi_j``, so for any input the next
       layer's pre-activation is preserved in expectation:
       ``E[sum_{j in S} w_out[:, j] h_j / pi_j] = sum_j w_out[:, j] h_j``.

    Returns ``(keep_idx sorted, out_scale [keep])``.
    """
    pi = inclusion_probabilities(sensitivity(w_in, w_out), keep)
    idx = systematic_sample(pi, generator).to(w_in.device)
    return idx, (1.0 / pi[idx]).to(w_out.dtype)


def select_neurons(method: str, w_in: Tensor, w_out: Tensor, keep: int,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """Choose ``keep`` neurons of a layer.

    Returns ``(keep_idx, out_scale)``: sorted ``LongTensor`` of kept neuron indices
    and, for ``coreset`` only, the factor for each kept outgoing column (else None).
    """
    n = _check(w_in, w_out)
    if not 1 <= keep <= n:
        raise InvalidInputError(f"keep must be in [1, {n}], got {keep}")
    if method not in METHODS:
        raise InvalidInputError(f"unknown pruning method {method!r}; expected one of {', '.join(METHODS)}")
    dev = w_in.device
    if keep == n:
        return torch.arange(n, device=dev), None
    if method == "uniform":
        idx = torch.randperm(n, generator=generator)[:keep]
        return torch.sort(idx).values.to(dev), None
    if method == "coreset":
        return coreset_select(w_in, w_out, keep, generator)
    scores = neuron_scores(method, w_in, w_out)
    idx = torch.topk(scores, keep, largest=True, sorted=False).indices
    return torch.sort(idx).values, None


def keep_count(n: int, keep: float | int) -> int:
    """Neurons to keep: a fraction in (0, 1] (rounded, at least 1) or an absolute count > 1."""
    if isinstance(keep, bool) or keep <= 0:
        raise InvalidInputError(f"keep must be positive, got {keep}")
    k = int(round(n * keep)) if keep <= 1 else int(keep)
    if k > n:
        raise InvalidInputError(f"cannot keep {k} of {n} neurons")
    return max(1, k)
