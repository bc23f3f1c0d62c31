"""An INR seen as a field over a physical box: coordinate mapping, value units, batched evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inrkit.amr.mesh import parse_domain
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models.mlp import MLP


@dataclass
class InrField:
    """Evaluate ``model`` at physical coordinates.

    Args:
        model: the INR; it takes coordinates in [-1, 1]^d.
        model_domain: ``[d, 2]`` physical extent of the model's [-1, 1]^d (signal metadata ``domain``).
        value_scale, value_offset: raw value = network output * scale + offset (per channel).
        device: torch device for evaluation.
        domain_assumed: the model file carries no domain (e.g. ``.npz``), so [-1, 1]^d was assumed.
    """

    model: MLP
    model_domain: np.ndarray
    value_scale: np.ndarray
    value_offset: np.ndarray
    device: torch.device = torch.device("cpu")
    batch: int = 65536
    domain_assumed: bool = False

    @classmethod
    def from_model(cls, model: MLP, header: dict | None = None, device: torch.device | str = "cpu") -> "InrField":
        """Build from a model and its file header (signal metadata: ``domain``, ``value_scale``, ``value_offset``)."""
        sig = (header or {}).get("signal", {}) or {}
        d, c = model.coord_dim, model.out_dim
        try:
            dom = parse_domain(sig["domain"], d) if sig.get("domain") else np.tile([-1.0, 1.0], (d, 1))
            scale = np.broadcast_to(np.asarray(sig.get("value_scale", 1.0), np.float64), (c,)).copy()
            offset = np.broadcast_to(np.asarray(sig.get("value_offset", 0.0), np.float64), (c,)).copy()
        except (ValueError, TypeError, InvalidInputError) as exc:
            raise InvalidFileError(f"model header has unusable signal metadata: {exc}") from exc
        model = model.to(device).eval()
        return cls(model, dom, scale, offset, torch.device(device), domain_assumed=not sig.get("domain"))

    @property
    def model64(self) -> MLP:
        """A float64 copy of the model (cached), used for the ID and error checks."""
        if getattr(self, "_model64", None) is None:
            self._model64 = self.model.copy().double()
        return self._model64

    @property
    def dim(self) -> int:
        return self.model.coord_dim

    @property
    def out_dim(self) -> int:
        return self.model.out_dim

    def to_model_coords(self, x: np.ndarray) -> np.ndarray:
        """Physical coordinates -> the model's [-1, 1]^d input."""
        lo, hi = self.model_domain[:, 0], self.model_domain[:, 1]
        return 2.0 * (np.asarray(x, np.float64) - lo) / (hi - lo) - 1.0

    @torch.no_grad()
    def network(self, x: np.ndarray) -> np.ndarray:
        """Network output (normalised units) at physical points ``[N, d]`` -> ``[N, C]``."""
        xin = self.to_model_coords(x).reshape(-1, self.dim)
        dtype = next(self.model.parameters()).dtype
        out = [self.model(torch.as_tensor(xin[i:i + self.batch], dtype=dtype, device=self.device))
               .double().cpu().numpy() for i in range(0, len(xin), self.batch)]
        return np.concatenate(out) if out else np.zeros((0, self.out_dim))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Raw values (signal units) at physical points ``[N, d]`` -> ``[N, C]``."""
        return self.network(x) * self.value_scale + self.value_offset


def load_field(path: str | Path, device: str | None = "cpu") -> tuple[InrField, dict]:
    """Load any inrkit model file (safetensors or ``.npz``) as an :class:`InrField`."""
    from inrkit.models.io import load_model
    from inrkit.utils import resolve_device

    dev = resolve_device(device)
    model, header = load_model(path, device=dev)
    if not isinstance(model, MLP):
        raise InvalidFileError(f"{path}: meshing needs a coordinate MLP, not a {type(model).__name__}")
    return InrField.from_model(model, header, dev), header
