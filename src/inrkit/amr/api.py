"""The one public entry point behind ``inrkit mesh``: model file in, VTU/PVD (+ PNG) out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from inrkit.amr.baselines import mesh_rmse, uniform_mesh, vertex_values
from inrkit.amr.export import preview_png, write_mesh
from inrkit.amr.field import InrField, load_field
from inrkit.amr.mesh import parse_domain
from inrkit.amr.pruning import PruningAMRConfig, pruning_amr, resolve_base
from inrkit.errors import InvalidInputError


def mesh_field(field: InrField, out: str | Path, domain=None, config: PruningAMRConfig | None = None,
               uniform: int | None = None, preview: str | Path | None = None, rmse_points: int = 16384,
               hanging: str = "conforming") -> dict:
    """Mesh ``field`` with PruningAMR (or uniformly to level ``uniform``), write it, and report.

    Args:
        hanging: ``"conforming"`` (default): hanging nodes carry the value of the coarse element's interpolant,
            so the written field and the RMSE are those of a continuous interpolant (as MFEM); ``"inr"``: the
            INR's own value at every vertex (may jump across non-conforming faces).

    Returns ``{"output", "dofs", "true_dofs", "elements", "hanging", "iterations", "seconds", "rmse",
    "max_level", "domain", "domain_source", "warnings", "history", ...}``; ``rmse`` compares the mesh interpolant
    with the INR on random domain points (raw units).
    """
    cfg = config or PruningAMRConfig()
    if hanging not in ("conforming", "inr"):
        raise InvalidInputError(f"hanging must be 'conforming' or 'inr', got {hanging!r}")
    if field.dim not in (2, 3, 4):
        raise InvalidInputError(f"meshing needs a 2D, 3D or 4D model, this one takes {field.dim} coordinates")
    if domain is not None:
        dom, source = parse_domain(domain, field.dim), "--domain"
    elif field.domain_assumed:
        dom = field.model_domain.copy()
        source = (f"assumed {dom.tolist()}: the model file carries no domain, so the network's own input box "
                  f"[-1, 1]^{field.dim} is meshed (outside its training box a network extrapolates); pass --domain")
    else:
        dom, source = field.model_domain.copy(), "model"
    base = resolve_base(cfg.base, dom, cfg.init_level)
    _check_finite(vertex_values(field, uniform_mesh(dom, 1, base), conforming=False))
    t0 = time.perf_counter()
    warnings: list[str] = []
    if uniform is not None:
        if uniform < 0:
            raise InvalidInputError("--uniform LEVEL must be >= 0")
        mesh, history, iterations = uniform_mesh(dom, uniform, base), [], 0
    else:
        res = pruning_amr(field, dom, cfg)
        mesh, history, iterations = res.mesh, res.history, res.iterations
        warnings = list(res.warnings)
    amr_seconds = time.perf_counter() - t0
    values = vertex_values(field, mesh, conforming=hanging == "conforming")
    _check_finite(values)
    seconds = time.perf_counter() - t0
    path = write_mesh(mesh, values, out)
    evaluated = sum(h["evaluated"] for h in history)
    report = {"output": str(path), "method": "uniform" if uniform is not None else "pruning-amr",
              "dim": mesh.dim, "domain": dom.tolist(), "domain_source": source, "base": base.tolist(),
              "dofs": mesh.dofs, "true_dofs": mesh.true_dofs, "elements": mesh.num_elements,
              "hanging": mesh.num_hanging, "hanging_values": hanging, "iterations": iterations,
              "seconds": seconds, "amr_seconds": amr_seconds,
              "ms_per_element": 1e3 * sum(h["seconds"] for h in history) / evaluated if evaluated else None,
              "rmse": mesh_rmse(mesh, values, field, n=rmse_points),
              "max_level": mesh.max_level, "warnings": warnings,
              "config": {k: (getattr(cfg, k) if k != "base" else base.tolist()) for k in
                         ("error", "id_activations", "eps", "T", "P", "n_id", "n_err", "init_level", "max_iters",
                          "max_dofs", "base")},
              "history": history}
    if preview is not None:
        shown = preview_png(mesh, values, preview)
        report["preview"], report["preview_renderer"] = shown["path"], shown["renderer"]
    return report


def _check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("the model gives non-finite values (NaN/inf) on the domain: corrupted weights?")


def mesh_model(model_path: str | Path, out: str | Path, domain=None, config: PruningAMRConfig | None = None,
               uniform: int | None = None, preview: str | Path | None = None, device: str | None = "cpu",
               hanging: str = "conforming") -> dict:
    """Load an inrkit model (safetensors or ``.npz``) and mesh it: see :func:`mesh_field`."""
    field, _ = load_field(model_path, device)
    report = mesh_field(field, out, domain, config, uniform, preview, hanging=hanging)
    report["model"] = str(model_path)
    return report


