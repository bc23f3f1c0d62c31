"""Per-volume fine-tuning: adapt a network to each full-resolution volume of a series.

The same loop (:func:`inrkit.train.fit` on a :class:`~inrkit.train.task.PointTask`) serves
Meta-INR (start from the meta-initialisation), the pretrained-SIREN ablation and SIREN from
scratch, so timings are comparable. With a full batch (the default), the PSNR before every
update comes for free from the loss; with mini-batches the whole volume is evaluated every
``eval_every`` steps, outside the timed region.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from inrkit.errors import InvalidInputError
from inrkit.limits import check_range
from inrkit.metrics import psnr_from_mse, size_report
from inrkit.models.io import load_model, save_model
from inrkit.models.mlp import MLP
from inrkit.models.stacked import StackedModel
from inrkit.runner import Item, Runner, unchanged_output
from inrkit.signals.series import VolumeSeries
from inrkit.train.batched import StackedTask, fit_stacked, stack_size
from inrkit.train.fit import FitConfig, FitResult, fit
from inrkit.train.task import PointTask


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


def finetune_many(model: nn.Module, coords: torch.Tensor, targets: torch.Tensor,
                  config: FinetuneConfig | None = None, max_stack: int | None = None) -> list[FinetuneResult]:
    """:func:`finetune` of ``model`` to every ``targets[b]``, batched (stacks of members, one fit each).

    Each member trains as :func:`finetune` would train it alone (same steps, point batches and
    per-member early stop), up to float round-off. ``seconds`` of each result is its share of
    its stack's run (run seconds / members), so the members' seconds add up to the runs'.

    Args:
        model: the starting network (not changed).
        coords: shared points ``[N, d]``; targets: ``[B, N, C]`` (normalised to [-1, 1]).
        config: settings; see :class:`FinetuneConfig`.
        max_stack: members per stack (``None``: :func:`inrkit.train.batched.stack_size`: all on
            a GPU, a cache-sized stack on a CPU).
    """
    config = config or FinetuneConfig()
    n, copies = int(coords.shape[0]), int(targets.shape[0])
    width = max(model.widths) if isinstance(model, MLP) else max((p.shape[0] for p in model.parameters()), default=1)
    size = stack_size(copies, n, width, config.device, max_stack)
    results: list[FinetuneResult] = []
    for start in range(0, copies, size):
        results += _finetune_stack(model, coords, targets[start:start + size], config)
    return results


def _finetune_stack(model: nn.Module, coords: torch.Tensor, targets: torch.Tensor,
                    config: FinetuneConfig) -> list[FinetuneResult]:
    n, copies = int(coords.shape[0]), int(targets.shape[0])
    full = config.batch_size is None or config.batch_size >= n
    stacked = StackedModel(model, copies)
    task = StackedTask(coords, targets, config.target_psnr)
    run = fit_stacked(stacked, task, replace(config.fit_config(n), target_psnr=None, evaluate=False))
    final = [m["psnr"] for m in task.member_metrics(stacked)]
    times = [0.0] + [r["seconds"] / copies for r in run.history]
    results = []
    for b, member in enumerate(stacked.members()):
        steps = int(task.done_step[b]) or run.steps
        if full:  # row s holds the MSE before update s, i.e. the PSNR after s - 1 updates
            rows = [{"step": r["step"] - 1, "psnr": psnr_from_mse(r["mse"][b]), "seconds": times[r["step"] - 1]}
                    for r in task.member_history if r["step"] <= steps]
        else:
            rows = [{"step": r["step"], "psnr": r["eval"]["member_psnr"][b], "seconds": r["seconds"] / copies}
                    for r in run.history if "eval" in r and r["step"] <= steps]
        if not rows or rows[-1]["step"] != steps:
            rows.append({"step": steps, "psnr": final[b], "seconds": run.seconds / copies})
        results.append(FinetuneResult(member.cpu(), rows, final[b], steps, run.seconds / copies))
    return results


def first_reaching(history: Sequence[dict[str, float]], target: float) -> dict[str, float] | None:
    """The first history row with ``psnr >= target`` (``None`` if never reached)."""
    return next((row for row in history if row["psnr"] >= target), None)


def encode_series(series: VolumeSeries, init: MLP | str | Path, out_dir: str | Path,
                  config: FinetuneConfig | None = None, members: Sequence[int] | None = None,
                  batched: bool = True, max_stack: int | None = None, redo: bool = False) -> dict[str, Any]:
    """Fine-tune ``init`` to every member (or ``members``) of ``series``; write one model each.

    Writes ``out_dir/<member>.safetensors`` and the run's summary (:mod:`inrkit.runner`: ``summary.json`` and
    ``summary.csv``; per member its ``member`` index, ``label``, ``psnr``, ``steps``, training ``seconds``, ``bytes``,
    ``raw_bytes``, ``ratio``); returns the summary. Resumable: a member whose model an earlier run with the same
    series, initialisation and settings wrote, unchanged since, is skipped (``redo``: fine-tune every member).
    ``batched`` (default) adapts the members in stacks (:func:`finetune_many`; each member's seconds are its share
    of its stack's run), ``False`` one after the other (:func:`finetune`); both give the same models up to float
    round-off. ``max_stack``: members per stack (default: all on a GPU, cache-sized on a CPU; see
    :func:`inrkit.train.batched.stack_size`).
    """
    config = config or FinetuneConfig()
    model = init if isinstance(init, nn.Module) else load_model(init)[0]
    if not isinstance(model, MLP):
        raise InvalidInputError(f"the initialisation must be an inrkit MLP, not a {type(model).__name__}")
    if model.coord_dim != 3 or model.out_dim != 1:
        raise InvalidInputError(f"the initialisation maps {model.coord_dim}D -> {model.out_dim}D; need 3D -> 1D")
    idx = list(range(len(series))) if members is None else [int(i) for i in members]
    if any(i < 0 or i >= len(series) for i in idx):
        raise InvalidInputError(f"members must be in [0, {len(series) - 1}]")
    items = {_member_item(series, i): i for i in idx}
    runner = Runner("meta-encode", list(items), out_dir, _encode_settings(series, model, config),
                    unchanged_output(_valid_model), redo=redo, progress=config.progress,
                    run={"batched": bool(batched), "max_stack": max_stack})
    todo = [items[item] for item in runner.todo]
    coords = series.coords()
    try:
        if batched and todo:
            size = stack_size(len(todo), int(coords.shape[0]), max(model.widths), config.device, max_stack)
            for start in range(0, len(todo), size):
                part = todo[start:start + size]
                for i, res in zip(part, finetune_many(model, coords, series.targets(part), config, size)):
                    _record_member(runner, series, i, res)
                runner.save()
        else:
            for i in todo:
                _record_member(runner, series, i, finetune(model, coords, series.targets([i])[0], config))
                runner.save()
    finally:
        summary = runner.close()
    return summary


def _valid_model(path: Path) -> None:
    load_model(path)


def _member_item(series: VolumeSeries, i: int) -> Item:
    """Member ``i`` as a runner input: its name and file (inside the series folder when it has one)."""
    source = str(series.folder / series.files[i]) if series.folder is not None else f"{series.name}/{series.files[i]}"
    return Item(series.member_names[i], source)


def _encode_settings(series: VolumeSeries, model: MLP, config: FinetuneConfig) -> dict[str, Any]:
    """What decides meta-encode's models: the series (values and normalisation), the initialisation, the settings."""
    values = hashlib.sha256(np.ascontiguousarray(series.values).data).hexdigest()  # the buffer: no copy
    init = hashlib.sha256()
    for tensor in [*model.parameters(), *(b for b in model.buffers() if b is not None)]:
        init.update(tensor.detach().cpu().numpy().tobytes())
    return {"series": {"name": series.name, "dims": list(series.dims), "label_name": series.label_name,
                       "offset": series.offset, "scale": series.scale, "values_sha256": values},
            "init_sha256": init.hexdigest(),
            "config": {k: v for k, v in asdict(config).items() if k not in ("progress", "device")}}


def _record_member(runner: Runner, series: VolumeSeries, i: int, res: FinetuneResult) -> None:
    """Write member ``i``'s model (atomically) and record its row."""
    item = _member_item(series, i)
    target = runner.out / f"{item.name}.safetensors"
    row = {"member": i, "name": item.name, "label": float(series.labels[i]), "model": target.name,
           "psnr": res.psnr, "steps": res.steps, "seconds": res.seconds}
    save_model(res.model, target, signal=series.metadata(i), extra={"meta_encode": row})
    report = size_report(target.stat().st_size, series.metadata(i))
    runner.record(item, target, seconds=res.seconds, member=i, label=row["label"], psnr=res.psnr, steps=res.steps,
                  raw_bytes=report.get("raw_bytes"), ratio=report.get("ratio"))
