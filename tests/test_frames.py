"""Physical frames: origin, spacing and array name from .vti/.vtk/series sources into
model headers and every output (render .vti, mesh VTU/PVD); compressed VTU; SDF render to .vti."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.amr.baselines import uniform_mesh
from inrkit.amr.export import write_mesh, write_vtu_arrays
from inrkit.cli import main
from inrkit.errors import InvalidFileError
from inrkit.models import MLP, load_model
from inrkit.signals import check_metadata, load_signal, render_model
from inrkit.signals.readers import read_vti_frame, read_vtk_legacy_frame, write_vti
from inrkit.signals.series import load_series

pv = pytest.importorskip("pyvista")

ORIGIN, SPACING, ARRAY = (10.0, 20.0, 30.0), (0.5, 0.5, 2.0), "probability_density"


def _bounds(path: Path) -> tuple[list[float], list[str]]:
    mesh = pv.read(str(path))
    return [float(b) for b in mesh.bounds], list(mesh.point_data.keys())


def test_vti_frame_round_trip_compressed_and_raw(tmp_path):
    vol = np.random.default_rng(0).random((5, 4, 3)).astype(np.float32)
    for compress in (True, False):
        path = write_vti(tmp_path / f"v{compress}.vti", vol, name=ARRAY, origin=ORIGIN, spacing=SPACING,
                         compress=compress)
        values, frame = read_vti_frame(path)
        assert np.array_equal(values, vol)
        assert frame.origin == ORIGIN and frame.spacing == SPACING and frame.array == ARRAY
        assert ('compressor="vtkZLibDataCompressor"' in path.read_text()) == compress
        assert _bounds(path) == ([10.0, 12.0, 20.0, 21.5, 30.0, 34.0], [ARRAY])


def test_shifted_hydrogen_round_trips_fit_render_mesh(shared_data, tmp_path, capsys):
    """The end-to-end case: hydrogen.vti at origin (10,20,30), spacing (.5,.5,2), array probability_density keeps its
    bounds and array name through fit -> render (.vti) -> mesh (.vtu), read back with pyvista."""
    text = (shared_data / "volumes" / "hydrogen.vti").read_text(encoding="latin-1")
    text = text.replace('Origin="0 0 0" Spacing="1 1 1"', 'Origin="10 20 30" Spacing="0.5 0.5 2"')
    src = tmp_path / "hydrogen_shifted.vti"
    src.write_text(text, encoding="latin-1")
    source_bounds, source_arrays = _bounds(src)
    assert source_bounds == [10.0, 41.5, 20.0, 51.5, 30.0, 156.0] and source_arrays == [ARRAY]

    model = tmp_path / "h.safetensors"
    assert main(["fit", str(src), "-o", str(model), "--steps", "5", "--hidden", "16x2", "--no-progress",
                 "--json"]) == 0
    meta = load_model(model)[1]["signal"]
    assert meta["origin"] == list(ORIGIN) and meta["spacing"] == list(SPACING) and meta["array"] == ARRAY
    assert meta["domain"] == [[10.0, 41.5], [20.0, 51.5], [30.0, 156.0]]

    for size in ([], ["--size", "17,9,33"]):  # the header's 64^3, and another size: same box
        out = tmp_path / f"r{len(size)}.vti"
        assert main(["render", str(model), "-o", str(out), *size, "--json"]) == 0
        assert _bounds(out) == (source_bounds, [ARRAY])
    assert pv.read(str(tmp_path / "r2.vti")).dimensions == (17, 9, 33)

    vtu = tmp_path / "h.vtu"
    assert main(["mesh", str(model), "-o", str(vtu), "--uniform", "1", "--json"]) == 0
    bounds, arrays = _bounds(vtu)
    assert bounds == source_bounds and arrays == [ARRAY]
    assert 'compressor="vtkZLibDataCompressor"' in vtu.read_text(encoding="latin-1")[:2000]
    capsys.readouterr()


def test_4d_mesh_pvd_slices_keep_the_box_and_name(tmp_path):
    """A 4D mesh of a physical box is written as a PVD of 3D VTU slices in that box, array name kept."""
    mesh = uniform_mesh(np.array([[10, 12], [20, 21], [30, 34], [0, 1]], dtype=np.float64), 1, np.array([1] * 4))
    write_mesh(mesh, mesh.vertices[:, 0], tmp_path / "t.pvd", name="density")
    slices = sorted(tmp_path.glob("t_*.vtu"))
    assert slices and "t_0000.vtu" in (tmp_path / "t.pvd").read_text()
    bounds, arrays = _bounds(slices[0])
    assert bounds == [10.0, 12.0, 20.0, 21.0, 30.0, 34.0] and arrays == ["density"]


def test_series_and_legacy_vtk_keep_their_frame(tmp_path, shared_data):
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(2):
        write_vti(folder / f"m{i}.vti", np.full((3, 4, 5), float(i), np.float32) + np.arange(5), name=ARRAY,
                  origin=ORIGIN, spacing=SPACING)
    series = load_series(folder)
    meta = series.metadata(1)
    assert meta["origin"] == list(ORIGIN) and meta["array"] == ARRAY and meta["domain"][2] == [30.0, 38.0]
    assert series.member_signal(0).metadata()["spacing"] == list(SPACING)
    write_vti(folder / "m1.vti", np.zeros((3, 4, 5), np.float32), name=ARRAY, origin=(0, 0, 0), spacing=SPACING)
    with pytest.raises(InvalidFileError, match="differ from the first"):
        load_series(folder)
    _, frame = read_vtk_legacy_frame(shared_data / "volumes" / "ironProt.vtk")
    assert len(frame.origin) == 3 and min(frame.spacing) > 0 and frame.array


def test_frameless_sources_keep_the_model_box(tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((4, 5, 6)).astype(np.float32))
    meta = load_signal(tmp_path / "v.npy").metadata()
    assert "origin" not in meta and meta["domain"] == [[-1.0, 1.0]] * 3


@pytest.mark.parametrize("bad", [{"origin": [0, 0, 0]}, {"origin": [0, 0], "spacing": [1, 1]},
                                 {"origin": [0, 0, 0], "spacing": [1, 0, 1]}, {"array": "a\"><x"}])
def test_bad_frames_in_headers_are_refused(bad):
    with pytest.raises(InvalidFileError):
        check_metadata({"kind": "volume", "shape": [4, 4, 4], "channels": 1, **bad}, 1)


def test_sdf_renders_a_distance_volume(tmp_path):
    """f(x) = x_0 in model units is the distance x_0 * half in the mesh's units: the .vti holds physical x."""
    model = MLP([3, 1], ["identity"])
    with torch.no_grad():
        model.weights[0].copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        model.biases[0].zero_()
    meta = {"kind": "sdf", "channels": 1, "domain": [[-2.0, 2.0], [0.0, 4.0], [1.0, 5.0]], "shape": [8, 8, 8],
            "value_offset": [0.0], "value_scale": [2.0]}
    out = render_model(model, meta, tmp_path / "d.vti", [5])
    values, frame = read_vti_frame(out)
    assert frame.origin == (-2.0, 0.0, 1.0) and frame.spacing == (1.0, 1.0, 1.0) and frame.array == "sdf"
    assert np.allclose(values[:, 0, 0], [-2, -1, 0, 1, 2], atol=1e-5)


def test_vtu_output_is_zlib_compressed(tmp_path):
    pts = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    out = write_vtu_arrays(tmp_path / "q.vtu", pts, np.array([[0, 1, 3, 2]]), {"v": np.arange(4.0)})
    head = out.read_text(encoding="latin-1")
    assert re.search(r'compressor="vtkZLibDataCompressor"', head)
    assert np.allclose(pv.read(str(out)).point_data["v"], np.arange(4.0))
