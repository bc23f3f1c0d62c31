"""Batched functional training of one MLP on many tasks (``torch.func``).

A task batch is a dict of stacked parameters ``{name: [B, ...]}``; one ``vmap``-ed call of
``torch.func.functional_call`` evaluates all B networks at once, so inner loops run for a
whole meta-batch of volumes in one go.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

Params = dict[str, Tensor]


def param_dict(model: nn.Module) -> Params:
    """Detached copies of the model's parameters by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def stack_params(params: Params, n: int) -> Params:
    """``n`` copies of every parameter, stacked on a new leading axis."""
    return {k: v.unsqueeze(0).expand(n, *v.shape).clone() for k, v in params.items()}


def mse_fn(model: nn.Module) -> Callable[[Params, Tensor, Tensor], Tensor]:
    """``loss(params, x [N, d], y [N, C]) -> MSE`` of ``model`` with ``params`` substituted."""
    def loss(params: Params, x: Tensor, y: Tensor) -> Tensor:
        return torch.mean((functional_call(model, params, (x,)) - y) ** 2)
    return loss


@dataclass
class AdamState:
    """Per-task Adam moments for stacked parameters."""

    m: Params
    v: Params
    t: int = 0

    @classmethod
    def zeros_like(cls, params: Params) -> "AdamState":
        return cls({k: torch.zeros_like(p) for k, p in params.items()},
                   {k: torch.zeros_like(p) for k, p in params.items()})


def adam_update(params: Params, grads: Params, state: AdamState, lr: float,
                betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Params:
    """One Adam step (as ``torch.optim.Adam``), out of place; updates ``state``."""
    b1, b2 = betas
    state.t += 1
    c1, c2 = 1.0 - b1 ** state.t, 1.0 - b2 ** state.t
    out = {}
    for k, p in params.items():
        g = grads[k]
        state.m[k] = b1 * state.m[k] + (1.0 - b1) * g
        state.v[k] = b2 * state.v[k] + (1.0 - b2) * g * g
        out[k] = p - lr * (state.m[k] / c1) / ((state.v[k] / c2).sqrt() + eps)
    return out


def inner_loop(model: nn.Module, params: Params, x: Tensor, y: Tensor, steps: int, lr: float,
               optimizer: str = "adam", batch: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Params, Tensor]:
    """Adapt stacked ``params [B, ...]`` to targets ``y [B, N, C]`` at shared coords ``x [N, d]``.

    Runs ``steps`` Adam or SGD steps without building a graph (first-order use).
    Returns the adapted parameters and the loss per task before the first step ``[B]``.
    """
    step_fn = vmap(grad_and_value(mse_fn(model)), in_dims=(0, None, 0))
    state = AdamState.zeros_like(params) if optimizer == "adam" else None
    first = None
    n = x.shape[0]
    for _ in range(steps):
        if batch is not None and batch < n:
            idx = torch.randint(n, (batch,), generator=generator).to(x.device)
            xb, yb = x[idx], y[:, idx]
        else:
            xb, yb = x, y
        grads, loss = step_fn(params, xb, yb)
        first = loss.detach() if first is None else first
        if state is not None:
            params = adam_update(params, grads, state, lr)
        else:
            params = {k: p - lr * grads[k] for k, p in params.items()}
    if first is None:
        first = task_losses(model, params, x, y)
    return {k: v.detach() for k, v in params.items()}, first


def task_losses(model: nn.Module, params: Params, x: Tensor, y: Tensor) -> Tensor:
    """MSE per task ``[B]`` of stacked ``params`` on ``y [B, N, C]``."""
    with torch.no_grad():
        return vmap(mse_fn(model), in_dims=(0, None, 0))(params, x, y)


def maml_grad(model: nn.Module, theta: Params, x: Tensor, y: Tensor, steps: int,
              lr: float) -> tuple[Params, Tensor]:
    """Second-order MAML meta-gradient (SGD inner loop, differentiated through).

    Returns the gradient of the mean post-adaptation loss over tasks with respect to the
    shared ``theta`` and the post-adaptation losses ``[B]``.
    """
    loss = mse_fn(model)

    def adapted_loss(th: Params, xt: Tensor, yt: Tensor) -> Tensor:
        phi = th
        for _ in range(steps):
            g = grad(loss)(phi, xt, yt)
            phi = {k: phi[k] - lr * g[k] for k in phi}
        return loss(phi, xt, yt)

    grads, losses = vmap(grad_and_value(adapted_loss), in_dims=(None, None, 0))(theta, x, y)
    return {k: g.mean(0) for k, g in grads.items()}, losses.detach()
