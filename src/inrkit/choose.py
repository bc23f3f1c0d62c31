"""``--arch auto``: the model a fit uses when the user names none, sized from the signal.

The rule (measured on full-size photographs and real volumes, one CPU thread; docs/choosing.md):

- A signal sampled on a 2D or 3D grid (a photo, a 2D field, a volume) gets a grid-encoded model
  (:func:`inrkit.models.grid`): multi-resolution feature grids and a small ReLU MLP. Its weights are stored
  as float16, and its size follows the data: at most :data:`BYTES_RATIO` of the raw samples' bytes (8-bit
  pixels, the volume's own sample type) and at most :data:`BYTES_PER_SAMPLE` byte per sample value, so 8-bit
  photos and volumes get 0.4 and float32 volumes 0.25 of their bytes. 2D: eight levels up to the image's
  resolution with hash tables as large as that budget allows; 3D: six dense levels, the finest resolution as
  high as the budget allows.
- A grid signal too small for that (a crop of a few thousand pixels) gets a SIREN with three hidden layers
  whose width fits the same budget (16 to 256).
- Any other signal (a mesh's SDF, an analytic function, a 1D or 4D grid) keeps the SIREN 256x3.

The choice and its reason go into the model header (``extra["auto"]``) and the fit summary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from inrkit.metrics import raw_bytes
from inrkit.models.grid import GridConfig
from inrkit.signals.base import GridSignal
from inrkit.train.fit import FitConfig, with_defaults

BYTES_RATIO = 0.4
"""Largest file size of an auto model as a fraction of the raw data's bytes (reached by 8-bit data)."""
BYTES_PER_SAMPLE = 1.0
"""Largest file size of an auto model per sample value (half a float16 weight per value): it binds for data of
more than 2 bytes a sample (float32 data get 1/4 of their bytes)."""
WEIGHT_BYTES = 2
"""Bytes per stored weight of an auto model (float16)."""
GRID_PLAN: dict[int, dict[str, Any]] = {
    2: {"mode": "hashed", "levels": 8, "features": 2, "hidden": (64, 64), "steps": 2000, "lr": 3e-3},
    3: {"mode": "dense", "levels": 6, "features": 2, "hidden": (32, 32), "steps": 2000, "lr": 3e-3},
}
"""Per coordinate dimension: how the grid is sized (``hashed``: levels up to the signal's resolution, the hash
table as large as the budget allows; ``dense``: every level dense, the finest resolution as high as the budget
allows), levels, features per level, MLP widths, training steps and learning rate (the tables': 100x) of the
auto grid (measured; docs/choosing.md)."""
MIN_FINEST = 8
MIN_TABLE = 1024
MAX_AUTO_FINEST = 4096
HEADER_BYTES = 3072
"""Bytes the model file's JSON header and tensor table take (about), subtracted from the weight budget."""
SMALL_SIREN = (16, 256)
"""Width range of the SIREN (3 hidden layers) an auto fit uses for a grid signal too small for a grid model."""


@dataclass
class Choice:
    """What ``--arch auto`` picked: the architecture and its fields, the steps, storage, and why."""

    arch: str
    fields: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    weight_dtype: str = "float32"
    reason: str = ""
    lr: float | None = None

    def fit_config(self, config: FitConfig) -> FitConfig:
        """``config`` with this choice's steps and learning rate where it names none."""
        return with_defaults(config, self.steps or None, self.lr or None)

    def summary(self) -> dict[str, Any]:
        """Plain values for the header and the JSON summary."""
        return {"arch": self.arch, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.fields.items()},
                "steps": self.steps, "lr": self.lr, "weight_dtype": self.weight_dtype, "reason": self.reason}


def dense_params(dim: int, levels: int, features: int, base: int, finest: int) -> int:
    """Feature values of ``levels`` dense grids from ``base`` to ``finest`` cells per axis (as
    :class:`inrkit.models.grid.GridEncoding` lays them out)."""
    return GridConfig(dim, levels, features, base, finest, (finest + 1) ** dim).num_entries() * features


def _base(finest: int) -> int:
    return max(1, min(16, finest // 8))


def mlp_params(in_features: int, hidden: tuple[int, ...], out_dim: int) -> int:
    """Weights and biases of the MLP after the grid."""
    dims = [in_features, *hidden, out_dim]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


def _largest(lo: int, hi: int, fits: Any) -> int:
    """The largest integer in ``[lo, hi]`` for which the monotone predicate ``fits`` holds (``fits(lo)`` true)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def grid_choice(dim: int, out_dim: int, budget_params: int, largest_side: int) -> Choice | None:
    """The auto grid for a ``dim``-D signal within ``budget_params`` stored weights (``None``: none fits)."""
    plan = GRID_PLAN[dim]
    levels, features, hidden = plan["levels"], plan["features"], plan["hidden"]
    spare = budget_params - mlp_params(levels * features, hidden, out_dim)
    top = max(MIN_FINEST, min(MAX_AUTO_FINEST, largest_side))
    if plan["mode"] == "hashed":  # levels up to the signal's resolution; the table as large as the budget allows
        finest, base = top, _base(top)

        def table_fits(table: int) -> bool:
            return GridConfig(dim, levels, features, base, finest, table).num_entries() * features <= spare

        if not table_fits(MIN_TABLE):
            return None
        table = _largest(MIN_TABLE, (finest + 1) ** dim, table_fits)
    else:  # every level dense; the finest resolution as high as the budget allows

        def finest_fits(res: int) -> bool:
            return dense_params(dim, levels, features, _base(res), res) <= spare

        if not finest_fits(MIN_FINEST):
            return None
        finest = _largest(MIN_FINEST, top, finest_fits)
        base, table = _base(finest), (finest + 1) ** dim
    fields = {"levels": levels, "features": features, "base": base, "finest": finest, "table_size": table,
              "hidden": hidden}
    return Choice("grid", fields, plan["steps"], "float16", lr=plan["lr"])


def choose(signal: Any) -> Choice:
    """The model ``--arch auto`` fits to ``signal`` (see the module docstring)."""
    if isinstance(signal, GridSignal) and signal.dim in GRID_PLAN:
        meta = signal.metadata()
        raw = raw_bytes(meta) or 0
        budget_bytes = min(BYTES_RATIO * raw, BYTES_PER_SAMPLE * math.prod(signal.shape) * signal.out_dim)
        budget = int((budget_bytes - HEADER_BYTES) / WEIGHT_BYTES)
        choice = grid_choice(signal.dim, signal.out_dim, budget, max(signal.shape))
        if choice is not None:
            kind = str(meta.get("kind", "grid"))
            article = "an" if kind[0] in "aeiou" else "a"
            dtype, f = meta.get("dtype", "float32"), choice.fields
            layout = (f"{f['levels']} grid levels up to {f['finest']} cells per axis, hash tables of {f['table_size']}"
                      if GRID_PLAN[signal.dim]["mode"] == "hashed" else
                      f"{f['levels']} dense grid levels up to {f['finest']} cells per axis")
            choice.reason = (f"{article} {kind} of {raw} raw bytes ({dtype} samples): {layout}, float16 weights "
                             f"sized to about {budget_bytes / raw:.2g} of the data's bytes")
            return choice
        width = int(max(SMALL_SIREN[0], min(SMALL_SIREN[1], math.isqrt(max(budget, 1) // 2))))
        return Choice("siren", {"hidden": (width,) * 3}, None, "float16",
                      f"{raw} raw bytes is too little for a grid model: a SIREN {width}x3 in float16, sized to about "
                      f"{budget_bytes / raw:.2g} of the data's bytes")
    kind = getattr(signal, "kind", type(signal).__name__)
    return Choice("siren", {}, None, "float32", f"a {kind} signal is not sampled on a 2D or 3D grid: SIREN 256x3")
