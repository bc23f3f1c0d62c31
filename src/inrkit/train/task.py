"""What :func:`inrkit.train.fit` trains on: the :class:`Task` protocol and a plain point-cloud task.

Every :class:`~inrkit.signals.Signal` is a task; so are NeRF ray batches
(:class:`inrkit.nerf.train.RayTask`), a batch of meta-learning tasks
(:class:`inrkit.meta.batched.TaskBatch`) and :class:`PointTask` below.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from inrkit.metrics import psnr_from_mse


@runtime_checkable
class Task(Protocol):
    """The interface :func:`~inrkit.train.fit` codes against.

    Optional members, read with ``getattr``: ``metadata() -> dict`` (stored in checkpoints),
    ``on_step_end(state)`` (called after every step, before the callbacks) and ``data_range``
    (the value range behind the logged PSNR; 2.0, values in [-1, 1], when absent).

    Args:
        supports_bf16: whether the loss is safe under the bfloat16 layers of ``precision="bf16"``
            (plain MSE: yes; losses with input gradients such as SDFs: no).
    """

    supports_bf16: bool

    def num_samples(self) -> int:
        """Training samples (0: drawn fresh every step)."""

    def train_batch(self, batch_size: int | None, generator: torch.Generator, device: torch.device) -> tuple:
        """The tensors of one step (``None``: the full set); passed to :meth:`loss` unpacked."""

    def loss(self, model: nn.Module, *batch: Any) -> tuple[Tensor, Tensor | None]:
        """Training loss and the plain MSE behind the logged PSNR (or ``None``)."""

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        """Quality metrics of the trained ``model``."""


@torch.no_grad()
def chunked_mse(model: nn.Module, coords: Tensor, targets: Tensor, chunk: int = 65536) -> float:
    """Mean squared error of ``model`` over all ``coords`` without gradients, ``chunk`` points at a time."""
    device = next(model.parameters()).device
    pred = torch.cat([model(coords[i:i + chunk].to(device)) for i in range(0, coords.shape[0], chunk)]).float()
    return float(torch.mean((pred - targets.to(device)) ** 2))


class PointTask:
    """Fit ``targets [N, C]`` at ``coords [N, d]`` with the MSE (full batch or random points).

    Args:
        coords: input points.
        targets: values at the points.
    """

    supports_bf16 = True
    compiled_loss = "mean"  # the plain MSE: :mod:`inrkit.train.compiled` may train it

    def __init__(self, coords: Tensor, targets: Tensor) -> None:
        self.coords, self.targets = coords, targets

    def num_samples(self) -> int:
        """Number of points."""
        return int(self.coords.shape[0])

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        """All points (``batch_size`` None or >= N, same tensors every call), else a random batch."""
        if self.coords.device != device:
            self.coords, self.targets = self.coords.to(device), self.targets.to(device)
        n = self.num_samples()
        if batch_size is None or batch_size >= n:
            return self.coords, self.targets
        idx = torch.randint(n, (batch_size,), generator=generator).to(device)
        return self.coords[idx], self.targets[idx]

    def loss(self, model: nn.Module, coords: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The MSE, twice (loss and PSNR source)."""
        mse = torch.mean((model(coords) - targets) ** 2)
        return mse, mse

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """PSNR (values in [-1, 1]) over all points."""
        return {"psnr": psnr_from_mse(chunked_mse(model, self.coords, self.targets))}
