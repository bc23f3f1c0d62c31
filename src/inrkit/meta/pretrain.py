"""Meta-pretraining of a SIREN initialisation on a sub-sampled volume series (Meta-INR).

Each volume of the series is a task. The data are sub-sampled in space (every
``space_stride``-th voxel per axis) and time (every ``time_stride``-th member), about 0.78%
of the series with the defaults 4 and 2. Every outer step samples ``meta_batch`` tasks (or
takes all of them, in member order, with ``meta_batch=None``), runs ``inner_steps`` optimiser
steps on each (batched with ``torch.func.vmap``; one task after another when the inner Adam is
carried across tasks, ``inner_adam_across_tasks``), then:

- ``order="first"`` (default, Reptile, as the authors' released code): the outer optimiser
  (Adam) takes ``theta - mean(phi_task)`` as the gradient of ``theta``;
- ``order="second"``: full MAML, differentiating the post-adaptation loss through the SGD
  inner loop with ``torch.func``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence, cast

import torch
from torch import Tensor, nn
from tqdm import tqdm

from inrkit.errors import InvalidInputError
from inrkit.limits import check_hidden, check_range
from inrkit.meta.batched import InnerAdamState, adapt_tasks
from inrkit.meta.functional import maml_grad, param_dict, stack_params, task_losses
from inrkit.models.mlp import MLP, siren
from inrkit.models.stacked import StackedModel
from inrkit.signals.series import VolumeSeries
from inrkit.train.checkpoint import load_checkpoint, restore_model, restore_optimizer, save_checkpoint
from inrkit.train.compiled import CompileMode, compile_pays, resolve_compile
from inrkit.train.fit import FitConfig, fit
from inrkit.utils import resolve_device

#: CPU-friendly and paper-scale SIREN sizes (the paper: 7 layers of width 256)
PRESETS: dict[str, tuple[int, ...]] = {
    "tiny": (32, 32, 32),
    "small": (64, 64, 64, 64),
    "paper": (256,) * 6,
}


@dataclass
class MetaConfig:
    """Meta-pretraining settings.

    Args:
        hidden: SIREN hidden widths (see :data:`PRESETS`).
        omega0: SIREN frequency of every sine layer.
        space_stride: pretraining uses every space_stride-th voxel per axis of each volume.
        time_stride: pretraining uses every time_stride-th member of the series.
        inner_steps: K, optimiser steps per task in the inner loop.
        outer_steps: number of meta updates.
        meta_batch: tasks (volumes) per meta update, drawn at random; ``None``: every task at
            every meta update, in member order (the Meta-INR authors' code).
        inner_lr: learning rate of the inner optimiser (the per-task steps).
        outer_lr: learning rate of the outer Adam (the meta updates).
        order: ``"first"`` (Reptile) or ``"second"`` (MAML through torch.func).
        inner_optimizer: ``"adam"`` or ``"sgd"`` for the first-order inner loop
            (second order always uses SGD).
        inner_batch: points per inner step (``None``: every sub-sampled voxel).
        inner_adam_across_tasks: ``False`` (default): every task's inner loop starts a fresh
            inner optimiser and the tasks of a meta update are adapted together. ``True``: one
            inner Adam whose moments and step count persist from task to task and from meta
            update to meta update, the tasks adapted one after another (as the Meta-INR
            authors' released code, which loads one saved ``adapt_opt`` state into every task's
            Adam and saves it back); first order with the Adam inner optimiser only. The
            carried state is not stored in checkpoints, so ``resume`` is refused with it.
        train_members: restrict pretraining to these member indices (before the time stride).
        seed: model initialisation and task sampling.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        progress: show a progress bar.
        log_every: outer steps between history rows.
        checkpoint_path: write a resumable checkpoint (:mod:`inrkit.train.checkpoint`) here.
        checkpoint_every: outer steps between checkpoints (one is always written at the end).
        resume: continue from ``checkpoint_path`` (refused if made with other settings).
    """

    hidden: tuple[int, ...] = PRESETS["small"]
    omega0: float = 30.0
    space_stride: int = 4
    time_stride: int = 2
    inner_steps: int = 16
    outer_steps: int = 300
    meta_batch: int | None = 4
    inner_lr: float = 1e-3
    outer_lr: float = 1e-4
    order: str = "first"
    inner_optimizer: str = "adam"
    inner_batch: int | None = None
    inner_adam_across_tasks: bool = False
    train_members: Sequence[int] | None = None
    seed: int = 0
    device: str | None = None
    progress: bool = True
    log_every: int = 10
    checkpoint_path: str | None = None
    checkpoint_every: int = 50
    resume: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~inrkit.errors.InvalidInputError` on inconsistent settings."""
        if self.order not in ("first", "second"):
            raise InvalidInputError(f"--order must be 'first' or 'second', got {self.order!r}")
        if self.inner_optimizer not in ("adam", "sgd"):
            raise InvalidInputError(f"inner optimiser must be 'adam' or 'sgd', got {self.inner_optimizer!r}")
        if self.space_stride < 1 or self.time_stride < 1:
            raise InvalidInputError("sub-sampling strides must be >= 1")
        if self.inner_steps < 1 or self.outer_steps < 0 or (self.meta_batch is not None and self.meta_batch < 1):
            raise InvalidInputError("inner steps and meta batch must be >= 1, outer steps >= 0")
        if self.inner_adam_across_tasks and (self.order != "first" or self.inner_optimizer != "adam"):
            raise InvalidInputError("carrying the inner Adam across tasks needs order 'first' and the adam "
                                    "inner optimiser")
        if self.inner_adam_across_tasks and self.resume:
            raise InvalidInputError("resume is not supported with the inner Adam carried across tasks "
                                    "(checkpoints do not store its state)")
        if not (self.inner_lr > 0 and self.outer_lr > 0):
            raise InvalidInputError("learning rates must be positive")
        if self.resume and not self.checkpoint_path:
            raise InvalidInputError("resume needs a checkpoint path (--checkpoint)")
        self.hidden = check_hidden(self.hidden, "hidden widths")
        for name in ("omega0", "inner_lr", "outer_lr"):
            check_range(name, getattr(self, name), 0, low_open=True, optional=False)
        check_range("inner_batch", self.inner_batch, 1)
        check_range("log_every", self.log_every, 1, optional=False)
        check_range("checkpoint_every", self.checkpoint_every, 0, optional=False)
        check_range("seed", self.seed, 0, optional=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings that define the result (stored in model files and checkpoints)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["train_members"] = None if self.train_members is None else [int(i) for i in self.train_members]
        for key in ("device", "progress", "checkpoint_path", "checkpoint_every", "resume", "log_every"):
            d.pop(key)
        return d


@dataclass
class MetaResult:
    """Output of :func:`meta_train`: the meta-initialisation and its record."""

    model: MLP
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    train_members: list[int] = field(default_factory=list)
    subsample_fraction: float = 0.0

    def extra(self, config: MetaConfig) -> dict[str, Any]:
        """Metadata stored in the saved meta-model file."""
        return {"meta": {**config.to_dict(), "outer_steps_done": self.steps, "pretrain_seconds": self.seconds,
                         "train_members_used": self.train_members,
                         "subsample_fraction": self.subsample_fraction}}


def pretrain_members(n_members: int, time_stride: int, train_members: Sequence[int] | None = None) -> list[int]:
    """Member indices used for pretraining: every ``time_stride``-th of ``train_members`` (or all)."""
    pool = list(range(n_members)) if train_members is None else sorted({int(i) for i in train_members})
    if not pool or min(pool) < 0 or max(pool) >= n_members:
        raise InvalidInputError(f"training members must be in [0, {n_members - 1}]")
    return pool[::time_stride]


def subsample(series: VolumeSeries, space_stride: int = 4, time_stride: int = 2,
              train_members: Sequence[int] | None = None,
              device: torch.device | str = "cpu") -> tuple[list[int], torch.Tensor, torch.Tensor, float]:
    """Sub-sampled pretraining data: ``(members, coords [N, 3], targets [M, N, 1], fraction)``.

    ``fraction`` is the share of all voxels of the series that the pretraining sees.
    """
    members = pretrain_members(len(series), time_stride, train_members)
    coords = series.coords(space_stride, device)
    targets = series.targets(members, space_stride, device)
    fraction = targets.numel() / float(series.values.size)
    return members, coords, targets, fraction


# ------------------------------------------------------------- checkpoints
#: settings a resumed meta-training must share with its checkpoint
RESUME_KEYS = ("hidden", "inner_steps", "meta_batch", "order", "space_stride", "time_stride")
CHECKPOINT_KIND = "meta-train"


def _save(path: Path, model: MLP, optimizer: torch.optim.Optimizer, step: int, generator: torch.Generator,
          config: MetaConfig, history: list[dict], seconds: float) -> None:
    save_checkpoint(path, model, optimizer, generator, step=step, seconds=seconds, history=history,
                    config=config.to_dict(), kind=CHECKPOINT_KIND)


def _resume(path: Path, config: MetaConfig, model: MLP, device: torch.device,
            generator: torch.Generator) -> tuple[MLP, torch.optim.Optimizer, int, list[dict], float]:
    """Model, outer Adam, step, history and seconds of a checkpoint made with the same settings."""
    expect = {k: v for k, v in config.to_dict().items() if k in RESUME_KEYS}
    ckpt = load_checkpoint(path, CHECKPOINT_KIND, expect)
    if ckpt.config.get("inner_adam_across_tasks"):
        raise InvalidInputError(f"{path}: made with the inner Adam carried across tasks, whose state checkpoints "
                                "do not store; it cannot be resumed")
    model = cast(MLP, restore_model(ckpt, model, device))
    optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
    restore_optimizer(ckpt, model, optimizer)
    generator.set_state(ckpt.rng)
    return model, optimizer, ckpt.step, ckpt.history, ckpt.seconds


# ------------------------------------------------------------------ training
def tasks_per_step(config: MetaConfig, members: int) -> int:
    """Tasks in every meta update: ``meta_batch`` (at most ``members``), or ``members`` for all."""
    return members if config.meta_batch is None else min(config.meta_batch, members)


def inner_compile(model: MLP, config: MetaConfig, points: int, tasks: int) -> CompileMode:
    """``FitConfig.compile`` of the inner fits: ``auto`` weighs the compile against every inner step of the
    run (``outer_steps x inner_steps`` on stacks of ``tasks``), not one inner loop's few steps."""
    mode = resolve_compile("auto")
    if mode != "auto":
        return mode
    batch = config.inner_batch or points
    total = config.outer_steps * config.inner_steps
    return "on" if compile_pays(StackedModel(model, tasks), min(batch, points), total) else "off"


def post_adaptation_loss(model: MLP, coords: torch.Tensor, targets: torch.Tensor, config: MetaConfig,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Loss per task ``[M]`` after the inner loop of ``config`` starting from ``model``.

    With ``inner_adam_across_tasks`` one inner Adam is carried across the tasks of this call.
    """
    opt = "sgd" if config.order == "second" else config.inner_optimizer
    carried = InnerAdamState() if config.inner_adam_across_tasks else None
    adapted, _ = adapt_tasks(model, coords, targets, config.inner_steps, config.inner_lr, opt,
                             None if config.order == "second" else config.inner_batch, generator, carried,
                             inner_compile(model, config, int(coords.shape[0]),
                                           1 if carried else int(targets.shape[0])))
    return task_losses(model, adapted, coords, targets)


def meta_step(model: MLP, optimizer: torch.optim.Optimizer, coords: torch.Tensor, targets: torch.Tensor,
              config: MetaConfig, generator: torch.Generator | None = None,
              inner_state: InnerAdamState | None = None) -> dict[str, float]:
    """One outer update of ``model`` on the task batch ``targets [B, N, 1]``.

    ``inner_state``: the inner Adam carried across tasks (``config.inner_adam_across_tasks``;
    :func:`meta_train` keeps one for the whole run). ``None`` with that option: one is carried
    across the tasks of this update only.
    """
    if config.inner_adam_across_tasks and inner_state is None:
        inner_state = InnerAdamState()
    theta = param_dict(model)
    if config.order == "second":
        grads, after = maml_grad(model, theta, coords, targets, config.inner_steps, config.inner_lr)
        before = task_losses(model, stack_params(theta, targets.shape[0]), coords, targets)
    else:
        carried = inner_state if config.inner_adam_across_tasks else None
        adapted, before = adapt_tasks(model, coords, targets, config.inner_steps, config.inner_lr,
                                      config.inner_optimizer, config.inner_batch, generator, carried,
                                      inner_compile(model, config, int(coords.shape[0]),
                                                    1 if carried else int(targets.shape[0])))
        grads = {k: theta[k] - adapted[k].mean(0) for k in theta}
        after = None
    optimizer.zero_grad(set_to_none=True)
    for name, p in model.named_parameters():
        p.grad = grads[name].to(p.dtype)
    optimizer.step()
    out = {"loss_before": float(before.mean())}
    if after is not None:
        out["loss_after"] = float(after.mean())
    return out


def meta_train(series: VolumeSeries, config: MetaConfig | None = None, init: MLP | None = None) -> MetaResult:
    """Meta-pretrain a SIREN initialisation on the sub-sampled ``series``.

    Args:
        series: the volume series (normalised to [-1, 1]).
        config: settings; see :class:`MetaConfig`.
        init: optional starting model (default: a seeded SIREN of ``config.hidden``).
    Returns:
        :class:`MetaResult` with the meta-model (on the CPU), history and pretraining time.
    """
    config = config or MetaConfig()
    config.validate()
    device = resolve_device(config.device)
    members, coords, targets, fraction = subsample(series, config.space_stride, config.time_stride,
                                                   config.train_members, device)
    generator = torch.Generator().manual_seed(config.seed)
    model = (init.copy() if init is not None else
             siren(3, 1, config.hidden, config.omega0, config.omega0, generator=generator)).to(device)
    optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
    start, seconds = 0, 0.0
    history: list[dict[str, Any]] = []
    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    if config.resume and ckpt is not None and ckpt.is_file():
        model, optimizer, start, history, seconds = _resume(ckpt, config, model, device, generator)
    batch = tasks_per_step(config, len(members))
    inner_state = InnerAdamState() if config.inner_adam_across_tasks else None
    bar = tqdm(range(start, config.outer_steps), desc=f"meta-train ({config.order} order)",
               disable=not config.progress, initial=start, total=config.outer_steps)
    for step in bar:
        t0 = time.perf_counter()
        if config.meta_batch is None:  # every task, in member order (the authors' code)
            tasks = torch.arange(len(members), device=device)
        else:
            tasks = torch.randperm(len(members), generator=generator)[:batch].to(device)
        info = meta_step(model, optimizer, coords, targets[tasks], config, generator, inner_state)
        seconds += time.perf_counter() - t0
        if config.log_every and (step + 1) % config.log_every == 0 or step + 1 == config.outer_steps:
            history.append({"step": step + 1, "seconds": seconds, **info})
            bar.set_postfix(loss=f"{info['loss_before']:.4g}")
        if ckpt is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            _save(ckpt, model, optimizer, step + 1, generator, config, history, seconds)
    if ckpt is not None and config.outer_steps > start:
        _save(ckpt, model, optimizer, config.outer_steps, generator, config, history, seconds)
    return MetaResult(model.cpu(), history, seconds, max(start, config.outer_steps), members, fraction)


class _SharedFitTask:
    """One network fitted to a random batch of tasks per step (the plain-pretraining ablation).

    Args:
        coords: shared points ``[N, 3]``; targets: ``[M, N, 1]``.
        tasks_per_step: tasks in every step's mean MSE.
        generator: draws the task batches (the one that also seeded the model).
    """

    supports_bf16 = False

    def __init__(self, coords: Tensor, targets: Tensor, tasks_per_step: int, generator: torch.Generator) -> None:
        self.coords, self.targets = coords, targets
        self.tasks_per_step, self.generator = tasks_per_step, generator

    def num_samples(self) -> int:
        """Points per task (always trained in full)."""
        return int(self.coords.shape[0])

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        """The shared points and the targets of ``tasks_per_step`` random tasks."""
        tasks = torch.randperm(self.targets.shape[0], generator=self.generator)[:self.tasks_per_step]
        return self.coords, self.targets[tasks.to(self.targets.device)]

    def loss(self, model: nn.Module, coords: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mean MSE of the one network against every chosen task."""
        mse = torch.mean((model(coords).unsqueeze(0) - targets) ** 2)
        return mse, mse

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Nothing: the ablation is judged after fine-tuning."""
        return {}


def pretrain_plain(series: VolumeSeries, config: MetaConfig | None = None, steps: int | None = None) -> MetaResult:
    """The paper's "pretrained SIREN" ablation: plain Adam on the same sub-sampled data, no inner loop.

    Each step fits the mean MSE of a batch of ``meta_batch`` tasks with learning rate
    ``inner_lr`` (through :func:`inrkit.train.fit`); ``steps`` defaults to ``outer_steps *
    inner_steps`` (the same number of gradient evaluations per task as meta-training).
    History rows ``{step, loss, seconds}`` every ``log_every * inner_steps`` steps.
    """
    config = config or MetaConfig()
    config.validate()
    device = resolve_device(config.device)
    members, coords, targets, fraction = subsample(series, config.space_stride, config.time_stride,
                                                   config.train_members, device)
    generator = torch.Generator().manual_seed(config.seed)
    model = siren(3, 1, config.hidden, config.omega0, config.omega0, generator=generator).to(device)
    steps = config.outer_steps * config.inner_steps if steps is None else int(steps)
    task = _SharedFitTask(coords, targets, tasks_per_step(config, len(members)), generator)
    every = config.log_every * config.inner_steps
    fit_config = FitConfig(steps=steps, lr=config.inner_lr, schedule="constant", log_every=max(every, 1),
                           evaluate=False, progress=config.progress, precision="fp32", device=str(device),
                           seed=config.seed)
    result = fit(model, task, fit_config)
    history = [{"step": r["step"], "loss": r["loss"], "seconds": r["seconds"]}
               for r in result.history if every and r["step"] % every == 0]
    return MetaResult(cast(MLP, result.model.cpu()), history, result.seconds, steps, members, fraction)
