"""Thin re-export: the NeRF MLP lives in :mod:`inrkit.models.nerf_mlp` and saves with :mod:`inrkit.models.io`."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from inrkit.errors import InvalidFileError
from inrkit.models.io import load_model, save_model
from inrkit.models.nerf_mlp import DENSITY_ACTIVATIONS, NeRFConfig, NeRFMLP, positional_encoding

__all__ = ["DENSITY_ACTIVATIONS", "NeRFConfig", "NeRFMLP", "load_nerf", "positional_encoding", "save_nerf"]


def save_nerf(model: NeRFMLP, path: str | os.PathLike, scene: dict | None = None, extra: dict | None = None) -> Path:
    """Alias of :func:`inrkit.models.io.save_model` (``scene`` is stored as the signal metadata)."""
    return save_model(model, path, signal=scene, extra=extra)


def load_nerf(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> tuple[NeRFMLP, dict]:
    """:func:`inrkit.models.io.load_model` for NeRF files; ``header["scene"]`` mirrors ``header["signal"]``."""
    model, header = load_model(path, device)
    if not isinstance(model, NeRFMLP):
        raise InvalidFileError(f"{path}: not a NeRF model file")
    return model, {**header, "scene": header.get("signal", {})}
