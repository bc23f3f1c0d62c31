"""Functional helpers for meta-learning (``torch.func``): stacked parameters, per-task losses and
the second-order MAML gradient.

A task batch is a dict of stacked parameters ``{name: [B, ...]}``; one ``vmap``-ed call of
``torch.func.functional_call`` evaluates all B networks at once. The first-order inner loop
trains through :func:`inrkit.train.fit` (see :mod:`inrkit.meta.batched`); only MAML, which
differentiates through its SGD inner loop, stays functional here.
"""
from __future__ import annotations

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
