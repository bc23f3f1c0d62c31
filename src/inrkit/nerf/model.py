"""NeRF files: the NeRF MLP (:mod:`inrkit.models.nerf_mlp`) and the grid field (:mod:`inrkit.nerf.grid_field`)
save with :mod:`inrkit.models.io`."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from inrkit.errors import InvalidFileError
from inrkit.models.io import load_model, save_model
from inrkit.models.nerf_mlp import DENSITY_ACTIVATIONS, NeRFConfig, NeRFMLP, positional_encoding
from inrkit.nerf.grid_field import GridNeRF

__all__ = ["DENSITY_ACTIVATIONS", "NeRFConfig", "NeRFMLP", "load_nerf", "positional_encoding", "save_nerf"]


def save_nerf(model: NeRFMLP | GridNeRF, path: str | os.PathLike, scene: dict | None = None,
              extra: dict | None = None) -> Path:
    """Alias of :func:`inrkit.models.io.save_model` (``scene`` is stored as the signal metadata)."""
    return save_model(model, path, signal=scene, extra=extra)


def load_nerf(path: str | os.PathLike,
              device: str | torch.device | None = "cpu") -> tuple[NeRFMLP | GridNeRF, dict]:
    """:func:`inrkit.models.io.load_model` for NeRF files; ``header["scene"]`` mirrors ``header["signal"]``.

    A grid field's occupancy grid is rebuilt from its density.
    """
    model, header = load_model(path, device)
    if not isinstance(model, (NeRFMLP, GridNeRF)):
        raise InvalidFileError(f"{path}: not a NeRF model file")
    if isinstance(model, GridNeRF):
        model.rebuild_occupancy()
    return model, {**header, "scene": header.get("signal", {})}
