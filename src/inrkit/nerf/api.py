"""File-level NeRF operations behind the CLI: one public function per command."""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import (
    MAX_HIDDEN_LAYERS,
    MAX_HIDDEN_WIDTH,
    MAX_OUTPUT_SIDE,
    MAX_RAY_SAMPLES,
    MAX_SCENE_PIXELS,
    check_range,
)
from inrkit.metrics import psnr_from_mse
from inrkit.nerf.grid_field import GridNeRF
from inrkit.nerf.model import NeRFConfig, NeRFMLP, load_nerf, save_nerf
from inrkit.nerf.prune import prune_and_train
from inrkit.nerf.scene import generate_scene, load_blender, sphere_pose
from inrkit.nerf.train import (
    ARCHS,
    TrainConfig,
    arch_of,
    grid_field_config,
    render_image,
    render_turntable,
    resized_meta,
    train_nerf,
)
from inrkit.utils import atomic_path, to_uint8

RENDER_KEYS = ("n_samples", "n_importance", "batch_size", "lr", "lr_final", "encoding_lr", "coarse_weight")


def synth_scene(output: str | os.PathLike, size: int = 100, views: int = 25, test_views: int = 8,
                seed: int = 0) -> dict[str, Any]:
    """Generate the analytic Blender-format scene (see :func:`generate_scene`) and describe it."""
    check_range("size", size, 8, MAX_OUTPUT_SIDE, optional=False)
    check_range("views", views, 1, optional=False)
    check_range("test_views", test_views, 1, optional=False)
    check_range("seed", seed, 0, optional=False)
    pixels = size * size * (views + 2 * test_views)
    if pixels > MAX_SCENE_PIXELS:
        raise InvalidInputError(f"a scene of {views} + 2x{test_views} views of {size}x{size} is {pixels} pixels "
                                f"(at most {MAX_SCENE_PIXELS})")
    start = time.perf_counter()
    path = generate_scene(output, size=size, views=views, test_views=test_views, seed=seed)
    return {"output": str(path), "size": size, "views": views, "test_views": test_views, "seed": seed,
            "seconds": time.perf_counter() - start}


def _file_bytes(path: str | os.PathLike) -> int:
    return Path(path).stat().st_size


def nerf_train_file(scene_dir: str | os.PathLike, output: str | os.PathLike, arch: str = "grid",
                    width: int | None = None, depth: int = 8, config: TrainConfig | None = None,
                    downscale: int = 1) -> dict[str, Any]:
    """Train a radiance field on a Blender-format scene folder and save it; returns psnr, params, bytes, seconds.

    Args:
        arch: ``grid`` (grid-encoded field with an occupancy grid) or ``mlp`` (the NeRF MLP).
        width: the MLP width (none: 64; the paper's NeRF MLP has 256).
        depth: the NeRF MLP's trunk layers (paper 8; the grid field's MLPs have instant-NGP's fixed depth).
    """
    if arch not in ARCHS:
        raise InvalidInputError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    width = 64 if width is None else width
    check_range("width", width, 1, MAX_HIDDEN_WIDTH, optional=False)
    check_range("depth", depth, 2, MAX_HIDDEN_LAYERS, optional=False)
    check_range("downscale", downscale, 1, optional=False)
    scene = load_blender(scene_dir, downscale=downscale)
    meta = scene.metadata()
    cfg = (config or TrainConfig()).resolved(arch, meta)
    model: NeRFMLP | GridNeRF
    if arch == "grid":
        model = GridNeRF(grid_field_config(meta, width), seed=cfg.seed)
    else:
        model = NeRFMLP(NeRFConfig.sized(width, depth), seed=cfg.seed)
    result = train_nerf(model, scene, cfg)
    extra = {"scene_path": str(scene_dir), "downscale": downscale, "arch": arch, "train": asdict(cfg),
             "steps": result.steps, "psnr": result.metrics.get("psnr"), "seconds": result.seconds}
    save_nerf(model, output, meta, extra)  # trained in place
    return {"output": str(output), "arch": arch, "psnr": result.metrics.get("psnr"), "params": model.num_params(),
            "bytes": _file_bytes(output), "seconds": result.seconds, "steps": result.steps,
            "seconds_per_step": result.seconds / max(1, result.steps)}


OLD_KEYS = {"iters": "steps", "batch_rays": "batch_size", "precrop_iters": "precrop_steps"}


def _train_config(header: dict, **overrides: Any) -> TrainConfig:
    """The rendering settings a file was trained with (older files' ``iters``/``batch_rays`` read too)."""
    saved = {OLD_KEYS.get(k, k): v for k, v in header.get("extra", {}).get("train", {}).items()}
    known = {k: saved[k] for k in RENDER_KEYS if k in saved}
    return TrainConfig(**{**known, **{k: v for k, v in overrides.items() if v is not None}})


def nerf_render_file(model_path: str | os.PathLike, output: str | os.PathLike, views: int = 36,
                     azimuth: float = 30.0, elevation: float = 30.0, size: int | None = None,
                     scene_dir: str | os.PathLike | None = None, view: int | None = None,
                     n_samples: int | None = None, n_importance: int | None = None) -> dict[str, Any]:
    """Render a NeRF file: ``.png`` one view (a test view of ``scene_dir`` when ``view`` is given,
    else the camera at ``azimuth``/``elevation``), ``.gif`` a turntable of ``views`` frames."""
    suffix = Path(output).suffix.lower()
    if suffix not in (".png", ".gif"):
        raise InvalidInputError(f"output must end in .png or .gif, got {str(output)!r}")
    check_range("views", views, 1, optional=False)
    check_range("azimuth", azimuth, optional=False)
    check_range("elevation", elevation, optional=False)
    check_range("size", size, 8, MAX_OUTPUT_SIDE)
    check_range("view", view, 0)
    check_range("n_samples", n_samples, 2, MAX_RAY_SAMPLES)
    check_range("n_importance", n_importance, 0, MAX_RAY_SAMPLES)
    if view is not None and scene_dir is None:
        raise InvalidInputError("--view needs --scene (the folder with the test views)")
    model, header = load_nerf(model_path)
    meta = header.get("scene") or {}
    if not {"height", "width", "focal", "near", "far"} <= set(meta):
        raise InvalidFileError(f"{model_path}: no camera metadata in the NeRF file")
    cfg = _train_config(header, n_samples=n_samples, n_importance=n_importance).resolved(arch_of(model), meta)
    n_samples, n_importance = int(cfg.n_samples or 2), int(cfg.n_importance or 0)
    start = time.perf_counter()
    result: dict[str, Any] = {"output": str(output)}
    if suffix == ".gif":
        render_turntable(model, resized_meta(meta, size), output, frames=views, elevation=elevation,
                         n_samples=n_samples, n_importance=n_importance)
        result["frames"] = views
    elif suffix == ".png":
        if view is not None:
            if scene_dir is None:
                raise InvalidInputError("--view needs --scene (the folder with the test views)")
            downscale = header.get("extra", {}).get("downscale", 1)
            test = load_blender(scene_dir, downscale=downscale, splits=("test",)).split("test")
            if not 0 <= view < len(test.poses):
                raise InvalidInputError(f"--view must be in [0, {len(test.poses)})")
            img = render_image(model, test.poses[view], meta, n_samples, n_importance)
            result["psnr"] = psnr_from_mse(float(np.mean((img - test.images[view]) ** 2)), 1.0)
        else:
            m = resized_meta(meta, size)
            img = render_image(model, sphere_pose(azimuth, elevation, meta.get("radius", 4.0)), m,
                               n_samples, n_importance)
        with atomic_path(output) as tmp:
            Image.fromarray(to_uint8(img)).save(tmp, format="PNG")
        result["frames"] = 1
    else:
        raise InvalidInputError(f"output must end in .png or .gif, got {output!r}")
    result["seconds"] = time.perf_counter() - start
    return result


def nerf_prune_file(model_path: str | os.PathLike, output: str | os.PathLike, method: str = "coreset",
                    width: int = 128, retrain: int = 0, mode: str = "retrain",
                    scene_dir: str | os.PathLike | None = None, seed: int = 0, device: str | None = None,
                    eval_views: int | None = None) -> dict[str, Any]:
    """Prune a NeRF file to ``width`` neurons per layer, optionally retrain/fine-tune, save it.

    The scene defaults to the one recorded in the file; without a scene (or ``retrain=0``
    and no scene) PSNR is ``None``.
    """
    check_range("width", width, 1, MAX_HIDDEN_WIDTH, optional=False)
    check_range("retrain", retrain, 0, optional=False)
    check_range("seed", seed, 0, optional=False)
    check_range("eval_views", eval_views, 0)
    model, header = load_nerf(model_path)
    if not isinstance(model, NeRFMLP):
        raise InvalidInputError(f"{model_path} is a grid NeRF: nerf-prune prunes NeRF MLP files "
                                "(bench/nerf_prune.py prunes the grid field's MLPs)")
    widest = max(g.width for g in model.prunable_groups())
    if width >= widest:  # before the scene is read (prune_nerf refuses it too)
        raise InvalidInputError(f"--width {width} is not smaller than the model {model_path} (its widest "
                                f"prunable layer has {widest} neurons): nothing to prune; pass a width below {widest}")
    extra = header.get("extra", {})
    scene_dir = scene_dir or extra.get("scene_path")
    scene = None
    if scene_dir is not None and Path(scene_dir).is_dir():
        scene = load_blender(scene_dir, downscale=extra.get("downscale", 1))
    elif retrain > 0:
        raise InvalidInputError("retraining needs the scene: pass --scene DIR")
    cfg = _train_config(header, seed=seed, device=device, eval_views=eval_views)
    res = prune_and_train(model, scene, method, width, retrain, mode, cfg, seed=seed)
    out_extra = {**extra, "pruned": {"method": method, "width": width, "mode": mode, "retrain": retrain,
                                     "from_params": res.params_before, "seed": seed}}
    save_nerf(res.model, output, header.get("scene"), out_extra)
    train_s = res.train.seconds if res.train else 0.0
    return {"output": str(output), "method": method, "width": width, "mode": mode,
            "psnr": res.metrics.get("psnr"), "psnr_pruned": res.psnr_pruned,
            "params": res.params, "params_before": res.params_before,
            "bytes": _file_bytes(output), "bytes_before": _file_bytes(model_path),
            "seconds": res.seconds, "train_seconds": train_s,
            "seconds_per_step": train_s / retrain if retrain else None}
