"""PruningAMR (arXiv 2512.02967): refine where ID pruning of the INR restricted to an element fails.

For each element: sample ``n_id`` points inside it, ID-prune every hidden layer in turn on the already
pruned network's activations (tolerance ``eps``; the interpolation matrix folded into the next layer),
record the proportion ``p`` of hidden neurons kept and the mean relative error of the pruned network
against the original on ``n_err`` fresh points; mark the element if ``p > P`` or ``error > T``.

All elements of an iteration are processed together: one batched forward pass per layer and a batched
column-pivoted Gram-Schmidt ID (the same greedy pivoting as the ID of ``scipy.linalg.interpolative``).
A pruned network is represented per element by full-width matrices ``M_l = S_l T_l`` (``S_l`` selects the
kept neurons): ``h_l @ M_l`` is exactly the kept neurons' activations combined by ``T_l``, i.e. the input
that the next layer of the physically pruned network sees after folding ``T_l`` into its weights.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import InvalidInputError
from ..models.mlp import MLP
from .field import InrField
from .mesh import MAX_LEVEL, BoxMesh


@dataclass
class PruningAMRConfig:
    """PruningAMR settings (defaults as in the paper's code).

    Args:
        eps: relative tolerance of the interpolative decomposition.
        T: error threshold: refine if the pruned network's mean relative error exceeds it.
        P: proportion threshold: refine if more than this fraction of hidden neurons is kept.
        n_id: points per element used to compute the ID.
        n_err: fresh points per element used to measure the pruned network's error.
        max_iters: K_max, the most refinement iterations.
        base: level-0 cells per axis of the starting uniform mesh.
        init_level: uniform refinements of the starting mesh.
        max_level: never refine an element beyond this level.
        max_elements: stop (without refining) when a refinement would exceed this many elements.
        method: ``"batched"`` (vectorised torch ID) or ``"scipy"`` (per-element
            :func:`inrkit.prune.interpolative.id_select`, the reference).
        seed: seed of the sample points.
        chunk_values: float64 values per batched chunk (bounds memory).
        progress: show a tqdm bar on stderr.
    """

    eps: float = 1e-3
    T: float = 1e-3
    P: float = 0.2
    n_id: int = 256
    n_err: int = 128
    max_iters: int = 8
    base: int = 4
    init_level: int = 0
    max_level: int = 12
    max_elements: int = 500_000
    method: str = "batched"
    seed: int = 0
    chunk_values: int = 4_000_000
    progress: bool = True

    def validate(self) -> None:
        if not (0 < self.eps < 1 and self.T > 0 and 0 < self.P <= 1):
            raise InvalidInputError("need 0 < eps < 1, T > 0 and 0 < P <= 1")
        if self.n_id < 1 or self.n_err < 1 or self.max_iters < 0 or self.base < 1 or self.max_elements < 1:
            raise InvalidInputError("n_id, n_err, base and max_elements must be >= 1, max_iters >= 0")
        if not 0 <= self.max_level <= MAX_LEVEL:
            raise InvalidInputError(f"max_level must be in [0, {MAX_LEVEL}]")
        if self.method not in ("batched", "scipy"):
            raise InvalidInputError(f"unknown ID method {self.method!r}; choose batched or scipy")


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
    from ..prune.interpolative import id_select

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
                          method: str = "batched") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ID-prune ``model`` on each element's points; return ``(proportion, rel_error, kept [B, L-1])``.

    Args:
        model: the INR (any activation; Fourier features allowed), evaluated here in float64.
        x_id: ``[B, n_id, d]`` model-space points per element for the ID.
        x_err: ``[B, n_err, d]`` fresh model-space points per element for the error.
    """
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
        h = torch.bmm(h.reshape(B, n_id, n), M).reshape(-1, n)
        he = torch.bmm(he.reshape(B, n_err, n), M).reshape(-1, n)
        kept.append(rank)
    pruned = model.layer_forward(model.num_layers - 1, he)
    diff = (pruned - full).reshape(B, n_err, -1).norm(dim=2).mean(1)
    scale = full.reshape(B, n_err, -1).norm(dim=2).mean(1).clamp_min(1e-12)
    kept_t = torch.stack(kept, 1) if kept else torch.zeros(B, 0, dtype=torch.long)
    total = max(sum(model.hidden_widths), 1)
    return ((kept_t.sum(1).double() / total).cpu().numpy(), (diff / scale).cpu().numpy(), kept_t.cpu().numpy())


def mesh_pruning_stats(field: InrField, mesh: BoxMesh, elements: np.ndarray, cfg: PruningAMRConfig,
                       rng: np.random.Generator, bar: tqdm | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Proportion kept and relative error of every element in ``elements`` (in chunks)."""
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
        p[s:s + chunk], err[s:s + chunk], _ = element_pruning_stats(model, t(x_id), t(x_err), cfg.eps, cfg.method)
        if bar is not None:
            bar.update(len(el))
    return p, err


def mark(p: np.ndarray, err: np.ndarray, P: float, T: float) -> np.ndarray:
    """The PruningAMR marking rule: refine where ``p > P`` or ``err > T``."""
    return (np.asarray(p) > P) | (np.asarray(err) > T)


# ------------------------------------------------------------------- the loop
@dataclass
class AMRResult:
    """A refined mesh and how it was obtained."""

    mesh: BoxMesh
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    meshes: list[BoxMesh] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        return sum(1 for h in self.history if h.get("refined", 0) > 0)


def pruning_amr(field_: InrField, domain: np.ndarray, config: PruningAMRConfig | None = None,
                keep_meshes: bool = False) -> AMRResult:
    """Run PruningAMR on ``field_`` over the box ``domain`` (``[d, 2]``).

    Only elements created by the last refinement are evaluated: an element that was not marked keeps its
    verdict (the paper's loop re-tests every element; with fresh random points the verdicts are the same
    up to sampling noise). Progress (elements evaluated, ms per element) goes to stderr.
    """
    cfg = config or PruningAMRConfig()
    cfg.validate()
    mesh = BoxMesh.uniform(domain, cfg.base, cfg.init_level)
    if mesh.dim != field_.dim:
        raise InvalidInputError(f"domain has {mesh.dim} axes but the model takes {field_.dim} coordinates")
    rng = np.random.default_rng(cfg.seed)
    new = np.arange(mesh.num_elements)
    result = AMRResult(mesh, meshes=[mesh] if keep_meshes else [])
    start = time.perf_counter()
    for it in range(1, cfg.max_iters + 1):
        t0 = time.perf_counter()
        with tqdm(total=len(new), desc=f"PruningAMR iter {it}", unit="elem", file=sys.stderr,
                  disable=not cfg.progress, leave=False) as bar:
            p, err = mesh_pruning_stats(field_, mesh, new, cfg, rng, bar)
        marked_new = mark(p, err, cfg.P, cfg.T) & (mesh.levels[new] < cfg.max_level)
        secs = time.perf_counter() - t0
        row = {"iteration": it, "elements": mesh.num_elements, "dofs": mesh.dofs, "evaluated": int(len(new)),
               "refined": int(marked_new.sum()), "marked_by_P": int((p > cfg.P).sum()),
               "marked_by_T": int((err > cfg.T).sum()), "seconds": secs,
               "ms_per_element": 1e3 * secs / max(len(new), 1),
               "mean_p": float(p.mean()) if len(p) else 0.0}
        result.history.append(row)
        if cfg.progress:
            tqdm.write(f"PruningAMR iter {it}: {len(new)} elements in {secs:.2f} s "
                       f"({row['ms_per_element']:.2f} ms/element), {row['refined']} refined, "
                       f"{mesh.dofs} DOFs", file=sys.stderr)
        if not marked_new.any():
            break
        if mesh.num_elements + int(marked_new.sum()) * (2**mesh.dim - 1) > cfg.max_elements:
            row["stopped"] = f"refining would exceed max_elements={cfg.max_elements}"
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
    return result


def config_dict(cfg: PruningAMRConfig) -> dict:
    return asdict(cfg)
