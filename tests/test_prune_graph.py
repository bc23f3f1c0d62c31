"""The one pruning graph: prunable groups (MLP, NeRF with skips), remove/fold/add neurons, Adam state maps."""
from __future__ import annotations

import pytest
import torch

from inrkit.adapt.config import Stage
from inrkit.adapt.runner import apply_structural
from inrkit.errors import InvalidInputError
from inrkit.models import NeRFConfig, NeRFMLP, siren
from inrkit.models.surgery import (
    add_neurons,
    find_group,
    fold_interpolation,
    group_weights,
    merge_state_maps,
    remove_neurons,
)
from inrkit.nerf.prune import prune_nerf
from inrkit.prune.model import domain_points, prune_model

TINY = NeRFConfig(pos_freqs=2, dir_freqs=1, trunk_widths=[16] * 4, skips=[1], feature_width=16, view_widths=[16])


def _rays(n: int = 9):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, generator=g) * 2 - 1, torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)


def _sums(model: torch.nn.Module) -> list[float]:
    return [float(p.detach().double().sum()) for p in model.parameters()]


def _adam(model: torch.nn.Module, loss_fn) -> torch.optim.Adam:
    """Adam after three steps, so every parameter has moments."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    return opt


def _carry(opt: torch.optim.Adam, model: torch.nn.Module, state_map) -> dict:
    """What ``FitState.replace_model`` does with a state map: the new Adam state per parameter."""
    out = {}
    for p in model.parameters():
        if p in opt.state:
            out[p] = opt.state[p]
        elif p in state_map:
            old, fn = state_map[p]
            out[p] = {k: fn(v) for k, v in opt.state[old].items()}
    return out


# ------------------------------------------------------------------ groups
def test_nerf_groups_follow_skips_and_heads() -> None:
    model = NeRFMLP(TINY, seed=0)
    groups = {g.name: g for g in model.prunable_groups()}
    assert list(groups) == ["trunk.0", "trunk.1", "trunk.2", "trunk.3", "feature", "views.0"]
    assert groups["trunk.0"].consumers == [("trunk.1.weight", 0)]
    assert groups["trunk.1"].consumers == [("trunk.2.weight", TINY.pos_dim)]  # read after [x_enc, h]
    assert groups["trunk.3"].consumers == [("sigma.weight", 0), ("feature.weight", 0)]
    assert groups["feature"].consumers == [("views.0.weight", 0)]  # leading columns of [feature, dir_enc]
    assert groups["views.0"].consumers == [("rgb.weight", 0)]
    w_in, w_out = group_weights(model, groups["trunk.3"])
    assert w_in.shape == (16, 16) and w_out.shape == (1 + 16, 16)


def test_pruned_nerf_is_physically_smaller_and_exact_on_dead_neurons() -> None:
    model = NeRFMLP(TINY, seed=0)
    with torch.no_grad():  # neurons 1 and 5 of the skip layer feed nothing
        model.trunk[2].weight[:, TINY.pos_dim + torch.tensor([1, 5])] = 0.0
    x, d = _rays()
    before = model(x, d)
    keep = torch.tensor([j for j in range(16) if j not in (1, 5)])
    small = model.copy()
    remove_neurons(small, find_group(small, "trunk.1"), keep)
    assert small.trunk[1].weight.shape == (14, 16) and small.trunk[2].weight.shape == (16, TINY.pos_dim + 14)
    assert small.trunk[2].in_features == TINY.pos_dim + 14 and small.config.trunk_widths == [16, 14, 16, 16]
    assert small.num_params() == model.num_params() - 2 * (16 + 1) - 2 * 16
    after = small(x, d)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after))
    pruned = prune_nerf(model, "w_out", 8)
    assert pruned.num_params() < model.num_params() / 2 and pruned.config.view_widths == [8]


def test_nerf_adam_state_carried_for_kept_neurons() -> None:
    model = NeRFMLP(TINY, seed=0)
    x, d = _rays(32)
    opt = _adam(model, lambda: sum(t.square().mean() for t in model(x, d)))
    group = find_group(model, "trunk.1")
    old_rows, old_cols = model.trunk[1].weight, model.trunk[2].weight
    m_rows, m_cols = opt.state[old_rows]["exp_avg"].clone(), opt.state[old_cols]["exp_avg_sq"].clone()
    keep = torch.tensor([0, 2, 3, 7, 11, 15])
    state_map = remove_neurons(model, group, keep)
    carried = _carry(opt, model, state_map)
    torch.testing.assert_close(carried[model.trunk[1].weight]["exp_avg"], m_rows[keep])
    cols = torch.cat([torch.arange(TINY.pos_dim), TINY.pos_dim + keep])
    torch.testing.assert_close(carried[model.trunk[2].weight]["exp_avg_sq"], m_cols[:, cols])
    assert model.trunk[2].bias in opt.state  # untouched parameters keep their objects (and state)
    assert int(carried[model.trunk[1].weight]["step"]) == 3


# ------------------------------------------------ the same results as before the graph
def test_group_surgery_equals_the_old_implementations() -> None:
    """Parameter sums after pruning on fixed seeds, recorded with the three removal functions this replaced."""
    old = {
        "coreset": [-3.3698937893, 0.2544822022, 0.1905015679, 0.8554192819, 0.3106318098, 0.1748373397],
        "uniform": [-2.0405282378, -0.0450063125, 0.0343647191, 1.6621661074, 0.1770410221, 0.1748373397],
        "id": [0.1202276349, 0.0613671259, 0.0632003825, 0.180418076, 0.3230975587, 0.1748373397],
    }
    for method, sums in old.items():
        model = siren(2, 3, (24, 20), generator=torch.Generator().manual_seed(0))
        x = domain_points(model, 300, torch.Generator().manual_seed(3))
        prune_model(model, method, keep=0.5, points=x, generator=torch.Generator().manual_seed(0))
        assert _sums(model) == pytest.approx(sums, abs=1e-6), method
    nerf_old = {
        "coreset": [-0.1040964127, 2.8385905589, -0.0911511779, 1.876854552, -0.0645287931, 0.1845397316,
                    -0.2622617845, 0.4610360153, 0.0620602071, -0.7788354196, 0.0079874434, 0.5199695113,
                    -0.1609240472, -0.6055067433, -0.073453404, -1.5270462323],
        "w_in": [-0.1036044359, -0.6033191085, -0.0911511779, -0.4414997697, -0.0645287931, -0.7516327798,
                 0.0790406439, -1.2110956942, -0.4166079164, 1.7560118735, -0.5580903161, 1.2615641884,
                 -0.1254745126, -0.3383632898, -0.1000953857, -1.5333728052],
    }
    tiny = NeRFConfig(pos_freqs=2, dir_freqs=1, trunk_widths=[16] * 4, skips=[1], feature_width=16, view_widths=[16])
    for method, sums in nerf_old.items():
        small = prune_nerf(NeRFMLP(tiny, seed=0), method, 8, seed=1)
        got = [float(v.double().sum()) for _, v in sorted(small.state_dict().items())]
        assert got == pytest.approx(sums, abs=1e-6), method
    model = siren(2, 1, (16, 12, 10), generator=torch.Generator().manual_seed(0))
    model, _, info = apply_structural(model, Stage("prune", layers=[1, 2], count=4), torch.Generator())
    assert info == {"below_eps": [0, 4], "removed": [4, 4]}
    assert _sums(model) == pytest.approx([-0.7788316011, -0.0923744373, -0.0057055552, 0.1020078622,
                                          -1.9674570672, -0.0070861876, 0.1736986935, -0.1782607138], abs=1e-6)
    model = siren(2, 1, (16, 12), generator=torch.Generator().manual_seed(0))
    model, _, _ = apply_structural(model, Stage("densify", n=4), torch.Generator().manual_seed(0))
    assert _sums(model) == pytest.approx([0.8180938959, -0.1313977697, -0.0193356476, -4.7657338195,
                                          -0.0867103636, 0.104709141], abs=1e-6)


# ------------------------------------------------------------ fold and add
def test_fold_interpolation_on_a_skip_layer() -> None:
    model = NeRFMLP(TINY, seed=0)
    group = find_group(model, "trunk.1")
    keep = torch.tensor([0, 3, 8])
    interp = torch.zeros(3, 16)
    interp[0, 0] = interp[1, 3] = interp[2, 8] = 1.0
    interp[0, 1] = 0.5  # neuron 1 ~ half of neuron 0
    cols = model.trunk[2].weight.detach()[:, TINY.pos_dim:].clone()
    fold_interpolation(model, group, keep, interp)
    expected = cols @ interp.t()
    torch.testing.assert_close(model.trunk[2].weight[:, TINY.pos_dim:], expected)
    assert model.trunk[1].weight.shape[0] == 3
    with pytest.raises(InvalidInputError):
        fold_interpolation(model, find_group(model, "trunk.1"), [0, 1], torch.zeros(3, 3))


def test_add_neurons_grows_every_consumer_and_zero_state() -> None:
    model = NeRFMLP(TINY, seed=0)
    x, d = _rays(16)
    opt = _adam(model, lambda: sum(t.square().mean() for t in model(x, d)))
    before = model(x, d)
    m_feat = opt.state[model.feature.weight]["exp_avg"].clone()
    group = find_group(model, "trunk.3")  # feeds sigma (1 row) and feature (16 rows)
    state_map = add_neurons(model, group, torch.randn(2, 16), torch.zeros(2), torch.zeros(17, 2))
    assert model.trunk[3].weight.shape == (18, 16) and model.sigma.weight.shape == (1, 18)
    assert model.feature.weight.shape == (16, 18) and model.config.trunk_widths == [16, 16, 16, 18]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, model(x, d)))  # zero outgoing columns
    carried = _carry(opt, model, state_map)[model.feature.weight]["exp_avg"]
    torch.testing.assert_close(carried[:, :16], m_feat)
    assert torch.count_nonzero(carried[:, 16:]) == 0


def test_merge_state_maps_chains_a_twice_replaced_parameter() -> None:
    model = siren(2, 1, (8, 6), generator=torch.Generator().manual_seed(0))
    x = torch.rand(20, 2)
    opt = _adam(model, lambda: model(x).square().mean())
    w1 = model.weights[1]
    m = opt.state[w1]["exp_avg"].clone()
    first = remove_neurons(model, find_group(model, 0), [0, 2, 4, 6])   # W1 loses columns
    second = remove_neurons(model, find_group(model, 1), [1, 3, 5])     # W1 loses rows
    merged = merge_state_maps(first, second, model)
    old, fn = merged[model.weights[1]]
    assert old is w1
    torch.testing.assert_close(fn(opt.state[w1]["exp_avg"]), m[[1, 3, 5]][:, [0, 2, 4, 6]])
    assert set(merged) <= set(model.parameters())
