"""Simulated volume series: vortex advection-diffusion and Gray-Scott reaction-diffusion."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inrkit.cli import main
from inrkit.errors import InvalidInputError
from inrkit.meta.simulate import generate_series, simulate_grayscott, simulate_vortex
from inrkit.signals.series import load_series


def test_vortex_is_deterministic_and_moves():
    a = simulate_vortex(12, 4, seed=3)
    b = simulate_vortex(12, 4, seed=3)
    c = simulate_vortex(12, 4, seed=4)
    assert a.shape == (4, 12, 12, 12) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.isfinite(a).all() and a.min() >= -1e-6 and a.max() <= 1.0 + 1e-6
    assert np.abs(a[1] - a[0]).mean() > 1e-3  # the flow transports the scalar


def test_vortex_without_flow_only_diffuses_and_conserves_mass():
    v = simulate_vortex(10, 5, strength=0.0, diffusivity=1e-3, seed=1)
    sums = v.reshape(5, -1).astype(np.float64).sum(1)
    np.testing.assert_allclose(sums, sums[0], rtol=1e-5)  # zero-flux walls conserve the scalar
    assert np.all(np.diff(v.reshape(5, -1).max(1)) < 0)   # diffusion lowers the peak


def test_vortex_strength_changes_the_result():
    weak = simulate_vortex(10, 3, strength=0.5, seed=0)
    strong = simulate_vortex(10, 3, strength=1.5, seed=0)
    assert np.abs(weak[-1] - strong[-1]).mean() > 1e-3


def test_grayscott_bounded_deterministic_and_stable_check():
    a = simulate_grayscott(12, 3, iterations_per_step=20, seed=0)
    assert np.array_equal(a, simulate_grayscott(12, 3, iterations_per_step=20, seed=0))
    assert a.shape == (3, 12, 12, 12) and np.isfinite(a).all()
    assert a.min() > -0.1 and a.max() < 1.0
    assert np.abs(a[2] - a[0]).mean() > 1e-4  # the reaction evolves
    with pytest.raises(InvalidInputError, match="stability"):
        simulate_grayscott(8, 1, du=0.5, dt=1.0)


def test_generate_series_writes_a_loadable_series(tmp_path):
    out = tmp_path / "vortex"
    info = generate_series("vortex", out, size=8, steps=3, seed=2, progress=False)
    assert info["members"] == 3 and info["dims"] == [8, 8, 8]
    series = load_series(out)
    assert len(series) == 3 and series.dims == (8, 8, 8) and series.label_name == "time"
    raw = simulate_vortex(8, 3, seed=2)
    np.testing.assert_allclose(series.denormalize(series.values), raw, atol=1e-5)


def test_ensemble_members_are_final_states_over_the_parameter(tmp_path):
    out = tmp_path / "ens"
    generate_series("vortex", out, size=8, steps=2, ensemble=3, seed=0, param_range=(0.5, 1.5), progress=False)
    man = json.loads((out / "manifest.json").read_text())
    assert man["label_name"] == "strength"
    assert man["labels"] == pytest.approx([0.5, 1.0, 1.5])
    assert [p["strength"] for p in man["parameters"]] == pytest.approx([0.5, 1.0, 1.5])
    series = load_series(out)
    last = simulate_vortex(8, 2, strength=1.5, seed=0)[-1]
    np.testing.assert_allclose(series.denormalize(series.values[2]), last, atol=1e-5)


def test_synth_cli_json_and_errors(tmp_path, capsys):
    assert main(["synth", "grayscott", "-o", str(tmp_path / "gs"), "--size", "8", "--steps", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["members"] == 2
    assert main(["synth", "vortex", "-o", str(tmp_path / "bad"), "--size", "2", "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--size" in err[0]
