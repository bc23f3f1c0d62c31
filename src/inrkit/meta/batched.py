"""A batch of meta-learning tasks trained by :func:`inrkit.train.fit` in one go.

:class:`~inrkit.models.stacked.StackedModel` (re-exported here)
holds ``B`` copies of one network's parameters stacked on a leading axis and evaluates them at once.
:class:`TaskBatch` is the task: targets ``[B, N, C]`` at shared coordinates ``[N, d]``; its loss
is the sum of the per-task MSEs, so Adam (elementwise) adapts every copy exactly as if it
were trained alone. :func:`adapt_tasks` is the first-order inner loop of meta-training;
:class:`InnerAdamState` carries one inner Adam from task to task (the authors' released code).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.metrics import psnr_from_mse
from inrkit.models.stacked import StackedModel
from inrkit.train.compiled import CompileMode
from inrkit.train.fit import FitConfig, FitState, fit

Params = dict[str, Tensor]

__all__ = ["InnerAdamState", "StackedModel", "TaskBatch", "adapt_tasks"]


class TaskBatch:
    """Targets ``[B, N, C]`` of ``B`` tasks at shared ``coords [N, d]``.

    Records the per-task MSE of the first step (before any update) in ``first_losses``.

    Args:
        coords: shared input points.
        targets: one target set per task.
        generator: draws the random point batches (default: the one :func:`fit` passes).
    """

    supports_bf16 = False
    compiled_loss = "members"  # the loss :mod:`inrkit.train.compiled` computes: the sum of per-task MSEs

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

    def observe_mse(self, per_task: Tensor) -> None:
        """The per-task MSE of a step the compiled path took (recorded as :meth:`loss` records it)."""
        if self.first_losses is None:
            self.first_losses = per_task.detach()

    def evaluate(self, model: nn.Module) -> dict[str, float | list[float]]:
        """Mean PSNR and per-task MSE over all points."""
        with torch.no_grad():
            mse = self.per_task_mse(model, self.coords, self.targets)
        return {"psnr": psnr_from_mse(float(mse.mean())), "mse": mse.tolist()}


class InnerAdamState:
    """One inner Adam whose moments and step count persist from task to task, as in the Meta-INR
    authors' released code (one ``adapt_opt`` state dict, loaded into every task's fresh Adam and
    saved back after its inner loop, for the whole meta-training).

    A :func:`inrkit.train.fit` callback: before the first update of a fit it loads the carried
    state (``step``, ``exp_avg``, ``exp_avg_sq`` of every parameter) into the fit's optimiser, and
    after every update it keeps the optimiser's state. Pass it to :func:`adapt_tasks`, which then
    adapts the tasks one after another (the state after task ``b`` is the one task ``b + 1``
    starts from). The parameters must keep their shapes from fit to fit (one
    :class:`StackedModel` copy per task).

    Attributes:
        state: per parameter (``parameters()`` order) ``{"step", "exp_avg", "exp_avg_sq"}``;
            ``None`` until the first task has run.
        tasks: tasks adapted with this state so far.
    """

    adds_loss = False  # its extra_loss only loads state: the compiled step may train with it

    def __init__(self) -> None:
        self.state: list[dict[str, Tensor]] | None = None
        self.tasks = 0

    @property
    def step(self) -> int:
        """Adam updates taken so far over all tasks (0 before the first)."""
        if not self.state:
            return 0
        return int(self.state[0]["step"])

    def extra_loss(self, fit_state: FitState) -> None:
        """Load the carried state into the fit's optimiser before its first update (adds no loss)."""
        if fit_state.step == 0 and self.state is not None:
            params = list(fit_state.model.parameters())
            if len(params) != len(self.state) or any(
                    p.shape != s["exp_avg"].shape for p, s in zip(params, self.state)):
                raise InvalidInputError("the carried inner Adam state does not match the model's parameters")
            for p, s in zip(params, self.state):
                fit_state.optimizer.state[p] = {k: v.detach().clone().to(p.device) if k != "step" else v.clone()
                                                for k, v in s.items()}
        return None

    def on_step_end(self, fit_state: FitState) -> None:
        """Keep the optimiser's state after an update (the next task starts from the last one kept)."""
        if fit_state.step == 1:
            self.tasks += 1
        self.state = [fit_state.optimizer.state[p] for p in fit_state.model.parameters()]


def adapt_tasks(model: nn.Module, coords: Tensor, targets: Tensor, steps: int, lr: float,
                optimizer: str = "adam", batch: int | None = None,
                generator: torch.Generator | None = None,
                inner_state: InnerAdamState | None = None, compile: CompileMode = "auto") -> tuple[Params, Tensor]:
    """Adapt one copy of ``model`` per task with :func:`inrkit.train.fit` (no graph kept: first order).

    Args:
        model: the shared initialisation (unchanged).
        coords: shared points ``[N, d]``; targets: ``[B, N, C]``.
        steps, lr, optimizer: the inner loop (``adam`` or ``sgd``, constant learning rate).
        batch: points per inner step (``None``: all).
        generator: draws the point batches.
        inner_state: ``None`` (default): every task gets a fresh optimiser and all tasks train at
            once (one stack). An :class:`InnerAdamState` (``optimizer="adam"`` only): the tasks run
            one after another, each starting from ``model`` with the Adam moments and step count
            the previous task (or call) left, as the Meta-INR authors' code does; the state is
            updated in place.
        compile: ``FitConfig.compile`` of the inner fits (meta-training decides once for its whole run).
    Returns:
        The adapted parameters ``{name: [B, ...]}`` and each task's loss before the first step ``[B]``.
    """
    if inner_state is not None and optimizer != "adam":
        raise InvalidInputError("carrying the inner optimiser state across tasks needs the adam inner optimiser")
    copies = int(targets.shape[0])
    config = FitConfig(steps=steps, lr=lr, schedule="constant", optimizer=optimizer, batch_size=batch,
                       max_full_batch=max(int(coords.shape[0]), 1), log_every=max(steps, 1), evaluate=False,
                       progress=False, precision="fp32", device=str(coords.device), compile=compile)
    groups = [(b, b + 1) for b in range(copies)] if inner_state is not None else [(0, copies)]
    adapted: list[Params] = []
    firsts: list[Tensor] = []
    for lo, hi in groups:
        stacked = StackedModel(model, hi - lo)
        task = TaskBatch(coords, targets[lo:hi], generator)
        fit(stacked, task, config, callbacks=[inner_state] if inner_state is not None else ())
        first = task.first_losses
        if first is None:
            with torch.no_grad():
                first = task.per_task_mse(stacked, coords, targets[lo:hi])
        adapted.append(stacked.member_params())
        firsts.append(first)
    if len(adapted) == 1:
        return adapted[0], firsts[0]
    return {k: torch.cat([a[k] for a in adapted]) for k in adapted[0]}, torch.cat(firsts)
