"""How a mesh of an INR is built: one choice of method, used for 2D/3D models and for each time slice of a 4D one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inrkit.amr.baselines import error_amr, uniform_mesh
from inrkit.amr.field import InrField
from inrkit.amr.mesh import BoxMesh
from inrkit.amr.pruning import PruningAMRConfig, pruning_amr
from inrkit.errors import InvalidInputError

MESH_METHODS = ("pruning-amr", "uniform", "error-driven")
HANGING = ("conforming", "inr")  # values at hanging nodes
FOUR_D_MODES = ("slices", "spacetime")


@dataclass
class MeshConfig:
    """How ``inrkit mesh`` meshes a model and what it writes; PruningAMR's own settings are
    :class:`~inrkit.amr.pruning.PruningAMRConfig`.

    Args:
        method: pruning-amr = refine where ID pruning of the INR restricted to an element keeps many neurons or
            loses accuracy (the paper's method); uniform = every element refined to level SIZE (base * 2^SIZE cells
            per axis); error-driven = refine the 10% of elements with the largest L2 interpolation error against
            the INR until SIZE DOFs (per time slice of a 4D model; the benchmark's baseline, often fewer DOFs than
            PruningAMR at equal RMSE, see docs/amr.md).
        size: uniform: the level, in [0, max_level], at most max_elements elements; error-driven: the DOF budget,
            in [1, max_elements]; pruning-amr: none (its budget is --max-dofs).
        domain: box as min,max per axis, e.g. --domain=-1,1,-1,1 (none: the model's own domain; [-1,1]^d,
            reported as assumed, for an .npz).
        four_d: a 4D (space + time) model: slices = each time slice meshed as its own adaptive 3D mesh (the
            reference code's way, --time_slice), spacetime = one 4D mesh of the space-time box, cut into slices.
        times: slice times of a 4D model with --four-d slices: auto (9 evenly spaced, ends included), a count N,
            or comma-separated times.
        hanging: values at hanging nodes: conforming = constrained to the coarse edge/face (continuous, as MFEM),
            inr = the INR's own value.
        compare_uniform: also mesh uniformly (levels 0, 1, ... up to the mesh's RMSE, at most 64x its DOFs) and
            report how many DOFs uniform refinement needs for the same RMSE (uniform_comparison), with a warning
            when the adaptive mesh does not beat it.
        preview: also write a PNG of the mesh and the field.
        rmse_points: random domain points on which the mesh interpolant is compared with the INR (the report's rmse).
    """

    method: str = "pruning-amr"
    size: int | None = None
    domain: str | list[float] | None = None
    four_d: str = "slices"
    times: str | None = "auto"
    hanging: str = "conforming"
    compare_uniform: bool = True
    preview: str | None = None
    rmse_points: int = 16384

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, cfg: PruningAMRConfig | None = None) -> "MeshConfig":
        """Refuse an unknown method/mode, a size the method does not take or outside its range (against ``cfg``'s
        ``max_level``/``max_elements`` when given). Cheap: run before any model is read."""
        _one_of(self.method, MESH_METHODS, "--method")
        _one_of(self.four_d, FOUR_D_MODES, "--four-d")
        _one_of(self.hanging, HANGING, "--hanging")
        if self.preview is not None and Path(self.preview).suffix.lower() != ".png":
            raise InvalidInputError(f"--preview {Path(self.preview).name}: expected a .png file")
        if self.method == "pruning-amr":
            if self.size is not None:
                raise InvalidInputError("--size is the level of --method uniform or the DOF budget of --method "
                                        "error-driven; PruningAMR's budget is --max-dofs")
            return self
        if self.size is None:
            what = "LEVEL" if self.method == "uniform" else "DOFS"
            raise InvalidInputError(f"--method {self.method} needs --size {what}")
        low, high, flag = ((0, cfg.max_level if cfg else None, "--max-level") if self.method == "uniform" else
                           (1, cfg.max_elements if cfg else None, "--max-elements"))
        size = self.size
        if (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < low
                or (high is not None and size > high)):
            bound = f"{flag} {high}" if high is not None else "..."
            raise InvalidInputError(f"--method {self.method} --size (--{self.method} N): an integer in "
                                    f"[{low}, {bound}], got {size!r}")
        return self


def _one_of(value: object, allowed: tuple[str, ...], flag: str) -> None:
    if value not in allowed:
        raise InvalidInputError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass
class Built:
    """A mesh built by :func:`build_mesh`: PruningAMR's per-round rows and warnings (empty for the baselines)."""

    mesh: BoxMesh
    iterations: int
    history: list[dict]
    warnings: list[str]


def build_mesh(method: MeshConfig, f: InrField, domain: np.ndarray, base: np.ndarray,
               cfg: PruningAMRConfig) -> Built:
    """Mesh ``f`` on ``domain`` (``base`` cells per axis at level 0) by ``method.method``."""
    method.validate(cfg)
    if method.method == "uniform":
        level = int(method.size or 0)
        cells = float(np.prod(np.asarray(base, np.float64) * 2.0**level))
        if cells > cfg.max_elements:
            raise InvalidInputError(f"--size {level}: {cells:.3g} elements (base {np.asarray(base).tolist()} * "
                                    f"2^{level} per axis) exceed --max-elements {cfg.max_elements}")
        return Built(uniform_mesh(domain, level, base), 0, [], [])
    if method.method == "error-driven":
        ea = error_amr(f, domain, int(method.size or 0), base=base, max_level=cfg.max_level, seed=cfg.seed,
                       progress=cfg.progress)
        return Built(ea.mesh, len(ea.history), [], [])
    res = pruning_amr(f, domain, cfg)
    return Built(res.mesh, res.iterations, list(res.history), list(res.warnings))
