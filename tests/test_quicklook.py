"""Quick looks: a volume model's mid-planes and single slices as PNG (``render``, ``--slice``), the
training curve (``fit --plot``, and beside ``--history``), and a ``.raw`` volume's ``--spacing``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inrkit.cli import main
from inrkit.models import load_model
from inrkit.train.plot import curve_path, plot_history

SHAPE = (6, 7, 8)  # x, y, z


@pytest.fixture(scope="module")
def volume_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vol")
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in SHAPE), indexing="ij")
    np.save(folder / "v.npy", (np.exp(-(x ** 2 + 2 * y ** 2 + 3 * z ** 2)) + 0.3 * x).astype(np.float32))
    out = folder / "v.safetensors"
    assert main(["fit", str(folder / "v.npy"), "-o", str(out), "--hidden", "16x2", "--steps", "20",
                 "--no-progress", "--json"]) == 0
    return out


def _grey(values: np.ndarray, meta: dict) -> np.ndarray:
    """The grey levels the renderer uses: the source range, first axis right, second up."""
    lo = meta["value_offset"][0] - meta["value_scale"][0]
    hi = meta["value_offset"][0] + meta["value_scale"][0]
    return (np.clip((values - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8).T[::-1]


def _volume(model: Path, tmp_path: Path, size: str | None = None) -> np.ndarray:
    out = tmp_path / "full.npy"
    assert main(["render", str(model), "-o", str(out), *(["--size", size] if size else [])]) == 0
    return np.load(out)


def test_mid_planes_side_by_side(volume_model, tmp_path, capsys):
    out = tmp_path / "look.png"
    assert main(["render", str(volume_model), "-o", str(out)]) == 0
    img = np.asarray(Image.open(out))
    nx, ny, nz = SHAPE
    assert img.shape == (max(nz, ny), ny + nx + nx)  # x plane (y by z), y plane (x by z), z plane (x by y)
    meta = load_model(volume_model)[1]["signal"]
    full = _volume(volume_model, tmp_path)
    planes = [full[nx // 2], full[:, ny // 2], full[:, :, nz // 2]]
    left = 0
    for plane in planes:
        want = _grey(plane, meta)
        got = img[img.shape[0] - want.shape[0]:, left: left + want.shape[1]]
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
        left += want.shape[1]
    assert img.std() > 0


def test_mid_planes_follow_size(volume_model, tmp_path):
    out = tmp_path / "big.png"
    assert main(["render", str(volume_model), "-o", str(out), "--size", "10,12,14"]) == 0
    assert Image.open(out).size == (12 + 10 + 10, 14)  # PIL: (width, height)


@pytest.mark.parametrize("plane, size", [("z:5", (6, 7)), ("x:0", (7, 8)), ("y:6", (6, 8))])
def test_one_slice(volume_model, tmp_path, plane, size):
    out = tmp_path / "slice.png"
    assert main(["render", str(volume_model), "-o", str(out), "--slice", plane]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape[::-1] == size
    axis, index = "xyz".index(plane[0]), int(plane[2:])
    want = _grey(np.take(_volume(volume_model, tmp_path), index, axis=axis), load_model(volume_model)[1]["signal"])
    assert np.abs(img.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("plane, message", [("z:8", "outside the render grid 6x7x8 (index 0 to 7)"),
                                            ("x:6", "outside"), ("w:1", "expected AXIS:INDEX"),
                                            ("z", "expected AXIS:INDEX"), ("z:-1", "expected AXIS:INDEX")])
def test_slice_checked_before_work(volume_model, tmp_path, capsys, monkeypatch, plane, message):
    import inrkit.signals.planes as planes

    def no_work(*_args, **_kwargs):
        raise AssertionError("the model was evaluated")

    monkeypatch.setattr(planes, "predict", no_work)
    out = tmp_path / "s.png"
    capsys.readouterr()
    assert main(["render", str(volume_model), "-o", str(out), "--slice", plane]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("inrkit: error:") and message in err
    assert not out.exists()


def test_slice_needs_a_volume_and_a_png(volume_model, tmp_path, capsys, tiny_image):
    image = tmp_path / "i.png"
    Image.fromarray(tiny_image.astype(np.uint8)).save(image)
    model = tmp_path / "i.safetensors"
    assert main(["fit", str(image), "-o", str(model), "--hidden", "8x1", "--steps", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["render", str(model), "-o", str(tmp_path / "s.png"), "--slice", "z:0"]) == 2
    assert "needs a volume model" in capsys.readouterr().err
    assert main(["render", str(volume_model), "-o", str(tmp_path / "s.npy"), "--slice", "z:0"]) == 2
    assert "writes a .png" in capsys.readouterr().err
    assert main(["render", str(volume_model), "-o", str(tmp_path / "v.ply")]) == 2
    assert "a volume renders to .png (mid-planes), .npy or .vti" in capsys.readouterr().err


def test_quick_looks_count_only_their_planes(tmp_path, capsys):
    """Without --size, a render's work is bounded by the model file's size: the mid-planes and a slice of a
    96x128x160 volume fit that bound where the whole grid does not."""
    np.save(tmp_path / "big.npy", np.random.default_rng(0).random((96, 128, 160)).astype(np.float32))
    model = tmp_path / "big.safetensors"
    assert main(["fit", str(tmp_path / "big.npy"), "-o", str(model), "--arch", "siren", "--hidden", "8x1",
                 "--steps", "1", "--no-progress", "--no-evaluate"]) == 0
    capsys.readouterr()
    assert main(["render", str(model), "-o", str(tmp_path / "all.npy")]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["render", str(model), "-o", str(tmp_path / "look.png")]) == 0
    assert Image.open(tmp_path / "look.png").size == (128 + 96 + 96, 160)
    assert main(["render", str(model), "-o", str(tmp_path / "z.png"), "--slice", "z:80"]) == 0
    assert Image.open(tmp_path / "z.png").size == (96, 128)


def _is_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.size


def test_fit_plot_and_history_curve(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.random.default_rng(0).random((12, 10)).astype(np.float32))
    plot, history = tmp_path / "plots" / "curve.png", tmp_path / "h.json"
    assert main(["fit", str(tmp_path / "f.npy"), "-o", str(tmp_path / "m.safetensors"), "--hidden", "8x1",
                 "--steps", "30", "--log-every", "5", "--no-progress", "--plot", str(plot),
                 "--history", str(history)]) == 0
    width, height = _is_png(plot)
    assert width > 300 and height > 150
    assert _is_png(tmp_path / "h.png") == (width, height)
    assert len(json.loads(history.read_text())["history"]) == 6


def test_fit_plot_suffix_checked_before_work(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros((4, 4), dtype=np.float32))
    assert main(["fit", str(tmp_path / "f.npy"), "-o", str(tmp_path / "m.safetensors"), "--plot",
                 str(tmp_path / "c.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_plot_history_without_psnr_or_rows(tmp_path):
    rows = [{"step": s, "loss": 1.0 / s, "psnr": None, "seconds": 0.1 * s} for s in range(1, 40)]
    assert _is_png(plot_history(rows, tmp_path / "sdf.png", title="sdf"))[0] > 0
    assert _is_png(plot_history([], tmp_path / "empty.png"))[0] > 0
    assert curve_path("a/h.json") == Path("a/h.png") and curve_path("h.png") == Path("h.curve.png")


def test_raw_spacing(tmp_path, capsys):
    raw = tmp_path / "v.raw"
    (np.arange(5 * 6 * 7) % 200).astype(np.uint8).tofile(raw)
    out = tmp_path / "m.safetensors"
    assert main(["fit", str(raw), "--dims", "5,6,7", "--spacing", "4,4,2.5", "-o", str(out), "--hidden", "8x1",
                 "--steps", "1", "--no-progress"]) == 0
    meta = load_model(out)[1]["signal"]
    assert meta["spacing"] == [4.0, 4.0, 2.5] and meta["origin"] == [0.0, 0.0, 0.0]
    assert meta["domain"] == [[0.0, 16.0], [0.0, 20.0], [0.0, 15.0]]
    capsys.readouterr()
    for bad, message in ((["--dims", "5,6,7", "--spacing", "4,4"], "3 finite numbers > 0"),
                         (["--dims", "5,6,7", "--spacing", "4,0,4"], "3 finite numbers > 0"),
                         (["--spacing", "4,4,4"], "needs its dims")):
        assert main(["fit", str(raw), *bad, "-o", str(out), "--steps", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    np.save(tmp_path / "v.npy", np.zeros((5, 6, 7), dtype=np.float32))
    assert main(["fit", str(tmp_path / "v.npy"), "--dims", "5,6,7", "--spacing", "1,1,1", "-o", str(out)]) == 2
    assert "for .raw volumes" in capsys.readouterr().err
