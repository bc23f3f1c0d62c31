"""File-level entry points behind the ``inrkit meta-*`` commands."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from inrkit.meta.finetune import FinetuneConfig, encode_series
from inrkit.meta.pretrain import MetaConfig, meta_train
from inrkit.models.io import save_model
from inrkit.signals.series import load_series


def meta_train_file(series_path: str | Path, output: str | Path, config: MetaConfig | None = None) -> dict[str, Any]:
    """Meta-pretrain on the series at ``series_path``; save the initialisation to ``output``."""
    config = config or MetaConfig()
    series = load_series(series_path)
    result = meta_train(series, config)
    save_model(result.model, output, signal=series.metadata(), extra=result.extra(config))
    last = result.history[-1] if result.history else {}
    return {
        "output": str(output), "series": series.name, "members": len(series), "dims": list(series.dims),
        "order": config.order, "inner_steps": config.inner_steps, "outer_steps": result.steps,
        "pretrain_members": len(result.train_members), "subsample_fraction": result.subsample_fraction,
        "parameters": result.model.num_params(), "seconds": result.seconds,
        "final_task_loss": last.get("loss_before"),
    }


def meta_encode_file(series_path: str | Path, init: str | Path, out_dir: str | Path,
                     config: FinetuneConfig | None = None, redo: bool = False) -> dict[str, Any]:
    """Fine-tune the initialisation ``init`` to every member of a series; one model per member, resumable.

    Args:
        series_path: the series folder (or its manifest).
        init: the meta-model (or any 3D -> 1D model file).
        out_dir: the output folder: one model per member and the summary (:func:`~inrkit.meta.finetune.encode_series`).
        config: the fine-tuning settings.
        redo: fine-tune every member again, also those an earlier run finished with the same settings.
    """
    return encode_series(load_series(series_path), init, out_dir, config, redo=redo)
