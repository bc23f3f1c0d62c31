"""A 4D (space + time) INR meshed as 3D time slices, the reference code's way.

The authors' code meshes a 4D INR (their 4D CT scans) one time slice at a time: a 3D mesh of the spatial box,
with the INR evaluated at a fixed time (``--time_slice``). Each slice here is a 3D PruningAMR run with the same
settings as any 3D model. Fixing ``t`` is exact on the network: the first dense layer's ``W [x; t] + b`` becomes
``W_x x + (b + W_t t)``, so a slice is an ordinary 3-input :class:`~inrkit.models.mlp.MLP` (its ID pruning sees
the same weights the reference code's does). ``four_d="spacetime"`` meshes the 4D box itself instead
(:func:`inrkit.amr.pruning.pruning_amr` on 2^4-trees) and cuts the 4D mesh into slices.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import torch

from inrkit.amr.baselines import mesh_rmse, vertex_values
from inrkit.amr.export import preview_png, write_mesh
from inrkit.amr.field import InrField
from inrkit.amr.mesher import MeshConfig, build_mesh
from inrkit.amr.pruning import PruningAMRConfig, resolve_base
from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.utils import atomic_write

DEFAULT_SLICES = 9
MAX_SLICES = 1024


def slice_model(model: MLP, t: float) -> MLP:
    """The 3-input MLP ``x -> model([x, t])`` (``t`` in the model's [-1, 1] input units), exactly.

    The last input column of the first layer is folded into its bias. A model with Fourier features or another
    encoding before its first dense layer cannot be folded this way: refused with :class:`InvalidInputError`.
    """
    if model.fourier is not None or getattr(model, "encoding", None) is not None:
        raise InvalidInputError("time slices need a plain coordinate MLP (no Fourier features or grid encoding "
                                "before the first layer); mesh it in space-time instead (--four-d spacetime)")
    if model.coord_dim < 2:
        raise InvalidInputError("a time slice needs at least one space coordinate besides time")
    widths = model.widths
    out = MLP([widths[0] - 1] + widths[1:], model.activations, model.omegas)
    with torch.no_grad():
        for i, (w, b) in enumerate(zip(model.weights, model.biases)):
            if i == 0:
                out.weights[0].copy_(w[:, :-1])
                out.biases[0].copy_(b + w[:, -1] * float(t))
            else:
                out.weights[i].copy_(w)
                out.biases[i].copy_(b)
    return out.to(device=model.weights[0].device, dtype=model.weights[0].dtype).eval()


def slice_field(field: InrField, t: float) -> InrField:
    """The 3D field ``x -> field([x, t])`` at physical time ``t`` (same value units)."""
    lo, hi = field.model_domain[-1]
    t_model = 2.0 * (float(t) - lo) / (hi - lo) - 1.0
    return InrField(slice_model(field.model, t_model), field.model_domain[:-1].copy(), field.value_scale,
                    field.value_offset, field.device, field.batch, field.domain_assumed)


def parse_times(times, t_range: np.ndarray) -> np.ndarray:
    """Slice times: ``None``/``"auto"`` = :data:`DEFAULT_SLICES` evenly spaced over ``t_range`` (ends included);
    an integer ``N`` (or ``"N"``) = N evenly spaced; else comma-separated physical times inside ``t_range``."""
    lo, hi = float(t_range[0]), float(t_range[1])
    if times is None or (isinstance(times, str) and times.strip().lower() in ("", "auto")):
        return np.linspace(lo, hi, DEFAULT_SLICES)
    if isinstance(times, (int, np.integer)) and not isinstance(times, bool):
        count = int(times)
    elif isinstance(times, str) and times.strip().isdigit():
        count = int(times.strip())
    else:
        count = None
    if count is not None:
        if not 1 <= count <= MAX_SLICES:
            raise InvalidInputError(f"--times N needs 1 <= N <= {MAX_SLICES}, got {count}")
        return np.linspace(lo, hi, count) if count > 1 else np.array([(lo + hi) / 2.0])
    try:
        vals = np.array([float(v) for v in str(times).replace(" ", "").split(",") if v], dtype=np.float64)
    except ValueError as exc:
        raise InvalidInputError(f"--times: expected auto, a count or comma-separated times, got {times!r}") from exc
    if not 1 <= len(vals) <= MAX_SLICES:
        raise InvalidInputError(f"--times: give 1 to {MAX_SLICES} times, got {len(vals)}")
    if not np.all(np.isfinite(vals)) or vals.min() < lo or vals.max() > hi:
        raise InvalidInputError(f"--times must lie in the model's time range [{lo:g}, {hi:g}], got {vals.tolist()}")
    return np.unique(vals)


def space_base(base, space: np.ndarray, init_level: int) -> np.ndarray:
    """Level-0 cells per space axis of a slice: ``base`` as for a 3D model; a 4-entry base gives its space part."""
    if base is not None and not isinstance(base, str) and len(np.atleast_1d(np.asarray(base))) == 4:
        base = np.atleast_1d(np.asarray(base))[:3]
    elif isinstance(base, str) and len([v for v in base.split(",") if v.strip()]) == 4:
        base = ",".join(base.split(",")[:3])
    return resolve_base(base, space, init_level)


def write_collection(path: str | Path, entries: list[tuple[float, str]]) -> Path:
    """Write a ParaView PVD collection: ``(time, file name beside path)`` per data set, atomically."""
    lines = [f'    <DataSet timestep="{float(t)!r}" group="" part="0" file={quoteattr(name)}/>' for t, name in entries]
    xml = ('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">\n'
           "  <Collection>\n" + "\n".join(lines) + "\n  </Collection>\n</VTKFile>\n")
    path = Path(path)
    with atomic_write(path, "w") as fh:
        fh.write(xml)
    return path


def mesh_time_slices(field: InrField, out: str | Path, domain: np.ndarray, config: PruningAMRConfig | None = None,
                     mesh: MeshConfig | None = None, name: str = "inr") -> dict:
    """Mesh each time slice (``mesh.times``) of a 4D ``field`` as its own 3D mesh, by ``mesh.method``
    (:func:`inrkit.amr.mesher.build_mesh`; an error-driven budget is per slice).

    Writes ``<stem>_NNNN.vtu`` per slice beside ``out`` and the PVD collection ``out``. Returns totals over the
    slices (``dofs``, ``true_dofs``, ``elements``, ``hanging``; ``rmse`` = root mean square of the per-slice RMSEs,
    each on ``rmse_points`` random points of its slice) and a ``slices`` list with each slice's numbers.
    ``name``: the point-data array's name. ``mesh.preview``: a PNG of the middle slice
    (:func:`inrkit.amr.export.preview_png`).
    """
    if field.dim != 4:
        raise InvalidInputError(f"time slices need a 4D (space + time) model, this one takes {field.dim} coordinates")
    cfg = config or PruningAMRConfig()
    how = mesh or MeshConfig()
    ts = parse_times(how.times, domain[-1])
    space = np.asarray(domain, np.float64)[:-1]
    base = space_base(cfg.base, space, cfg.init_level)
    slice_cfg = replace(cfg, base=tuple(int(b) for b in base), progress=False)
    out = Path(out)
    entries: list[tuple[float, str]] = []
    rows: list[dict] = []
    history: list[dict] = []
    warnings: list[str] = []
    shown: dict = {}
    t0 = time.perf_counter()
    for k, t in enumerate(ts):
        sf = slice_field(field, float(t))
        built = build_mesh(how, sf, space, base, slice_cfg)
        m = built.mesh
        history.extend({**h, "time": float(t)} for h in built.history)
        warnings.extend(f"t={t:g}: {w}" for w in built.warnings)
        values = vertex_values(sf, m, conforming=how.hanging == "conforming")
        if not np.all(np.isfinite(values)):
            raise InvalidInputError("the model gives non-finite values (NaN/inf) on the domain: corrupted weights?")
        fname = f"{out.stem}_{k:04d}.vtu"
        write_mesh(m, values, out.parent / fname, name=name)
        entries.append((float(t), fname))
        if how.preview is not None and k == len(ts) // 2:
            shown = preview_png(m, values, how.preview, title=f"t = {t:g}")
        rows.append({"time": float(t), "dofs": m.dofs, "true_dofs": m.true_dofs,
                     "elements": m.num_elements, "hanging": m.num_hanging, "iterations": built.iterations,
                     "max_level": m.max_level, "rmse": mesh_rmse(m, values, sf, n=how.rmse_points)})
    path = write_collection(out, entries)
    report = {"output": str(path), "four_d": "slices", "dim": 4, "slice_dim": 3, "times": [float(t) for t in ts],
            "base": [int(b) for b in base],
            "dofs": sum(r["dofs"] for r in rows), "true_dofs": sum(r["true_dofs"] for r in rows),
            "elements": sum(r["elements"] for r in rows), "hanging": sum(r["hanging"] for r in rows),
            "iterations": max(r["iterations"] for r in rows), "max_level": max(r["max_level"] for r in rows),
            "rmse": float(np.sqrt(np.mean([r["rmse"] ** 2 for r in rows]))),
            "seconds": time.perf_counter() - t0, "slices": rows, "history": history, "warnings": warnings}
    if how.preview is not None:
        report["preview"], report["preview_renderer"] = shown["path"], shown["renderer"]
    return report
