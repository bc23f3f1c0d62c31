"""Signals an INR can fit: images, volumes, 2D fields, analytic functions, SDFs from meshes.

Every kind registers once in :data:`KINDS` (see :mod:`inrkit.signals.kinds`); ``load_signal``,
``render_model`` and ``check_metadata`` dispatch on it.
"""
from __future__ import annotations

from inrkit.signals.analytic import FUNCTIONS, AnalyticSignal, sin_radial
from inrkit.signals.base import GridSignal, Signal, grid_coords, predict
from inrkit.signals.grid import FieldSignal, ImageSignal, VolumeSignal, read_grid
from inrkit.signals.kinds import (
                                  KINDS,
                                  SignalKind,
                                  SignalOptions,
                                  check_metadata,
                                  load_signal,
                                  register_kind,
                                  render_model,
)
from inrkit.signals.readers import read_image, read_npy, read_raw, read_vti, read_vtk_legacy, write_vti
from inrkit.signals.sdf import SDFSignal

__all__ = [
    "FUNCTIONS", "KINDS", "AnalyticSignal", "FieldSignal", "GridSignal", "ImageSignal", "SDFSignal", "Signal",
    "SignalKind", "SignalOptions", "VolumeSignal", "check_metadata", "grid_coords", "load_signal", "predict",
    "read_grid",
    "read_image", "read_npy", "read_raw", "read_vti", "read_vtk_legacy", "register_kind", "render_model",
    "sin_radial", "write_vti",
]
