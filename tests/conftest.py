"""Shared test fixtures: the optional ../shared/data folder and tiny signals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# The tests use tiny tensors: one thread avoids OpenMP overhead (and contention on shared machines).
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The read-only data folder beside the repository; skips when a clone has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only in the development checkout)")
    return SHARED_DATA


@pytest.fixture
def tiny_image() -> np.ndarray:
    """A smooth 24x32 RGB test image in 0..255."""
    y, x = np.mgrid[0:24, 0:32] / 16.0
    img = np.stack([np.sin(2 * x) * 0.5 + 0.5, np.cos(3 * y) * 0.5 + 0.5, (x + y) / 3.5], axis=-1)
    return (np.clip(img, 0, 1) * 255).astype(np.float32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
