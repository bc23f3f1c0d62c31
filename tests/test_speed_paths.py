"""The fast compute paths (inrkit.models.fast, FitConfig.precision / compile) stay close to float32 and train."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inrkit.errors import InvalidInputError
from inrkit.models.fast import ReducedPrecisionMLP, bf16_supported, resolve_precision, with_precision
from inrkit.models.mlp import ffn, finer, siren
from inrkit.signals.base import GridSignal
from inrkit.signals.grid import ImageSignal
from inrkit.train import FitConfig, fit


def _points(n: int = 256, d: int = 2) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _grads(model, x: torch.Tensor, precision: str) -> list[torch.Tensor]:
    model.zero_grad()
    y = with_precision(model, precision)(x)
    (y**2).mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@pytest.mark.parametrize("build", [
    lambda g: siren(2, 3, (32, 32, 32), generator=g),
    lambda g: finer(2, 3, (32, 32), generator=g),
    lambda g: ffn(2, 3, (32, 32), num_frequencies=16, generator=g),
], ids=["siren", "finer", "ffn"])
def test_bf16_outputs_and_gradients_close_to_fp32(build) -> None:
    model, x = build(torch.Generator().manual_seed(0)), _points()
    with torch.no_grad():
        ref = model(x)
        out = with_precision(model, "bf16")(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert float((out - ref).abs().max()) < 0.05 * max(1.0, float(ref.abs().max()))
    for g_fp32, g_bf16 in zip(_grads(model, x, "fp32"), _grads(model, x, "bf16")):
        assert g_bf16.dtype == torch.float32
        assert _cosine(g_fp32, g_bf16) > 0.98


def test_first_sine_layer_keeps_float32_phases() -> None:
    # omega0 = 3000 makes first-layer phases ~1000 rad: bfloat16 phases would be garbage.
    model, x = siren(2, 1, (32, 32), omega0=3000.0), _points()
    with torch.no_grad():
        _, ref = model.forward_with_hidden(x)
        _, fast = with_precision(model, "bf16").forward_with_hidden(x)
        naive = torch.sin((3000.0 * (x @ model.weights[0].t() + model.biases[0])).bfloat16())
    assert fast[0].dtype == torch.bfloat16
    assert float((fast[0].float() - ref[0]).abs().max()) <= 2**-8  # only the output rounding
    assert float((naive.float() - ref[0]).abs().max()) > 0.1  # what a bf16 phase would do


def test_default_path_is_untouched_by_the_wrapper() -> None:
    model, x = siren(2, 3, (16, 16)), _points(64)
    with torch.no_grad():
        before = model(x)
        fast = with_precision(model, "bf16")
        fast(x)
        after = model(x)
        manual = x
        for i in range(model.num_layers - 1):
            manual = torch.sin(30.0 * (manual @ model.weights[i].t() + model.biases[i]))
        manual = manual @ model.weights[-1].t() + model.biases[-1]
    assert torch.equal(before, after)
    assert torch.allclose(before, manual, atol=1e-5)
    assert with_precision(model, "fp32") is model  # fp32 is the model itself, no wrapper


def test_wrapper_shares_parameters_and_keeps_no_global_state() -> None:
    model, x = siren(2, 1, (16, 16)), _points(32)
    fast = with_precision(model, "bf16")
    assert isinstance(fast, ReducedPrecisionMLP) and fast.model is model
    assert list(fast.parameters()) == list(model.parameters())  # the same master weights, no copies
    with torch.no_grad():
        model.weights[1].mul_(0.5)  # an edit of the model is seen by the wrapper
        ref = model(x)
        assert float((fast(x) - ref).abs().max()) < 0.05 * max(1.0, float(ref.abs().max()))
    with pytest.raises(RuntimeError):  # nothing to restore after an error: there is no context
        fast(torch.zeros(3, 5))
    assert torch.equal(model(x), ref)  # the plain model is still float32
    assert with_precision(torch.nn.Linear(2, 2), "bf16").__class__ is torch.nn.Linear  # no bf16 layers: as is


def test_fused_backward_is_repeatable_and_once_differentiable() -> None:
    model, x = siren(2, 1, (16, 16)), _points(64).requires_grad_(True)
    fast = with_precision(model, "bf16")
    y = fast(x).sum()
    (g1,) = torch.autograd.grad(y, model.weights[1], retain_graph=True)
    (g2,) = torch.autograd.grad(y, model.weights[1])
    assert torch.equal(g1, g2)  # no in-place damage to saved tensors
    y = fast(x).sum()
    (gx,) = torch.autograd.grad(y, x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gx.sum().backward()


def test_precision_names_and_auto() -> None:
    with pytest.raises(InvalidInputError):
        FitConfig(precision="fp16")
    with pytest.raises(InvalidInputError):
        with_precision(siren(2, 1, (4,)), "int8")
    with pytest.raises(InvalidInputError):
        resolve_precision("half", "cpu")
    assert resolve_precision("auto", "cpu", plain_mse=False) == "fp32"
    assert resolve_precision("auto", "cpu") == ("bf16" if bf16_supported("cpu") else "fp32")
    assert resolve_precision("bf16", "cpu") == "bf16"


def _image(size: int = 16) -> ImageSignal:
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * xx), np.cos(5 * yy), xx * yy], axis=-1) * 110 + 128
    return ImageSignal(img.astype(np.float32))


def _fit(precision: str, compile: bool = False, steps: int = 40):
    model = siren(2, 3, (32, 32), generator=torch.Generator().manual_seed(0))
    config = FitConfig(steps=steps, lr=1e-3, schedule="constant", log_every=1, progress=False, device="cpu",
                       precision=precision, compile=compile)
    return fit(model, _image(), config)


def test_bf16_fit_trains_like_fp32() -> None:
    ref, fast = _fit("fp32"), _fit("bf16")
    losses = [row["loss"] for row in fast.history]
    assert losses[-1] < 0.2 * losses[0]
    assert abs(fast.metrics["psnr"] - ref.metrics["psnr"]) < 0.5
    assert fast.model.weights[0].dtype == torch.float32  # master weights stay float32


def test_bf16_rejected_for_losses_that_need_second_derivatives() -> None:
    class CustomLoss(GridSignal):
        supports_bf16 = False  # the task declares it (e.g. a loss that differentiates the network)

        def loss(self, model, coords, targets):
            return super().loss(model, coords, targets)

    signal = CustomLoss(np.random.default_rng(0).random((8, 8, 1)).astype(np.float32))
    model = siren(2, 1, (16,))
    with pytest.raises(InvalidInputError, match="bf16"):
        fit(model, signal, FitConfig(steps=2, progress=False, device="cpu", precision="bf16"))
    result = fit(model, signal, FitConfig(steps=2, progress=False, device="cpu", precision="auto"))
    assert result.steps == 2


def test_compiled_fit_matches_eager() -> None:
    pytest.importorskip("torch._inductor")
    eager, compiled = _fit("bf16"), _fit("bf16", compile=True)
    assert compiled.history[-1]["loss"] < 0.2 * compiled.history[0]["loss"]
    assert abs(compiled.metrics["psnr"] - eager.metrics["psnr"]) < 0.5
