"""Training, evaluation and novel-view rendering of a NeRF on a Blender-format scene.

Training is :func:`inrkit.train.fit` on a :class:`RayTask` (random ray batches with the
precrop schedule, coarse + fine rendering, squared colour error; evaluation on test views);
:func:`train_nerf` is a thin wrapper that maps :class:`TrainConfig` onto a ``FitConfig``.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
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
from inrkit.nerf.render import render_chunked, render_rays
from inrkit.nerf.scene import Scene, aabb_near_far, pixel_rays, sphere_pose
from inrkit.train.fit import FitConfig, fit
from inrkit.utils import atomic_path, resolve_device, to_uint8


@dataclass
class TrainConfig:
    """NeRF optimisation settings (paper: 4096 rays, 64 + 128 samples, lr 5e-4 -> 5e-5).

    Args:
        iters: optimisation steps.
        batch_rays: random rays per step (from all training images).
        lr: Adam's initial learning rate, decayed exponentially to ``lr_final``.
        lr_final: Adam's learning rate at the last step.
        n_samples: stratified (coarse) samples per ray.
        n_importance: hierarchical (fine) samples per ray, placed by the coarse pass's weights.
        coarse_weight: weight of the coarse pass's loss.
        precrop_iters: the first this many steps sample rays only from the image centre (as NeRF
            does on Blender scenes); ``None`` means ``iters // 10``.
        precrop_frac: side of that centre as a fraction of the image side.
        seed: ray sampling and stratified/hierarchical jitter.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        eval_views: at most this many test views are rendered for the final PSNR (None: all; 0: none).
        eval_chunk: rays per rendering chunk at evaluation.
        log_every: steps between history rows.
        progress: show a progress bar.
        time_budget: stop after this many seconds of training.
    """

    iters: int = 2000
    batch_rays: int = 1024
    lr: float = 5e-4
    lr_final: float = 5e-5
    n_samples: int = 64
    n_importance: int = 64
    coarse_weight: float = 1.0
    precrop_iters: int | None = None
    precrop_frac: float = 0.5
    seed: int = 0
    device: str | None = None
    eval_views: int | None = None
    eval_chunk: int = 4096
    log_every: int = 50
    progress: bool = True
    time_budget: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise :class:`~inrkit.errors.InvalidInputError` on bad settings; returns ``self``."""
        if self.iters < 0 or self.batch_rays < 1 or self.n_samples < 2 or self.n_importance < 0:
            raise InvalidInputError("need iters >= 0, batch_rays >= 1, n_samples >= 2, n_importance >= 0")
        if not (self.lr > 0 and self.lr_final > 0):
            raise InvalidInputError("learning rates must be positive")
        if not 0 < self.precrop_frac <= 1:
            raise InvalidInputError("precrop_frac must be in (0, 1]")
        if self.log_every < 1:
            raise InvalidInputError("log_every must be >= 1")
        for name in ("lr", "lr_final", "precrop_frac"):
            check_range(name, getattr(self, name), 0, low_open=True, optional=False)
        check_range("coarse_weight", self.coarse_weight, 0, optional=False)
        check_range("n_samples", self.n_samples, 2, MAX_RAY_SAMPLES, optional=False)
        check_range("n_importance", self.n_importance, 0, MAX_RAY_SAMPLES, optional=False)
        check_range("precrop_iters", self.precrop_iters, 0)
        check_range("eval_views", self.eval_views, 0)
        check_range("eval_chunk", self.eval_chunk, 1, optional=False)
        check_range("seed", self.seed, 0, optional=False)
        check_range("time_budget", self.time_budget, 0, low_open=True)
        return self

    def fit_config(self) -> FitConfig:
        """The :class:`~inrkit.train.FitConfig` of this training (exponential decay ``lr -> lr_final``)."""
        return FitConfig(steps=self.iters, lr=self.lr, schedule="exponential", lr_min_factor=self.lr_final / self.lr,
                         batch_size=self.batch_rays, seed=self.seed, log_every=self.log_every,
                         progress=self.progress, time_budget=self.time_budget, device=self.device,
                         evaluate=self.eval_views != 0)


@dataclass
class TrainResult:
    """What :func:`train_nerf` returns: the model, the history of :func:`inrkit.train.fit`
    (rows ``{step, loss, psnr, seconds}``), test metrics and timing."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    iters: int = 0
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
    first ``precrop`` batches, then from all pixels; the loss renders them (coarse and fine
    pass, stratified and hierarchical jitter from the same generator) and is the fine squared
    colour error plus ``coarse_weight`` times the coarse one. PSNR is of colours in [0, 1].

    Args:
        scene: the scene (train split for training, test split for :meth:`evaluate`).
        config: sampling, rendering and evaluation settings (see :class:`TrainConfig`).
        device: where the rays live.
    """

    supports_bf16 = False
    data_range = 1.0

    def __init__(self, scene: Scene, config: TrainConfig, device: torch.device) -> None:
        self.scene, self.config = scene, config
        train = scene.split("train")
        self.rays = scene_rays(scene.metadata(), train.poses, device)
        self.target = torch.as_tensor(train.images.reshape(-1, 3), device=device)
        self.precrop = config.iters // 10 if config.precrop_iters is None else config.precrop_iters
        self.centre = _centre_indices(len(train.images), scene.height, scene.width, config.precrop_frac)
        self.batches = 0

    def num_samples(self) -> int:
        """Rays (pixels) of the train split."""
        return int(self.target.shape[0])

    def metadata(self) -> dict[str, Any]:
        """The scene's camera metadata."""
        return self.scene.metadata()

    def train_batch(self, batch_size: int | None, generator: torch.Generator, device: torch.device) -> tuple:
        """Rays ``(o, d, near, far)``, their colours and the generator of the rendering jitter."""
        size = batch_size or self.config.batch_rays
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
        """Coarse + fine squared colour error and the fine pass's MSE."""
        cfg = self.config
        out = render_rays(model, o, d, near, far, cfg.n_samples, cfg.n_importance, perturb=True, generator=generator)
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
        model: the NeRF MLP.
        scene: a loaded Blender-format scene.
        config: settings; see :class:`TrainConfig`.
    Returns:
        The model, the fit history, test-view metrics and the training seconds (evaluation excluded).
    """
    cfg = (config or TrainConfig()).validate()
    device = resolve_device(cfg.device)
    model.to(device).train()
    result = fit(model, RayTask(scene, cfg, device), cfg.fit_config())
    return TrainResult(result.model, result.history, result.metrics, result.steps, result.seconds)


def evaluate_nerf(model: nn.Module, scene: Scene, config: TrainConfig | None = None,
                  split: str = "test") -> dict[str, Any]:
    """Mean PSNR (dB, colours in [0, 1]) of rendered ``split`` views against the images."""
    cfg = config or TrainConfig()
    data = scene.split(split)
    n = len(data.images) if cfg.eval_views is None else min(cfg.eval_views, len(data.images))
    pick = np.linspace(0, len(data.images) - 1, n).round().astype(int)
    meta = scene.metadata()
    psnrs = []
    rays = int(meta["height"]) * int(meta["width"])
    with tqdm(total=n * rays, desc=f"evaluate {n} {split} views", unit="ray", unit_scale=True, file=sys.stderr,
              disable=not cfg.progress, leave=False, dynamic_ncols=True) as bar:
        for k in pick:
            img = render_image(model, data.poses[k], meta, cfg.n_samples, cfg.n_importance, cfg.eval_chunk,
                               on_chunk=bar.update)
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
