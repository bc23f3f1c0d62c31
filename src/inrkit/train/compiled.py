"""One compiled training step for sine networks: forward, backward and the optimiser update as one graph.

:func:`inrkit.train.fit` trains an :class:`~inrkit.models.mlp.MLP` (SIREN, FINER, or any MLP of
``sine``/``finer``/``relu``/``tanh``/``identity`` layers without a grid encoding), or a
:class:`~inrkit.models.stacked.StackedModel` of them, on a plain-MSE task through :class:`CompiledStep`
when ``FitConfig.compile`` asks for it (``"on"``, or ``"auto"`` where :func:`compile_pays` says so).

The step is written out by hand (no autograd): the forward pass keeps each layer's input and the
derivative of its activation, the backward pass is two GEMMs and one reduction per layer, and Adam
(``torch.optim.Adam``'s update, bias corrections computed in float64 as PyTorch does) or plain SGD
updates the parameters and the optimiser's own state tensors in place, so checkpoints, resumes and
``FitState.replace_model`` see an ordinary ``torch.optim`` state. ``torch.compile(fullgraph=True)``
turns the whole function into one inductor graph; sine and cosine are the range-reduced polynomials of
:mod:`inrkit.models.fastsin`, which fuse into the GEMMs' neighbouring loops. The step is deterministic:
the same seed on the same machine (and thread count) gives the same bits.

Compiled graphs are cached in the process (one per architecture, shapes and optimiser) and across
processes by inductor's FX graph cache (``$TORCHINDUCTOR_CACHE_DIR``); docs/speed.md has the first-run
and warm-cache compile seconds and the rule that decides when compiling pays.
"""
from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch
from torch import Tensor, nn

from inrkit.models.fastsin import fast_sincos
from inrkit.models.mlp import MLP, fourier_features

CompileMode = Literal["auto", "on", "off"]
COMPILE_MODES: tuple[CompileMode, ...] = ("auto", "on", "off")
SUPPORTED = ("sine", "finer", "relu", "tanh", "identity")

# Measured on this project's reference CPU (AMD EPYC Zen 3, one thread; docs/speed.md, "The compiled step"):
SAVED_NS_PER_ACTIVATION = 4.7
"""Eager minus compiled step nanoseconds per hidden activation (points x members x sum of hidden widths) of a
32-wide network, scaled by ``sqrt(32 / mean hidden width)`` for others: measured 5.2 (SIREN 32x3, 4096 points),
3.7 (64x3, 65536 points) and 1.8 ns (256x3, 16384 points), alone on one thread (bench/results/many.json
``stack_sweep``, fit_speed.json); 4.7 is 90% of the 32-wide value. Compiling does not speed up the GEMMs, which
dominate the wide layers."""
COMPILE_SECONDS = 5.0
"""Seconds to compile one step when inductor's cache holds it (measured 2.7-3.7 s in a fresh process; an empty
cache: 17.5-20.9 s, paid once per architecture, shape and machine; bench/results/fit_speed.json ``compile_cost``)."""
MAX_CACHED = 32
"""Compiled steps kept per process (least recently used dropped first)."""


# ------------------------------------------------------------------ the step
def _mm(a: Tensor, b: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``a @ b`` (batched or broadcast); with ``dtype`` (bfloat16) the operands are rounded to it, the product
    accumulates in float32 inside oneDNN and comes back as float32."""
    if dtype is None:
        return a @ b
    return (a.to(dtype) @ b.to(dtype)).float()


def _linear(h: Tensor, weight: Tensor, bias: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``h W^T + b`` for one network or a stack (3-D ``weight``; ``h`` [N, in] shared or [B, N, in])."""
    if weight.dim() == 2 and dtype is None:
        return torch.addmm(bias, h, weight.t())
    return _mm(h, weight.transpose(-1, -2), dtype) + bias.unsqueeze(-2)


def _layer(h: Tensor, weight: Tensor, bias: Tensor, act: str, omega: float,
           dtype: torch.dtype | None) -> tuple[Tensor, Tensor | None]:
    """A layer's output and the derivative of its activation w.r.t. its pre-activation (``None``: identity)."""
    if act == "sine":  # omega folded into the small weights: sin(h (omega W)^T + omega b)
        s, c = fast_sincos(_linear(h, weight * omega, bias * omega, dtype))
        return s, c
    z = _linear(h, weight, bias, dtype)
    if act == "finer":
        a = z.abs()
        s, c = fast_sincos(omega * (a + 1.0) * z)
        return s, c * (omega * (2.0 * a + 1.0))
    if act == "relu":
        return torch.relu(z), (z > 0).to(z.dtype)
    if act == "tanh":
        t = torch.tanh(z)
        return t, 1.0 - t * t
    return z, None


def _t(x: Tensor) -> Tensor:
    return x.transpose(-1, -2)


def _gradients(weights: Sequence[Tensor], biases: Sequence[Tensor], acts: Sequence[str], omegas: Sequence[float],
               x: Tensor, targets: Tensor, dtype: torch.dtype | None = None,
               ) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """Weight and bias gradients of the (per-member summed) MSE, and the per-member MSE.

    ``dtype`` (bfloat16): every GEMM but the first layer's (coordinates in, phases of tens of radians) takes
    bfloat16 operands, as :mod:`inrkit.models.fast` does; activations, derivatives, loss and updates stay float32.
    """
    h, inputs, derivs = x, [], []
    for i, (w, b, act, omega) in enumerate(zip(weights, biases, acts, omegas)):
        inputs.append(h)
        h, d = _layer(h, w, b, act, omega, dtype if i > 0 else None)
        derivs.append(d)
    err = h - targets
    mse = (err * err).mean(dim=(-2, -1))
    g = err * (2.0 / (err.shape[-2] * err.shape[-1]))
    gw: list[Tensor] = [torch.empty(0)] * len(weights)
    gb: list[Tensor] = [torch.empty(0)] * len(weights)
    for i in reversed(range(len(weights))):
        d = derivs[i]
        gu = g if d is None else g * d
        scale = omegas[i] if acts[i] == "sine" else 1.0
        gemm = dtype if i > 0 else None
        gw[i] = _mm(_t(gu), inputs[i], gemm) * scale
        gb[i] = gu.sum(-2) * scale
        if i > 0:
            g = _mm(gu, weights[i] * scale, gemm)
    return gw, gb, mse


def _adam(params: Sequence[Tensor], grads: Sequence[Tensor], exp_avg: Sequence[Tensor],
          exp_avg_sq: Sequence[Tensor], steps: Sequence[Tensor], scalars: Tensor, beta1: float, beta2: float,
          eps: float) -> None:
    """``torch.optim.Adam``'s update in place (``scalars`` = step size, sqrt of the second bias correction;
    ``steps``: the optimiser's per-parameter step counters, advanced by one)."""
    step_size, bc2_sqrt = scalars[0], scalars[1]
    for s in steps:
        s.add_(1.0)
    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq):
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        p.sub_(step_size * m / (v.sqrt() / bc2_sqrt + eps))


@dataclass(frozen=True)
class StepSpec:
    """What a compiled step is specialised on (besides the tensors' shapes)."""

    acts: tuple[str, ...]
    omegas: tuple[float, ...]
    optimizer: str
    betas: tuple[float, float]
    eps: float
    fourier: bool
    precision: str = "fp32"


def make_step(spec: StepSpec) -> Callable[..., Tensor]:
    """The uncompiled step function of ``spec``: ``step(weights, biases, m, v, steps, scalars, coords, targets[, B])``
    updates the parameters (and Adam's moments and step counters) in place and returns the per-member MSE before
    the update."""

    def step(weights: list[Tensor], biases: list[Tensor], exp_avg: list[Tensor], exp_avg_sq: list[Tensor],
             steps: list[Tensor], scalars: Tensor, coords: Tensor, targets: Tensor,
             fourier: Tensor | None = None) -> Tensor:
        x = coords if fourier is None else fourier_features(coords, fourier)
        dtype = torch.bfloat16 if spec.precision == "bf16" else None
        gw, gb, mse = _gradients(weights, biases, spec.acts, spec.omegas, x, targets, dtype)
        params, grads = [*weights, *biases], [*gw, *gb]
        if spec.optimizer == "adam":
            _adam(params, grads, exp_avg, exp_avg_sq, steps, scalars, spec.betas[0], spec.betas[1], spec.eps)
        else:
            for p, g in zip(params, grads):
                p.sub_(scalars[0] * g)
        return mse

    return step


_CACHE: "OrderedDict[tuple, Callable[..., Tensor]]" = OrderedDict()
COMPILED_KEYS: set[tuple] = set()
"""Keys of the steps compiled in this process (the ``auto`` rule counts them as free)."""


def compiled_step(spec: StepSpec, shapes: tuple) -> Callable[..., Tensor]:
    """``torch.compile(make_step(spec), fullgraph=True, dynamic=False)``, one per ``(spec, shapes)`` per process."""
    key = (spec, shapes)
    if key not in _CACHE:
        _CACHE[key] = torch.compile(make_step(spec), fullgraph=True, dynamic=False)
        while len(_CACHE) > MAX_CACHED:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]


# ------------------------------------------------------------- eligibility
def _mlp_of(model: nn.Module) -> MLP | None:
    base = getattr(model, "base", None) if not isinstance(model, MLP) else model
    return base if isinstance(base, MLP) else None


def mse_kind(task: Any) -> str | None:
    """``"mean"`` for a task whose loss is the plain MSE of one network, ``"members"`` for the sum of
    per-member MSEs of a stack (a task with ``compiled_loss = "members"``), else ``None``."""
    declared = getattr(task, "compiled_loss", None)
    if declared in ("mean", "members"):
        return declared
    from inrkit.signals.base import Signal  # a signal whose loss is the base class's plain MSE

    if isinstance(task, Signal) and type(task).loss is Signal.loss:
        return "mean"
    return None


def unsupported(model: nn.Module, task: Any, optimizer: torch.optim.Optimizer, callbacks: Sequence[Any],
                precision: str) -> str | None:
    """Why the compiled step cannot train this fit, or ``None`` when it can."""
    mlp = _mlp_of(model)
    if mlp is None:
        return f"{type(model).__name__} is not an inrkit MLP (or a stack of them)"
    if mlp.encoding is not None:
        return "a grid encoding"
    if bad := sorted(set(mlp.activations) - set(SUPPORTED)):
        return f"activation(s) {bad}"
    if precision not in ("fp32", "bf16"):
        return f"precision {precision}"
    kind = mse_kind(task)
    if kind is None or (kind == "members") != (mlp is not model):
        return f"{type(task).__name__} has no plain MSE loss"
    if any(hasattr(cb, "extra_loss") and getattr(cb, "adds_loss", True) for cb in callbacks):
        return "a callback adds to the loss"
    if len(optimizer.param_groups) != 1:
        return "several parameter groups"
    group = optimizer.param_groups[0]
    if isinstance(optimizer, torch.optim.Adam):
        if group.get("weight_decay") or group.get("amsgrad") or group.get("maximize"):
            return "Adam with weight decay, amsgrad or maximize"
    elif not (isinstance(optimizer, torch.optim.SGD) and not group.get("momentum") and not group.get("weight_decay")
              and not group.get("maximize")):
        return f"optimizer {type(optimizer).__name__}"
    return None


def compile_pays(model: nn.Module, points: int, steps: int) -> bool:
    """The ``auto`` rule: compile when the estimated seconds saved exceed the compile seconds.

    Saved seconds: ``steps x points x members x sum(hidden widths) x`` :data:`SAVED_NS_PER_ACTIVATION`
    ``x sqrt(32 / mean hidden width)``; cost: :data:`COMPILE_SECONDS` (a warm inductor cache). The rule reads only
    the model, the points and the steps, so a run's choice (and its bits) never depend on timing noise or on the
    state of the cache.
    """
    mlp = _mlp_of(model)
    if mlp is None or not mlp.hidden_widths:
        return False
    members = int(getattr(model, "copies", 1))
    hidden = mlp.hidden_widths
    per_activation = SAVED_NS_PER_ACTIVATION * 1e-9 * math.sqrt(32.0 * len(hidden) / sum(hidden))
    return steps * points * members * sum(hidden) * per_activation > COMPILE_SECONDS


# ------------------------------------------------------------------ runner
class CompiledStep:
    """Runs :func:`inrkit.train.fit`'s steps through the compiled step of its model (rebuilt when the model
    object or its parameter shapes change). ``compile_seconds`` accumulates the wall time of the calls that
    compiled (the first call of each new step in this process)."""

    def __init__(self, compile: bool = True, precision: str = "fp32") -> None:
        self.compile = compile  # False: the same step function run eagerly (tests, debugging)
        self.precision = precision  # of one network; a stack's own ``precision`` attribute rules its steps
        self.compile_seconds = 0.0
        self.compiled = 0
        self.compiled_calls = 0
        self._prepared: _Prepared | None = None

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, coords: Tensor,
                 targets: Tensor) -> Tensor:
        """One step; returns the per-member MSE before the update (a scalar for one network)."""
        prep = self._prepared
        if prep is None or prep.model is not model or prep.optimizer is not optimizer or not prep.current():
            prep = self._prepared = _Prepared(model, optimizer, self.precision)
        group = optimizer.param_groups[0]
        scalars = prep.scalars(float(group["lr"]))
        key = (prep.spec, prep.shapes + (tuple(coords.shape), tuple(targets.shape), str(coords.device)))
        fn = compiled_step(*key) if self.compile else make_step(prep.spec)
        first = self.compile and key not in COMPILED_KEYS
        t = time.perf_counter()
        with torch.no_grad():
            mse = fn(prep.weights, prep.biases, prep.m, prep.v, prep.steps, scalars, coords, targets, prep.fourier)
        self.compiled_calls += 1
        if first:
            COMPILED_KEYS.add(key)
            self.compile_seconds += time.perf_counter() - t
            self.compiled += 1
        return mse


class _Prepared:
    """What the steps of one model and optimiser share: the spec, the detached parameters, and the optimiser's
    state tensors (created as ``torch.optim.Adam`` creates them)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: str) -> None:
        mlp = _mlp_of(model)
        assert mlp is not None
        self.model, self.optimizer = model, optimizer
        stacked = mlp is not model
        n = len(mlp.weights)
        params = list(model.parameters())[:2 * n] if stacked else [*mlp.weights, *mlp.biases]
        group = optimizer.param_groups[0]
        self.adam = isinstance(optimizer, torch.optim.Adam)
        self.spec = StepSpec(tuple(mlp.activations), tuple(float(o) for o in mlp.omegas),
                             "adam" if self.adam else "sgd", tuple(group.get("betas", (0.9, 0.999))),
                             float(group.get("eps", 1e-8)), mlp.fourier is not None,
                             str(getattr(model, "precision", "fp32")) if stacked else precision)
        self.fourier = None
        if mlp.fourier is not None:
            self.fourier = model.get_buffer("member_buffer_0") if stacked else mlp.fourier
        self.params = params
        self.weights = [p.detach() for p in params[:n]]
        self.biases = [p.detach() for p in params[n:]]
        self.m: list[Tensor] = []
        self.v: list[Tensor] = []
        self.steps: list[Tensor] = []
        if self.adam:
            for p in params:
                state = optimizer.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.m.append(state["exp_avg"])
                self.v.append(state["exp_avg_sq"])
                self.steps.append(state["step"])
        self.shapes = (tuple(tuple(p.shape) for p in params),
                       None if self.fourier is None else tuple(self.fourier.shape))
        self.betas = tuple(group.get("betas", (0.9, 0.999)))

    def current(self) -> bool:
        """Whether the optimiser still holds the state tensors kept here (a callback may have replaced them)."""
        if not self.adam:
            return True
        state = self.optimizer.state
        return all(state[p].get("exp_avg") is m for p, m in zip(self.params, self.m))

    def scalars(self, lr: float) -> Tensor:
        """Adam's step size and sqrt of its second bias correction for the coming step (PyTorch computes both in
        float64 from the step count); SGD's learning rate."""
        device = self.params[0].device
        if not self.adam:
            return torch.tensor([lr], dtype=torch.float32, device=device)
        step = float(self.steps[0]) + 1.0
        beta1, beta2 = self.betas
        return torch.tensor([lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step)], dtype=torch.float32,
                            device=device)


def resolve_compile(mode: str | bool) -> CompileMode:
    """``FitConfig.compile`` as one of :data:`COMPILE_MODES` (``True``/``False``: ``on``/``off``);
    ``$INRKIT_COMPILE`` overrides ``auto``."""
    if isinstance(mode, bool):
        return "on" if mode else "off"
    env = os.environ.get("INRKIT_COMPILE", "").strip().lower()
    if mode == "auto":
        return next((m for m in COMPILE_MODES if m == env), "auto")
    return next((m for m in COMPILE_MODES if m == mode), "off")


__all__ = ["COMPILE_MODES", "CompiledStep", "StepSpec", "compile_pays", "compiled_step", "make_step",
           "mse_kind", "resolve_compile", "unsupported"]
