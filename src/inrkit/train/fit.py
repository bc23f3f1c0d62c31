"""The one optimisation loop of inrkit: Adam (or SGD) with a learning-rate schedule, stop rules,
callbacks, periodic evaluation and resumable checkpoints, for any model and any :class:`Task`."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Protocol

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError, warn
from inrkit.limits import check_range
from inrkit.metrics import psnr_from_mse
from inrkit.models.fast import PRECISIONS, resolve_precision, with_precision
from inrkit.models.mlp import MLP
from inrkit.models.surgery import StateMap
from inrkit.models.trainable import default_batch_size
from inrkit.models.trainable import param_groups as model_param_groups
from inrkit.train.checkpoint import (
    check_fingerprint,
    load_checkpoint,
    restore_model,
    restore_optimizer,
    run_fingerprint,
    save_checkpoint,
)
from inrkit.train.compiled import COMPILE_MODES, CompiledStep, compile_pays, resolve_compile, unsupported
from inrkit.train.plot import curve_path, plot_history
from inrkit.train.task import Task
from inrkit.utils import resolve_device, write_json

SCHEDULES = ("constant", "cosine", "exponential")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class FitConfig:
    """Settings of :func:`fit`.

    Args:
        steps: maximum number of optimisation steps (default: 1000, or what --arch auto chose).
        lr: initial learning rate (default: 1e-3, or what --arch auto chose).
        encoding_lr: initial learning rate of a grid encoding's tables (the MLP after it uses ``lr``;
            None: the model's default, 100 x ``lr`` for a grid, see docs/grid.md).
        adam_eps: Adam's epsilon (instant-NGP uses 1e-15 for its hash tables; PyTorch's default 1e-8).
        schedule: ``constant``, ``cosine`` (to ``lr * lr_min_factor``) or ``exponential``
            (``lr * lr_min_factor ** (step / steps)``).
        lr_min_factor: final learning rate as a fraction of ``lr``.
        batch_size: points per step; ``None``: the model's default batch where it names one (a model with a
            grid encoding: random batches of 16384, measured 10x faster to 30 dB than full batches, docs/grid.md),
            else the full set when it has at most ``max_full_batch`` samples, else random batches of
            ``max_full_batch``.
        max_full_batch: largest set trained in full batches when ``batch_size`` is ``None``.
        optimizer: ``adam`` (default) or ``sgd`` (plain gradient steps, no momentum).
        target_psnr: stop once the PSNR reaches this (dB): the training PSNR, or the
            evaluated one when ``eval_every`` is set.
        time_budget: stop after this many seconds.
        seed: seed of batches and of anything random in callbacks.
        log_every: steps between history rows (loss/PSNR readouts; 1: every step).
        eval_every: evaluate the task every this many steps (0: only at the end); the
            metrics go into the history row under ``"eval"`` and the time is not counted.
        evaluate: evaluate the task once at the end (``FitResult.metrics``).
        progress: show a progress bar on stderr.
        history_path: write the history as JSON here at the end, and its training curve as a PNG beside it
            (h.json -> h.png).
        plot_path: write the training curve (PSNR and loss against step and seconds) as a PNG here at the end.
        checkpoint_path: write a resumable checkpoint here every ``checkpoint_every`` steps and at the end.
        checkpoint_every: steps between checkpoints (0: only at the end); used with ``checkpoint_path``.
        resume: continue from ``checkpoint_path`` when it exists.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        precision: GEMM precision of the training passes: ``"fp32"``, ``"bf16"`` (bfloat16
            GEMMs, float32 first layer, master weights and loss; tasks with
            ``supports_bf16`` only) or ``"auto"`` (``bf16`` where the device has native
            bfloat16 and the task supports it, else ``fp32``). See :mod:`inrkit.models.fast`.
        compile: ``auto``: train SIREN/FINER-type MLPs on plain-MSE tasks through the compiled step
            of :mod:`inrkit.train.compiled` (forward, backward and Adam as one graph, polynomial sine) when
            its measured rule says the seconds saved exceed the compile seconds (``$INRKIT_COMPILE`` overrides
            ``auto``); ``on``: always (other models: their forward pass through ``torch.compile``); ``off``:
            eager PyTorch (docs/speed.md).
    """

    steps: int | None = None
    lr: float | None = None
    encoding_lr: float | None = None
    adam_eps: float = 1e-8
    schedule: str = "cosine"
    lr_min_factor: float = 0.1
    batch_size: int | None = None
    max_full_batch: int = 1 << 20
    optimizer: str = "adam"
    target_psnr: float | None = None
    time_budget: float | None = None
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0
    evaluate: bool = True
    progress: bool = True
    history_path: str | None = None
    plot_path: str | None = None
    checkpoint_path: str | None = None
    checkpoint_every: int = 100
    resume: bool = False
    device: str | None = None
    precision: str = "auto"
    compile: Literal["auto", "on", "off"] = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):  # the former switch: True / False
            self.compile = "on" if self.compile else "off"
        if self.compile not in COMPILE_MODES:
            raise InvalidInputError(f"unknown compile mode {self.compile!r}; choose from {list(COMPILE_MODES)}")
        check_range("lr", self.lr, 0, low_open=True)
        check_range("encoding_lr", self.encoding_lr, 0, low_open=True)
        check_range("adam_eps", self.adam_eps, 0, 1, low_open=True, optional=False)
        check_range("lr_min_factor", self.lr_min_factor, 0, 1, optional=False)
        check_range("target_psnr", self.target_psnr)
        check_range("time_budget", self.time_budget, 0, low_open=True)
        check_range("steps", self.steps, 0)
        for name in ("seed", "eval_every", "checkpoint_every"):
            check_range(name, getattr(self, name), 0, optional=False)
        check_range("log_every", self.log_every, 1, optional=False)
        check_range("max_full_batch", self.max_full_batch, 1, optional=False)
        if self.resume and not self.checkpoint_path:
            raise InvalidInputError("resume needs a checkpoint path (--checkpoint)")
        if self.schedule not in SCHEDULES:
            raise InvalidInputError(f"unknown schedule {self.schedule!r}; choose from {list(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"unknown optimizer {self.optimizer!r}; choose from {list(OPTIMIZERS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInputError("batch size must be positive")
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"unknown precision {self.precision!r}; choose from {list(PRECISIONS)}")


DEFAULT_STEPS = 1000
"""Steps of a fit whose config names none (``FitConfig.steps`` is ``None``) and no auto choice sets."""
DEFAULT_LR = 1e-3
"""Learning rate of a fit whose config names none."""


def with_defaults(config: FitConfig, steps: int | None = None, lr: float | None = None) -> FitConfig:
    """``config`` with ``steps`` and ``lr`` filled in where it names none: the one place that fills them
    (:func:`fit` calls it once; everything after reads the filled config).

    Args:
        config: the settings.
        steps, lr: what to fill in (e.g. an automatic choice's); ``None``: :data:`DEFAULT_STEPS`, :data:`DEFAULT_LR`.
    """
    if config.steps is not None and config.lr is not None:
        return config
    steps = config.steps if config.steps is not None else (steps if steps is not None else DEFAULT_STEPS)
    lr = config.lr if config.lr is not None else (lr if lr is not None else DEFAULT_LR)
    return replace(config, steps=steps, lr=lr)


def _total_steps(config: FitConfig) -> int:
    """The steps of a config filled by :func:`with_defaults`."""
    assert config.steps is not None, "fill the config with with_defaults first"
    return config.steps


def lr_factor(schedule: str, step: int, total: int, min_factor: float) -> float:
    """Learning-rate multiplier at ``step`` of ``total``."""
    t = min(step / max(total, 1), 1.0)
    if schedule == "cosine":
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "exponential":
        return min_factor**t
    return 1.0


class Callback(Protocol):
    """Hooks into :func:`fit`; both methods are optional."""

    def extra_loss(self, state: "FitState") -> Tensor | None: ...

    def on_step_end(self, state: "FitState") -> None: ...


def make_optimizer(kind: str, params: Iterable[Any], lr: float, eps: float = 1e-8) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or plain ``torch.optim.SGD`` over ``params`` (parameters or parameter groups)."""
    return torch.optim.Adam(params, lr=lr, eps=eps) if kind == "adam" else torch.optim.SGD(params, lr=lr)


def param_groups(model: nn.Module, config: FitConfig) -> list[dict[str, Any]]:
    """The model's optimizer parameter groups (:func:`inrkit.models.trainable.param_groups`) at the config's
    ``lr`` and ``encoding_lr``. Each group's ``base_lr`` is what the schedule scales."""
    lr = with_defaults(config).lr
    assert lr is not None
    return model_param_groups(model, lr, config.encoding_lr)


@dataclass
class FitState:
    """What tasks and callbacks see and may change during :func:`fit`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    task: Task
    config: FitConfig
    device: torch.device
    generator: torch.Generator
    step: int = 0
    lr_factor: float = 1.0
    loss: float | None = None
    psnr: float | None = None
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False
    fingerprint: dict[str, Any] = field(default_factory=dict, repr=False)  # starting model + input (checkpoints)

    def replace_model(self, model: nn.Module, state_map: StateMap | None = None) -> None:
        """Switch to ``model`` (e.g. after surgery), rebuilding the optimizer.

        The optimizer state of every parameter object that survives is kept; ``state_map``
        maps a new parameter to ``(old parameter, index_fn)`` to carry sliced state.
        """
        old = self.optimizer
        model.to(self.device)
        new = type(old)(param_groups(model, self.config), **{k: v for k, v in old.defaults.items() if k != "params"})
        for group in new.param_groups:
            group["lr"] = group["base_lr"] * self.lr_factor
        state_map = state_map or {}
        for param in model.parameters():
            if param in old.state:
                new.state[param] = old.state[param]
            elif param in state_map:
                src, index_fn = state_map[param]
                if src in old.state:
                    new.state[param] = {
                        k: (index_fn(v) if torch.is_tensor(v) and v.shape == src.shape else v)
                        for k, v in old.state[src].items()
                    }
        self.model, self.optimizer = model, new


def num_params(model: nn.Module) -> int:
    """Trainable scalars of any module."""
    return sum(int(p.numel()) for p in model.parameters())


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    model: nn.Module
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    steps: int
    seconds: float
    stopped_by: str = "steps"
    step_path: str = "eager"
    """``compiled`` when the steps ran through :mod:`inrkit.train.compiled`, else ``eager``."""
    compile_seconds: float = 0.0
    """Wall seconds of the steps that compiled (counted in ``seconds``)."""
    batched: bool | None = None
    """For :func:`~inrkit.train.batched.fit_many`: whether this signal trained in a stack (``None``: a plain fit)."""

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON: steps, seconds, params, and the final metrics."""
        return {"steps": self.steps, "seconds": round(self.seconds, 4), "params": num_params(self.model),
                "stopped_by": self.stopped_by, **self.metrics}


# ------------------------------------------------------------------ helpers
def _progress(config: FitConfig, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, disable=not config.progress, file=sys.stderr,
                dynamic_ncols=True, leave=False, desc="fit")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stop_reason(state: FitState, elapsed: float, last_step: float = 0.0) -> str | None:
    """Why to stop now, or ``None``. A time budget stops before a step that the last step's duration says
    would overshoot it."""
    cfg = state.config
    psnr = (state.metrics or {}).get("psnr") if cfg.eval_every else state.psnr
    if state.stop:
        return "callback"
    if cfg.target_psnr is not None and psnr is not None and psnr >= cfg.target_psnr:
        return "target_psnr"
    if cfg.time_budget is not None and elapsed + last_step > cfg.time_budget:
        return "time_budget"
    return None


LONG_RUN = 600.0
"""Seconds above which a fit's estimated duration is warned about."""


class _Pace:
    """Step durations: the last one (for the time budget) and one estimate of the whole run, printed once
    after the first steps (:attr:`WARMUP` steps and 2 s, 50 steps, or 10 s, not counting the first step, which
    carries one-off costs), with a warning when it exceeds :data:`LONG_RUN`."""

    WARMUP = 3

    def __init__(self, state: FitState, clock: _Clock) -> None:
        self.last_time, self.last_step = clock.seconds(), 0.0
        self.first: tuple[int, float] | None = None
        self.done = False

    def tick(self, state: FitState, clock: _Clock, bar: Any) -> None:
        now = clock.seconds()
        self.last_step, self.last_time = now - self.last_time, now
        if self.done:
            return
        if self.first is None:
            self.first = (state.step, now)
            return
        steps, elapsed = state.step - self.first[0], now - self.first[1]
        if steps < 1 or not (elapsed >= 10.0 or steps >= 50 or (steps >= self.WARMUP and elapsed >= 2.0)):
            return
        self.done = True
        per_step = elapsed / steps
        cfg = state.config
        total = now + per_step * max(int(cfg.steps or 0) - state.step, 0)
        if cfg.time_budget is not None:
            total = min(total, cfg.time_budget)
        if cfg.progress:
            bar.write(f"fit: {per_step:.3g} s per step; about {_duration(total)} in all", file=sys.stderr)
        if total > LONG_RUN:
            warn(f"this fit will take about {_duration(total)} ({per_step:.3g} s per step, {cfg.steps} steps); "
                 f"{_faster(state)}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _faster(state: FitState) -> str:
    """A faster choice to name when a fit is long: for a model that trains even a huge sampled signal in full
    batches (a plain MLP), one that batches it (``--arch auto``)."""
    grid_signal = getattr(state.task, "kind", None) in ("image", "volume", "field")
    if grid_signal and default_batch_size(state.model, sys.maxsize) is None:
        return "a faster choice: --arch auto (a grid model sized to the data), or fewer --steps / --time-budget"
    return "a faster choice: fewer --steps, a smaller --hidden, a --batch-size, or --time-budget SECONDS"


def training_precision(config: FitConfig, task: Task, model: nn.Module, device: torch.device) -> str:
    """``config.precision`` resolved for this device, task and model.

    bf16 needs a task with ``supports_bf16`` and a model with the fused layers of
    :mod:`inrkit.models.fast` (an :class:`~inrkit.models.mlp.MLP`); ``auto`` falls back to fp32.
    """
    if config.precision != "fp32" and not isinstance(model, MLP):
        if config.precision == "bf16":
            raise InvalidInputError(f"precision bf16 needs an inrkit MLP, not a {type(model).__name__}")
        return "fp32"
    supported = bool(getattr(task, "supports_bf16", False))
    if config.precision == "bf16" and not supported:
        name = getattr(task, "kind", type(task).__name__)
        raise InvalidInputError(f"precision bf16 needs a plain MSE loss; {name} tasks need fp32 (or auto)")
    return resolve_precision(config.precision, device, supported)


class _Forward:
    """The module the loss calls: the model in the training precision, compiled if asked.

    Rebuilt when the model object changes (after surgery)."""

    def __init__(self, precision: str, compile: bool) -> None:
        self.precision, self.compile = precision, compile
        self.source: nn.Module | None = None
        self.module: Any = None

    def __call__(self, model: nn.Module) -> nn.Module:
        if model is not self.source:
            module = with_precision(model, self.precision)
            self.source, self.module = model, torch.compile(module) if self.compile else module
        return self.module


def _resume(state: FitState, path: str) -> float:
    """Restore ``state`` from the checkpoint at ``path``; returns the seconds already spent.

    A checkpoint made for another starting model or another input is refused (InvalidInputError).
    """
    ckpt = load_checkpoint(path, "fit")
    check_fingerprint(path, ckpt, state.fingerprint)
    steps = _total_steps(state.config)
    if ckpt.step > steps:  # the run would report (and have trained) more steps than asked
        raise InvalidInputError(f"{path}: the checkpoint is at step {ckpt.step}, past the {steps} steps asked; "
                                "ask for at least that many --steps or use another --checkpoint")
    state.replace_model(restore_model(ckpt, state.model, state.device))
    restore_optimizer(ckpt, state.model, state.optimizer)
    state.generator.set_state(ckpt.rng)
    state.step, state.history = ckpt.step, ckpt.history
    return ckpt.seconds


def _checkpoint(state: FitState, path: str, seconds: float) -> None:
    meta = getattr(state.task, "metadata", None)
    save_checkpoint(path, state.model, state.optimizer, state.generator,
                    step=state.step, seconds=seconds, history=state.history, config=asdict(state.config),
                    kind="fit", signal=meta() if callable(meta) else None, fingerprint=state.fingerprint)


def _batch_size(config: FitConfig, task: Task, model: nn.Module) -> int | None:
    """Points per step: the config's, else the model's default, else the full set up to ``max_full_batch``."""
    n = task.num_samples()
    if config.batch_size is not None:
        return config.batch_size
    own = default_batch_size(model, n)
    if own is not None:
        return own
    return None if 0 < n <= config.max_full_batch or n == 0 else config.max_full_batch


def _step(state: FitState, forward: _Forward, batch_size: int | None, callbacks: list,
          runner: CompiledStep | None = None) -> tuple[Tensor, Tensor | None]:
    """One optimisation step (through ``runner``, the compiled step, when given); returns the loss and MSE."""
    cfg = state.config
    state.lr_factor = lr_factor(cfg.schedule, state.step, _total_steps(cfg), cfg.lr_min_factor)
    for group in state.optimizer.param_groups:
        group["lr"] = group["base_lr"] * state.lr_factor
    batch = state.task.train_batch(batch_size, state.generator, state.device)
    if runner is not None:
        return _compiled_step(state, runner, batch, callbacks)
    loss, mse = state.task.loss(forward(state.model), *batch)
    for cb in callbacks:
        extra = cb.extra_loss(state) if hasattr(cb, "extra_loss") else None
        loss = loss if extra is None else loss + extra
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.step += 1
    return loss, mse


def _compiled_step(state: FitState, runner: CompiledStep, batch: tuple, callbacks: list) -> tuple[Tensor, Tensor]:
    """The step through :class:`~inrkit.train.compiled.CompiledStep`; callbacks that add no loss
    (``adds_loss = False``) still see ``extra_loss`` before it."""
    for cb in callbacks:
        if hasattr(cb, "extra_loss") and cb.extra_loss(state) is not None:
            raise InvalidInputError("a callback with adds_loss = False returned a loss")
    per_member = runner(state.model, state.optimizer, *batch)
    observe = getattr(state.task, "observe_mse", None)
    if observe is not None:
        observe(per_member)
    state.step += 1
    if per_member.dim() == 0:
        return per_member, per_member
    return per_member.sum(), per_member.mean()


def _runner(state: FitState, precision: str, batch_size: int | None, callbacks: list) -> CompiledStep | None:
    """The compiled step when ``config.compile`` and the fit allow it (``auto``: when it pays), else ``None``."""
    mode = resolve_compile(state.config.compile)
    if mode == "off" or unsupported(state.model, state.task, state.optimizer, callbacks, precision):
        return None
    points = batch_size or state.task.num_samples()
    stack_precision = getattr(state.model, "precision", precision)
    if mode == "auto" and ("bf16" in (precision, stack_precision)
                           or not compile_pays(state.model, points, _total_steps(state.config) - state.step)):
        return None  # bf16: the eager fused layers of models.fast measured as fast as the compiled step
    return CompiledStep(precision=precision)


def _evaluate(state: FitState) -> float:
    """Evaluate the task now; returns the seconds it took (not counted as training)."""
    _sync(state.device)
    t = time.perf_counter()
    was_training = state.model.training
    state.model.eval()
    state.metrics = state.task.evaluate(state.model)
    state.model.train(was_training)
    return time.perf_counter() - t


class _Clock:
    """Training seconds: wall time since the start, minus the untimed evaluations."""

    def __init__(self, elapsed: float = 0.0) -> None:
        self.t0 = time.perf_counter() - elapsed

    def exclude(self, seconds: float) -> None:
        self.t0 += seconds

    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def _record(state: FitState, loss: Tensor, mse: Tensor | None, clock: _Clock, watch: bool, bar: Any) -> None:
    """Readouts, periodic evaluation and the history row after a step."""
    cfg = state.config
    log = state.step % cfg.log_every == 0 or state.step == cfg.steps
    evaluate = bool(cfg.eval_every) and state.step % cfg.eval_every == 0
    if log or watch or evaluate:
        state.loss = float(loss.detach())
        data_range = float(getattr(state.task, "data_range", 2.0))
        state.psnr = psnr_from_mse(float(mse.detach()), data_range) if mse is not None else None
    if evaluate:
        clock.exclude(_evaluate(state))
    if log or evaluate:
        row = {"step": state.step, "loss": state.loss, "psnr": state.psnr, "seconds": round(clock.seconds(), 6)}
        state.history.append({**row, "eval": state.metrics} if evaluate else row)
        bar.set_postfix(loss=f"{state.loss:.3g}", psnr=f"{state.psnr:.2f}" if state.psnr else "-")
    bar.update(1)


def _hooks(state: FitState, callbacks: list, clock: _Clock) -> None:
    """The task's and the callbacks' ``on_step_end``, then the periodic checkpoint."""
    hook = getattr(state.task, "on_step_end", None)
    if hook is not None:
        hook(state)
    for cb in callbacks:
        if hasattr(cb, "on_step_end"):
            cb.on_step_end(state)
    cfg = state.config
    if cfg.checkpoint_path and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
        _checkpoint(state, cfg.checkpoint_path, clock.seconds())


def _start(model: nn.Module, task: Task, config: FitConfig) -> tuple[FitState, _Clock]:
    """The initial state (resumed from the checkpoint when asked) and the training clock."""
    device = resolve_device(config.device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    groups = param_groups(model, config)
    optimizer = make_optimizer(config.optimizer, groups, groups[0]["base_lr"], config.adam_eps)
    state = FitState(model, optimizer, task, config, device, generator)
    if config.checkpoint_path:
        state.fingerprint = run_fingerprint(model, task)
    elapsed = 0.0
    if config.resume and config.checkpoint_path and Path(config.checkpoint_path).exists():
        elapsed = _resume(state, config.checkpoint_path)
    return state, _Clock(elapsed)


# ------------------------------------------------------------------------ fit
def fit(model: nn.Module, task: Task, config: FitConfig | None = None, callbacks: Iterable[Callback] = ()) -> FitResult:
    """Train ``model`` on ``task``; returns the (possibly replaced) model and its history.

    Args:
        model: any module the task's loss can call (an MLP, a NeRF MLP, a stacked batch of MLPs...).
        task: a :class:`~inrkit.train.task.Task` (every Signal is one).
        config: settings; see :class:`FitConfig`.
        callbacks: objects with optional ``extra_loss(state)`` and ``on_step_end(state)``.
    """
    config = with_defaults(config or FitConfig())
    callbacks = list(callbacks)
    state, clock = _start(model, task, config)
    batch_size = _batch_size(config, task, state.model)
    watch = config.target_psnr is not None or config.time_budget is not None
    precision = training_precision(config, task, state.model, state.device)
    runner = _runner(state, precision, batch_size, callbacks)
    forward = _Forward(precision, runner is None and resolve_compile(config.compile) == "on")
    stopped_by = "steps"
    pace = _Pace(state, clock)
    with _progress(config, state.step) as bar:
        while state.step < _total_steps(config):
            if runner is not None and unsupported(state.model, task, state.optimizer, callbacks, precision):
                runner = None  # a callback replaced the model by one the compiled step cannot train
            loss, mse = _step(state, forward, batch_size, callbacks, runner)
            _record(state, loss, mse, clock, watch, bar)
            _hooks(state, callbacks, clock)
            pace.tick(state, clock, bar)
            reason = _stop_reason(state, clock.seconds(), pace.last_step)
            if reason:
                stopped_by = reason
                break
    _sync(state.device)
    seconds = clock.seconds()
    if config.checkpoint_path:
        _checkpoint(state, config.checkpoint_path, seconds)
    state.model.eval()
    metrics = task.evaluate(state.model) if config.evaluate else {}
    if config.history_path:
        write_json(config.history_path, {"history": state.history, "metrics": metrics, "config": asdict(config)})
    curves = [curve_path(config.history_path)] if config.history_path else []
    if config.plot_path and Path(config.plot_path) not in curves:
        curves.append(Path(config.plot_path))
    for curve in curves:
        plot_history(state.history, curve)
    return FitResult(state.model, state.history, metrics, state.step, seconds, stopped_by,
                     "compiled" if runner is not None and runner.compiled_calls else "eager",
                     runner.compile_seconds if runner is not None else 0.0)
