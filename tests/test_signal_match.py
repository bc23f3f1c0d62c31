"""Signal-vs-header match: every --signal/--reference/eval input is checked against the model
header (kind, shape, crop) and a mismatch is refused with exit 2; --crop wherever a signal is read."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inrkit.api import evaluate_file
from inrkit.cli import main
from inrkit.errors import InvalidInputError
from inrkit.models import load_model, save_model, siren
from inrkit.signals import VolumeSignal
from inrkit.signals.match import SignalMatchWarning, load_matching_signal

CROP = "0:16,0:24"


@pytest.fixture
def files(tmp_path, tiny_image) -> dict[str, Path]:
    """A 24x32 image, a model fitted to its 16x24 crop, the model compressed, and a 20x30 image."""
    img = tmp_path / "img.png"
    Image.fromarray(tiny_image.astype(np.uint8)).save(img)
    other = tmp_path / "other.png"
    Image.fromarray(tiny_image[:20, :30].astype(np.uint8)).save(other)
    model = tmp_path / "crop.safetensors"
    assert main(["fit", str(img), "-o", str(model), "--crop", CROP, "--steps", "3", "--hidden", "8x2",
                 "--no-progress", "--json"]) == 0
    inrz = tmp_path / "crop.inrz"
    assert main(["compress", str(model), "-o", str(inrz), "--codec", "quant", "--json"]) == 0
    return {"img": img, "other": other, "model": model, "inrz": inrz, "dir": tmp_path}


def test_header_records_the_crop(files):
    meta = load_model(files["model"])[1]["signal"]
    assert meta["crop"] == [0, 16, 0, 24] and meta["shape"] == [16, 24] and meta["source_shape"] == [24, 32]


@pytest.mark.parametrize("command", ["eval", "prune", "compress", "decode"])
def test_every_signal_input_refuses_a_missing_crop_and_takes_crop(files, command, capsys):
    out = files["dir"]
    args = {"eval": ["eval", str(files["model"]), str(files["img"])],
            "prune": ["prune", str(files["model"]), "-o", str(out / "p.safetensors"), "--signal", str(files["img"])],
            "compress": ["compress", str(files["model"]), "-o", str(out / "c.inrz"), "--codec", "quant",
                         "--signal", str(files["img"])],
            "decode": ["decode", str(files["inrz"]), "-o", str(out / "d.png"), "--reference", str(files["img"])]}
    capsys.readouterr()
    assert main(args[command] + ["--json"]) == 2
    err = capsys.readouterr().err
    assert "crop none differs from the crop the model was fitted to (0:16,0:24); pass --crop 0:16,0:24" in err
    assert main(args[command] + ["--crop", "1:17,0:24", "--json"]) == 2
    assert "crop 1:17,0:24 differs" in capsys.readouterr().err
    assert main(args[command] + ["--crop", CROP, "--json"]) == 0


def test_shape_and_kind_mismatches_are_refused(files, tmp_path, capsys):
    full = tmp_path / "full.safetensors"
    assert main(["fit", str(files["img"]), "-o", str(full), "--steps", "2", "--hidden", "8x2", "--no-progress",
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["eval", str(full), str(files["other"])]) == 2
    assert "other.png is 20x30 but the model was fitted to a 24x32 image" in capsys.readouterr().err
    np.save(tmp_path / "v.npy", np.zeros((4, 4), np.float32) + np.arange(4))
    assert main(["eval", str(full), str(tmp_path / "v.npy")]) == 2
    assert "is a field but the model was fitted to an image" in capsys.readouterr().err
    field_header = {"signal": {"kind": "field", "shape": [4, 4], "channels": 1}}
    with pytest.raises(InvalidInputError, match="--crop applies to images, not to a field"):
        load_matching_signal(tmp_path / "v.npy", field_header, crop=(0, 2, 0, 2))


def test_old_header_warns_instead_of_refusing(files, tmp_path):
    model, header = load_model(files["model"])
    meta = {k: v for k, v in header["signal"].items() if k not in ("crop", "source_shape")}
    old = tmp_path / "old.safetensors"
    save_model(model, old, signal=meta)  # no crop and no fit config: a file from before the crop was stored
    with pytest.warns(SignalMatchWarning, match="does not record the image crop"):
        report = evaluate_file(old, files["img"], crop=(0, 16, 0, 24))
    assert np.isfinite(report["psnr"])
    with pytest.raises(InvalidInputError, match="is 24x32"):  # the shape still catches the uncropped image
        evaluate_file(old, files["img"])
    save_model(model, old, signal={})
    with pytest.warns(SignalMatchWarning) as caught:
        evaluate_file(old, files["img"], crop=(0, 16, 0, 24))
    assert any("does not record the signal's kind and shape" in str(w.message) for w in caught)


def test_signal_is_measured_in_the_models_units(tmp_path):
    """A volume of twice the values normalises to the same [-1, 1] data; in the model's units it does not match."""
    vol = np.linspace(0, 1, 5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    np.save(tmp_path / "a.npy", vol)
    np.save(tmp_path / "b.npy", 2 * vol)
    signal = VolumeSignal(vol)
    model = siren(3, 1, [8])
    header = {"signal": signal.metadata()}
    same = load_matching_signal(tmp_path / "a.npy", header).evaluate(model)["psnr"]
    twice = load_matching_signal(tmp_path / "b.npy", header)
    assert np.allclose(twice.denormalize(twice.values), 2 * vol.reshape(-1, 1), atol=1e-5)
    assert twice.evaluate(model)["psnr"] < same - 3


def test_adapt_takes_crop_and_records_it(files, tmp_path, capsys):
    out = tmp_path / "a.safetensors"
    assert main(["adapt", str(files["img"]), "-o", str(out), "--crop", CROP, "--scale", "0.002", "--no-progress",
                 "--json"]) == 0
    assert load_model(out)[1]["signal"]["crop"] == [0, 16, 0, 24]
    capsys.readouterr()
    assert main(["eval", str(out), str(files["img"]), "--crop", CROP, "--json"]) == 0
