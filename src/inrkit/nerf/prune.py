"""Neuron pruning of NeRF MLPs (Ding et al. 2025) on the shared pruning graph, then retraining.

The prunable groups (trunk layers with their skip offsets, the feature layer, the view layers)
come from :meth:`inrkit.models.nerf_mlp.NeRFMLP.prunable_groups`; criteria from
:data:`inrkit.prune.CRITERIA`; the surgery is :func:`inrkit.models.surgery.remove_neurons`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from inrkit.errors import InvalidInputError
from inrkit.models.nerf_mlp import NeRFMLP
from inrkit.models.surgery import find_group
from inrkit.nerf.scene import Scene
from inrkit.nerf.train import TrainConfig, TrainResult, evaluate_nerf, train_nerf
from inrkit.prune.criteria import CRITERIA
from inrkit.prune.model import prune_group

MODES = ("retrain", "finetune", "scratch")


def prunable_layers(model: NeRFMLP) -> list[str]:
    """Names of the groups whose neurons can be removed, input to output."""
    return [g.name for g in model.prunable_groups()]


def prune_nerf(model: NeRFMLP, method: str, width: int, layers: list[str] | None = None,
               seed: int = 0) -> NeRFMLP:
    """A physically smaller copy of ``model``: every chosen layer wider than ``width`` keeps ``width`` neurons.

    Args:
        model: the NeRF MLP (left untouched).
        method: a criterion name of :data:`inrkit.prune.CRITERIA` (uniform, w_in, w_out, product,
            coreset, l1, ...); coreset also re-weights the kept outgoing columns.
        width: neurons to keep per layer (layers already that narrow are left as they are); a width
            not smaller than the widest chosen layer is refused (:class:`InvalidInputError`).
        layers: names from :func:`prunable_layers` (default: all of them).
        seed: seeds the random choices of uniform and coreset.
    """
    criterion = CRITERIA.get(method)
    if criterion.needs_points:
        raise InvalidInputError(f"criterion {method!r} needs sample points; NeRF pruning uses weight criteria")
    if width < 1:
        raise InvalidInputError(f"width must be >= 1, got {width}")
    small = model.copy()
    names = prunable_layers(small) if layers is None else list(layers)
    widest = max((find_group(small, name).width for name in names), default=0)
    if widest <= width:
        raise InvalidInputError(f"--width {width} is not smaller than the model (its widest prunable layer has "
                                f"{widest} neurons): nothing to prune; pass a width below {widest}")
    gen = torch.Generator().manual_seed(seed)
    for name in names:
        group = find_group(small, name)
        if group.width > width:
            prune_group(small, group, criterion, keep=width, generator=gen)
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


def prune_and_train(model: NeRFMLP, scene: Scene | None, method: str, width: int, steps: int = 0,
                    mode: str = "retrain", config: TrainConfig | None = None, seed: int = 0,
                    evaluate_pruned: bool = True) -> PruneResult:
    """Prune ``model`` to ``width`` with ``method``, then train the compact MLP ``steps`` steps.

    Modes: ``retrain`` restarts the full learning-rate schedule from the pruned weights;
    ``finetune`` continues at the final (low) learning rate; ``scratch`` re-initialises the
    compact architecture randomly (a control: the criterion then only sets the widths).
    Without a scene nothing is trained or evaluated.
    """
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    cfg = (config or TrainConfig()).resolved("mlp")
    start = time.perf_counter()
    small = prune_nerf(model, method, width, seed=seed)
    psnr_pruned = evaluate_nerf(small, scene, cfg)["psnr"] if scene is not None and evaluate_pruned else None
    if mode == "scratch":
        small = NeRFMLP(small.config, seed=seed)
    result = PruneResult(small, method, width, mode, model.num_params(), small.num_params(), psnr_pruned)
    if scene is not None and steps > 0:
        lr = cfg.lr_final if mode == "finetune" else cfg.lr
        run_cfg = replace(cfg, steps=steps, lr=lr, precrop_steps=0 if mode != "scratch" else steps // 10)
        result.train = train_nerf(small, scene, run_cfg)
        result.metrics = result.train.metrics
    elif scene is not None:
        result.metrics = {"psnr": result.psnr_pruned}
    result.seconds = time.perf_counter() - start
    return result
