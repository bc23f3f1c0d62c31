"""Per-volume fine-tuning: adapt a network to each full-resolution volume of a series.

The same loop (:func:`inrkit.train.fit` on a :class:`~inrkit.train.task.PointTask`) serves
Meta-INR (start from the meta-initialisation), the pretrained-SIREN ablation and SIREN from
scratch, so timings are comparable. With a full batch (the default), the PSNR before every
update comes for free from the loss; with mini-batches the whole volume is evaluated every
``eval_every`` steps, outside the timed region.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from inrkit.errors import InvalidInputError
from inrkit.limits import check_range
from inrkit.models.io import load_model, save_model
from inrkit.models.mlp import MLP
from inrkit.signals.series import VolumeSeries
from inrkit.train.fit import FitConfig, FitResult, fit
from inrkit.train.task import PointTask
from inrkit.utils import write_json


@dataclass
class FinetuneConfig:
    """Per-volume fine-tuning settings.

    Args:
        steps: Adam steps per volume.
        lr: Adam learning rate (constant).
        batch_size: points per step (``None``: the whole volume).
        eval_every: full-volume PSNR interval for mini-batch training (0: only at the end).
        target_psnr: stop a volume once its PSNR reaches this value.
        seed: mini-batch sampling.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``...
        progress: show a progress bar over the volumes of a series.
    """

    steps: int = 100
    lr: float = 1e-3
    batch_size: int | None = None
    eval_every: int = 10
    target_psnr: float | None = None
    seed: int = 0
    device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_range("lr", self.lr, 0, low_open=True, optional=False)
        check_range("target_psnr", self.target_psnr)
        check_range("seed", self.seed, 0, optional=False)
        if self.steps < 0 or self.lr <= 0:
            raise InvalidInputError("fine-tuning needs steps >= 0 and a positive learning rate")
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInputError("batch size must be positive")
        if self.eval_every < 0:
            raise InvalidInputError("eval_every must be >= 0")

    def fit_config(self, n_points: int) -> FitConfig:
        """The :class:`FitConfig` that runs this fine-tuning on ``n_points`` points."""
        full = self.batch_size is None or self.batch_size >= n_points
        return FitConfig(steps=self.steps, lr=self.lr, schedule="constant",
                         batch_size=None if full else self.batch_size,
                         max_full_batch=max(n_points, 1), target_psnr=self.target_psnr, seed=self.seed,
                         log_every=1 if full else max(self.steps, 1), eval_every=0 if full else self.eval_every,
                         progress=False, device=self.device, precision="fp32")


@dataclass
class FinetuneResult:
    """A fitted volume: the model, PSNR history ``[{step, psnr, seconds}]`` and totals."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    psnr: float = 0.0
    steps: int = 0
    seconds: float = 0.0


def _history(result: FitResult, full: bool) -> list[dict[str, float]]:
    """``{step, psnr, seconds}`` rows: PSNR after ``step`` updates and the training time spent so far."""
    if full:  # row s holds the loss before update s, i.e. the PSNR after s - 1 updates
        times = [0.0] + [r["seconds"] for r in result.history]
        rows = [{"step": r["step"] - 1, "psnr": r["psnr"], "seconds": times[r["step"] - 1]} for r in result.history]
    else:
        rows = [{"step": r["step"], "psnr": r["eval"]["psnr"], "seconds": r["seconds"]}
                for r in result.history if "eval" in r]
    final = result.metrics["psnr"]
    if not rows or rows[-1]["step"] != result.steps:
        rows.append({"step": result.steps, "psnr": final, "seconds": result.seconds})
    return rows


def finetune(model: nn.Module, coords: torch.Tensor, target: torch.Tensor,
             config: FinetuneConfig | None = None) -> FinetuneResult:
    """Fine-tune a copy of ``model`` to ``target [N, C]`` at ``coords [N, d]`` with Adam.

    Args:
        model: the starting network (not changed).
        coords, target: the volume's points and values (normalised to [-1, 1]).
        config: settings; see :class:`FinetuneConfig`.
    Returns:
        The fitted copy (on the CPU); ``seconds`` counts only the training steps and
        ``history[k]`` is the PSNR on the whole volume after ``step`` updates.
    """
    config = config or FinetuneConfig()
    n = int(coords.shape[0])
    full = config.batch_size is None or config.batch_size >= n
    result = fit(copy.deepcopy(model), PointTask(coords, target), config.fit_config(n))
    return FinetuneResult(result.model.cpu(), _history(result, full), result.metrics["psnr"], result.steps,
                          result.seconds)


def first_reaching(history: Sequence[dict[str, float]], target: float) -> dict[str, float] | None:
    """The first history row with ``psnr >= target`` (``None`` if never reached)."""
    return next((row for row in history if row["psnr"] >= target), None)


def encode_series(series: VolumeSeries, init: MLP | str | Path, out_dir: str | Path,
                  config: FinetuneConfig | None = None, members: Sequence[int] | None = None) -> dict[str, Any]:
    """Fine-tune ``init`` to every member (or ``members``) of ``series``; write one model each.

    Writes ``out_dir/<member>.safetensors`` and ``out_dir/summary.json`` with per-volume PSNR,
    steps and training seconds; returns the summary.
    """
    config = config or FinetuneConfig()
    model = init if isinstance(init, nn.Module) else load_model(init)[0]
    if not isinstance(model, MLP):
        raise InvalidInputError(f"the initialisation must be an inrkit MLP, not a {type(model).__name__}")
    if model.coord_dim != 3 or model.out_dim != 1:
        raise InvalidInputError(f"the initialisation maps {model.coord_dim}D -> {model.out_dim}D; need 3D -> 1D")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    idx = list(range(len(series))) if members is None else [int(i) for i in members]
    if any(i < 0 or i >= len(series) for i in idx):
        raise InvalidInputError(f"members must be in [0, {len(series) - 1}]")
    coords = series.coords()
    rows = []
    for i in tqdm(idx, desc="meta-encode", disable=not config.progress):
        res = finetune(model, coords, series.targets([i])[0], config)
        fname = f"{series.member_names[i]}.safetensors"
        row = {"member": i, "name": series.member_names[i], "label": float(series.labels[i]),
               "model": fname, "psnr": res.psnr, "steps": res.steps, "seconds": res.seconds}
        save_model(res.model, out / fname, signal=series.metadata(i), extra={"meta_encode": row})
        rows.append(row)
    psnrs = [r["psnr"] for r in rows]
    summary = {
        "series": series.name, "label_name": series.label_name, "dims": list(series.dims),
        "steps": config.steps, "lr": config.lr, "batch_size": config.batch_size,
        "members": rows, "mean_psnr": float(np.mean(psnrs)) if rows else float("nan"),
        "min_psnr": float(np.min(psnrs)) if rows else float("nan"),
        "total_seconds": float(sum(r["seconds"] for r in rows)),
    }
    write_json(out / "summary.json", summary)
    return summary
