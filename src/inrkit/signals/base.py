"""The signal interface, and grid signals (images, volumes, 2D scalar fields)."""
from __future__ import annotations

import abc
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from inrkit.errors import InvalidInputError
from inrkit.metrics import psnr_from_mse
from inrkit.signals.frames import Frame
from inrkit.signals.kinds import render_model
from inrkit.utils import terminal_bar


class Signal(abc.ABC):
    """Something an INR can fit: a coordinate domain in [-1, 1]^d and values on it.

    A signal is a training task of :func:`inrkit.train.fit`. ``supports_bf16`` says whether the
    loss is plain MSE, so reduced-precision GEMMs are safe (False for losses with input gradients).
    """

    kind: str = "signal"
    dim: int = 2
    out_dim: int = 1
    supports_bf16: bool = True

    @abc.abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Signal description stored in model files (kind, shape, domain, normalisation)."""

    def num_samples(self) -> int:
        """Number of training samples (0 when samples are drawn fresh every step)."""
        return 0

    @abc.abstractmethod
    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        """Coordinates ``[B, dim]`` and targets for one step; ``None`` means the full set."""

    def loss(self, model: torch.nn.Module, coords: Tensor, targets: Tensor) -> tuple[Tensor, Tensor | None]:
        """Training loss and the plain MSE (for PSNR), by default both the MSE."""
        mse = torch.mean((model(coords) - targets) ** 2)
        return mse, mse

    @abc.abstractmethod
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Quality metrics of ``model`` against this signal (held-out samples where split)."""

    def render(self, model: torch.nn.Module, path: str | Path, size: Sequence[int] | None = None) -> Path:
        """Write the model's reconstruction to ``path`` with this kind's renderer."""
        return render_model(model, self.metadata(), path, size)


def grid_coords(shape: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
    """Coordinates of a grid in [-1, 1]^d (``linspace`` per axis, axis k is coordinate k)."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device) if n > 1 else torch.zeros(1, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


PREDICT_BAR_POINTS = 1 << 20  # predict() shows a progress bar (on a terminal) beyond this many points


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless module)."""
    return next(model.parameters(), torch.empty(0)).device


@torch.no_grad()
def predict(model: torch.nn.Module, coords: Tensor, batch: int = 65536) -> Tensor:
    """Evaluate ``model`` on ``coords`` in chunks, without gradients.

    Over :data:`PREDICT_BAR_POINTS` points (an SDF or volume render, a large evaluation) a progress
    bar shows on stderr when stderr is a terminal.
    """
    from tqdm.auto import tqdm

    device = model_device(model)
    n = coords.shape[0]
    outs = []
    with tqdm(total=n, desc="evaluate model", unit="pt", unit_scale=True, file=sys.stderr, leave=False,
              disable=terminal_bar(n > PREDICT_BAR_POINTS), dynamic_ncols=True) as bar:
        for i in range(0, n, batch):
            outs.append(model(coords[i: i + batch].to(device)))
            bar.update(outs[-1].shape[0])
    return torch.cat(outs).float()


class GridSignal(Signal):
    """Values on a regular grid, ``values`` shaped ``[*shape, C]``.

    Values are normalised to [-1, 1] with ``offset`` and ``scale`` (raw = v * scale + offset);
    by default from the data's min and max. ``test_fraction`` holds out a random share of
    the samples (seeded) for evaluation, as AIRe does with 10% of the pixels.

    Args:
        values: grid values ``[*shape, C]`` (a trailing channel axis is required).
        kind: ``"image"``, ``"volume"`` or ``"field"``.
        value_range: ``(lo, hi)`` mapped to [-1, 1]; the data range if ``None``.
        test_fraction: share of samples held out for evaluation.
        seed: seed of the split.
        domain: physical extent ``[[lo, hi], ...]`` of the grid (metadata only).
        frame: physical frame of the source (origin, spacing, array name); sets ``domain`` (metadata only).
        sample_dtype: NumPy name of the source's sample type (default: the frame's, else unknown); metadata
            ``dtype``, which sizes the raw data (:func:`raw_bytes`).
    """

    def __init__(
        self,
        values: np.ndarray,
        kind: str = "field",
        value_range: tuple[float, float] | None = None,
        test_fraction: float = 0.0,
        seed: int = 0,
        domain: Sequence[Sequence[float]] | None = None,
        name: str = "",
        frame: Frame | None = None,
        sample_dtype: str | None = None,
    ) -> None:
        values = np.asarray(values, dtype=np.float32)
        if values.ndim < 2 or values.size == 0:
            raise InvalidInputError(f"a grid signal needs values shaped [*grid, channels], got {values.shape}")
        if not np.isfinite(values).all():
            raise InvalidInputError(f"{name or 'signal'}: values contain NaN or infinity")
        if not 0.0 <= test_fraction < 1.0:
            raise InvalidInputError(f"test fraction must be in [0, 1), got {test_fraction}")
        self.kind, self.name = kind, name
        self.shape = tuple(int(s) for s in values.shape[:-1])
        self.dim, self.out_dim = len(self.shape), int(values.shape[-1])
        lo, hi = (float(values.min()), float(values.max())) if value_range is None else value_range
        self.offset = (hi + lo) / 2.0
        self.scale = (hi - lo) / 2.0 if hi > lo else 1.0
        if frame is not None and len(frame.origin) != self.dim:
            raise InvalidInputError(f"a {len(frame.origin)}D frame for a {self.dim}D grid")
        self.frame = frame
        self.sample_dtype = sample_dtype or (frame.dtype if frame is not None else None)
        if frame is not None:
            domain = frame.domain(self.shape)
        self.domain = [list(map(float, d)) for d in domain] if domain else [[-1.0, 1.0]] * self.dim
        self.coords = grid_coords(self.shape)
        self.values = torch.from_numpy((values.reshape(-1, self.out_dim) - self.offset) / self.scale)
        n = self.coords.shape[0]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_test = int(round(test_fraction * n))
        self.test_idx = torch.sort(perm[:n_test]).values if n_test else None
        self.train_idx = torch.sort(perm[n_test:]).values if n_test else None
        self._cache: dict[Any, tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------- training
    def metadata(self) -> dict[str, Any]:
        meta = {
            "kind": self.kind, "name": self.name, "shape": list(self.shape), "channels": self.out_dim,
            "domain": self.domain, "value_offset": [self.offset] * self.out_dim,
            "value_scale": [self.scale] * self.out_dim,
        }
        if self.frame is not None:
            meta.update(self.frame.metadata(self.shape))
        if self.sample_dtype is not None:
            meta["dtype"] = self.sample_dtype
        return meta

    def renormalize(self, offset: float, scale: float) -> None:
        """Express the values in another normalisation (``raw = v * scale + offset``), e.g. a model's.

        Evaluating a model against a signal needs the model's units: a file's own min/max may differ
        from the fitted signal's (another member of a series, a different crop).
        """
        if not (math.isfinite(offset) and math.isfinite(scale) and scale > 0):
            raise InvalidInputError(f"bad value normalisation (offset {offset}, scale {scale})")
        if offset == self.offset and scale == self.scale:
            return
        self.values = (self.values * self.scale + self.offset - offset) / scale
        self.offset, self.scale = float(offset), float(scale)
        self._cache = {}

    def num_samples(self) -> int:
        return int(self.coords.shape[0] if self.train_idx is None else self.train_idx.numel())

    def _train_set(self, device: torch.device) -> tuple[Tensor, Tensor]:
        key = str(device)
        if key not in self._cache:
            coords, values = self.coords, self.values
            if self.train_idx is not None:
                coords, values = coords[self.train_idx], values[self.train_idx]
            self._cache = {key: (coords.to(device), values.to(device))}
        return self._cache[key]

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        coords, values = self._train_set(device)
        if batch_size is None or batch_size >= coords.shape[0]:
            return coords, values
        idx = torch.randint(coords.shape[0], (batch_size,), generator=generator).to(device)
        return coords[idx], values[idx]

    # ----------------------------------------------------------- evaluation
    def denormalize(self, values: Tensor | np.ndarray) -> np.ndarray:
        """Normalised values back to raw units."""
        arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
        return arr * self.scale + self.offset

    def predict_grid(self, model: torch.nn.Module, shape: Sequence[int] | None = None) -> np.ndarray:
        """The model sampled on a grid (default: the signal's own), in raw units ``[*shape, C]``."""
        shape = tuple(shape or self.shape)
        if len(shape) != self.dim:
            raise InvalidInputError(f"render size needs {self.dim} numbers, got {list(shape)}")
        pred = predict(model, grid_coords(shape))
        return self.denormalize(pred).reshape(*shape, self.out_dim)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        pred = predict(model, self.coords)
        err = (pred - self.values) ** 2
        metrics = {"psnr": psnr_from_mse(float(err.mean()))}
        if self.test_idx is not None:
            metrics["psnr_train"] = psnr_from_mse(float(err[self.train_idx].mean()))
            metrics["psnr"] = psnr_from_mse(float(err[self.test_idx].mean()))
            metrics["psnr_all"] = psnr_from_mse(float(err.mean()))
        metrics.update(self._extra_metrics(pred))
        return metrics

    def _extra_metrics(self, pred: Tensor) -> dict[str, float]:
        return {}
