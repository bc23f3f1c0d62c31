"""Training, evaluation and novel-view rendering of a NeRF on a Blender-format scene.

Training is :func:`inrkit.train.fit` on a :class:`RayTask` (random ray batches with the
precrop schedule, coarse + fine rendering, squared colour error; evaluation on test views);
:func:`train_nerf` is a thin wrapper that maps :class:`TrainConfig` onto a ``FitConfig``.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_RAY_SAMPLES, check_range
from inrkit.metrics import psnr_from_mse
from inrkit.nerf.grid_field import GridNeRF, GridNeRFConfig
from inrkit.nerf.march import render_grid_chunked, render_grid_rays
from inrkit.nerf.render import render_chunked, render_rays
from inrkit.nerf.scene import Scene, aabb_near_far, pixel_rays, sphere_pose
from inrkit.train.fit import FitConfig, fit
from inrkit.utils import atomic_path, resolve_device, to_uint8

ARCHS = ("grid", "mlp")
"""Radiance-field architectures: ``grid`` (:class:`~inrkit.nerf.grid_field.GridNeRF`, the default) and ``mlp``
(the NeRF MLP, :class:`~inrkit.nerf.model.NeRFMLP`)."""

ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    # instant-NGP's optimiser (Adam, lr 1e-2 for tables and MLPs, eps 1e-15), no coarse/fine passes, no precrop;
    # the steps fit 15 minutes on one CPU thread on lego_100 (docs/nerf.md)
    "grid": {"steps": 3000, "batch_size": 2048, "lr": 1e-2, "lr_final": 1e-3, "encoding_lr": 1e-2,
             "n_samples": None, "n_importance": 0, "precrop_steps": 0},
    # the paper's optimiser (lr 5e-4 -> 5e-5) and sampling (64 + 64; the paper fine pass has 128) are GPU-sized;
    # the defaults are the CPU recipe of docs/nerf.md
    "mlp": {"steps": 4000, "batch_size": 256, "lr": 2e-3, "lr_final": 2e-4, "encoding_lr": None,
            "n_samples": 24, "n_importance": 24, "precrop_steps": None},
}
"""Per-architecture defaults of the :class:`TrainConfig` fields left ``None`` (grid ``n_samples``: one
step per pixel footprint at the scene centre, :func:`grid_samples`)."""


@dataclass
class TrainConfig:
    """NeRF optimisation settings; a field left ``None`` takes its architecture's default (:data:`ARCH_DEFAULTS`).

    Args:
        steps: optimisation steps (grid 3000, mlp 4000).
        batch_size: random rays per step, from all training images (grid 2048, mlp 256).
        lr: Adam's initial learning rate, decayed exponentially to ``lr_final`` (grid 1e-2, mlp 2e-3).
        lr_final: Adam's learning rate at the last step (grid 1e-3, mlp 2e-4).
        encoding_lr: initial learning rate of the grid tables (grid: 1e-2, as instant-NGP).
        n_samples: mlp: stratified (coarse) samples per ray (24); grid: marching steps along the scene
            box's diagonal (none: one per pixel footprint at the scene centre).
        n_importance: hierarchical (fine) samples per ray of the mlp (24); the grid has none.
        coarse_weight: weight of the mlp's coarse pass loss.
        precrop_steps: the first this many steps sample rays only from the image centre (as NeRF
            does on Blender scenes; mlp: ``steps // 10``, grid: 0).
        precrop_frac: side of that centre as a fraction of the image side.
        occupancy_every: steps between updates of the grid's occupancy grid (instant-NGP: 16).
        seed: ray sampling and stratified/hierarchical jitter.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        eval_views: at most this many test views are rendered for the final PSNR (None: all; 0: none).
        eval_every: also evaluate every this many steps (0: only at the end); not counted as training time.
        eval_chunk: rays per rendering chunk at evaluation.
        log_every: steps between history rows.
        progress: show a progress bar.
        time_budget: stop after this many seconds of training.
    """

    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_final: float | None = None
    encoding_lr: float | None = None
    n_samples: int | None = None
    n_importance: int | None = None
    coarse_weight: float = 1.0
    precrop_steps: int | None = None
    precrop_frac: float = 0.5
    occupancy_every: int = 16
    seed: int = 0
    device: str | None = None
    eval_views: int | None = None
    eval_every: int = 0
    eval_chunk: int = 4096
    log_every: int = 50
    progress: bool = True
    time_budget: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise :class:`~inrkit.errors.InvalidInputError` on bad settings; returns ``self``."""
        check_range("steps", self.steps, 0)
        check_range("batch_size", self.batch_size, 1)
        for name in ("lr", "lr_final", "encoding_lr"):
            check_range(name, getattr(self, name), 0, low_open=True)
        check_range("precrop_frac", self.precrop_frac, 0, 1, low_open=True, optional=False)
        check_range("coarse_weight", self.coarse_weight, 0, optional=False)
        check_range("n_samples", self.n_samples, 2, MAX_RAY_SAMPLES)
        check_range("n_importance", self.n_importance, 0, MAX_RAY_SAMPLES)
        check_range("precrop_steps", self.precrop_steps, 0)
        check_range("occupancy_every", self.occupancy_every, 1, optional=False)
        check_range("eval_views", self.eval_views, 0)
        check_range("eval_every", self.eval_every, 0, optional=False)
        check_range("eval_chunk", self.eval_chunk, 1, optional=False)
        check_range("log_every", self.log_every, 1, optional=False)
        check_range("seed", self.seed, 0, optional=False)
        check_range("time_budget", self.time_budget, 0, low_open=True)
        return self

    def resolved(self, arch: str, scene_meta: dict | None = None) -> "TrainConfig":
        """A copy with every ``None`` default filled for ``arch`` (grid ``n_samples`` from ``scene_meta``)."""
        if arch not in ARCH_DEFAULTS:
            raise InvalidInputError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
        filled = {k: v for k, v in ARCH_DEFAULTS[arch].items() if getattr(self, k) is None}
        cfg = replace(self, **filled)
        if cfg.precrop_steps is None:
            cfg.precrop_steps = (cfg.steps or 0) // 10
        if cfg.n_samples is None:
            cfg.n_samples = grid_samples(scene_meta or {})
        return cfg.validate()

    def fit_config(self) -> FitConfig:
        """The :class:`~inrkit.train.FitConfig` of this (resolved) training (exponential decay ``lr -> lr_final``)."""
        if self.steps is None or self.lr is None or self.lr_final is None:
            raise InvalidInputError("resolve the config for an architecture first (TrainConfig.resolved)")
        grid = self.encoding_lr is not None
        return FitConfig(steps=self.steps, lr=self.lr, encoding_lr=self.encoding_lr,
                         adam_eps=1e-15 if grid else 1e-8, schedule="exponential",
                         lr_min_factor=self.lr_final / self.lr, batch_size=self.batch_size, seed=self.seed,
                         log_every=self.log_every, eval_every=self.eval_every, progress=self.progress,
                         time_budget=self.time_budget, device=self.device, evaluate=self.eval_views != 0)


def arch_of(model: nn.Module) -> str:
    """``grid`` for a :class:`GridNeRF`, else ``mlp``."""
    return "grid" if isinstance(model, GridNeRF) else "mlp"


def pixel_footprint(scene_meta: dict) -> float:
    """World size of one pixel at the scene centre (camera distance / focal length in pixels)."""
    return float(scene_meta.get("radius", 4.0)) / float(scene_meta.get("focal", 100.0))


def scene_box(scene_meta: dict) -> list[list[float]]:
    """The scene's ``aabb``, or instant-NGP's box for Blender scenes (+-1.5)."""
    box = scene_meta.get("aabb")
    return [list(map(float, c)) for c in box] if box is not None else [[-1.5] * 3, [1.5] * 3]


def grid_samples(scene_meta: dict) -> int:
    """Marching steps along the box diagonal: one per pixel footprint at the scene centre."""
    lo, hi = np.asarray(scene_box(scene_meta))
    steps = float(np.linalg.norm(hi - lo)) / pixel_footprint(scene_meta)
    return int(min(max(round(steps), 16), MAX_RAY_SAMPLES))


def grid_field_config(scene_meta: dict, hidden: int = 64) -> GridNeRFConfig:
    """The grid field for a scene: its box, 8 levels from 16 cells up to the power of two that gives at least
    one cell per pixel footprint along the box's longest side (128 at 100 px, 256 at 200 px on Blender scenes)."""
    box = scene_box(scene_meta)
    side = max(hi - lo for lo, hi in zip(*box))
    finest = 2 ** math.ceil(math.log2(max(side / pixel_footprint(scene_meta), 32.0)))
    return GridNeRFConfig(levels=8, base=16, finest=int(min(finest, 2048)), table_size=1 << 18, hidden=hidden,
                          aabb=box)


def grid_step(model: GridNeRF, n_samples: int) -> float:
    """World-space marching step of ``n_samples`` steps along the model's box diagonal."""
    return float((model.aabb[1] - model.aabb[0]).norm()) / n_samples


@dataclass
class TrainResult:
    """What :func:`train_nerf` returns: the model, the history of :func:`inrkit.train.fit`
    (rows ``{step, loss, psnr, seconds}``), test metrics and timing."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0


def scene_rays(scene_meta: dict, poses: np.ndarray, device: torch.device) -> dict[str, Tensor]:
    """Flattened rays ``o, d, near, far`` of every pixel of the given poses ``[N, 4, 4]``."""
    o, d = pixel_rays(poses, scene_meta["height"], scene_meta["width"], scene_meta["focal"])
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    if scene_meta.get("aabb") is not None:
        near, far = aabb_near_far(o, d, np.asarray(scene_meta["aabb"]), scene_meta["near"], scene_meta["far"])
    else:
        near, far = np.full(len(o), scene_meta["near"]), np.full(len(o), scene_meta["far"])
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return {"o": as_t(o), "d": as_t(d), "near": as_t(near), "far": as_t(far)}


def _centre_indices(n_img: int, h: int, w: int, frac: float) -> Tensor:
    dh, dw = max(1, int(h * frac / 2)), max(1, int(w * frac / 2))
    rows = torch.arange(h // 2 - dh, h // 2 + dh)
    cols = torch.arange(w // 2 - dw, w // 2 + dw)
    pix = (rows[:, None] * w + cols[None, :]).reshape(-1)
    return (torch.arange(n_img)[:, None] * (h * w) + pix[None, :]).reshape(-1)




class RayTask:
    """NeRF training as a task of :func:`inrkit.train.fit`: random rays of the train split.

    A batch is ``batch_size`` rays drawn from the image centres (``precrop_frac``) during the
    first ``precrop_steps`` batches, then from all pixels. The NeRF MLP renders them with a coarse
    and a fine pass (stratified and hierarchical jitter from the same generator; loss: fine squared
    colour error plus ``coarse_weight`` times the coarse one); the grid field by marching with its
    occupancy grid (:mod:`inrkit.nerf.march`), whose update runs every ``occupancy_every`` batches
    (all cells during the first 256, as instant-NGP). PSNR is of colours in [0, 1].

    Args:
        scene: the scene (train split for training, test split for :meth:`evaluate`).
        config: sampling, rendering and evaluation settings (a :class:`TrainConfig` resolved for the model).
        device: where the rays live.
    """

    supports_bf16 = False
    data_range = 1.0
    WARMUP = 256  # instant-NGP updates every occupancy cell during the first 256 steps

    def __init__(self, scene: Scene, config: TrainConfig, device: torch.device) -> None:
        self.scene, self.config = scene, config
        train = scene.split("train")
        self.rays = scene_rays(scene.metadata(), train.poses, device)
        self.target = torch.as_tensor(train.images.reshape(-1, 3), device=device)
        self.precrop = config.precrop_steps or 0
        self.centre = _centre_indices(len(train.images), scene.height, scene.width, config.precrop_frac)
        self.batches = 0
        self.occupancy: list[float] = []

    def num_samples(self) -> int:
        """Rays (pixels) of the train split."""
        return int(self.target.shape[0])

    def metadata(self) -> dict[str, Any]:
        """The scene's camera metadata."""
        return self.scene.metadata()

    def train_batch(self, batch_size: int | None, generator: torch.Generator, device: torch.device) -> tuple:
        """Rays ``(o, d, near, far)``, their colours and the generator of the rendering jitter."""
        size = batch_size or self.config.batch_size or 1024
        if self.batches < self.precrop:
            idx = self.centre[torch.randint(len(self.centre), (size,), generator=generator)]
        else:
            idx = torch.randint(self.num_samples(), (size,), generator=generator)
        self.batches += 1
        idx = idx.to(device)
        r = self.rays
        return r["o"][idx], r["d"][idx], r["near"][idx], r["far"][idx], self.target[idx], generator

    def loss(self, model: nn.Module, o: Tensor, d: Tensor, near: Tensor, far: Tensor, target: Tensor,
             generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Squared colour error (mlp: coarse + fine) and the (fine) MSE."""
        cfg = self.config
        if isinstance(model, GridNeRF):
            step = grid_step(model, int(cfg.n_samples or 2))
            if (self.batches - 1) % cfg.occupancy_every == 0:
                self.occupancy.append(model.update_occupancy(generator, all_cells=self.batches <= self.WARMUP))
            out = render_grid_rays(model, o, d, near, far, step, perturb=True, generator=generator)
            mse = torch.mean((out["rgb"] - target) ** 2)
            return mse, mse
        out = render_rays(model, o, d, near, far, int(cfg.n_samples or 2), int(cfg.n_importance or 0),
                          perturb=True, generator=generator)
        mse = torch.mean((out["rgb"] - target) ** 2)
        if "rgb_coarse" not in out:
            return mse, mse
        return mse + cfg.coarse_weight * torch.mean((out["rgb_coarse"] - target) ** 2), mse

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        """Test-view PSNR (:func:`evaluate_nerf`); nothing when ``eval_views`` is 0."""
        return evaluate_nerf(model, self.scene, self.config) if self.config.eval_views != 0 else {}


def train_nerf(model: nn.Module, scene: Scene, config: TrainConfig | None = None) -> TrainResult:
    """Optimise ``model`` (in place) on the scene's train split with :func:`inrkit.train.fit`.

    Args:
        model: the NeRF MLP or the grid field.
        scene: a loaded Blender-format scene.
        config: settings; see :class:`TrainConfig` (``None`` fields: the model's architecture defaults).
    Returns:
        The model, the fit history, test-view metrics and the training seconds (evaluation excluded).
    """
    cfg = (config or TrainConfig()).resolved(arch_of(model), scene.metadata())
    device = resolve_device(cfg.device)
    model.to(device).train()
    task = RayTask(scene, cfg, device)
    result = fit(model, task, cfg.fit_config())
    metrics = dict(result.metrics)
    if task.occupancy:
        metrics["occupied_fraction"] = task.occupancy[-1]
    return TrainResult(result.model, result.history, metrics, result.steps, result.seconds)


def evaluate_nerf(model: nn.Module, scene: Scene, config: TrainConfig | None = None,
                  split: str = "test") -> dict[str, Any]:
    """Mean PSNR (dB, colours in [0, 1]) of rendered ``split`` views against the images."""
    cfg = (config or TrainConfig()).resolved(arch_of(model), scene.metadata())
    data = scene.split(split)
    n = len(data.images) if cfg.eval_views is None else min(cfg.eval_views, len(data.images))
    pick = np.linspace(0, len(data.images) - 1, n).round().astype(int)
    meta = scene.metadata()
    psnrs = []
    rays = int(meta["height"]) * int(meta["width"])
    with tqdm(total=n * rays, desc=f"evaluate {n} {split} views", unit="ray", unit_scale=True, file=sys.stderr,
              disable=not cfg.progress, leave=False, dynamic_ncols=True) as bar:
        for k in pick:
            img = render_image(model, data.poses[k], meta, int(cfg.n_samples or 2), int(cfg.n_importance or 0),
                               cfg.eval_chunk, on_chunk=bar.update)
            psnrs.append(psnr_from_mse(float(np.mean((img - data.images[k]) ** 2)), 1.0))
    return {"psnr": float(np.mean(psnrs)), "psnr_per_view": psnrs, "views": [int(k) for k in pick], "split": split}


def render_image(model: nn.Module, c2w: np.ndarray, meta: dict, n_samples: int = 64, n_importance: int = 64,
                 chunk: int = 4096, on_chunk: Callable[[int], Any] | None = None) -> np.ndarray:
    """Render one view ``[H, W, 3]`` (float32 in [0, 1]) for camera-to-world ``c2w`` and camera ``meta``
    (``on_chunk(rays)`` after each chunk of rays)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rays = scene_rays(meta, np.asarray(c2w)[None], device)
    if isinstance(model, GridNeRF):
        out = render_grid_chunked(model, rays["o"], rays["d"], rays["near"], rays["far"], grid_step(model, n_samples),
                                  chunk=chunk, on_chunk=on_chunk, white_background=meta.get("white_background", True))
        model.train(was_training)
        return out["rgb"].clamp(0, 1).reshape(meta["height"], meta["width"], 3).cpu().numpy()
    out = render_chunked(model, rays["o"], rays["d"], rays["near"], rays["far"], chunk=chunk, on_chunk=on_chunk,
                         n_samples=n_samples, n_importance=n_importance,
                         white_background=meta.get("white_background", True))
    model.train(was_training)
    return out["rgb"].clamp(0, 1).reshape(meta["height"], meta["width"], 3).cpu().numpy()


def resized_meta(meta: dict, size: int | None) -> dict:
    """Camera metadata rescaled so the longer image side is ``size`` pixels."""
    if size is None:
        return dict(meta)
    if size < 1:
        raise InvalidInputError(f"size must be positive, got {size}")
    scale = size / max(meta["height"], meta["width"])
    return {**meta, "height": max(1, round(meta["height"] * scale)), "width": max(1, round(meta["width"] * scale)),
            "focal": meta["focal"] * scale}


def render_turntable(model: nn.Module, meta: dict, path: str | os.PathLike, frames: int = 36, elevation: float = 30.0,
                     radius: float | None = None, n_samples: int = 64, n_importance: int = 64,
                     fps: int = 12, progress: bool = True) -> Path:
    """Render ``frames`` views around the scene into an animated GIF (Pillow)."""
    if frames < 1:
        raise InvalidInputError("frames must be >= 1")
    radius = float(radius or meta.get("radius", 4.0))
    images = []
    for k in tqdm(range(frames), desc="turntable", disable=not progress, leave=False):
        pose = sphere_pose(360.0 * k / frames, elevation, radius)
        images.append(Image.fromarray(to_uint8(render_image(model, pose, meta, n_samples, n_importance))))
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0)
    return path
