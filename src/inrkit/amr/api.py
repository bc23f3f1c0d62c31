"""The one public entry point behind ``inrkit mesh``: model file in, VTU/PVD (+ PNG) out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from inrkit.amr.baselines import error_amr, mesh_rmse, uniform_comparison, uniform_mesh, vertex_values
from inrkit.amr.export import preview_png, write_mesh
from inrkit.amr.field import InrField, load_field
from inrkit.amr.mesh import parse_domain
from inrkit.amr.pruning import PruningAMRConfig, pruning_amr, resolve_base
from inrkit.amr.timeslices import FOUR_D_MODES, mesh_time_slices, parse_times, slice_field
from inrkit.errors import InvalidInputError
from inrkit.signals.frames import clean_array_name

HANGING = ("conforming", "inr")  # values at hanging nodes (mesh_field's ``hanging``)


def mesh_field(field: InrField, out: str | Path, domain=None, config: PruningAMRConfig | None = None,
               uniform: int | None = None, preview: str | Path | None = None, rmse_points: int = 16384,
               hanging: str = "conforming", name: str = "inr", four_d: str = "slices",
               times: str | None = "auto", error_driven: int | None = None, compare_uniform: bool = True) -> dict:
    """Mesh ``field`` with PruningAMR (or uniformly to level ``uniform``, or by error-driven AMR to ``error_driven``
    DOFs), write it, and report.

    Args:
        four_d, times: a 4D (space + time) field: see :func:`mesh_model`.
        hanging: ``"conforming"`` (default): hanging nodes carry the value of the coarse element's interpolant,
            so the written field and the RMSE are those of a continuous interpolant (as MFEM); ``"inr"``: the
            INR's own value at every vertex (may jump across non-conforming faces).
        name: the point-data array's name (the source's array name when the header records one).
        compare_uniform: see :func:`mesh_model` (``uniform_comparison`` in the report, a warning if it loses).

    Returns ``{"output", "dofs", "true_dofs", "elements", "hanging", "iterations", "seconds", "rmse",
    "max_level", "domain", "domain_source", "warnings", "history", ...}``; ``rmse`` compares the mesh interpolant
    with the INR on random domain points (raw units).
    """
    cfg = config or PruningAMRConfig()
    if hanging not in HANGING:
        raise InvalidInputError(f"hanging must be one of {', '.join(HANGING)}, got {hanging!r}")
    if field.dim not in (2, 3, 4):
        raise InvalidInputError(f"meshing needs a 2D, 3D or 4D model, this one takes {field.dim} coordinates")
    check_mesh_output(out, field.dim)
    check_four_d(four_d)
    check_method(uniform, error_driven, cfg)
    if domain is not None:
        dom, source = parse_domain(domain, field.dim), "--domain"
    elif field.domain_assumed:
        dom = field.model_domain.copy()
        source = (f"assumed {dom.tolist()}: the model file carries no domain, so the network's own input box "
                  f"[-1, 1]^{field.dim} is meshed (outside its training box a network extrapolates); pass --domain")
    else:
        dom, source = field.model_domain.copy(), "model"
    if times not in (None, "auto") and (field.dim != 4 or four_d != "slices"):
        raise InvalidInputError("--times sets the slice times of a 4D model meshed with --four-d slices")
    if field.dim == 4 and four_d == "slices":
        parse_times(times, dom[-1])  # refuse bad times before the finite-value check
        _check_finite(vertex_values(field, uniform_mesh(dom, 1, 1), conforming=False))
        report = mesh_time_slices(field, out, dom, times, cfg, uniform, rmse_points, hanging, preview, name,
                                  error_driven)
        report.update(array=name, method=method_name(uniform, error_driven), domain=dom.tolist(),
                      domain_source=source, hanging_values=hanging, amr_seconds=report["seconds"],
                      config=_config_report(cfg, report["base"]))
        evaluated = sum(h["evaluated"] for h in report["history"])
        report["ms_per_element"] = (1e3 * sum(h["seconds"] for h in report["history"]) / evaluated
                                    if evaluated else None)
        if compare_uniform and uniform is None:
            fields = [slice_field(field, t) for t in report["times"]]
            _add_uniform_comparison(report, fields, dom[:-1], np.asarray(report["base"]), rmse_points, cfg,
                                    per=len(fields))
        return report
    base = resolve_base(cfg.base, dom, cfg.init_level)
    _check_finite(vertex_values(field, uniform_mesh(dom, 1, base), conforming=False))
    t0 = time.perf_counter()
    warnings: list[str] = []
    history: list[dict] = []  # PruningAMR's per-round rows (none for the baselines)
    if uniform is not None:
        cells = float(np.prod(base.astype(np.float64) * 2.0**uniform))
        if cells > cfg.max_elements:
            raise InvalidInputError(f"--uniform {uniform}: {cells:.3g} elements (base {base.tolist()} * 2^{uniform} "
                                    f"per axis) exceed --max-elements {cfg.max_elements}")
        mesh, iterations = uniform_mesh(dom, uniform, base), 0
    elif error_driven is not None:
        ea = error_amr(field, dom, error_driven, base=base, max_level=cfg.max_level, seed=cfg.seed,
                       progress=cfg.progress)
        mesh, iterations = ea.mesh, len(ea.history)
    else:
        res = pruning_amr(field, dom, cfg)
        mesh, history, iterations = res.mesh, res.history, res.iterations
        warnings = list(res.warnings)
    amr_seconds = time.perf_counter() - t0
    values = vertex_values(field, mesh, conforming=hanging == "conforming")
    _check_finite(values)
    seconds = time.perf_counter() - t0
    path = write_mesh(mesh, values, out, name=name)
    evaluated = sum(h["evaluated"] for h in history)
    report = {"output": str(path), "method": method_name(uniform, error_driven),
              "dim": mesh.dim, "domain": dom.tolist(), "domain_source": source, "array": name,
              "base": base.tolist(),
              "dofs": mesh.dofs, "true_dofs": mesh.true_dofs, "elements": mesh.num_elements,
              "hanging": mesh.num_hanging, "hanging_values": hanging, "iterations": iterations,
              "seconds": seconds, "amr_seconds": amr_seconds,
              "ms_per_element": 1e3 * sum(h["seconds"] for h in history) / evaluated if evaluated else None,
              "rmse": mesh_rmse(mesh, values, field, n=rmse_points),
              "max_level": mesh.max_level, "warnings": warnings,
              "config": _config_report(cfg, base.tolist()), "history": history}
    if field.dim == 4:
        report["four_d"] = "spacetime"
    if compare_uniform and uniform is None:
        _add_uniform_comparison(report, [field], dom, base, rmse_points, cfg, per=1)
    if preview is not None:
        shown = preview_png(mesh, values, preview)
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
        report["warnings"][-1] += (f": {what}error-driven AMR at the same size (--error-driven "
                                   f"{-(-report['dofs'] // per)}) usually gives a lower RMSE (docs/amr.md)")


def _config_report(cfg: PruningAMRConfig, base: list) -> dict:
    return {k: (getattr(cfg, k) if k != "base" else base) for k in
            ("error", "id_activations", "eps", "T", "P", "n_id", "n_err", "init_level", "max_iters", "max_dofs",
             "base")}


def check_four_d(four_d: str) -> None:
    """Refuse an unknown ``four_d`` mode (cheap: before the model is read)."""
    if four_d not in FOUR_D_MODES:
        raise InvalidInputError(f"--four-d must be one of {', '.join(FOUR_D_MODES)}, got {four_d!r}")


def check_mesh_output(out: str | Path, dim: int) -> None:
    """Refuse an output whose suffix does not suit a ``dim``-D mesh (``.vtu`` for 2D/3D, ``.pvd`` for 4D),
    before any meshing."""
    want = ".pvd" if dim == 4 else ".vtu"
    suffix = Path(out).suffix.lower()
    if suffix != want:
        raise InvalidInputError(f"--output {Path(out).name}: a {dim}D model is meshed as {want}"
                                f"{' (3D slices in time)' if dim == 4 else ''}, not {suffix or 'no suffix'!r}")


def method_name(uniform: int | None, error_driven: int | None) -> str:
    """The report's ``method``: which mesh ``uniform`` / ``error_driven`` select."""
    return "uniform" if uniform is not None else "error-driven" if error_driven is not None else "pruning-amr"


def check_method(uniform: int | None, error_driven: int | None, cfg: PruningAMRConfig) -> None:
    """Refuse ``--uniform`` with ``--error-driven``, a bad level, or a DOF budget outside [1, max_elements]
    (cheap: before the model is read)."""
    if uniform is not None and error_driven is not None:
        raise InvalidInputError("--uniform and --error-driven are two different meshes: pass one of them")
    check_uniform_level(uniform, cfg.max_level)
    if error_driven is None:
        return
    if (isinstance(error_driven, bool) or not isinstance(error_driven, (int, np.integer))
            or not 1 <= error_driven <= cfg.max_elements):
        raise InvalidInputError(f"--error-driven DOFS must be an integer in [1, --max-elements {cfg.max_elements}], "
                                f"got {error_driven!r}")


def check_uniform_level(uniform: int | None, max_level: int) -> None:
    """Refuse a ``--uniform`` level outside ``[0, max_level]`` (cheap: before the model is read)."""
    if uniform is None:
        return
    if isinstance(uniform, bool) or not isinstance(uniform, (int, np.integer)) or not 0 <= uniform <= max_level:
        raise InvalidInputError(f"--uniform LEVEL must be an integer in [0, --max-level {max_level}], got {uniform!r}")


def _check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("the model gives non-finite values (NaN/inf) on the domain: corrupted weights?")


def mesh_model(model_path: str | Path, out: str | Path, domain=None, config: PruningAMRConfig | None = None,
               uniform: int | None = None, preview: str | Path | None = None, device: str | None = "cpu",
               hanging: str = "conforming", four_d: str = "slices", times: str | None = "auto",
               error_driven: int | None = None, compare_uniform: bool = True) -> dict:
    """Load an inrkit model (safetensors or ``.npz``) and mesh it: see :func:`mesh_field`.

    The help of ``inrkit mesh`` is generated from the ``Args:`` below (:func:`inrkit.cli.common.add_config`).

    Args:
        model_path: model file (.safetensors or .npz); 2D, 3D or 4D (space + time) input.
        out: output .vtu (2D/3D) or .pvd (4D: 3D slices in time); checked against the model before meshing.
        domain: box as min,max per axis, e.g. --domain=-1,1,-1,1 (none: the model's own domain; [-1,1]^d,
            reported as assumed, for an .npz).
        config: the PruningAMR settings (:class:`PruningAMRConfig`).
        uniform: instead of PruningAMR, refine uniformly to this level (base * 2^LEVEL cells per axis), in
            [0, max_level] and at most max_elements elements.
        error_driven: instead of PruningAMR, error-driven AMR to this many DOFs (per time slice of a 4D model):
            refine the 10% of elements with the largest L2 interpolation error against the INR until the budget
            is reached (the benchmark's baseline; often fewer DOFs than PruningAMR at equal RMSE, see docs/amr.md).
        preview: also write a PNG of the mesh and the field.
        device: cpu, cuda, cuda:1, mps (none: pick automatically).
        hanging: values at hanging nodes: conforming = constrained to the coarse edge/face (continuous, as MFEM),
            inr = the INR's own value.
        four_d: a 4D (space + time) model: slices = each time slice meshed as its own adaptive 3D mesh (the
            reference code's way, --time_slice), spacetime = one 4D mesh of the space-time box, cut into slices.
        times: slice times of a 4D model with --four-d slices: auto (9 evenly spaced, ends included), a count N,
            or comma-separated times.
        compare_uniform: also mesh uniformly (levels 0, 1, ... up to the mesh's RMSE, at most 64x its DOFs) and
            report how many DOFs uniform refinement needs for the same RMSE (uniform_comparison), with a warning
            when the adaptive mesh does not beat it.
    """
    cfg = config or PruningAMRConfig()
    check_method(uniform, error_driven, cfg)
    check_four_d(four_d)
    if hanging not in HANGING:
        raise InvalidInputError(f"hanging must be one of {', '.join(HANGING)}, got {hanging!r}")
    if preview is not None and Path(preview).suffix.lower() != ".png":
        raise InvalidInputError(f"--preview {Path(preview).name}: expected a .png file")
    field, header = load_field(model_path, device)
    check_mesh_output(out, field.dim)
    name = clean_array_name((header.get("signal") or {}).get("array")) or "inr"
    report = mesh_field(field, out, domain, config, uniform, preview, hanging=hanging, name=name,
                        four_d=four_d, times=times, error_driven=error_driven, compare_uniform=compare_uniform)
    report["model"] = str(model_path)
    return report


