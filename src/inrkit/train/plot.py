"""Training curves: a fit's history (``FitResult.history``, the ``history`` of ``--history h.json``) as a PNG.

Two panels: PSNR against step (loss on a second, logarithmic axis) and PSNR against training seconds.
A task without a PSNR (an SDF) shows its loss in both. Matplotlib's object-oriented API with the Agg
canvas, so no global backend is changed and no display is needed.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from inrkit.utils import atomic_path


def curve_path(history_path: str | os.PathLike) -> Path:
    """Where the curve beside a history JSON goes: ``h.json`` -> ``h.png`` (``h.png`` -> ``h.curve.png``)."""
    path = Path(history_path)
    return path.with_suffix(".curve.png") if path.suffix.lower() == ".png" else path.with_suffix(".png")


def _series(history: Sequence[dict[str, Any]], key: str) -> list[float]:
    values = []
    for row in history:
        value = row.get(key)
        values.append(float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan)
    return values


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the training curve of ``history`` (rows with ``step``, ``loss``, ``psnr``, ``seconds``) as a PNG.

    Args:
        history: the rows :func:`inrkit.train.fit` records every ``log_every`` steps.
        path: the PNG to write (atomically).
        title: a title over the panels (e.g. the input file).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps, seconds = _series(history, "step"), _series(history, "seconds")
    loss, psnr = _series(history, "loss"), _series(history, "psnr")
    has_psnr = any(math.isfinite(v) for v in psnr)
    fig = Figure(figsize=(9.0, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    by_step, by_time = fig.subplots(1, 2)
    main, label = (psnr, "PSNR (dB)") if has_psnr else (loss, "loss")
    for ax, xs, xlabel in ((by_step, steps, "step"), (by_time, seconds, "seconds")):
        ax.plot(xs, main, color="tab:blue", marker="." if len(xs) < 30 else None)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label, color="tab:blue")
        ax.grid(alpha=0.3)
        if not has_psnr:
            ax.set_yscale("log" if all(v > 0 for v in main if math.isfinite(v)) and xs else "linear")
    if has_psnr and any(math.isfinite(v) and v > 0 for v in loss):
        twin = by_step.twinx()
        twin.plot(steps, loss, color="tab:orange", alpha=0.7)
        twin.set_yscale("log")
        twin.set_ylabel("loss", color="tab:orange")
    if not history:
        by_step.text(0.5, 0.5, "no history rows", ha="center", va="center", transform=by_step.transAxes)
    if title:
        fig.suptitle(title[:120])
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
