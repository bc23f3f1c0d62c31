"""Interpolative-decomposition (ID) pruning of hidden layers (Chee et al.; PruningAMR).

For a layer's activations ``H`` (points x neurons), the ID picks ``k`` columns and an
interpolation matrix ``T`` with ``H ≈ H[:, keep] @ T``. Folding ``T`` into the next
layer gives a smaller network that approximates the original without retraining.

The ID keeps ``k`` columns chosen by column-pivoted QR: with a tolerance ``eps`` the pivots with
``|R_jj| > eps |R_11|``, with a rank the ``k`` first pivots. :func:`id_layer` also returns a report
(kept count, measured error, the singular spectrum's rank at ``eps``, tolerances that would keep 75% /
50%), which ``inrkit prune --method id`` prints.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.linalg as sla
import scipy.linalg.interpolative as sli
import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.models.mlp import MLP
from inrkit.models.surgery import PrunableGroup, StateMap, find_group, fold_interpolation

SUGGEST_FRACTIONS = (0.75, 0.5)
"""Kept fractions for which the report suggests a tolerance."""


def id_select(hidden: np.ndarray, eps: float | None = None, rank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Choose columns of ``hidden`` ``[N, n]`` by ID (float64, deterministic).

    Give either a relative tolerance ``eps`` or a target ``rank``. Returns ``(keep_idx, T)``
    with ``keep_idx`` sorted and ``hidden ≈ hidden[:, keep_idx] @ T`` (``T``: ``[k, n]``).
    """
    if (eps is None) == (rank is None):
        raise InvalidInputError("give exactly one of eps or rank for ID pruning")
    H = np.asarray(hidden, dtype=np.float64)
    n = H.shape[1]
    if H.ndim != 2 or H.shape[0] == 0 or n == 0:
        raise InvalidInputError(f"ID needs a non-empty 2D activation matrix, got shape {H.shape}")
    norm = np.linalg.norm(H)
    if norm == 0.0:  # every neuron is dead: keep one, it reproduces zeros exactly
        return np.array([0]), np.zeros((1, n))
    if rank is not None:
        k = int(min(max(rank, 1), n, H.shape[0]))
        if k == n:
            return np.arange(n), np.eye(n)
        idx, proj = sli.interp_decomp(np.asfortranarray(H), k, rand=False)
    else:
        assert eps is not None  # exactly one of eps, rank was checked above
        k, idx, proj = sli.interp_decomp(np.asfortranarray(H), float(eps), rand=False)
        if k >= n:
            return np.arange(n), np.eye(n)
    T = sli.reconstruct_interp_matrix(idx, proj)  # [k, n] in the permuted order of idx
    keep = np.asarray(idx[:k])
    order = np.argsort(keep)
    return keep[order], np.asarray(T)[order]


def pivot_spectrum(hidden: np.ndarray) -> np.ndarray:
    """``|R_jj| / |R_11|`` of the column-pivoted QR of ``hidden`` (non-increasing): the ID at tolerance
    ``eps`` keeps the columns whose pivot exceeds ``eps``."""
    H = np.asarray(hidden, dtype=np.float64)
    r = sla.qr(H, mode="r", pivoting=True)[0]
    d = np.abs(np.diag(r))
    return d / d[0] if d.size and d[0] > 0 else np.zeros(H.shape[1])


def tolerance_for(pivots: np.ndarray, k: int) -> float | None:
    """A tolerance at which the ID keeps ``k`` columns (between the ``k``-th and ``k+1``-th pivot);
    None when ``k`` is not below the number of columns or the pivots cannot separate them."""
    if not 1 <= k < pivots.size or pivots[k - 1] <= 0:
        return None
    high, low = float(pivots[k - 1]), float(pivots[k])
    if low >= high:
        return None
    return float(np.sqrt(high * low)) if low > 0 else high / 2.0


def id_report(hidden: np.ndarray, keep: np.ndarray, interp: np.ndarray, eps: float | None = None) -> dict[str, Any]:
    """What an ID of ``hidden`` ``[N, n]`` did: widths, the measured relative (Frobenius) error
    ``||H - H[:, keep] T|| / ||H||`` at the sample points, the best any rank-k approximation could do
    (``svd_error``), the singular spectrum's rank at ``eps`` (``sigma_j > eps sigma_1``) and the
    tolerances that would keep :data:`SUGGEST_FRACTIONS` of the neurons."""
    H = np.asarray(hidden, dtype=np.float64)
    n, k = H.shape[1], int(keep.size)
    norm = float(np.linalg.norm(H))
    sigma = np.linalg.svd(H, compute_uv=False)
    err = float(np.linalg.norm(H - H[:, keep] @ interp)) / norm if norm > 0 else 0.0
    tail = float(np.sqrt(np.sum(sigma[k:] ** 2))) / norm if norm > 0 else 0.0
    pivots = pivot_spectrum(H)
    report: dict[str, Any] = {
        "width": n, "kept": k, "error": err, "svd_error": tail,
        "spectral_rank": None if eps is None or norm == 0 else int(np.sum(sigma > eps * sigma[0])),
        "suggest": {f"{int(f * 100)}%": tolerance_for(pivots, max(1, int(round(f * n))))
                    for f in SUGGEST_FRACTIONS},
    }
    return report


def id_layer(hidden: np.ndarray, eps: float | None = None,
             rank: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """:func:`id_select` plus its :func:`id_report`."""
    keep, interp = id_select(hidden, eps=eps, rank=rank)
    return keep, interp, id_report(hidden, keep, interp, eps)


@torch.no_grad()
def group_activations(model: nn.Module, group: PrunableGroup, points: Tensor) -> np.ndarray:
    """Activations ``[N, n]`` (float64) of an MLP's hidden ``group`` at ``points``."""
    if not isinstance(model, MLP):
        raise InvalidInputError(f"ID pruning needs activations at points: an MLP, not a {type(model).__name__}")
    h = model.encode(points)
    for i in range(int(group.name) + 1):
        h = model.layer_forward(i, h)
    return h.double().cpu().numpy()


@torch.no_grad()
def id_prune_layer(
    model: MLP, layer: int, points: Tensor, eps: float | None = None, rank: int | None = None
) -> tuple[MLP, np.ndarray]:
    """ID-prune hidden ``layer`` using its activations on ``points``; fold into the next layer."""
    group = find_group(model, layer)
    keep, T = id_select(group_activations(model, group, points), eps=eps, rank=rank)
    fold_interpolation(model, group, torch.from_numpy(keep), torch.from_numpy(T))
    return model, keep


@torch.no_grad()
def id_prune_group(model: nn.Module, group: PrunableGroup, points: Tensor, eps: float | None = None,
                   rank: int | None = None) -> tuple[Tensor, StateMap, dict[str, Any]]:
    """ID-prune ``group`` on its activations at ``points`` (in place): kept indices, state map, report."""
    keep, interp, report = id_layer(group_activations(model, group, points), eps=eps, rank=rank)
    idx = torch.as_tensor(keep, dtype=torch.long)
    return idx, fold_interpolation(model, group, idx, torch.from_numpy(interp)), {"layer": group.name, **report}


@torch.no_grad()
def id_prune_report(model: MLP, points: Tensor, layers: Sequence[int | str] | None = None,
                    ranks: Sequence[int] | None = None, eps: float | None = None) -> tuple[MLP, list[dict[str, Any]]]:
    """ID-prune ``layers`` (default: every hidden layer) in turn, each on the already-pruned network's
    activations, to tolerance ``eps`` or to ``ranks[i]`` neurons in ``layers[i]`` (rank-targeted ID:
    the first pivots). Returns the model (in place) and one report per layer."""
    if (ranks is None) == (eps is None):
        raise InvalidInputError("give exactly one of ranks or eps")
    names = [str(i) for i in range(model.num_layers - 1)] if layers is None else [str(i) for i in layers]
    if ranks is not None and len(ranks) != len(names):
        raise InvalidInputError(f"{len(ranks)} ranks for {len(names)} layers")
    reports = []
    for i, name in enumerate(names):
        group = find_group(model, name)
        rank = None if ranks is None else int(ranks[i])
        reports.append(id_prune_group(model, group, points, eps=eps, rank=rank)[2])
    model.validate()
    return model, reports


def id_summary(reports: list[dict[str, Any]], eps: float | None) -> str | None:
    """A sentence for the user when the ID removed no neuron: why, and a tolerance that would."""
    if not reports or any(r["kept"] < r["width"] for r in reports):
        return None
    width = sum(r["width"] for r in reports)
    how = f"at tolerance {eps:g}" if eps is not None else "at this rank"
    ranks = [r["spectral_rank"] for r in reports if r["spectral_rank"] is not None]
    why = (f" (singular spectra above eps*sigma_1: {', '.join(str(v) for v in ranks)} of "
           f"{', '.join(str(r['width']) for r in reports)})" if ranks else "")
    tips = []
    for label in (f"{int(f * 100)}%" for f in SUGGEST_FRACTIONS):
        tols = {r["layer"]: r["suggest"][label] for r in reports if r["suggest"].get(label) is not None}
        if tols:  # the smallest per-layer tolerance: that layer keeps `label`, the others at least as much
            layer = min(tols, key=lambda name: tols[name])
            per = ", ".join(f"{name}: {t:.3g}" for name, t in tols.items())
            tips.append(f"--eps {tols[layer]:.3g} keeps {label} of layer {layer} (per layer: {per})")
    tip = "; ".join(tips + ["--keep 0.5 keeps half (rank-targeted ID)"])
    return (f"ID {how} removed no neuron: all {width} are needed{why}. Try {tip}; "
            "with --signal, --finetune N recovers accuracy lost to pruning.")


@torch.no_grad()
def id_prune_model(model: MLP, points: Tensor, eps: float) -> tuple[MLP, list[int]]:
    """ID-prune every hidden layer in turn (each on the already-pruned network's activations).

    Returns the pruned model (in place) and the number of neurons kept per hidden layer.
    """
    kept = []
    for layer in range(model.num_layers - 1):
        _, keep = id_prune_layer(model, layer, points, eps=eps)
        kept.append(int(keep.size))
    return model, kept
