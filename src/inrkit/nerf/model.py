"""The NeRF MLP (Mildenhall et al. 2020) with per-layer widths, and its safetensors file format.

Architecture (defaults = the paper's): positional encodings of the point (``L=10``)
and of the view direction (``L=4``), each including the raw input; a ReLU density trunk
of 8 layers of 256 with the encoded point concatenated again before layer 5 (skip
after layer index 4); a density head (ReLU in the paper, softplus(z - 1) by default here); a linear 256-wide
feature layer; one ReLU view layer of 128 on ``[feature, encoded direction]``; and a
sigmoid RGB head. Every hidden width can differ per layer (pruning shrinks them).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from ..errors import InvalidFileError, InvalidInputError
from ..utils import atomic_write, resolve_device

FORMAT = "inrkit-nerf"
VERSION = 1
MAX_WIDTH = 1 << 16
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
        widths = [*self.trunk_widths, self.feature_width, *self.view_widths]
        if not self.trunk_widths or not self.view_widths:
            raise InvalidInputError("a NeRF needs at least one trunk layer and one view layer")
        if not all(isinstance(w, int) and 0 < w <= MAX_WIDTH for w in widths):
            raise InvalidInputError(f"invalid NeRF widths {widths}")
        if self.density_activation not in DENSITY_ACTIVATIONS:
            raise InvalidInputError(f"density_activation must be one of {DENSITY_ACTIVATIONS}")
        if not all(isinstance(f, int) and 0 <= f <= 32 for f in (self.pos_freqs, self.dir_freqs)):
            raise InvalidInputError("pos_freqs and dir_freqs must be integers in [0, 32]")
        if not all(isinstance(s, int) and 0 <= s < len(self.trunk_widths) - 1 for s in self.skips):
            raise InvalidInputError(f"skips must be trunk indices below the last layer, got {self.skips}")
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
        self.config = cfg = (config or NeRFConfig()).validate()
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
        cfg = self.config
        ins = [cfg.pos_dim]
        for i, w in enumerate(cfg.trunk_widths[:-1]):
            ins.append(w + (cfg.pos_dim if i in cfg.skips else 0))
        return ins

    def density(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Density ``sigma [N]`` (>= 0) and the trunk's last hidden output ``[N, W]``."""
        x_enc = positional_encoding(x, self.config.pos_freqs)
        h = x_enc
        for i, layer in enumerate(self.trunk):
            h = torch.relu(layer(h))
            if i in self.config.skips:
                h = torch.cat([x_enc, h], -1)
        raw = self.sigma(h).squeeze(-1)
        if self.config.density_activation == "relu":
            return torch.relu(raw), h
        return torch.nn.functional.softplus(raw - 1.0), h

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Points ``x [N, 3]`` and unit view directions ``d [N, 3]`` -> ``(sigma [N], rgb [N, 3])``."""
        sigma, h = self.density(x)
        h = torch.cat([self.feature(h), positional_encoding(d, self.config.dir_freqs)], -1)
        for layer in self.views:
            h = torch.relu(layer(h))
        return sigma, torch.sigmoid(self.rgb(h))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_point(self) -> int:
        """Multiply-adds (2 FLOPs each) of one point's forward pass."""
        return sum(2 * m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))

    def copy(self) -> "NeRFMLP":
        twin = NeRFMLP(NeRFConfig(**json.loads(json.dumps(asdict(self.config)))))
        twin.load_state_dict(self.state_dict())
        return twin.to(next(self.parameters()).device)


# --------------------------------------------------------------------------- files
def _digest(tensors: dict[str, Tensor]) -> str:
    sha = hashlib.sha256()
    for name in sorted(tensors):
        sha.update(name.encode())
        sha.update(tensors[name].detach().cpu().contiguous().float().numpy().tobytes())
    return sha.hexdigest()


def nerf_to_bytes(model: NeRFMLP, scene: dict | None = None, extra: dict | None = None) -> bytes:
    """Serialise to safetensors bytes with an ``inrkit`` JSON header (no pickle)."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "version": VERSION, "config": asdict(model.config),
              "scene": scene or {}, "extra": extra or {}, "sha256": _digest(tensors)}
    return safetensors_save(tensors, metadata={"inrkit": json.dumps(header)})


def save_nerf(model: NeRFMLP, path: str | os.PathLike, scene: dict | None = None, extra: dict | None = None) -> Path:
    """Save a NeRF as one safetensors file, atomically. ``scene``: camera metadata for rendering."""
    data = nerf_to_bytes(model, scene, extra)
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def _config_from_header(header: Any, path: Path) -> NeRFConfig:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidFileError(f"{path}: not an inrkit NeRF file (missing or wrong 'format')")
    if header.get("version") != VERSION:
        raise InvalidFileError(f"{path}: unsupported NeRF file version {header.get('version')!r}")
    try:
        return NeRFConfig(**header["config"]).validate()
    except (KeyError, TypeError, InvalidInputError) as exc:
        raise InvalidFileError(f"{path}: invalid NeRF architecture in the header ({exc})") from exc


def load_nerf(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> tuple[NeRFMLP, dict]:
    """Load a NeRF saved by :func:`save_nerf`; returns ``(model, header)``.

    Every problem (missing, truncated, altered file, shape mismatch) raises :class:`InvalidFileError`.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such NeRF file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if "inrkit" not in meta:
                raise InvalidFileError(f"{path}: safetensors file without an inrkit header")
            header = json.loads(meta["inrkit"])
            model = NeRFMLP(_config_from_header(header, path))
            expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            if set(handle.keys()) != set(expected):
                raise InvalidFileError(f"{path}: tensor names do not match the NeRF architecture in the header")
            tensors = {}
            for name, shape in expected.items():
                if tuple(handle.get_slice(name).get_shape()) != shape:
                    raise InvalidFileError(f"{path}: tensor {name} does not have the shape {shape} the header implies")
                tensors[name] = handle.get_tensor(name).float()
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, OSError, RuntimeError) as exc:
        raise InvalidFileError(f"{path}: corrupt or truncated NeRF file ({exc})") from exc
    if header.get("sha256") != _digest(tensors):
        raise InvalidFileError(f"{path}: checksum mismatch: the weights were altered or damaged")
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise InvalidFileError(f"{path}: the weights hold NaN or infinite values")
    model.load_state_dict(tensors)
    target = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(target), header
