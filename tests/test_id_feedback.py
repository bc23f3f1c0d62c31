"""``inrkit prune --method id``: per-layer feedback, a suggested tolerance when nothing is removed, and
rank-targeted ID with ``--keep`` whose error is bounded by the reported ID error (docs/adapt.md)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.cli import main
from inrkit.models import load_model, save_model, siren
from inrkit.models.surgery import find_group
from inrkit.prune.api import PruneConfig, prune_file
from inrkit.prune.interpolative import group_activations, id_layer, pivot_spectrum, tolerance_for
from inrkit.prune.model import domain_points
from inrkit.signals import FieldSignal
from inrkit.train import FitConfig, fit

HIDDEN = (32, 32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SIREN trained on a small 2D field (its activations are numerically full rank, as for real images)."""
    y, x = np.meshgrid(np.linspace(-1, 1, 24), np.linspace(-1, 1, 24), indexing="ij")
    signal = FieldSignal((np.sin(5 * x) * np.cos(4 * y) + 0.3 * np.sin(9 * x * y)).astype(np.float32))
    model = siren(2, 1, HIDDEN, generator=torch.Generator().manual_seed(0))
    fit(model, signal, FitConfig(steps=150, lr=1e-3, progress=False))
    path = tmp_path_factory.mktemp("id") / "m.safetensors"
    save_model(model, path, signal=signal.metadata())
    return path


def _run(capsys, *argv: str) -> tuple[dict, str]:
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_default_tolerance_says_nothing_was_removed_and_suggests_one(model_path, tmp_path, capsys) -> None:
    out = tmp_path / "p.safetensors"
    res, err = _run(capsys, "prune", str(model_path), "-o", str(out), "--method", "id", "--eps", "1e-3", "--json")
    assert res["params_after"] == res["params_before"]
    assert [r["kept"] for r in res["id_layers"]] == list(HIDDEN)
    assert all(r["spectral_rank"] == r["width"] for r in res["id_layers"])
    assert "removed no neuron" in res["note"] and "--eps" in res["note"] and "--keep 0.5" in res["note"]
    assert "removed no neuron" in err
    # the suggested 75% tolerance of a layer, applied to that layer alone, keeps 75% of it
    tol = res["id_layers"][1]["suggest"]["75%"]
    res, _ = _run(capsys, "prune", str(model_path), "-o", str(out), "--method", "id", "--eps", repr(tol),
                  "--layer", "1", "--json")
    assert res["widths_after"][2] == round(0.75 * HIDDEN[1]) and "note" not in res


def test_human_output_lists_layers(model_path, tmp_path, capsys) -> None:
    assert main(["prune", str(model_path), "-o", str(tmp_path / "p.safetensors"), "--method", "id",
                 "--keep", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "layer 0: 32->16" in out and "layer 1: 32->16" in out


def test_keep_half_halves_widths_and_the_error_is_bounded(model_path, tmp_path) -> None:
    out = tmp_path / "p.safetensors"
    res = prune_file(model_path, out, PruneConfig(method="id", keep=0.5, seed=3))
    assert res["widths_after"] == [2, 16, 16, 1]
    for r in res["id_layers"]:
        assert r["kept"] == r["width"] // 2
        assert r["svd_error"] <= r["error"] + 1e-12  # no rank-k column subset beats the SVD
    # last hidden layer alone: the output layer is linear, so ||dY||_F <= ||W_out||_2 * error * ||H||_F
    original, _ = load_model(model_path)
    last = len(HIDDEN) - 1
    res = prune_file(model_path, out, PruneConfig(method="id", keep=0.5, layers=(last,), seed=3))
    pts = domain_points(original, 4096, torch.Generator().manual_seed(3))  # prune_file's points
    H = group_activations(original, find_group(original, last), pts)
    pruned, _ = load_model(out)
    with torch.no_grad():
        y0, y1 = original(pts).double(), pruned(pts).double()
    w_out = original.weights[-1].detach().double()
    error = res["id_layers"][0]["error"]
    bound = float(torch.linalg.matrix_norm(w_out, 2)) * error * float(np.linalg.norm(H))
    change = float((y1 - y0).norm())
    assert 0 < change <= bound * (1 + 1e-4) + 1e-6
    assert res["id_output_error"] == pytest.approx(change / float(y0.norm()), rel=1e-3)


def test_tolerance_for_matches_the_id_rank() -> None:
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(500, 24)))
    v, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    H = (u * np.logspace(0, -6, 24)) @ v.T
    pivots = pivot_spectrum(H)
    for k in (6, 12, 18):
        tol = tolerance_for(pivots, k)
        assert tol is not None
        keep, _, report = id_layer(H, eps=tol)
        assert keep.size == k and report["kept"] == k
    assert tolerance_for(pivots, 24) is None
