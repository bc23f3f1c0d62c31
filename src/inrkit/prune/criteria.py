"""Neuron pruning criteria as objects (Torch-Pruning's ``Importance``), in the registry :data:`CRITERIA`.

A hidden layer (a :class:`~inrkit.models.surgery.PrunableGroup`) with ``n`` neurons is described by
``w_in`` (``[n, in]``, the rows that produce the neurons) and ``w_out`` (``[out, n]``, the columns
that consume them). A criterion scores each neuron (``scores``, larger = more important) and chooses
the neurons to keep (``select``); data-dependent criteria (``id``) override ``prune_group``.

Registered criteria:

- ``l1``: AIRe's criterion, the L1 norm of the outgoing column ``||w_out[:, j]||_1``.
- ``w_in``: mean absolute incoming weight ``mean_k |w_in[j, k]|`` (NeRF pruning study).
- ``w_out``: mean absolute outgoing weight ``mean_k |w_out[k, j]|``.
- ``product``: ``w_in`` score times ``w_out`` score.
- ``uniform``: keep a uniformly random subset (no re-weighting).
- ``coreset``: data-independent coreset selection, see :func:`coreset_select`.
- ``id``: interpolative decomposition of the activations at sample points, folded into the consumers.

Adding a criterion is one registration::

    @register("mine")
    class Mine(Criterion):
        def scores(self, w_in, w_out):
            return ...
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.limits import check_fraction_or_count
from inrkit.models.surgery import PrunableGroup, StateMap, group_weights, remove_neurons
from inrkit.registry import Registry


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


class Criterion:
    """A pruning criterion: per-neuron scores and a selection of neurons to keep.

    Subclasses override :meth:`scores` (the default :meth:`select` keeps the top scores) and/or
    :meth:`select`; data-dependent ones set ``needs_points`` and override :meth:`prune_group`.
    """

    needs_points: bool = False

    def scores(self, w_in: Tensor, w_out: Tensor) -> Tensor:
        """Importance per neuron ``[n]`` (larger = keep)."""
        raise InvalidInputError(f"{type(self).__name__} has no per-neuron score: give keep, not eps")

    def select(self, w_in: Tensor, w_out: Tensor, keep: int,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """``(sorted kept indices, out_scale or None)`` for ``keep`` neurons (``keep < n``)."""
        idx = torch.topk(self.scores(w_in, w_out), keep, largest=True, sorted=False).indices
        return torch.sort(idx).values, None

    def select_above(self, w_in: Tensor, w_out: Tensor, eps: float) -> Tensor:
        """Neurons scoring ``> eps`` (the strongest one if none does), sorted."""
        scores = self.scores(w_in, w_out)
        idx = torch.nonzero(scores > eps).reshape(-1)
        return scores.argmax().reshape(1) if idx.numel() == 0 else idx

    def prune_group(self, model: nn.Module, group: PrunableGroup, keep: int | None = None,
                    eps: float | None = None, points: Tensor | None = None,
                    generator: torch.Generator | None = None) -> tuple[Tensor, StateMap]:
        """Prune ``group`` of ``model`` in place to ``keep`` neurons, or to those scoring ``> eps``.

        Args:
            model: a model with ``prunable_groups()``.
            group: the group to prune.
            keep: number of neurons to keep (exactly one of ``keep`` and ``eps``).
            eps: score threshold.
            points: sample points (data-dependent criteria only).
            generator: random source of randomised criteria.

        Returns ``(kept indices on the CPU, state map)``.
        """
        w_in, w_out = group_weights(model, group)
        if eps is not None:
            _check(w_in, w_out)
            idx, scale = self.select_above(w_in, w_out, eps), None
        elif keep is not None:
            idx, scale = select_neurons(self, w_in, w_out, keep, generator)
        else:
            raise InvalidInputError("give exactly one of keep or eps")
        idx = idx.cpu()
        return idx, remove_neurons(model, group, idx, scale)


CRITERIA: Registry[Criterion] = Registry("pruning criterion")
"""Pruning criterion objects by name; the CLI's ``--method`` choices read ``CRITERIA.names()``."""


def register(name: str) -> Callable[[type[Criterion]], type[Criterion]]:
    """Class decorator: register an instance of the criterion class under ``name``."""
    def decorator(cls: type[Criterion]) -> type[Criterion]:
        CRITERIA.register(name, cls())
        return cls
    return decorator


@register("l1")
class L1(Criterion):
    """AIRe: L1 norm of each neuron's outgoing column."""

    def scores(self, w_in: Tensor, w_out: Tensor) -> Tensor:
        return w_out.detach().abs().sum(dim=0)


@register("w_in")
class MeanIn(Criterion):
    """Mean absolute incoming weight."""

    def scores(self, w_in: Tensor, w_out: Tensor) -> Tensor:
        return w_in.detach().abs().mean(dim=1)


@register("w_out")
class MeanOut(Criterion):
    """Mean absolute outgoing weight."""

    def scores(self, w_in: Tensor, w_out: Tensor) -> Tensor:
        return w_out.detach().abs().mean(dim=0)


@register("product")
class Product(Criterion):
    """``w_in`` score times ``w_out`` score."""

    def scores(self, w_in: Tensor, w_out: Tensor) -> Tensor:
        return w_in.detach().abs().mean(dim=1) * w_out.detach().abs().mean(dim=0)


@register("uniform")
class Uniform(Criterion):
    """A uniformly random subset (no scores, no re-weighting)."""

    def select(self, w_in: Tensor, w_out: Tensor, keep: int,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        idx = torch.randperm(w_in.shape[0], generator=generator)[:keep]
        return torch.sort(idx).values.to(w_in.device), None


@register("coreset")
class Coreset(Criterion):
    """Sensitivity sampling with Horvitz-Thompson re-weighting (:func:`coreset_select`)."""

    def scores(self, w_in: Tensor, w_out: Tensor) -> Tensor:
        return sensitivity(w_in, w_out)

    def select(self, w_in: Tensor, w_out: Tensor, keep: int,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        return coreset_select(w_in, w_out, keep, generator)


@register("id")
class InterpolativeDecomposition(Criterion):
    """ID of the group's activations at sample points (``eps``: relative tolerance; ``keep``: rank, the
    ``keep`` first pivots of the column-pivoted QR), folded into the consumers
    (:func:`~inrkit.prune.interpolative.id_prune_group`). MLPs only."""

    needs_points = True

    def prune_group(self, model: nn.Module, group: PrunableGroup, keep: int | None = None,
                    eps: float | None = None, points: Tensor | None = None,
                    generator: torch.Generator | None = None) -> tuple[Tensor, StateMap]:
        from inrkit.prune.interpolative import id_prune_group

        if points is None:
            raise InvalidInputError("ID pruning needs sample points")
        idx, state_map, _ = id_prune_group(model, group, points, eps=eps, rank=keep)
        return idx, state_map


def _criterion(method: str | Criterion) -> Criterion:
    return CRITERIA.get(method) if isinstance(method, str) else method


def neuron_scores(method: str | Criterion, w_in: Tensor, w_out: Tensor) -> Tensor:
    """Importance score per neuron (``[n]``, larger = keep) of a criterion (name or object)."""
    _check(w_in, w_out)
    return _criterion(method).scores(w_in.detach(), w_out.detach())


def select_neurons(method: str | Criterion, w_in: Tensor, w_out: Tensor, keep: int,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """Choose ``keep`` neurons of a layer with a criterion (name or object).

    Returns ``(keep_idx, out_scale)``: sorted ``LongTensor`` of kept neuron indices
    and, for re-weighting criteria (coreset), the factor of each kept outgoing column (else None).
    """
    criterion = _criterion(method)
    n = _check(w_in, w_out)
    if not 1 <= keep <= n:
        raise InvalidInputError(f"keep must be in [1, {n}], got {keep}")
    if keep == n:
        return torch.arange(n, device=w_in.device), None
    return criterion.select(w_in, w_out, keep, generator)


def keep_count(n: int, keep: float | int) -> int:
    """Neurons to keep: a fraction in (0, 1) (rounded, at least 1) or a whole count >= 1."""
    check_fraction_or_count("keep", keep)
    k = int(round(n * keep)) if keep < 1 else int(keep)
    if k > n:
        raise InvalidInputError(f"cannot keep {k} of {n} neurons")
    return max(1, k)
