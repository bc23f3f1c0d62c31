"""``inrkit adapt`` and ``inrkit prune`` end to end on tiny inputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.cli import main
from inrkit.models import load_model, save_model, siren
from inrkit.signals import load_signal

CONFIG = """
hidden = [24, 16]
lr = 3e-3
[[stage]]
kind = "fit"
steps = 15
[[stage]]
kind = "densify"
n = 8
[[stage]]
kind = "twd"
steps = 15
layers = [0]
k = 16
[[stage]]
kind = "prune"
layers = [0]
count = 16
[[stage]]
kind = "finetune"
steps = 10
"""


def _run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in argv else None), err


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    y, x = np.mgrid[0:24, 0:32] / 16.0
    img = np.stack([np.sin(2 * x) * 0.5 + 0.5, np.cos(3 * y) * 0.5 + 0.5, (x + y) / 3.5], axis=-1)
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory, image_path: Path) -> Path:
    signal = load_signal(image_path)
    model = siren(2, 3, (32, 24), generator=torch.Generator().manual_seed(0))
    from inrkit.train import FitConfig, fit

    fit(model, signal, FitConfig(steps=30, lr=3e-3, progress=False))
    path = tmp_path_factory.mktemp("model") / "big.safetensors"
    save_model(model, path, signal=signal.metadata())
    return path


def test_adapt_cli_with_config(capsys, tmp_path: Path, image_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "a.safetensors"
    code, rep, err = _run(capsys, "adapt", str(image_path), "-o", str(out), "--config", str(cfg), "--json")
    assert code == 0, err
    assert rep["widths_before"] == [2, 24, 16, 3] and rep["widths_after"] == [2, 16, 16, 3]
    assert rep["params_after"] < rep["params_before"]
    assert rep["psnr_after"] > 15 and rep["psnr_before"] > 15
    assert [s["kind"] for s in rep["stages"]] == ["fit", "densify", "twd", "prune", "finetune"]
    model, header = load_model(out)
    assert model.widths == [2, 16, 16, 3] and header["extra"]["aire"]["config"]["hidden"] == [24, 16]
    code, info, _ = _run(capsys, "info", str(out), "--json")
    assert code == 0 and info["widths"] == [2, 16, 16, 3] and info["params"] == rep["params_after"]


def test_adapt_cli_preset_scale(capsys, tmp_path: Path) -> None:
    # the image preset at 1/1000 of its steps on an 8x8 image (its widths are large)
    img = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "s.png")
    out = tmp_path / "p.safetensors"
    code, rep, err = _run(capsys, "adapt", str(tmp_path / "s.png"), "-o", str(out), "--scale", "0.001", "--json")
    assert code == 0, err
    assert rep["widths_before"] == [2, 512, 512, 512, 3] and rep["widths_after"] == [2, 256, 512, 512, 3]
    assert rep["steps"] == 1 + 2 + 3 + 1


@pytest.mark.parametrize("method", ["l1", "coreset", "id"])
def test_prune_cli_reports_and_shrinks(capsys, tmp_path: Path, model_path: Path, image_path: Path,
                                       method: str) -> None:
    out = tmp_path / f"{method}.safetensors"
    code, rep, err = _run(capsys, "prune", str(model_path), "-o", str(out), "--method", method, "--keep", "0.5",
                          "--signal", str(image_path), "--finetune", "10", "--lr", "1e-3", "--json")
    assert code == 0, err
    for key in ("params_before", "params_after", "psnr_before", "psnr_after"):
        assert isinstance(rep[key], (int, float)), key
    assert rep["widths_after"] == [2, 16, 12, 3]
    assert rep["params_after"] < rep["params_before"] and rep["bytes_after"] < rep["bytes_before"]
    assert rep["psnr_pruned"] <= rep["psnr_before"] + 0.5
    assert rep["psnr_after"] >= rep["psnr_pruned"] - 0.1  # fine-tuning does not hurt
    assert load_model(out)[0].widths == [2, 16, 12, 3]


def test_prune_cli_one_layer_without_signal(capsys, tmp_path: Path, model_path: Path) -> None:
    out = tmp_path / "p.safetensors"
    code, rep, err = _run(capsys, "prune", str(model_path), "-o", str(out), "--layer", "1", "--keep", "5", "--json")
    assert code == 0, err
    assert rep["widths_after"] == [2, 32, 5, 3] and rep["psnr_before"] is None


def test_cli_errors_are_one_line(capsys, tmp_path: Path, model_path: Path, image_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    cases = [
        ("prune", str(bad), "-o", str(tmp_path / "x.safetensors")),
        ("prune", str(model_path), "-o", str(tmp_path / "x.safetensors"), "--layer", "2"),
        ("prune", str(model_path), "-o", str(tmp_path / "x.safetensors"), "--finetune", "5"),
        ("adapt", str(image_path), "-o", str(tmp_path / "y.safetensors"), "--config", str(bad)),
        ("adapt", str(tmp_path / "none.png"), "-o", str(tmp_path / "y.safetensors")),
    ]
    for argv in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("inrkit: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "x.safetensors").exists()
