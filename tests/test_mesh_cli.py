"""``inrkit mesh``: JSON report, VTU/PVD outputs, previews, .npz models, bad input."""
from __future__ import annotations

import json

import meshio
import numpy as np
import pytest
import torch

from inrkit.cli import main
from inrkit.models import MLP, save_model, siren


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def model_2d(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "s2.safetensors"
    m = siren(2, 1, hidden=(16, 16), omega0=8.0, generator=torch.Generator().manual_seed(0))
    save_model(m, path, signal={"kind": "analytic", "domain": [[0.0, 2.0], [-1.0, 1.0]],
                                "value_scale": [2.0], "value_offset": [1.0], "channels": 1})
    return path


def test_mesh_json_report_and_vtu(model_2d, tmp_path, capsys):
    out = tmp_path / "m.vtu"
    rc, stdout, _ = _run(capsys, "mesh", str(model_2d), "-o", str(out), "--max-iters", "2", "--init-level", "0",
                         "--n-id", "64", "--n-err", "32", "--json")
    assert rc == 0
    report = json.loads(stdout)  # exactly one JSON object
    assert stdout.strip().count("\n") == 0
    for key in ("dofs", "elements", "iterations", "seconds", "rmse"):
        assert key in report
    assert report["domain"] == [[0.0, 2.0], [-1.0, 1.0]]  # the model's own domain
    assert 0 < report["iterations"] <= 2 and report["elements"] > 16
    m = meshio.read(out)
    assert len(m.points) == report["dofs"] and len(m.cells[0].data) == report["elements"]
    assert report["domain_source"] == "model" and report["config"]["error"] == "reference"
    assert report["true_dofs"] == report["dofs"] - report["hanging"]
    assert m.cells[0].type == "quad" and m.points[:, 0].max() == pytest.approx(2.0)
    assert np.isfinite(report["rmse"]) and report["rmse"] < 1.0
    assert report["config"]["id_activations"] == "original"
    rc, stdout, _ = _run(capsys, "mesh", str(model_2d), "-o", str(tmp_path / "o.vtu"), "--max-iters", "1",
                         "--init-level", "0", "--n-id", "64", "--n-err", "32", "--id-activations", "pruned", "--json")
    assert rc == 0 and json.loads(stdout)["config"]["id_activations"] == "pruned"


def test_mesh_uniform_with_domain_and_values(model_2d, tmp_path, capsys):
    out = tmp_path / "u.vtu"
    rc, stdout, _ = _run(capsys, "mesh", str(model_2d), "-o", str(out), "--uniform", "2", "--domain=0,1,0,1",
                         "--json")
    report = json.loads(stdout)
    assert rc == 0 and (report["dofs"], report["elements"], report["iterations"]) == (289, 256, 0)
    m = meshio.read(out)
    from inrkit.amr import InrField
    from inrkit.models import load_model

    field = InrField.from_model(*load_model(model_2d))
    assert np.allclose(m.point_data["inr"], field(m.points[:, :2])[:, 0], atol=1e-4)  # raw units


def test_mesh_npz_relu_model_with_preview(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "w.npz"
    np.savez(path, W0=rng.normal(size=(8, 2)), b0=rng.normal(size=8), W1=rng.normal(size=(1, 8)),
             b1=np.zeros(1), activations=np.array(["relu", "identity"]))
    rc, stdout, _ = _run(capsys, "mesh", str(path), "-o", str(tmp_path / "w.vtu"), "--domain=-1,1,-1,1",
                         "--max-iters", "2", "--preview", str(tmp_path / "w.png"), "--json")
    report = json.loads(stdout)
    assert rc == 0 and (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
    assert report["preview"].endswith("w.png")


def test_mesh_3d_and_4d(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    m3 = MLP([3, 8, 1], ["tanh", "identity"])
    m4 = MLP([4, 8, 1], ["tanh", "identity"])
    for m in (m3, m4):
        for w in m.weights:
            torch.nn.init.normal_(w, generator=g)
    save_model(m3, tmp_path / "m3.safetensors")
    save_model(m4, tmp_path / "m4.safetensors")
    rc, stdout, _ = _run(capsys, "mesh", str(tmp_path / "m3.safetensors"), "-o", str(tmp_path / "v.vtu"),
                         "--uniform", "0", "--base", "2", "--json")
    assert rc == 0 and json.loads(stdout)["dofs"] == 27
    assert meshio.read(tmp_path / "v.vtu").cells[0].type == "hexahedron"
    rc, stdout, _ = _run(capsys, "mesh", str(tmp_path / "m4.safetensors"), "-o", str(tmp_path / "t.pvd"),
                         "--uniform", "0", "--base", "2", "--four-d", "spacetime", "--json")
    report = json.loads(stdout)
    assert rc == 0 and report["output"].endswith("t.pvd") and report["dofs"] == 81
    slices = sorted(tmp_path.glob("t_*.vtu"))
    assert len(slices) == 3 and len(meshio.read(slices[0]).points) == 27
    # the default: each of 9 time slices meshed in 3D (the reference code's way): 2x2x2 cells per slice here
    rc, stdout, _ = _run(capsys, "mesh", str(tmp_path / "m4.safetensors"), "-o", str(tmp_path / "s.pvd"),
                         "--uniform", "0", "--base", "2", "--json")
    report = json.loads(stdout)
    assert rc == 0 and report["four_d"] == "slices" and report["dofs"] == 9 * 27
    assert len(sorted(tmp_path.glob("s_*.vtu"))) == 9


def test_mesh_3d_preview_pyvista(tmp_path, capsys):
    pytest.importorskip("pyvista")
    m3 = MLP([3, 4, 1], ["tanh", "identity"])
    save_model(m3, tmp_path / "m3.safetensors")
    rc, stdout, _ = _run(capsys, "mesh", str(tmp_path / "m3.safetensors"), "-o", str(tmp_path / "v.vtu"),
                         "--uniform", "1", "--base", "1", "--preview", str(tmp_path / "v.png"), "--json")
    assert rc == 0 and (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(stdout)["preview_renderer"] in ("pyvista", "matplotlib")  # pyvista, else the fallback


@pytest.mark.parametrize("extra,needle", [
    (["--domain=0,1,0"], "pair"), (["--domain=1,0,0,1"], "min < max"), (["--domain=0,1,0,1,0,1"], "coordinates"),
    (["--P", "0"], "P"), (["--uniform", "-1"], "uniform"), (["--uniform", "5", "--max-level", "4"], "--uniform"),
    (["--uniform", "13"], "--uniform"), (["--uniform", "9"], "--max-elements"), (["--seed", "-1"], "--seed"),
    (["--eps", "1"], "eps"), (["--base", "0"], "base"), (["--init-level", "5"], "init_level"),
    (["--preview", "p.jpg"], ".png")])
def test_mesh_bad_arguments_exit_2(model_2d, tmp_path, capsys, extra, needle):
    rc, stdout, err = _run(capsys, "mesh", str(model_2d), "-o", str(tmp_path / "x.vtu"), *extra)
    assert rc == 2 and stdout == "" and err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_mesh_bad_files_exit_2(model_2d, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(model_2d.read_bytes()[:100])
    rc, _, err = _run(capsys, "mesh", str(bad), "-o", str(tmp_path / "x.vtu"))
    assert rc == 2 and err.startswith("inrkit: error:")
    rc, _, err = _run(capsys, "mesh", str(model_2d), "-o", str(tmp_path / "x.txt"), "--uniform", "0")
    assert rc == 2 and ".vtu" in err
    rc, _, err = _run(capsys, "mesh", str(model_2d), "-o", str(tmp_path / "x.pvd"), "--uniform", "0")
    assert rc == 2 and "2D model is meshed as .vtu" in err and err.count("\n") == 1  # before meshing
    assert not (tmp_path / "x.vtu").exists()


def test_mesh_nan_weights_exit_2(tmp_path, capsys):
    path = tmp_path / "nan.npz"
    w0 = np.ones((4, 2))
    w0[0, 0] = np.nan
    np.savez(path, W0=w0, b0=np.zeros(4), W1=np.ones((1, 4)), b1=np.zeros(1),
             activations=np.array(["tanh", "identity"]))
    rc, _, err = _run(capsys, "mesh", str(path), "-o", str(tmp_path / "n.vtu"), "--domain=-1,1,-1,1")
    assert rc == 2 and "NaN" in err and not (tmp_path / "n.vtu").exists()
    # finite weights whose output overflows: caught by the mesher itself
    np.savez(path, W0=np.full((4, 2), 3e38), b0=np.zeros(4), W1=np.full((1, 4), 3e38), b1=np.zeros(1),
             activations=np.array(["identity", "identity"]))
    rc, _, err = _run(capsys, "mesh", str(path), "-o", str(tmp_path / "n.vtu"), "--domain=0.5,1,0.5,1")
    assert rc == 2 and "non-finite" in err and not (tmp_path / "n.vtu").exists()
