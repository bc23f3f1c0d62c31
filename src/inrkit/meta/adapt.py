"""Adaptation: fine-tune a network to each full-resolution volume of a series.

The same loop serves Meta-INR (start from the meta-initialisation), the pretrained-SIREN
ablation and SIREN from scratch, so timings are comparable. With a full batch (the
default), the PSNR before every update comes for free from the loss; with mini-batches the
whole volume is evaluated every ``eval_every`` steps, outside the timed region.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..errors import InvalidInputError
from ..metrics import psnr_from_mse
from ..models.io import load_model, save_model
from ..models.mlp import MLP
from ..signals.base import predict
from ..signals.series import VolumeSeries
from ..utils import resolve_device, write_json


@dataclass
class AdaptConfig:
    """Per-volume fine-tuning settings.

    Args:
        steps: Adam steps per volume.
        lr: Adam learning rate.
        batch_size: points per step (``None``: the whole volume).
        eval_every: full-volume PSNR interval for mini-batch training (0: only at the end).
        target_psnr: stop a volume once its PSNR reaches this value.
        seed: mini-batch sampling.
    """

    steps: int = 100
    lr: float = 1e-4
    batch_size: int | None = None
    eval_every: int = 10
    target_psnr: float | None = None
    seed: int = 0
    device: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise InvalidInputError("adaptation needs steps >= 0 and a positive learning rate")
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInputError("batch size must be positive")


@dataclass
class AdaptResult:
    """A fitted volume: the model, PSNR history ``[{step, psnr, seconds}]`` and totals."""

    model: MLP
    history: list[dict[str, float]] = field(default_factory=list)
    psnr: float = 0.0
    steps: int = 0
    seconds: float = 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mse(model: MLP, coords: torch.Tensor, target: torch.Tensor) -> float:
    return float(torch.mean((predict(model, coords) - target) ** 2))


def adapt(model: MLP, coords: torch.Tensor, target: torch.Tensor, config: AdaptConfig | None = None) -> AdaptResult:
    """Fine-tune a copy of ``model`` to ``target [N, 1]`` at ``coords [N, 3]`` with Adam.

    ``seconds`` counts only the training steps (no evaluation). ``history[k]`` is the
    PSNR on the whole volume after ``step`` updates and the training time spent so far.
    """
    config = config or AdaptConfig()
    config.validate()
    device = resolve_device(config.device)
    model = model.copy().to(device)
    coords, target = coords.to(device), target.to(device)
    n = coords.shape[0]
    full = config.batch_size is None or config.batch_size >= n
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses: list[torch.Tensor] = []
    times: list[float] = [0.0]
    history: list[dict[str, float]] = []
    seconds, step = 0.0, 0
    for step in range(1, config.steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        if full:
            xb, yb = coords, target
        else:
            idx = torch.randint(n, (config.batch_size,), generator=gen).to(device)
            xb, yb = coords[idx], target[idx]
        loss = torch.mean((model(xb) - yb) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        seconds += time.perf_counter() - t0
        times.append(seconds)
        if full:
            losses.append(loss.detach())  # MSE of the parameters after step - 1 updates
        elif config.eval_every and step % config.eval_every == 0:
            history.append({"step": step, "psnr": psnr_from_mse(_mse(model, coords, target)), "seconds": seconds})
        if config.target_psnr is not None and _reached(history, losses, full, config.target_psnr):
            break
    steps = step if config.steps else 0
    if full:
        mses = torch.stack(losses).cpu().numpy() if losses else np.zeros(0)
        history = [{"step": k, "psnr": psnr_from_mse(float(m)), "seconds": times[k]} for k, m in enumerate(mses)]
    final = psnr_from_mse(_mse(model, coords, target))
    if not history or history[-1]["step"] != steps:
        history.append({"step": steps, "psnr": final, "seconds": seconds})
    return AdaptResult(model.cpu(), history, final, steps, seconds)


def _reached(history: list[dict], losses: list[torch.Tensor], full: bool, target: float) -> bool:
    if full:
        return bool(losses) and psnr_from_mse(float(losses[-1])) >= target
    return bool(history) and history[-1]["psnr"] >= target


def first_reaching(history: Sequence[dict[str, float]], target: float) -> dict[str, float] | None:
    """The first history row with ``psnr >= target`` (``None`` if never reached)."""
    return next((row for row in history if row["psnr"] >= target), None)


def encode_series(series: VolumeSeries, init: MLP | str | Path, out_dir: str | Path,
                  config: AdaptConfig | None = None, members: Sequence[int] | None = None) -> dict[str, Any]:
    """Adapt ``init`` to every member (or ``members``) of ``series``; write one model each.

    Writes ``out_dir/<member>.safetensors`` and ``out_dir/summary.json`` with per-volume PSNR,
    steps and training seconds; returns the summary.
    """
    config = config or AdaptConfig()
    config.validate()
    if not isinstance(init, MLP):
        init, _ = load_model(init)
    if init.coord_dim != 3 or init.out_dim != 1:
        raise InvalidInputError(f"the initialisation maps {init.coord_dim}D -> {init.out_dim}D; need 3D -> 1D")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    idx = list(range(len(series))) if members is None else [int(i) for i in members]
    if any(i < 0 or i >= len(series) for i in idx):
        raise InvalidInputError(f"members must be in [0, {len(series) - 1}]")
    coords = series.coords()
    rows = []
    for i in tqdm(idx, desc="meta-encode", disable=not config.progress):
        res = adapt(init, coords, series.targets([i])[0], AdaptConfig(**{**config.__dict__, "progress": False}))
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
