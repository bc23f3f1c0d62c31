"""``inrkit demo``: fit a SIREN to a bundled photograph and write what a user wants to see."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image

from inrkit.api import ModelSpec, run_config
from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_OUTPUT_SIDE, check_hidden, check_range
from inrkit.models import MLP, load_model, save_model, siren
from inrkit.signals import ImageSignal, render_model
from inrkit.signals.render import save_png
from inrkit.train import FitConfig, fit
from inrkit.utils import to_uint8, write_json


def demo_image(size: int = 128) -> np.ndarray:
    """The astronaut photograph bundled with scikit-image, downsampled to ``size x size`` (0..255)."""
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32)


def _comparison_png(path: Path, truth: np.ndarray, recon: np.ndarray, upsampled: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    err = np.abs(recon.astype(np.float32) - truth.astype(np.float32)).mean(-1)
    titles = ["ground truth", "SIREN reconstruction", f"rendered at {upsampled.shape[0]}x{upsampled.shape[1]}"]
    for ax, img, title in zip(axes, [truth, recon, upsampled], titles):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis("off")
    im = axes[3].imshow(err, cmap="magma")
    axes[3].set_title("|error|")
    axes[3].axis("off")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_demo(output_dir: str | os.PathLike = "inrkit-demo", size: int = 128, steps: int = 400,
             hidden: tuple[int, ...] = (64, 64, 64), seed: int = 0, device: str | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Fit, save, reload, render and evaluate a SIREN on a bundled image; returns the metrics.

    Writes ``model.safetensors``, ``reconstruction.png``, ``upsampled.png`` (4x), ``comparison.png``,
    ``history.json`` (with its training curve ``history.png``) and ``metrics.json`` into ``output_dir``.

    Args:
        output_dir: output folder.
        size: side of the (square) image in pixels.
        steps: fitting steps.
        hidden: SIREN hidden widths.
        seed: model initialisation and batches.
        device: cpu, cuda, cuda:1, mps (none: pick automatically).
        progress: show a progress bar.
    """
    # every argument is checked before the output folder is created (a refusal leaves nothing behind)
    for name, value, low, high in (("size", size, 8, MAX_OUTPUT_SIDE // 4), ("steps", steps, 0, None)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidInputError(f"{name} must be an integer, got {value!r}")
        check_range(name, value, low, high, optional=False)
    hidden = check_hidden(hidden)
    if not str(os.fspath(output_dir)).strip():
        raise InvalidInputError("output_dir: empty path")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    signal = ImageSignal(demo_image(size), name="astronaut (scikit-image)")
    model = siren(2, 3, hidden, generator=torch.Generator().manual_seed(seed))
    config = FitConfig(steps=steps, seed=seed, progress=progress, device=device, history_path=str(out / "history.json"))
    t0 = time.perf_counter()
    result = fit(model, signal, config)
    save_model(result.model.cpu(), out / "model.safetensors", signal=signal.metadata(),
               extra={"arch": "siren", "seed": seed, "steps": steps, "source": "skimage.data.astronaut",
                      "config": {**run_config(ModelSpec(hidden=hidden), config), "image_size": size}})
    fitted = cast(MLP, result.model)
    reloaded, header = load_model(out / "model.safetensors")
    render_model(reloaded, header["signal"], out / "reconstruction.png")
    render_model(reloaded, header["signal"], out / "upsampled.png", (4 * size, 4 * size))
    truth = to_uint8(signal.denormalize(signal.values).reshape(size, size, 3), peak=255.0)
    recon = np.asarray(Image.open(out / "reconstruction.png"))
    upsampled = np.asarray(Image.open(out / "upsampled.png"))
    save_png(out / "ground_truth.png", truth)
    _comparison_png(out / "comparison.png", truth, recon, upsampled)
    metrics = {
        "output_dir": str(out), "image": f"astronaut {size}x{size}", "arch": "siren",
        "widths": fitted.widths, "params": fitted.num_params(), "steps": result.steps,
        "fit_seconds": round(result.seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2),
        **{k: round(v, 4) for k, v in result.metrics.items()},
        "model_bytes": (out / "model.safetensors").stat().st_size, "raw_image_bytes": size * size * 3,
    }
    write_json(out / "metrics.json", metrics)
    return metrics
