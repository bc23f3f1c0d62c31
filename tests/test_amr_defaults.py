"""PruningAMR defaults (docs/amr.md): reference element error, start mesh, DOF cap, conforming interpolant,
per-axis base, assumed domain, honest SIREN message, and a default run that beats uniform refinement."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inrkit.amr import (
    BoxMesh,
    InrField,
    PruningAMRConfig,
    auto_base,
    element_error,
    mesh_rmse,
    pruning_amr,
    resolve_base,
    uniform_comparison,
    uniform_mesh,
    vertex_values,
)
from inrkit.cli import main
from inrkit.errors import InvalidInputError
from inrkit.models import MLP, save_model, siren


def zigzag_relu(centre=(0.3, 0.2), n: int = 16, radius: float = 0.3) -> MLP:
    """A small ReLU INR 2->4->n->1 with a localised feature: a zigzag in the L1 distance to ``centre``
    (kinks on n diamonds of radius < ``radius``), exactly 0 farther away."""
    m = MLP([2, 4, n, 1], ["relu", "relu", "identity"])
    c = torch.tensor(centre)
    with torch.no_grad():
        W0 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        m.weights[0].copy_(W0)
        m.biases[0].copy_(-W0 @ c)  # layer 1: |x - cx| and |y - cy| as pairs of ReLUs
        m.weights[1].copy_(-torch.ones(n, 4))
        m.biases[1].copy_(radius * (torch.arange(n) + 1.0) / n)  # relu(t_j - r1)
        sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
        m.weights[2].copy_(sign[None])
        m.biases[2].zero_()
    return m


def _uniform_dofs_at(field, dom, base, err, levels=range(0, 6), n=8192):
    d, e = [], []
    for lv in levels:
        u = uniform_mesh(dom, lv, base)
        d.append(u.dofs)
        e.append(mesh_rmse(u, vertex_values(field, u), field, n=n))
    for i in range(len(d) - 1):
        if e[i] >= err >= e[i + 1]:
            t = np.log(e[i] / err) / np.log(e[i] / e[i + 1])
            return d[i] * (d[i + 1] / d[i]) ** t
    return d[0] if err >= e[0] else None


# --------------------------------------------------------------- error formula
def test_reference_error_hand_computed():
    # one element, 2 points, 1 channel: f = (1, -1), g = (1.5, -1)
    f = torch.tensor([[[1.0], [-1.0]]])
    g = torch.tensor([[[1.5], [-1.0]]])
    # abs_diff = mean(|0.5|, 0) = 0.25; error = mean(0.25 / |1 + 5|, 0.25 / |-1 + 5|) = (1/24 + 1/16) / 2
    assert float(element_error(f, g, "reference")[0]) == pytest.approx((0.25 / 6 + 0.25 / 4) / 2)
    # the relative (inrkit) error: mean |f - g| / R
    assert float(element_error(f, g, "relative", out_range=2.0)[0]) == pytest.approx(0.125)
    # two channels: abs_diff averages over points and channels, the division is per point and channel
    f2 = torch.tensor([[[0.0, 1.0]]])
    g2 = torch.tensor([[[1.0, 1.0]]])
    assert float(element_error(f2, g2)[0]) == pytest.approx((0.5 / 5 + 0.5 / 6) / 2)
    with pytest.raises(InvalidInputError):
        element_error(f, g, "relative")


def test_default_config_is_the_reference_codes():
    cfg = PruningAMRConfig()
    assert (cfg.error, cfg.init_level, cfg.max_iters, cfg.max_dofs, cfg.P, cfg.T, cfg.eps) == \
        ("reference", 2, 4, 5000, 0.2, 1e-3, 1e-3)
    with pytest.raises(InvalidInputError):
        PruningAMRConfig(init_level=3, max_iters=2).validate()
    with pytest.raises(InvalidInputError):
        PruningAMRConfig(error="nope").validate()


# ------------------------------------------------------------- start mesh, cap
@pytest.mark.parametrize("dim,base,elements", [(2, [4, 4], 256), (3, [2, 2, 2], 512), (4, [1, 1, 1, 1], 256)])
def test_start_mesh_has_documented_element_count(dim, base, elements):
    dom = np.tile([-1.0, 1.0], (dim, 1))
    assert auto_base(dom, 2).tolist() == base
    # nothing is marked (P = 1, T huge): the result is the start mesh, base * 2^2 cells per axis
    m = MLP([dim, 4, 1], ["tanh", "identity"])
    res = pruning_amr(InrField.from_model(m), dom, PruningAMRConfig(P=1.0, T=1e9, n_id=8, n_err=4, progress=False))
    assert res.mesh.num_elements == elements and res.base == base
    assert res.history[0]["iteration"] == 3 and res.history[0]["evaluated"] == elements  # rounds 1-2 were uniform


def test_base_per_axis_and_auto_base_for_a_long_box():
    dom = np.array([[1.0, 5.0], [-2.0, 2.0], [0.0, 20.0]])
    assert resolve_base("2,2,10", dom, 2).tolist() == [2, 2, 10]
    assert resolve_base(3, dom, 2).tolist() == [3, 3, 3]
    assert auto_base(dom, 2).tolist() == [1, 1, 5]  # near-cubic cells
    mesh = BoxMesh.uniform(dom, resolve_base("2,2,10", dom, 0), 0)
    lo, hi = mesh.element_bounds()
    assert np.allclose(hi - lo, 2.0)  # cubes
    with pytest.raises(InvalidInputError):
        resolve_base("2,2", dom, 0)


def test_dof_cap_stops_the_loop():
    field = InrField.from_model(zigzag_relu())
    dom = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    free = pruning_amr(field, dom, PruningAMRConfig(P=1e-6, max_iters=6, max_dofs=10**6, n_id=16, n_err=8,
                                                    progress=False))
    capped = pruning_amr(field, dom, PruningAMRConfig(P=1e-6, max_iters=6, max_dofs=1000, n_id=16, n_err=8,
                                                      progress=False))
    assert len(free.history) == 4  # rounds 3..6
    # start 289 DOFs -> round 3 refines everything (1089 DOFs >= 1000) -> the cap stops before round 4
    assert len(capped.history) == 1 and capped.mesh.dofs == 1089
    assert "max_dofs=1000" in capped.stopped


# ---------------------------------------------------------- beats uniform
def test_default_run_on_small_relu_inr_beats_uniform():
    field = InrField.from_model(zigzag_relu())
    dom = field.model_domain
    res = pruning_amr(field, dom, PruningAMRConfig(progress=False))
    assert res.iterations >= 1 and not res.p_above_P_everywhere and res.warnings == []
    err = mesh_rmse(res.mesh, vertex_values(field, res.mesh), field, n=8192)
    need = _uniform_dofs_at(field, dom, res.base, err)
    assert need is not None and res.mesh.dofs < 0.8 * need  # at least 20% fewer DOFs at equal RMSE
    lo, hi = res.mesh.element_bounds()
    near = np.abs((lo + hi) / 2 - [0.3, 0.2]).sum(1) < 0.3
    assert res.mesh.levels[near].mean() > res.mesh.levels[~near].mean() + 0.5


def test_siren_p_above_P_everywhere_is_reported(tmp_path, capsys):
    m = siren(2, 1, hidden=(16, 16), omega0=30.0, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "s.safetensors"
    save_model(m, path, signal={"kind": "analytic", "domain": [[-1, 1], [-1, 1]], "channels": 1})
    rc = main(["mesh", str(path), "-o", str(tmp_path / "s.vtu"), "--n-id", "32", "--n-err", "8",
               "--max-iters", "3", "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert rc == 0 and "stayed above P" in err and "stayed above P" in report["warnings"][0]
    # the mesh is uniform level 3: the comparison finds exactly that level, no gain, and says so
    cmp = report["uniform_comparison"]
    assert cmp["levels"][-1] == {"level": 3, "dofs": report["dofs"], "rmse": pytest.approx(report["rmse"])}
    assert abs(cmp["dof_change"]) < 1e-9 and not cmp["beats_uniform"]
    assert "does not beat uniform refinement" in report["warnings"][-1]
    assert f"--method error-driven --size {report['dofs']}" in err and "as many DOFs as uniform" in err


def test_uniform_comparison_interpolates_and_flags():
    def dofs(k):
        return (2**k + 1) ** 2

    def rmse(k):
        return 4.0**-k

    # 4^-2.5 lies between level 2 (25 DOFs, 4^-2) and level 3 (81 DOFs, 4^-3): log-log, sqrt(25 * 81) = 45
    lose = uniform_comparison(dofs, rmse, 100, 4.0**-2.5, max_dofs=10**6)
    assert [v["level"] for v in lose["levels"]] == [0, 1, 2, 3]  # stops at the first level reaching the RMSE
    assert lose["uniform_dofs_at_equal_rmse"] == pytest.approx(45.0)
    assert lose["dof_change"] == pytest.approx(100 / 45 - 1) and not lose["beats_uniform"]
    assert lose["reaches_level"] is None
    win = uniform_comparison(dofs, rmse, 20, 4.0**-2.5, max_dofs=10**6)
    assert win["beats_uniform"] and win["dof_change"] == pytest.approx(20 / 45 - 1) and win["reaches_level"] == 2
    capped = uniform_comparison(dofs, rmse, 20, 4.0**-2.5, max_dofs=50)  # level 3 (81 DOFs) is not built
    assert capped["uniform_dofs_at_equal_rmse"] is None and capped["uniform_dofs_more_than"] == 25
    assert capped["beats_uniform"] and capped["dof_change"] is None
    assert not uniform_comparison(dofs, rmse, 30, 4.0**-2.5, max_dofs=50)["beats_uniform"]


def test_cli_default_mesh_reports_the_uniform_comparison(tmp_path, capsys):
    m = zigzag_relu()
    path = tmp_path / "z.safetensors"
    save_model(m, path, signal={"kind": "analytic", "domain": [[-1, 1], [-1, 1]], "channels": 1})
    rc = main(["mesh", str(path), "-o", str(tmp_path / "z.vtu"), "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    cmp = report["uniform_comparison"]
    field = InrField.from_model(m, {"signal": {"domain": [[-1, 1], [-1, 1]], "channels": 1}})
    need = _uniform_dofs_at(field, field.model_domain, report["base"], report["rmse"], n=16384)
    assert rc == 0 and cmp["beats_uniform"] and cmp["uniform_dofs_at_equal_rmse"] == pytest.approx(need)
    assert cmp["dof_change"] == pytest.approx(report["dofs"] / need - 1) and cmp["dof_change"] < -0.2
    assert "fewer DOFs" in err and report["warnings"] == []
    rc = main(["mesh", str(path), "-o", str(tmp_path / "z.vtu"), "--no-compare-uniform", "--json"])
    assert rc == 0 and "uniform_comparison" not in json.loads(capsys.readouterr().out)


# ------------------------------------------------------- conforming interpolant
def test_conforming_interpolant_is_continuous():
    dom = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    mesh = BoxMesh.uniform(dom, 2, 0).refine([0])
    lo, _ = mesh.element_bounds()
    mesh = mesh.refine([int(np.argmin(np.abs(lo - [-0.5, -0.5]).sum(1)))])  # a hanging chain, no 2:1 balance

    def f(x):
        return np.sin(3 * x[:, :1]) * np.cos(2 * x[:, 1:2])

    vals = vertex_values(f, mesh)  # conforming by default
    raw = vertex_values(f, mesh, conforming=False)
    hang = mesh.hanging_mask()
    assert hang.sum() > 0 and not np.allclose(vals[hang], raw[hang]) and np.allclose(vals[~hang], raw[~hang])
    # along every interior grid line the interpolant from both sides agrees
    for x0 in (-0.5, 0.0):
        pts = np.stack([np.full(200, x0), np.linspace(-1, 1, 200)], 1)
        left = mesh.interpolate(vals, pts - [1e-9, 0])
        right = mesh.interpolate(vals, pts + [1e-9, 0])
        assert np.allclose(left, right, atol=1e-6)
    assert mesh.true_dofs == mesh.dofs - mesh.num_hanging


def test_npz_domain_is_reported_as_assumed(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "w.npz"
    np.savez(path, W0=rng.normal(size=(8, 2)), b0=rng.normal(size=8), W1=rng.normal(size=(1, 8)),
             b1=np.zeros(1), activations=np.array(["relu", "identity"]))
    rc = main(["mesh", str(path), "-o", str(tmp_path / "w.vtu"), "--uniform", "1", "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert rc == 0 and report["domain_source"].startswith("assumed") and "assumed" in err
    rc = main(["mesh", str(path), "-o", str(tmp_path / "w.vtu"), "--uniform", "1", "--domain=0,1,0,1", "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["domain_source"] == "--domain" and "assumed" not in err


def test_error_driven_mesh_from_the_command_line(tmp_path, capsys):
    """``--error-driven DOFS``: the error-driven baseline as a mesh, refused together with --uniform or with a
    budget outside [1, --max-elements] before the model is read."""
    rng = np.random.default_rng(0)
    path = tmp_path / "w.npz"
    np.savez(path, W0=rng.normal(size=(16, 2)) * 3, b0=rng.normal(size=16), W1=rng.normal(size=(1, 16)),
             b1=np.zeros(1), activations=np.array(["relu", "identity"]))
    rc = main(["mesh", str(path), "-o", str(tmp_path / "e.vtu"), "--error-driven", "300", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["method"] == "error-driven" and report["dofs"] >= 300
    assert (tmp_path / "e.vtu").stat().st_size > 0 and np.isfinite(report["rmse"])
    rc = main(["mesh", str(path), "-o", str(tmp_path / "u.vtu"), "--uniform", "2", "--json"])  # 4 * 2^2 = 16 cells
    uniform = json.loads(capsys.readouterr().out)
    assert rc == 0 and uniform["method"] == "uniform" and uniform["dofs"] == 17 * 17
    assert report["dofs"] < 1.5 * uniform["dofs"] and report["rmse"] < uniform["rmse"]
    for bad in (["--uniform", "2", "--error-driven", "100"], ["--error-driven", "0"],
                ["--error-driven", "100", "--max-elements", "50"]):
        rc = main(["mesh", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.vtu"), *bad])
        assert rc == 2 and "missing" not in capsys.readouterr().err
