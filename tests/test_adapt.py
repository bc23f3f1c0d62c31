"""AIRe: state-preserving surgery, densification, TWD, schedules and presets."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from inrkit.adapt import (
    AireConfig,
    Stage,
    TargetedWeightDecay,
    config_from_dict,
    densify,
    load_config,
    load_preset,
    preset_names,
    run_schedule,
    smallest_neurons,
)
from inrkit.adapt.runner import apply_structural, prune_stage_indices
from inrkit.adapt.twd import twd_penalty
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models import ffn, siren
from inrkit.models.surgery import find_group, remove_neurons
from inrkit.prune import CRITERIA
from inrkit.signals import FieldSignal
from inrkit.train import FitConfig, FitState, fit


def _net(hidden=(16, 12), seed: int = 0):
    return siren(2, 1, hidden, generator=torch.Generator().manual_seed(seed))


def _signal(n: int = 16) -> FieldSignal:
    y, x = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    return FieldSignal((np.sin(4 * x) * np.cos(3 * y)).astype(np.float32))


def _state(model, signal) -> FitState:
    """A FitState with a few Adam steps done, so every parameter has optimizer state."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = FitState(model, opt, signal, FitConfig(steps=3, progress=False), torch.device("cpu"),
                     torch.Generator().manual_seed(0))
    for _ in range(3):
        coords, targets = signal.train_batch(None, state.generator, state.device)
        loss, _ = signal.loss(model, coords, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return state


# ------------------------------------------------------------------ surgery
def test_remove_neurons_carries_sliced_adam_state() -> None:
    model, signal = _net(), _signal()
    state = _state(model, signal)
    old_w0, old_w1, old_b2 = model.weights[0], model.weights[1], model.biases[2]
    m0 = state.optimizer.state[old_w0]["exp_avg"].clone()
    m1 = state.optimizer.state[old_w1]["exp_avg_sq"].clone()
    idx = torch.tensor([1, 4, 5, 9, 15])
    state_map = remove_neurons(model, find_group(model, 0), idx)
    state.replace_model(model, state_map)
    new_state = state.optimizer.state
    torch.testing.assert_close(new_state[model.weights[0]]["exp_avg"], m0[idx])
    torch.testing.assert_close(new_state[model.weights[1]]["exp_avg_sq"], m1[:, idx])
    assert model.biases[2] is old_b2 and new_state[old_b2] is not None  # untouched: same object, same state
    assert int(new_state[model.weights[0]]["step"]) == 3
    # the optimizer still works on the smaller model
    coords, targets = signal.train_batch(None, state.generator, state.device)
    loss, _ = signal.loss(model, coords, targets)
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()
    assert model.widths == [2, 5, 12, 1]


def test_densify_adds_second_harmonics_and_keeps_output() -> None:
    model, signal = _net(), _signal()
    state = _state(model, signal)
    x = signal.coords
    ref = model(x).detach()
    theta = 30.0 * (x @ model.weights[0].detach().T + model.biases[0].detach())
    l1 = model.weights[1].detach().abs().sum(0)
    top = torch.sort(torch.topk(l1, 4).indices).values
    m0 = state.optimizer.state[model.weights[0]]["exp_avg"].clone()
    model, state_map = densify(model, 4, torch.Generator().manual_seed(0))
    assert model.widths == [2, 20, 12, 1]
    _, hidden = model.forward_with_hidden(x)
    torch.testing.assert_close(hidden[0][:, 16:], torch.sin(2 * theta[:, top]), atol=1e-4, rtol=1e-4)
    new_cols = model.weights[1].detach()[:, 16:]
    assert float(new_cols.abs().max()) <= 1e-4 and float(new_cols.abs().max()) > 0
    assert float((model(x).detach() - ref).abs().max()) < 4 * 12 * 1e-4 * 1.5
    state.replace_model(model, state_map)
    ea = state.optimizer.state[model.weights[0]]["exp_avg"]
    torch.testing.assert_close(ea[:16], m0)
    assert torch.count_nonzero(ea[16:]) == 0


def test_densify_rejects_non_periodic_first_layer_and_bad_counts() -> None:
    with pytest.raises(InvalidInputError):
        densify(ffn(2, 1, (8, 8), num_frequencies=4), 2)
    with pytest.raises(InvalidInputError):
        densify(_net(), 17)
    with pytest.raises(InvalidInputError):
        densify(_net(), 0)


def test_two_layer_prune_stage_composes_state_maps() -> None:
    model, signal = _net((16, 12, 10)), _signal()
    state = _state(model, signal)
    m2 = state.optimizer.state[model.weights[2]]["exp_avg"].clone()
    stage = Stage("prune", layers=[1, 2], count=4)
    keep1 = prune_stage_indices(model, 1, stage)
    model, state_map, info = apply_structural(model, stage, torch.Generator())
    keep2 = prune_stage_indices(_net((16, 12, 10)), 2, stage)  # shape only
    assert info["removed"] == [4, 4] and model.widths == [2, 16, 8, 6, 1]
    state.replace_model(model, state_map)
    got = state.optimizer.state[model.weights[2]]["exp_avg"]
    assert got.shape == (6, 8) and keep2.numel() == 6
    # rows of W2 come from the layer-2 selection, columns from the layer-1 selection
    rows = [i for i in range(10) if torch.allclose(m2[i, keep1], got[0])]
    assert rows, "W2's moments were not carried through both prunings"


# ---------------------------------------------------------------------- TWD
def test_twd_penalty_ramp_and_window() -> None:
    model = _net()
    twd = TargetedWeightDecay([0], 5, start=10, steps=4)
    idx = smallest_neurons(model, 0, 5)
    l1 = model.weights[1].detach().abs().sum(0)
    assert float(l1[idx].max()) <= float(np.delete(l1.numpy(), idx.numpy()).min())

    class S:
        pass

    s = S()
    s.model, s.step = model, 9
    assert twd.extra_loss(s) is None
    s.step = 10
    expected = float(l1[idx].sum())
    assert float(twd.extra_loss(s).detach()) == pytest.approx(0.25 * expected, rel=1e-5)
    s.step = 13
    assert float(twd.extra_loss(s).detach()) == pytest.approx(expected, rel=1e-5)
    s.step = 14
    assert twd.extra_loss(s) is None
    assert float(twd_penalty(model, {0: idx}).detach()) == pytest.approx(expected, rel=1e-5)


def test_twd_drives_targeted_columns_to_zero() -> None:
    model, signal = _net(), _signal()
    idx = smallest_neurons(model, 0, 8)
    before = model.weights[1].detach().abs().sum(0)[idx].sum()
    twd = TargetedWeightDecay([0], 8, start=0, steps=60)
    fit(model, signal, FitConfig(steps=60, lr=2e-3, progress=False), callbacks=[twd])
    after = model.weights[1].detach().abs().sum(0)
    assert float(after[idx].sum()) < 0.2 * float(before)
    others = torch.ones(16, dtype=torch.bool)
    others[idx] = False
    assert float(after[idx].mean()) < 0.2 * float(after[others].mean())


# ----------------------------------------------------------------- schedules
def test_presets_load_and_scale() -> None:
    assert {"image", "sdf"} <= set(preset_names())
    image = load_preset("image")
    kinds = [s.kind for s in image.stages]
    assert kinds == ["fit", "densify", "finetune", "twd", "prune", "finetune"]
    assert [s.steps for s in image.stages if s.steps] == [250, 2000, 2250, 500]
    assert image.stages[1].n == 128 and image.stages[3].k == 384 and image.stages[4].count == 384
    assert image.hidden[0] + 128 - 384 == 256
    small = image.scaled(0.1)
    assert [s.steps for s in small.stages if s.steps] == [25, 200, 225, 50]
    assert small.total_steps == 500 and image.total_steps == 5000
    with pytest.raises(InvalidInputError):
        load_preset("nope")


def test_config_files_toml_and_json(tmp_path) -> None:
    data = {"hidden": [8, 8], "lr": 1e-3, "stage": [{"kind": "fit", "steps": 3},
                                                   {"kind": "prune", "layers": [0], "eps": 0.5}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    cfg = load_config(tmp_path / "a.json")
    assert cfg.hidden == [8, 8] and cfg.stages[1].eps == 0.5 and cfg.batch_size is None
    (tmp_path / "b.toml").write_text('hidden = [8]\n[[stage]]\nkind = "fit"\nsteps = 2\n')
    assert load_config(tmp_path / "b.toml").stages[0].steps == 2
    (tmp_path / "bad.toml").write_text("hidden = [\n")
    with pytest.raises(InvalidFileError):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(InvalidFileError):
        load_config(tmp_path / "missing.toml")
    for bad in ({"stage": [{"kind": "jump"}]}, {"stage": [{"kind": "fit"}]}, {"stage": []},
                {"colour": 1, "stage": [{"kind": "fit", "steps": 1}]},
                {"stage": [{"kind": "fit", "steps": 1, "speed": 2}]}):
        with pytest.raises(InvalidInputError):
            config_from_dict(bad)


def test_prune_stage_eps_and_count() -> None:
    model = _net()
    with torch.no_grad():
        model.weights[1][:, :3] = 0.001 / 12
    keep = prune_stage_indices(model, 0, Stage("prune", eps=0.01))
    assert keep.tolist() == list(range(3, 16))
    keep = prune_stage_indices(model, 0, Stage("prune", count=5))
    assert keep.numel() == 11 and not set(range(3)) & set(keep.tolist())


def test_prune_stage_uses_the_l1_criterion_object(monkeypatch) -> None:
    """AIRe's prune stage (and TWD's targets) read ``CRITERIA["l1"]``: replacing it changes what they keep."""
    model = _net()
    l1 = CRITERIA.get("l1")
    scores = l1.scores(model.weights[0], model.weights[1])
    keep = prune_stage_indices(model, 0, Stage("prune", count=4))
    assert set(keep.tolist()) == set(torch.topk(scores, 12).indices.tolist())

    class Reversed(type(l1)):
        def scores(self, w_in, w_out):
            return -super().scores(w_in, w_out)

    monkeypatch.setitem(CRITERIA._items, "l1", Reversed())
    flipped = prune_stage_indices(model, 0, Stage("prune", count=4))
    assert set(flipped.tolist()) == set(torch.topk(-scores, 12).indices.tolist())
    assert set(smallest_neurons(model, 0, 3).tolist()) == set(torch.topk(scores, 3).indices.tolist())


def test_run_schedule_changes_widths_and_learns() -> None:
    signal = _signal()
    cfg = AireConfig(hidden=[16, 12], lr=3e-3, stages=[
        Stage("fit", steps=15), Stage("densify", n=6), Stage("finetune", steps=10),
        Stage("twd", steps=20, layers=[0], k=10), Stage("prune", layers=[0], count=10),
        Stage("finetune", steps=10)])
    model = _net((16, 12))
    start = signal.evaluate(model)["psnr"]
    result = run_schedule(model, signal, cfg, progress=False)
    assert result.model.widths == [2, 12, 12, 1]
    assert result.steps == 55
    assert result.metrics["psnr"] > start + 5
    kinds = [s["kind"] for s in result.stages]
    assert kinds == ["fit", "densify", "finetune", "twd", "prune", "finetune"]
    prune = result.stages[4]
    assert prune["removed"] == [10] and prune["widths"] == [2, 12, 12, 1]
    # TWD moved the information first: pruning costs little
    assert prune["psnr_after"] > prune["psnr_before"] - 1.0
    assert all(math.isfinite(s.get("psnr_train", 0.0)) for s in result.stages)


def test_structural_stage_before_and_after_training() -> None:
    signal = _signal()
    cfg = AireConfig(hidden=[16, 12], lr=1e-3, stages=[
        Stage("densify", n=4), Stage("fit", steps=5), Stage("prune", layers=[0, 1], count=2)])
    result = run_schedule(_net((16, 12)), signal, cfg, progress=False)
    assert result.model.widths == [2, 18, 10, 1]
    assert "psnr" in result.metrics


class _EikonalSignal(FieldSignal):
    """A signal whose loss differentiates w.r.t. the coordinates and has no MSE (like SDFs)."""

    supports_bf16 = False  # declared, as SDF signals do

    def loss(self, model, coords, targets):
        coords = coords.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(coords).sum(), coords, create_graph=True)
        return (grad.norm(dim=-1) - 1.0).abs().mean(), None


def test_schedule_with_gradient_loss_and_no_mse() -> None:
    y, x = np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 8), indexing="ij")
    signal = _EikonalSignal((x + y).astype(np.float32))
    cfg = AireConfig(hidden=[12, 8], lr=1e-3, stages=[
        Stage("fit", steps=3), Stage("prune", layers=[0], count=4), Stage("finetune", steps=2)])
    result = run_schedule(_net((12, 8)), signal, cfg, progress=False)
    assert result.model.widths == [2, 8, 8, 1]
    assert result.stages[1]["psnr_before"] is None and result.stages[1]["removed"] == [4]


def test_hostile_config_files_are_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# x\n" * (1 << 19))  # 2 MiB of comments: over the config size limit
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    nan = tmp_path / "nan.json"
    nan.write_text('{"lr": NaN}')
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [" * 3000)
    for path in (big, deep, nan, bad):
        with pytest.raises(InvalidFileError):
            load_config(path)
