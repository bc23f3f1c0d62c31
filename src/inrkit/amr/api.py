"""The one public entry point behind ``inrkit mesh``: model file in, VTU/PVD (+ PNG) out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from inrkit.amr.baselines import mesh_rmse, uniform_comparison, uniform_mesh, vertex_values
from inrkit.amr.export import preview_png, write_mesh
from inrkit.amr.field import InrField, load_field
from inrkit.amr.mesh import parse_domain
from inrkit.amr.mesher import MeshConfig, build_mesh
from inrkit.amr.pruning import PruningAMRConfig, resolve_base
from inrkit.amr.timeslices import mesh_time_slices, parse_times, slice_field
from inrkit.errors import InvalidInputError
from inrkit.signals.frames import clean_array_name


def mesh_field(field: InrField, out: str | Path, config: PruningAMRConfig | None = None,
               mesh: MeshConfig | None = None, name: str = "inr") -> dict:
    """Mesh ``field`` as ``mesh`` says (PruningAMR with ``config``, uniform refinement or error-driven AMR), write it,
    and report.

    ``name``: the point-data array's name (the source's array name when the header records one).
    Returns ``{"output", "method", "dofs", "true_dofs", "elements", "hanging", "iterations", "seconds", "rmse",
    "max_level", "domain", "domain_source", "warnings", "history", ...}``; ``rmse`` compares the mesh interpolant
    with the INR on ``mesh.rmse_points`` random domain points (raw units).
    """
    cfg = config or PruningAMRConfig()
    how = (mesh or MeshConfig()).validate(cfg)
    if field.dim not in (2, 3, 4):
        raise InvalidInputError(f"meshing needs a 2D, 3D or 4D model, this one takes {field.dim} coordinates")
    check_mesh_output(out, field.dim)
    if how.domain is not None:
        dom, source = parse_domain(how.domain, field.dim), "--domain"
    elif field.domain_assumed:
        dom = field.model_domain.copy()
        source = (f"assumed {dom.tolist()}: the model file carries no domain, so the network's own input box "
                  f"[-1, 1]^{field.dim} is meshed (outside its training box a network extrapolates); pass --domain")
    else:
        dom, source = field.model_domain.copy(), "model"
    if how.times not in (None, "auto") and (field.dim != 4 or how.four_d != "slices"):
        raise InvalidInputError("--times sets the slice times of a 4D model meshed with --four-d slices")
    if field.dim == 4 and how.four_d == "slices":
        parse_times(how.times, dom[-1])  # refuse bad times before the finite-value check
        _check_finite(vertex_values(field, uniform_mesh(dom, 1, 1), conforming=False))
        report = mesh_time_slices(field, out, dom, cfg, how, name)
        report.update(array=name, method=how.method, domain=dom.tolist(), domain_source=source,
                      hanging_values=how.hanging, amr_seconds=report["seconds"],
                      config=_config_report(cfg, report["base"]))
        evaluated = sum(h["evaluated"] for h in report["history"])
        report["ms_per_element"] = (1e3 * sum(h["seconds"] for h in report["history"]) / evaluated
                                    if evaluated else None)
        if how.compare_uniform and how.method != "uniform":
            fields = [slice_field(field, t) for t in report["times"]]
            _add_uniform_comparison(report, fields, dom[:-1], np.asarray(report["base"]), how.rmse_points, cfg,
                                    per=len(fields))
        return report
    base = resolve_base(cfg.base, dom, cfg.init_level)
    _check_finite(vertex_values(field, uniform_mesh(dom, 1, base), conforming=False))
    t0 = time.perf_counter()
    built = build_mesh(how, field, dom, base, cfg)
    amr_seconds = time.perf_counter() - t0
    values = vertex_values(field, built.mesh, conforming=how.hanging == "conforming")
    _check_finite(values)
    seconds = time.perf_counter() - t0
    path = write_mesh(built.mesh, values, out, name=name)
    history, m = built.history, built.mesh
    evaluated = sum(h["evaluated"] for h in history)
    report = {"output": str(path), "method": how.method,
              "dim": m.dim, "domain": dom.tolist(), "domain_source": source, "array": name,
              "base": base.tolist(),
              "dofs": m.dofs, "true_dofs": m.true_dofs, "elements": m.num_elements,
              "hanging": m.num_hanging, "hanging_values": how.hanging, "iterations": built.iterations,
              "seconds": seconds, "amr_seconds": amr_seconds,
              "ms_per_element": 1e3 * sum(h["seconds"] for h in history) / evaluated if evaluated else None,
              "rmse": mesh_rmse(m, values, field, n=how.rmse_points),
              "max_level": m.max_level, "warnings": built.warnings,
              "config": _config_report(cfg, base.tolist()), "history": history}
    if field.dim == 4:
        report["four_d"] = "spacetime"
    if how.compare_uniform and how.method != "uniform":
        _add_uniform_comparison(report, [field], dom, base, how.rmse_points, cfg, per=1)
    if how.preview is not None:
        shown = preview_png(m, values, how.preview)
        report["preview"], report["preview_renderer"] = shown["path"], shown["renderer"]
    return report


def _add_uniform_comparison(report: dict, fields: list, space: np.ndarray, base: np.ndarray, n: int,
                            cfg: PruningAMRConfig, per: int) -> None:
    """Put ``uniform_comparison`` (:func:`uniform_comparison`) in ``report``: uniform meshes of ``base`` on every
    field of ``fields`` (one per time slice; DOFs summed, RMSE = RMS over fields, on the points ``report["rmse"]``
    used), up to 64x the mesh's DOFs; a warning if the mesh does not beat uniform refinement at its RMSE."""
    def level_dofs(k: int) -> int:
        return len(fields) * int(np.prod(base.astype(np.int64) * 2**k + 1))

    def level_rmse(k: int) -> float:
        mesh = uniform_mesh(space, k, base)
        return float(np.sqrt(np.mean([mesh_rmse(mesh, vertex_values(f, mesh), f, n=n) ** 2 for f in fields])))

    cap = min(64 * report["dofs"], len(fields) * cfg.max_elements)
    t0 = time.perf_counter()
    cmp = uniform_comparison(level_dofs, level_rmse, report["dofs"], report["rmse"], cap, cfg.max_level)
    report["uniform_comparison"] = {**cmp, "seconds": time.perf_counter() - t0}
    if cmp["beats_uniform"]:
        return
    need = cmp["uniform_dofs_at_equal_rmse"]
    levels = ", ".join(f"level {v['level']}: {v['dofs']} DOFs at {v['rmse']:.3g}" for v in cmp["levels"][-2:])
    what = "PruningAMR's marks (p > P, error > T) measure the network, not the mesh's interpolation error; "
    report["warnings"].append(
        f"this mesh ({report['dofs']} DOFs, RMSE {report['rmse']:.3g}) does not beat uniform refinement, which "
        f"reaches that RMSE with ~{need:.0f} DOFs ({report['dofs'] / need - 1:+.0%}; {levels})"
        if need is not None else f"this mesh ({report['dofs']} DOFs) does not beat uniform refinement ({levels})")
    if report["method"] == "pruning-amr":
        size = -(-report["dofs"] // per)
        report["warnings"][-1] += (f": {what}error-driven AMR at the same size (--method error-driven --size "
                                   f"{size}) usually gives a lower RMSE (docs/amr.md)")


def _config_report(cfg: PruningAMRConfig, base: list) -> dict:
    return {k: (getattr(cfg, k) if k != "base" else base) for k in
            ("error", "id_activations", "eps", "T", "P", "n_id", "n_err", "init_level", "max_iters", "max_dofs",
             "base")}


def check_mesh_output(out: str | Path, dim: int) -> None:
    """Refuse an output whose suffix does not suit a ``dim``-D mesh (``.vtu`` for 2D/3D, ``.pvd`` for 4D),
    before any meshing."""
    want = ".pvd" if dim == 4 else ".vtu"
    suffix = Path(out).suffix.lower()
    if suffix != want:
        raise InvalidInputError(f"--output {Path(out).name}: a {dim}D model is meshed as {want}"
                                f"{' (3D slices in time)' if dim == 4 else ''}, not {suffix or 'no suffix'!r}")


def _check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("the model gives non-finite values (NaN/inf) on the domain: corrupted weights?")


def mesh_model(model_path: str | Path, out: str | Path, config: PruningAMRConfig | None = None,
               mesh: MeshConfig | None = None, device: str | None = "cpu") -> dict:
    """Load an inrkit model (safetensors or ``.npz``; 2D, 3D or 4D input) and mesh it into ``out`` (.vtu for
    2D/3D, .pvd of 3D slices for 4D; checked against the model before meshing): see :func:`mesh_field`.
    ``device``: cpu, cuda, cuda:1, mps (none: pick automatically)."""
    cfg = config or PruningAMRConfig()
    how = (mesh or MeshConfig()).validate(cfg)
    field, header = load_field(model_path, device)
    check_mesh_output(out, field.dim)
    name = clean_array_name((header.get("signal") or {}).get("array")) or "inr"
    report = mesh_field(field, out, cfg, how, name=name)
    report["model"] = str(model_path)
    return report
