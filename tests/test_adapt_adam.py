"""AIRe: densified neurons get their own Adam step count (docs/adapt.md), so their first update is ~lr, not ~3x."""
from __future__ import annotations

import numpy as np
import torch

from inrkit.adapt import AireConfig, Stage, densify, run_schedule
from inrkit.adapt.runner import AdamStepCounts
from inrkit.models import siren
from inrkit.signals import FieldSignal
from inrkit.train import FitConfig, FitState

LR = 1e-3
N_NEW = 4


def _signal(n: int = 16) -> FieldSignal:
    y, x = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    return FieldSignal((np.sin(4 * x) * np.cos(3 * y)).astype(np.float32))


def _step(state: FitState) -> None:
    coords, targets = state.task.train_batch(None, state.generator, state.device)
    loss, _ = state.task.loss(state.model, coords, targets)
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()


def _densified_step(fix: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train 300 Adam steps, densify, take one step; the |update| of new W0 rows, new W1 columns, old W1."""
    torch.manual_seed(0)
    signal = _signal()
    model = siren(2, 1, (16, 12), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    state = FitState(model, opt, signal, FitConfig(steps=301, lr=LR, progress=False), torch.device("cpu"),
                     torch.Generator().manual_seed(0))
    for _ in range(300):
        _step(state)
    old_opt = state.optimizer
    model, state_map = densify(model, N_NEW, torch.Generator().manual_seed(1))
    state.replace_model(model, state_map)
    counts = AdamStepCounts()
    if fix:
        counts.record(old_opt, state_map, model)
        counts.attach(state.optimizer)
    w0, w1 = model.weights[0].detach().clone(), model.weights[1].detach().clone()
    _step(state)
    d0 = (model.weights[0].detach() - w0).abs()
    d1 = (model.weights[1].detach() - w1).abs()
    counts.close()
    return d0[-N_NEW:], d1[:, -N_NEW:], d1[:, :-N_NEW]


def test_densified_first_update_has_fresh_parameter_size() -> None:
    new_rows, new_cols, _ = _densified_step(fix=True)
    # a fresh parameter's first Adam step is lr * g / (|g| + eps): lr for any gradient >> eps
    assert float(new_cols.max()) <= LR * 1.0001
    assert float(new_cols.min()) > 0.99 * LR
    big = new_rows[new_rows > 1e-7]
    assert big.numel() > 0 and float(big.max()) <= LR * 1.0001 and float(big.median()) > 0.9 * LR


def test_without_the_fix_the_update_is_about_3x() -> None:
    _, new_cols, old_cols = _densified_step(fix=False)
    # documents the bug the tracker fixes: zero moments with the tensor's step count t = 301 give
    # lr * (1 - b1) / (1 - b1^t) / sqrt((1 - b2) / (1 - b2^t)) = 1.61 lr (3.16 lr for t >> 1000)
    t = 301
    factor = 0.1 / (1 - 0.9 ** t) / np.sqrt(0.001 / (1 - 0.999 ** t))
    assert abs(factor - 1.61) < 0.01
    assert float(new_cols.min()) > 0.97 * factor * LR and float(new_cols.max()) < 1.01 * factor * LR
    _, _, old_fixed = _densified_step(fix=True)
    assert torch.equal(old_cols, old_fixed)  # old weights are untouched by the tracker


def test_step_counts_follow_pruning_and_expire() -> None:
    signal = _signal()
    model = siren(2, 1, (16, 12), generator=torch.Generator().manual_seed(0))
    state = FitState(model, torch.optim.Adam(model.parameters(), lr=LR), signal,
                     FitConfig(steps=10, lr=LR, progress=False), torch.device("cpu"), torch.Generator())
    for _ in range(5):
        _step(state)
    counts = AdamStepCounts()
    old = state.optimizer
    model, state_map = densify(model, N_NEW, torch.Generator().manual_seed(1))
    state.replace_model(model, state_map)
    counts.record(old, state_map, model)
    born = counts.births[model.weights[0]]
    assert born.shape == model.weights[0].shape
    assert torch.all(born[:-N_NEW] == 0) and torch.all(born[-N_NEW:] == 5)
    from inrkit.models.surgery import find_group, remove_neurons

    old = state.optimizer
    keep = torch.tensor([0, 1, 16, 17])  # two old neurons, two new ones
    state_map = remove_neurons(model, find_group(model, 0), keep)
    state.replace_model(model, state_map)
    counts.record(old, state_map, model)
    assert counts.births[model.weights[0]][:, 0].tolist() == [0, 0, 5, 5]


def test_run_schedule_densified_rows_move_by_lr() -> None:
    """End to end: the first finetune step after a densify stage moves the new neurons' W1 columns by ~lr."""
    signal = _signal()
    base = [Stage("fit", steps=40)]
    cfg = AireConfig(hidden=[16, 12], lr=LR, seed=3,
                     stages=base + [Stage("densify", n=N_NEW), Stage("finetune", steps=1)])
    after = run_schedule(siren(2, 1, (16, 12), generator=torch.Generator().manual_seed(0)), signal, cfg,
                         progress=False).model
    assert after.widths == [2, 16 + N_NEW, 12, 1]
    gen = torch.Generator().manual_seed(3)  # the schedule's generator draws the new columns
    cols = torch.empty(12, N_NEW).uniform_(-1e-4, 1e-4, generator=gen)
    moved = (after.weights[1].detach()[:, -N_NEW:] - cols).abs()
    assert float(moved.max()) <= LR * 1.0001 and float(moved.min()) > 0.99 * LR
