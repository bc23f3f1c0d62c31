"""The volume-series loader: manifest, formats, shared normalisation, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inrkit.errors import InrkitError, InvalidFileError
from inrkit.meta.simulate import write_series
from inrkit.signals.base import grid_coords
from inrkit.signals.readers import write_vti
from inrkit.signals.series import VolumeSeries, load_series


def _volumes(t=3, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((t, n, n, n)) * np.arange(1, t + 1)[:, None, None, None]).astype(np.float32)


def test_roundtrip_and_global_normalisation(tmp_path):
    vols = _volumes()
    write_series(tmp_path, vols, name="s", labels=[0.0, 0.5, 1.0], label_name="time")
    series = load_series(tmp_path / "manifest.json")
    assert len(series) == 3 and series.dims == (6, 6, 6)
    assert series.values.min() == pytest.approx(-1.0) and series.values.max() == pytest.approx(1.0)
    assert series.values[0].max() < 0.0  # member 0 spans only the lower third: one scale for all
    np.testing.assert_allclose(series.denormalize(series.values), vols, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(series.labels, [0.0, 0.5, 1.0])
    assert series.member_names == ["s_0000", "s_0001", "s_0002"]


def test_coords_and_targets_match_the_core_grid(tmp_path):
    series = VolumeSeries.from_arrays(_volumes(t=2, n=8))
    full = grid_coords((8, 8, 8)).reshape(8, 8, 8, 3)
    assert torch.equal(series.coords(), full.reshape(-1, 3))
    assert torch.equal(series.coords(4), full[::4, ::4, ::4].reshape(-1, 3))
    t = series.targets([1], stride=4)
    assert t.shape == (1, 8, 1)
    assert float(t[0, 3, 0]) == pytest.approx(float(series.values[1][::4, ::4, ::4].reshape(-1)[3]))
    sig = series.member_signal(1)
    assert sig.scale == pytest.approx(series.scale) and sig.offset == pytest.approx(series.offset)


def test_raw_vti_and_parameters(tmp_path):
    vols = _volumes(t=2, n=5)
    vols[0].transpose().tofile(tmp_path / "a.raw")  # x fastest
    write_vti(tmp_path / "b.vti", vols[1])
    man = {"format": "inrkit-series", "name": "mixed", "dims": [5, 5, 5], "dtype": "float32",
           "files": ["a.raw", "b.vti"], "parameters": [{"k": 0.1}, {"k": 0.2}]}
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    series = load_series(tmp_path)
    assert series.label_name == "k" and series.labels.tolist() == pytest.approx([0.1, 0.2])
    np.testing.assert_allclose(series.denormalize(series.values), vols, rtol=1e-5, atol=1e-5)


def test_folder_without_manifest(tmp_path):
    vols = _volumes(t=2, n=4)
    for i, v in enumerate(vols):
        np.save(tmp_path / f"m{i}.npy", v)
    series = load_series(tmp_path)
    assert len(series) == 2 and series.labels.tolist() == [0.0, 1.0]


def test_inconsistent_member_shape_is_rejected(tmp_path):
    write_series(tmp_path, _volumes(t=3, n=6), name="s", labels=[0, 1, 2], label_name="time")
    np.save(tmp_path / "s_0001.npy", np.zeros((6, 6, 5), np.float32))
    with pytest.raises(InvalidFileError, match=r"s_0001\.npy: member shape \[6, 6, 5\] differs"):
        load_series(tmp_path)


def test_inconsistent_dtype_nan_and_bad_files_are_rejected(tmp_path):
    write_series(tmp_path, _volumes(t=2, n=4), name="s", labels=[0, 1], label_name="time")
    np.save(tmp_path / "s_0000.npy", np.zeros((4, 4, 4), np.float64))
    with pytest.raises(InvalidFileError, match="dtype float64 differs"):
        load_series(tmp_path)
    bad = np.zeros((4, 4, 4), np.float32)
    bad[0, 0, 0] = np.nan
    np.save(tmp_path / "s_0000.npy", bad)
    with pytest.raises(InvalidFileError, match="NaN"):
        load_series(tmp_path)
    (tmp_path / "s_0000.npy").unlink()
    with pytest.raises(InvalidFileError, match="no such file"):
        load_series(tmp_path)


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "JSON"),
    ('{"format": "other", "files": ["a.npy"]}', "not an inrkit series"),
    ('{"files": []}', "non-empty list"),
    ('{"files": ["../x.npy"]}', "inside the series folder"),
    ('{"files": ["a.txt"]}', "unsupported member format"),
    ('{"files": ["a.npy"], "labels": [1, 2]}', "2 labels for 1 files"),
    ('{"files": ["a.raw"]}', "need 'dims' and 'dtype'"),
])
def test_bad_manifests(tmp_path, manifest, message):
    np.save(tmp_path / "a.npy", np.zeros((4, 4, 4), np.float32))
    (tmp_path / "a.raw").write_bytes(b"\0" * 64)
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(InrkitError, match=message):
        load_series(tmp_path)


def test_raw_size_mismatch_is_a_file_error(tmp_path):
    (tmp_path / "a.raw").write_bytes(b"\0" * 60)
    (tmp_path / "manifest.json").write_text(json.dumps({"files": ["a.raw"], "dims": [4, 4, 4], "dtype": "uint8"}))
    with pytest.raises(InvalidFileError, match="do not match dims"):
        load_series(tmp_path)
