"""Baselines for PruningAMR: uniform refinement and plain error-driven AMR; the RMSE of a mesh."""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from inrkit.amr.mesh import BoxMesh, corner_offsets
from inrkit.amr.pruning import AMRResult
from inrkit.errors import InvalidInputError

Func = Callable[[np.ndarray], np.ndarray]


def vertex_values(field: Func, mesh: BoxMesh, conforming: bool = True) -> np.ndarray:
    """The field at every mesh vertex: ``[V, C]``.

    ``conforming=True`` (default): hanging nodes take the value of the interpolant of the coarse element they
    lie on (:meth:`BoxMesh.conforming_values`), so the piecewise multilinear interpolant is continuous, as in
    MFEM. ``False``: the field's own value at every vertex (the interpolant may jump across non-conforming faces).
    """
    vals = np.asarray(field(mesh.vertices), dtype=np.float64).reshape(mesh.num_vertices, -1)
    return mesh.conforming_values(vals) if conforming else vals


def mesh_rmse(mesh: BoxMesh, values: np.ndarray, reference: Func, n: int = 16384, seed: int = 1234) -> float:
    """RMSE of the mesh interpolant of ``values`` against ``reference`` on ``n`` random domain points."""
    pts = mesh.sample_domain(n, np.random.default_rng(seed))
    ref = np.asarray(reference(pts), dtype=np.float64).reshape(n, -1)
    return float(np.sqrt(np.mean((mesh.interpolate(values, pts).reshape(n, -1) - ref) ** 2)))


def uniform_mesh(domain: np.ndarray, level: int, base=4) -> BoxMesh:
    """The uniform mesh of ``base * 2**level`` cells per axis (the uniform-refinement baseline)."""
    return BoxMesh.uniform(domain, base, level)


INDICATORS = ("l2", "max")  # element error norms of error-driven AMR (``element_interp_error``'s ``norm``)


def element_interp_error(field: Func, mesh: BoxMesh, values: np.ndarray, elements: np.ndarray, n: int,
                         rng: np.random.Generator, norm: str = "max") -> np.ndarray:
    """Error of each element's multilinear interpolant against the field, on ``n`` random points of the element:
    ``"max"``: the max abs difference; ``"l2"``: the element's L2 error estimate ``sqrt(volume * mean squared
    difference)`` (its share of the squared RMSE over the domain is proportional to the square)."""
    if norm not in INDICATORS:
        raise InvalidInputError(f"norm must be one of {', '.join(INDICATORS)}, got {norm!r}")
    lo, hi = mesh.element_bounds()
    t = rng.random((len(elements), n, mesh.dim))
    pts = lo[elements][:, None] + t * (hi - lo)[elements][:, None]
    offs = corner_offsets(mesh.dim)
    w = np.prod(np.where(offs[None, None] == 1, t[:, :, None, :], 1.0 - t[:, :, None, :]), axis=-1)  # [e, n, 2^d]
    interp = np.einsum("enk,ekc->enc", w, values[mesh.cells[elements]])
    exact = np.asarray(field(pts.reshape(-1, mesh.dim)), np.float64).reshape(interp.shape)
    if norm == "max":
        return np.abs(interp - exact).max(axis=(1, 2))
    volume = np.prod(hi - lo, axis=1)[elements]
    return np.sqrt(volume * ((interp - exact) ** 2).mean(axis=(1, 2)))


def error_amr(field: Func, domain: np.ndarray, dof_budget: int, base=4, fraction: float = 0.1,
              n_err: int = 128, max_level: int = 12, seed: int = 0, progress: bool = True,
              keep_meshes: bool = False, init_level: int = 0, conforming: bool = True,
              indicator: str = "l2") -> AMRResult:
    """Plain error-driven AMR: refine the ``fraction`` of elements with the largest interpolation error
    (``indicator``: ``"max"`` abs error or ``"l2"`` error of the element, see ``element_interp_error``).

    Each iteration evaluates only new elements (an element's interpolant depends on its own corners only),
    refines the worst ``fraction`` of all elements (at least one) and stops once ``dof_budget`` is reached.
    ``history`` rows record ``dofs`` and ``elements`` after each iteration.
    """
    if not 0 < fraction <= 1 or dof_budget < 1:
        raise InvalidInputError("need 0 < fraction <= 1 and a positive DOF budget")
    if indicator not in INDICATORS:
        raise InvalidInputError(f"indicator must be one of {', '.join(INDICATORS)}, got {indicator!r}")
    mesh = BoxMesh.uniform(domain, base, init_level)
    rng = np.random.default_rng(seed)
    err = np.zeros(0)
    new = np.arange(mesh.num_elements)
    result = AMRResult(mesh, meshes=[mesh] if keep_meshes else [])
    start = time.perf_counter()
    it = 0
    with tqdm(desc="error AMR", unit="dof", total=dof_budget, file=sys.stderr, disable=not progress,
              leave=False) as bar:
        while mesh.dofs < dof_budget:
            it += 1
            t0 = time.perf_counter()
            vals = vertex_values(field, mesh, conforming)
            if conforming:  # constrained hanging values change the interpolant of old elements too
                err = element_interp_error(field, mesh, vals, np.arange(mesh.num_elements), n_err, rng, indicator)
            else:
                err = np.concatenate([err, element_interp_error(field, mesh, vals, new, n_err, rng, indicator)])
            order = np.argsort(-np.where(mesh.levels < max_level, err, -np.inf))
            k = max(1, int(round(fraction * mesh.num_elements)))
            marked = order[:k][mesh.levels[order[:k]] < max_level]
            if conforming:  # an element's hanging corners follow the coarse neighbour: refine that one too
                extra = mesh.constraining_elements(marked)
                marked = np.union1d(marked, extra[mesh.levels[extra] < max_level])
            if len(marked) == 0:
                break
            keep = np.ones(mesh.num_elements, bool)
            keep[marked] = False
            err = err[keep]
            n_kept = int(keep.sum())
            mesh = mesh.refine(marked)
            new = np.arange(n_kept, mesh.num_elements)
            bar.update(min(mesh.dofs, dof_budget) - bar.n)
            result.history.append({"iteration": it, "elements": mesh.num_elements, "dofs": mesh.dofs,
                                   "refined": int(len(marked)), "seconds": time.perf_counter() - t0})
            if keep_meshes:
                result.meshes.append(mesh)
    result.mesh = mesh
    result.seconds = time.perf_counter() - start
    return result


def dofs_at_rmse(dofs, rmse, target: float) -> float | None:
    """DOFs a refinement curve (``dofs``/``rmse`` lists, coarse to fine) needs to reach RMSE ``target``: log-log
    interpolation between the two points around it; the first point's DOFs if that one already reaches it; None
    beyond the curve's finest point."""
    d, e = np.asarray(dofs, np.float64), np.asarray(rmse, np.float64)
    if target >= e[0]:
        return float(d[0])
    for i in range(len(d) - 1):
        if e[i] >= target >= e[i + 1] and e[i] > e[i + 1]:
            t = (np.log(e[i]) - np.log(target)) / (np.log(e[i]) - np.log(e[i + 1]))
            return float(np.exp(np.log(d[i]) + t * (np.log(d[i + 1]) - np.log(d[i]))))
    return None


def uniform_comparison(level_dofs: Callable[[int], int], level_rmse: Callable[[int], float], dofs: int,
                       rmse: float, max_dofs: int, max_level: int = 12) -> dict:
    """How a mesh of ``dofs`` DOFs and RMSE ``rmse`` compares with uniform refinement of the same base.

    ``level_dofs(k)`` / ``level_rmse(k)``: DOFs and RMSE (same points as ``rmse``) of uniform level ``k``. Levels
    are measured from 0 until one reaches ``rmse``; a level over ``max_dofs`` DOFs is not built (the comparison then
    says only that uniform needs more). Returns ``levels`` (``level``, ``dofs``, ``rmse`` each),
    ``uniform_dofs_at_equal_rmse`` (log-log interpolated; None beyond the levels measured, when
    ``uniform_dofs_more_than`` gives the finest level's DOFs instead), ``dof_change`` (``dofs`` / that - 1:
    negative = fewer DOFs than uniform; None when not measured), ``beats_uniform`` and ``reaches_level``: the
    finest uniform level whose RMSE the mesh reaches with fewer DOFs than that level (None if none).
    """
    levels: list[dict] = []
    for k in range(max_level + 1):
        n = int(level_dofs(k))
        if n > max_dofs:
            break
        levels.append({"level": k, "dofs": n, "rmse": float(level_rmse(k))})
        if levels[-1]["rmse"] <= rmse:
            break
    need = (dofs_at_rmse([v["dofs"] for v in levels], [v["rmse"] for v in levels], rmse) if levels else None)
    floor: int | None = None
    change: float | None = None
    if need is None:  # the finest level measured is still above rmse: uniform needs more DOFs than that level
        floor = levels[-1]["dofs"] if levels else int(level_dofs(0))
        beats = dofs < floor
    else:
        change = dofs / need - 1.0
        beats = change < -1e-9
    reached = [v["level"] for v in levels if v["rmse"] >= rmse and v["dofs"] > dofs]
    return {"levels": levels, "uniform_dofs_at_equal_rmse": need, "uniform_dofs_more_than": floor,
            "dof_change": change, "beats_uniform": beats, "reaches_level": max(reached) if reached else None}
