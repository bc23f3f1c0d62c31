"""Run an AIRe schedule inside ONE :func:`inrkit.train.fit` call.

Training stages (fit, finetune, twd) are consecutive step ranges of a single Adam
run; structural stages (densify, prune) happen between them through
``FitState.replace_model`` with a ``state_map``, so Adam's moments of every
surviving weight carry over (as in AIRe). Weights added later (densified neurons) start with zero
moments AND their own Adam step count (:class:`AdamStepCounts`), so their first update has the size of
a fresh parameter's. A progress bar on stderr names the stage.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

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


class AdamStepCounts:
    """Per-element Adam step counts for weights added during training (densified neurons).

    ``torch.optim.Adam`` keeps one step count ``t`` per parameter tensor. A densified neuron's new
    rows/columns get zero moments (AIRe) but live inside tensors with a large ``t``, so Adam's bias
    correction ``1 / (1 - beta^t) ~ 1`` is skipped for them: their first update is
    ``lr * (1 - beta1) / sqrt(1 - beta2) ~ 3.2 lr`` instead of ``~lr``, decaying over ~1000 steps.
    This tracker records, per element, the tensor's step count at the element's birth; around each
    optimizer step it re-applies the update of the young elements with their own count
    ``s = t - birth`` (``lr * m / (1 - beta1^s) / (sqrt(v / (1 - beta2^s)) + eps)``), exactly what
    Adam does for a fresh parameter. Old elements are untouched. A record is dropped once
    ``beta^s`` is negligible for all its elements. Plain Adam only (no weight decay, amsgrad, maximize).
    """

    def __init__(self) -> None:
        self.births: dict[nn.Parameter, Tensor] = {}
        self._saved: dict[nn.Parameter, Tensor] = {}
        self._handles: list[Any] = []

    def record(self, old_optimizer: torch.optim.Optimizer, state_map: StateMap, model: nn.Module) -> None:
        """After surgery: carry the births of every parameter through ``state_map``; elements the map
        fills with zero moments (new neurons) are born at the old tensor's current step count."""
        births: dict[nn.Parameter, Tensor] = {}
        live = set(model.parameters())
        for new, (old, index_fn) in state_map.items():
            state = old_optimizer.state.get(old, {})
            if "step" not in state or new not in live:
                continue  # no Adam step yet: torch's own count starts with the new tensor
            t = float(state["step"])
            prev = self.births.get(old)
            base = (prev if prev is not None else torch.zeros_like(old.detach())) - t
            births[new] = index_fn(base) + t  # kept elements keep their birth; inserted ones: born at t
        for param in live:
            if param in self.births and param not in state_map:
                births[param] = self.births[param]
        self.births = {p: b for p, b in births.items() if bool((b > 0).any())}

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Hook into ``optimizer`` (the one :meth:`FitState.replace_model` built); detaches the previous one."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if not isinstance(optimizer, torch.optim.Adam) or not self.births:
            return
        for group in optimizer.param_groups:
            if group.get("weight_decay") or group.get("amsgrad") or group.get("maximize"):
                raise InvalidInputError("AdamStepCounts supports plain Adam (no weight decay, amsgrad, maximize)")
        self._handles = [optimizer.register_step_pre_hook(self._pre),
                         optimizer.register_step_post_hook(self._post)]

    def _pre(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._saved = {p: p.detach().clone() for p in self.births if p.grad is not None}

    @torch.no_grad()
    def _post(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        done = []
        for group in optimizer.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = float(group["lr"]), float(group["eps"])
            for p in group["params"]:
                born, saved = self.births.get(p), self._saved.get(p)
                state = optimizer.state.get(p, {})
                if born is None or saved is None or "exp_avg" not in state:
                    continue
                dtype = torch.float32 if p.device.type == "mps" else torch.float64  # MPS has no float64
                s = (float(state["step"]) - born).clamp_min(1.0).to(dtype)
                young = born > 0
                bc1, bc2 = 1.0 - beta1 ** s, 1.0 - beta2 ** s
                m, v = state["exp_avg"].to(dtype), state["exp_avg_sq"].to(dtype)
                update = lr * (m / bc1) / (v.sqrt() / bc2.sqrt() + eps)
                fixed = saved.to(dtype) - update
                p.copy_(torch.where(young, fixed.to(p.dtype), p))
                if float((beta2 ** s[young]).max()) < 1e-9 and float((beta1 ** s[young]).max()) < 1e-9:
                    done.append(p)
        for p in done:
            del self.births[p]
        self._saved = {}

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


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
        self.adam = AdamStepCounts()

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
                old_optimizer = state.optimizer
                state.replace_model(model, state_map)
                self.adam.record(old_optimizer, state_map, model)
                self.adam.attach(state.optimizer)
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
        self.adam.close()


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
