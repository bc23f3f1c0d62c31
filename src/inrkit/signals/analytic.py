"""Analytic functions on a box, sampled fresh every step (infinite training data)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from inrkit.errors import InvalidInputError
from inrkit.metrics import psnr_from_mse
from inrkit.signals.base import Signal, grid_coords, predict
from inrkit.signals.kinds import SignalKind, check_grid_meta, register_kind
from inrkit.signals.render import render_grid


def sin_radial(points: Tensor, alpha: float = 0.1) -> Tensor:
    """``f(r) = sin(1 / (alpha + r))`` with ``r = |x|`` (PruningAMR's 2D example)."""
    r = torch.linalg.vector_norm(points, dim=-1, keepdim=True)
    return torch.sin(1.0 / (alpha + r))


FUNCTIONS: dict[str, Callable[..., Tensor]] = {"sin-radial": sin_radial}


class AnalyticSignal(Signal):
    """A function ``f(x)`` on a physical box, seen by the model through [-1, 1]^d.

    Args:
        name: a key of :data:`FUNCTIONS` (or any name when ``func`` is given).
        dim: coordinate dimension.
        domain: physical box ``[[lo, hi], ...]``; default [-1, 1]^d.
        params: keyword parameters of the function (e.g. ``{"alpha": 0.1}``).
        eval_size: grid points per axis for evaluation and rendering.
        func: a custom function of physical points ``[N, d] -> [N, C]``; values should lie in [-1, 1].
    """

    kind = "analytic"

    def __init__(self, name: str = "sin-radial", dim: int = 2, domain: Sequence[Sequence[float]] | None = None,
                 params: dict[str, float] | None = None, eval_size: int = 256,
                 func: Callable[..., Tensor] | None = None) -> None:
        if func is None and name not in FUNCTIONS:
            raise InvalidInputError(f"unknown analytic function {name!r}; choose from {sorted(FUNCTIONS)}")
        self.name, self.dim, self.params = name, dim, dict(params or {})
        self.func = func or FUNCTIONS[name]
        self.domain = np.asarray(domain if domain is not None else [[-1.0, 1.0]] * dim, dtype=np.float64)
        if self.domain.shape != (dim, 2) or np.any(self.domain[:, 1] <= self.domain[:, 0]):
            raise InvalidInputError(f"domain must be {dim} pairs lo < hi, got {self.domain.tolist()}")
        self.eval_size = eval_size
        self.out_dim = int(self.true_values(torch.zeros(1, dim)).shape[-1])
        self._eval = grid_coords([eval_size] * dim)
        self._eval_values = self.true_values(self._eval)

    def to_physical(self, coords: Tensor) -> Tensor:
        """Map model coordinates in [-1, 1]^d to the physical box."""
        lo = torch.as_tensor(self.domain[:, 0], dtype=coords.dtype, device=coords.device)
        hi = torch.as_tensor(self.domain[:, 1], dtype=coords.dtype, device=coords.device)
        return lo + (coords + 1.0) * 0.5 * (hi - lo)

    def true_values(self, coords: Tensor) -> Tensor:
        """The exact function at model coordinates ``coords``."""
        return self.func(self.to_physical(coords), **self.params)

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "params": self.params, "channels": self.out_dim,
                "domain": self.domain.tolist(), "shape": [self.eval_size] * self.dim,
                "value_offset": [0.0] * self.out_dim, "value_scale": [1.0] * self.out_dim}

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        if batch_size is None:
            return self._eval.to(device), self._eval_values.to(device)
        coords = torch.rand(batch_size, self.dim, generator=generator) * 2.0 - 1.0
        return coords.to(device), self.true_values(coords).to(device)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        mse = float(torch.mean((predict(model, self._eval) - self._eval_values) ** 2))
        return {"psnr": psnr_from_mse(mse), "rmse": mse**0.5}

    def sample_grid(self, size: int) -> np.ndarray:
        """The exact function on a ``size^d`` grid, ``[*grid]`` for scalar functions."""
        values = self.true_values(grid_coords([size] * self.dim)).numpy()
        return values.reshape(*([size] * self.dim), self.out_dim)[..., 0] if self.out_dim == 1 else values



def load_analytic(name: str, test_fraction: float = 0.0, seed: int = 0,
                  params: dict[str, float] | None = None, **_: Any) -> AnalyticSignal:
    """``analytic:NAME``: a function of :data:`FUNCTIONS` with keyword ``params``."""
    return AnalyticSignal(name, params=params)


register_kind(SignalKind("analytic", (), load_analytic, render_grid,
                         lambda meta, out_dim: check_grid_meta(meta, out_dim), scheme="analytic"))
