"""Meta-INR under the authors' code protocol (docs/protocols.md): the inner Adam carried across tasks, every task each
outer step, and bench/meta.py's batch-size / epoch budgets / meta-batch flags."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.errors import InvalidInputError
from inrkit.meta import InnerAdamState, MetaConfig, adapt_tasks, meta_step, meta_train
from inrkit.models.mlp import siren
from inrkit.signals.series import VolumeSeries

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("inrkit_bench_meta_protocol", ROOT / "bench" / "meta.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


def _data(tasks: int = 2, n: int = 64):
    model = siren(3, 1, (16, 16), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, generator=gen) * 2 - 1
    y = torch.rand(tasks, n, 1, generator=gen) * 2 - 1
    return model, x, y


def _series(t: int = 4, n: int = 8) -> VolumeSeries:
    x = np.linspace(-1, 1, n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    vols = [np.exp(-((X - 0.3 * np.cos(k)) ** 2 + (Y - 0.3 * np.sin(k)) ** 2 + Z ** 2) / 0.2) for k in range(t)]
    return VolumeSeries.from_arrays(np.stack(vols).astype(np.float32), name="blobs")


# ------------------------------------------------------------------ the inner Adam carried across tasks
def test_carried_inner_adam_continues_its_step_count_and_moments():
    model, x, y = _data(tasks=2)
    state = InnerAdamState()
    assert state.step == 0 and state.state is None
    adapt_tasks(model, x, y[:1], steps=5, lr=1e-3, inner_state=state)
    assert (state.step, state.tasks) == (5, 1)
    after_one = [{k: v.clone() for k, v in s.items()} for s in state.state]
    adapt_tasks(model, x, y[1:], steps=5, lr=1e-3, inner_state=state)
    assert (state.step, state.tasks) == (10, 2)  # continued, not restarted at 5
    # a fresh Adam on task 1 alone: its moments are not the carried ones
    fresh = InnerAdamState()
    adapt_tasks(model, x, y[1:], steps=5, lr=1e-3, inner_state=fresh)
    assert fresh.step == 5
    for carried, alone, before in zip(state.state, fresh.state, after_one):
        assert not torch.allclose(carried["exp_avg_sq"], alone["exp_avg_sq"])
        assert not torch.equal(carried["exp_avg_sq"], before["exp_avg_sq"])


def test_carried_inner_adam_is_one_adam_over_the_tasks_in_order():
    """Reference: the authors' loop, one torch Adam whose state survives while each task restarts from theta."""
    model, x, y = _data(tasks=3)
    state = InnerAdamState()
    adapted, first = adapt_tasks(model, x, y, steps=4, lr=1e-3, inner_state=state)
    assert state.step == 12 and first.shape == (3,)
    learner = model.copy()
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    theta = [p.detach().clone() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    for b in range(3):
        with torch.no_grad():
            for p, t in zip(learner.parameters(), theta):
                p.copy_(t)
        for _ in range(4):
            loss = torch.mean((learner(x) - y[b]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        for name, p in zip(names, learner.parameters()):
            torch.testing.assert_close(adapted[name][b], p.detach(), rtol=1e-4, atol=1e-6)


def test_carried_and_fresh_inner_optimisers_differ_after_the_first_task():
    model, x, y = _data(tasks=2)
    carried, _ = adapt_tasks(model, x, y, steps=5, lr=1e-3, inner_state=InnerAdamState())
    fresh, first = adapt_tasks(model, x, y, steps=5, lr=1e-3)
    for name in fresh:  # task 0 starts from a fresh Adam either way; task 1 does not
        torch.testing.assert_close(carried[name][0], fresh[name][0], rtol=1e-4, atol=1e-6)
    assert max(float((carried[k][1] - fresh[k][1]).abs().max()) for k in fresh) > 1e-4
    with pytest.raises(InvalidInputError, match="adam"):
        adapt_tasks(model, x, y, steps=2, lr=1e-3, optimizer="sgd", inner_state=InnerAdamState())


def test_meta_training_with_the_authors_inner_loop():
    series = _series()
    base = dict(hidden=(8, 8), inner_steps=2, outer_steps=3, meta_batch=None, inner_lr=1e-3, outer_lr=1e-3,
                progress=False, log_every=1)
    carried = meta_train(series, MetaConfig(**base, inner_adam_across_tasks=True))
    fresh = meta_train(series, MetaConfig(**base))
    assert carried.steps == 3 and all(torch.isfinite(p).all() for p in carried.model.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(carried.model.parameters(), fresh.model.parameters()))
    assert carried.history[0]["loss_before"] == pytest.approx(fresh.history[0]["loss_before"])
    assert carried.history[-1]["loss_before"] != pytest.approx(fresh.history[-1]["loss_before"], rel=1e-7)
    assert MetaConfig(**base, inner_adam_across_tasks=True).to_dict()["inner_adam_across_tasks"] is True
    # meta_step keeps the state it is given across meta updates: 2 tasks x 2 steps x 2 updates
    model = siren(3, 1, (8, 8), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = MetaConfig(**base, inner_adam_across_tasks=True)
    state = InnerAdamState()
    coords, targets = series.coords(4), series.targets([0, 2], stride=4)
    for _ in range(2):
        meta_step(model, opt, coords, targets, cfg, inner_state=state)
    assert state.step == 8 and state.tasks == 4
    for bad in (dict(order="second"), dict(inner_optimizer="sgd"), dict(resume=True, checkpoint_path="x.ckpt")):
        with pytest.raises(InvalidInputError):
            MetaConfig(**base, inner_adam_across_tasks=True, **bad)
    with pytest.raises(InvalidInputError):
        MetaConfig(**{**base, "meta_batch": 0})


def test_a_carried_run_checkpoint_is_not_resumed(tmp_path):
    series = _series()
    ckpt = tmp_path / "meta.ckpt"
    cfg = dict(hidden=(8,), inner_steps=1, meta_batch=None, progress=False, checkpoint_path=str(ckpt))
    meta_train(series, MetaConfig(outer_steps=1, inner_adam_across_tasks=True, **cfg))
    with pytest.raises(InvalidInputError, match="cannot be resumed"):
        meta_train(series, MetaConfig(outer_steps=2, resume=True, **cfg))


# ------------------------------------------------------------------ bench/meta.py
def test_epochs_to_steps():
    assert bench.epochs_to_steps(16, 262144, 50000) == 16 * 6  # 64^3 points: 6 batches per epoch
    assert bench.epochs_to_steps(100, 262144, 50000) == 600
    assert bench.epochs_to_steps(100, 32768, 50000) == 100  # the batch holds the whole volume
    assert bench.epochs_to_steps(3, 100, None) == 3
    assert bench.epochs_to_steps(2, 100, 100) == 2 and bench.epochs_to_steps(2, 101, 100) == 4
    with pytest.raises(ValueError):
        bench.epochs_to_steps(-1, 100, 10)


def test_bench_parser_takes_the_protocol_flags():
    a = bench._args(["--batch-size", "50000", "--epochs-scratch", "100", "--epochs-finetune", "16",
                     "--meta-batch", "all", "--inner-adam-across-tasks"])
    assert (a.batch_size, a.epochs_scratch, a.epochs_finetune, a.meta_batch) == (50000, 100, 16, "all")
    assert a.inner_adam_across_tasks is True
    assert bench.budgets(a, 262144) == {"scratch": 600, "meta": 96, "pretrained": 96}
    d = bench._args([])
    assert (d.batch_size, d.epochs_scratch, d.epochs_finetune, d.meta_batch, d.inner_adam_across_tasks) == (
        None, None, None, 4, False)
    assert bench.budgets(d, 32768) == {"scratch": 300, "meta": 300, "pretrained": 300}
    assert bench._args(["--meta-batch", "3", "--epochs-finetune", "2"]).meta_batch == 3
    for bad in (["--meta-batch", "some"], ["--meta-batch", "0"], ["--batch-size", "0"], ["--epochs-scratch", "x"]):
        with pytest.raises(SystemExit):
            bench._args(bad)


def test_bench_smoke_run_with_the_protocol_flags(tmp_path):
    result = bench.main(["--size", "8", "--steps", "4", "--hidden", "8x2", "--outer-steps", "2", "--inner-steps",
                         "2", "--budget", "3", "--held-out", "1", "--batch-size", "100", "--epochs-scratch", "2",
                         "--epochs-finetune", "1", "--meta-batch", "all", "--inner-adam-across-tasks",
                         "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "meta.json").read_text())
    cfg = saved["config"]
    assert (cfg["batch_size"], cfg["epochs_scratch"], cfg["epochs_finetune"]) == (100, 2, 1)
    assert cfg["meta_batch"] == "all" and cfg["inner_adam_across_tasks"] is True
    assert cfg["steps_per_epoch"] == 6 and cfg["budget_steps"] == {"scratch": 12, "meta": 6, "pretrained": 6}
    row = result["volumes"][0]
    assert (row["budget_steps"], row["finetune_budget_steps"]) == (12, 6)
    assert row["meta_budget_speedup_time"] > 0 and "meta_budget_speedup_time_mean" in result["summary"]
    assert saved["mean_curve_steps"] == {"scratch": [0, 6, 12], "meta": [0, 6], "pretrained": [0, 6]}
    assert (tmp_path / "meta.png").is_file()
