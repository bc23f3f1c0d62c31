"""Run an AIRe schedule inside ONE :func:`inrkit.train.fit` call.

Training stages (fit, finetune, twd) are consecutive step ranges of a single Adam
run; structural stages (densify, prune) happen between them through
``FitState.replace_model`` with a ``state_map``, so Adam's moments of every
surviving weight carry over (as in AIRe). A progress bar on stderr names the stage.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from inrkit.adapt.config import AireConfig, Stage
from inrkit.adapt.surgery import densify
from inrkit.adapt.twd import TargetedWeightDecay
from inrkit.errors import InvalidInputError
from inrkit.metrics import psnr_from_mse
from inrkit.models.mlp import MLP, build_model
from inrkit.models.surgery import StateMap, find_group, group_weights, merge_state_maps, remove_neurons
from inrkit.prune.criteria import CRITERIA, select_neurons
from inrkit.signals.base import Signal
from inrkit.train import FitConfig, FitState, fit

TRAIN_KINDS = ("fit", "finetune", "twd")


def _as_mlp(model: nn.Module) -> MLP:
    """The model fit hands back to the schedule: the MLP it started with, or one that surgery replaced."""
    if not isinstance(model, MLP):
        raise InvalidInputError(f"AIRe schedules act on inrkit MLPs, got {type(model).__name__}")
    return model


@dataclass
class AireResult:
    """Outcome of :func:`run_schedule`: the adapted model, per-stage log and final metrics."""

    model: MLP
    stages: list[dict[str, Any]]
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    steps: int
    seconds: float
    params_start: int
    widths_start: list[int] = field(default_factory=list)


def train_psnr(model: MLP, signal: Signal, batch_size: int | None, device: torch.device) -> float | None:
    """PSNR on a fixed training batch (the full set for grid signals with batch None);
    None for signals whose loss has no MSE (SDF)."""
    coords, targets = signal.train_batch(batch_size, torch.Generator().manual_seed(1234), device)
    plain_mse = bool(getattr(signal, "supports_bf16", False))  # a task's declaration: plain first-order loss
    with torch.set_grad_enabled(not plain_mse):  # e.g. the SDF loss differentiates w.r.t. coords
        _, mse = signal.loss(model, coords, targets)
    return None if mse is None else psnr_from_mse(float(mse.detach()))


def prune_stage_indices(model: MLP, layer: int, stage: Stage) -> torch.Tensor:
    """Neurons of ``layer`` a prune stage keeps, by the ``l1`` criterion of :data:`inrkit.prune.CRITERIA`:
    all but the ``count`` lowest-scoring ones, or (``count`` unset) those scoring > ``eps``."""
    l1 = CRITERIA.get("l1")
    w_in, w_out = group_weights(model, find_group(model, layer))
    n = w_in.shape[0]
    if stage.count is None:
        return torch.sort(l1.select_above(w_in, w_out, stage.eps)).values.cpu()
    if stage.count >= n:
        raise InvalidInputError(f"cannot prune {stage.count} of {n} neurons of layer {layer}")
    return select_neurons(l1, w_in, w_out, n - stage.count)[0].cpu()


def _prune(model: MLP, stage: Stage) -> tuple[StateMap, dict[str, Any]]:
    """Apply a prune stage layer by layer; the chained state map and the log entry."""
    state_map: StateMap = {}
    info: dict[str, Any] = {"below_eps": [], "removed": []}
    for layer in stage.layers:
        if not 0 <= layer < model.num_layers - 1:
            raise InvalidInputError(f"prune stage: layer {layer} is not a hidden layer")
        group = find_group(model, layer)
        scores = CRITERIA.get("l1").scores(*group_weights(model, group))
        idx = prune_stage_indices(model, layer, stage)
        info["removed"].append(int(group.width - idx.numel()))
        info["below_eps"].append(int((scores <= stage.eps).sum()))
        state_map = merge_state_maps(state_map, remove_neurons(model, group, idx), model)
    return state_map, {"below_eps": info["below_eps"], "removed": info["removed"]}


def apply_structural(model: MLP, stage: Stage, generator: torch.Generator) -> tuple[MLP, StateMap, dict]:
    """Apply a ``densify`` or ``prune`` stage; return the model, its state map and a log entry."""
    if stage.kind == "densify":
        model, state_map = densify(model, stage.n, generator)
        return model, state_map, {"added": stage.n}
    state_map, info = _prune(model, stage)
    return model, state_map, info


class ScheduleCallback:
    """Drives the stages during :func:`fit`: surgery at stage boundaries, TWD, progress."""

    def __init__(self, config: AireConfig, signal: Signal, progress: bool, generator: torch.Generator) -> None:
        self.config, self.signal, self.generator = config, signal, generator
        self.segments: list[tuple[int, int, int]] = []   # (start, end, stage index)
        self.events: dict[int, list[int]] = {}          # step -> structural stage indices
        self.twd: list[TargetedWeightDecay] = []
        step = 0
        for i, stage in enumerate(config.stages):
            if stage.kind in TRAIN_KINDS:
                self.segments.append((step, step + stage.steps, i))
                if stage.kind == "twd":
                    self.twd.append(TargetedWeightDecay(stage.layers, stage.k, step, stage.steps, stage.alpha))
                step += stage.steps
            else:
                self.events.setdefault(step, []).append(i)
        self.total = step
        self.log: list[dict[str, Any]] = []
        self.bar = self._bar(progress)
        self._stage = -1

    def _bar(self, progress: bool):
        from tqdm.auto import tqdm

        return tqdm(total=self.total, disable=not progress, file=sys.stderr, dynamic_ncols=True, leave=False)

    def describe(self, step: int) -> None:
        for start, end, i in self.segments:
            if start <= step < end and i != self._stage:
                self._stage = i
                n = len(self.config.stages)
                self.bar.set_description(f"aire {i + 1}/{n} {self.config.stages[i].kind}")

    def structural(self, model: MLP, step: int, state: FitState | None) -> MLP:
        """Apply the structural stages scheduled at ``step``; returns the (new) model."""
        for i in self.events.get(step, []):
            stage = self.config.stages[i]
            device = next(model.parameters()).device
            before = train_psnr(model, self.signal, self.config.batch_size, device)
            model, state_map, info = apply_structural(model, stage, self.generator)
            if state is not None:
                state.replace_model(model, state_map)
            model.to(device)
            after = train_psnr(model, self.signal, self.config.batch_size, device)
            self.log.append({"stage": i, "kind": stage.kind, "step": step, "widths": model.widths,
                             "params": model.num_params(), "psnr_before": before, "psnr_after": after, **info})
        return model

    def extra_loss(self, state: FitState) -> torch.Tensor | None:
        self.describe(state.step)
        total = None
        for cb in self.twd:
            extra = cb.extra_loss(state)
            if extra is not None:
                total = extra if total is None else total + extra
        return total

    def on_step_end(self, state: FitState) -> None:
        self.bar.update(1)
        if state.psnr is not None:
            self.bar.set_postfix(psnr=f"{state.psnr:.2f}", refresh=False)
        model = _as_mlp(state.model)
        for start, end, i in self.segments:
            if end == state.step:
                self.log.append({"stage": i, "kind": self.config.stages[i].kind, "step": end,
                                 "widths": model.widths, "params": model.num_params(),
                                 "psnr_train": train_psnr(model, self.signal, self.config.batch_size,
                                                          state.device)})
        if state.step in self.events and state.step < self.total:
            self.structural(model, state.step, state)

    def close(self) -> None:
        self.bar.close()


def run_schedule(model: MLP, signal: Signal, config: AireConfig, device: str | None = None,
                 progress: bool = True, log_every: int = 50) -> AireResult:
    """Adapt ``model`` to ``signal`` with the stages of ``config`` (one continuous Adam run)."""
    if not config.stages:
        raise InvalidInputError("the schedule has no stages")
    t0 = time.perf_counter()
    params_start, widths_start = model.num_params(), model.widths
    generator = torch.Generator().manual_seed(config.seed)
    cb = ScheduleCallback(config, signal, progress, generator)
    try:
        model = cb.structural(model, 0, None)  # structural stages before any training
        fit_cfg = FitConfig(steps=cb.total, lr=config.lr, schedule=config.lr_schedule, batch_size=config.batch_size,
                            seed=config.seed, progress=False, device=device, log_every=log_every,
                            precision="fp32")  # AIRe's schedules and published numbers are float32
        result = fit(model, signal, fit_cfg, callbacks=[cb]) if cb.total else None
        if result is not None:
            model = cb.structural(_as_mlp(result.model), cb.total, None)  # trailing structural stages
    finally:
        cb.close()
    model.eval()
    metrics = signal.evaluate(model)
    return AireResult(model, cb.log, result.history if result else [], metrics, cb.total,
                       time.perf_counter() - t0, params_start, widths_start)


def model_for(config: AireConfig, signal: Signal) -> MLP:
    """The starting network described by ``config`` for ``signal``'s dimensions."""
    generator = torch.Generator().manual_seed(config.seed)
    kwargs: dict[str, Any] = {"generator": generator}
    if config.arch in ("siren", "finer"):
        kwargs.update(omega0=config.omega0, omega_hidden=config.omega_hidden)
    return build_model(config.arch, signal.dim, signal.out_dim, config.hidden, **kwargs)


def aire(signal: Signal, config: AireConfig, device: str | None = None, progress: bool = True) -> AireResult:
    """Build the network of ``config`` and run its AIRe schedule on ``signal``.

    Args:
        signal: the signal to fit.
        config: network and schedule (e.g. :func:`inrkit.adapt.load_preset`).
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        progress: show a progress bar on stderr.
    """
    return run_schedule(model_for(config, signal), signal, config, device, progress)
