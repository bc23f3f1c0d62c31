"""Neuron pruning of NeRF MLPs (Ding et al. 2025): criteria from :mod:`inrkit.prune.criteria`,
physical surgery that respects the skip connection, and retraining / fine-tuning.

Prunable hidden layers: every trunk layer, the linear feature layer and the view layers.
A neuron of layer ``l`` is a row of ``W_l``/``b_l``; its consumers are columns of the next
layer(s): for a trunk layer followed by the skip concatenation ``[x_enc, h]`` those columns
sit after the ``pos_dim`` encoding columns; the last trunk layer feeds both the density head
and the feature layer; the feature layer feeds the first view layer's leading columns.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InvalidInputError
from ..prune.criteria import METHODS as CRITERIA
from ..prune.criteria import select_neurons
from .model import NeRFMLP
from .scene import Scene
from .train import TrainConfig, TrainResult, evaluate_nerf, train_nerf

METHODS = tuple(m for m in ("uniform", "w_in", "w_out", "product", "coreset", "l1") if m in CRITERIA)
MODES = ("retrain", "finetune", "scratch")


def prunable_layers(model: NeRFMLP) -> list[str]:
    """Names of the hidden layers whose neurons can be removed, input to output."""
    return [f"trunk.{i}" for i in range(len(model.trunk))] + ["feature"] + [f"views.{j}" for j in range(len(model.views))]


def _layer(model: NeRFMLP, name: str) -> nn.Linear:
    return model.get_submodule(name)


def consumers(model: NeRFMLP, name: str) -> list[tuple[str, int]]:
    """``(layer name, column offset)`` of every layer that reads ``name``'s neurons."""
    cfg = model.config
    if name.startswith("trunk."):
        i = int(name.split(".")[1])
        if i == len(model.trunk) - 1:
            return [("sigma", 0), ("feature", 0)]
        return [(f"trunk.{i + 1}", cfg.pos_dim if i in cfg.skips else 0)]
    if name == "feature":
        return [("views.0", 0)]
    if name.startswith("views."):
        j = int(name.split(".")[1])
        return [(f"views.{j + 1}", 0)] if j < len(model.views) - 1 else [("rgb", 0)]
    raise InvalidInputError(f"{name!r} is not a prunable NeRF layer; choose from {prunable_layers(model)}")


def layer_matrices(model: NeRFMLP, name: str) -> tuple[Tensor, Tensor]:
    """``(w_in [n, in], w_out [out, n])`` of a hidden layer; ``w_out`` stacks all consumers' columns."""
    n = _layer(model, name).out_features
    w_in = _layer(model, name).weight.detach()
    w_out = torch.cat([_layer(model, c).weight.detach()[:, off:off + n] for c, off in consumers(model, name)], 0)
    return w_in, w_out


def _replace(model: NeRFMLP, name: str, weight: Tensor, bias: Tensor) -> None:
    new = nn.Linear(weight.shape[1], weight.shape[0]).to(weight.device)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias)
    parent, _, child = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    if isinstance(owner, nn.ModuleList):
        owner[int(child)] = new
    else:
        setattr(owner, child, new)


def keep_nerf_neurons(model: NeRFMLP, name: str, keep_idx: Tensor, out_scale: Tensor | None = None) -> NeRFMLP:
    """Keep only neurons ``keep_idx`` of hidden layer ``name`` (in place, returned).

    Rows of the layer's ``W``/``b`` are kept; every consumer keeps the matching columns
    (shifted by the skip offset), multiplied by ``out_scale`` when given (coreset).
    """
    layer = _layer(model, name)
    n = layer.out_features
    keep_idx = keep_idx.to(layer.weight.device).long()
    if keep_idx.numel() == 0 or int(keep_idx.min()) < 0 or int(keep_idx.max()) >= n:
        raise InvalidInputError(f"keep_idx must hold indices in [0, {n}) for layer {name}")
    with torch.no_grad():
        for cname, off in consumers(model, name):
            w = _layer(model, cname).weight.detach()
            cols = w[:, off:off + n][:, keep_idx]
            if out_scale is not None:
                cols = cols * out_scale.to(cols)[None, :]
            _replace(model, cname, torch.cat([w[:, :off], cols, w[:, off + n:]], 1), _layer(model, cname).bias.detach())
        _replace(model, name, layer.weight.detach()[keep_idx], layer.bias.detach()[keep_idx])
    _sync_config(model)
    return model


def _sync_config(model: NeRFMLP) -> None:
    cfg = model.config
    cfg.trunk_widths = [m.out_features for m in model.trunk]
    cfg.feature_width = model.feature.out_features
    cfg.view_widths = [m.out_features for m in model.views]


def prune_nerf(model: NeRFMLP, method: str, width: int, layers: list[str] | None = None,
               seed: int = 0) -> NeRFMLP:
    """A physically smaller copy of ``model``: every chosen layer wider than ``width`` keeps ``width`` neurons.

    Args:
        method: a criterion of :func:`inrkit.prune.criteria.select_neurons` (uniform, w_in, w_out,
            product, coreset, ...); coreset also re-weights the kept outgoing columns.
        width: neurons to keep per layer (layers already that narrow are left as they are).
        layers: names from :func:`prunable_layers` (default: all of them).
        seed: seeds the random choices of uniform and coreset.
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown pruning method {method!r}; choose from {', '.join(METHODS)}")
    if width < 1:
        raise InvalidInputError(f"width must be >= 1, got {width}")
    small = model.copy()
    names = prunable_layers(small) if layers is None else list(layers)
    gen = torch.Generator().manual_seed(seed)
    for name in names:
        w_in, w_out = layer_matrices(small, name)
        if w_in.shape[0] > width:
            keep, scale = select_neurons(method, w_in, w_out, width, gen)
            keep_nerf_neurons(small, name, keep, scale)
    return small


@dataclass
class PruneResult:
    """A pruned (and possibly retrained) NeRF with before/after size and quality."""

    model: NeRFMLP
    method: str
    width: int
    mode: str
    params_before: int
    params: int
    psnr_pruned: float | None = None
    train: TrainResult | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def prune_and_train(model: NeRFMLP, scene: Scene | None, method: str, width: int, iters: int = 0,
                    mode: str = "retrain", config: TrainConfig | None = None, seed: int = 0,
                    evaluate_pruned: bool = True) -> PruneResult:
    """Prune ``model`` to ``width`` with ``method``, then train the compact MLP ``iters`` steps.

    Modes: ``retrain`` restarts the full learning-rate schedule from the pruned weights;
    ``finetune`` continues at the final (low) learning rate; ``scratch`` re-initialises the
    compact architecture randomly (a control: the criterion then only sets the widths).
    Without a scene nothing is trained or evaluated.
    """
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    cfg = config or TrainConfig()
    start = time.perf_counter()
    small = prune_nerf(model, method, width, seed=seed)
    psnr_pruned = evaluate_nerf(small, scene, cfg)["psnr"] if scene is not None and evaluate_pruned else None
    if mode == "scratch":
        small = NeRFMLP(small.config, seed=seed)
    result = PruneResult(small, method, width, mode, model.num_params(), small.num_params(), psnr_pruned)
    if scene is not None and iters > 0:
        lr = cfg.lr_final if mode == "finetune" else cfg.lr
        run_cfg = TrainConfig(**{**cfg.__dict__, "iters": iters, "lr": lr,
                                 "precrop_iters": 0 if mode != "scratch" else cfg.precrop_iters})
        result.train = train_nerf(small, scene, run_cfg)
        result.metrics = result.train.metrics
    elif scene is not None:
        result.metrics = {"psnr": result.psnr_pruned}
    result.seconds = time.perf_counter() - start
    return result
