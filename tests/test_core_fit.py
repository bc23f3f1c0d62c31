"""The fitting loop: learning, stop rules, reproducibility, callbacks, resume."""
import json

import numpy as np
import pytest
import torch

from inrkit.models import keep_neurons, siren
from inrkit.signals import ImageSignal
from inrkit.train import FitConfig, fit, lr_factor


@pytest.fixture
def image_signal(tiny_image):
    return ImageSignal(tiny_image)


def _model(seed=0):
    return siren(2, 3, [32, 32], generator=torch.Generator().manual_seed(seed))


def test_fit_improves_psnr(image_signal):
    before = image_signal.evaluate(_model())["psnr"]
    result = fit(_model(), image_signal, FitConfig(steps=60, lr=1e-3, progress=False))
    assert result.metrics["psnr"] > before + 5
    assert result.steps == 60 and result.history[-1]["step"] == 60
    assert {"step", "loss", "psnr", "seconds"} <= set(result.history[0])


def test_reproducible(image_signal):
    cfg = FitConfig(steps=15, batch_size=200, progress=False, seed=4)
    a = fit(_model(1), image_signal, cfg)
    b = fit(_model(1), image_signal, cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_target_psnr_and_time_budget(image_signal):
    r = fit(_model(), image_signal, FitConfig(steps=500, lr=1e-3, target_psnr=18.0, progress=False))
    assert r.stopped_by == "target_psnr" and r.steps < 500
    r = fit(_model(), image_signal, FitConfig(steps=10**6, time_budget=0.5, progress=False))
    assert r.stopped_by == "time_budget" and r.seconds < 5


def test_schedule():
    assert lr_factor("cosine", 0, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor("cosine", 100, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor("constant", 50, 100, 0.1) == 1.0


def test_history_json(image_signal, tmp_path):
    fit(_model(), image_signal, FitConfig(steps=20, log_every=5, progress=False, history_path=str(tmp_path / "h.json")))
    data = json.loads((tmp_path / "h.json").read_text())
    assert [row["step"] for row in data["history"]] == [5, 10, 15, 20] and "psnr" in data["metrics"]


class _Shrink:
    """Removes half of layer 0 at step 5 and records what the optimizer kept."""

    def __init__(self):
        self.kept_state = None

    def extra_loss(self, state):
        return 1e-6 * state.model.weights[1].abs().sum()

    def on_step_end(self, state):
        if state.step == 5:
            untouched = state.model.weights[2]
            keep_neurons(state.model, 0, list(range(16)))
            state.replace_model(state.model)
            self.kept_state = untouched in state.optimizer.state and state.model.weights[2] is untouched


def test_callbacks_change_model_midrun(image_signal):
    cb = _Shrink()
    result = fit(_model(), image_signal, FitConfig(steps=12, progress=False), callbacks=[cb])
    assert result.model.widths == [2, 16, 32, 3]
    assert cb.kept_state  # Adam state of the untouched last layer survived the surgery


def test_checkpoint_resume_matches_uninterrupted(image_signal, tmp_path):
    ck = str(tmp_path / "ck.safetensors")
    fit(_model(), image_signal, FitConfig(steps=10, batch_size=300, progress=False, seed=2, lr_min_factor=1.0,
                                          schedule="constant", checkpoint_path=ck, checkpoint_every=5))
    cfg = FitConfig(steps=20, batch_size=300, progress=False, seed=2, schedule="constant", checkpoint_path=ck,
                    checkpoint_every=5, resume=True)
    resumed = fit(_model(7), image_signal, cfg)  # architecture and weights come from the checkpoint
    straight = fit(_model(), image_signal, FitConfig(steps=20, batch_size=300, progress=False, seed=2, schedule="constant"))
    assert resumed.steps == 20
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(resumed.model.parameters(), straight.model.parameters()))
