"""The compiled training step (inrkit.train.compiled) and its polynomial sine (inrkit.models.fastsin)."""
from __future__ import annotations

import copy

import pytest
import torch

from inrkit.errors import InvalidInputError
from inrkit.models import StackedModel
from inrkit.models.fastsin import fast_cos, fast_sin, fast_sincos
from inrkit.models.mlp import finer, siren
from inrkit.signals.grid import ImageSignal
from inrkit.train import FitConfig, fit
from inrkit.train.batched import StackedTask
from inrkit.train.compiled import CompiledStep, compile_pays, resolve_compile, unsupported
from inrkit.train.task import PointTask


def _wide_range() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.cat([torch.linspace(-10, 10, 200_001), torch.linspace(-1e4, 1e4, 1_000_001),
                      (torch.rand(200_000, generator=gen) * 2 - 1) * 100,
                      torch.tensor([0.0, -0.0, 1e-30, 3.1415927, -1.5707964, 1e4, -1e4])])


def test_fast_sin_cos_within_2e7_of_float64() -> None:
    x = _wide_range()
    s, c = fast_sincos(x)
    ref_s, ref_c = torch.sin(x.double()), torch.cos(x.double())
    assert (s.double() - ref_s).abs().max() <= 2e-7
    assert (c.double() - ref_c).abs().max() <= 2e-7
    assert torch.equal(s, fast_sin(x)) and torch.equal(c, fast_cos(x))
    assert s.dtype == torch.float32


def _image(size: int = 16) -> ImageSignal:
    gen = torch.Generator().manual_seed(1)
    return ImageSignal((torch.rand(size, size, 3, generator=gen) * 255).numpy(), name="noise")


def _autograd_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    steps: int, members: bool) -> None:
    for _ in range(steps):
        err = (model(x) - y) ** 2
        loss = err.mean(dim=(1, 2)).sum() if members else err.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("arch", [siren, finer])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("stacked", [False, True])
def test_hand_written_step_matches_autograd(arch, optimizer: str, stacked: bool) -> None:
    """The step's math (run eagerly) equals autograd + torch.optim to float round-off."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=gen) * 2 - 1
    base = arch(2, 3, [16, 16], generator=gen)
    y = torch.rand(3, 200, 3, generator=gen) * 2 - 1 if stacked else torch.rand(200, 3, generator=gen) * 2 - 1
    model = StackedModel(base, 3) if stacked else base
    ref = copy.deepcopy(model)
    make = (lambda p: torch.optim.Adam(p, lr=1e-3)) if optimizer == "adam" else (lambda p: torch.optim.SGD(p, lr=1e-2))
    opt, ref_opt = make(model.parameters()), make(ref.parameters())
    _autograd_steps(ref, ref_opt, x, y, 5, stacked)
    run = CompiledStep(compile=False)
    for _ in range(5):
        mse = run(model, opt, x, y)
    assert mse.shape == ((3,) if stacked else ())
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=2e-6)
    if optimizer == "adam":
        for p, q in zip(model.parameters(), ref.parameters()):
            assert float(opt.state[p]["step"]) == float(ref_opt.state[q]["step"]) == 5
            torch.testing.assert_close(opt.state[p]["exp_avg"], ref_opt.state[q]["exp_avg"], rtol=1e-4, atol=1e-7)


def test_compiled_fit_matches_eager_and_repeats_bit_for_bit() -> None:
    """One tiny compiled fit (the only compile of the suite): same PSNR as eager, same bits twice."""
    signal = _image()
    runs = []
    for mode in ("off", "on", "on"):
        model = siren(2, 3, [8, 8], generator=torch.Generator().manual_seed(0))
        runs.append(fit(model, signal, FitConfig(steps=30, compile=mode, progress=False, precision="fp32",
                                                 batch_size=128)))
    eager, first, second = runs
    assert eager.step_path == "eager" and first.step_path == "compiled" and second.step_path == "compiled"
    assert first.compile_seconds > 0 and second.compile_seconds == 0  # compiled once per process
    assert abs(first.metrics["psnr"] - eager.metrics["psnr"]) < 0.05
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
    assert [r["loss"] for r in first.history] == [r["loss"] for r in second.history]


def test_auto_rule_and_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    small = siren(2, 3, [8, 8])
    assert not compile_pays(small, 256, 100)  # a test-sized fit stays eager
    assert compile_pays(siren(2, 3, [256] * 3), 128 * 128, 1000)
    assert not compile_pays(StackedModel(small, 2), 256, 100)
    signal = _image()
    result = fit(siren(2, 3, [8, 8]), signal, FitConfig(steps=3, progress=False))
    assert result.step_path == "eager"  # auto on a tiny fit
    long_bf16 = FitConfig(steps=10**6, progress=False, precision="bf16", time_budget=0.05)
    assert fit(siren(2, 3, [8, 8]), signal, long_bf16).step_path == "eager"  # auto: bf16 stays on models.fast
    assert FitConfig(compile=True).compile == "on" and FitConfig(compile=False).compile == "off"  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="compile mode"):
        FitConfig(compile="always")  # type: ignore[arg-type]
    monkeypatch.setenv("INRKIT_COMPILE", "off")
    assert resolve_compile("auto") == "off" and resolve_compile("on") == "on"


def test_unsupported_fits_say_why() -> None:
    model = siren(2, 1, [8])
    opt = torch.optim.Adam(model.parameters())
    task = PointTask(torch.zeros(4, 2), torch.zeros(4, 1))
    assert unsupported(model, task, opt, [], "fp32") is None
    assert unsupported(model, task, opt, [], "bf16") is None  # compile="on" only; auto keeps bf16 eager
    assert "precision" in str(unsupported(model, task, opt, [], "fp16"))
    stack_task = StackedTask(torch.zeros(4, 2), torch.zeros(2, 4, 1))
    assert "MSE" in str(unsupported(model, stack_task, opt, [], "fp32"))

    class AddsLoss:
        def extra_loss(self, state):  # noqa: ANN001, ANN201
            return None

    assert "callback" in str(unsupported(model, task, opt, [AddsLoss()], "fp32"))
    assert "weight decay" in str(unsupported(model, task, torch.optim.Adam(model.parameters(), weight_decay=0.1),
                                             [], "fp32"))


def test_fit_many_measures_its_path_and_says_which(tmp_path) -> None:  # noqa: ANN001
    from PIL import Image

    from inrkit.jobs import JobOptions, run_job
    from inrkit.train.batched import choose_path, fit_many

    signals = [_image(8), _image(8)]
    models = [siren(2, 3, [8], generator=torch.Generator().manual_seed(0)) for _ in signals]
    config = FitConfig(steps=4, progress=False, precision="fp32")
    chosen, info = choose_path(models[0], signals, signals[0].coords, torch.stack([s.values for s in signals]), config)
    assert chosen in ("batched", "single") and set(info["seconds_per_signal_step"]) == {"batched", "single"}
    runs = {path: fit_many(models, signals, config, path=path) for path in ("batched", "single", "auto")}
    assert [r.batched for r in runs["batched"]] == [True, True] and [r.batched for r in runs["single"]] == [False] * 2
    assert runs["auto"][0].batched == (chosen == "batched")
    for a, b in zip(runs["batched"], runs["single"]):
        assert abs(a.metrics["psnr"] - b.metrics["psnr"]) < 1e-3
    for i in range(2):
        Image.fromarray((signals[i].values.reshape(8, 8, 3).numpy() * 127.5 + 127.5).astype("uint8")).save(
            tmp_path / f"s{i}.png")
    summary = run_job([tmp_path / "s0.png", tmp_path / "s1.png"], tmp_path / "out", config=config,
                      job=JobOptions(batch=2))
    assert summary["totals"]["ok"] == 2 and sum(summary["run"]["fit_path"].values()) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_compiled_step_on_cuda_matches_eager() -> None:
    signal = _image(32)
    runs = [fit(siren(2, 3, [32, 32], generator=torch.Generator().manual_seed(0)), signal,
                FitConfig(steps=50, compile=mode, progress=False, precision="fp32", device="cuda"))
            for mode in ("off", "on")]
    assert runs[1].step_path == "compiled"
    assert abs(runs[0].metrics["psnr"] - runs[1].metrics["psnr"]) < 0.05
