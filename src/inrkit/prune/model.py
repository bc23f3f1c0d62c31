"""Apply a pruning criterion to a model's prunable groups, physically.

``prune_model`` prunes one or several hidden layers (groups) of any model with
``prunable_groups()`` (the MLP, the NeRF MLP) with any criterion of :data:`inrkit.prune.CRITERIA`.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.models.surgery import PrunableGroup, StateMap, find_group, group_weights, prunable_groups
from inrkit.prune.criteria import CRITERIA, Criterion, keep_count

ModelT = TypeVar("ModelT", bound=nn.Module)


def layer_weights(model: nn.Module, layer: int | str) -> tuple[Tensor, Tensor]:
    """``(w_in, w_out)`` of hidden ``layer`` (MLP: ``W_layer`` and ``W_{layer+1}``)."""
    return group_weights(model, find_group(model, layer))


def domain_points(model: MLP, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points uniform in ``[-1, 1]^coord_dim`` on the model's device."""
    pts = torch.rand(n, model.coord_dim, generator=generator) * 2.0 - 1.0
    return pts.to(model.weights[0].device, model.weights[0].dtype)


def criterion_of(method: str | Criterion) -> Criterion:
    """The criterion object registered as ``method`` (objects pass through)."""
    return CRITERIA.get(method) if isinstance(method, str) else method


def prune_group(model: nn.Module, group: PrunableGroup, method: str | Criterion = "l1", keep: int | None = None,
                eps: float | None = None, points: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, StateMap]:
    """Prune ``group`` in place with a criterion to ``keep`` neurons (a count) or those scoring ``> eps``.

    Args:
        model: a model with ``prunable_groups()``.
        group: the group (current widths).
        method: a name in :data:`CRITERIA` or a criterion object.
        keep: neurons to keep (exactly one of ``keep`` and ``eps``).
        eps: score threshold; ID's relative tolerance for ``id``.
        points: sample points of data-dependent criteria (``id``).
        generator: random source (uniform, coreset).

    Returns ``(kept indices, state map)``.
    """
    return criterion_of(method).prune_group(model, group, keep, eps, points, generator)


def prune_layer(model: ModelT, layer: int | str, method: str | Criterion = "l1", keep: float | int | None = None,
                eps: float | None = None, points: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[ModelT, Tensor]:
    """Prune hidden ``layer`` in place; return ``(model, kept indices)``.

    ``keep``: fraction in (0, 1] or a neuron count; ``eps``: for score criteria, drop
    neurons scoring ``<= eps`` (AIRe uses ``l1`` with eps 0.01); for ``id``, the ID's
    relative tolerance. ``points`` (``id`` only) are where activations are sampled.
    """
    criterion = criterion_of(method)
    if (keep is None) == (eps is None):
        raise InvalidInputError("give exactly one of keep or eps")
    group = find_group(model, layer)
    count = keep_count(group.width, keep) if keep is not None else None
    idx, _ = criterion.prune_group(model, group, count, eps, points, generator)
    return model, idx


def prune_model(model: ModelT, method: str | Criterion = "l1", layers: Sequence[int | str] | None = None,
                keep: float | int | None = None, eps: float | None = None,
                points: Tensor | None = None, generator: torch.Generator | None = None
                ) -> tuple[ModelT, list[int]]:
    """Prune ``layers`` (default: every prunable group) in turn; return the model and the new group widths."""
    names = [g.name for g in prunable_groups(model)] if layers is None else [str(i) for i in layers]
    for name in names:
        prune_layer(model, name, method, keep, eps, points, generator)
    if isinstance(model, MLP):
        model.validate()
    return model, [g.width for g in prunable_groups(model)]
