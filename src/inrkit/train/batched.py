"""Many networks of one architecture trained as one: a stacked model, one task, one optimiser.

:class:`~inrkit.models.stacked.StackedModel` (re-exported here) holds ``B`` networks' parameters stacked on a
leading axis and evaluates all of them at once. :class:`StackedTask` is the task: targets
``[B, N, C]`` at shared coordinates ``[N, d]``; its loss is the *sum* of the per-member MSEs, so
each member's gradient is its own and Adam (elementwise) moves every member exactly as if it were
trained alone. :func:`fit_many` fits ``N`` models to ``N`` same-shape grid signals through
:func:`inrkit.train.fit` and returns one ordinary :class:`FitResult` (with an ordinary MLP) per signal.

Batched and single fits agree to float round-off (the batched layers fold ``omega`` into the weights);
``tests/test_batched.py`` states the tolerance. Precision follows the single fit: ``precision="bf16"`` (or
``"auto"`` where :func:`inrkit.models.fast.resolve_precision` picks bf16) multiplies the stacked layers in
bfloat16 through the layers of :mod:`inrkit.models.fast` that one MLP uses; ``tests/test_many_forms.py`` states
that tolerance.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.metrics import psnr_from_mse
from inrkit.models.fast import resolve_precision
from inrkit.models.mlp import MLP
from inrkit.models.stacked import GRID_STACK_ERROR, StackedModel, architecture
from inrkit.signals.base import GridSignal
from inrkit.train.compiled import CompileMode, compile_pays, resolve_compile
from inrkit.train.fit import FitConfig, FitResult, FitState, fit, with_defaults
from inrkit.utils import resolve_device


class StackedTask:
    """``B`` members' targets ``[B, N, C]`` at shared ``coords [N, d]``, trained as one task.

    The loss is the sum of the per-member MSEs. After every step the task records, per member,
    the MSE of that step (before its update) at the history steps, and, with ``target_psnr``,
    freezes a copy of every member that reached it (the weights after that step, as a single
    :func:`fit` would return them) and asks the fit to stop once every member has.

    Args:
        coords: shared input points; targets: ``[B, N, C]``.
        target_psnr: per-member early stop (dB), on the training PSNR, or on the evaluated
            PSNR when the fit's ``eval_every`` is set.
        evaluators: one task per member whose ``evaluate(member)`` gives its metrics (e.g. the
            signals); ``None``: PSNR of the MSE over all points.
        data_range: peak-to-peak range of the targets for PSNR.
        supports_bf16: the members' losses are plain MSEs that may train in bfloat16 (``fit_many``
            sets it from its signals; default ``False``: ``precision="auto"`` then means fp32).
    """

    compiled_loss = "members"  # the loss :mod:`inrkit.train.compiled` computes: the sum of per-member MSEs

    def __init__(self, coords: Tensor, targets: Tensor, target_psnr: float | None = None,
                 evaluators: Sequence[Any] | None = None, data_range: float = 2.0,
                 supports_bf16: bool = False) -> None:
        self.supports_bf16 = bool(supports_bf16)
        if targets.dim() != 3 or targets.shape[1] != coords.shape[0]:
            raise InvalidInputError(f"targets {tuple(targets.shape)} do not match coordinates {tuple(coords.shape)}")
        if evaluators is not None and len(evaluators) != targets.shape[0]:
            raise InvalidInputError("need one evaluator per member")
        self.coords, self.targets = coords, targets
        self.target_psnr, self.evaluators, self.data_range = target_psnr, evaluators, data_range
        self.copies = int(targets.shape[0])
        self.last_mse: Tensor | None = None
        self.member_history: list[dict[str, Any]] = []  # {"step", "mse": [B]} before update ``step``
        self.done_step = torch.zeros(self.copies, dtype=torch.long)  # 0: not stopped
        self.frozen: list[Tensor] | None = None
        self._device_cache: dict[str, tuple[Tensor, Tensor]] = {}

    def num_samples(self) -> int:
        """Points per member."""
        return int(self.coords.shape[0])

    def _on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        key = str(device)
        if key not in self._device_cache:
            self._device_cache = {key: (self.coords.to(device), self.targets.to(device))}
        return self._device_cache[key]

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        """All points, or ``batch_size`` random points (the same ones for every member, as a single fit draws)."""
        coords, targets = self._on(device)
        n = coords.shape[0]
        if batch_size is None or batch_size >= n:
            return coords, targets
        idx = torch.randint(n, (batch_size,), generator=generator).to(device)
        return coords[idx], targets[:, idx]

    def per_member_mse(self, model: nn.Module, coords: Tensor, targets: Tensor) -> Tensor:
        """MSE of every member ``[B]``."""
        return torch.mean((model(coords) - targets) ** 2, dim=(1, 2))

    def loss(self, model: nn.Module, coords: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Sum of the per-member MSEs (each member's gradient is its own) and their mean."""
        per_member = self.per_member_mse(model, coords, targets)
        self.last_mse = per_member.detach()
        return per_member.sum(), per_member.mean()

    def observe_mse(self, per_member: Tensor) -> None:
        """The per-member MSE of a step the compiled path took (what :meth:`loss` records)."""
        self.last_mse = per_member.detach()

    def on_step_end(self, state: FitState) -> None:
        """Per-member history rows and early stop."""
        cfg = state.config
        mse = self.last_mse
        if mse is None:
            return
        log = state.step % cfg.log_every == 0 or state.step == cfg.steps
        watch = self.target_psnr is not None
        if not (log or watch):
            return
        values = mse.cpu()
        if log:
            self.member_history.append({"step": state.step, "mse": values.tolist()})
        if not watch:
            return
        if cfg.eval_every:
            if state.step % cfg.eval_every or not state.metrics:
                return
            psnr = torch.tensor(state.metrics["member_psnr"], dtype=torch.float64)
        else:
            mse64 = values.double().clamp_min(1e-20)  # psnr_from_mse, vectorised
            psnr = 10.0 * torch.log10(self.data_range**2 / mse64)
        newly = (self.done_step == 0) & (psnr >= float(self.target_psnr))  # type: ignore[arg-type]
        if bool(newly.any()):
            params = list(state.model.parameters())
            if self.frozen is None:
                self.frozen = [p.detach().clone() for p in params]
            mask = newly.to(params[0].device)
            with torch.no_grad():
                for keep, p in zip(self.frozen, params):
                    keep[mask] = p.detach()[mask]
            self.done_step[newly] = state.step
        if bool((self.done_step > 0).all()):
            state.stop = True

    def restore_frozen(self, model: StackedModel) -> None:
        """Put back the weights every early-stopped member had when it stopped."""
        if self.frozen is None:
            return
        mask = (self.done_step > 0).to(model.stacked[0].device)
        with torch.no_grad():
            for keep, p in zip(self.frozen, model.stacked):
                p[mask] = keep[mask]

    def member_metrics(self, model: StackedModel) -> list[dict[str, Any]]:
        """Metrics of every member: its evaluator's, else the PSNR over all points."""
        if self.evaluators is not None:
            return [ev.evaluate(m) for ev, m in zip(self.evaluators, model.members())]
        coords, targets = self._on(model.stacked[0].device)
        with torch.no_grad():
            mse = self.per_member_mse(model, coords, targets).cpu()
        return [{"psnr": psnr_from_mse(float(v), self.data_range)} for v in mse]

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        """Mean, minimum and per-member PSNR (``member_psnr``)."""
        assert isinstance(model, StackedModel)
        psnrs = [float(m["psnr"]) for m in self.member_metrics(model)]
        return {"psnr": sum(psnrs) / len(psnrs), "psnr_min": min(psnrs), "member_psnr": psnrs}


def fit_stacked(stacked: StackedModel, task: StackedTask, config: FitConfig) -> FitResult:
    """Train a stack with :func:`inrkit.train.fit` (per-member stop via the task; no final evaluation).

    Frozen members' weights are restored at the end. ``config.target_psnr`` must be ``None``
    (the task's ``target_psnr`` stops members one by one); checkpoints are not supported.
    ``config.precision`` is resolved as a single fit resolves it for one member (an MLP stack and a
    task with ``supports_bf16``: ``bf16`` or ``auto`` on a device with native bfloat16 GEMMs train the
    stacked layers in bfloat16; the stack's :attr:`StackedModel.precision` says which was used).
    """
    if config.checkpoint_path:
        raise InvalidInputError("checkpoints are not supported for batched fits")
    if config.target_psnr is not None:
        raise InvalidInputError("give the target PSNR to the StackedTask (per member), not to the fit")
    stacked.precision = stacked_precision(stacked, task, config)
    try:
        result = fit(stacked, task, replace(config, precision="fp32"))
    finally:
        stacked.precision = "fp32"  # evaluation and later use in float32, as a single fit's model
    task.restore_frozen(stacked)
    return result


def stacked_precision(stacked: StackedModel, task: Any, config: FitConfig) -> str:
    """``config.precision`` resolved for a stack as :func:`inrkit.train.fit.training_precision` does for one
    member: ``bf16`` needs MLP members and a task with ``supports_bf16``; ``auto`` falls back to fp32."""
    supported = bool(getattr(task, "supports_bf16", False))
    if config.precision == "bf16":
        if not isinstance(stacked.base, MLP):
            raise InvalidInputError(f"precision bf16 needs inrkit MLPs, not {type(stacked.base).__name__} members")
        if not supported:
            raise InvalidInputError("precision bf16 needs a plain MSE loss; this stacked task needs fp32 (or auto)")
    if not isinstance(stacked.base, MLP):
        return "fp32"
    return resolve_precision(config.precision, resolve_device(config.device), supported)


CPU_STACK_BYTES = 16 << 20
"""Largest activation of one stacked layer (``members x points x width x 4`` bytes) on a CPU.

Measured (1 thread, SIREN 3x32, 64x64 crops, fit-only time per member and step): a single fit
4.3 ms; stacks of 8 and 32 members 2.9 and 2.8 ms (16 MiB); 128 and 256 members 7.4 and 6.4 ms,
as the stack falls out of the cache. Larger batches are therefore fitted as several stacks in
turn on a CPU (the same models: members are independent); on a GPU as one."""


def stack_size(members: int, points: int, width: int, device: torch.device | str | None,
               max_stack: int | None = None) -> int:
    """Members per stack: ``max_stack``, else all on a GPU and :data:`CPU_STACK_BYTES` worth on a CPU."""
    if max_stack is not None:
        if max_stack < 1:
            raise InvalidInputError(f"max_stack must be positive, got {max_stack}")
        return min(members, max_stack)
    if resolve_device(device if device is None else str(device)).type != "cpu":
        return members
    return max(1, min(members, CPU_STACK_BYTES // max(4 * points * width, 1)))


def _signal_batch(signals: Sequence[Any]) -> tuple[Tensor, Tensor]:
    """Shared training coordinates and stacked targets of same-shape grid signals."""
    first = signals[0]
    for i, s in enumerate(signals):
        if not isinstance(s, GridSignal):
            raise InvalidInputError(f"signal {i} is a {type(s).__name__}; batched fits take grid signals "
                                    "(images, volumes, fields, crops)")
        if (s.shape, s.out_dim) != (first.shape, first.out_dim):
            raise InvalidInputError(f"signal {i} has shape {list(s.shape)}x{s.out_dim}, signal 0 "
                                    f"{list(first.shape)}x{first.out_dim}; batched signals must all match")
        same_split = (s.train_idx is None and first.train_idx is None) or (
            s.train_idx is not None and first.train_idx is not None and torch.equal(s.train_idx, first.train_idx))
        if not same_split:
            raise InvalidInputError(f"signal {i} holds out other samples than signal 0 (use the same test "
                                    "fraction and seed)")
    coords = first._train_set(torch.device("cpu"))[0]
    targets = torch.stack([s._train_set(torch.device("cpu"))[1] for s in signals])
    return coords, targets


MANY_PATHS = ("auto", "batched", "single")
PROBE_STEPS = 4
"""Timed steps per path of :func:`choose_path`'s measurement (after one untimed step that compiles)."""
_CHOSEN: dict[tuple, tuple[str, dict[str, Any]]] = {}


def fit_many(models: Sequence[MLP], signals: Sequence[Any], config: FitConfig | None = None,
             max_stack: int | None = None, path: str = "auto") -> list[FitResult]:
    """Fit ``models[i]`` to ``signals[i]`` for every ``i``, batched or one at a time.

    Each member trains exactly as if fitted alone with ``fit(models[i], signals[i], config)``
    (same steps, schedule, point batches and precision), up to float round-off (bf16: bfloat16 round-off).
    ``target_psnr`` stops members one by one (a member keeps the weights it had when it reached it; a stack
    ends when all its members have). The models are not changed.

    Args:
        models: same-architecture MLPs, the starting points.
        signals: same-shape grid signals (same coordinates and held-out split).
        config: settings; ``precision`` as for a single fit (``auto``: bf16 where the device has native
            bfloat16 GEMMs, as ``fit`` picks it; see :func:`stacked_precision`); checkpoints are refused;
            ``time_budget`` applies to each stack.
        max_stack: members trained together in one stack (one :func:`fit` run); ``None``: all
            on a GPU, :data:`CPU_STACK_BYTES` worth of activations on a CPU (see there).
        path: ``batched`` (stacks), ``single`` (one :func:`fit` per signal, each through the compiled step
            where ``config.compile`` picks it) or ``auto``: whichever :func:`choose_path` measures faster per
            signal on this machine (``FitResult.batched`` says which ran).
    Returns:
        One :class:`FitResult` per signal: an ordinary MLP (``save_model`` writes the same file
        format as a single fit), its per-member history (training loss/PSNR before each logged
        step), its metrics (``signal.evaluate``), the step it stopped at, and its share of its
        stack's training seconds (stack seconds / members of the stack).
    """
    config = config or FitConfig()
    models, signals = list(models), list(signals)
    if not models or len(models) != len(signals):
        raise InvalidInputError(f"need one model per signal, got {len(models)} models and {len(signals)} signals")
    for i, m in enumerate(models):
        if not isinstance(m, MLP):
            raise InvalidInputError(f"model {i} is a {type(m).__name__}; batched fits take inrkit MLPs")
        if m.encoding is not None:
            raise InvalidInputError(GRID_STACK_ERROR)
        if (m.coord_dim, m.out_dim) != (signals[i].dim, signals[i].out_dim):
            raise InvalidInputError(f"model {i} maps {m.coord_dim}D -> {m.out_dim}D; its signal needs "
                                    f"{signals[i].dim}D -> {signals[i].out_dim}D")
    coords, targets = _signal_batch(signals)
    arch = architecture(models[0])
    if any(architecture(m) != arch for m in models):
        raise InvalidInputError("the models differ in architecture; stacked models must share type, widths, "
                                "activations and frequencies")
    size = stack_size(len(models), int(coords.shape[0]), max(models[0].widths), config.device, max_stack)
    if path not in MANY_PATHS:
        raise InvalidInputError(f"unknown fit-many path {path!r}; choose from {list(MANY_PATHS)}")
    if path == "auto":
        path = "single" if len(models) == 1 else choose_path(models[0], signals[:size], coords, targets[:size],
                                                             config)[0]
    if path == "single":
        each = replace(config, compile=_compile_mode(models[0], int(coords.shape[0]), config, len(models)))
        return [replace(fit(m.copy(), s, each), batched=False) for m, s in zip(models, signals)]
    results: list[FitResult] = []
    for start in range(0, len(models), size):
        part = slice(start, start + size)
        results += _fit_stack(models[part], signals[part], targets[part], coords, config)
    return results


def _fit_stack(models: list[MLP], signals: list[Any], targets: Tensor, coords: Tensor,
               config: FitConfig) -> list[FitResult]:
    """One stack of :func:`fit_many`: one :func:`fit` run."""
    stacked = StackedModel.from_models(models)
    task = StackedTask(coords, targets, config.target_psnr, evaluators=signals,
                       supports_bf16=all(bool(getattr(s, "supports_bf16", False)) for s in signals))
    inner = replace(config, target_psnr=None, evaluate=False)
    run = fit_stacked(stacked, task, inner)
    members = stacked.members()
    metrics = [s.evaluate(m) for s, m in zip(signals, members)] if config.evaluate else [{} for _ in members]
    share = run.seconds / len(members)
    times = {row["step"]: row.get("seconds", 0.0) for row in run.history}
    results = []
    for i, model in enumerate(members):
        stop = int(task.done_step[i])
        steps = stop or run.steps
        history = [{"step": row["step"], "loss": row["mse"][i], "psnr": psnr_from_mse(row["mse"][i]),
                    "seconds": times.get(row["step"], 0.0) / len(members)}
                   for row in task.member_history if row["step"] <= steps]
        results.append(FitResult(model, history, metrics[i], steps, share,
                                 "target_psnr" if stop else run.stopped_by, run.step_path,
                                 run.compile_seconds / len(members), batched=True))
    return results


def _compile_mode(model: nn.Module, points: int, config: FitConfig, runs: int) -> CompileMode:
    """``config.compile`` for ``runs`` fits of ``model`` in this process: ``auto`` counts the compile once for
    all of them (the compiled step is reused within the process)."""
    mode = resolve_compile(config.compile)
    if mode != "auto":
        return mode
    steps = with_defaults(config).steps
    assert steps is not None
    return "on" if compile_pays(model, config.batch_size or points, steps * runs) else "off"


def _probe_seconds(run: Any, steps: int) -> float:
    """Seconds of ``steps`` more steps of ``run(steps)`` (``run(1)`` first, untimed: compiling, caches)."""
    run(1)
    t = time.perf_counter()
    run(1)
    short = time.perf_counter() - t
    t = time.perf_counter()
    run(1 + steps)
    return max(time.perf_counter() - t - short, 1e-9)


def choose_path(model: MLP, signals: Sequence[Any], coords: Tensor, targets: Tensor,
                config: FitConfig) -> tuple[str, dict[str, Any]]:
    """``"batched"`` or ``"single"``: the path of :func:`fit_many` with the lower measured seconds per signal
    and step, and the measurement (:data:`PROBE_STEPS` steps of a stack of ``len(signals)`` members and of one
    fit, each in the compile mode its real run would use). On a GPU: batched, unmeasured.

    Measured once per process for each architecture, shape, stack size and setting (later calls reuse it)."""
    device = resolve_device(config.device)
    if device.type != "cpu":
        return "batched", {"reason": "not a CPU: batched, unmeasured"}
    key = (architecture(model), tuple(coords.shape), tuple(targets.shape), config.batch_size, config.steps,
           config.compile, config.precision, config.optimizer)
    if key in _CHOSEN:
        return _CHOSEN[key]
    points = int(coords.shape[0])
    modes = {"batched": _compile_mode(StackedModel(model, len(signals)), points, config, 1),
             "single": _compile_mode(model, points, config, len(signals))}
    probe = replace(config, target_psnr=None, evaluate=False, progress=False, log_every=10**6, eval_every=0,
                    history_path=None, plot_path=None, time_budget=None, checkpoint_path=None)

    def batched(n: int) -> None:
        task = StackedTask(coords, targets, supports_bf16=all(bool(getattr(s, "supports_bf16", False))
                                                              for s in signals))
        fit_stacked(StackedModel(model, len(signals)), task, replace(probe, steps=n, compile=modes["batched"]))

    def single(n: int) -> None:
        fit(model.copy(), signals[0], replace(probe, steps=n, compile=modes["single"]))

    per_signal = {"batched": _probe_seconds(batched, PROBE_STEPS) / (PROBE_STEPS * len(signals)),
                  "single": _probe_seconds(single, PROBE_STEPS) / PROBE_STEPS}
    chosen = min(per_signal, key=per_signal.__getitem__)
    info = {"seconds_per_signal_step": per_signal, "compile": modes, "members": len(signals),
            "probe_steps": PROBE_STEPS}
    _CHOSEN[key] = (chosen, info)
    return chosen, info


__all__ = ["CPU_STACK_BYTES", "MANY_PATHS", "StackedModel", "StackedTask", "choose_path", "fit_many", "fit_stacked",
           "stack_size", "stacked_precision"]
