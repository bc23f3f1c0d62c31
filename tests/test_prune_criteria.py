"""Neuron pruning criteria (objects in ``inrkit.prune.CRITERIA``) and model-level pruning."""
from __future__ import annotations

import pytest
import torch

from inrkit.errors import InvalidInputError
from inrkit.prune.criteria import (
    CRITERIA,
    Criterion,
    coreset_select,
    inclusion_probabilities,
    keep_count,
    neuron_scores,
    select_neurons,
    sensitivity,
    systematic_sample,
)

WEIGHT_CRITERIA = [name for name, c in CRITERIA.items() if not c.needs_points]


def _mats(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randn(3, n, generator=g)


def test_criteria_are_registered_objects() -> None:
    assert CRITERIA.names() == ("l1", "w_in", "w_out", "product", "uniform", "coreset", "id")
    l1 = CRITERIA.get("l1")
    assert isinstance(l1, Criterion) and not l1.needs_points and CRITERIA.get("id").needs_points
    w_in, w_out = _mats()
    torch.testing.assert_close(l1.scores(w_in, w_out), w_out.abs().sum(0))
    assert torch.equal(select_neurons(l1, w_in, w_out, 4)[0], select_neurons("l1", w_in, w_out, 4)[0])
    with pytest.raises(InvalidInputError, match="choose from"):
        CRITERIA.get("magic")
    with pytest.raises(InvalidInputError, match="no per-neuron score"):
        CRITERIA.get("uniform").scores(w_in, w_out)


def test_scores_match_definitions() -> None:
    w_in = torch.tensor([[1.0, -3.0], [0.5, 0.5], [0.0, 2.0]])
    w_out = torch.tensor([[2.0, 0.0, -1.0], [-2.0, 1.0, 0.0]])
    torch.testing.assert_close(neuron_scores("l1", w_in, w_out), torch.tensor([4.0, 1.0, 1.0]))
    torch.testing.assert_close(neuron_scores("w_in", w_in, w_out), torch.tensor([2.0, 0.5, 1.0]))
    torch.testing.assert_close(neuron_scores("w_out", w_in, w_out), torch.tensor([2.0, 0.5, 0.5]))
    torch.testing.assert_close(neuron_scores("product", w_in, w_out), torch.tensor([4.0, 0.25, 0.5]))
    expected = w_in.norm(dim=1) * w_out.norm(dim=0)
    torch.testing.assert_close(neuron_scores("coreset", w_in, w_out), expected)
    torch.testing.assert_close(sensitivity(w_in, w_out), expected)


@pytest.mark.parametrize("method", ["l1", "w_in", "w_out", "product"])
def test_select_keeps_top_scores(method: str) -> None:
    w_in, w_out = _mats()
    idx, scale = select_neurons(method, w_in, w_out, 5)
    assert scale is None and idx.dtype == torch.long
    assert torch.equal(idx, torch.sort(idx).values)
    scores = neuron_scores(method, w_in, w_out)
    dropped = torch.ones(12, dtype=torch.bool)
    dropped[idx] = False
    assert scores[idx].min() >= scores[dropped].max()


def test_uniform_is_random_and_seeded() -> None:
    w_in, w_out = _mats(40)
    a, _ = select_neurons("uniform", w_in, w_out, 10, torch.Generator().manual_seed(1))
    b, _ = select_neurons("uniform", w_in, w_out, 10, torch.Generator().manual_seed(1))
    c, _ = select_neurons("uniform", w_in, w_out, 10, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 10


def test_inclusion_probabilities_cap_and_sum() -> None:
    s = torch.tensor([100.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    pi = inclusion_probabilities(s, 3)
    assert float(pi.sum()) == pytest.approx(3.0)
    assert float(pi[0]) == 1.0  # the dominant neuron is always kept
    torch.testing.assert_close(pi[1:5], torch.full((4,), 0.5))
    assert 0 <= float(pi[5]) < 1e-6


def test_systematic_sampling_has_exact_inclusion_frequencies() -> None:
    pi = torch.tensor([1.0, 0.5, 0.5, 0.25, 0.75, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(7)
    trials = 1500
    for _ in range(trials):
        idx = systematic_sample(pi, g)
        assert idx.numel() == 4 and len(set(idx.tolist())) == 4
        counts[idx] += 1
    torch.testing.assert_close(counts / trials, pi, atol=0.05, rtol=0)


def test_coreset_preserves_layer_output_in_expectation() -> None:
    g = torch.Generator().manual_seed(3)
    w_in, w_out = _mats(32, seed=3)
    w_out = w_out * torch.rand(32, generator=g) ** 2
    h = torch.sin(torch.randn(50, 5, generator=g) @ w_in.T)
    ref = h @ w_out.T
    acc = torch.zeros_like(ref)
    trials = 400
    for _ in range(trials):
        idx, scale = coreset_select(w_in, w_out, 8, g)
        assert idx.numel() == 8 and torch.all(scale >= 1.0 - 1e-6)
        acc += h[:, idx] @ (w_out[:, idx] * scale).T
    bias = (acc / trials - ref).norm() / ref.norm()
    assert bias < 0.08
    # a single draw is a real approximation, not just unbiased noise around zero
    idx, scale = select_neurons("coreset", w_in, w_out, 24, g)
    one = h[:, idx] @ (w_out[:, idx] * scale).T
    assert (one - ref).norm() / ref.norm() < 0.6


def test_select_all_and_errors() -> None:
    w_in, w_out = _mats()
    for method in WEIGHT_CRITERIA:
        idx, scale = select_neurons(method, w_in, w_out, 12)
        assert torch.equal(idx, torch.arange(12)) and scale is None
    with pytest.raises(InvalidInputError):
        select_neurons("l1", w_in, w_out, 0)
    with pytest.raises(InvalidInputError):
        select_neurons("l1", w_in, w_out, 13)
    with pytest.raises(InvalidInputError):
        select_neurons("nope", w_in, w_out, 3)
    with pytest.raises(InvalidInputError):
        neuron_scores("l1", w_in, w_out[:, :5])


def test_keep_count() -> None:
    assert keep_count(10, 0.5) == 5
    assert keep_count(10, 1) == 1  # a whole number is a count; fractions lie in (0, 1)
    assert keep_count(10, 10) == 10
    assert keep_count(10, 3) == 3
    assert keep_count(10, 0.01) == 1
    for bad in (11, 0, 1.5, -2, float("nan")):
        with pytest.raises(InvalidInputError):
            keep_count(10, bad)


# ------------------------------------------------------------- model level
from inrkit.models import siren  # noqa: E402
from inrkit.prune.interpolative import id_select  # noqa: E402
from inrkit.prune.model import domain_points, layer_weights, prune_layer, prune_model  # noqa: E402


def _net(seed: int = 0):
    return siren(2, 3, (24, 20), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["l1", "w_in", "w_out", "product", "uniform", "coreset"])
def test_pruned_layer_computes_kept_neurons(method: str) -> None:
    model = _net()
    x = domain_points(model, 200, torch.Generator().manual_seed(1))
    w_in, w_out = layer_weights(model, 0)
    idx, scale = select_neurons(method, w_in, w_out, 10, torch.Generator().manual_seed(5))
    _, hidden = model.forward_with_hidden(x)
    h0 = hidden[0][:, idx]
    cols = w_out[:, idx] * (1.0 if scale is None else scale)
    expected = torch.sin(30.0 * (h0 @ cols.T + model.biases[1].detach()))
    pruned, kept = prune_layer(model.copy(), 0, method, keep=10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(kept, idx)
    assert pruned.widths == [2, 10, 20, 3]
    _, hidden_p = pruned.forward_with_hidden(x)
    torch.testing.assert_close(hidden_p[0], h0)
    torch.testing.assert_close(hidden_p[1], expected, atol=1e-5, rtol=1e-5)


def test_prune_dead_neurons_is_exact_and_eps_mode() -> None:
    model = _net()
    with torch.no_grad():
        model.weights[1][:, :8] = 0.0  # 8 neurons of layer 0 contribute nothing
    x = domain_points(model, 100)
    ref = model(x)
    pruned, kept = prune_layer(model.copy(), 0, "l1", eps=1e-9)
    assert kept.numel() == 16 and int(kept.min()) == 8
    torch.testing.assert_close(pruned(x), ref)
    assert pruned.num_params() < model.num_params()


@torch.no_grad()
def test_id_pruning_stays_within_tolerance_on_sampled_activations() -> None:
    model = _net()
    x = domain_points(model, 400, torch.Generator().manual_seed(2))
    ref = model(x)
    h = model.forward_with_hidden(x)[1][1].double()
    for eps in (1e-2, 1e-4):
        pruned, kept = prune_layer(model.copy(), 1, "id", eps=eps, points=x)
        assert pruned.widths[:2] == [2, 24] and pruned.widths[2] == kept.numel()
        # the folded last layer sees H[:, keep] @ T instead of H: its error is the ID's
        _, T = id_select(h.numpy(), eps=eps)
        approx = h[:, kept] @ torch.from_numpy(T)
        assert float(torch.linalg.matrix_norm(approx - h, 2) / torch.linalg.matrix_norm(h, 2)) <= 10 * eps
        w = model.weights[2].double()
        bound = float(torch.linalg.matrix_norm(w, 2) * torch.linalg.matrix_norm(approx - h, 2))
        assert float(torch.linalg.matrix_norm((pruned(x) - ref).double(), 2)) <= bound * 1.01 + 1e-5
    assert kept.numel() > 1
    # a target rank keeps exactly that many neurons, without fine-tuning
    pruned, kept = prune_layer(model.copy(), 1, "id", keep=12, points=x)
    assert pruned.widths == [2, 24, 12, 3] and kept.numel() == 12
    assert float((pruned(x) - ref).norm() / ref.norm()) < 0.5


def test_prune_model_all_methods_shrink_every_layer() -> None:
    for method in CRITERIA.names():
        model = _net()
        x = domain_points(model, 300)
        model, widths = prune_model(model, method, keep=0.5, points=x, generator=torch.Generator().manual_seed(0))
        assert widths == [12, 10], method
        assert model(x).shape == (300, 3)


def test_prune_model_errors() -> None:
    model = _net()
    with pytest.raises(InvalidInputError):
        prune_layer(model, 2, "l1", keep=0.5)  # output layer is not hidden
    with pytest.raises(InvalidInputError):
        prune_layer(model, 0, "id", keep=0.5)  # ID needs points
    with pytest.raises(InvalidInputError):
        prune_layer(model, 0, "l1", keep=0.5, eps=0.1)
    with pytest.raises(InvalidInputError):
        prune_layer(model, 0, "magic", keep=0.5)


# ------------------------------------------- adding a criterion touches ONE place
class _FirstNeurons(Criterion):
    """A trivial criterion: neuron ``j`` scores ``-j`` (keeps the first neurons)."""

    def scores(self, w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
        return -torch.arange(w_in.shape[0], dtype=w_in.dtype)


@pytest.fixture
def first_criterion():
    CRITERIA.register("first", _FirstNeurons())  # the only change a new criterion needs
    yield "first"
    CRITERIA.unregister("first")


def test_a_registered_criterion_works_everywhere(first_criterion: str, tmp_path) -> None:
    from inrkit.models import NeRFConfig, NeRFMLP, load_model, save_model
    from inrkit.nerf.prune import prune_nerf
    from inrkit.prune import PruneConfig, prune_file

    assert first_criterion in CRITERIA.names()  # the CLI's --method choices read this
    model, widths = prune_model(_net(), first_criterion, keep=0.5)
    assert widths == [12, 10] and torch.equal(model.weights[0], _net().weights[0][:12])
    save_model(_net(), tmp_path / "m.safetensors")
    report = prune_file(tmp_path / "m.safetensors", tmp_path / "p.safetensors",
                        PruneConfig(method=first_criterion, keep=5))
    assert report["widths_after"] == [2, 5, 5, 3] and load_model(tmp_path / "p.safetensors")[0].widths == [2, 5, 5, 3]
    tiny = NeRFConfig(pos_freqs=2, dir_freqs=1, trunk_widths=[16] * 3, skips=[1], feature_width=16, view_widths=[8])
    nerf = NeRFMLP(tiny, seed=0)
    small = prune_nerf(nerf, first_criterion, 6)
    assert small.config.trunk_widths == [6, 6, 6] and small.config.view_widths == [6]
    torch.testing.assert_close(small.trunk[2].weight[:, tiny.pos_dim:], nerf.trunk[2].weight[:6, tiny.pos_dim:][:, :6])
