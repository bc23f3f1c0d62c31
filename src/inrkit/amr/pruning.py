"""PruningAMR (arXiv 2512.02967): refine where ID pruning of the INR restricted to an element fails.

Start mesh: ``base`` cells per axis refined uniformly ``init_level`` times (the reference code's
``num_uniform_ref = 2``). Then, for each new element: sample ``n_id`` points inside it, ID-prune every hidden
layer in turn on the already pruned network's activations (tolerance ``eps``; the interpolation matrix folded
into the next layer), record the proportion ``p`` of hidden neurons kept and the error of the pruned network
``g`` against the original ``f`` on ``n_err`` fresh points; mark the element if ``p > P`` or ``error > T``.
Refinement rounds (uniform ones included) stop at ``max_iters`` or once the mesh has ``max_dofs`` DOFs.

Element errors (``error=``):

* ``"reference"`` (default, the authors' released code): ``a = mean_{i,c} |f_c(x_i) - g_c(x_i)|`` and
  ``error = mean_{i,c} a / |f_c(x_i) + 5|`` (outputs shifted by +5 before the pointwise division).
* ``"relative"`` (inrkit): ``error = mean_{i,c} |f_c(x_i) - g_c(x_i)| / R`` with ``R`` the range (max - min) of
  the network's output over the whole domain (estimated once): invariant to the scale and offset of the output.

All elements of an iteration are processed together: one batched forward pass per layer and a batched
column-pivoted Gram-Schmidt ID (the same greedy pivoting as the ID of ``scipy.linalg.interpolative``).
A pruned network is represented per element by full-width matrices ``M_l = S_l T_l`` (``S_l`` selects the
kept neurons): ``h_l @ M_l`` is exactly the kept neurons' activations combined by ``T_l``, i.e. the input
that the next layer of the physically pruned network sees after folding ``T_l`` into its weights.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from inrkit.amr.field import InrField
from inrkit.amr.mesh import MAX_LEVEL, BoxMesh
from inrkit.errors import InvalidInputError
from inrkit.limits import check_range
from inrkit.models.mlp import MLP

ERROR_MODES = ("reference", "relative")
ID_ACTIVATIONS = ("original", "pruned")
METHODS = ("batched", "scipy")
REFERENCE_SHIFT = 5.0  # the authors' code adds 5 to both outputs before the pointwise division
AUTO_START_ELEMENTS = 256


def auto_base(domain: np.ndarray, init_level: int, target: int = AUTO_START_ELEMENTS) -> np.ndarray:
    """Level-0 cells per axis: near-cubic cells, about ``target`` elements after ``init_level`` refinements.

    The cell size ``h`` is chosen so that ``prod(extent / h) * 2**(d * init_level) ~ target`` (at least one cell
    per axis); e.g. [-1, 1]^2 -> 4x4, [-1, 1]^3 -> 2x2x2, [-1, 1]^4 -> 1x1x1x1 with ``init_level = 2``.
    In 4D the last axis is time, whose units are unrelated to space: it is sized like the mean spatial axis.
    """
    dom = np.asarray(domain, np.float64)
    ext = dom[:, 1] - dom[:, 0]
    d = len(ext)
    if d == 4:  # time is not in space units: give it the geometric-mean spatial extent (one cell per level-0 box)
        ext = np.append(ext[:3], np.prod(ext[:3]) ** (1.0 / 3.0))
    cells0 = max(target / 2.0 ** (d * init_level), 1.0)
    h = (np.prod(ext) / cells0) ** (1.0 / d)
    return np.maximum(1, np.round(ext / h)).astype(np.int64)


def resolve_base(base, domain: np.ndarray, init_level: int) -> np.ndarray:
    """``base`` (None, int, sequence or ``"2,2,10"``) as an int array with one entry per axis."""
    d = len(domain)
    if base is None or (isinstance(base, str) and base.strip().lower() in ("", "auto")):
        return auto_base(domain, init_level)
    if isinstance(base, str):
        try:
            vals = [int(v) for v in base.replace(" ", "").split(",") if v]
        except ValueError as exc:
            raise InvalidInputError(f"--base needs integers, one or one per axis: {base!r}") from exc
    else:
        vals = [int(v) for v in np.atleast_1d(np.asarray(base))]
    if len(vals) == 1:
        vals = vals * d
    if len(vals) != d or min(vals) < 1:
        raise InvalidInputError(f"base needs 1 or {d} positive integers (one per axis), got {vals}")
    return np.asarray(vals, np.int64)


@dataclass
class PruningAMRConfig:
    """PruningAMR settings (defaults as in the paper's code); checked when constructed (``__post_init__``).

    The help of ``inrkit mesh`` is generated from the ``Args:`` below (:func:`inrkit.cli.common.add_config`).

    Args:
        eps: relative tolerance of the interpolative decomposition (ID), in (0, 1).
        T: refine if the pruned network's element error exceeds T (> 0).
        error: element error: reference = mean_i mean|f-g| / |f(x_i)+5| (the authors' code, for outputs of
            order 1), relative = mean|f-g| / range of f over the domain (any output scale); see docs/amr.md.
        P: refine if the proportion of hidden neurons kept exceeds P, in (0, 1].
        id_activations: each layer's ID on the original network's activations (original, as the reference
            code) or on the activations of the network whose earlier layers are already pruned (pruned);
            pruned needed up to 12.5 points more DOFs relative to uniform on one benchmark network and never
            clearly fewer (docs/amr.md).
        n_id: points per element for the ID.
        n_err: fresh points per element for the error check.
        max_iters: most refinement rounds, the init_level uniform ones included (reference: 4).
        max_dofs: stop refining once the mesh has this many DOFs (reference: 5000).
        base: level-0 cells per axis: one integer or one per axis (e.g. 2,2,10); auto: near-cubic cells,
            about 256 elements after the init_level uniform refinements (None also means auto).
        init_level: uniform refinements of the base mesh first (reference: 2).
        max_level: never refine beyond this level.
        max_elements: stop before exceeding this many elements (a uniform mesh above it is refused).
        id_method: batched (vectorised torch ID) or scipy (per-element inrkit.prune.interpolative.id_select,
            the reference).
        seed: seed of the sample points.
        chunk_values: float64 values per batched chunk (bounds memory).
        progress: show a tqdm bar on stderr.
    """

    eps: float = 1e-3
    T: float = 1e-3
    P: float = 0.2
    error: str = "reference"
    id_activations: str = "original"
    n_id: int = 256
    n_err: int = 128
    max_iters: int = 4
    max_dofs: int = 5000
    base: int | tuple[int, ...] | str | None = "auto"
    init_level: int = 2
    max_level: int = 12
    max_elements: int = 500_000
    id_method: str = "batched"
    seed: int = 0
    chunk_values: int = 4_000_000
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def _base_list(self) -> list:
        if isinstance(self.base, str):
            return [v for v in self.base.replace(" ", "").split(",") if v] or [1]
        return list(np.atleast_1d(np.asarray(self.base)))

    def validate(self) -> None:
        """Refuse (:class:`InvalidInputError`) settings out of range; run at construction and again by
        :func:`pruning_amr` (a field may have been changed since)."""
        check_range("eps", self.eps, 0, 1, low_open=True, optional=False)
        check_range("T", self.T, 0, None, low_open=True, optional=False)
        check_range("P", self.P, 0, 1, low_open=True, optional=False)
        if self.eps >= 1:
            raise InvalidInputError(f"eps must be < 1, got {self.eps!r}")
        for name in ("n_id", "n_err", "max_dofs", "max_elements", "chunk_values"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidInputError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("init_level", "max_iters", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InvalidInputError(f"{name} must be an integer >= 0, got {value!r}")
        if self.base is not None and not (isinstance(self.base, str) and self.base.strip().lower() in ("", "auto")):
            resolve_base(self.base, np.tile([0.0, 1.0], (len(np.atleast_1d(self._base_list())), 1)), 0)
        if not 0 <= self.init_level <= self.max_iters:
            raise InvalidInputError(f"need 0 <= init_level <= max_iters (max_iters counts the uniform "
                                    f"refinements), got init_level={self.init_level}, max_iters={self.max_iters}")
        if self.error not in ERROR_MODES:
            raise InvalidInputError(f"unknown element error {self.error!r}; choose from {', '.join(ERROR_MODES)}")
        if isinstance(self.max_level, bool) or not isinstance(self.max_level, (int, np.integer)) \
                or not 0 <= self.max_level <= MAX_LEVEL:
            raise InvalidInputError(f"max_level must be an integer in [0, {MAX_LEVEL}], got {self.max_level!r}")
        if self.id_activations not in ID_ACTIVATIONS:
            raise InvalidInputError(f"unknown id_activations {self.id_activations!r}; choose from "
                                    f"{', '.join(ID_ACTIVATIONS)}")
        if self.id_method not in METHODS:
            raise InvalidInputError(f"unknown ID method {self.id_method!r}; choose from {', '.join(METHODS)}")


# ------------------------------------------------------------------ batched ID
def batched_id(H: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Interpolative decompositions of a batch ``H [B, N, n]`` to relative tolerance ``eps``.

    Greedy column pivoting as in ``scipy.linalg.interpolative`` (pick the column with the largest
    residual norm until it falls below ``eps`` times the largest column norm), run as a pivoted Cholesky
    factorisation of the Gram matrices ``H^T H`` (float64) so that every step costs ``O(B n^2)``.
    Returns ``(rank [B], M [B, n, n])`` with ``H ≈ H @ M``; ``M`` is zero outside the kept rows, whose
    entries are the interpolation matrix ``T`` (least squares ``H[:, keep] T = H``).
    A layer whose activations are all zero keeps one neuron (rank 1, ``M = 0``).
    """
    B, _, n = H.shape
    H = H.double()
    G = torch.bmm(H.transpose(1, 2), H)  # [B, n, n]
    diag = torch.diagonal(G, dim1=1, dim2=2).clone()
    ref = diag.max(1).values
    active = ref > 0
    selected = torch.zeros(B, n, dtype=torch.bool, device=H.device)
    L = torch.zeros(B, n, n, dtype=H.dtype, device=H.device)
    rows = torch.arange(B, device=H.device)
    for j in range(n):
        res, piv = diag.masked_fill(selected, -1.0).max(1)
        active &= res > (eps * eps) * ref
        if not bool(active.any()):
            break
        col = G[rows, :, piv] - torch.einsum("bik,bk->bi", L[:, :, :j], L[rows, piv, :j])
        col = col / res.clamp_min(1e-300).sqrt()[:, None] * active[:, None]
        L[:, :, j] = col
        diag = diag - col * col
        selected[rows[active], piv[active]] = True
    rank = selected.sum(1)
    # Least squares for T through the normal equations of the kept columns, padded to n x n.
    keep2 = selected[:, :, None] & selected[:, None, :]
    eye = torch.eye(n, dtype=H.dtype, device=H.device).expand(B, n, n)
    G_kk = torch.where(keep2, G, eye * (~selected)[:, :, None])
    rhs = G * selected[:, :, None]
    M = torch.linalg.solve(G_kk, rhs)
    return rank.clamp_min(1), M


def scipy_id(H: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Reference: :func:`inrkit.prune.interpolative.id_select` per element; same outputs as :func:`batched_id`."""
    from inrkit.prune.interpolative import id_select

    B, _, n = H.shape
    M = torch.zeros(B, n, n, dtype=H.dtype)
    rank = torch.zeros(B, dtype=torch.long)
    Hn = H.detach().cpu().double().numpy()
    for b in range(B):
        keep, T = id_select(Hn[b], eps=eps)
        M[b, torch.as_tensor(keep)] = torch.as_tensor(T, dtype=H.dtype)
        rank[b] = len(keep)
    return rank.to(H.device), M.to(H.device)


# ----------------------------------------------------------- per-element stats
@torch.no_grad()
def element_pruning_stats(model: MLP, x_id: Tensor, x_err: Tensor, eps: float,
                          method: str = "batched", error: str = "reference",
                          out_range: float | None = None,
                          id_activations: str = "original") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ID-prune ``model`` on each element's points; return ``(proportion, error, kept [B, L-1])``.

    Args:
        model: the INR (any activation; Fourier features allowed), evaluated here in float64.
        x_id: ``[B, n_id, d]`` model-space points per element for the ID.
        x_err: ``[B, n_err, d]`` fresh model-space points per element for the error.
        error: ``"reference"`` or ``"relative"`` (see :func:`element_error`).
        out_range: ``R`` of the relative error (range of the output over the domain); required for it.
        id_activations: ``"original"``: the ID of layer ``l`` is taken on the original network's layer-``l``
            activations (reference code); ``"pruned"``: on the activations of the network whose earlier layers
            are already pruned. Either way the error is that of the pruned network (selection + folded ``T``).
    """
    if id_activations not in ID_ACTIVATIONS:
        raise InvalidInputError(f"unknown id_activations {id_activations!r}; choose from {', '.join(ID_ACTIVATIONS)}")
    original = id_activations == "original"
    ident = method == "batched"
    B, n_id, d = x_id.shape
    n_err = x_err.shape[1]
    h = model.encode(x_id.reshape(-1, d))
    he = model.encode(x_err.reshape(-1, d))
    full = model(x_err.reshape(-1, d))
    kept = []
    for layer in range(model.num_layers - 1):
        h = model.layer_forward(layer, h)
        he = model.layer_forward(layer, he)
        n = h.shape[1]
        rank, M = (batched_id if ident else scipy_id)(h.reshape(B, n_id, n), eps)
        if not original:  # the next layer's ID sees the pruned network's activations
            h = torch.bmm(h.reshape(B, n_id, n), M).reshape(-1, n)
        he = torch.bmm(he.reshape(B, n_err, n), M).reshape(-1, n)
        kept.append(rank)
    pruned = model.layer_forward(model.num_layers - 1, he)
    err = element_error(full.reshape(B, n_err, -1), pruned.reshape(B, n_err, -1), error, out_range)
    kept_t = torch.stack(kept, 1) if kept else torch.zeros(B, 0, dtype=torch.long)
    total = max(sum(model.hidden_widths), 1)
    return ((kept_t.sum(1).double() / total).cpu().numpy(), err.cpu().numpy(), kept_t.cpu().numpy())


def element_error(f: Tensor, g: Tensor, mode: str = "reference", out_range: float | None = None) -> Tensor:
    """Element error of the pruned outputs ``g`` against the original ``f`` (both ``[B, n, C]``) -> ``[B]``.

    ``"reference"`` (the authors' released PruningAMR code): ``a = mean_{i,c} |f - g|``, then
    ``error = mean_{i,c} a / |f_c(x_i) + 5|``. ``"relative"``: ``mean_{i,c} |f - g| / out_range``.
    """
    f = torch.as_tensor(f, dtype=torch.float64)
    g = torch.as_tensor(g, dtype=torch.float64)
    abs_diff = (f - g).abs().mean(dim=(1, 2))  # [B]
    if mode == "reference":
        shifted = (f + REFERENCE_SHIFT).abs().clamp_min(1e-300)
        return (abs_diff[:, None, None] / shifted).mean(dim=(1, 2))
    if mode == "relative":
        if out_range is None or not out_range > 0:
            raise InvalidInputError("the relative element error needs the output range R > 0")
        return abs_diff / out_range
    raise InvalidInputError(f"unknown element error {mode!r}; choose from {', '.join(ERROR_MODES)}")


@torch.no_grad()
def output_range(field: InrField, domain: np.ndarray, n: int = 8192, seed: int = 0) -> float:
    """Range (max - min over points and channels) of the network's output on ``n`` random domain points."""
    rng = np.random.default_rng(seed)
    dom = np.asarray(domain, np.float64)
    x = dom[:, 0] + rng.random((n, len(dom))) * (dom[:, 1] - dom[:, 0])
    y = field.network(x)
    r = float(y.max() - y.min()) if y.size else 0.0
    return r if r > 0 else 1.0


def mesh_pruning_stats(field: InrField, mesh: BoxMesh, elements: np.ndarray, cfg: PruningAMRConfig,
                       rng: np.random.Generator, bar: tqdm | None = None,
                       out_range: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Proportion kept and element error of every element in ``elements`` (batched, in chunks)."""
    model = field.model64
    p = np.zeros(len(elements))
    err = np.zeros(len(elements))
    width = max(model.widths)
    chunk = max(1, cfg.chunk_values // ((cfg.n_id + cfg.n_err) * width))
    for s in range(0, len(elements), chunk):
        el = elements[s:s + chunk]
        x_id = field.to_model_coords(mesh.sample_elements(cfg.n_id, rng, el))
        x_err = field.to_model_coords(mesh.sample_elements(cfg.n_err, rng, el))
        t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=field.device)  # noqa: E731
        p[s:s + chunk], err[s:s + chunk], _ = element_pruning_stats(model, t(x_id), t(x_err), cfg.eps, cfg.id_method,
                                                                    cfg.error, out_range, cfg.id_activations)
        if bar is not None:
            bar.update(len(el))
    return p, err


def mark(p: np.ndarray, err: np.ndarray, P: float, T: float) -> np.ndarray:
    """The PruningAMR marking rule: refine where ``p > P`` or ``err > T``."""
    return (np.asarray(p) > P) | (np.asarray(err) > T)


# ------------------------------------------------------------------- the loop
@dataclass
class AMRResult:
    """A refined mesh and how it was obtained.

    ``warnings``: human-readable findings about the run (e.g. ``p`` stayed above ``P`` everywhere, so the mesh
    is uniform-like); ``p_above_P_everywhere`` says whether that happened; ``base`` is the level-0 grid used.
    """

    mesh: BoxMesh
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    meshes: list[BoxMesh] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    p_above_P_everywhere: bool = False
    base: list[int] = field(default_factory=list)
    stopped: str = ""

    @property
    def iterations(self) -> int:
        """Adaptive refinement rounds that refined something (the uniform start rounds not included)."""
        return sum(1 for h in self.history if h.get("refined", 0) > 0)


def pruning_amr(field_: InrField, domain: np.ndarray, config: PruningAMRConfig | None = None,
                keep_meshes: bool = False) -> AMRResult:
    """Run PruningAMR on ``field_`` over the box ``domain`` (``[d, 2]``).

    The start mesh is ``base`` cells per axis refined uniformly ``init_level`` times; then up to
    ``max_iters - init_level`` adaptive rounds, each stopped early once the mesh has ``max_dofs`` DOFs.
    Only elements created by the last refinement are evaluated, as in the reference code (an element that was
    not marked is never re-tested). All elements of a round are evaluated batched. Progress (elements
    evaluated, ms per element) goes to stderr.
    """
    cfg = config or PruningAMRConfig()
    cfg.validate()
    domain = np.asarray(domain, np.float64)
    base = resolve_base(cfg.base, domain, cfg.init_level)
    mesh = BoxMesh.uniform(domain, base, cfg.init_level)
    if mesh.dim != field_.dim:
        raise InvalidInputError(f"domain has {mesh.dim} axes but the model takes {field_.dim} coordinates")
    rng = np.random.default_rng(cfg.seed)
    out_range = output_range(field_, domain, seed=cfg.seed) if cfg.error == "relative" else None
    new = np.arange(mesh.num_elements)
    result = AMRResult(mesh, meshes=[mesh] if keep_meshes else [], base=[int(b) for b in base])
    start = time.perf_counter()
    all_p: list[np.ndarray] = []
    for it in range(cfg.init_level + 1, cfg.max_iters + 1):
        if mesh.dofs >= cfg.max_dofs:
            result.stopped = f"max_dofs={cfg.max_dofs} reached ({mesh.dofs} DOFs) before round {it}"
            break
        t0 = time.perf_counter()
        with tqdm(total=len(new), desc=f"PruningAMR round {it}", unit="elem", file=sys.stderr,
                  disable=not cfg.progress, leave=False) as bar:
            p, err = mesh_pruning_stats(field_, mesh, new, cfg, rng, bar, out_range)
        all_p.append(p)
        marked_new = mark(p, err, cfg.P, cfg.T) & (mesh.levels[new] < cfg.max_level)
        secs = time.perf_counter() - t0
        row: dict[str, Any] = {"iteration": it, "elements": mesh.num_elements, "dofs": mesh.dofs,
               "evaluated": int(len(new)),
               "refined": int(marked_new.sum()), "marked_by_P": int((p > cfg.P).sum()),
               "marked_by_T": int((err > cfg.T).sum()), "seconds": secs,
               "ms_per_element": 1e3 * secs / max(len(new), 1),
               "mean_p": float(p.mean()) if len(p) else 0.0, "min_p": float(p.min()) if len(p) else 0.0,
               "median_error": float(np.median(err)) if len(err) else 0.0}
        result.history.append(row)
        if cfg.progress:
            tqdm.write(f"PruningAMR round {it}/{cfg.max_iters}: {len(new)} elements in {secs:.2f} s "
                       f"({row['ms_per_element']:.2f} ms/element), {row['refined']} refined "
                       f"({row['marked_by_P']} by p > P, {row['marked_by_T']} by error > T), {mesh.dofs} DOFs",
                       file=sys.stderr)
        if not marked_new.any():
            break
        if mesh.num_elements + int(marked_new.sum()) * (2**mesh.dim - 1) > cfg.max_elements:
            row["stopped"] = result.stopped = f"refining would exceed max_elements={cfg.max_elements}"
            row["refined"] = 0
            break
        n_old = mesh.num_elements
        marked = np.zeros(n_old, bool)
        marked[new[marked_new]] = True
        n_kept = n_old - int(marked.sum())
        mesh = mesh.refine(marked)  # unmarked elements first, then the children
        new = np.arange(n_kept, mesh.num_elements)
        if keep_meshes:
            result.meshes.append(mesh)
    result.mesh = mesh
    result.seconds = time.perf_counter() - start
    _diagnose(result, all_p, cfg)
    return result


def _diagnose(result: AMRResult, all_p: list[np.ndarray], cfg: PruningAMRConfig) -> None:
    """Honest messages: p above P in every element (uniform-like mesh), no adaptive round at all."""
    if not all_p:
        result.warnings.append(
            f"no adaptive round ran ({result.stopped or 'max_iters == init_level'}): the mesh is the uniform "
            f"start mesh; lower --init-level/--base or raise --max-dofs/--max-iters")
        return
    p = np.concatenate(all_p)
    if len(p) and bool(np.all(p > cfg.P)):
        result.p_above_P_everywhere = True
        result.warnings.append(
            f"p (proportion of neurons the ID keeps) stayed above P={cfg.P} in every element tested "
            f"(min p = {p.min():.3f}, median {np.median(p):.3f}): every element was refined, so this mesh is "
            f"uniform refinement, not adaptive. The network has no locally prunable structure at this scale "
            f"(typical of a SIREN, whose hidden features oscillate everywhere, or of a ReLU network whose kinks "
            f"cross every element, e.g. on a coarse 4D start mesh); use --uniform LEVEL, or a larger P "
            f"(e.g. --P {min(1.0, float(np.quantile(p, 0.5))):.2f}) to refine only where p is highest.")
