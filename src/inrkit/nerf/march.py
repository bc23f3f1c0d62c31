"""Ray marching with empty-space skipping and packed volume rendering (instant-NGP's sampler, vectorised).

Every ray is clipped to the scene box; candidate samples lie at a fixed world-space step ``step``
(jittered by one random offset per ray in training); candidates in unoccupied cells of the model's
occupancy grid are dropped, and the rest are packed into one flat array (ray-major). The field runs
on the packed samples only; compositing uses an exclusive cumulative sum of ``sigma * step`` per ray
(a global cumsum minus its value at each ray's first sample) and ``index_add_`` into the rays.
No Python loop runs over rays or samples.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from inrkit.nerf.grid_field import GridNeRF


def box_interval(o: Tensor, d: Tensor, aabb: Tensor, near: Tensor, far: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances ``[R]`` of rays ``o + t d`` in the box, within ``[near, far]``; a miss has t1 <= t0."""
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    a, b = (aabb[0] - o) * inv, (aabb[1] - o) * inv
    t0 = torch.maximum(torch.minimum(a, b).amax(-1), near)
    t1 = torch.minimum(torch.maximum(a, b).amin(-1), far)
    return t0, t1


def march(model: GridNeRF, o: Tensor, d: Tensor, near: Tensor, far: Tensor, step: float, perturb: bool = False,
          generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Packed samples of rays ``o, d [R, 3]`` (``d`` need not be unit length): ``ray [S]`` (ray index),
    ``pts [S, 3]``, ``dirs [S, 3]`` (unit) and ``candidates`` (samples before skipping)."""
    norm = d.norm(dim=-1, keepdim=True)
    dn = d / norm
    t0, t1 = box_interval(o, d, model.aabb, near, far)
    s0, s1 = t0 * norm[:, 0], t1 * norm[:, 0]  # world distances along the unit direction
    length = (s1 - s0).clamp(min=0)
    k = int(torch.ceil(length.max() / step).item()) if len(length) else 0
    shift = (torch.rand(len(o), generator=generator).to(o.device) if perturb else torch.full_like(s0, 0.5))
    s = s0[:, None] + (torch.arange(max(k, 1), device=o.device, dtype=o.dtype)[None] + shift[:, None]) * step
    inside = s < s1[:, None]
    ray, idx = inside.nonzero(as_tuple=True)
    s_in = s[ray, idx]
    pts = o[ray] + dn[ray] * s_in[:, None]
    keep = model.occupied[model.cell_index(pts)]
    ray, pts = ray[keep], pts[keep]
    return {"ray": ray, "pts": pts, "dirs": dn[ray], "candidates": torch.tensor(int(inside.sum()))}


def composite(sigma: Tensor, rgb: Tensor, ray: Tensor, n_rays: int, step: float,
              white_background: bool = True) -> dict[str, Tensor]:
    """Volume rendering of packed samples (ray-major): ``rgb [R, 3]``, ``acc [R]``, ``depth``-free."""
    tau = sigma * step
    cum = torch.cumsum(tau.double(), 0)
    excl = cum - tau.double()
    counts = torch.bincount(ray, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    base = excl[starts.clamp(max=max(len(excl) - 1, 0))] if len(excl) else excl
    trans = torch.exp(-(excl - base[ray])).to(sigma.dtype)
    weights = trans * (1.0 - torch.exp(-tau))
    acc = torch.zeros(n_rays, dtype=sigma.dtype, device=sigma.device).index_add_(0, ray, weights)
    color = torch.zeros(n_rays, 3, dtype=sigma.dtype, device=sigma.device).index_add_(0, ray, weights[:, None] * rgb)
    if white_background:
        color = color + (1.0 - acc[:, None])
    return {"rgb": color, "acc": acc, "weights": weights}


def render_grid_rays(model: GridNeRF, o: Tensor, d: Tensor, near: Tensor, far: Tensor, step: float,
                     perturb: bool = False, generator: torch.Generator | None = None,
                     white_background: bool = True) -> dict[str, Any]:
    """Render rays through the grid field: ``rgb [R, 3]``, ``acc [R]``, ``samples`` and ``candidates``."""
    packed = march(model, o, d, near, far, step, perturb, generator)
    sigma, rgb = model(packed["pts"], packed["dirs"])
    out = composite(sigma, rgb, packed["ray"], len(o), step, white_background)
    return {"rgb": out["rgb"], "acc": out["acc"], "samples": len(packed["ray"]), "candidates": packed["candidates"]}


@torch.no_grad()
def render_grid_chunked(model: GridNeRF, o: Tensor, d: Tensor, near: Tensor, far: Tensor, step: float,
                        chunk: int = 4096, on_chunk: Callable[[int], Any] | None = None,
                        white_background: bool = True) -> dict[str, Tensor]:
    """:func:`render_grid_rays` without gradients, ``chunk`` rays at a time."""
    parts = []
    for i in range(0, o.shape[0], chunk):
        sl = slice(i, i + chunk)
        parts.append(render_grid_rays(model, o[sl], d[sl], near[sl], far[sl], step,
                                      white_background=white_background))
        if on_chunk is not None:
            on_chunk(parts[-1]["rgb"].shape[0])
    return {k: torch.cat([p[k] for p in parts]) for k in ("rgb", "acc")}
