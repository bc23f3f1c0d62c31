"""The pruning graph and the ONE physical surgery shared by every model: neurons are removed, never masked.

A model lists its :class:`PrunableGroup` s through ``model.prunable_groups()``: for one hidden layer,
the parameter rows that produce each neuron and the column range of every weight that consumes it
(skip connections included). :func:`remove_neurons`, :func:`fold_interpolation` and :func:`add_neurons`
edit exactly those parameters in place (the touched ones become NEW ``nn.Parameter`` objects, the
others stay the same objects) and return a :data:`StateMap`, with which
``FitState.replace_model`` carries Adam's moments over to the new parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, cast

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError

IndexFn = Callable[[Tensor], Tensor]
StateMap = dict[nn.Parameter, tuple[nn.Parameter, IndexFn]]
"""Maps every NEW parameter to ``(old parameter, index_fn)``; ``index_fn(old_state) -> new_state``."""


@dataclass
class PrunableGroup:
    """The neurons of one hidden layer and every parameter that touches them.

    Args:
        name: the group's name (MLP: the layer index, ``"0"``; NeRF: ``"trunk.2"``, ``"feature"``, ``"views.0"``).
        producer: ``(weight name, bias name)`` whose rows make the neurons (``W: [n, in]``, ``b: [n]``).
        consumers: ``(weight name, column offset)`` of every weight that reads the neurons, through its
            columns ``offset .. offset + width`` (the offset skips e.g. a concatenated encoding).
        width: the number of neurons ``n``.
    """

    name: str
    producer: tuple[str, str]
    consumers: list[tuple[str, int]] = field(default_factory=list)
    width: int = 0


class Prunable(Protocol):
    """A model that lists its prunable groups (MLP, NeRF MLP)."""

    def prunable_groups(self) -> list[PrunableGroup]: ...


def prunable_groups(model: nn.Module) -> list[PrunableGroup]:
    """``model.prunable_groups()``; an :class:`InvalidInputError` for models without a pruning graph."""
    if not callable(getattr(model, "prunable_groups", None)):
        raise InvalidInputError(f"a {type(model).__name__} has no prunable groups")
    return cast(Prunable, model).prunable_groups()


def find_group(model: nn.Module, name: str | int) -> PrunableGroup:
    """The group called ``name``.

    Args:
        model: a model with ``prunable_groups()``.
        name: the group's name (an MLP also accepts its hidden layer index as an int).
    """
    groups = prunable_groups(model)
    for group in groups:
        if group.name == str(name):
            return group
    raise InvalidInputError(f"{name!r} is not a hidden layer; choose from {', '.join(g.name for g in groups)}")


def group_weights(model: nn.Module, group: PrunableGroup) -> tuple[Tensor, Tensor]:
    """``(w_in [n, in], w_out [out, n])`` of ``group`` (detached); ``w_out`` stacks every consumer's columns.

    Args:
        model: a model with ``prunable_groups()``.
        group: one of its groups (current widths).
    """
    n = group.width
    w_in = model.get_parameter(group.producer[0]).detach()
    cols = [model.get_parameter(name).detach()[:, off:off + n] for name, off in group.consumers]
    return w_in, torch.cat(cols, 0)


# ----------------------------------------------------------------- helpers
def _as_index(keep_idx: Tensor | list[int], width: int) -> Tensor:
    idx = torch.as_tensor(keep_idx, dtype=torch.long).reshape(-1).cpu()
    if idx.numel() == 0:
        raise InvalidInputError("cannot remove every neuron of a layer")
    if int(idx.min()) < 0 or int(idx.max()) >= width or torch.unique(idx).numel() != idx.numel():
        raise InvalidInputError(f"neuron indices must be unique and in [0, {width})")
    return idx


def _set_parameter(model: nn.Module, name: str, value: Tensor) -> nn.Parameter:
    """Replace parameter ``name`` by a new Parameter holding ``value`` (any shape); return it."""
    parent, _, child = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    old = getattr(owner, child)
    param = nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad)
    if isinstance(owner, nn.ParameterList):
        owner[int(child)] = param
    else:
        setattr(owner, child, param)
    if isinstance(owner, nn.Linear) and child == "weight":
        owner.out_features, owner.in_features = int(value.shape[0]), int(value.shape[1])
    return param


def _guard(shape: torch.Size, fn: IndexFn) -> IndexFn:
    """Apply ``fn`` to per-element state only (shape == the old parameter's); pass scalars (Adam's step)."""
    def index(t: Tensor) -> Tensor:
        return fn(t) if t.shape == shape else t
    return index


def _take(idx: Tensor, dim: int) -> IndexFn:
    return lambda t: t.index_select(dim, idx.to(t.device))


def _insert_zeros(at: int, count: int, dim: int) -> IndexFn:
    def grow(t: Tensor) -> Tensor:
        shape = list(t.shape)
        shape[dim] = count
        head, tail = t.narrow(dim, 0, at), t.narrow(dim, at, t.shape[dim] - at)
        return torch.cat([head, t.new_zeros(shape), tail], dim=dim)
    return grow


def _column_index(total: int, offset: int, width: int, idx: Tensor) -> Tensor:
    """All columns of a consumer, with its ``width`` neuron columns at ``offset`` reduced to ``idx``."""
    return torch.cat([torch.arange(offset), offset + idx, torch.arange(offset + width, total)])


def _replace(model: nn.Module, name: str, value: Tensor, fn: IndexFn | None, state_map: StateMap) -> None:
    old = model.get_parameter(name)
    new = _set_parameter(model, name, value)
    if fn is not None:
        state_map[new] = (old, _guard(old.shape, fn))


def _replace_producer(model: nn.Module, group: PrunableGroup, idx: Tensor, state_map: StateMap) -> None:
    for name in group.producer:
        old = model.get_parameter(name)
        _replace(model, name, old.detach()[idx.to(old.device)], _take(idx, 0), state_map)


# ----------------------------------------------------------------- surgery
@torch.no_grad()
def remove_neurons(model: nn.Module, group: PrunableGroup, keep_idx: Tensor | list[int],
                   out_scale: Tensor | None = None) -> StateMap:
    """Keep only neurons ``keep_idx`` of ``group``, in place: THE neuron-removal of inrkit.

    Args:
        model: any model with ``prunable_groups()`` (MLP, NeRF MLP).
        group: the group to shrink (from ``model.prunable_groups()``, current widths).
        keep_idx: indices of the neurons to keep (unique, in ``[0, group.width)``).
        out_scale: optional factor per kept neuron on its outgoing columns (coreset re-weighting).

    Returns the state map of the replaced parameters (moments of re-weighted columns are carried
    unscaled: Adam's update is invariant to that scale per step).
    """
    idx = _as_index(keep_idx, group.width)
    state_map: StateMap = {}
    _replace_producer(model, group, idx, state_map)
    for name, off in group.consumers:
        old = model.get_parameter(name)
        cols = _column_index(old.shape[1], off, group.width, idx)
        value = old.detach()[:, cols.to(old.device)]
        if out_scale is not None:
            scale = torch.as_tensor(out_scale, dtype=value.dtype, device=value.device).reshape(1, -1)
            value[:, off:off + idx.numel()] = value[:, off:off + idx.numel()] * scale
        _replace(model, name, value, _take(cols, 1), state_map)
    return state_map


@torch.no_grad()
def fold_interpolation(model: nn.Module, group: PrunableGroup, keep_idx: Tensor | list[int],
                       interp: Tensor) -> StateMap:
    """ID pruning: with hidden ``H ≈ H[:, keep] @ interp`` (``interp: [k, n]``), keep neurons ``keep_idx``
    and replace each consumer's neuron columns ``C`` by ``C @ interp^T``.

    Args:
        model: any model with ``prunable_groups()``.
        group: the group to shrink.
        keep_idx: the ``k`` kept neurons (sorted as the rows of ``interp``).
        interp: the interpolation matrix ``[k, n]``.

    Returns the state map of the producer's rows (the folded consumers start with fresh Adam state).
    """
    idx = _as_index(keep_idx, group.width)
    n, k = group.width, idx.numel()
    state_map: StateMap = {}
    for name, off in group.consumers:
        old = model.get_parameter(name).detach()
        t = torch.as_tensor(interp, dtype=old.dtype, device=old.device)
        if t.shape != (k, n):
            raise InvalidInputError(f"interpolation matrix must be {(k, n)}, got {tuple(t.shape)}")
        folded = old[:, off:off + n] @ t.t()
        _replace(model, name, torch.cat([old[:, :off], folded, old[:, off + n:]], 1), None, state_map)
    _replace_producer(model, group, idx, state_map)
    return state_map


@torch.no_grad()
def add_neurons(model: nn.Module, group: PrunableGroup, rows: Tensor, bias: Tensor, out_cols: Tensor) -> StateMap:
    """Append ``k`` neurons to ``group`` (densification), in place; their Adam state starts at zero.

    Args:
        model: any model with ``prunable_groups()``.
        group: the group to grow.
        rows: incoming weights of the new neurons ``[k, in]``.
        bias: their biases ``[k]``.
        out_cols: their outgoing columns ``[out, k]``, stacked over the consumers as in :func:`group_weights`.
    """
    k, n = int(rows.shape[0]), group.width
    if rows.ndim != 2 or bias.shape != (k,) or out_cols.shape[1] != k:
        raise InvalidInputError(f"new neurons: rows {tuple(rows.shape)}, bias {tuple(bias.shape)} and "
                                f"out_cols {tuple(out_cols.shape)} do not fit")
    state_map: StateMap = {}
    for name, new in zip(group.producer, (rows, bias)):
        old = model.get_parameter(name).detach()
        _replace(model, name, torch.cat([old, new.to(old)]), _insert_zeros(n, k, 0), state_map)
    start = 0
    for name, off in group.consumers:
        old = model.get_parameter(name).detach()
        part = out_cols[start:start + old.shape[0]].to(old)
        start += old.shape[0]
        value = torch.cat([old[:, :off + n], part, old[:, off + n:]], 1)
        _replace(model, name, value, _insert_zeros(off + n, k, 1), state_map)
    if start != out_cols.shape[0]:
        raise InvalidInputError(f"out_cols has {out_cols.shape[0]} rows, the consumers {start}")
    return state_map


def _chain(first: IndexFn, second: IndexFn) -> IndexFn:
    return lambda t: second(first(t))


def merge_state_maps(previous: StateMap, new: StateMap, model: nn.Module) -> StateMap:
    """Chain ``new`` after ``previous`` (a parameter replaced twice maps to its first original).

    Args:
        previous: the state map of the earlier surgery.
        new: the state map of the later one.
        model: the edited model; only entries of its live parameters are kept.
    """
    out = dict(previous)
    for param, (src, fn) in new.items():
        if src in previous:
            src0, fn0 = previous[src]
            out[param] = (src0, _guard(src0.shape, _chain(fn0, fn)))
        else:
            out[param] = (src, fn)
    live = set(model.parameters())
    return {k: v for k, v in out.items() if k in live}
