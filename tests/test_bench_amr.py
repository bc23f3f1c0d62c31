"""bench/amr.py's 4D slice-protocol baselines: error-driven AMR summed over time slices and the two-level oracle
(uniform level L plus the elements whose refinement lowers the INR's squared error most)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.amr import InrField, mesh_rmse, uniform_mesh, vertex_values
from inrkit.amr.timeslices import slice_field
from inrkit.signals.base import GridSignal

ROOT = Path(__file__).resolve().parents[1]
amr = pytest.importorskip("amr")

TIMES = np.array([0.0, 1.0, 2.0])
BASE = np.array([2, 2, 2])


@pytest.fixture(scope="module")
def field() -> InrField:
    torch.manual_seed(0)
    model = amr.relu_mlp([4, 16, 16, 1], 0)
    sig = GridSignal(np.zeros((4, 4, 4, 3, 1), np.float32), kind="field", domain=[[0, 1]] * 3 + [[0, 2]])
    return InrField.from_model(model, {"signal": sig.metadata()})


def test_oracle_ends_are_the_uniform_levels(field: InrField) -> None:
    o = amr.two_level_oracle(field, field.model_domain, TIMES, BASE, 1, fractions=(0.0, 0.25, 1.0), n=4096)
    space = field.model_domain[:-1]
    for j, level in ((0, 1), (2, 2)):  # no element refined = level 1, all refined = level 2
        mesh = uniform_mesh(space, level, BASE)
        rmse = [mesh_rmse(mesh, vertex_values(slice_field(field, t), mesh), slice_field(field, t), n=4096)
                for t in TIMES]
        assert o["dofs"][j] == len(TIMES) * mesh.dofs == o["true_dofs"][j]
        assert o["rmse_inr"][j] == pytest.approx(float(np.sqrt(np.mean(np.square(rmse)))), rel=1e-9)
    assert o["dofs"][0] < o["dofs"][1] < o["dofs"][2]
    assert o["true_dofs"][1] < o["dofs"][1]  # a partial refinement has hanging nodes
    assert o["rmse_inr"][2] < o["rmse_inr"][0]


def test_slices_error_amr_curve_grows_with_the_budget(field: InrField) -> None:
    ea = amr.slices_error_amr(field, field.model_domain, TIMES, BASE, [100, 400, 1200], seed=0, n=4096)
    assert ea["dofs"] == sorted(ea["dofs"]) and ea["dofs"][0] >= 100 * len(TIMES)
    assert all(t <= d for t, d in zip(ea["true_dofs"], ea["dofs"]))
    assert ea["rmse_inr"][-1] < ea["rmse_inr"][0]


def test_marking_diagnosis_counts_refined_and_coarser_elements(field: InrField) -> None:
    space = field.model_domain[:-1]
    coarse = uniform_mesh(space, 1, BASE)
    mixed = coarse.refine(np.arange(coarse.num_elements) < coarse.num_elements // 2)  # half refined to level 2
    d = amr.marking_diagnosis(field, field.model_domain, TIMES, BASE, [coarse, mixed, uniform_mesh(space, 3, BASE)],
                              level=2)
    # the level-2 diagnosis: slice 0 all coarser, slice 1 half coarser (the rest equal), slice 2 all finer
    assert d["coarser_fraction"] == pytest.approx(1.5 / 3) and d["refined_fraction"] == pytest.approx(1 / 3)
    assert 0 < d["error_share_of_worst_10pct"] <= 1 and 0 <= d["worst_10pct_refined"] <= 1
    assert d["error_share_refined"] + d["error_share_coarser"] <= 1 + 1e-12


def test_network_study_agrees_with_the_benchmark(tmp_path):
    """bench/amr_networks.py's committed rows: each DOF change is its own DOFs over uniform's, the benchmark's own
    networks (64 wide, 6000 steps) give the same default meshes as amr.json's seed spread, and the plot is drawn."""
    import json

    import amr_networks

    study = json.loads((ROOT / "bench" / "results" / "amr_networks.json").read_text())
    bench = json.loads((ROOT / "bench" / "results" / "amr.json").read_text())
    for row in study["rows"]:
        assert row["dof_change_vs_uniform"] == pytest.approx(row["dofs"] / row["uniform_dofs_at_equal_rmse"] - 1)
    width = bench["cases"]["4d-vortex"]["network"]["widths"][1]
    for case in ("4d-vortex", "4d-sphere"):
        spread = {p["seed"]: p["slices"] for p in bench["cases"][case]["seed_spread"]["per_seed"]}
        rows = [r for r in study["rows"] if r["case"] == case and r["width"] == width and r["depth"] == 4
                and r["steps"] == bench["cases"][case]["training"]["steps"]]
        assert {r["seed"] for r in rows} == set(spread)
        for r in rows:
            assert r["dofs"] == spread[r["seed"]]["dofs"]
            assert r["rmse_inr"] == pytest.approx(spread[r["seed"]]["rmse_inr"], rel=1e-9)
    assert amr_networks.plot(study, tmp_path / "n.png").stat().st_size > 0
