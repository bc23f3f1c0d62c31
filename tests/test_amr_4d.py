"""4D (space + time) meshes written as a PVD of 3D VTU slices: opens as a time series."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inrkit.amr import InrField, PruningAMRConfig, mesh_field, pruning_amr, vertex_values, write_mesh
from inrkit.errors import InvalidInputError
from inrkit.models import MLP


def field_4d() -> InrField:
    g = torch.Generator().manual_seed(0)
    m = MLP([4, 16, 16, 1], ["relu", "relu", "identity"])
    for w in m.weights:
        torch.nn.init.normal_(w, generator=g)
    header = {"signal": {"domain": [[0, 1], [0, 1], [0, 1], [0.0, 1.0]], "channels": 1}}
    return InrField.from_model(m, header)


def test_4d_default_mesh_pvd_opens_as_time_series(tmp_path):
    field = field_4d()
    res = pruning_amr(field, field.model_domain, PruningAMRConfig(n_id=32, n_err=8, progress=False))
    mesh = res.mesh
    assert mesh.dim == 4 and mesh.num_elements >= 256 and res.base == [1, 1, 1, 1]
    vals = vertex_values(field, mesh)
    out = write_mesh(mesh, vals, tmp_path / "series.pvd")
    times = np.unique(mesh.vertices[:, 3])
    expected = times if len(times) <= 32 else None
    slices = sorted(tmp_path.glob("series_*.vtu"))
    assert out.suffix == ".pvd" and len(slices) == min(len(times), 32)

    pv = pytest.importorskip("pyvista")
    reader = pv.get_reader(str(out))
    assert reader.number_time_points == len(slices)
    if expected is not None:
        assert np.allclose(reader.time_values, expected)
    for k in (0, len(slices) - 1):
        reader.set_active_time_value(reader.time_values[k])
        block = reader.read()
        grid = block[0] if hasattr(block, "n_blocks") else block
        assert grid.n_cells > 0 and "inr" in grid.point_data
        t = reader.time_values[k]
        pts = np.asarray(grid.points)
        want = field(np.hstack([pts, np.full((len(pts), 1), t)]))[:, 0]
        # at a vertex time, slice values are the conforming vertex values: equal to the INR off hanging nodes
        assert np.median(np.abs(np.asarray(grid.point_data["inr"]) - want)) < 1e-4

    import meshio

    first = meshio.read(slices[0])
    assert first.cells[0].type == "hexahedron" and np.allclose(first.points[:, 2].min(), 0.0)


def test_mesh_field_4d_report(tmp_path):
    field = field_4d()
    with pytest.raises(InvalidInputError, match=".pvd"):  # refused before any meshing
        mesh_field(field, tmp_path / "m.vtu")
    report = mesh_field(field, tmp_path / "m.pvd", config=PruningAMRConfig(n_id=32, n_err=8, progress=False))
    assert report["output"].endswith(".pvd") and report["dim"] == 4
    assert report["ms_per_element"] is not None and report["ms_per_element"] > 0
