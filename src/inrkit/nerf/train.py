"""Training, evaluation and novel-view rendering of a NeRF on a Blender-format scene."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from ..errors import InvalidInputError
from ..utils import atomic_path, resolve_device
from .model import NeRFMLP
from .render import render_chunked, render_rays
from .scene import Scene, aabb_near_far, pixel_rays, sphere_pose


@dataclass
class TrainConfig:
    """NeRF optimisation settings (paper: 4096 rays, 64 + 128 samples, lr 5e-4 -> 5e-5).

    Args:
        iters: optimisation steps.
        batch_rays: random rays per step (from all training images).
        lr, lr_final: Adam learning rate, decayed exponentially from ``lr`` to ``lr_final``.
        n_samples, n_importance: stratified (coarse) and hierarchical (fine) samples per ray.
        coarse_weight: weight of the coarse pass's loss.
        precrop_iters, precrop_frac: for the first steps sample rays only from the image centre
            (as NeRF does on Blender scenes); ``None`` means ``iters // 10``.
        eval_views: at most this many test views are rendered for the final PSNR (None: all).
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

    def validate(self) -> "TrainConfig":
        if self.iters < 0 or self.batch_rays < 1 or self.n_samples < 2 or self.n_importance < 0:
            raise InvalidInputError("need iters >= 0, batch_rays >= 1, n_samples >= 2, n_importance >= 0")
        if not (self.lr > 0 and self.lr_final > 0):
            raise InvalidInputError("learning rates must be positive")
        if not 0 < self.precrop_frac <= 1:
            raise InvalidInputError("precrop_frac must be in (0, 1]")
        return self


@dataclass
class TrainResult:
    """What :func:`train_nerf` returns: the model, the loss history, test metrics and timing."""

    model: NeRFMLP
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


def mse_to_psnr(mse: float) -> float:
    """PSNR in dB of colours in [0, 1]."""
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def train_nerf(model: NeRFMLP, scene: Scene, config: TrainConfig | None = None) -> TrainResult:
    """Optimise ``model`` (in place) on the scene's train split; report test-view PSNR.

    Each step renders ``batch_rays`` random rays with the coarse and fine passes and
    minimises the squared colour error of both. ``seconds`` counts training only.
    """
    cfg = (config or TrainConfig()).validate()
    device = resolve_device(cfg.device)
    model.to(device).train()
    gen = torch.Generator().manual_seed(cfg.seed)
    meta = scene.metadata()
    train = scene.split("train")
    rays = scene_rays(meta, train.poses, device)
    target = torch.as_tensor(train.images.reshape(-1, 3), device=device)
    n_rays = target.shape[0]
    precrop = cfg.iters // 10 if cfg.precrop_iters is None else cfg.precrop_iters
    centre = _centre_indices(len(train.images), scene.height, scene.width, cfg.precrop_frac)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict] = []
    start, step = time.perf_counter(), 0
    bar = tqdm(range(cfg.iters), desc="nerf", disable=not cfg.progress, leave=False)
    for step in bar:
        if step < precrop:
            idx = centre[torch.randint(len(centre), (cfg.batch_rays,), generator=gen)]
        else:
            idx = torch.randint(n_rays, (cfg.batch_rays,), generator=gen)
        idx = idx.to(device)
        out = render_rays(model, rays["o"][idx], rays["d"][idx], rays["near"][idx], rays["far"][idx],
                          cfg.n_samples, cfg.n_importance, perturb=True, generator=gen)
        mse = torch.mean((out["rgb"] - target[idx]) ** 2)
        loss = mse + (cfg.coarse_weight * torch.mean((out["rgb_coarse"] - target[idx]) ** 2)
                      if "rgb_coarse" in out else 0.0)
        for group in optim.param_groups:
            group["lr"] = cfg.lr * (cfg.lr_final / cfg.lr) ** (step / max(1, cfg.iters))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if step % cfg.log_every == 0 or step == cfg.iters - 1:
            row = {"iter": step, "loss": float(loss.detach()), "psnr": mse_to_psnr(float(mse.detach())),
                   "seconds": time.perf_counter() - start}
            history.append(row)
            bar.set_postfix(psnr=f"{row['psnr']:.2f}")
        if cfg.time_budget is not None and time.perf_counter() - start > cfg.time_budget:
            break
    bar.close()
    seconds = time.perf_counter() - start
    done = step + 1 if cfg.iters else 0
    metrics = evaluate_nerf(model, scene, cfg) if cfg.eval_views != 0 else {}
    return TrainResult(model, history, metrics, done, seconds)


def evaluate_nerf(model: NeRFMLP, scene: Scene, config: TrainConfig | None = None,
                  split: str = "test") -> dict[str, Any]:
    """Mean PSNR (dB, colours in [0, 1]) of rendered ``split`` views against the images."""
    cfg = config or TrainConfig()
    data = scene.split(split)
    n = len(data.images) if cfg.eval_views is None else min(cfg.eval_views, len(data.images))
    pick = np.linspace(0, len(data.images) - 1, n).round().astype(int)
    meta = scene.metadata()
    psnrs = []
    for k in pick:
        img = render_image(model, data.poses[k], meta, cfg.n_samples, cfg.n_importance, cfg.eval_chunk)
        psnrs.append(mse_to_psnr(float(np.mean((img - data.images[k]) ** 2))))
    return {"psnr": float(np.mean(psnrs)), "psnr_per_view": psnrs, "views": [int(k) for k in pick], "split": split}


def render_image(model: NeRFMLP, c2w: np.ndarray, meta: dict, n_samples: int = 64, n_importance: int = 64,
                 chunk: int = 4096) -> np.ndarray:
    """Render one view ``[H, W, 3]`` (float32 in [0, 1]) for camera-to-world ``c2w`` and camera ``meta``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rays = scene_rays(meta, np.asarray(c2w)[None], device)
    out = render_chunked(model, rays["o"], rays["d"], rays["near"], rays["far"], chunk=chunk,
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


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_turntable(model: NeRFMLP, meta: dict, path: str | Path, frames: int = 36, elevation: float = 30.0,
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
