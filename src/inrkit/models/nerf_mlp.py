"""The NeRF MLP (Mildenhall et al. 2020) with per-layer widths: a registered model of the one file format.

Architecture (defaults = the paper's): positional encodings of the point (``L=10``)
and of the view direction (``L=4``), each including the raw input; a ReLU density trunk
of 8 layers of 256 with the encoded point concatenated again before layer 5 (skip
after layer index 4); a density head (ReLU in the paper, softplus(z - 1) by default here); a linear 256-wide
feature layer; one ReLU view layer of 128 on ``[feature, encoded direction]``; and a
sigmoid RGB head. Every hidden width can differ per layer (pruning shrinks them through
:meth:`NeRFMLP.prunable_groups` and :mod:`inrkit.models.surgery`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_MODEL_ELEMENTS, MAX_NERF_LAYERS, MAX_NERF_WIDTH, MAX_TENSOR_ELEMENTS
from inrkit.models.surgery import PrunableGroup

MAX_WIDTH = MAX_NERF_WIDTH
DENSITY_ACTIVATIONS = ("softplus", "relu")


def positional_encoding(x: Tensor, num_freqs: int) -> Tensor:
    """``[x, sin(2^k x), cos(2^k x)]_{k<L}`` for ``x [N, d]`` -> ``[N, d (1 + 2L)]``."""
    if num_freqs == 0:
        return x
    freqs = 2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)
    xf = (x[:, None, :] * freqs[:, None]).reshape(x.shape[0], -1)
    return torch.cat([x, torch.sin(xf), torch.cos(xf)], -1)


@dataclass
class NeRFConfig:
    """Architecture of a :class:`NeRFMLP`.

    Args:
        pos_freqs: encoding frequencies of the 3D point (paper: 10).
        dir_freqs: encoding frequencies of the view direction (paper: 4).
        trunk_widths: widths of the density trunk layers (paper: 8 x 256).
        skips: trunk layer indices whose output is concatenated with the encoded point.
        feature_width: width of the linear feature layer (paper: 256).
        view_widths: widths of the view-dependent ReLU layers (paper: [128]).
        density_activation: ``"softplus"`` (default: ``softplus(z - 1)`` as in mip-NeRF; small
            CPU-sized models with the paper's ``"relu"`` often start with a dead, all-zero density).
    """

    pos_freqs: int = 10
    dir_freqs: int = 4
    trunk_widths: list[int] = field(default_factory=lambda: [256] * 8)
    skips: list[int] = field(default_factory=lambda: [4])
    feature_width: int = 256
    view_widths: list[int] = field(default_factory=lambda: [128])
    density_activation: str = "softplus"

    @classmethod
    def sized(cls, width: int = 256, depth: int = 8, **kw: Any) -> "NeRFConfig":
        """The paper's layout scaled: ``depth`` trunk layers of ``width``, view layer ``width // 2``."""
        if depth < 2 or width < 2:
            raise InvalidInputError(f"need depth >= 2 and width >= 2, got depth={depth}, width={width}")
        skips = kw.pop("skips", [depth // 2] if depth > 2 else [])
        return cls(trunk_widths=[width] * depth, skips=skips, feature_width=width,
                   view_widths=[max(1, width // 2)], **kw)

    def validate(self) -> "NeRFConfig":
        """Check types and bounds (:mod:`inrkit.limits`), parameter counts included, before anything is built."""
        lists = (self.trunk_widths, self.view_widths, self.skips)
        if not all(isinstance(v, list) for v in lists):
            raise InvalidInputError("trunk_widths, view_widths and skips must be lists")
        if not self.trunk_widths or not self.view_widths:
            raise InvalidInputError("a NeRF needs at least one trunk layer and one view layer")
        if max(len(self.trunk_widths), len(self.view_widths), len(self.skips)) > MAX_NERF_LAYERS:
            raise InvalidInputError(f"a NeRF has at most {MAX_NERF_LAYERS} trunk and view layers")
        widths = [*self.trunk_widths, self.feature_width, *self.view_widths]
        if not all(type(w) is int and 0 < w <= MAX_WIDTH for w in widths):
            raise InvalidInputError(f"NeRF widths must be integers in [1, {MAX_WIDTH}], got {str(widths)[:200]}")
        if not isinstance(self.density_activation, str) or self.density_activation not in DENSITY_ACTIVATIONS:
            raise InvalidInputError(f"density_activation must be one of {DENSITY_ACTIVATIONS}")
        if not all(type(f) is int and 0 <= f <= 32 for f in (self.pos_freqs, self.dir_freqs)):
            raise InvalidInputError("pos_freqs and dir_freqs must be integers in [0, 32]")
        if not all(type(s) is int and 0 <= s < len(self.trunk_widths) - 1 for s in self.skips):
            raise InvalidInputError(f"skips must be trunk indices below the last layer, got {str(self.skips)[:100]}")
        sizes = [math.prod(shape) for shape in nerf_shapes(self).values()]
        if max(sizes) > MAX_TENSOR_ELEMENTS or sum(sizes) > MAX_MODEL_ELEMENTS:
            raise InvalidInputError(f"a NeRF of {sum(sizes)} weights is too large (at most {MAX_MODEL_ELEMENTS})")
        return self

    @property
    def pos_dim(self) -> int:
        return 3 * (1 + 2 * self.pos_freqs)

    @property
    def dir_dim(self) -> int:
        return 3 * (1 + 2 * self.dir_freqs)


class NeRFMLP(nn.Module):
    """NeRF radiance field ``(x, d) -> (sigma, rgb)``.

    Args:
        config: the architecture (:class:`NeRFConfig`); paper defaults if omitted.
        seed: seeds PyTorch's default initialisation for reproducible weights.
    """

    def __init__(self, config: NeRFConfig | None = None, seed: int | None = None) -> None:
        super().__init__()
        self._spec = cfg = copy_config(config or NeRFConfig()).validate()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            ins = self._trunk_inputs()
            self.trunk = nn.ModuleList(nn.Linear(i, o) for i, o in zip(ins, cfg.trunk_widths))
            self.sigma = nn.Linear(cfg.trunk_widths[-1], 1)
            self.feature = nn.Linear(cfg.trunk_widths[-1], cfg.feature_width)
            v_in = [cfg.feature_width + cfg.dir_dim, *cfg.view_widths[:-1]]
            self.views = nn.ModuleList(nn.Linear(i, o) for i, o in zip(v_in, cfg.view_widths))
            self.rgb = nn.Linear(cfg.view_widths[-1], 3)

    def _trunk_inputs(self) -> list[int]:
        cfg = self._spec
        ins = [cfg.pos_dim]
        for i, w in enumerate(cfg.trunk_widths[:-1]):
            ins.append(w + (cfg.pos_dim if i in cfg.skips else 0))
        return ins

    @property
    def config(self) -> NeRFConfig:
        """The architecture with the current (possibly pruned) widths; a fresh copy."""
        def width(name: str) -> int:
            return int(self.get_parameter(f"{name}.weight").shape[0])

        trunk = [width(f"trunk.{i}") for i in range(len(self.trunk))]
        views = [width(f"views.{j}") for j in range(len(self.views))]
        return replace(copy_config(self._spec), trunk_widths=trunk, feature_width=width("feature"), view_widths=views)

    def prunable_groups(self) -> list[PrunableGroup]:
        """Groups ``trunk.i``, ``feature``, ``views.j``; a trunk layer before a skip is read after the
        ``pos_dim`` encoding columns; the last trunk layer feeds the density head and the feature layer."""
        last, skips, pos_dim = len(self.trunk) - 1, self._spec.skips, self._spec.pos_dim
        groups = []
        for i in range(len(self.trunk)):
            consumers = ([("sigma.weight", 0), ("feature.weight", 0)] if i == last
                         else [(f"trunk.{i + 1}.weight", pos_dim if i in skips else 0)])
            groups.append(self._group(f"trunk.{i}", consumers))
        groups.append(self._group("feature", [("views.0.weight", 0)]))
        for j in range(len(self.views)):
            nxt = f"views.{j + 1}.weight" if j < len(self.views) - 1 else "rgb.weight"
            groups.append(self._group(f"views.{j}", [(nxt, 0)]))
        return groups

    def _group(self, name: str, consumers: list[tuple[str, int]]) -> PrunableGroup:
        width = int(self.get_parameter(f"{name}.weight").shape[0])
        return PrunableGroup(name, (f"{name}.weight", f"{name}.bias"), consumers, width)

    def density(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Density ``sigma [N]`` (>= 0) and the trunk's last hidden output ``[N, W]``."""
        x_enc = positional_encoding(x, self._spec.pos_freqs)
        h = x_enc
        for i, layer in enumerate(self.trunk):
            h = torch.relu(layer(h))
            if i in self._spec.skips:
                h = torch.cat([x_enc, h], -1)
        raw = self.sigma(h).squeeze(-1)
        if self._spec.density_activation == "relu":
            return torch.relu(raw), h
        return torch.nn.functional.softplus(raw - 1.0), h

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Points ``x [N, 3]`` and unit view directions ``d [N, 3]`` -> ``(sigma [N], rgb [N, 3])``."""
        sigma, h = self.density(x)
        h = torch.cat([self.feature(h), positional_encoding(d, self._spec.dir_freqs)], -1)
        for layer in self.views:
            h = torch.relu(layer(h))
        return sigma, torch.sigmoid(self.rgb(h))

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_point(self) -> int:
        """Multiply-adds (2 FLOPs each) of one point's forward pass."""
        return sum(2 * m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))

    def copy(self) -> "NeRFMLP":
        twin = NeRFMLP(self.config)
        twin.load_state_dict(self.state_dict())
        return twin.to(next(self.parameters()).device)


def copy_config(config: NeRFConfig) -> NeRFConfig:
    """A deep copy of ``config`` (its lists are not shared)."""
    return NeRFConfig(**json.loads(json.dumps(asdict(config))))


def nerf_shapes(config: NeRFConfig) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a :class:`NeRFMLP` with ``config``, by ``state_dict`` name, in sorted order."""
    cfg = config
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name: str, n_in: int, n_out: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (n_out, n_in), (n_out,)

    n_in = cfg.pos_dim
    for i, w in enumerate(cfg.trunk_widths):
        linear(f"trunk.{i}", n_in, w)
        n_in = w + (cfg.pos_dim if i in cfg.skips else 0)
    linear("sigma", cfg.trunk_widths[-1], 1)
    linear("feature", cfg.trunk_widths[-1], cfg.feature_width)
    n_in = cfg.feature_width + cfg.dir_dim
    for j, w in enumerate(cfg.view_widths):
        linear(f"views.{j}", n_in, w)
        n_in = w
    linear("rgb", cfg.view_widths[-1], 3)
    return {k: shapes[k] for k in sorted(shapes)}
