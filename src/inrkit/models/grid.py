"""Multi-resolution grid encodings (instant-NGP hash grids, Cool-chic-style dense grids) in 1-4D.

:class:`GridEncoding` maps coordinates in ``[-1, 1]^d`` to ``levels * features`` values: level ``l``
is a grid of resolution ``res_l`` (cells per axis; ``res_l + 1`` vertices), growing geometrically
from ``base`` to ``finest`` as in instant-NGP (``res_l = floor(base * b^l)``,
``b = exp((ln finest - ln base) / (levels - 1))``). A level whose ``(res_l + 1)^d`` vertices fit
in ``table_size`` stores one feature vector per vertex (dense, index ``sum_i c_i (res_l + 1)^i``);
a finer level stores ``table_size`` vectors addressed by instant-NGP's spatial hash
``(XOR_i c_i * p_i mod 2^32) mod table_size`` with ``p = (1, 2654435761, 805459861, 3674653429)``.
Features are interpolated multilinearly over the ``2^d`` cell corners and concatenated, coarsest
level first.

The hot path (forward and backward) is vectorised over points AND levels: the integer corner
indices of all levels are computed once per corner in int64, offset into ONE table holding every
level, laid out level-major (``[2^d, L, N]``) so every arithmetic pass is contiguous; the lookup is one
``index_select`` and one fused multiply-add per corner, its backward one ``index_add_`` per corner
(a custom autograd function: nothing else is saved). Dense levels of 1-3D grids go through
``torch.nn.functional.grid_sample`` instead (the same interpolation in one vectorised kernel per level,
several times faster than any gather on the CPU).
docs/grid.md has the measurements against a per-level loop.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from inrkit.errors import InvalidInputError
from inrkit.limits import (
    MAX_GRID_FEATURES,
    MAX_GRID_LEVELS,
    MAX_GRID_RESOLUTION,
    MAX_GRID_TABLE,
    MAX_TENSOR_ELEMENTS,
)

HASH_PRIMES = (1, 2654435761, 805459861, 3674653429)
"""instant-NGP's primes, one per axis (x first)."""
INIT_SCALE = 1e-4  # tables start as U(-1e-4, 1e-4), as instant-NGP
_MASK32 = (1 << 32) - 1
ENCODING_LR_FACTOR = 100.0
"""Default ratio of a grid encoding's learning rate to the MLP's (measured; docs/grid.md)."""
GRID_BATCH = 16384
"""Default points per step of a model with a grid encoding (docs/grid.md: batch 16384 vs full batch)."""


@dataclass(frozen=True)
class GridConfig:
    """The shape of a multi-resolution grid.

    Args:
        dim: coordinate dimension (1 to 4).
        levels: number of resolution levels.
        features: features per level.
        base: cells per axis of the coarsest level.
        finest: cells per axis of the finest level (>= base).
        table_size: entries of a hashed level; a level with at most this many vertices is dense.
    """

    dim: int
    levels: int = 16
    features: int = 2
    base: int = 16
    finest: int = 512
    table_size: int = 1 << 16

    def __post_init__(self) -> None:
        checks = (("dim", self.dim, 1, 4), ("levels", self.levels, 1, MAX_GRID_LEVELS),
                  ("features", self.features, 1, MAX_GRID_FEATURES), ("base", self.base, 1, MAX_GRID_RESOLUTION),
                  ("finest", self.finest, 1, MAX_GRID_RESOLUTION), ("table_size", self.table_size, 1, MAX_GRID_TABLE))
        for name, value, low, high in checks:
            if type(value) is not int or not low <= value <= high:
                raise InvalidInputError(f"grid {name} must be an integer in [{low}, {high}], got {str(value)[:40]}")
        if self.finest < self.base:
            raise InvalidInputError(f"grid finest resolution {self.finest} is below its base {self.base}")
        total = self.num_entries() * self.features
        if total > MAX_TENSOR_ELEMENTS:
            raise InvalidInputError(f"grid tables hold {total} values (at most {MAX_TENSOR_ELEMENTS})")

    def resolutions(self) -> list[int]:
        """Cells per axis of every level (instant-NGP's geometric growth, coarsest first)."""
        if self.levels == 1:
            return [self.base]
        growth = math.exp((math.log(self.finest) - math.log(self.base)) / (self.levels - 1))
        res = [int(math.floor(self.base * growth**level + 1e-9)) for level in range(self.levels)]
        res[-1] = self.finest
        return res

    def dense(self) -> list[bool]:
        """Whether each level is dense (one entry per vertex) rather than hashed."""
        return [(r + 1) ** self.dim <= self.table_size for r in self.resolutions()]

    def level_sizes(self) -> list[int]:
        """Table entries of every level: ``(res + 1)^d`` if dense, else ``table_size``."""
        return [(r + 1) ** self.dim if d else self.table_size for r, d in zip(self.resolutions(), self.dense())]

    def num_entries(self) -> int:
        return sum(self.level_sizes())

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "GridConfig":
        """A config from a header's ``encoding`` object; raises InvalidInputError on bad fields."""
        if not isinstance(data, dict) or data.get("type", "grid") != "grid":
            raise InvalidInputError("the encoding must be an object of type 'grid'")
        fields = {k: v for k, v in data.items() if k != "type"}
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown or "dim" not in fields:
            raise InvalidInputError(f"grid encoding fields {sorted(fields)[:10]} do not fit (unknown: {unknown[:5]})")
        return cls(**fields)


def hash_index(corner: Tensor, table_size: int) -> Tensor:
    """instant-NGP's spatial hash of integer vertices ``corner [..., d]`` (int64) into ``[0, table_size)``."""
    h = corner[..., 0] * HASH_PRIMES[0]
    for axis in range(1, corner.shape[-1]):
        h = h ^ (corner[..., axis] * HASH_PRIMES[axis])
    return (h & _MASK32) % table_size


def dense_index(corner: Tensor, res: int) -> Tensor:
    """Row-major vertex index ``sum_i c_i (res + 1)^i`` of ``corner [..., d]`` in a dense level."""
    idx = corner[..., 0].clone()
    stride = 1
    for axis in range(1, corner.shape[-1]):
        stride *= res + 1
        idx += corner[..., axis] * stride
    return idx


class _GridLookup(torch.autograd.Function):
    """``out[n, l*F:(l+1)*F] = sum_c w[c, l, n] * table[idx[c, l, n]]``; backward: one scatter-add per corner."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, idx: Tensor, w: Tensor) -> Tensor:
        n_corner, levels, n = idx.shape
        features = table.shape[1]
        out = torch.empty(levels, n, features, dtype=table.dtype, device=table.device)
        for c in range(n_corner):
            rows = table.index_select(0, idx[c].view(-1)).view(levels, n, features)
            if c == 0:
                torch.mul(rows, w[0].unsqueeze(-1), out=out)
            else:
                out.addcmul_(rows, w[c].unsqueeze(-1))
        ctx.save_for_backward(idx, w)
        ctx.table_shape = table.shape
        return out.permute(1, 0, 2).reshape(n, levels * features)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        idx, w = ctx.saved_tensors
        n_corner, levels, n = idx.shape
        features = ctx.table_shape[1]
        g = grad.reshape(n, levels, features).permute(1, 0, 2).contiguous()  # [L, N, F]
        grad_table = torch.zeros(ctx.table_shape, dtype=grad.dtype, device=grad.device)
        for c in range(n_corner):
            grad_table.index_add_(0, idx[c].view(-1), (g * w[c].unsqueeze(-1)).view(-1, features))
        return grad_table, None, None


class GridEncoding(nn.Module):
    """Multi-resolution dense/hashed feature grids with multilinear interpolation.

    Args:
        config: the grid's shape (:class:`GridConfig`).
        generator: random source of the ``U(-1e-4, 1e-4)`` initialisation.

    ``forward(x [N, d]) -> [N, levels * features]``; ``x`` in ``[-1, 1]`` (clamped).
    """

    _res: Tensor  # per-level constants (non-persistent buffers), typed for the type checker
    _res_int: Tensor
    _offsets: Tensor
    _strides: Tensor
    _corner_offsets: Tensor

    def __init__(self, config: GridConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        table = torch.empty(config.num_entries(), config.features)
        table.uniform_(-INIT_SCALE, INIT_SCALE, generator=generator)
        self.table = nn.Parameter(table)
        self._setup()

    def _setup(self) -> None:
        cfg = self.config
        res, dense, sizes = cfg.resolutions(), cfg.dense(), cfg.level_sizes()
        offsets = [0]
        for s in sizes[:-1]:
            offsets.append(offsets[-1] + s)
        self.n_dense = sum(dense)  # dense levels are a prefix (resolutions grow)
        # per-level constants as [L] tensors (non-persistent: rebuilt from the config)
        self.register_buffer("_res", torch.tensor(res, dtype=torch.float32), persistent=False)
        self.register_buffer("_res_int", torch.tensor(res, dtype=torch.int64), persistent=False)
        self.register_buffer("_offsets", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        strides = [[(r + 1) ** axis for axis in range(cfg.dim)] for r in res]
        self.register_buffer("_strides", torch.tensor(strides, dtype=torch.int64), persistent=False)
        corner_offsets = [[sum(stride[a] for a in range(cfg.dim) if (c >> a) & 1) for stride in strides]
                          for c in range(1 << cfg.dim)]
        self.register_buffer("_corner_offsets", torch.tensor(corner_offsets, dtype=torch.int64), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def num_params(self) -> int:
        return int(self.table.numel())

    def level_tables(self) -> list[Tensor]:
        """The table of every level (views into the one parameter)."""
        return list(torch.split(self.table, self.config.level_sizes()))

    def corners(self, x: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        """Table rows ``[2^d, L, N]`` (int64, level offsets included) and interpolation weights ``[2^d, L, N]``
        of levels ``start..L-1`` (``L`` counts those levels).

        Corner ``c`` takes the upper vertex along axis ``a`` where bit ``a`` of ``c`` is set. Index
        arithmetic is done once per axis; a corner adds a per-level constant (dense levels) or XORs
        precomputed per-axis products (hashed levels).
        """
        cfg = self.config
        if x.dim() != 2 or x.shape[1] != cfg.dim:
            raise InvalidInputError(f"a {cfg.dim}D grid needs coordinates of shape [N, {cfg.dim}], got {list(x.shape)}")
        n, levels, nd = x.shape[0], cfg.levels - start, max(self.n_dense - start, 0)
        u = (x.detach().to(self.table.dtype).clamp(-1.0, 1.0) + 1.0) * 0.5
        res = self._res[start:].view(-1, 1)
        offsets, strides, corner_offsets = self._offsets[start:], self._strides[start:], self._corner_offsets[:, start:]
        cells, fracs = [], []
        for axis in range(cfg.dim):
            pos = res * u[:, axis].unsqueeze(0)  # [L, N]
            cell = torch.minimum(pos.floor(), res - 1)  # the upper face stays in the last cell
            fracs.append(pos - cell)
            cells.append(cell.long())
        n_corner = 1 << cfg.dim
        idx = torch.empty(n_corner, levels, n, dtype=torch.int64, device=x.device)
        if nd:  # dense levels: the vertex index of the lower corner, plus a per-level constant per corner
            base = offsets[:nd].view(-1, 1) + cells[0][:nd]
            for axis in range(1, cfg.dim):
                base = base + cells[axis][:nd] * strides[:nd, axis].view(-1, 1)
            for c in range(n_corner):
                idx[c, :nd] = base + corner_offsets[c, :nd].view(-1, 1)
        if nd < levels:  # hashed levels: XOR of c_a * p_a (lower or upper vertex per axis), 32 bits, mod T
            lo = [cells[a][nd:] * HASH_PRIMES[a] for a in range(cfg.dim)]
            hi = [lo[a] + HASH_PRIMES[a] for a in range(cfg.dim)]
            off = offsets[nd:].view(-1, 1)
            pow2 = cfg.table_size & (cfg.table_size - 1) == 0
            for c in range(n_corner):
                h = hi[0] if c & 1 else lo[0]
                for axis in range(1, cfg.dim):
                    h = h ^ (hi[axis] if (c >> axis) & 1 else lo[axis])
                h = h & (cfg.table_size - 1) if pow2 else (h & _MASK32) % cfg.table_size
                torch.add(h, off, out=idx[c, nd:])
        weights = torch.empty(n_corner, levels, n, dtype=fracs[0].dtype, device=x.device)
        lower = [1.0 - f for f in fracs]
        for c in range(n_corner):
            w = fracs[0] if c & 1 else lower[0]
            for axis in range(1, cfg.dim):
                w = w * (fracs[axis] if (c >> axis) & 1 else lower[axis])
            weights[c] = w
        return idx, weights

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad:  # gradients w.r.t. the coordinates (e.g. an SDF's eikonal term): plain autograd
            return self.forward_reference(x)
        if not self.n_dense or self.config.dim > 3:
            idx, w = self.corners(x)
            return _GridLookup.apply(self.table, idx, w)
        dense = self.dense_sample(x)  # [N, n_dense * F]
        if self.n_dense == self.config.levels:
            return dense
        idx, w = self.corners(x, self.n_dense)
        return torch.cat([dense, _GridLookup.apply(self.table, idx, w)], dim=1)

    def dense_sample(self, x: Tensor) -> Tensor:
        """Features of the dense levels (1-3D) through ``grid_sample`` (``align_corners=True`` puts
        vertex ``i`` at ``-1 + 2 i / res``: the same multilinear interpolation, a vectorised kernel)."""
        cfg = self.config
        n, feats = x.shape[0], cfg.features
        u = x.detach().to(self.table.dtype).clamp(-1.0, 1.0)
        if cfg.dim == 1:
            grid = torch.stack([u[:, 0], torch.zeros_like(u[:, 0])], dim=-1).view(1, 1, n, 2)
        else:
            grid = u.view(1, 1, n, 2) if cfg.dim == 2 else u.view(1, 1, 1, n, 3)
        outs = []
        for res, table in zip(cfg.resolutions(), self.level_tables()[:self.n_dense]):
            side = res + 1
            # vertex c0 + c1 side + c2 side^2 -> [F, (c2,) (c1,) c0]: grid_sample's x indexes the last axis
            shape = (1, side) if cfg.dim == 1 else (side,) * cfg.dim
            grid_in = table.view(*shape[::-1] if cfg.dim > 1 else shape, feats).movedim(-1, 0).unsqueeze(0)
            out = F.grid_sample(grid_in, grid, mode="bilinear", padding_mode="border", align_corners=True)
            outs.append(out.reshape(feats, n))
        return torch.cat(outs, dim=0).t()

    def forward_reference(self, x: Tensor) -> Tensor:
        """The same values through plain autograd ops (twice differentiable, also w.r.t. ``x``; slower)."""
        cfg = self.config
        idx, _ = self.corners(x)
        u = (x.clamp(-1.0, 1.0) + 1.0) * 0.5
        res = self._res.view(-1, 1)
        fracs = []
        for axis in range(cfg.dim):
            pos = res * u[:, axis].unsqueeze(0)
            fracs.append(pos - torch.minimum(pos.detach().floor(), res - 1))
        out = None
        for c in range(1 << cfg.dim):
            w = None
            for axis in range(cfg.dim):
                f = fracs[axis] if (c >> axis) & 1 else 1.0 - fracs[axis]
                w = f if w is None else w * f
            assert w is not None
            term = w.unsqueeze(-1) * self.table[idx[c]]  # [L, N, F]
            out = term if out is None else out + term
        assert out is not None
        return out.permute(1, 0, 2).reshape(x.shape[0], cfg.out_dim)

    def flops_per_point(self) -> int:
        """About 2 per corner weight and feature multiply-add, per level."""
        cfg = self.config
        return int(cfg.levels * (1 << cfg.dim) * (2 * cfg.features + 2 * cfg.dim))

    def summary(self) -> dict[str, Any]:
        """Levels, resolutions, dense/hashed, table sizes, parameters (for ``inrkit info``)."""
        cfg = self.config
        return {"type": "grid", **cfg.to_dict(), "resolutions": cfg.resolutions(),
                "dense_levels": sum(cfg.dense()), "hashed_levels": cfg.levels - sum(cfg.dense()),
                "level_sizes": cfg.level_sizes(), "params": self.num_params()}

    def extra_repr(self) -> str:
        c = self.config
        return (f"dim={c.dim}, levels={c.levels}, features={c.features}, base={c.base}, finest={c.finest}, "
                f"table_size={c.table_size}, dense_levels={self.n_dense}")


def grid_param_groups(model: nn.Module, encoding: GridEncoding, lr: float,
                      encoding_lr: float | None = None) -> list[dict[str, Any]]:
    """Two optimizer groups of a model with a grid ``encoding``: everything else at ``lr``, then the tables at
    ``encoding_lr`` (``None``: :data:`ENCODING_LR_FACTOR` x ``lr``); each with the ``base_lr`` its schedule scales."""
    tables = {id(p) for p in encoding.parameters()}
    rest = [p for p in model.parameters() if id(p) not in tables]
    enc_lr = encoding_lr if encoding_lr is not None else lr * ENCODING_LR_FACTOR
    return [{"params": rest, "base_lr": lr, "lr": lr},
            {"params": list(encoding.parameters()), "base_lr": enc_lr, "lr": enc_lr}]


def grid_batch_size(n_points: int) -> int | None:
    """Random batches of :data:`GRID_BATCH` for more points than that, else ``None`` (the fit's own rule)."""
    return GRID_BATCH if n_points > GRID_BATCH else None
