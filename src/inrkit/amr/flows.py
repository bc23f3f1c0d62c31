"""Analytic 3D flow fields with a localised feature, for meshing benchmarks and tests.

``bent_vortex_tube``: the swirl speed of a Lamb-Oseen vortex whose axis is a bent line through the box,
``u_theta(r) = Gamma / (2 pi r) * (1 - exp(-r^2 / rc^2))`` with ``r`` the distance (in the x-y plane) from the
axis centre ``(0.3 sin(pi z / 2), 0.2 cos(pi z / 2))``. It is scaled by its maximum (reached at
``r = 1.1209 rc``) and mapped to [-1, 1]: ``v = 2 u_theta / u_max - 1``. The feature is the vortex core
(radius ``rc``, default 0.08 on [-1, 1]^3): a sharp ridge there, a smooth ``1/r`` decay elsewhere.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

_R_PEAK = 1.1209  # argmax of (1 - exp(-s^2)) / s, in units of rc


def vortex_axis(z: Tensor) -> tuple[Tensor, Tensor]:
    """Centre ``(x, y)`` of the bent vortex axis at height ``z``."""
    return 0.3 * torch.sin(0.5 * math.pi * z), 0.2 * torch.cos(0.5 * math.pi * z)


def bent_vortex_tube(points: Tensor, rc: float = 0.08) -> Tensor:
    """Normalised swirl speed ``[N, 1]`` in [-1, 1] of a bent Lamb-Oseen vortex tube at physical ``points [N, 3]``."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    cx, cy = vortex_axis(z)
    r = torch.sqrt((x - cx) ** 2 + (y - cy) ** 2).clamp_min(1e-12)
    profile = (1.0 - torch.exp(-(r / rc) ** 2)) / r
    peak = (1.0 - math.exp(-_R_PEAK**2)) / (_R_PEAK * rc)
    return (2.0 * profile / peak - 1.0)[:, None]


FLOWS = {"vortex-tube": bent_vortex_tube}
