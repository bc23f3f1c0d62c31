"""The one public entry point behind ``inrkit mesh``: model file in, VTU/PVD (+ PNG) out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .baselines import mesh_rmse, uniform_mesh, vertex_values
from .export import preview_png, write_mesh
from .field import InrField, load_field
from .mesh import parse_domain
from .pruning import PruningAMRConfig, pruning_amr


def mesh_field(field: InrField, out: str | Path, domain=None, config: PruningAMRConfig | None = None,
               uniform: int | None = None, preview: str | Path | None = None, rmse_points: int = 16384) -> dict:
    """Mesh ``field`` with PruningAMR (or uniformly to level ``uniform``), write it, and report.

    Returns ``{"output", "dofs", "elements", "hanging", "iterations", "seconds", "rmse", "max_level",
    "history", ...}``; ``rmse`` compares the mesh interpolant with the INR on random domain points (raw units).
    """
    cfg = config or PruningAMRConfig()
    dom = field.model_domain.copy() if domain is None else parse_domain(domain, field.dim)
    if field.dim not in (2, 3, 4):
        raise InvalidInputError(f"meshing needs a 2D, 3D or 4D model, this one takes {field.dim} coordinates")
    _check_finite(vertex_values(field, uniform_mesh(dom, 1, cfg.base)))
    t0 = time.perf_counter()
    if uniform is not None:
        if uniform < 0:
            raise InvalidInputError("--uniform LEVEL must be >= 0")
        mesh, history, iterations = uniform_mesh(dom, uniform, cfg.base), [], 0
    else:
        res = pruning_amr(field, dom, cfg)
        mesh, history, iterations = res.mesh, res.history, res.iterations
    values = vertex_values(field, mesh)
    _check_finite(values)
    seconds = time.perf_counter() - t0
    path = write_mesh(mesh, values, out)
    report = {"output": str(path), "method": "uniform" if uniform is not None else "pruning-amr",
              "dim": mesh.dim, "domain": dom.tolist(), "dofs": mesh.dofs, "elements": mesh.num_elements,
              "hanging": mesh.num_hanging, "iterations": iterations, "seconds": seconds,
              "rmse": mesh_rmse(mesh, values, field, n=rmse_points),
              "max_level": mesh.max_level, "config": {k: getattr(cfg, k) for k in
                                                      ("eps", "T", "P", "n_id", "n_err", "max_iters", "base")},
              "history": history}
    if preview is not None:
        shown = preview_png(mesh, values, preview)
        report["preview"], report["preview_renderer"] = shown["path"], shown["renderer"]
    return report


def _check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("the model gives non-finite values (NaN/inf) on the domain: corrupted weights?")


def mesh_model(model_path: str | Path, out: str | Path, domain=None, config: PruningAMRConfig | None = None,
               uniform: int | None = None, preview: str | Path | None = None, device: str | None = "cpu") -> dict:
    """Load an inrkit model (safetensors or ``.npz``) and mesh it: see :func:`mesh_field`."""
    field, _ = load_field(model_path, device)
    report = mesh_field(field, out, domain, config, uniform, preview)
    report["model"] = str(model_path)
    return report


