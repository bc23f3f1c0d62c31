"""4D models meshed as 3D time slices (the reference code's --time_slice way; the default of ``inrkit mesh``)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inrkit.amr import InrField, MeshConfig, PruningAMRConfig, mesh_field
from inrkit.amr.timeslices import DEFAULT_SLICES, parse_times, slice_field, slice_model
from inrkit.cli import main
from inrkit.errors import InvalidInputError
from inrkit.models import MLP, save_model, siren

DOMAIN = [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 4.0]]


def relu_4d(seed: int = 0) -> MLP:
    g = torch.Generator().manual_seed(seed)
    m = MLP([4, 16, 16, 1], ["relu", "relu", "identity"])
    for w in m.weights:
        torch.nn.init.normal_(w, generator=g)
    return m


def siren_4d() -> MLP:
    return siren(4, 2, hidden=(8, 8), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("make", [relu_4d, siren_4d])
def test_slice_model_is_exact(make):
    model = make()
    x = torch.rand(100, 3) * 2 - 1
    for t in (-1.0, 0.3, 1.0):
        sliced = slice_model(model, t)
        assert sliced.coord_dim == 3 and sliced.widths[1:] == model.widths[1:]
        full = model(torch.cat([x, torch.full((100, 1), t)], dim=1))
        assert torch.allclose(sliced(x), full, atol=1e-5)


def test_slice_field_maps_physical_time():
    field = InrField.from_model(relu_4d(), {"signal": {"domain": DOMAIN, "channels": 1, "value_scale": [3.0],
                                                       "value_offset": [1.0]}})
    pts = np.random.default_rng(0).random((50, 3))
    sf = slice_field(field, 3.0)
    assert sf.dim == 3 and np.allclose(sf.model_domain, np.asarray(DOMAIN)[:3])
    assert np.allclose(sf(pts), field(np.hstack([pts, np.full((50, 1), 3.0)])), atol=1e-5)


def test_fourier_model_refused_with_a_hint():
    model = MLP([8, 8, 1], ["relu", "identity"], fourier=torch.randn(4, 4))
    with pytest.raises(InvalidInputError, match="spacetime"):
        slice_model(model, 0.0)


def test_parse_times():
    rng = np.array([0.0, 4.0])
    assert np.allclose(parse_times("auto", rng), np.linspace(0, 4, DEFAULT_SLICES))
    assert np.allclose(parse_times("3", rng), [0, 2, 4])
    assert np.allclose(parse_times("1,0.5", rng), [0.5, 1.0])
    with pytest.raises(InvalidInputError, match="1 <= N"):
        parse_times("0", rng)
    for bad in ("0,nope", "-1,2", "9.5"):
        with pytest.raises(InvalidInputError):
            parse_times(bad, rng)


def test_default_4d_mesh_is_slices_and_opens_as_time_series(tmp_path):
    field = InrField.from_model(relu_4d(), {"signal": {"domain": DOMAIN, "channels": 1}})
    cfg = PruningAMRConfig(n_id=32, n_err=8, progress=False)
    report = mesh_field(field, tmp_path / "m.pvd", config=cfg, mesh=MeshConfig(times="3"))
    assert report["four_d"] == "slices" and report["times"] == [0.0, 2.0, 4.0]
    assert report["dofs"] == sum(s["dofs"] for s in report["slices"]) and report["base"] == [2, 2, 2]
    # every slice starts from the reference start mesh: 2x2x2 refined twice = 512 hexahedra, 729 DOFs
    assert all(s["dofs"] >= 729 for s in report["slices"])
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean([s["rmse"] ** 2 for s in report["slices"]])))
    pv = pytest.importorskip("pyvista")
    reader = pv.get_reader(str(tmp_path / "m.pvd"))
    assert np.allclose(reader.time_values, [0.0, 2.0, 4.0])
    reader.set_active_time_value(2.0)
    block = reader.read()
    grid = block[0] if hasattr(block, "n_blocks") else block
    assert grid.n_points == report["slices"][1]["dofs"]
    pts = np.asarray(grid.points)
    want = field(np.hstack([pts, np.full((len(pts), 1), 2.0)]))[:, 0]
    assert np.median(np.abs(np.asarray(grid.point_data["inr"]) - want)) < 1e-4

    spacetime = mesh_field(field, tmp_path / "s.pvd", config=cfg, mesh=MeshConfig(four_d="spacetime"))
    assert spacetime["four_d"] == "spacetime" and spacetime["base"] == [1, 1, 1, 1]
    uniform = mesh_field(field, tmp_path / "u.pvd", config=cfg,
                         mesh=MeshConfig(method="uniform", size=1, times="2"))
    assert uniform["dofs"] == 2 * 5**3  # 2x2x2 base refined once, per slice


def test_times_only_for_4d_slices(tmp_path):
    field = InrField.from_model(relu_4d(), {"signal": {"domain": DOMAIN, "channels": 1}})
    with pytest.raises(InvalidInputError, match="--times"):
        mesh_field(field, tmp_path / "m.pvd", mesh=MeshConfig(four_d="spacetime", times="2"))
    with pytest.raises(InvalidInputError, match="--four-d"):
        MeshConfig(four_d="4d")


def test_cli_4d_slices(tmp_path, capsys):
    path = tmp_path / "m4.safetensors"
    save_model(relu_4d(), path, signal={"kind": "field", "domain": DOMAIN, "channels": 1})
    rc = main(["mesh", str(path), "-o", str(tmp_path / "m.pvd"), "--times", "0,4", "--n-id", "32", "--n-err", "8",
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["times"] == [0.0, 4.0] and len(out["slices"]) == 2
    assert sorted(p.name for p in tmp_path.glob("m_*.vtu")) == ["m_0000.vtu", "m_0001.vtu"]
    levels = out["uniform_comparison"]["levels"]  # uniform meshes of both slices: DOFs summed
    base = np.asarray(out["base"])
    assert [v["dofs"] for v in levels] == [2 * int(np.prod(base * 2**k + 1)) for k in range(len(levels))]
    rc = main(["mesh", str(path), "-o", str(tmp_path / "x.pvd"), "--times", "9.5"])
    assert rc == 2 and "time range" in capsys.readouterr().err


def test_error_driven_slices(tmp_path):
    field = InrField.from_model(relu_4d(), {"signal": {"domain": DOMAIN, "channels": 1}})
    report = mesh_field(field, tmp_path / "e.pvd", mesh=MeshConfig(method="error-driven", size=200, times="2"))
    assert report["method"] == "error-driven" and len(report["slices"]) == 2
    assert all(r["dofs"] >= 200 for r in report["slices"])
