"""The fitting loop: Adam with a learning-rate schedule, stop rules, callbacks, checkpoints."""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor

from ..errors import InvalidFileError, InvalidInputError
from ..metrics import psnr_from_mse
from ..models.io import model_from_tensors, model_header, model_tensors, _check_header, _expected_shapes
from ..models.fast import PRECISIONS, compute_precision, resolve_precision
from ..models.mlp import MLP
from ..signals.base import Signal
from ..utils import atomic_write, resolve_device, write_json

SCHEDULES = ("constant", "cosine", "exponential")


@dataclass
class FitConfig:
    """Settings of :func:`fit`.

    Args:
        steps: maximum number of optimisation steps.
        lr: Adam's initial learning rate.
        schedule: ``constant``, ``cosine`` (to ``lr * lr_min_factor``) or ``exponential``.
        lr_min_factor: final learning rate as a fraction of ``lr``.
        batch_size: points per step; ``None`` uses the full set when it has at most
            ``max_full_batch`` samples, else random batches of ``max_full_batch``.
        target_psnr: stop once the training PSNR reaches this (dB).
        time_budget: stop after this many seconds.
        seed: seed of batches and of anything random in callbacks.
        log_every: steps between history rows (PSNR/loss readouts).
        progress: show a progress bar on stderr.
        history_path: write the history as JSON here at the end.
        checkpoint_path: write a resumable checkpoint here every ``checkpoint_every`` steps.
        resume: continue from ``checkpoint_path`` when it exists.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        precision: GEMM precision of the training forward/backward passes: ``"fp32"``,
            ``"bf16"`` (bfloat16 GEMMs, float32 first layer, master weights and loss; plain
            MSE losses only) or ``"auto"`` (``bf16`` where the device has native bfloat16
            and the loss is plain MSE, else ``fp32``). See :mod:`inrkit.models.fast`.
        compile: run the training forward pass through ``torch.compile`` (recompiled when
            the model is replaced). Compiling costs tens of seconds once; it pays off on
            long runs only (numbers in docs/speed.md).
    """

    steps: int = 1000
    lr: float = 1e-3
    schedule: str = "cosine"
    lr_min_factor: float = 0.1
    batch_size: int | None = None
    max_full_batch: int = 1 << 20
    target_psnr: float | None = None
    time_budget: float | None = None
    seed: int = 0
    log_every: int = 10
    progress: bool = True
    history_path: str | None = None
    checkpoint_path: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    device: str | None = None
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0 or self.log_every < 1:
            raise InvalidInputError("steps must be >= 0, lr > 0 and log_every >= 1")
        if self.schedule not in SCHEDULES:
            raise InvalidInputError(f"unknown schedule {self.schedule!r}; choose from {list(SCHEDULES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInputError("batch size must be positive")
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"unknown precision {self.precision!r}; choose from {list(PRECISIONS)}")


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


StateMap = dict[torch.nn.Parameter, tuple[torch.nn.Parameter, Callable[[Tensor], Tensor]]]


@dataclass
class FitState:
    """What callbacks see and may change during :func:`fit`."""

    model: MLP
    optimizer: torch.optim.Optimizer
    signal: Signal
    config: FitConfig
    device: torch.device
    generator: torch.Generator
    step: int = 0
    lr_factor: float = 1.0
    loss: float | None = None
    psnr: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False

    def replace_model(self, model: MLP, state_map: StateMap | None = None) -> None:
        """Switch to ``model`` (e.g. after surgery), rebuilding Adam.

        The optimizer state of every parameter object that survives is kept; ``state_map``
        maps a new parameter to ``(old parameter, index_fn)`` to carry sliced state.
        """
        old = self.optimizer
        model.to(self.device)
        new = torch.optim.Adam(model.parameters(), **{k: v for k, v in old.defaults.items() if k != "params"})
        for group in new.param_groups:
            group["lr"] = old.param_groups[0]["lr"]
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


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    model: MLP
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    steps: int
    seconds: float
    stopped_by: str = "steps"

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON: steps, seconds, params, and the final metrics."""
        return {"steps": self.steps, "seconds": round(self.seconds, 4), "params": self.model.num_params(),
                "stopped_by": self.stopped_by, **self.metrics}


# ----------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, state: FitState, seconds: float) -> None:
    """Write model, Adam state, RNG state and history to one safetensors file (atomically)."""
    tensors = {f"model.{k}": v for k, v in model_tensors(state.model).items()}
    params = list(state.model.parameters())
    for i, p in enumerate(params):
        for key, value in state.optimizer.state.get(p, {}).items():
            tensors[f"adam.{i}.{key}"] = value.detach().cpu().float().reshape(value.shape).contiguous()
    tensors["rng"] = state.generator.get_state()
    meta = {"model": model_header(state.model, state.signal.metadata()), "step": state.step,
            "seconds": seconds, "history": state.history, "config": asdict(state.config)}
    with atomic_write(path) as handle:
        handle.write(safetensors_save(tensors, metadata={"inrkit-checkpoint": json.dumps(meta)}))


def load_checkpoint(path: str | Path, state: FitState) -> float:
    """Restore ``state`` from a checkpoint written by :func:`save_checkpoint`; returns elapsed seconds."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["inrkit-checkpoint"])
            header = _check_header(meta["model"])
            names = [f"model.{k}" for k in _expected_shapes(header)]
            tensors = {k[len("model."):]: handle.get_tensor(k) for k in names}
            model = model_from_tensors(tensors, header).to(state.device)
            state.replace_model(model)
            for i, p in enumerate(model.parameters()):
                keys = [k for k in handle.keys() if k.startswith(f"adam.{i}.")]
                if keys:
                    state.optimizer.state[p] = {k.split(".", 2)[2]: handle.get_tensor(k).to(state.device) for k in keys}
                    state.optimizer.state[p]["step"] = state.optimizer.state[p]["step"].cpu()
            state.generator.set_state(handle.get_tensor("rng"))
    except (KeyError, ValueError, SafetensorError, OSError, RuntimeError) as exc:
        raise InvalidFileError(f"{path}: cannot resume from checkpoint ({exc})") from exc
    state.step, state.history = int(meta["step"]), list(meta["history"])
    return float(meta["seconds"])


# ------------------------------------------------------------------------ fit
def _progress(config: FitConfig, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, disable=not config.progress, file=sys.stderr,
                dynamic_ncols=True, leave=False, desc="fit")


def _stop_reason(state: FitState, elapsed: float) -> str | None:
    cfg = state.config
    if state.stop:
        return "callback"
    if cfg.target_psnr is not None and state.psnr is not None and state.psnr >= cfg.target_psnr:
        return "target_psnr"
    if cfg.time_budget is not None and elapsed >= cfg.time_budget:
        return "time_budget"
    return None


def _training_precision(config: FitConfig, signal: Signal, device: torch.device) -> str:
    """``config.precision`` resolved for this device and signal (bf16 needs a plain MSE loss)."""
    plain_mse = type(signal).loss is Signal.loss
    if config.precision == "bf16" and not plain_mse:
        raise InvalidInputError(f"precision bf16 needs a plain MSE loss; {signal.kind} signals need fp32 (or auto)")
    return resolve_precision(config.precision, device, plain_mse)


class _Compiled:
    """``torch.compile`` of the current model, redone when the model object changes."""

    def __init__(self) -> None:
        self.source: MLP | None = None
        self.module: torch.nn.Module | None = None

    def __call__(self, model: MLP) -> torch.nn.Module:
        if model is not self.source:
            self.source, self.module = model, torch.compile(model)
        return self.module


def fit(model: MLP, signal: Signal, config: FitConfig | None = None, callbacks: Iterable[Callback] = ()) -> FitResult:
    """Fit ``model`` to ``signal`` with Adam; returns the (possibly replaced) model and its history."""
    config = config or FitConfig()
    callbacks = list(callbacks)
    device = resolve_device(config.device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    state = FitState(model, optimizer, signal, config, device, generator)
    elapsed = 0.0
    if config.resume and config.checkpoint_path and Path(config.checkpoint_path).exists():
        elapsed = load_checkpoint(config.checkpoint_path, state)
    n = signal.num_samples()
    batch = config.batch_size or (None if 0 < n <= config.max_full_batch or n == 0 else config.max_full_batch)
    watch = config.target_psnr is not None or config.time_budget is not None
    precision = _training_precision(config, signal, device)
    compiled = _Compiled()
    stopped_by, t0 = "steps", time.perf_counter() - elapsed
    with _progress(config, state.step) as bar:
        while state.step < config.steps:
            state.lr_factor = lr_factor(config.schedule, state.step, config.steps, config.lr_min_factor)
            for group in state.optimizer.param_groups:
                group["lr"] = config.lr * state.lr_factor
            coords, targets = signal.train_batch(batch, generator, device)
            with compute_precision(precision):
                loss, mse = signal.loss(compiled(state.model) if config.compile else state.model, coords, targets)
            for cb in callbacks:
                extra = cb.extra_loss(state) if hasattr(cb, "extra_loss") else None
                loss = loss if extra is None else loss + extra
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.step += 1
            log = state.step % config.log_every == 0 or state.step == config.steps
            if log or watch:
                state.loss = float(loss.detach())
                state.psnr = psnr_from_mse(float(mse.detach())) if mse is not None else None
            if log:
                row = {"step": state.step, "loss": state.loss, "psnr": state.psnr,
                       "seconds": round(time.perf_counter() - t0, 4)}
                state.history.append(row)
                bar.set_postfix(loss=f"{state.loss:.3g}", psnr=f"{state.psnr:.2f}" if state.psnr else "-")
            bar.update(1)
            for cb in callbacks:
                if hasattr(cb, "on_step_end"):
                    cb.on_step_end(state)
            if config.checkpoint_path and config.checkpoint_every and state.step % config.checkpoint_every == 0:
                save_checkpoint(config.checkpoint_path, state, time.perf_counter() - t0)
            reason = _stop_reason(state, time.perf_counter() - t0)
            if reason:
                stopped_by = reason
                break
    seconds = time.perf_counter() - t0
    if config.checkpoint_path and config.checkpoint_every:
        save_checkpoint(config.checkpoint_path, state, seconds)
    state.model.eval()
    metrics = signal.evaluate(state.model)
    if config.history_path:
        write_json(config.history_path, {"history": state.history, "metrics": metrics, "config": asdict(config)})
    return FitResult(state.model, state.history, metrics, state.step, seconds, stopped_by)
