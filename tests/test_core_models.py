"""The shared MLP: constructors, shapes, hidden activations, counts, surgery."""
import math

import numpy as np
import pytest
import torch

from inrkit.errors import InvalidInputError
from inrkit.models import (
    ARCHITECTURES,
    MLP,
    build_model,
    ffn,
    find_group,
    finer,
    fold_interpolation,
    parse_hidden,
    remove_neurons,
    siren,
)
from inrkit.prune.interpolative import id_prune_model, id_select


def test_siren_initialisation_bounds():
    m = siren(2, 3, [64, 64], omega0=30.0, omega_hidden=30.0)
    assert m.widths == [2, 64, 64, 3]
    assert m.activations == ["sine", "sine", "identity"]
    assert m.weights[0].abs().max() <= 1.0 / 2 + 1e-7  # U(-1/n, 1/n), n = 2
    assert m.weights[1].abs().max() <= math.sqrt(6 / 64) / 30 + 1e-7


def test_sine_layer_matches_definition():
    m = siren(2, 1, [8], omega0=30.0)
    x = torch.rand(5, 2) * 2 - 1
    expected = torch.sin(30.0 * (x @ m.weights[0].T + m.biases[0])) @ m.weights[1].T + m.biases[1]
    assert torch.allclose(m(x), expected, atol=1e-5)


def test_finer_activation_and_bias_init():
    m = finer(2, 1, [16], omega0=30.0, first_bias_scale=1.0)
    assert m.biases[0].abs().max() > 0.5  # wide U(-1, 1) first bias, unlike SIREN's U(-1/sqrt(2), ..)
    x = torch.rand(4, 2)
    z = x @ m.weights[0].T + m.biases[0]
    h = torch.sin(30.0 * (z.abs() + 1) * z)
    assert torch.allclose(m(x), h @ m.weights[1].T + m.biases[1], atol=1e-5)


def test_ffn_encoding_width():
    m = ffn(3, 2, [32, 32], num_frequencies=16, sigma=5.0)
    assert m.widths[0] == 32 and m.coord_dim == 3
    assert m(torch.rand(7, 3)).shape == (7, 2)


def test_hidden_activations_and_counts():
    m = build_model("siren", 2, 3, [16, 8])
    x = torch.rand(10, 2)
    y, hidden = m.forward_with_hidden(x)
    assert [h.shape for h in hidden] == [(10, 16), (10, 8)]
    assert torch.allclose(y, m(x))
    assert torch.allclose(hidden[1], m.layer_forward(1, hidden[0]))
    assert m.num_params() == (2 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3)
    assert m.flops_per_point() == (2 * 2 * 16 + 16 + 16) + (2 * 16 * 8 + 8 + 8) + (2 * 8 * 3 + 3)


def test_bad_construction():
    with pytest.raises(InvalidInputError):
        MLP([2, 4, 1], ["sine"])
    with pytest.raises(InvalidInputError):
        MLP([2, 4, 1], ["sine", "wavelet"])
    with pytest.raises(InvalidInputError, match="siren"):  # the error lists the registered architectures
        build_model("mystery", 2, 1, [4])
    assert parse_hidden("64x3") == [64, 64, 64] and parse_hidden("8,4") == [8, 4]
    with pytest.raises(InvalidInputError):
        parse_hidden("wide")


def test_architecture_registry_builds_every_kind():
    assert {"siren", "finer", "ffn", "relu", "tanh"} <= set(ARCHITECTURES.names())
    for name, acts in (("relu", ["relu", "relu", "identity"]), ("tanh", ["tanh", "tanh", "identity"])):
        m = build_model(name, 3, 2, [8, 6], generator=torch.Generator().manual_seed(0))
        assert m.widths == [3, 8, 6, 2] and m.activations == acts
        assert float(m.weights[0].detach().abs().max()) <= 1 / math.sqrt(3) + 1e-7  # nn.Linear bound
        x = torch.rand(4, 3)
        h = getattr(torch, name)(x @ m.weights[0].T + m.biases[0])
        assert torch.allclose(m.forward_with_hidden(x)[1][0], h, atol=1e-6)
    a = build_model("relu", 2, 1, [4], generator=torch.Generator().manual_seed(1))
    b = build_model("relu", 2, 1, [4], generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_mlp_prunable_groups():
    m = siren(2, 2, [12, 10])
    groups = m.prunable_groups()
    assert [g.name for g in groups] == ["0", "1"] and [g.width for g in groups] == [12, 10]
    assert groups[1].producer == ("weights.1", "biases.1") and groups[1].consumers == [("weights.2", 0)]


def test_remove_neurons_computes_the_subnetwork():
    m = siren(2, 2, [12, 10])
    x = torch.rand(20, 2)
    _, hidden = m.forward_with_hidden(x)
    keep = torch.tensor([0, 3, 4, 9])
    reference = hidden[1][:, keep] @ m.weights[2][:, keep].T + m.biases[2]
    untouched = m.weights[0]
    remove_neurons(m, find_group(m, 1), keep)
    assert m.widths == [2, 12, 4, 2]
    assert m.weights[0] is untouched  # only the group's parameters are replaced
    assert torch.allclose(m(x), reference, atol=1e-6)
    with pytest.raises(InvalidInputError):
        find_group(m, 2)  # the output layer is not hidden
    with pytest.raises(InvalidInputError):
        remove_neurons(m, find_group(m, 1), [0, 0, 1])


def test_dead_neurons_removed_exactly():
    m = siren(2, 1, [6, 6])
    with torch.no_grad():
        m.weights[2][:, 4:] = 0.0  # neurons 4 and 5 of layer 1 feed nothing
    x = torch.rand(30, 2)
    before = m(x)
    remove_neurons(m, find_group(m, 1), [0, 1, 2, 3])
    assert torch.allclose(m(x), before, atol=1e-6)


def test_id_pruning_within_tolerance_on_low_rank_layer():
    m = siren(2, 1, [32, 32], omega0=3.0, omega_hidden=3.0)
    with torch.no_grad():  # make layer 0 rank-deficient: 8 distinct neurons, each repeated 4 times
        m.weights[0].copy_(m.weights[0][:8].repeat(4, 1))
        m.biases[0].copy_(m.biases[0][:8].repeat(4))
    x = torch.rand(256, 2) * 2 - 1
    before = m(x)
    id_prune_model(m, x, eps=1e-6)
    assert m.widths[1] <= 8
    assert torch.allclose(m(x), before, atol=1e-4)


def test_id_select_reconstructs():
    rng = np.random.default_rng(0)
    H = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 40))
    keep, T = id_select(H, eps=1e-8)
    assert keep.size == 6 and T.shape == (6, 40)
    assert np.linalg.norm(H[:, keep] @ T - H) <= 1e-6 * np.linalg.norm(H)
    keep2, _ = id_select(H, rank=3)
    assert keep2.size == 3


def test_fold_interpolation_shape_check():
    m = siren(2, 1, [4, 4])
    with pytest.raises(InvalidInputError):
        fold_interpolation(m, find_group(m, 0), [0, 1], torch.zeros(3, 4))


def test_plain_constructor_is_initialised_and_finite():
    m = MLP([3, 5, 1], ["tanh", "identity"])
    assert all(torch.isfinite(p).all() and p.abs().max() <= 1 / math.sqrt(3) + 1e-7 for p in m.parameters())
    assert m.biases[0].abs().sum() > 0
