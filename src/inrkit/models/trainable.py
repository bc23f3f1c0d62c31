"""What a model tells the training loop about itself: its optimizer parameter groups and its default batch.

:func:`inrkit.train.fit` asks every model through :func:`param_groups` and :func:`default_batch_size`; a model
that defines neither (a plain MLP, a NeRF MLP, a stack) trains as one group, and in full batches where the
fit's ``max_full_batch`` allows. A model with a grid encoding (:class:`~inrkit.models.mlp.MLP` with
``encoding``, the NeRF grid field) defines both (:func:`inrkit.models.grid.grid_param_groups`,
:func:`inrkit.models.grid.grid_batch_size`).
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class Trainable(Protocol):
    """The training defaults a model may own."""

    def param_groups(self, lr: float, encoding_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimizer parameter groups, each with the ``base_lr`` its schedule scales.

        Args:
            lr: the learning rate of the network.
            encoding_lr: the learning rate of an encoding's tables (``None``: the model's default).
        """
        ...

    def default_batch_size(self, n_points: int) -> int | None:
        """Points per step when the fit names none (``None``: the fit's own rule) for a task of ``n_points``."""
        ...


def param_groups(model: nn.Module, lr: float, encoding_lr: float | None = None) -> list[dict[str, Any]]:
    """``model.param_groups(lr, encoding_lr)``, else one group of every parameter at ``lr``."""
    own = getattr(model, "param_groups", None)
    if callable(own):
        return own(lr, encoding_lr)
    return [{"params": list(model.parameters()), "base_lr": lr}]


def default_batch_size(model: nn.Module, n_points: int) -> int | None:
    """``model.default_batch_size(n_points)``, else ``None`` (the fit's own rule)."""
    own = getattr(model, "default_batch_size", None)
    return own(n_points) if callable(own) else None


__all__ = ["Trainable", "default_batch_size", "param_groups"]
