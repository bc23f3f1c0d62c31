"""Batched fitting (inrkit.train.batched): stacked models, fit_many against single fits.

Tolerance: a batched member and the same model fitted alone (same seed, steps and point
batches, fp32) differ only by float round-off, because the batched sine layer computes
``h (omega W)^T + omega b`` where the single one computes ``omega (h W^T + b)``: after 30 steps
every weight within 1e-4 (absolute) and the PSNR within 1e-3 dB.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inrkit.errors import InvalidInputError
from inrkit.models.io import load_model, model_header, save_model
from inrkit.models.mlp import ffn, finer, siren
from inrkit.signals.base import GridSignal
from inrkit.train import FitConfig, StackedModel, StackedTask, fit, fit_many, fit_stacked

ATOL, PSNR_TOL = 1e-4, 1e-3


def _image(seed: int, shape: tuple[int, int] = (16, 16), noise: float = 1.0) -> GridSignal:
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    smooth = np.stack([np.sin(3 * x + seed), np.cos(2 * y), x * y], axis=-1)
    values = smooth + noise * rng.random((*shape, 3))
    return GridSignal(values.astype(np.float32), kind="image", name=f"img{seed}")


def _models(n: int, hidden: tuple[int, ...] = (16, 16)) -> list:
    return [siren(2, 3, hidden, generator=torch.Generator().manual_seed(i)) for i in range(n)]


def _close(a: torch.nn.Module, b: torch.nn.Module, atol: float = ATOL) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=atol)


@pytest.mark.parametrize("batch_size", [None, 100])
def test_batched_and_single_fits_agree(batch_size):
    signals, models = [_image(i) for i in range(3)], _models(3)
    cfg = FitConfig(steps=30, lr=1e-3, batch_size=batch_size, precision="fp32", progress=False, log_every=5)
    batched = fit_many(models, signals, cfg)
    for model, signal, res in zip(models, signals, batched):
        single = fit(model.copy(), signal, cfg)
        _close(res.model, single.model)
        assert res.metrics["psnr"] == pytest.approx(single.metrics["psnr"], abs=PSNR_TOL)
        assert res.steps == single.steps == 30 and res.stopped_by == "steps"
        assert [r["step"] for r in res.history] == [r["step"] for r in single.history]
        assert res.history[0]["loss"] == pytest.approx(single.history[0]["loss"], rel=1e-5)
    # stacks of at most 2 members (as on a CPU with a large batch) give the same models
    for res, part in zip(batched, fit_many(models, signals, cfg, max_stack=2)):
        _close(res.model, part.model, atol=1e-6)
        assert res.steps == part.steps
    # the inputs are untouched
    _close(models[0], _models(1)[0], atol=0)


def test_per_member_early_stop_keeps_the_weights_it_had():
    easy, hard = _image(0, noise=0.0), _image(1, noise=5.0)
    models = _models(2)
    cfg = FitConfig(steps=200, lr=1e-3, precision="fp32", progress=False, target_psnr=20.0)
    res = fit_many(models, [easy, hard], cfg)
    single = [fit(m.copy(), s, cfg) for m, s in zip(models, [easy, hard])]
    assert single[0].stopped_by == "target_psnr" and single[1].stopped_by == "steps"
    assert res[0].stopped_by == "target_psnr" and res[0].steps == single[0].steps < 200
    assert res[1].stopped_by == "steps" and res[1].steps == 200
    for r, s in zip(res, single):
        _close(r.model, s.model)
        assert r.metrics["psnr"] == pytest.approx(s.metrics["psnr"], abs=PSNR_TOL)
    # the run ends once every member has reached the target
    both = fit_many(_models(2), [easy, _image(2, noise=0.0)], FitConfig(
        steps=300, precision="fp32", progress=False, target_psnr=20.0))
    assert all(r.stopped_by == "target_psnr" and r.steps < 300 for r in both)


def test_mismatched_inputs_are_refused():
    cfg = FitConfig(steps=1, progress=False)
    with pytest.raises(InvalidInputError, match="shape"):
        fit_many(_models(2), [_image(0), _image(1, shape=(16, 17))], cfg)
    with pytest.raises(InvalidInputError, match="architecture"):
        fit_many([*_models(1), *_models(1, hidden=(16, 8))], [_image(0), _image(1)], cfg)
    with pytest.raises(InvalidInputError, match="one model per signal"):
        fit_many(_models(2), [_image(0)], cfg)
    with pytest.raises(InvalidInputError, match="2D -> 3D"):
        fit_many([siren(2, 1, (8,))], [_image(0)], cfg)
    with pytest.raises(InvalidInputError, match="bf16"):  # fit_many honours bf16 (test_many_forms.py); a task
        fit_stacked(StackedModel(_models(1)[0], 1),   # without supports_bf16 refuses it
                    StackedTask(torch.zeros(4, 2), torch.zeros(1, 4, 3)), FitConfig(steps=1, progress=False,
                                                                                   precision="bf16"))


def test_members_are_ordinary_models_and_files(tmp_path):
    signals, models = [_image(i) for i in range(2)], _models(2)
    cfg = FitConfig(steps=3, precision="fp32", progress=False)
    res = fit_many(models, signals, cfg)
    single = fit(models[0].copy(), signals[0], cfg)
    extra = {"config": {"steps": 3}}
    save_model(res[0].model, tmp_path / "b.safetensors", signal=signals[0].metadata(), extra=extra)
    save_model(single.model, tmp_path / "s.safetensors", signal=signals[0].metadata(), extra=extra)
    (mb, hb), (ms, hs) = load_model(tmp_path / "b.safetensors"), load_model(tmp_path / "s.safetensors")
    assert {k: v for k, v in hb.items() if k != "sha256"} == {k: v for k, v in hs.items() if k != "sha256"}
    assert model_header(mb) == model_header(ms)
    _close(mb, ms)


def test_stacked_model_round_trip_with_distinct_buffers():
    models = [ffn(2, 3, (16,), num_frequencies=8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    stacked = StackedModel.from_models(models)
    x = torch.rand(50, 2) * 2 - 1
    out = stacked(x)
    for i, (m, back) in enumerate(zip(models, stacked.members())):
        torch.testing.assert_close(out[i], m(x), rtol=1e-5, atol=1e-5)
        assert torch.equal(back.fourier, m.fourier)
        assert all(torch.equal(p, q) for p, q in zip(back.parameters(), m.parameters()))
    sirens = _models(2)
    torch.testing.assert_close(StackedModel.from_models(sirens)(x)[1], sirens[1](x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [siren, finer])
def test_stacked_bf16_layers_are_the_single_models_layers(make):
    """A stack in bfloat16 runs the layers of inrkit.models.fast: each member's output and gradients equal its
    own reduced-precision MLP's."""
    from inrkit.models.fast import with_precision

    models = [make(2, 3, (16, 16), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    stacked = StackedModel.from_models(models)
    stacked.precision = "bf16"
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(7)) * 2 - 1
    out = stacked(x)
    out.square().sum().backward()
    for i, m in enumerate(models):
        single = with_precision(m, "bf16")(x)
        single.square().sum().backward()
        assert torch.equal(out[i].detach(), single.detach())
        for name, p in zip(stacked.names, stacked.stacked):
            torch.testing.assert_close(p.grad[i], m.get_parameter(name).grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch_size", [None, 200])
def test_encode_series_batched_equals_member_by_member(tmp_path, batch_size):
    from inrkit.meta.finetune import FinetuneConfig, encode_series
    from inrkit.signals.series import VolumeSeries

    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 8)] * 3, indexing="ij"))
    volumes = np.stack([np.sin(3 * grid[0] + t) * grid[1] + 0.1 * rng.random((8, 8, 8)) for t in range(4)])
    series = VolumeSeries.from_arrays(volumes.astype(np.float32))
    init = siren(3, 1, (16, 16), generator=torch.Generator().manual_seed(0))
    cfg = FinetuneConfig(steps=12, lr=1e-3, batch_size=batch_size, eval_every=4, progress=False)
    one = encode_series(series, init, tmp_path / "one", cfg, members=[0, 2, 3], batched=False)
    many = encode_series(series, init, tmp_path / "many", cfg, members=[0, 2, 3], max_stack=2)
    assert many["run"]["batched"] and not one["run"]["batched"]
    for a, b in zip(one["inputs"], many["inputs"], strict=True):
        assert a["name"] == b["name"] and a["steps"] == b["steps"] == 12
        assert a["psnr"] == pytest.approx(b["psnr"], abs=PSNR_TOL)
        _close(load_model(a["output"])[0], load_model(b["output"])[0])


def test_finetune_many_histories_and_early_stop_match_finetune():
    from inrkit.meta.finetune import FinetuneConfig, finetune, finetune_many

    gen = torch.Generator().manual_seed(1)
    x = torch.rand(300, 3, generator=gen) * 2 - 1
    y = torch.stack([0.05 * torch.sin(x[:, :1]), torch.rand(300, 1, generator=gen) * 2 - 1])
    init = siren(3, 1, (16,), generator=torch.Generator().manual_seed(0))
    cfg = FinetuneConfig(steps=60, lr=1e-3, target_psnr=21.0, progress=False)
    many = finetune_many(init, x, y, cfg)
    for b, res in enumerate(many):
        one = finetune(init, x, y[b], cfg)
        assert res.steps == one.steps and res.psnr == pytest.approx(one.psnr, abs=PSNR_TOL)
        assert [r["step"] for r in res.history] == [r["step"] for r in one.history]
        assert [r["psnr"] for r in res.history] == pytest.approx([r["psnr"] for r in one.history], abs=PSNR_TOL)
    assert many[0].steps < 60 == many[1].steps  # the easy member stopped early, alone
