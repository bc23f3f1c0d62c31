"""File-level workflows behind the core CLI commands (fit, eval, info, render, synth)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import InvalidInputError
from .models import build_model, load_model, save_model
from .models.mlp import MLP
from .signals import AnalyticSignal, Signal, load_signal, render_model
from .signals.render import save_field_png, save_npy
from .train import FitConfig, FitResult, fit


def check_compatible(model: MLP, signal: Signal) -> None:
    """Raise InvalidInputError unless ``model`` maps ``signal.dim`` coordinates to ``signal.out_dim`` values."""
    if model.coord_dim != signal.dim or model.out_dim != signal.out_dim:
        raise InvalidInputError(
            f"model maps {model.coord_dim}D -> {model.out_dim} values but the signal is "
            f"{signal.dim}D -> {signal.out_dim} values"
        )


def fit_file(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    arch: str = "siren",
    hidden: Sequence[int] = (256, 256, 256),
    omega0: float = 30.0,
    config: FitConfig | None = None,
    signal_options: dict[str, Any] | None = None,
    test_fraction: float = 0.0,
) -> tuple[FitResult, dict[str, Any]]:
    """Fit a new ``arch`` model to the signal in ``input_path`` and save it to ``output``.

    Returns the fit result and a summary (``psnr``, ``steps``, ``seconds``, ``params``, ...).
    """
    config = config or FitConfig()
    signal = load_signal(input_path, test_fraction=test_fraction, seed=config.seed, **(signal_options or {}))
    generator = torch.Generator().manual_seed(config.seed)
    kwargs = {"omega0": omega0, "omega_hidden": omega0} if arch in ("siren", "finer") else {}
    model = build_model(arch, signal.dim, signal.out_dim, hidden, generator=generator, **kwargs)
    result = fit(model, signal, config)
    extra = {"arch": arch, "seed": config.seed, "steps": result.steps, "source": str(input_path)}
    save_model(result.model.cpu(), output, signal=signal.metadata(), extra=extra)
    summary = {"output": str(output), **result.summary(), "bytes": Path(output).stat().st_size,
               "flops_per_point": result.model.flops_per_point()}
    return result, summary


def evaluate_file(model_path: str | os.PathLike, input_path: str | os.PathLike, **signal_options: Any) -> dict[str, Any]:
    """Metrics of a saved model against the signal in ``input_path``."""
    model, header = load_model(model_path)
    signal = load_signal(input_path, **signal_options)
    check_compatible(model, signal)
    return {"model": str(model_path), "signal": str(input_path), **signal.evaluate(model)}


def model_info(model_path: str | os.PathLike) -> dict[str, Any]:
    """Architecture, widths, parameter count, FLOPs per point and file size of a saved model."""
    model, header = load_model(model_path)
    return {
        "path": str(model_path), "bytes": Path(model_path).stat().st_size,
        "widths": model.widths, "activations": model.activations, "omegas": model.omegas,
        "fourier_features": 0 if model.fourier is None else int(model.fourier.shape[0]),
        "params": model.num_params(), "flops_per_point": model.flops_per_point(),
        "signal": header.get("signal", {}), "extra": header.get("extra", {}),
    }


def render_file(model_path: str | os.PathLike, output: str | os.PathLike, size: Sequence[int] | None = None) -> dict[str, Any]:
    """Render a saved model (image, field, volume or SDF mesh) to ``output``."""
    model, header = load_model(model_path)
    path = render_model(model, header.get("signal", {}), output, size)
    return {"output": str(path), "bytes": Path(path).stat().st_size}


def synth_sin_radial(output: str | os.PathLike, size: int = 256, alpha: float = 0.1) -> dict[str, Any]:
    """Sample ``sin(1/(alpha + r))`` on a ``size x size`` grid over [-1, 1]^2; ``.npy`` or ``.png``."""
    if size < 2 or alpha <= 0:
        raise InvalidInputError("size must be >= 2 and alpha > 0")
    field = AnalyticSignal("sin-radial", params={"alpha": alpha}).sample_grid(size).astype(np.float32)
    path = Path(output)
    if path.suffix.lower() == ".png":
        save_field_png(path, field)
    elif path.suffix.lower() == ".npy":
        save_npy(path, field)
    else:
        raise InvalidInputError(f"sin-radial writes .npy or .png, not {path.suffix!r}")
    return {"output": str(path), "shape": list(field.shape), "alpha": alpha,
            "min": float(field.min()), "max": float(field.max())}
