"""``--arch auto``, file sizes against the raw data, float16 storage, and honest durations."""
from __future__ import annotations

import importlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit import choose as choose_module
from inrkit.api import ModelSpec, fit_file, model_info, resolve_spec
from inrkit.cli import main
from inrkit.errors import InrkitWarning
from inrkit.metrics import raw_bytes, size_report
from inrkit.models import load_model, save_model, siren
from inrkit.signals import AnalyticSignal, load_signal
from inrkit.signals.grid import ImageSignal, VolumeSignal
from inrkit.train import FitConfig, fit

fit_module = importlib.import_module("inrkit.train.fit")


def _photo(path: Path, h: int = 96, w: int = 128) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w] / 9.0
    img = np.stack([np.sin(x) + np.cos(y), np.sin(x + y), np.cos(x - 2 * y)], axis=-1) * 60 + 128
    img += rng.normal(0, 4, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def test_raw_bytes_follow_the_source_dtype(tmp_path: Path) -> None:
    photo = load_signal(_photo(tmp_path / "p.png"))
    assert photo.metadata()["dtype"] == "uint8" and raw_bytes(photo.metadata()) == 96 * 128 * 3
    vol = np.arange(6 * 5 * 4, dtype=np.uint16).reshape(6, 5, 4)
    np.save(tmp_path / "v.npy", vol)
    meta = load_signal(tmp_path / "v.npy").metadata()
    assert meta["dtype"] == "uint16" and raw_bytes(meta) == 6 * 5 * 4 * 2
    assert raw_bytes({"shape": [4, 4], "channels": 1}) == 64  # no dtype recorded: float32
    assert raw_bytes({"kind": "sdf"}) is None
    assert size_report(50, {"shape": [10, 10], "channels": 1, "dtype": "uint8"}) == {
        "bytes": 50, "raw_bytes": 100, "ratio": 0.5}


def test_vtk_files_record_their_sample_type(shared_data: Path) -> None:
    assert load_signal(shared_data / "volumes" / "hydrogen.vti").metadata()["dtype"] == "float32"
    assert load_signal(shared_data / "volumes" / "ironProt.vtk").metadata()["dtype"] == "uint8"


def test_auto_picks_a_grid_sized_to_a_quarter_of_the_data() -> None:
    photo = ImageSignal(np.random.default_rng(0).uniform(0, 255, (512, 768, 3)).astype(np.float32))
    spec, choice = resolve_spec(ModelSpec(), photo)
    assert choice is not None and spec.arch == "grid" and choice.weight_dtype == "float16"
    model = spec.build(2, 3, torch.Generator().manual_seed(0))
    stored = 2 * model.num_params() + choose_module.HEADER_BYTES
    raw = 512 * 768 * 3
    assert 0.35 * raw < stored <= 0.4 * raw  # the largest grid within the budget
    assert choice.fields["finest"] == 768 and "0.4 of the data's bytes" in choice.reason
    volume = VolumeSignal(np.random.default_rng(0).uniform(0, 1, (48, 40, 32)).astype(np.float32))
    spec3, choice3 = resolve_spec(ModelSpec(), volume)
    assert spec3.arch == "grid" and choice3 is not None
    assert 2 * spec3.build(3, 1).num_params() + choose_module.HEADER_BYTES <= 0.25 * 48 * 40 * 32 * 4


def test_auto_keeps_the_users_widths_and_named_architectures() -> None:
    photo = ImageSignal(np.zeros((256, 256, 3), np.float32))
    spec, choice = resolve_spec(ModelSpec(hidden=(16,)), photo)  # widths without an architecture: a SIREN
    assert spec.arch == "siren" and spec.hidden == (16,) and choice is None
    spec, choice = resolve_spec(ModelSpec(arch="siren"), photo)
    assert spec.arch == "siren" and choice is None


def test_auto_on_small_and_non_grid_signals() -> None:
    tiny = ImageSignal(np.zeros((24, 32, 3), np.float32))
    spec, choice = resolve_spec(ModelSpec(), tiny)
    assert spec.arch == "siren" and choice is not None and spec.hidden == (16, 16, 16)
    assert choice.weight_dtype == "float16"
    spec, choice = resolve_spec(ModelSpec(), AnalyticSignal("sin-radial"))
    assert spec.arch == "siren" and spec.hidden is None and choice is not None and choice.weight_dtype == "float32"


def test_fit_file_auto_writes_a_small_float16_model(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png", 384, 512)
    out = tmp_path / "m.safetensors"
    result, summary = fit_file(photo, out, config=FitConfig(steps=60, progress=False))
    assert summary["arch"] == "grid" and summary["weight_dtype"] == "float16" and summary["steps"] == 60
    assert summary["raw_bytes"] == 384 * 512 * 3 and summary["bytes"] == out.stat().st_size
    assert summary["ratio"] == pytest.approx(out.stat().st_size / (384 * 512 * 3), abs=1e-4)
    assert 0.3 <= summary["ratio"] <= 0.42  # 0.4 of the 8-bit data; the JSON header is within it
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as handle:
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == {"F16"}
    model, header = load_model(out)
    assert header["extra"]["auto"]["arch"] == "grid" and "reason" in header["extra"]["auto"]
    # the reported PSNR is the PSNR of the stored (float16) weights
    assert load_signal(photo).evaluate(model)["psnr"] == pytest.approx(summary["psnr"], abs=1e-6)
    info = model_info(out)
    assert info["raw_bytes"] == 384 * 512 * 3 and info["ratio"] == summary["ratio"]


def test_auto_steps_apply_only_when_none_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(choose_module.GRID_PLAN[2], "steps", 7)
    photo = _photo(tmp_path / "p.png", 384, 512)
    _, summary = fit_file(photo, tmp_path / "m.safetensors", config=FitConfig(progress=False))
    assert summary["steps"] == 7 and summary["auto"]["lr"] == 3e-3
    _, summary = fit_file(photo, tmp_path / "n.safetensors", config=FitConfig(steps=3, progress=False))
    assert summary["steps"] == 3


def test_float16_storage_halves_the_file(tmp_path: Path) -> None:
    model = siren(2, 3, [32, 32], generator=torch.Generator().manual_seed(0))
    a = save_model(model, tmp_path / "a.safetensors")
    b = save_model(model, tmp_path / "b.safetensors", weight_dtype="float16")
    assert b.stat().st_size < 0.6 * a.stat().st_size
    loaded, _ = load_model(b)
    assert torch.allclose(loaded.weights[1], model.weights[1], atol=1e-3, rtol=1e-3)


def test_a_model_larger_than_its_data_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = _photo(tmp_path / "p.png", 24, 32)
    code = main(["fit", str(photo), "-o", str(tmp_path / "m.safetensors"), "--arch", "siren", "--hidden", "64x3",
                 "--steps", "2", "--json"])
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert code == 0 and summary["ratio"] > 1
    assert "the size of its data" in out.err and out.err.count("the size of its data") == 1


def _slow_callback(seconds: float):
    class Slow:
        def on_step_end(self, state) -> None:
            time.sleep(seconds)
    return Slow()


def test_time_budget_never_starts_a_step_that_would_overshoot() -> None:
    signal = ImageSignal(np.zeros((8, 8, 3), np.float32))
    model = siren(2, 3, [8], generator=torch.Generator().manual_seed(0))
    result = fit(model, signal, FitConfig(steps=100, time_budget=1.0, progress=False, log_every=1),
                 callbacks=[_slow_callback(0.3)])
    assert result.stopped_by == "time_budget" and result.seconds <= 1.0 and result.steps == 3


def test_a_long_fit_is_estimated_and_warned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit_module, "LONG_RUN", 0.01)
    signal = ImageSignal(np.zeros((8, 8, 3), np.float32))
    model = siren(2, 3, [8], generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, signal, FitConfig(steps=60, progress=False), callbacks=[_slow_callback(0.001)])
    long = [w for w in caught if issubclass(w.category, InrkitWarning) and "this fit will take" in str(w.message)]
    assert len(long) == 1 and "--arch auto" in str(long[0].message)


def test_zero_steps_train_nothing_and_none_means_the_default() -> None:
    signal = ImageSignal(np.zeros((8, 8, 3), np.float32))
    model = siren(2, 3, [8], generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, signal, FitConfig(steps=0, progress=False))
    assert result.steps == 0 and all(torch.equal(a, b) for a, b in zip(before, result.model.parameters()))
    assert fit(siren(2, 3, [4]), signal, FitConfig(progress=False)).steps == 1000


def test_pruning_a_grid_model_says_what_it_saved(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = _photo(tmp_path / "p.png", 64, 64)
    model = tmp_path / "g.safetensors"
    assert main(["fit", str(photo), "-o", str(model), "--arch", "grid", "--steps", "2", "--json"]) == 0
    capsys.readouterr()
    assert main(["prune", str(model), "-o", str(tmp_path / "p.safetensors"), "--keep", "0.5", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert 0 < report["bytes_saved"] == report["bytes_before"] - report["bytes_after"]
    assert report["raw_bytes"] == 64 * 64 * 3 and report["ratio"] > 1
    assert "grid encoding only" in out.err
