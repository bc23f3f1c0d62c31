"""Ray sampling (stratified + hierarchical) and volume rendering, batched in torch."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

FAR_DELTA = 1e10  # NeRF's length of the last interval along a ray


def stratified_samples(near: Tensor, far: Tensor, n: int, perturb: bool,
                       generator: torch.Generator | None = None) -> Tensor:
    """``n`` depths per ray in ``[near, far]`` (``[R]`` each): evenly spaced, jittered in their bins if ``perturb``."""
    u = torch.linspace(0.0, 1.0, n, device=near.device)
    t = near[:, None] * (1.0 - u) + far[:, None] * u
    if perturb and n > 1:
        mids = 0.5 * (t[:, 1:] + t[:, :-1])
        upper = torch.cat([mids, t[:, -1:]], -1)
        lower = torch.cat([t[:, :1], mids], -1)
        r = torch.rand(t.shape, generator=generator, device="cpu").to(t.device)
        t = lower + (upper - lower) * r
    return t


def sample_pdf(bins: Tensor, weights: Tensor, n: int, perturb: bool,
               generator: torch.Generator | None = None) -> Tensor:
    """Inverse-transform sample ``n`` depths per ray from the piecewise-constant pdf on ``bins``.

    ``bins [R, B+1]`` are interval edges and ``weights [R, B]`` their (unnormalised) mass.
    """
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if perturb:
        u = torch.rand((cdf.shape[0], n), generator=generator, device="cpu").to(cdf.device)
    else:
        u = torch.linspace(0.0, 1.0, n, device=cdf.device).expand(cdf.shape[0], n)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=True)
    below = (idx - 1).clamp(min=0)
    above = idx.clamp(max=cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    denom = torch.where(cdf_hi - cdf_lo < 1e-5, torch.ones_like(cdf_lo), cdf_hi - cdf_lo)
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


def volume_render(sigma: Tensor, rgb: Tensor, t: Tensor, ray_norm: Tensor,
                  white_background: bool = True) -> dict[str, Tensor]:
    """Quadrature of the volume rendering integral (NeRF eq. 3).

    ``alpha_i = 1 - exp(-sigma_i * delta_i)`` with ``delta_i = (t_{i+1} - t_i) * |d|`` (the last
    interval is 1e10 long), transmittance ``T_i = prod_{j<i} (1 - alpha_j)`` and weights
    ``w_i = T_i alpha_i``. Inputs: ``sigma [R, S]``, ``rgb [R, S, 3]``, ``t [R, S]``, ``ray_norm [R]``.
    Returns ``rgb [R, 3]``, ``acc [R]`` (opacity), ``depth [R]`` and ``weights [R, S]``.
    """
    delta = torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], FAR_DELTA)], -1) * ray_norm[:, None]
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    weights = alpha * trans
    acc = weights.sum(-1)
    color = (weights[..., None] * rgb).sum(1)
    if white_background:
        color = color + (1.0 - acc[:, None])
    return {"rgb": color, "acc": acc, "depth": (weights * t).sum(-1), "weights": weights}


def _query(model: nn.Module, rays_o: Tensor, rays_d: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    r, s = t.shape
    pts = rays_o[:, None, :] + rays_d[:, None, :] * t[..., None]
    dirs = torch.nn.functional.normalize(rays_d, dim=-1)[:, None, :].expand(r, s, 3)
    sigma, rgb = model(pts.reshape(-1, 3), dirs.reshape(-1, 3))
    return sigma.view(r, s), rgb.view(r, s, 3)


def render_rays(model: nn.Module, rays_o: Tensor, rays_d: Tensor, near: Tensor, far: Tensor,
                n_samples: int = 64, n_importance: int = 64, perturb: bool = False,
                generator: torch.Generator | None = None, white_background: bool = True) -> dict[str, Tensor]:
    """Render a batch of rays: a coarse pass on stratified samples, then (if ``n_importance``)
    a fine pass on the union of the coarse samples and ``n_importance`` samples drawn from
    the coarse weights. One network serves both passes (see docs/nerf.md).

    Returns the fine pass's ``rgb``, ``acc``, ``depth`` and, with a fine pass, ``rgb_coarse``.
    """
    norm = rays_d.norm(dim=-1)
    t = stratified_samples(near, far, n_samples, perturb, generator)
    sigma, rgb = _query(model, rays_o, rays_d, t)
    out = volume_render(sigma, rgb, t, norm, white_background)
    if n_importance <= 0:
        return {k: out[k] for k in ("rgb", "acc", "depth")}
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    bins = torch.cat([t[:, :1], mids, t[:, -1:]], -1)
    t_new = sample_pdf(bins, out["weights"].detach(), n_importance, perturb, generator)
    t_all = torch.sort(torch.cat([t, t_new.detach()], -1), -1).values
    sigma, rgb = _query(model, rays_o, rays_d, t_all)
    fine = volume_render(sigma, rgb, t_all, norm, white_background)
    return {"rgb": fine["rgb"], "acc": fine["acc"], "depth": fine["depth"], "rgb_coarse": out["rgb"]}


@torch.no_grad()
def render_chunked(model: nn.Module, rays_o: Tensor, rays_d: Tensor, near: Tensor, far: Tensor,
                   chunk: int = 4096, on_chunk: Callable[[int], Any] | None = None, **kw) -> dict[str, Tensor]:
    """:func:`render_rays` without gradients over many rays, ``chunk`` rays at a time
    (``on_chunk(rays)`` after each chunk, e.g. a progress bar's ``update``)."""
    parts = []
    for i in range(0, rays_o.shape[0], chunk):
        parts.append(render_rays(model, rays_o[i:i + chunk], rays_d[i:i + chunk], near[i:i + chunk],
                                 far[i:i + chunk], **kw))
        if on_chunk is not None:
            on_chunk(parts[-1]["rgb"].shape[0])
    return {k: torch.cat([p[k] for p in parts]) for k in ("rgb", "acc", "depth")}
