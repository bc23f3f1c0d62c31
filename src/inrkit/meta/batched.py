"""A batch of meta-learning tasks trained by :func:`inrkit.train.fit` in one go.

:class:`~inrkit.train.batched.StackedModel` (moved to :mod:`inrkit.train.batched`, re-exported here)
holds ``B`` copies of one network's parameters stacked on a leading axis and evaluates them at once.
:class:`TaskBatch` is the task: targets ``[B, N, C]`` at shared coordinates ``[N, d]``; its loss
is the sum of the per-task MSEs, so Adam (elementwise) adapts every copy exactly as if it
were trained alone. :func:`adapt_tasks` is the first-order inner loop of meta-training.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from inrkit.metrics import psnr_from_mse
from inrkit.train.batched import StackedModel
from inrkit.train.fit import FitConfig, fit

Params = dict[str, Tensor]

__all__ = ["StackedModel", "TaskBatch", "adapt_tasks"]


class TaskBatch:
    """Targets ``[B, N, C]`` of ``B`` tasks at shared ``coords [N, d]``.

    Records the per-task MSE of the first step (before any update) in ``first_losses``.

    Args:
        coords: shared input points.
        targets: one target set per task.
        generator: draws the random point batches (default: the one :func:`fit` passes).
    """

    supports_bf16 = False

    def __init__(self, coords: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> None:
        self.coords, self.targets, self.generator = coords, targets, generator
        self.first_losses: Tensor | None = None

    def num_samples(self) -> int:
        """Points per task."""
        return int(self.coords.shape[0])

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        """All points, or ``batch_size`` random points (the same ones for every task)."""
        n = self.num_samples()
        if batch_size is None or batch_size >= n:
            return self.coords, self.targets
        idx = torch.randint(n, (batch_size,), generator=self.generator or generator).to(self.coords.device)
        return self.coords[idx], self.targets[:, idx]

    def per_task_mse(self, model: nn.Module, coords: Tensor, targets: Tensor) -> Tensor:
        """MSE of every copy ``[B]``."""
        return torch.mean((model(coords) - targets) ** 2, dim=(1, 2))

    def loss(self, model: nn.Module, coords: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Sum of the per-task MSEs (the gradient of each copy is its own task's) and their mean."""
        per_task = self.per_task_mse(model, coords, targets)
        if self.first_losses is None:
            self.first_losses = per_task.detach()
        return per_task.sum(), per_task.mean()

    def evaluate(self, model: nn.Module) -> dict[str, float | list[float]]:
        """Mean PSNR and per-task MSE over all points."""
        with torch.no_grad():
            mse = self.per_task_mse(model, self.coords, self.targets)
        return {"psnr": psnr_from_mse(float(mse.mean())), "mse": mse.tolist()}


def adapt_tasks(model: nn.Module, coords: Tensor, targets: Tensor, steps: int, lr: float,
                optimizer: str = "adam", batch: int | None = None,
                generator: torch.Generator | None = None) -> tuple[Params, Tensor]:
    """Adapt one copy of ``model`` per task with :func:`inrkit.train.fit` (no graph kept: first order).

    Args:
        model: the shared initialisation (unchanged).
        coords: shared points ``[N, d]``; targets: ``[B, N, C]``.
        steps, lr, optimizer: the inner loop (``adam`` or ``sgd``, constant learning rate).
        batch: points per inner step (``None``: all).
        generator: draws the point batches.
    Returns:
        The adapted parameters ``{name: [B, ...]}`` and each task's loss before the first step ``[B]``.
    """
    stacked = StackedModel(model, targets.shape[0])
    task = TaskBatch(coords, targets, generator)
    config = FitConfig(steps=steps, lr=lr, schedule="constant", optimizer=optimizer, batch_size=batch,
                       max_full_batch=max(task.num_samples(), 1), log_every=max(steps, 1), evaluate=False,
                       progress=False, precision="fp32", device=str(coords.device))
    fit(stacked, task, config)
    first = task.first_losses
    if first is None:
        with torch.no_grad():
            first = task.per_task_mse(stacked, coords, targets)
    return stacked.member_params(), first
