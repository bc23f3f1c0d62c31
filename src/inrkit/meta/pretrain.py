"""Meta-pretraining of a SIREN initialisation on a sub-sampled volume series (Meta-INR).

Each volume of the series is a task. The data are sub-sampled in space (every
``space_stride``-th voxel per axis) and time (every ``time_stride``-th member), about 0.78%
of the series with the defaults 4 and 2. Every outer step samples ``meta_batch`` tasks,
runs ``inner_steps`` optimiser steps on each (batched with ``torch.func.vmap``), then:

- ``order="first"`` (default, Reptile, as the authors' released code): the outer optimiser
  (Adam) takes ``theta - mean(phi_task)`` as the gradient of ``theta``;
- ``order="second"``: full MAML, differentiating the post-adaptation loss through the SGD
  inner loop with ``torch.func``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from tqdm import tqdm

from ..errors import InvalidFileError, InvalidInputError
from ..models.io import model_from_tensors, model_header, model_tensors
from ..models.mlp import MLP, siren
from ..signals.series import VolumeSeries
from ..utils import atomic_write, resolve_device
from .functional import inner_loop, maml_grad, param_dict, stack_params, task_losses

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
        space_stride, time_stride: sub-sampling of the series used for pretraining.
        inner_steps: K, optimiser steps per task in the inner loop.
        outer_steps: number of meta updates.
        meta_batch: tasks (volumes) per meta update.
        inner_lr, outer_lr: learning rates of the inner optimiser and the outer Adam.
        order: ``"first"`` (Reptile) or ``"second"`` (MAML through torch.func).
        inner_optimizer: ``"adam"`` or ``"sgd"`` for the first-order inner loop
            (second order always uses SGD).
        inner_batch: points per inner step (``None``: every sub-sampled voxel).
        train_members: restrict pretraining to these member indices (before the time stride).
        seed: model initialisation and task sampling.
    """

    hidden: tuple[int, ...] = PRESETS["small"]
    omega0: float = 30.0
    space_stride: int = 4
    time_stride: int = 2
    inner_steps: int = 16
    outer_steps: int = 300
    meta_batch: int = 4
    inner_lr: float = 1e-4
    outer_lr: float = 1e-4
    order: str = "first"
    inner_optimizer: str = "adam"
    inner_batch: int | None = None
    train_members: Sequence[int] | None = None
    seed: int = 0
    device: str | None = None
    progress: bool = True
    log_every: int = 10
    checkpoint_path: str | None = None
    checkpoint_every: int = 0
    resume: bool = False

    def validate(self) -> None:
        if self.order not in ("first", "second"):
            raise InvalidInputError(f"--order must be 'first' or 'second', got {self.order!r}")
        if self.inner_optimizer not in ("adam", "sgd"):
            raise InvalidInputError(f"inner optimiser must be 'adam' or 'sgd', got {self.inner_optimizer!r}")
        if self.space_stride < 1 or self.time_stride < 1:
            raise InvalidInputError("sub-sampling strides must be >= 1")
        if self.inner_steps < 1 or self.outer_steps < 0 or self.meta_batch < 1:
            raise InvalidInputError("inner steps and meta batch must be >= 1, outer steps >= 0")
        if not (self.inner_lr > 0 and self.outer_lr > 0):
            raise InvalidInputError("learning rates must be positive")
        if self.resume and not self.checkpoint_path:
            raise InvalidInputError("resume needs a checkpoint path")

    def to_dict(self) -> dict[str, Any]:
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
CKPT_FORMAT = "inrkit-meta-checkpoint"


def save_checkpoint(path: str | Path, model: MLP, optimizer: torch.optim.Optimizer, step: int,
                    generator: torch.Generator, config: MetaConfig, history: list[dict], seconds: float) -> Path:
    """Meta-model, outer Adam moments, task-sampler state and progress in one safetensors file."""
    tensors = {f"model.{k}": v for k, v in model_tensors(model).items()}
    names = [n for n, _ in model.named_parameters()]
    for i, p in enumerate(model.parameters()):
        st = optimizer.state.get(p, {})
        if st:
            tensors[f"adam.m.{names[i]}"] = st["exp_avg"].detach().cpu().contiguous()
            tensors[f"adam.v.{names[i]}"] = st["exp_avg_sq"].detach().cpu().contiguous()
            tensors[f"adam.step.{names[i]}"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1).cpu()
    tensors["rng"] = generator.get_state().clone()
    meta = {"format": CKPT_FORMAT, "version": 1, "step": step, "seconds": seconds,
            "header": model_header(model), "config": config.to_dict(), "history": history}
    with atomic_write(path) as fh:
        fh.write(safetensors_save(tensors, metadata={"inrkit": json.dumps(meta)}))
    return Path(path)


def load_checkpoint(path: str | Path, config: MetaConfig, device: torch.device
                    ) -> tuple[MLP, dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
    """Read a checkpoint; returns ``(model, optimizer tensors, rng state, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("inrkit", "{}"))
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidFileError(f"{path}: not a readable meta checkpoint ({exc})") from exc
    if meta.get("format") != CKPT_FORMAT or "rng" not in tensors:
        raise InvalidFileError(f"{path}: not an inrkit meta-training checkpoint")
    saved = meta.get("config", {})
    for key in ("hidden", "inner_steps", "meta_batch", "order", "space_stride", "time_stride"):
        if saved.get(key) != config.to_dict().get(key):
            raise InvalidInputError(f"{path}: checkpoint was made with {key}={saved.get(key)!r}, "
                                    f"not {config.to_dict().get(key)!r}")
    try:
        model = model_from_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                                   meta["header"]).to(device)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InvalidFileError(f"{path}: checkpoint tensors do not match its header ({exc})") from exc
    return model, tensors, tensors["rng"], meta


def _restore_adam(optimizer: torch.optim.Optimizer, model: MLP, tensors: dict[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        if f"adam.m.{name}" in tensors:
            optimizer.state[p] = {
                "step": tensors[f"adam.step.{name}"].reshape(()).clone(),
                "exp_avg": tensors[f"adam.m.{name}"].to(p.device).clone(),
                "exp_avg_sq": tensors[f"adam.v.{name}"].to(p.device).clone(),
            }


# ------------------------------------------------------------------ training
def post_adaptation_loss(model: MLP, coords: torch.Tensor, targets: torch.Tensor, config: MetaConfig,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Loss per task ``[M]`` after the inner loop of ``config`` starting from ``model``."""
    params = stack_params(param_dict(model), targets.shape[0])
    opt = "sgd" if config.order == "second" else config.inner_optimizer
    adapted, _ = inner_loop(model, params, coords, targets, config.inner_steps, config.inner_lr, opt,
                            None if config.order == "second" else config.inner_batch, generator)
    return task_losses(model, adapted, coords, targets)


def meta_step(model: MLP, optimizer: torch.optim.Optimizer, coords: torch.Tensor, targets: torch.Tensor,
              config: MetaConfig, generator: torch.Generator | None = None) -> dict[str, float]:
    """One outer update of ``model`` on the task batch ``targets [B, N, 1]``."""
    theta = param_dict(model)
    if config.order == "second":
        grads, after = maml_grad(model, theta, coords, targets, config.inner_steps, config.inner_lr)
        before = task_losses(model, stack_params(theta, targets.shape[0]), coords, targets)
    else:
        adapted, before = inner_loop(model, stack_params(theta, targets.shape[0]), coords, targets,
                                     config.inner_steps, config.inner_lr, config.inner_optimizer,
                                     config.inner_batch, generator)
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
    optimizer = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
    start, history, seconds = 0, [], 0.0
    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    if config.resume and ckpt is not None and ckpt.is_file():
        model, tensors, rng, meta = load_checkpoint(ckpt, config, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
        _restore_adam(optimizer, model, tensors)
        generator.set_state(rng)
        start, history, seconds = int(meta["step"]), list(meta.get("history", [])), float(meta["seconds"])
    batch = min(config.meta_batch, len(members))
    bar = tqdm(range(start, config.outer_steps), desc=f"meta-train ({config.order} order)",
               disable=not config.progress, initial=start, total=config.outer_steps)
    for step in bar:
        t0 = time.perf_counter()
        tasks = torch.randperm(len(members), generator=generator)[:batch].to(device)
        info = meta_step(model, optimizer, coords, targets[tasks], config, generator)
        seconds += time.perf_counter() - t0
        if config.log_every and (step + 1) % config.log_every == 0 or step + 1 == config.outer_steps:
            history.append({"step": step + 1, "seconds": seconds, **info})
            bar.set_postfix(loss=f"{info['loss_before']:.4g}")
        if ckpt is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            save_checkpoint(ckpt, model, optimizer, step + 1, generator, config, history, seconds)
    if ckpt is not None and config.outer_steps > start:
        save_checkpoint(ckpt, model, optimizer, config.outer_steps, generator, config, history, seconds)
    return MetaResult(model.cpu(), history, seconds, max(start, config.outer_steps), members, fraction)


def pretrain_plain(series: VolumeSeries, config: MetaConfig | None = None, steps: int | None = None) -> MetaResult:
    """The paper's "pretrained SIREN" ablation: plain Adam on the same sub-sampled data, no inner loop.

    Each step fits the mean MSE of a batch of ``meta_batch`` tasks with learning rate
    ``inner_lr``; ``steps`` defaults to ``outer_steps * inner_steps`` (the same number of
    gradient evaluations per task as meta-training).
    """
    config = config or MetaConfig()
    config.validate()
    device = resolve_device(config.device)
    members, coords, targets, fraction = subsample(series, config.space_stride, config.time_stride,
                                                   config.train_members, device)
    generator = torch.Generator().manual_seed(config.seed)
    model = siren(3, 1, config.hidden, config.omega0, config.omega0, generator=generator).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.inner_lr)
    steps = config.outer_steps * config.inner_steps if steps is None else int(steps)
    batch = min(config.meta_batch, len(members))
    history, t0 = [], time.perf_counter()
    for step in tqdm(range(steps), desc="pretrain (plain)", disable=not config.progress):
        tasks = torch.randperm(len(members), generator=generator)[:batch].to(device)
        pred = model(coords)  # the same network for every task: [N, 1]
        loss = torch.mean((pred.unsqueeze(0) - targets[tasks]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if config.log_every and (step + 1) % (config.log_every * config.inner_steps) == 0:
            history.append({"step": step + 1, "loss": float(loss.detach()), "seconds": time.perf_counter() - t0})
    return MetaResult(model.cpu(), history, time.perf_counter() - t0, steps, members, fraction)
