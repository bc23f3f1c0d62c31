"""A grid-encoded radiance field with an occupancy grid (instant-NGP, Müller et al. 2022), for CPUs.

The field: a point in the scene box is mapped to ``[-1, 1]^3`` and encoded by the project's
multi-resolution :class:`~inrkit.models.grid.GridEncoding` (dense coarse levels, hashed fine ones);
a density MLP (one ReLU layer) gives ``1 + geo_features`` outputs, the first through a truncated
exponential as the density (``exp(z - 1)``, as nerfacc's instant-NGP field); a colour MLP (two ReLU
layers) reads the other outputs and the view direction encoded by real spherical harmonics of degree 4
(16 values, as instant-NGP), and ends in a sigmoid. The occupancy grid is instant-NGP's: a ``res^3`` grid
over the box holding an exponential moving maximum of the optical thickness ``density * diagonal / 1024``
(instant-NGP's minimum step, ``sqrt(3) / 1024`` of its unit cube; decay 0.95), marked occupied above
``min(mean, 0.01)``; :mod:`inrkit.nerf.march` skips the samples that fall in unoccupied cells.

The file keeps the weights only; the occupancy grid is rebuilt from the density when a file is loaded
(:meth:`GridNeRF.rebuild_occupancy`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import check_range
from inrkit.models.grid import GridConfig, GridEncoding, grid_batch_size, grid_param_groups
from inrkit.models.io import MODEL_TYPES, ModelType
from inrkit.models.surgery import PrunableGroup

OCC_DECAY = 0.95  # instant-NGP's decay of the density grid per update
OCC_THRESHOLD = 0.01  # instant-NGP's minimum optical thickness of an occupied cell
OCC_STEPS = 1024  # instant-NGP's thickness is over a step of 1/1024 of the box diagonal
SH_DIM = 16  # real spherical harmonics up to degree 4 (l = 0..3)


class _TruncExp(torch.autograd.Function):
    """``exp(x)`` with the gradient of ``exp(clamp(x, -15, 15))`` (instant-NGP's density activation)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def sh_encoding(d: Tensor) -> Tensor:
    """Real spherical harmonics of degree 4 (16 values, tiny-cuda-nn's constants) of unit directions ``[N, 3]``."""
    x, y, z = d.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x,
        1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.94617469575755997 * zz - 0.31539156525251999,
        -1.0925484305920792 * x * z, 0.54627421529603959 * (xx - yy),
        0.59004358992664352 * y * (-3.0 * xx + yy), 2.8906114426405538 * x * y * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], -1)


@dataclass
class GridNeRFConfig:
    """Architecture of a :class:`GridNeRF`.

    Args:
        levels, features, base, finest, table_size: the grid (:class:`~inrkit.models.grid.GridConfig`).
        hidden: width of the density layer and of the two colour layers (instant-NGP: 64).
        geo_features: density-MLP outputs passed to the colour MLP (instant-NGP: 15).
        aabb: the scene box ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` (instant-NGP's Blender box: +-1.5).
        occupancy_res: cells per axis of the occupancy grid.
    """

    levels: int = 12
    features: int = 2
    base: int = 16
    finest: int = 512
    table_size: int = 1 << 17
    hidden: int = 64
    geo_features: int = 15
    aabb: list[list[float]] = field(default_factory=lambda: [[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]])
    occupancy_res: int = 64

    def grid(self) -> GridConfig:
        return GridConfig(dim=3, levels=self.levels, features=self.features, base=self.base, finest=self.finest,
                          table_size=self.table_size)

    def validate(self) -> "GridNeRFConfig":
        """Check types and bounds; raises :class:`InvalidInputError`."""
        self.grid()
        check_range("hidden", self.hidden, 1, 1024, optional=False)
        check_range("geo_features", self.geo_features, 0, 256, optional=False)
        check_range("occupancy_res", self.occupancy_res, 1, 256, optional=False)
        box = self.aabb
        ok = isinstance(box, list) and len(box) == 2 and all(isinstance(c, list) and len(c) == 3 for c in box)
        if not ok or not all(isinstance(v, (int, float)) and math.isfinite(v) for c in box for v in c):
            raise InvalidInputError("aabb must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]")
        if not all(hi > lo for lo, hi in zip(*box)):
            raise InvalidInputError("aabb must have max > min on every axis")
        for name in ("hidden", "geo_features", "occupancy_res"):
            if type(getattr(self, name)) is not int:
                raise InvalidInputError(f"{name} must be an integer")
        return self


class GridNeRF(nn.Module):
    """Grid-encoded radiance field ``(x, d) -> (sigma, rgb)`` with an occupancy grid (see the module docs).

    Args:
        config: the architecture (:class:`GridNeRFConfig`).
        seed: seeds the grid tables and the MLP initialisation.
    """

    occ_density: Tensor
    occupied: Tensor
    aabb: Tensor

    def __init__(self, config: GridNeRFConfig | None = None, seed: int | None = None) -> None:
        super().__init__()
        self.spec = cfg = (config or GridNeRFConfig()).validate()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.encoding = GridEncoding(cfg.grid())
            self.density_net = nn.Sequential(nn.Linear(self.encoding.out_dim, cfg.hidden), nn.ReLU(),
                                             nn.Linear(cfg.hidden, 1 + cfg.geo_features))
            self.color_net = nn.Sequential(nn.Linear(SH_DIM + cfg.geo_features, cfg.hidden), nn.ReLU(),
                                           nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 3))
        cells = cfg.occupancy_res ** 3
        self.register_buffer("aabb", torch.tensor(cfg.aabb, dtype=torch.float32), persistent=False)
        self.register_buffer("occ_density", torch.zeros(cells), persistent=False)
        self.register_buffer("occupied", torch.ones(cells, dtype=torch.bool), persistent=False)
        self.occ_updates = 0

    @property
    def config(self) -> GridNeRFConfig:
        return GridNeRFConfig(**asdict(self.spec))

    def normalise(self, x: Tensor) -> Tensor:
        """World points -> the grid's ``[-1, 1]^3``."""
        lo, hi = self.aabb[0], self.aabb[1]
        return (x - lo) / (hi - lo) * 2.0 - 1.0

    def density(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Density ``sigma [N]`` and the geometry features ``[N, geo_features]`` of world points ``x [N, 3]``."""
        h = self.density_net(self.encoding(self.normalise(x)))
        return trunc_exp(h[:, 0] - 1.0), h[:, 1:]

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Points ``x [N, 3]`` and unit view directions ``d [N, 3]`` -> ``(sigma [N], rgb [N, 3])``."""
        sigma, geo = self.density(x)
        rgb = torch.sigmoid(self.color_net(torch.cat([sh_encoding(d), geo], -1)))
        return sigma, rgb

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def param_groups(self, lr: float, encoding_lr: float | None = None) -> list[dict[str, Any]]:
        """The two MLPs at ``lr``, the grid tables at ``encoding_lr``
        (:func:`~inrkit.models.grid.grid_param_groups`)."""
        return grid_param_groups(self, self.encoding, lr, encoding_lr)

    def default_batch_size(self, n_points: int) -> int | None:
        """Random batches of :data:`~inrkit.models.grid.GRID_BATCH` rays for larger sets (the NeRF config names
        its own batch)."""
        return grid_batch_size(n_points)

    def mlp_params(self) -> int:
        """Parameters of the two MLPs (what neuron pruning can remove)."""
        return self.num_params() - self.encoding.num_params()

    def prunable_groups(self) -> list[PrunableGroup]:
        """The hidden layers of the two MLPs (``density_net.0``, ``color_net.0``, ``color_net.2``) for the
        pruning graph (:mod:`inrkit.models.surgery`); the grid tables are not neurons."""
        def group(layer: str, consumer: str) -> PrunableGroup:
            width = int(self.get_parameter(f"{layer}.weight").shape[0])
            return PrunableGroup(layer, (f"{layer}.weight", f"{layer}.bias"), [(f"{consumer}.weight", 0)], width)

        return [group("density_net.0", "density_net.2"), group("color_net.0", "color_net.2"),
                group("color_net.2", "color_net.4")]

    # ------------------------------------------------------------------ occupancy grid
    def cell_index(self, x: Tensor) -> Tensor:
        """Flat occupancy-grid cell of world points ``x [N, 3]`` (points outside are clamped to the box)."""
        res = self.spec.occupancy_res
        lo, hi = self.aabb[0], self.aabb[1]
        c = ((x - lo) / (hi - lo) * res).long().clamp_(0, res - 1)
        return (c[:, 0] * res + c[:, 1]) * res + c[:, 2]

    def cell_points(self, cells: Tensor, jitter: Tensor) -> Tensor:
        """World points in ``cells [N]`` at offsets ``jitter [N, 3]`` in ``[0, 1)`` of the cell."""
        res = self.spec.occupancy_res
        ijk = torch.stack([cells // (res * res), (cells // res) % res, cells % res], -1).to(jitter.dtype)
        lo, hi = self.aabb[0], self.aabb[1]
        return lo + (ijk + jitter) / res * (hi - lo)

    @property
    def occ_step(self) -> float:
        """The step of the occupancy grid's optical thickness: the box diagonal / 1024."""
        return float((self.aabb[1] - self.aabb[0]).norm()) / OCC_STEPS

    @torch.no_grad()
    def update_occupancy(self, generator: torch.Generator, all_cells: bool = False, chunk: int = 1 << 16) -> float:
        """One instant-NGP update: decay the grid, then keep the max with ``density * occ_step`` at a random
        point of every cell (``all_cells``) or of a random quarter of the cells plus up to as many occupied
        ones; returns the occupied fraction."""
        n = self.occ_density.numel()
        device = self.occ_density.device
        if all_cells:
            cells = torch.arange(n, device=device)
        else:
            rand = torch.randint(n, (n // 4,), generator=generator).to(device)
            occ = self.occupied.nonzero().squeeze(1)
            pick = torch.randint(max(1, len(occ)), (min(len(occ), n // 4),), generator=generator).to(device)
            cells = torch.cat([rand, occ[pick]])
        jitter = torch.rand((len(cells), 3), generator=generator).to(device)
        pts = self.cell_points(cells, jitter)
        dens = torch.cat([self.density(pts[i:i + chunk])[0] for i in range(0, len(pts), chunk)])
        self.occ_density.mul_(OCC_DECAY)
        self.occ_density.scatter_reduce_(0, cells, dens * self.occ_step, reduce="amax")
        return self.refresh_occupied()

    def refresh_occupied(self) -> float:
        threshold = min(float(self.occ_density.mean()), OCC_THRESHOLD)
        self.occupied = self.occ_density > threshold
        self.occ_updates += 1
        return float(self.occupied.float().mean())

    @torch.no_grad()
    def rebuild_occupancy(self, samples: int = 4, seed: int = 0) -> float:
        """A fresh grid (after loading a file): the max of ``density * occ_step`` over ``samples``
        random points per cell; returns the occupied fraction."""
        gen = torch.Generator().manual_seed(seed)
        self.occ_density.zero_()
        for _ in range(samples):
            self.update_occupancy(gen, all_cells=True)
            self.occ_density.div_(OCC_DECAY)  # no decay between the samples of one rebuild
        return self.refresh_occupied()

    def copy(self) -> "GridNeRF":
        twin = GridNeRF(self.config)
        twin.load_state_dict(self.state_dict())
        twin.occ_density.copy_(self.occ_density)
        twin.occupied = self.occupied.clone()
        return twin.to(self.aabb.device)


# ------------------------------------------------------------------ the file type
def _config(header: dict) -> GridNeRFConfig:
    try:
        return GridNeRFConfig(**header["grid_nerf"]).validate()
    except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
        raise InvalidFileError(f"invalid grid NeRF architecture in the header ({str(exc)[:200]})") from None


def _check(header: dict) -> None:
    _config(header)


def _shapes(header: dict) -> dict[str, tuple[int, ...]]:
    model = GridNeRF(_config(header))  # small to build: the shapes come from the modules themselves
    return {k: tuple(v.shape) for k, v in sorted(model.state_dict().items())}


def _build(tensors: dict[str, Tensor], header: dict) -> GridNeRF:
    model = GridNeRF(_config(header))
    model.load_state_dict(tensors)
    return model


MODEL_TYPES.register("nerf-grid", ModelType(
    GridNeRF, lambda m: {k: v.detach().float().cpu().contiguous() for k, v in m.state_dict().items()},
    lambda m: {"grid_nerf": asdict(m.config)}, _check, _shapes, _build))
