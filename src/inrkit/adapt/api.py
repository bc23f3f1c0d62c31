"""``adapt_file``: the library function behind ``inrkit adapt``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from inrkit.adapt.config import AireConfig, load_config, load_preset
from inrkit.adapt.runner import aire, train_psnr
from inrkit.errors import InvalidInputError
from inrkit.limits import check_range
from inrkit.metrics import size_report, warn_if_larger
from inrkit.models.io import save_model
from inrkit.utils import resolve_device


def resolve_config(preset: str | None = "image", config: str | Path | None = None, scale: float = 1.0,
                   seed: int | None = None) -> AireConfig:
    """The schedule from a config file, else a preset; steps multiplied by ``scale``."""
    cfg = load_config(config) if config else load_preset(preset or "image")
    cfg = cfg.scaled(scale) if scale != 1.0 else cfg
    if seed is not None:
        cfg.seed = int(seed)
    return cfg


def adapt_file(input_path: str | Path, output: str | Path, preset: str | None = "image",
               config: str | Path | None = None, scale: float = 1.0, seed: int | None = None,
               test_fraction: float = 0.0, device: str | None = None, progress: bool = True,
               crop: Sequence[int] | None = None) -> dict[str, Any]:
    """Fit a network to the signal in ``input_path`` with an AIRe schedule and save it.

    Reports ``params_before`` (the starting network), ``params_after``, ``psnr_before``
    (training PSNR of the largest network, just before the first prune stage) and
    ``psnr_after`` (training PSNR of the final network), the final ``metrics``
    (held-out where ``test_fraction`` > 0) and the per-stage log. ``crop`` (images) fits a window
    ``(row0, row1, col0, col1)``, recorded in the header.
    """
    from inrkit.signals import load_signal

    check_range("scale", scale, 0, low_open=True, optional=False)
    check_range("seed", seed, 0)
    check_range("test_fraction", test_fraction, 0, 0.99, optional=False)
    cfg = resolve_config(preset, config, scale, seed)
    options = {} if crop is None else {"crop": tuple(int(v) for v in crop)}
    signal = load_signal(input_path, test_fraction=test_fraction, seed=cfg.seed, **options)
    if signal.dim < 1:
        raise InvalidInputError(f"{input_path}: signal has no coordinates")
    result = aire(signal, cfg, device=device, progress=progress)
    prunes = [s for s in result.stages if s["kind"] == "prune"]
    trains = [s for s in result.stages if "psnr_train" in s]
    psnr_before = prunes[0]["psnr_before"] if prunes else None
    psnr_after = trains[-1]["psnr_train"] if trains else train_psnr(
        result.model, signal, cfg.batch_size, resolve_device(device))
    if result.stages and result.stages[-1]["kind"] == "prune":
        psnr_after = result.stages[-1]["psnr_after"]
    extra = {"aire": {"config": cfg.to_dict(), "stages": result.stages, "input": str(input_path)}}
    save_model(result.model.cpu(), output, signal=signal.metadata(), extra=extra)
    size = size_report(Path(output).stat().st_size, signal.metadata())
    warn_if_larger(size, str(output))
    return {
        "output": str(output), "preset": None if config else (preset or "image"),
        "config": str(config) if config else None, "scale": scale, "seed": cfg.seed, "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "params_before": result.params_start, "params_after": result.model.num_params(),
        "widths_before": result.widths_start, "widths_after": result.model.widths,
        "psnr_before": psnr_before, "psnr_after": psnr_after,
        "metrics": result.metrics, **size, "bytes_saved": 4 * (result.params_start - result.model.num_params()),
        "stages": result.stages,
    }
